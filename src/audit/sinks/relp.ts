import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

// RELP (Reliable Event Logging Protocol, rsyslog's imrelp / librelp): every syslog message
// is a numbered transaction the receiver answers with "rsp 200 OK" once it has taken the
// message into its queue. That answer is the only acknowledgement a syslog receiver gives;
// plain RFC 6587/5425 TCP has none. Written here because npm has no maintained RELP client
// (the one package named "relp" is an unmaintained server-side parser, version 0.0.1), and
// the client side is small: frames "TXNR SP COMMAND SP DATALEN [SP DATA] LF".

const MAX_TXNR = 999_999_999;
const WINDOW = 128; // unanswered messages in flight, as librelp's client uses
const MAX_FRAME = 1 << 20;

export interface RelpTarget {
  host: string;
  port: number;
  tls?: ConnectionOptions;
  timeoutMs: number;
}

interface Frame {
  txnr: number;
  command: string;
  data: Buffer;
}

/** Incremental parser for RELP frames read from the receiver. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    for (;;) {
      const f = this.next();
      if (!f) return out;
      out.push(f);
    }
  }
  private next(): Frame | null {
    const b = this.buf;
    const s1 = b.indexOf(0x20);
    const s2 = s1 < 0 ? -1 : b.indexOf(0x20, s1 + 1);
    if (s2 < 0) {
      if (b.length > 64) throw new Error('RELP: unreadable frame header from the receiver');
      return null;
    }
    // DATALEN ends at SP (data follows) or LF (no data)
    let end = s2 + 1;
    while (end < b.length && b[end]! >= 0x30 && b[end]! <= 0x39) end++;
    if (end >= b.length) return null;
    const txnr = Number(b.subarray(0, s1).toString('latin1'));
    const command = b.subarray(s1 + 1, s2).toString('latin1');
    const len = Number(b.subarray(s2 + 1, end).toString('latin1'));
    if (!Number.isInteger(txnr) || !/^[a-z]{1,32}$/.test(command) || !Number.isInteger(len) || len > MAX_FRAME)
      throw new Error('RELP: malformed frame from the receiver');
    const dataStart = len > 0 ? end + 1 : end;
    if (b.length < dataStart + len + 1) return null;
    if (b[dataStart + len] !== 0x0a) throw new Error('RELP: frame without trailer from the receiver');
    const data = b.subarray(dataStart, dataStart + len);
    this.buf = b.subarray(dataStart + len + 1);
    return { txnr, command, data };
  }
}

function frame(txnr: number, command: string, data: string): Buffer {
  const body = Buffer.from(data, 'utf8');
  return Buffer.concat([
    Buffer.from(`${txnr} ${command} ${body.length}${body.length ? ' ' : ''}`, 'latin1'),
    body,
    Buffer.from('\n'),
  ]);
}

/** Error carrying how many leading messages the receiver did acknowledge before it failed. */
export class PartialDelivery extends Error {
  readonly acked: number;
  constructor(message: string, acked: number) {
    super(message);
    this.acked = acked;
  }
}

/**
 * One RELP session, kept open between batches. send() resolves when the receiver answered
 * "200" to every message, and otherwise throws PartialDelivery with the number of leading
 * messages it did answer: a connection closed cleanly, reset, or timed out mid-batch
 * acknowledges nothing more.
 */
export class RelpClient {
  private target: RelpTarget;
  private sock: Socket | null = null;
  private reader = new FrameReader();
  private txnr = 0;
  private waiters = new Map<number, (f: Frame) => void>();
  private failure: ((e: Error) => void) | null = null;

  constructor(target: RelpTarget) {
    this.target = target;
  }

  private nextTxnr(): number {
    this.txnr = this.txnr >= MAX_TXNR ? 1 : this.txnr + 1;
    return this.txnr;
  }

  private async open(signal: AbortSignal): Promise<Socket> {
    if (this.sock && !this.sock.destroyed) return this.sock;
    this.reader = new FrameReader();
    this.txnr = 0;
    const target = this.target;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const onAbort = () => {
        s.destroy();
        reject(new Error('aborted'));
      };
      const done = () => {
        signal.removeEventListener('abort', onAbort);
        s.off('error', onError);
        resolve(s);
      };
      const onError = (e: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      };
      const s: Socket = target.tls
        ? tlsConnect({ host: target.host, port: target.port, ...target.tls }, done)
        : netConnect({ host: target.host, port: target.port }, done);
      s.once('error', onError);
      s.setTimeout(target.timeoutMs, () =>
        s.destroy(new Error(`RELP ${target.host}:${target.port}: connect timed out`)),
      );
      signal.addEventListener('abort', onAbort, { once: true });
    });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.setTimeout(target.timeoutMs, () =>
      this.fail(new Error(`RELP ${target.host}:${target.port}: no answer for ${target.timeoutMs} ms`)),
    );
    sock.on('data', (b: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.reader.push(b);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const f of frames) {
        if (f.command === 'serverclose') {
          this.fail(new Error(`RELP ${target.host}:${target.port}: the receiver closed the session`));
          return;
        }
        const w = this.waiters.get(f.txnr);
        if (w) {
          this.waiters.delete(f.txnr);
          w(f);
        }
      }
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('end', () =>
      this.fail(
        new Error(
          `RELP ${target.host}:${target.port}: the receiver closed the connection (a close is not an acknowledgement)`,
        ),
      ),
    );
    sock.on('close', () => this.fail(new Error(`RELP ${target.host}:${target.port}: connection closed`)));
    const rsp = await this.request('open', 'relp_version=0\nrelp_software=airlock\ncommands=syslog', signal);
    const text = rsp.data.toString('utf8');
    if (!text.startsWith('200'))
      throw new Error(`RELP ${target.host}:${target.port}: session refused: ${text.slice(0, 200)}`);
    if (!/^commands=.*\bsyslog\b/m.test(text))
      throw new Error(`RELP ${target.host}:${target.port}: the receiver does not offer the syslog command`);
    return sock;
  }

  private fail(e: Error): void {
    const s = this.sock;
    this.sock = null;
    s?.destroy();
    const f = this.failure;
    this.failure = null;
    this.waiters.clear();
    f?.(e);
  }

  private request(command: string, data: string, signal: AbortSignal): Promise<Frame> {
    const txnr = this.nextTxnr();
    return new Promise<Frame>((resolve, reject) => {
      const onAbort = () => this.fail(new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.failure = (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      };
      this.waiters.set(txnr, (f) => {
        this.failure = null;
        signal.removeEventListener('abort', onAbort);
        resolve(f);
      });
      this.sock!.write(frame(txnr, command, data));
    });
  }

  /** Sends every message; resolves when all were answered 200 (in order of acknowledgement). */
  async send(messages: string[], signal: AbortSignal): Promise<void> {
    let acked = 0;
    try {
      if (signal.aborted) throw new Error('aborted');
      const sock = await this.open(signal);
      const results: boolean[] = new Array(messages.length).fill(false);
      await new Promise<void>((resolve, reject) => {
        let next = 0;
        let inFlight = 0;
        const onAbort = () => this.fail(new Error('aborted'));
        signal.addEventListener('abort', onAbort, { once: true });
        this.failure = (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        };
        const pump = () => {
          while (next < messages.length && inFlight < WINDOW) {
            const i = next++;
            const txnr = this.nextTxnr();
            inFlight++;
            this.waiters.set(txnr, (f) => {
              inFlight--;
              const status = f.data.toString('utf8');
              if (!status.startsWith('200')) {
                this.fail(new Error(`RELP: message refused: ${status.slice(0, 200)}`));
                return;
              }
              results[i] = true;
              while (acked < results.length && results[acked]) acked++;
              if (acked === messages.length) {
                this.failure = null;
                signal.removeEventListener('abort', onAbort);
                resolve();
              } else pump();
            });
            sock.write(frame(txnr, 'syslog', messages[i]!));
          }
        };
        pump();
      });
    } catch (e) {
      throw new PartialDelivery((e as Error).message, acked);
    }
  }

  /** Closes the session politely (close + rsp) when it is idle; never waits long. */
  async close(): Promise<void> {
    const s = this.sock;
    if (!s || s.destroyed) return;
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), 1000);
    try {
      await this.request('close', '', ac.signal);
    } catch {
      /* closing anyway */
    } finally {
      clearTimeout(t);
    }
    this.fail(new Error('closed'));
  }
}
