import { createConnection, type Socket } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { AirlockError, ensureHome } from '../common/index.ts';
import type { OpenSessionOptions } from './session.ts';

// The client side of long-running sessions, and reading the record of past ones: what
// `airlock session start|stop|pause|resume|kill`, `exec` and `sessions` need. A light
// entry (.dependency-cruiser.cjs): it loads neither the session core nor the policy
// engine (zod, yaml), so those commands start in a fraction of `airlock run`'s time
// (issue 16). The supervisor side is daemon.ts.
// Protocol: newline-delimited JSON frames; byte payloads in base64.

export { listSessions, type SessionSummary } from './list.ts';
export { recoverSessions, type RecoveredSession } from './recover.ts';

export type Frame =
  | { t: 'exec'; argv: string[]; cwd?: string; env?: Record<string, string> }
  | { t: 'in'; d: string }
  | { t: 'eof' }
  | { t: 'out'; d: string }
  | { t: 'err'; d: string }
  | { t: 'exit'; status: number }
  | { t: 'stop'; reason?: string }
  | { t: 'stopped'; result: unknown }
  | { t: 'pause' }
  | { t: 'resume'; by?: string }
  | { t: 'kill'; reason?: string }
  | { t: 'status' }
  | { t: 'ok'; data?: unknown }
  | { t: 'error'; kind: string; message: string; hint?: string };

export function socketPath(home: string, id: string): string {
  return join(home, 'run', `${id}.sock`);
}

export function send(sock: Socket, f: Frame): void {
  if (!sock.destroyed) sock.write(JSON.stringify(f) + '\n');
}

export function frames(sock: Socket, on: (f: Frame) => void): void {
  let buf = '';
  const decoder = new StringDecoder('utf8'); // a character split across two reads stays whole
  sock.on('data', (d: Buffer) => {
    buf += decoder.write(d);
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line) continue;
      try {
        on(JSON.parse(line) as Frame);
      } catch {
        send(sock, { t: 'error', kind: 'USAGE', message: 'malformed frame' });
      }
    }
  });
}

/** Client: starts a detached supervisor and waits until the session is up. */
export async function startDetached(opts: OpenSessionOptions): Promise<string> {
  const home = ensureHome(opts.home ?? process.env.AIRLOCK_HOME ?? undefined);
  const entry = fileURLToPath(new URL('../cli/run.ts', import.meta.url));
  const logPath = join(home.run, `supervisor-${process.pid}-${Date.now()}.log`);
  const { openSync } = await import('node:fs');
  const log = openSync(logPath, 'a', 0o600);
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', entry, '__supervise'], {
    detached: true,
    stdio: ['ignore', log, log, 'ipc'],
    env: process.env,
    cwd: process.cwd(),
  });
  child.send(opts);
  const msg = await new Promise<{ id: string | null; error?: { kind: string; message: string; hint?: string } }>(
    (res) => {
      child.once('message', (m) => res(m as { id: string | null }));
      child.once('exit', (code) =>
        res({
          id: null,
          error: {
            kind: 'INTERNAL',
            message: `session supervisor exited (${code}); log: ${logPath}\n${safeRead(logPath)}`,
          },
        }),
      );
    },
  );
  child.disconnect?.();
  child.unref();
  if (!msg.id) {
    const e = msg.error!;
    throw new AirlockError(e.kind as never, e.message, e.hint);
  }
  return msg.id;
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

/** Client: one request/response exchange with a running session. */
export async function request(
  home: string,
  id: string,
  frame: Frame,
  io?: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream },
): Promise<Frame> {
  const path = socketPath(home, id);
  if (!existsSync(path))
    throw new AirlockError(
      'BAD_STATE',
      `session ${id} is not running`,
      'list sessions with `airlock sessions`; start one with `airlock session start`',
    );
  return new Promise((res, rej) => {
    const sock = createConnection(path);
    let last: Frame | null = null;
    sock.once('error', (e) =>
      rej(
        new AirlockError(
          'BAD_STATE',
          `session ${id} is not reachable (${(e as NodeJS.ErrnoException).code}); its supervisor may have died`,
          'see `airlock sessions`',
        ),
      ),
    );
    sock.on('connect', () => {
      send(sock, frame);
      if (frame.t === 'exec' && io?.stdin) {
        io.stdin.on('data', (d: Buffer) => send(sock, { t: 'in', d: Buffer.from(d).toString('base64') }));
        io.stdin.on('end', () => send(sock, { t: 'eof' }));
      } else if (frame.t === 'exec') send(sock, { t: 'eof' });
    });
    frames(sock, (g) => {
      if (g.t === 'out') io?.stdout?.write(Buffer.from(g.d, 'base64'));
      else if (g.t === 'err') io?.stderr?.write(Buffer.from(g.d, 'base64'));
      else last = g;
    });
    sock.on('close', () => {
      // stop forwarding stdin: an open pipe must not keep the client alive after the command ended
      const input = io?.stdin as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
      input?.removeAllListeners('data');
      input?.destroy?.();
      if (!last) rej(new AirlockError('BAD_STATE', `session ${id} closed the connection`, 'see `airlock sessions`'));
      else if (last.t === 'error') rej(new AirlockError(last.kind as never, last.message, last.hint));
      else res(last);
    });
  });
}
