import type { Socket } from 'node:net';
import { decideAndResolve } from './names.ts';
import { normalizeHost, HostError } from './host.ts';
import { Tracked, type Ctx } from './context.ts';
import { runTunnel } from './http.ts';
import { isIntercepted } from './intercept.ts';

// SOCKS5 (RFC 1928), CONNECT only, no authentication. Domain names (socks5h) are
// resolved by the gateway like every other name; IP address types are IP literals.
// Refusals use the matching reply code and are recorded.

export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

function reply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

class Reader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  private readonly socket: Socket;
  private readonly onData = (d: Buffer) => {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > 1024) this.socket.pause();
    this.waiter?.();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.waiter?.();
  };
  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.once('end', this.onEnd);
    socket.once('close', this.onEnd);
  }
  async take(n: number, deadline: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error('truncated handshake');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('handshake timed out');
      this.socket.resume();
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiter = () => {
          clearTimeout(t);
          res();
        };
      });
      this.waiter = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.pause();
    return this.buf;
  }
}

function errnoToReply(code: string | undefined): number {
  switch (code) {
    case 'ECONNREFUSED':
      return SOCKS_REPLY.connectionRefused;
    case 'ENETUNREACH':
      return SOCKS_REPLY.networkUnreachable;
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
      return SOCKS_REPLY.hostUnreachable;
    default:
      return SOCKS_REPLY.generalFailure;
  }
}

/** The request's destination address (IPv4, IPv6 or a domain name); null for an unknown address type (its port drained). */
async function readSocksAddress(reader: Reader, atyp: number, deadline: number): Promise<string | null> {
  if (atyp === 0x01) return [...(await reader.take(4, deadline))].join('.');
  if (atyp === 0x04) {
    const b = await reader.take(16, deadline);
    return Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
  }
  if (atyp === 0x03) {
    const [len] = await reader.take(1, deadline);
    if (!len) throw new Error('empty domain name');
    return (await reader.take(len, deadline)).toString('latin1');
  }
  await reader.take(2, deadline).catch(() => undefined);
  return null;
}

export async function onSocks(ctx: Ctx, client: Socket): Promise<void> {
  const tracked = new Tracked(ctx, { protocol: 'socks5' });
  ctx.stats.requests++;
  const reader = new Reader(client);
  const deadline = Date.now() + ctx.timeouts.handshakeMs;
  const refuse = (code: number, rule: string, reason: string) => {
    reader.detach();
    tracked.status = `socks-${code}`;
    tracked.deny(rule, reason);
    if (!client.destroyed) client.end(reply(code));
    setTimeout(() => client.destroy(), 1000).unref();
  };
  let stage = 'greeting';
  try {
    const [ver, nmethods] = await reader.take(2, deadline);
    if (ver !== 0x05) throw new Error(`not SOCKS5 (version ${ver})`);
    if (nmethods === 0) throw new Error('no authentication methods offered');
    const methods = await reader.take(nmethods!, deadline);
    if (!methods.includes(0x00)) {
      reader.detach();
      tracked.status = 'socks-no-acceptable-method';
      tracked.deny('builtin.bad-request', 'SOCKS5 client offers no "no authentication" method');
      client.end(Buffer.from([0x05, 0xff]));
      return;
    }
    client.write(Buffer.from([0x05, 0x00]));
    stage = 'request';
    const [v2, cmd, rsv, atyp] = await reader.take(4, deadline);
    if (v2 !== 0x05 || rsv !== 0x00) throw new Error('bad SOCKS5 request header');
    const host = await readSocksAddress(reader, atyp!, deadline);
    if (host === null)
      return refuse(
        SOCKS_REPLY.addressTypeNotSupported,
        'builtin.bad-target',
        `SOCKS5 address type ${atyp} not supported`,
      );
    const port = (await reader.take(2, deadline)).readUInt16BE(0);
    let normal: string;
    try {
      normal = normalizeHost(host).host;
    } catch (e) {
      tracked.info.host = host.slice(0, 255);
      return refuse(SOCKS_REPLY.notAllowed, 'builtin.bad-target', e instanceof HostError ? e.message : 'bad host');
    }
    Object.assign(tracked.info, {
      host: normal,
      port,
      method: cmd === 1 ? 'CONNECT' : cmd === 2 ? 'BIND' : cmd === 3 ? 'UDP ASSOCIATE' : `cmd-${cmd}`,
    });
    if (cmd !== 0x01)
      return refuse(
        SOCKS_REPLY.commandNotSupported,
        'builtin.socks-command',
        `SOCKS5 ${tracked.info.method} is not supported (CONNECT only; no UDP leaves the sandbox)`,
      );
    if (port === 0) return refuse(SOCKS_REPLY.notAllowed, 'builtin.bad-target', 'port 0');
    const hit = ctx.limits.admit();
    if (hit) return refuse(SOCKS_REPLY.notAllowed, hit.rule, hit.reason);
    const d = await decideAndResolve(ctx, tracked, {
      host: normal,
      port,
      intercepted: isIntercepted(ctx, normal),
      tunnel: true,
    });
    Object.assign(tracked.info, { address: d.address, range: d.range });
    if (d.action !== 'allow' || !d.address) {
      return refuse(
        d.rule === 'builtin.resolve-failed' ? SOCKS_REPLY.hostUnreachable : SOCKS_REPLY.notAllowed,
        d.rule,
        d.reason,
      );
    }
    const head = reader.detach();
    await runTunnel(ctx, client, head, tracked, d, {
      ready: () => client.write(reply(SOCKS_REPLY.succeeded)),
      failed: (why, code) => {
        tracked.status = `socks-${errnoToReply(code)}`;
        client.end(reply(errnoToReply(code)));
        void why;
      },
      auditFailed: (why) => refuse(SOCKS_REPLY.generalFailure, 'builtin.audit-failed', why),
    });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    reader.detach();
    tracked.status = stage === 'greeting' ? 'socks-bad-greeting' : `socks-${SOCKS_REPLY.generalFailure}`;
    tracked.deny(why.includes('timed out') ? 'builtin.timeout' : 'builtin.bad-request', `SOCKS5 ${stage}: ${why}`);
    if (!client.destroyed)
      client.end(stage === 'greeting' ? Buffer.from([0x05, 0xff]) : reply(SOCKS_REPLY.generalFailure));
    setTimeout(() => client.destroy(), 1000).unref();
  }
}
