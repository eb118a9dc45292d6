import { createReadStream, fstatSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { isatty, ReadStream as TtyReadStream, WriteStream as TtyWriteStream } from 'node:tty';

// Node creates process.stdin/stdout/stderr once, at first use, for whatever 0/1/2 were then,
// and some of its own modules use them while they load (importing `node:process` from ESM reads
// every property of process; `node:util` reads process.stderr for its colours). A spare has
// loaded those modules long before it receives the caller's descriptors, so its streams are for
// /dev/null. After the descriptors are on 0/1/2, these getters replace Node's: made at first use
// from the new descriptors, the way Node makes them (lib/internal/bootstrap/switches/
// is_main_thread.js, Node 24), so a terminal is a tty.WriteStream with isTTY, a pipe a socket.

type Kind = 'TTY' | 'FILE' | 'PIPE' | 'OTHER';

/** What libuv's uv_guess_handle would say (Node's guessHandleType is internal). */
function kindOf(fd: number): Kind {
  if (isatty(fd)) return 'TTY';
  try {
    const st = fstatSync(fd);
    if (st.isFile() || st.isCharacterDevice()) return 'FILE';
    if (st.isFIFO() || st.isSocket()) return 'PIPE';
  } catch {
    // closed: Node would give a stream that drops everything
  }
  return 'OTHER';
}

function writable(fd: number): NodeJS.WriteStream {
  let stream: Writable;
  switch (kindOf(fd)) {
    case 'TTY':
      stream = new TtyWriteStream(fd);
      process.on('SIGWINCH', () => (stream as unknown as { _refreshSize(): void })._refreshSize());
      break;
    case 'FILE': // Node's SyncWriteStream: every write is done before write() returns
      stream = new Writable({
        write(chunk: Buffer, _enc, cb) {
          try {
            for (let off = 0; off < chunk.length;) off += writeSync(fd, chunk, off);
            cb();
          } catch (e) {
            cb(e as Error);
          }
        },
      });
      break;
    case 'PIPE':
      stream = new Socket({ fd, readable: false, writable: true });
      break;
    default:
      stream = new Writable({ write: (_c, _e, cb) => cb() });
  }
  // as Node's: the descriptor is never closed by destroying the stream
  const s = stream as Writable & { fd: number; _isStdio: boolean; destroySoon: () => void };
  s.fd = fd;
  s._isStdio = true;
  s.destroySoon = () => void s.destroy();
  s._destroy = (err, cb) => cb(err);
  return s as unknown as NodeJS.WriteStream;
}

function readable(): NodeJS.ReadStream {
  let stream: Readable;
  switch (kindOf(0)) {
    case 'TTY':
      stream = new TtyReadStream(0);
      break;
    case 'FILE':
      stream = createReadStream('', { fd: 0, autoClose: false });
      break;
    case 'PIPE': {
      const sock = new Socket({ fd: 0, readable: true, writable: false, manualStart: true } as never);
      (sock as unknown as { _writableState: { ended: boolean } })._writableState.ended = true;
      stream = sock;
      break;
    }
    default:
      stream = new Readable({ read() {} });
      stream.push(null);
  }
  (stream as unknown as { fd: number }).fd = 0;
  pauseHandleWhenPaused(stream);
  return stream as unknown as NodeJS.ReadStream;
}

/** As Node's stdin: not reading until someone reads, and back to not reading when paused. */
function pauseHandleWhenPaused(stream: Readable): void {
  type Handle = { reading: boolean; readStop?(): void };
  const inner = stream as unknown as { _handle?: Handle | null; _readableState: { reading: boolean } };
  const stop = (h: Handle) => {
    inner._readableState.reading = false;
    h.reading = false;
    h.readStop!();
  };
  if (inner._handle?.readStop) stop(inner._handle);
  stream.on('pause', () =>
    process.nextTick(() => {
      const h = inner._handle;
      if (h?.readStop && h.reading && !stream.readableFlowing) stop(h);
    }),
  );
}

/** Makes process.stdin/stdout/stderr new streams for what 0/1/2 are now, each made at first use. */
export function rebindStdio(): void {
  const lazy = <T>(name: 'stdin' | 'stdout' | 'stderr', make: () => T) => {
    let made: T | undefined;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: true,
      get: () => (made ??= make()),
    });
  };
  lazy('stdin', readable);
  lazy('stdout', () => writable(1));
  lazy('stderr', () => writable(2));
}
