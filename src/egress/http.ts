import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TargetDecision } from './decide-egress.ts';
import { normalizeHost, splitAuthority, HostError, hostPort } from './host.ts';
import { Tracked, type Ctx } from './context.ts';
import { connectUpstream, peekFirst, decideTunnel, refuseInTunnel, pipeBoth } from './tunnel.ts';
import { interceptTunnel, isIntercepted, isModelApi } from './intercept.ts';
import { outboundScanner, requestText, textHit } from './guard.ts';
import { decideAndResolve } from './names.ts';
import { requestPath, type RequestPath } from './path.ts';
import type { Credential } from './broker.ts';
import {
  duplicatedHeader,
  forwardHeaders,
  headerObject,
  headerSafe,
  isEncoded,
  readWhole,
  refuse,
  relayResponse,
  scanWholeBody,
  refuseHit,
  refuseUnlessClean,
} from './exchange.ts';

// HTTP side of the gateway: absolute-URI requests (plain HTTP proxy), origin-form
// requests on the transparent port-80 listener (decided from Host), CONNECT tunnels, and
// the answer to malformed input. Every refusal is an HTTP status with X-Airlock-Rule and
// X-Airlock-Reason headers and a one-line body, and an audit event.

const SINGLE = ['host', 'content-length', 'transfer-encoding', 'proxy-authorization'];

export function refusalText(status: number, rule: string, reason: string, close = true): string {
  const body = `airlock egress: denied by ${rule}: ${reason}\n`;
  const phrase: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    408: 'Request Timeout',
    429: 'Too Many Requests',
    431: 'Request Header Fields Too Large',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  return `HTTP/1.1 ${status} ${phrase[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Airlock-Rule: ${headerSafe(rule)}\r\nX-Airlock-Reason: ${headerSafe(reason)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`;
}

function headerBytes(req: IncomingMessage): number {
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  for (const h of req.rawHeaders) n += h.length + 2;
  return n;
}

function admitOr(ctx: Ctx, res: ServerResponse, t: Tracked): boolean {
  const hit = ctx.limits.admit();
  if (!hit) return true;
  refuse(
    res,
    t,
    hit.rule === 'egress.limits.requestsPerMinute' ? 429 : 403,
    hit.rule,
    hit.reason,
    hit.rule === 'egress.limits.maxUploadBytes' ? 'high' : undefined,
  );
  return false;
}

type Target = { url: URL; port: number; origin: string } | { status: number; rule: string; reason: string };

/** The request target: an absolute URI (proxy), or origin-form on a transparent port or inside a plain-HTTP tunnel. */
function requestTarget(ctx: Ctx, req: IncomingMessage): Target {
  const rawUrl = req.url ?? '';
  const hostHeader = req.headers.host;
  const tport = ctx.transparentPort.get(req.socket);
  const tunnel = ctx.tunnelTarget.get(req.socket);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl)) {
    if (tport || tunnel)
      return {
        status: 400,
        rule: 'builtin.bad-request',
        reason: 'an absolute URI on a transparent port or inside a tunnel',
      };
    if (!/^http:\/\//i.test(rawUrl))
      return {
        status: 400,
        rule: 'builtin.bad-request',
        reason: `only http:// absolute URIs are proxied (use CONNECT for https): ${rawUrl.slice(0, 80)}`,
      };
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      return { status: 400, rule: 'builtin.bad-target', reason: `unparseable URL ${rawUrl.slice(0, 200)}` };
    }
    // userinfo hides the real host from a casual reader (allowed.com@evil.com): refuse it
    if (url.username || url.password || /^http:\/\/[^/?#]*@/i.test(rawUrl))
      return { status: 400, rule: 'builtin.bad-target', reason: 'userinfo in the request URI' };
    const slash = rawUrl.indexOf('/', 'http://'.length);
    const q = rawUrl.indexOf('?', 'http://'.length);
    const origin = slash >= 0 && (q < 0 || slash < q) ? rawUrl.slice(slash) : `/${q >= 0 ? rawUrl.slice(q) : ''}`;
    return { url, port: url.port ? Number(url.port) : 80, origin };
  }
  if ((tport || tunnel) && rawUrl.startsWith('/')) {
    if (!hostHeader) return { status: 400, rule: 'builtin.bad-request', reason: 'no Host header' };
    const port = tunnel ? tunnel.port : tport!;
    let url: URL;
    try {
      url = new URL(`http://${hostHeader}${rawUrl}`);
    } catch {
      return { status: 400, rule: 'builtin.bad-target', reason: `bad Host header ${hostHeader.slice(0, 200)}` };
    }
    if (url.username || url.password || (url.port && Number(url.port) !== port))
      return { status: 400, rule: 'builtin.host-mismatch', reason: `Host ${hostHeader} does not name port ${port}` };
    // on a transparent port or in a tunnel the connection's own port wins when Host names none
    return { url, port, origin: rawUrl };
  }
  return {
    status: 400,
    rule: 'builtin.bad-request',
    reason: 'not a proxy request: send an absolute URI (http://host/path) or CONNECT host:port',
  };
}

/** A plain-HTTP request's checked target. */
interface HttpTarget {
  url: URL;
  host: string;
  port: number;
  rp: RequestPath;
}
/** What goes upstream once the broker has had its say. */
interface Outbound {
  headers: Record<string, string | string[] | undefined>;
  path: string;
  injected: Credential[];
}

/** Absolute-URI proxy requests, origin-form requests on the transparent port-80 listener and inside plain-HTTP tunnels. */
export async function onRequest(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const tport = ctx.transparentPort.get(req.socket);
  const tunnel = ctx.tunnelTarget.get(req.socket);
  const tracked = new Tracked(ctx, {
    protocol: tport ? 'transparent-http' : tunnel ? 'tunnel-http' : 'http',
    method: req.method,
    scheme: 'http',
  });
  tracked.onceGrant = tunnel?.tunnel.onceGrant; // a request inside a tunnel allowed once rides its tunnel's grant
  ctx.stats.requests++;
  const target = checkedTarget(ctx, req, res, tracked);
  if (!target) return;
  const { host, port, rp } = target;
  if (!admitOr(ctx, res, tracked)) return;
  const decision = await decideAndResolve(ctx, tracked, {
    host,
    port,
    scheme: 'http',
    method: req.method,
    path: rp.match,
  });
  Object.assign(tracked.info, { address: decision.address, range: decision.range });
  if (decision.action !== 'allow' || !decision.address)
    return refuse(res, tracked, 403, decision.rule, decision.reason);
  // outbound DLP inspects model-API bodies inside intercepted TLS only: refuse plain HTTP rather than pass it uninspected
  if (ctx.dlp.mode !== 'off' && isModelApi(ctx, host))
    return refuse(
      res,
      tracked,
      403,
      'secrets.dlp.mode',
      `${host} is a model API under outbound DLP: plain-http requests cannot be inspected; use https`,
    );
  const outbound = brokered(ctx, req, res, tracked, target);
  if (!outbound) return;
  const leak = textHit(
    outbound.injected.length ? { ...ctx, broker: null } : ctx,
    requestText(req.url ?? '', req.rawHeaders),
    'url or headers',
  );
  if (leak) {
    return refuseHit(ctx, res, tracked, leak);
  }
  const scanner = outboundScanner(ctx, { host, port, method: req.method ?? 'GET', path: rp.match });
  try {
    tracked.open(decision.rule, decision.reason);
  } catch (e) {
    return refuse(
      res,
      tracked,
      503,
      'builtin.audit-failed',
      `audit sink failed (${e instanceof Error ? e.message : e}); refused`,
    );
  }
  ctx.limits.active++;
  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      ctx.limits.active--;
    }
  };
  res.once('close', release);
  const first = headerBytes(req);
  tracked.bytesUp += first;
  ctx.stats.bytesUp += first;
  const early = ctx.limits.upload(first);
  if (early) return refuse(res, tracked, 403, early.rule, early.reason, 'high');
  const count = (n: number): boolean => {
    tracked.bytesUp += n;
    ctx.stats.bytesUp += n;
    const hit = ctx.limits.upload(n);
    if (hit) {
      refuse(res, tracked, 403, hit.rule, hit.reason, 'high');
      req.socket.destroy();
      return false;
    }
    return true;
  };
  // an encoded (gzip…) body would hide placeholders and honeytokens from the streaming
  // scanner: it is read whole (bounded), scanned decoded, and sent as it came
  let buffered: Buffer | null = null;
  if (scanner && isEncoded(req.headers['content-encoding'])) {
    const whole = await readEncodedBody(ctx, req, res, tracked, scanner, count);
    if (!whole) return;
    buffered = whole;
    outbound.headers['content-length'] = String(buffered.length);
    delete outbound.headers['transfer-encoding'];
  }
  forwardRequest(ctx, req, res, tracked, { target, decision, outbound, scanner, buffered, count });
}

/**
 * The request's target, checked: no duplicated single headers, no request smuggling, a host
 * name, a path the upstream reads as decided, the tunnel's own target, a Host header that
 * agrees. Null when refused (the refusal is answered and recorded).
 */
function checkedTarget(ctx: Ctx, req: IncomingMessage, res: ServerResponse, tracked: Tracked): HttpTarget | null {
  const tunnel = ctx.tunnelTarget.get(req.socket);
  const no = (status: number, rule: string, reason: string): null => {
    refuse(res, tracked, status, rule, reason);
    return null;
  };
  const dup = duplicatedHeader(req.rawHeaders, SINGLE);
  if (dup) return no(400, 'builtin.bad-request', `duplicated ${dup} header`);
  if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] !== undefined) {
    return no(400, 'builtin.bad-request', 'both Content-Length and Transfer-Encoding');
  }
  const hostHeader = req.headers.host;
  const target = requestTarget(ctx, req);
  if ('status' in target) return no(target.status, target.rule, target.reason);
  const { url, port } = target;
  let host: string;
  try {
    host = normalizeHost(url.hostname).host;
  } catch (e) {
    return no(400, 'builtin.bad-target', e instanceof HostError ? e.message : 'bad host');
  }
  let rp: RequestPath;
  try {
    rp = requestPath(target.origin);
  } catch (e) {
    return no(
      400,
      'builtin.ambiguous-path',
      `${e instanceof Error ? e.message : e}: the upstream could read another path than the one decided`,
    );
  }
  Object.assign(tracked.info, { host, port, path: rp.match });
  // on a host-loopback listener the client may name the loopback by name
  const alias = (h: string) =>
    tunnel?.tunnel.info.protocol === 'host-loopback' && (h === 'localhost' || h === '127.0.0.1') ? tunnel.host : h;
  host = alias(host);
  if (tunnel && (host !== tunnel.host || port !== tunnel.port))
    return no(
      403,
      'builtin.host-mismatch',
      `Host ${hostPort(host, port)} differs from the tunnel target ${hostPort(tunnel.host, tunnel.port)}`,
    );
  if (!hostHeader) return no(400, 'builtin.host-mismatch', 'no Host header');
  try {
    const hh = splitAuthority(hostHeader, 80);
    const hn = alias(normalizeHost(hh.host).host);
    if (hn !== host || hh.port !== port)
      return no(
        403,
        'builtin.host-mismatch',
        `Host header ${hostPort(hn, hh.port)} differs from the request target ${hostPort(host, port)}`,
      );
  } catch (e) {
    return no(
      403,
      'builtin.host-mismatch',
      `Host header ${JSON.stringify(hostHeader.slice(0, 200))} is not a host (${e instanceof Error ? e.message : e})`,
    );
  }
  return { url, host, port, rp };
}

/**
 * Brokered credentials on plain HTTP: only to a destination the policy binds by host AND
 * port (e.g. an internal model gateway on http://host:8080); anywhere else the placeholder
 * is misuse. The real value is added here, never seen by the sandbox. Null when refused.
 */
function brokered(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  target: HttpTarget,
): Outbound | null {
  const outbound: Outbound = { headers: forwardHeaders(req.headers), path: target.rp.forward, injected: [] };
  if (!ctx.broker) return outbound;
  const r = ctx.broker.rewrite({
    host: target.host,
    port: target.port,
    method: req.method ?? 'GET',
    path: target.rp.match,
    rawHeaders: req.rawHeaders,
    url: target.rp.forward,
  });
  if ('misuse' in r) {
    refuseHit(ctx, res, tracked, { kind: 'placeholder', credential: r.misuse.credential, where: r.misuse.where });
    return null;
  }
  if (r.injected.length) {
    outbound.headers = headerObject(r.headers, req.headers.connection);
    outbound.path = r.url;
    outbound.injected = r.injected;
    tracked.extra.credentials = r.injected.map((x) => ({ name: x.name, fingerprint: x.fingerprint }));
    outbound.headers['accept-encoding'] = 'identity'; // so an echoed value can be scrubbed from the response
  }
  return outbound;
}

/** An encoded request body read whole (bounded) and scanned decoded; null when refused. */
async function readEncodedBody(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  scanner: NonNullable<ReturnType<typeof outboundScanner>>,
  count: (n: number) => boolean,
): Promise<Buffer | null> {
  const body = await readWhole(req, ctx.dlp.maxBytes, count);
  if (!body.ok) {
    if (!res.headersSent) refuse(res, tracked, 400, 'builtin.bad-request', 'client aborted the request body');
    return null;
  }
  if (body.over) {
    refuse(
      res,
      tracked,
      413,
      'builtin.encoded-body',
      `encoded request body larger than ${ctx.dlp.maxBytes} bytes cannot be inspected`,
      'medium',
    );
    return null;
  }
  const v = scanWholeBody(
    body.body,
    req.headers['content-encoding'],
    scanner,
    ctx.dlp.maxBytes,
    'builtin.encoded-body',
  );
  if (!refuseUnlessClean(ctx, res, tracked, v)) return null;
  return body.body;
}

interface Forward {
  target: HttpTarget;
  decision: TargetDecision;
  outbound: Outbound;
  scanner: ReturnType<typeof outboundScanner>;
  buffered: Buffer | null;
  count: (n: number) => boolean;
}

/** Sends the allowed request to exactly the checked address and relays the answer; the body is counted and scanned on its way. */
function forwardRequest(ctx: Ctx, req: IncomingMessage, res: ServerResponse, tracked: Tracked, fwd: Forward): void {
  const {
    target: { host, port, url },
    decision,
    outbound,
    scanner,
    buffered,
    count,
  } = fwd;
  const up = httpRequest({
    host: decision.address,
    port,
    method: req.method,
    path: outbound.path,
    setHost: false,
    headers: { ...outbound.headers, host: url.host },
    agent: false,
    timeout: ctx.timeouts.idleMs,
    lookup: undefined,
  });
  let finished = false;
  const fail = (status: number, rule: string, why: string) => {
    if (finished) return;
    finished = true;
    up.destroy();
    if (rule === decision.rule) {
      // allowed but the upstream failed: answer 502/504, keep the allow decision on record
      if (!res.headersSent)
        res.writeHead(status, {
          'content-type': 'text/plain; charset=utf-8',
          'x-airlock-rule': headerSafe(rule),
          'x-airlock-reason': headerSafe(why),
          connection: 'close',
        });
      res.end(`airlock egress: upstream ${hostPort(host, port)} failed: ${why}\n`);
      tracked.finish({ error: why, status });
    } else {
      refuse(res, tracked, status, rule, why, 'high');
      req.socket.destroy();
    }
  };
  if (buffered) up.end(buffered);
  else {
    req.on('data', (c: Buffer) => {
      if (finished) return;
      if (!count(c.length)) {
        finished = true;
        up.destroy();
        return;
      }
      const bad = scanner?.push(c);
      if (bad) {
        finished = true;
        up.destroy();
        refuseHit(ctx, res, tracked, bad);
        req.socket.destroy();
        return;
      }
      if (!up.write(c)) req.pause();
    });
    up.on('drain', () => req.resume());
    req.on('end', () => up.end());
  }
  req.on('error', () => fail(400, decision.rule, 'client aborted'));
  up.on('timeout', () => fail(504, decision.rule, 'upstream timed out'));
  up.on('error', (e) => fail(502, decision.rule, (e as NodeJS.ErrnoException).code ?? e.message));
  up.on('response', (ur) =>
    relayResponse(ctx, tracked, req.method ?? 'GET', ur, res, outbound.injected, {
      end: (status) => {
        if (!finished) {
          finished = true;
          tracked.finish({ status });
        }
      },
      error: (e) => fail(502, decision.rule, e.message),
    }),
  );
  res.once('close', () => {
    if (!finished) {
      finished = true;
      up.destroy();
      tracked.finish({ error: 'client closed' });
    }
  });
}

function writeRefusal(socket: Socket, status: number, rule: string, reason: string): void {
  if (socket.destroyed) return;
  socket.end(refusalText(status, rule, reason));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** CONNECT host:port. */
export async function onConnect(ctx: Ctx, req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
  const tracked = new Tracked(ctx, { protocol: 'connect', method: 'CONNECT' });
  ctx.stats.requests++;
  const deny = (status: number, rule: string, reason: string) => {
    tracked.status = status;
    tracked.deny(rule, reason);
    writeRefusal(client, status, rule, reason);
  };
  let target: { host: string; port: number };
  try {
    target = splitAuthority(req.url ?? '');
  } catch (e) {
    return deny(400, 'builtin.bad-target', `bad CONNECT target: ${e instanceof Error ? e.message : e}`);
  }
  let host: string;
  try {
    host = normalizeHost(target.host).host;
  } catch (e) {
    return deny(400, 'builtin.bad-target', `bad CONNECT target: ${e instanceof Error ? e.message : e}`);
  }
  Object.assign(tracked.info, { host, port: target.port });
  const dup = duplicatedHeader(req.rawHeaders, SINGLE);
  if (dup) return deny(400, 'builtin.bad-request', `duplicated ${dup} header`);
  if (req.headers.host !== undefined) {
    try {
      const hh = splitAuthority(req.headers.host, target.port);
      if (normalizeHost(hh.host).host !== host || hh.port !== target.port)
        return deny(
          403,
          'builtin.host-mismatch',
          `Host header ${req.headers.host.slice(0, 200)} differs from the CONNECT target ${hostPort(host, target.port)}`,
        );
    } catch {
      return deny(403, 'builtin.host-mismatch', 'Host header is not host:port');
    }
  }
  const hit = ctx.limits.admit();
  if (hit) {
    if (hit.rule === 'egress.limits.maxUploadBytes') tracked.severity = 'high';
    return deny(hit.rule === 'egress.limits.requestsPerMinute' ? 429 : 403, hit.rule, hit.reason);
  }
  const d = await decideAndResolve(ctx, tracked, {
    host,
    port: target.port,
    intercepted: isIntercepted(ctx, host),
    tunnel: true,
  });
  Object.assign(tracked.info, { address: d.address, range: d.range });
  if (d.action !== 'allow' || !d.address) return deny(403, d.rule, d.reason);
  await runTunnel(ctx, client, head, tracked, d, {
    ready: () => client.write('HTTP/1.1 200 Connection established\r\n\r\n'),
    failed: (why) => {
      tracked.status = 502;
      writeRefusal(client, 502, d.rule, `upstream ${hostPort(host, target.port)}: ${why}`);
    },
    auditFailed: (why) => deny(503, 'builtin.audit-failed', why),
  });
}

export interface TunnelHooks {
  /** Tell the client the tunnel is up (HTTP 200 / SOCKS success). */
  ready(): void;
  /** The upstream could not be reached (allowed, recorded as an error). */
  failed(why: string, code?: string): void;
  auditFailed(why: string): void;
}

/** Shared by CONNECT and SOCKS5 after the first decision allowed `d`. */
export async function runTunnel(
  ctx: Ctx,
  client: Socket,
  head: Buffer,
  tracked: Tracked,
  decision: TargetDecision,
  hooks: TunnelHooks,
): Promise<void> {
  try {
    tracked.open(decision.rule, decision.reason);
  } catch (e) {
    hooks.auditFailed(`audit sink failed (${e instanceof Error ? e.message : e}); refused`);
    return;
  }
  ctx.limits.active++;
  let upstream;
  try {
    // an upstream that may become intercepted TLS keeps plain reads (the TLS layer takes it over)
    upstream = await connectUpstream(ctx, decision.address!, decision.port, {
      relay: !isIntercepted(ctx, decision.host),
    });
  } catch (e) {
    ctx.limits.active--;
    const code = (e as NodeJS.ErrnoException).code;
    hooks.failed(code ?? (e as Error).message, code);
    tracked.finish({ error: code ?? (e as Error).message });
    return;
  }
  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      ctx.limits.active--;
    }
  };
  if (client.destroyed) {
    upstream.destroy();
    release();
    tracked.finish({ error: 'client gone' });
    return;
  }
  hooks.ready();
  const peeked = await peekFirst(ctx, client, head);
  tracked.info.scheme = peeked.scheme;
  const second = decideTunnel(ctx, decision, peeked, tracked);
  if (second.action !== 'allow') {
    upstream.destroy();
    release();
    tracked.deny(second.rule, second.reason);
    refuseInTunnel(client, peeked.scheme === 'https');
    return;
  }
  if (peeked.closed && !peeked.buf.length) {
    upstream.destroy();
    release();
    tracked.finish({ error: 'client closed before sending' });
    return;
  }
  if (peeked.scheme === 'https' && isIntercepted(ctx, decision.host)) {
    // the upstream TCP connection becomes the first upstream TLS connection
    await interceptTunnel(ctx, ctx.interceptServer!, client, peeked.buf, tracked, decision, upstream, release);
    return;
  }
  if (peeked.scheme === 'http') {
    // plain HTTP inside the tunnel: parsed and decided per request like proxied HTTP (method,
    // path, Host, brokered credentials, encoded bodies), each request on its own upstream
    upstream.destroy();
    release();
    handOverToHttp(ctx, client, peeked.buf, tracked, decision);
    return;
  }
  upstream.once('close', release);
  if (upstream.destroyed) release();
  pipeBoth(ctx, client, upstream, tracked, peeked.buf);
}

function handOverToHttp(ctx: Ctx, client: Socket, first: Buffer, t: Tracked, d: TargetDecision): void {
  t.extra.inspected = 'per-request';
  ctx.tunnelTarget.set(client, { host: d.host, port: d.port, tunnel: t });
  client.once('close', () => t.finish());
  client.setTimeout(ctx.timeouts.idleMs, () => client.destroy());
  if (first.length) client.unshift(first);
  ctx.httpServer!.emit('connection', client);
  client.resume();
}
