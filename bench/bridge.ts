// Egress bridge into the sandbox's network namespace: the previous per-connection
// forking root socat (baseline) vs the bridge served from the supervisor's own process
// (candidate), interleaved in one run. A client inside a fresh user+network namespace
// downloads MB megabytes through 127.0.0.1:3128 from a unix-socket server in its own
// process (standing in for the gateway), then measures ping-pong round trips; also how many host processes
// 200 held connections cost.
//   node bench/bridge.ts [--rounds N] [--mb N]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBridge, type BridgePlan } from '../src/egress/network.ts';
import { writeSection, median } from './report.ts';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const ROUNDS = arg('--rounds', 11);
const MB = arg('--mb', 128);
const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-bridge-'));
const sock = join(dir, 'gw.sock');

// "gateway" (its own process, as the gateway's relay thread is not the bridge's event loop):
// 'g' → MB megabytes then close; 'p' → 'q' per byte; 'h' → hold
const SERVER = `const net = require('node:net'); const chunk = Buffer.alloc(64 * 1024, 0x61); const MB = Number(process.argv[2]);
net.createServer((s) => { s.on('error', () => undefined); s.once('data', (d) => {
  if (d[0] === 0x70) { s.write('q'); s.on('data', (x) => s.write(Buffer.alloc(x.length, 0x71))); return; }
  if (d[0] === 0x68) return;
  let left = MB * 16; const pump = () => { while (left > 0) { left--; if (!s.write(chunk)) { s.once('drain', pump); return; } } s.end(); }; pump();
}); }).listen(process.argv[1], () => console.log('up'));`;
const gw = spawn(process.execPath, ['-e', SERVER, sock, String(MB)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((r) => gw.stdout!.on('data', () => r()));

const holder = spawn('unshare', ['-rn', 'sh', '-c', 'ip link set lo up; echo ready; read x'], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
await new Promise<void>((r) =>
  holder.stdout.on('data', (d: Buffer) => {
    if (d.toString().includes('ready')) r();
  }),
);
const enter = ['nsenter', '-t', String(holder.pid), '-U', '-n', '--preserve-credentials', '--'];

const CLIENT = `const net = require('node:net'); const mode = process.argv[1];
if (mode === 'get') { const t0 = process.hrtime.bigint(); let n = 0; const c = net.connect(3128, '127.0.0.1', () => c.write('g'));
  c.on('data', (d) => { n += d.length; }); c.on('end', () => { console.log(JSON.stringify({ n, ms: Number(process.hrtime.bigint() - t0) / 1e6 })); }); }
else if (mode === 'ping') { const c = net.connect(3128, '127.0.0.1', () => c.write('p')); const lat = []; let t = 0; let first = true;
  c.on('data', () => { if (first) { first = false; } else lat.push(Number(process.hrtime.bigint() - t) / 1e6); if (lat.length >= 300) { console.log(JSON.stringify({ lat })); c.destroy(); return; } t = process.hrtime.bigint(); c.write('x'); }); }
else { const cs = []; for (let i = 0; i < 200; i++) cs.push(net.connect(3128, '127.0.0.1', () => cs[i].write('h'))); setTimeout(() => { console.log('held'); }, 1500); setTimeout(() => process.exit(0), 4000); }`;

function client(mode: string): Promise<string> {
  const p = spawn(enter[0]!, [...enter.slice(1), process.execPath, '-e', CLIENT, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout!.on('data', (d) => {
    out += d;
  });
  return new Promise((r) => p.on('close', () => r(out.trim())));
}

function socatCount(): number {
  const r = spawnSync('ps', ['-eo', 'cmd='], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.startsWith('socat') && l.includes(sock)).length;
}

async function withSocat<T>(fn: () => Promise<T>): Promise<T> {
  const p: ChildProcess = spawn(
    enter[0]!,
    [...enter.slice(1), 'socat', 'TCP-LISTEN:3128,bind=127.0.0.1,fork,reuseaddr,backlog=512', `UNIX-CONNECT:${sock}`],
    { stdio: 'ignore' },
  );
  await new Promise((r) => setTimeout(r, 300));
  try {
    return await fn();
  } finally {
    // the socat started here and the children it forked, by pid
    const ps = spawnSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number));
    for (const [pid, ppid] of ps)
      if (ppid === p.pid) {
        try {
          process.kill(pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    p.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function withBridge<T>(fn: () => Promise<T>): Promise<T> {
  const plan: BridgePlan = { tcp: [{ port: 3128, target: sock }], dns: false, maxConnections: 10_000 };
  const b = await startBridge(plan, { enter, record: () => undefined });
  try {
    return await fn();
  } finally {
    await b.close();
  }
}

type Kind = 'socat' | 'bridge';
const runs: Record<Kind, { mbps: number[]; p50: number[]; procs: number }> = {
  socat: { mbps: [], p50: [], procs: 0 },
  bridge: { mbps: [], p50: [], procs: 0 },
};
const ratios: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const order: Kind[] = i % 2 ? ['bridge', 'socat'] : ['socat', 'bridge'];
  const got: Partial<Record<Kind, number>> = {};
  for (const k of order) {
    const w = k === 'socat' ? withSocat : withBridge;
    await w(async () => {
      const g = JSON.parse(await client('get')) as { n: number; ms: number };
      const mbps = g.n / 2 ** 20 / (g.ms / 1000);
      runs[k].mbps.push(mbps);
      got[k] = mbps;
      const p = JSON.parse(await client('ping')) as { lat: number[] };
      runs[k].p50.push(median(p.lat));
    });
  }
  ratios.push(got.bridge! / got.socat!);
}
for (const k of ['socat', 'bridge'] as Kind[]) {
  const w = k === 'socat' ? withSocat : withBridge;
  await w(async () => {
    const p = client('hold');
    await new Promise((r) => setTimeout(r, 2500));
    runs[k].procs = k === 'socat' ? socatCount() : 0; // the bridge adds no process: its connections are sockets of this one
    await p;
  });
}
holder.stdin.end('x\n');
gw.kill();
rmSync(dir, { recursive: true, force: true });

const f = (x: number) => x.toFixed(1);
const md = `## Egress bridge into the sandbox namespace
Command: \`node bench/bridge.ts\` (options \`--rounds ${ROUNDS} --mb ${MB}\`). A client in a fresh user+network namespace downloads ${MB} MB through 127.0.0.1:3128 from a unix-socket server in its own process (standing in for the gateway), then times 300 one-byte round trips. Baseline: the previous bridge, \`socat TCP-LISTEN:3128,fork\` started inside the namespace (one root process per connection). Candidate: \`startBridge\` (listener opened inside by a helper, served from this process). Rounds alternate the order; "ratio" is the median of per-round throughput ratios.

| measure | socat (before) | in-process bridge | ratio |
| --- | ---: | ---: | ---: |
| download throughput, MB/s (median of ${ROUNDS}) | ${f(median(runs.socat.mbps))} | ${f(median(runs.bridge.mbps))} | ${median(ratios).toFixed(2)}× |
| round trip p50, ms (median of rounds) | ${median(runs.socat.p50).toFixed(3)} | ${median(runs.bridge.p50).toFixed(3)} | ${(median(runs.bridge.p50) / median(runs.socat.p50)).toFixed(2)}× |
| host processes for 200 held connections | ${runs.socat.procs} | ${runs.bridge.procs} | — |

In a session the bridge shares the supervisor's event loop with the gateway; the gateway's native relay thread still writes downloads to the bridge's unix socket.`;
writeSection('bridge', md);
console.log(md);
