import { createServer, type Socket } from 'node:net';
import { rmSync, chmodSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { AirlockError } from '../common/index.ts';
import { Session, type OpenSessionOptions } from './session.ts';
import { frames, send, socketPath, type Frame } from './client.ts';

// A long-running session for agent frameworks that call tools one at a time: a detached
// supervisor process holds the Session and serves `airlock exec` / `session stop` over a
// unix socket in Airlock's data dir (mode 0700, never mounted into a sandbox).
// Protocol (client.ts): newline-delimited JSON frames; byte payloads in base64.

function redactedStream(stream: NodeJS.ReadableStream | null, emit: (b: Buffer) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  let pending = '';
  const decoder = new StringDecoder('utf8'); // a character split across two reads stays whole
  let chain: Promise<void> = Promise.resolve();
  const flush = (text: string) => {
    chain = chain.then(async () => {
      const { redactText } = await import('../secrets/index.ts');
      let out: string;
      try {
        out = (await redactText(text)).text;
      } catch {
        out = '[airlock: output withheld: the secret scanner failed]\n';
      }
      emit(Buffer.from(out));
    });
  };
  stream.on('data', (d: Buffer) => {
    pending += decoder.write(d);
    const cut = pending.length > 65536 ? pending.length : pending.lastIndexOf('\n') + 1;
    if (cut > 0) {
      flush(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
  });
  return new Promise((res) =>
    stream.on('end', () => {
      pending += decoder.end();
      if (pending) flush(pending);
      pending = '';
      void chain.then(res);
    }),
  );
}

/** A client's stdin frames: queued until the command's exec handle exists, then fed to it. */
interface ClientInput {
  queue: Frame[];
  sink: ((f: Frame) => void) | null;
}

/** Runs one `exec` frame: stdin from the client, redacted output and the exit status back to it. */
async function execForClient(
  session: Session,
  sock: Socket,
  frame: Extract<Frame, { t: 'exec' }>,
  input: ClientInput,
  finished: () => void,
): Promise<void> {
  const h = await session.exec({
    argv: frame.argv,
    cwd: frame.cwd,
    env: frame.env,
    stdio: 'pipe',
    via: 'exec',
  });
  // Output leaves the sandbox redacted, a line at a time (secrets never span a
  // line in practice; a long line is cut at 64 KiB).
  const outDone = redactedStream(h.stdout, (b) => send(sock, { t: 'out', d: b.toString('base64') }));
  const errDone = redactedStream(h.stderr, (b) => send(sock, { t: 'err', d: b.toString('base64') }));
  input.sink = (g) => {
    if (g.t === 'in') h.stdin?.write(Buffer.from(g.d, 'base64'));
    else if (g.t === 'eof') h.stdin?.end();
  };
  for (const g of input.queue.splice(0)) input.sink(g);
  sock.on('close', () => h.kill('SIGKILL'));
  const r = await h.done;
  await Promise.all([outDone, errDone]);
  finished();
  send(sock, { t: 'exit', status: r.status });
  sock.end();
}

/** Runs inside the detached supervisor process. */
export async function superviseSession(
  opts: OpenSessionOptions,
  ready: (id: string | null, err?: AirlockError) => void,
): Promise<void> {
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
    const input: ClientInput = { queue: [], sink: null };
    inputs.set(sock, input);
    frames(sock, (f) => {
      if (f.t === 'in' || f.t === 'eof') {
        if (input.sink) input.sink(f);
        else input.queue.push(f);
        return;
      }
      void handle(sock, f);
    });
  });
  const inputs = new WeakMap<Socket, ClientInput>();
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
        case 'exec':
          running++;
          return await execForClient(session, sock, frame, inputs.get(sock)!, () => running--);
        case 'stop':
          return await stopAndExit(frame.reason ?? 'stopped by user', sock);
        case 'kill':
          return await stopAndExit(`killed: ${frame.reason ?? 'by user'}`, sock);
        case 'pause':
          send(sock, { t: 'ok', data: { paused: session.pause('requested by user') } });
          sock.end();
          return;
        case 'resume': {
          // through the detector when it paused the session, so its state and record agree
          const d = session.layerState.get('detector') as
            { paused(): boolean; resume(by: string): Promise<void> } | undefined;
          const by = frame.by ?? process.env.USER ?? 'unknown';
          if (d?.paused()) {
            await d.resume(by);
            send(sock, { t: 'ok', data: { resumed: true } });
          } else send(sock, { t: 'ok', data: { resumed: session.resume(by) } });
          sock.end();
          return;
        }
        case 'status':
          send(sock, { t: 'ok', data: { id: session.id, state: session.state, running } });
          sock.end();
          return;
        default:
          return;
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
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const)
    process.on(sig, () => void stopAndExit(`interrupted by ${sig} (to the session supervisor)`));
  ready(session.id);
}
