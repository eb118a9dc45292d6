import { connect, type Socket } from 'node:net';
import { decideTarget, type TargetDecision } from './decide.ts';
import { normalizeHost } from './host.ts';
import { parseClientHello, MAX_HELLO_BYTES, TLS_ACCESS_DENIED_ALERT } from './sni.ts';
import type { Ctx, Tracked } from './context.ts';
import type { Scheme } from './rules.ts';
import { hostMatches } from './rules.ts';
import { outboundScanner, recordHit } from './guard.ts';

// Byte pipes shared by CONNECT, SOCKS5 and transparent TLS: connect to exactly the
// checked address, read the client's first bytes (ClientHello → SNI), re-decide with the
// scheme now known, then copy both ways, counting bytes against the session limits.

export function connectUpstream(ctx: Ctx, address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: address, port, noDelay: true, allowHalfOpen: true });
    const t = setTimeout(() => { s.destroy(); reject(Object.assign(new Error('upstream connect timed out'), { code: 'ETIMEDOUT' })); }, ctx.timeouts.connectMs);
    s.once('connect', () => { clearTimeout(t); s.removeAllListeners('error'); ctx.sockets.add(s); s.once('close', () => ctx.sockets.delete(s)); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); s.destroy(); reject(e); });
  });
}

export interface Peeked { buf: Buffer; scheme: Scheme; sni: string | null; bad?: string; closed?: boolean }

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
      }
      else if (h.status === 'bad') done({ buf, scheme: 'https', sni: null, bad: h.why });
      else if (buf.length > MAX_HELLO_BYTES) done({ buf, scheme: 'https', sni: null, bad: 'ClientHello too large' });
    };
    const onData = (d: Buffer) => { buf = buf.length ? Buffer.concat([buf, d]) : d; check(); };
    const onEnd = () => done({ buf, scheme: buf.length ? 'https' : 'tcp', sni: null, bad: buf.length ? 'client closed inside its ClientHello' : undefined, closed: true });
    // a server-speaks-first protocol sends nothing: after peekMs it is raw tcp
    const timer = setTimeout(() => done(buf.length ? { buf, scheme: 'https', sni: null, bad: 'ClientHello incomplete (timeout)' } : { buf, scheme: 'tcp', sni: null }), ctx.timeouts.peekMs);
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onEnd);
    client.resume();
    check();
  });
}

/** Second decision once the first bytes are known: scheme rules and SNI == target host. */
export function decideTunnel(ctx: Ctx, first: TargetDecision, p: Peeked): { action: 'allow' | 'deny'; rule: string; reason: string } {
  if (p.bad) return { action: 'deny', rule: 'builtin.bad-tls', reason: `malformed TLS: ${p.bad}` };
  if (p.scheme === 'https') {
    if (first.kind === 'ip') {
      if (p.sni !== null) return { action: 'deny', rule: 'builtin.sni-mismatch', reason: `SNI ${JSON.stringify(p.sni)} sent to the IP literal ${first.host}` };
    } else {
      if (p.sni === null) return { action: 'deny', rule: 'builtin.sni-mismatch', reason: `no SNI in the ClientHello for ${first.host}` };
      let sni: string;
      try { sni = normalizeHost(p.sni).host; } catch { return { action: 'deny', rule: 'builtin.sni-mismatch', reason: `SNI ${JSON.stringify(p.sni)} is not a host name` }; }
      if (sni !== first.host) return { action: 'deny', rule: 'builtin.sni-mismatch', reason: `SNI ${sni} differs from the tunnel target ${first.host}` };
    }
  }
  const intercepted = p.scheme === 'https' && ctx.intercept.some((x) => hostMatches(x, first.host));
  const d = decideTarget(ctx.rules, { host: first.host, port: first.port, scheme: p.scheme, intercepted });
  return { action: d.action === 'allow' ? 'allow' : 'deny', rule: d.rule, reason: d.reason };
}

/** Refuses inside a tunnel: a TLS alert when the client spoke TLS, then close. */
export function refuseInTunnel(client: Socket, tls: boolean): void {
  if (tls && !client.destroyed) client.end(TLS_ACCESS_DENIED_ALERT);
  else client.end();
  setTimeout(() => client.destroy(), 1000).unref();
}

/** Copies both ways until either side closes; counts bytes; enforces the upload limit and idle timeout. */
export function pipeBoth(ctx: Ctx, client: Socket, upstream: Socket, t: Tracked, first: Buffer): void {
  let finished = false;
  const finish = (error?: string) => {
    if (finished) return;
    finished = true;
    client.destroy();
    upstream.destroy();
    t.finish(error ? { error } : undefined);
  };
  const up = (n: number): boolean => {
    t.bytesUp += n;
    ctx.stats.bytesUp += n;
    const hit = ctx.limits.upload(n);
    if (hit) {
      t.severity = 'high';
      t.rule = hit.rule;
      t.decision = 'deny';
      t.reason = hit.reason;
      ctx.stats.denied++;
      finish('upload limit reached');
      return false;
    }
    return true;
  };
  if (client.destroyed) { finish('client gone'); return; }
  // bytes in the clear (plain HTTP or raw TCP in a tunnel) are checked for placeholders and
  // honeytokens; TLS bytes are ciphertext and not scanned
  const scanner = t.info.scheme === 'https' ? null : outboundScanner(ctx);
  const clean = (d: Buffer): boolean => {
    const hit = scanner?.push(d);
    if (!hit) return true;
    if (!finished) { finished = true; recordHit(ctx, t, hit); client.destroy(); upstream.destroy(); }
    return false;
  };
  if (first.length) {
    if (!clean(first) || !up(first.length)) return;
    upstream.write(first);
  }
  client.on('data', (d: Buffer) => {
    if (!clean(d) || !up(d.length)) return;
    if (!upstream.write(d)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  upstream.on('data', (d: Buffer) => {
    t.bytesDown += d.length;
    ctx.stats.bytesDown += d.length;
    if (!client.write(d)) upstream.pause();
  });
  client.on('drain', () => upstream.resume());
  client.on('end', () => upstream.end());
  upstream.on('end', () => client.end());
  client.on('close', () => finish());
  upstream.on('close', () => finish());
  client.on('error', (e) => finish(e.message));
  upstream.on('error', (e) => finish(`upstream: ${e.message}`));
  client.setTimeout(ctx.timeouts.idleMs, () => finish('idle timeout'));
  client.resume();
  upstream.resume();
}
