import { spawn } from 'node:child_process';
import { startBridge, type SandboxNetwork } from '../../src/egress/network.ts';
import type { AuditEventInput } from '../../src/audit/index.ts';

// A stand-in for the sandbox holder: a process in its own user + network (+ mount)
// namespace that runs sandboxNetwork()'s setup, with the bridges served from this test
// process exactly as the supervisor serves them; `script` runs inside the namespace.

export async function inSandboxNetns(
  net: SandboxNetwork,
  script: string,
  o: { env?: NodeJS.ProcessEnv; mountNs?: boolean; before?: string; timeoutMs?: number } = {},
): Promise<{ out: string; events: AuditEventInput[] }> {
  const flags = o.mountNs ? '-rnm' : '-rn';
  const holder = spawn('unshare', [flags, 'sh', '-c', `${o.before ?? ''}\n${net.setup}echo ready\nread x`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let herr = '';
  holder.stderr.on('data', (d) => {
    herr += d;
  });
  const events: AuditEventInput[] = [];
  try {
    await new Promise<void>((res, rej) => {
      holder.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) res();
      });
      holder.once('exit', (c) => rej(new Error(`holder exited ${c}: ${herr}`)));
    });
    const ns = ['-t', String(holder.pid), '-U', '-n', ...(o.mountNs ? ['-m'] : []), '--preserve-credentials', '--'];
    const bridge = await startBridge(net.bridge, { enter: ['nsenter', ...ns], record: (e) => events.push(e) });
    try {
      const p = spawn('nsenter', [...ns, 'sh', '-c', script], {
        env: o.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.stderr.on('data', (d) => {
        out += d;
      });
      const killer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      await new Promise((r) => p.on('close', r));
      clearTimeout(killer);
      return { out, events };
    } finally {
      await bridge.close();
    }
  } finally {
    holder.stdin.end('x\n');
    if (holder.exitCode === null) await new Promise((r) => holder.once('exit', r));
  }
}
