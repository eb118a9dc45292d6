import { createServer, createConnection, type Socket } from 'node:net';
import { existsSync, rmSync, chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { AirlockError, ensureHome } from '../common/index.ts';
import { Session, type OpenSessionOptions } from './session.ts';

// A long-running session for agent frameworks that call tools one at a time: a detached
// supervisor process holds the Session and serves `airlock exec` / `session stop` over a
// unix socket in Airlock's data dir (mode 0700, never mounted into a sandbox).
// Protocol: newline-delimited JSON frames; byte payloads in base64.

export type Frame =
  | { t: 'exec'; argv: string[]; cwd?: string; env?: Record<string, string> }
  | { t: 'in'; d: string } | { t: 'eof' }
  | { t: 'out'; d: string } | { t: 'err'; d: string }
  | { t: 'exit'; status: number }
  | { t: 'stop'; reason?: string } | { t: 'stopped'; result: unknown }
  | { t: 'pause' } | { t: 'resume'; by?: string } | { t: 'kill'; reason?: string } | { t: 'status' }
  | { t: 'ok'; data?: unknown } | { t: 'error'; kind: string; message: string; hint?: string };

function redactedStream(stream: NodeJS.ReadableStream | null, emit: (b: Buffer) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  let pending = '';
  const decoder = new StringDecoder('utf8'); // a character split across two reads stays whole
  let chain: Promise<void> = Promise.resolve();
  const flush = (text: string) => {
    chain = chain.then(async () => {
      const { redactText } = await import('../secrets/index.ts');
      let out: string;
      try { out = (await redactText(text)).text; } catch { out = '[airlock: output withheld: the secret scanner failed]\n'; }
      emit(Buffer.from(out));
    });
  };
  stream.on('data', (d: Buffer) => {
    pending += decoder.write(d);
    const cut = pending.length > 65536 ? pending.length : pending.lastIndexOf('\n') + 1;
    if (cut > 0) { flush(pending.slice(0, cut)); pending = pending.slice(cut); }
  });
  return new Promise((res) => stream.on('end', () => { pending += decoder.end(); if (pending) flush(pending); pending = ''; void chain.then(res); }));
}

export function socketPath(home: string, id: string): string {
  return join(home, 'run', `${id}.sock`);
}

function send(sock: Socket, f: Frame): void {
  if (!sock.destroyed) sock.write(JSON.stringify(f) + '\n');
}

function frames(sock: Socket, on: (f: Frame) => void): void {
  let buf = '';
  const decoder = new StringDecoder('utf8'); // a character split across two reads stays whole
  sock.on('data', (d: Buffer) => {
    buf += decoder.write(d);
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      if (!line) continue;
      try { on(JSON.parse(line) as Frame); } catch { send(sock, { t: 'error', kind: 'USAGE', message: 'malformed frame' }); }
    }
  });
}

/** Runs inside the detached supervisor process. */
export async function superviseSession(opts: OpenSessionOptions, ready: (id: string | null, err?: AirlockError) => void): Promise<void> {
  let session: Session;
  try {
    session = await Session.open(opts);
  } catch (e) {
    ready(null, e instanceof AirlockError ? e : new AirlockError('INTERNAL', String(e)));
    return;
  }
  const path = socketPath(session.home.root, session.id);
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    // stdin frames can arrive before the command has started (policy checks and asks are
    // async): queue them per connection until the exec handle exists.
    const input: { queue: Frame[]; sink: ((f: Frame) => void) | null } = { queue: [], sink: null };
    inputs.set(sock, input);
    frames(sock, (f) => {
      if (f.t === 'in' || f.t === 'eof') { if (input.sink) input.sink(f); else input.queue.push(f); return; }
      void handle(sock, f);
    });
  });
  const inputs = new WeakMap<Socket, { queue: Frame[]; sink: ((f: Frame) => void) | null }>();
  let running = 0;
  const stopAndExit = async (reason: string, sock?: Socket) => {
    const r = await session.stop(reason);
    if (sock) send(sock, { t: 'stopped', result: r });
    server.close();
    rmSync(path, { force: true });
    setTimeout(() => process.exit(0), 50).unref();
  };
  const handle = async (sock: Socket, frame: Frame) => {
    try {
      switch (frame.t) {
        case 'exec': {
          running++;
          const h = await session.exec({ argv: frame.argv, cwd: frame.cwd, env: frame.env, stdio: 'pipe', via: 'exec' });
          // Output leaves the sandbox redacted, a line at a time (secrets never span a
          // line in practice; a long line is cut at 64 KiB).
          const outDone = redactedStream(h.stdout, (b) => send(sock, { t: 'out', d: b.toString('base64') }));
          const errDone = redactedStream(h.stderr, (b) => send(sock, { t: 'err', d: b.toString('base64') }));
          const input = inputs.get(sock)!;
          input.sink = (g) => {
            if (g.t === 'in') h.stdin?.write(Buffer.from(g.d, 'base64'));
            else if (g.t === 'eof') h.stdin?.end();
          };
          for (const g of input.queue.splice(0)) input.sink(g);
          sock.on('close', () => h.kill('SIGKILL'));
          const r = await h.done;
          await Promise.all([outDone, errDone]);
          running--;
          send(sock, { t: 'exit', status: r.status });
          sock.end();
          return;
        }
        case 'stop': return await stopAndExit(frame.reason ?? 'stopped by user', sock);
        case 'kill': return await stopAndExit(`killed: ${frame.reason ?? 'by user'}`, sock);
        case 'pause': send(sock, { t: 'ok', data: { paused: session.pause('requested by user') } }); sock.end(); return;
        case 'resume': {
          // through the detector when it paused the session, so its state and record agree
          const d = session.layerState.get('detector') as { paused(): boolean; resume(by: string): Promise<void> } | undefined;
          const by = frame.by ?? process.env.USER ?? 'unknown';
          if (d?.paused()) { await d.resume(by); send(sock, { t: 'ok', data: { resumed: true } }); } else send(sock, { t: 'ok', data: { resumed: session.resume(by) } });
          sock.end();
          return;
        }
        case 'status': send(sock, { t: 'ok', data: { id: session.id, state: session.state, running } }); sock.end(); return;
        default: return;
      }
    } catch (e) {
      const ae = e instanceof AirlockError ? e : new AirlockError('INTERNAL', String(e));
      send(sock, { t: 'error', kind: ae.kind, message: ae.message, hint: ae.hint });
      sock.end();
    }
  };
  await new Promise<void>((res) => server.listen(path, res));
  chmodSync(path, 0o600);
  void session.limitHit.then(() => stopAndExit('limit reached'));
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => void stopAndExit(`interrupted by ${sig} (to the session supervisor)`));
  ready(session.id);
}

/** Client: starts a detached supervisor and waits until the session is up. */
export async function startDetached(opts: OpenSessionOptions): Promise<string> {
  const home = ensureHome(opts.home ?? process.env.AIRLOCK_HOME ?? undefined);
  const entry = fileURLToPath(new URL('../cli/run.ts', import.meta.url));
  const logPath = join(home.run, `supervisor-${process.pid}-${Date.now()}.log`);
  const { openSync } = await import('node:fs');
  const log = openSync(logPath, 'a', 0o600);
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', entry, '__supervise'], {
    detached: true, stdio: ['ignore', log, log, 'ipc'], env: process.env, cwd: process.cwd(),
  });
  child.send(opts);
  const msg = await new Promise<{ id: string | null; error?: { kind: string; message: string; hint?: string } }>((res) => {
    child.once('message', (m) => res(m as { id: string | null }));
    child.once('exit', (code) => res({ id: null, error: { kind: 'INTERNAL', message: `session supervisor exited (${code}); log: ${logPath}\n${safeRead(logPath)}` } }));
  });
  child.disconnect?.();
  child.unref();
  if (!msg.id) {
    const e = msg.error!;
    throw new AirlockError(e.kind as never, e.message, e.hint);
  }
  return msg.id;
}

function safeRead(p: string): string { try { return readFileSync(p, 'utf8').slice(-2000); } catch { return ''; } }

/** Client: one request/response exchange with a running session. */
export async function request(home: string, id: string, f: Frame, io?: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream }): Promise<Frame> {
  const path = socketPath(home, id);
  if (!existsSync(path)) throw new AirlockError('BAD_STATE', `session ${id} is not running`, 'list sessions with `airlock sessions`; start one with `airlock session start`');
  return new Promise((res, rej) => {
    const sock = createConnection(path);
    let last: Frame | null = null;
    sock.once('error', (e) => rej(new AirlockError('BAD_STATE', `session ${id} is not reachable (${(e as NodeJS.ErrnoException).code}); its supervisor may have died`, 'see `airlock sessions`')));
    sock.on('connect', () => {
      send(sock, f);
      if (f.t === 'exec' && io?.stdin) {
        io.stdin.on('data', (d: Buffer) => send(sock, { t: 'in', d: Buffer.from(d).toString('base64') }));
        io.stdin.on('end', () => send(sock, { t: 'eof' }));
      } else if (f.t === 'exec') send(sock, { t: 'eof' });
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
