import { connect, type Socket } from 'node:net';
import { decideTarget, type TargetDecision } from './decide-egress.ts';
import { normalizeHost } from './host.ts';
import { parseClientHello, MAX_HELLO_BYTES, TLS_ACCESS_DENIED_ALERT } from './sni.ts';
import { connectionRules, type Ctx, type Tracked } from './context.ts';
import type { Scheme } from './rules.ts';
import { hostMatches } from './rules.ts';
import { outboundScanner, recordHit } from './guard.ts';
import { socketFd } from './relay/index.ts';
import { TlsRecordStream } from './tlsrecords.ts';

// Byte pipes shared by CONNECT, SOCKS5 and transparent TLS: connect to exactly the
// checked address, read the client's first bytes (ClientHello → SNI), re-decide with the
// scheme now known, then copy both ways, counting bytes against the session limits.

/**
 * Download fast path: an upstream socket opened with `relay` reads into one buffer of its
 * own (`onread`, RELAY_BUFFER bytes: fewer, larger reads and no allocation per chunk) and
 * hands each chunk to the tunnel's sink, which writes it to the client and stops reading
 * until that write is done (the buffer is reused by the next read). Bytes that arrive
 * before the tunnel is piped (a server speaking first) are copied and held.
 */
export const RELAY_BUFFER = 256 * 1024;
/** With the native relay, Node reads an upstream only until the tunnel is piped (a banner at most): a small buffer spares a 256 KiB allocation and GC work per connection. */
const EARLY_BUFFER = 16 * 1024;
interface Relay {
  sink: ((chunk: Buffer) => boolean) | null;
  pending: Buffer[];
}
const relays = new WeakMap<Socket, Relay>();

/** Upload side: bytes queued towards the upstream before the client is paused (fewer pause/resume cycles than the 16 KiB default). */
const UPSTREAM_WRITE_HWM = 256 * 1024;

export function connectUpstream(
  ctx: Ctx,
  address: string,
  port: number,
  opts: { relay?: boolean } = {},
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const r: Relay = { sink: null, pending: [] };
    const onread = opts.relay
      ? {
          buffer: Buffer.allocUnsafe(ctx.relay ? EARLY_BUFFER : RELAY_BUFFER),
          callback: (n: number, b: Uint8Array): boolean => {
            const chunk = Buffer.from(b.buffer, b.byteOffset, n);
            if (r.sink) return r.sink(chunk);
            r.pending.push(Buffer.from(chunk)); // a copy: the read buffer is reused
            return false;
          },
        }
      : undefined;
    // writableHighWaterMark is a stream.Duplex option net.Socket passes through (not in @types/node's NetConnectOpts)
    const s = connect({
      host: address,
      port,
      noDelay: true,
      allowHalfOpen: true,
      ...(onread ? { onread } : {}),
      ...({ writableHighWaterMark: UPSTREAM_WRITE_HWM } as object),
    });
    if (onread) relays.set(s, r);
    const t = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('upstream connect timed out'), { code: 'ETIMEDOUT' }));
    }, ctx.timeouts.connectMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      ctx.sockets.add(s);
      s.once('close', () => ctx.sockets.delete(s));
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      s.destroy();
      reject(e);
    });
  });
}

export interface Peeked {
  buf: Buffer;
  scheme: Scheme;
  sni: string | null;
  bad?: string;
  closed?: boolean;
}

/** Reads the client's first bytes until a ClientHello is complete, non-TLS data is seen, or peekMs passes. */
export function peekFirst(ctx: Ctx, client: Socket, head: Buffer): Promise<Peeked> {
  return new Promise((resolve) => {
    let buf = head;
    let settled = false;
    const done = (p: Peeked) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onEnd);
      client.pause();
      resolve(p);
    };
    const check = () => {
      if (!buf.length) return;
      const h = parseClientHello(buf);
      if (h.status === 'ok') done({ buf, scheme: 'https', sni: h.sni });
      else if (h.status === 'not-tls') {
        // plain HTTP inside a tunnel: classified http once its request line is complete
        const nl = buf.indexOf(0x0a);
        if (nl < 0 && buf.length < 8192 && /^[A-Z]/.test(String.fromCharCode(buf[0]!))) return;
        const line = buf.subarray(0, nl < 0 ? 0 : nl).toString('latin1');
        done({ buf, scheme: /^[A-Z][A-Z0-9_-]* \S+ HTTP\/1\.[01]\r?$/.test(line) ? 'http' : 'tcp', sni: null });
      } else if (h.status === 'bad') done({ buf, scheme: 'https', sni: null, bad: h.why });
      else if (buf.length > MAX_HELLO_BYTES) done({ buf, scheme: 'https', sni: null, bad: 'ClientHello too large' });
    };
    const onData = (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      check();
    };
    const onEnd = () =>
      done({
        buf,
        scheme: buf.length ? 'https' : 'tcp',
        sni: null,
        bad: buf.length ? 'client closed inside its ClientHello' : undefined,
        closed: true,
      });
    // a server-speaks-first protocol sends nothing: after peekMs it is raw tcp
    const timer = setTimeout(
      () =>
        done(
          buf.length
            ? { buf, scheme: 'https', sni: null, bad: 'ClientHello incomplete (timeout)' }
            : { buf, scheme: 'tcp', sni: null },
        ),
      ctx.timeouts.peekMs,
    );
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onEnd);
    client.resume();
    check();
  });
}

/** Second decision once the first bytes are known: scheme rules and SNI == target host. */
export function decideTunnel(
  ctx: Ctx,
  first: TargetDecision,
  peeked: Peeked,
  tracked?: Tracked,
): { action: 'allow' | 'deny'; rule: string; reason: string } {
  if (peeked.bad) return { action: 'deny', rule: 'builtin.bad-tls', reason: `malformed TLS: ${peeked.bad}` };
  if (peeked.scheme === 'https') {
    if (first.kind === 'ip') {
      if (peeked.sni !== null)
        return {
          action: 'deny',
          rule: 'builtin.sni-mismatch',
          reason: `SNI ${JSON.stringify(peeked.sni)} sent to the IP literal ${first.host}`,
        };
    } else {
      if (peeked.sni === null)
        return { action: 'deny', rule: 'builtin.sni-mismatch', reason: `no SNI in the ClientHello for ${first.host}` };
      let sni: string;
      try {
        sni = normalizeHost(peeked.sni).host;
      } catch {
        return {
          action: 'deny',
          rule: 'builtin.sni-mismatch',
          reason: `SNI ${JSON.stringify(peeked.sni)} is not a host name`,
        };
      }
      if (sni !== first.host)
        return {
          action: 'deny',
          rule: 'builtin.sni-mismatch',
          reason: `SNI ${sni} differs from the tunnel target ${first.host}`,
        };
    }
  }
  // outbound DLP inspects model-API requests inside intercepted TLS only: plain HTTP or raw
  // TCP in a tunnel to a model API would pass uninspected, so it is refused (unless DLP is off)
  if (peeked.scheme !== 'https' && ctx.dlp.mode !== 'off' && ctx.modelApis.some((x) => hostMatches(x, first.host))) {
    return {
      action: 'deny',
      rule: 'secrets.dlp.mode',
      reason: `${first.host} is a model API under outbound DLP: ${peeked.scheme} traffic cannot be inspected; use https`,
    };
  }
  // plain HTTP in a tunnel is parsed and decided per request (http.ts), like an intercepted host
  const intercepted =
    peeked.scheme === 'http' || (peeked.scheme === 'https' && ctx.intercept.some((x) => hostMatches(x, first.host)));
  const q = { host: first.host, port: first.port, scheme: peeked.scheme, intercepted, tunnel: true };
  if (tracked) tracked.decided = q;
  const d = decideTarget(connectionRules(ctx, tracked), q);
  return { action: d.action === 'allow' ? 'allow' : 'deny', rule: d.rule, reason: d.reason };
}

/** Refuses inside a tunnel: a TLS alert when the client spoke TLS, then close. */
export function refuseInTunnel(client: Socket, tls: boolean): void {
  if (tls && !client.destroyed) client.end(TLS_ACCESS_DENIED_ALERT);
  else client.end();
  setTimeout(() => client.destroy(), 1000).unref();
}

/**
 * Copies both ways until either side closes; counts bytes; enforces the upload limit and
 * idle timeout. Downloads go through the native relay thread (ctx.relay) when the upstream
 * was opened with `relay` and both sockets expose descriptors; otherwise through Node.
 * Uploads always pass through here: they are counted against the session budget exactly
 * and, in the clear, scanned for placeholders and honeytokens.
 */
export function pipeBoth(ctx: Ctx, client: Socket, upstream: Socket, tracked: Tracked, first: Buffer): void {
  new TunnelPipe(ctx, client, upstream, tracked).run(first);
}

/** One tunnel's two byte streams and the checks on them (pipeBoth). */
class TunnelPipe {
  finished = false;
  /** Set while the native thread relays the download: stops it and waits for its last byte count. */
  stopNative: ((onFinal: () => void) => void) | null = null;
  /** Bytes in the clear (plain HTTP or raw TCP in a tunnel) are checked for placeholders and honeytokens; TLS bytes are ciphertext and not scanned. */
  scanner: ReturnType<typeof outboundScanner> | null = null;
  /** A tunnel granted for https carries TLS records: uploads always; downloads until the server's first application data (then the native relay, if any, takes over). */
  tlsUp: TlsRecordStream | null = null;
  tlsDown: TlsRecordStream | null = null;
  readonly ctx: Ctx;
  readonly client: Socket;
  readonly upstream: Socket;
  readonly tracked: Tracked;
  readonly reader: Relay | undefined;

  constructor(ctx: Ctx, client: Socket, upstream: Socket, tracked: Tracked) {
    this.ctx = ctx;
    this.client = client;
    this.upstream = upstream;
    this.tracked = tracked;
    this.reader = relays.get(upstream);
  }

  run(first: Buffer): void {
    const { ctx, client, upstream, tracked } = this;
    if (client.destroyed) {
      this.finish('client gone');
      return;
    }
    const https = tracked.info.scheme === 'https';
    this.scanner = https ? null : outboundScanner(ctx);
    this.tlsUp = https ? new TlsRecordStream() : null;
    this.tlsDown = https ? new TlsRecordStream() : null;
    if (first.length) {
      if (!this.clean(first) || !this.up(first.length)) return;
      upstream.write(first);
    }
    client.on('data', (chunk: Buffer) => {
      if (!this.clean(chunk) || !this.up(chunk.length)) return;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    // https: the download starts in Node, where its TLS records are checked (see settled)
    if (this.tlsDown || !this.nativeDown()) this.nodeDown();
    client.on('end', () => upstream.end());
    client.on('close', () => this.finish());
    upstream.on('close', () => this.finish());
    client.on('error', (e) => this.finish(e.message));
    upstream.on('error', (e) => this.finish(`upstream: ${e.message}`));
    client.setTimeout(ctx.timeouts.idleMs, () => this.finish('idle timeout'));
    client.resume();
  }

  halt(then: () => void): void {
    this.client.destroy();
    this.upstream.destroy();
    if (this.stopNative) this.stopNative(then);
    else then();
  }

  finish(error?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.halt(() => this.tracked.finish(error ? { error } : undefined));
  }

  /** Counts an upload against the session budget; false (and the tunnel closed) when it is spent. */
  up(n: number): boolean {
    const { ctx, tracked } = this;
    tracked.bytesUp += n;
    ctx.stats.bytesUp += n;
    const hit = ctx.limits.upload(n);
    if (!hit) return true;
    tracked.severity = 'high';
    tracked.rule = hit.rule;
    tracked.decision = 'deny';
    tracked.reason = hit.reason;
    ctx.stats.denied++;
    this.finish('upload limit reached');
    return false;
  }

  down(n: number): void {
    this.tracked.bytesDown += n;
    this.ctx.stats.bytesDown += n;
  }

  notTls(direction: string, why: string): false {
    if (!this.finished) {
      this.finished = true;
      this.tracked.deny(
        'builtin.not-tls',
        `${direction}: ${why}; a tunnel granted for https carries TLS records only`,
        'medium',
      );
      this.halt(() => undefined);
    }
    return false;
  }

  tlsDownOk(chunk: Buffer): boolean {
    const bad = this.tlsDown?.push(chunk);
    return bad ? this.notTls('upstream to client', bad) : true;
  }

  /** Download validated far enough to leave the rest to the native relay. */
  settled(): boolean {
    return this.tlsDown !== null && (this.tlsDown.applicationData || this.tlsDown.bytes > 64 * 1024);
  }

  /** An upload chunk passes the TLS-record check and the placeholder/honeytoken scan. */
  clean(chunk: Buffer): boolean {
    const bad = this.tlsUp?.push(chunk);
    if (bad) return this.notTls('client to upstream', bad);
    const hit = this.scanner?.push(chunk);
    if (!hit) return true;
    if (!this.finished) {
      this.finished = true;
      recordHit(this.ctx, this.tracked, hit);
      this.halt(() => undefined);
    }
    return false;
  }

  /** The download relayed in Node: through the relay reader's sink when there is one, else by 'data' events. */
  nodeDown(): void {
    const { client, upstream, reader } = this;
    this.tracked.extra.relay = 'node';
    if (reader) {
      reader.sink = this.relaySink(reader);
      for (const chunk of reader.pending) {
        if (!this.tlsDownOk(chunk)) return;
        this.down(chunk.length);
        client.write(chunk);
      }
      reader.pending = [];
    } else {
      upstream.on('data', (chunk: Buffer) => {
        if (!this.tlsDownOk(chunk)) return;
        this.down(chunk.length);
        if (!client.write(chunk)) upstream.pause();
      });
      client.on('drain', () => upstream.resume());
    }
    upstream.on('end', () => client.end());
    upstream.resume();
  }

  /**
   * One write in flight at a time: a chunk is a view of the relay buffer, so the next read
   * waits until the kernel has taken this one (at once in the common case).
   */
  relaySink(reader: Relay): (chunk: Buffer) => boolean {
    const { ctx, client, upstream } = this;
    let waiting = 0;
    let seq = 0;
    return (chunk) => {
      if (!this.tlsDownOk(chunk)) return false;
      this.down(chunk.length);
      const mine = ++seq;
      const handOff = ctx.relay !== null && this.settled();
      client.write(chunk, () => {
        if (handOff) {
          this.tlsDown = null;
          if (!this.finished && !this.nativeDown()) this.nodeDown();
          return;
        }
        if (waiting === mine) {
          waiting = 0;
          if (!this.finished) upstream.resume();
        }
      });
      if (handOff) {
        reader.sink = null;
        return false;
      } // nothing more is read until the thread takes over
      if (client.writableLength === 0) return true;
      waiting = mine;
      return false;
    };
  }

  /** Hands the download to the native relay thread; false when it cannot take it. */
  nativeDown(): boolean {
    const { client, upstream, reader } = this;
    const src = socketFd(upstream);
    const dst = socketFd(client);
    if (!reader || !this.ctx.relay || src === null || dst === null) return false;
    upstream.pause(); // an `onread` socket stops reading at once: from here the relay thread reads it
    // bytes the server sent before the tunnel was piped go first, through the socket
    const early = reader.pending;
    reader.pending = [];
    reader.sink = null;
    if (!early.length) this.startNative(src, dst);
    else {
      const held = Buffer.concat(early);
      this.down(held.length);
      client.write(held, () => this.startNative(src, dst));
    }
    return true;
  }

  startNative(src: number, dst: number): void {
    const { ctx, client, tracked } = this;
    if (this.finished) return;
    try {
      this.stopNative = ctx.relay!.start(src, dst, {
        progress: (n) => {
          this.down(n);
          // the client socket sees no download traffic of its own: keep its idle timer fresh
          // (reports come at most every 200 ms per tunnel)
          client.setTimeout(ctx.timeouts.idleMs);
        },
        end: () => {
          this.stopNative = null;
          if (!this.finished) client.end();
        },
        error: (message) => {
          this.stopNative = null;
          this.finish(message);
        },
      });
      tracked.extra.relay = 'native';
    } catch (e) {
      tracked.extra.relayFallback = (e as Error).message; // e.g. descriptors exhausted: this tunnel relays in Node
      this.nodeDown();
    }
  }
}
