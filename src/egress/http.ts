import { request as httpRequest, type IncomingMessage, type ServerResponse, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { resolveAndDecide, type TargetDecision } from './decide.ts';
import { normalizeHost, splitAuthority, HostError, hostPort } from './host.ts';
import { Tracked, type Ctx } from './context.ts';
import { connectUpstream, peekFirst, decideTunnel, refuseInTunnel, pipeBoth } from './tunnel.ts';
import { interceptTunnel, isIntercepted, isModelApi } from './intercept.ts';
import { outboundScanner, recordHit, textHit } from './guard.ts';

// HTTP side of the gateway: absolute-URI requests (plain HTTP proxy), origin-form
// requests on the transparent port-80 listener (decided from Host), CONNECT tunnels, and
// the answer to malformed input. Every refusal is an HTTP status with X-Airlock-Rule and
// X-Airlock-Reason headers and a one-line body, and an audit event.

const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const SINGLE = ['host', 'content-length', 'transfer-encoding', 'proxy-authorization'];

function headerSafe(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

export function refusalText(status: number, rule: string, reason: string, close = true): string {
  const body = `airlock egress: denied by ${rule}: ${reason}\n`;
  const phrase: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 408: 'Request Timeout', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };
  return `HTTP/1.1 ${status} ${phrase[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Airlock-Rule: ${headerSafe(rule)}\r\nX-Airlock-Reason: ${headerSafe(reason)}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`;
}

function refuse(res: ServerResponse, t: Tracked, status: number, rule: string, reason: string): void {
  t.deny(rule, reason);
  t.status = status;
  if (res.headersSent) { res.destroy(); return; }
  const body = `airlock egress: denied by ${rule}: ${reason}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-airlock-rule': headerSafe(rule), 'x-airlock-reason': headerSafe(reason), 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

function duplicated(raw: string[]): string | null {
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (SINGLE.includes(k)) { if (seen.has(k)) return k; seen.add(k); }
  }
  return null;
}

function headerBytes(req: IncomingMessage): number {
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  for (const h of req.rawHeaders) n += h.length + 2;
  return n;
}

function forwardHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = new Set(String(h.connection ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function admitOr(ctx: Ctx, res: ServerResponse, t: Tracked): boolean {
  const hit = ctx.limits.admit();
  if (!hit) return true;
  refuse(res, t, hit.rule === 'egress.limits.requestsPerMinute' ? 429 : 403, hit.rule, hit.reason);
  if (hit.rule === 'egress.limits.maxUploadBytes') t.severity = 'high';
  return false;
}

/** Absolute-URI proxy requests, and origin-form requests on the transparent port-80 listener. */
export async function onRequest(ctx: Ctx, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const tport = ctx.transparentPort.get(req.socket);
  const t = new Tracked(ctx, { protocol: tport ? 'transparent-http' : 'http', method: req.method, scheme: 'http' });
  ctx.stats.requests++;
  const dup = duplicated(req.rawHeaders);
  if (dup) return refuse(res, t, 400, 'builtin.bad-request', `duplicated ${dup} header`);
  if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] !== undefined) {
    return refuse(res, t, 400, 'builtin.bad-request', 'both Content-Length and Transfer-Encoding');
  }
  const rawUrl = req.url ?? '';
  let url: URL;
  const hostHeader = req.headers.host;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl)) {
    if (!/^http:\/\//i.test(rawUrl)) return refuse(res, t, 400, 'builtin.bad-request', `only http:// absolute URIs are proxied (use CONNECT for https): ${rawUrl.slice(0, 80)}`);
    try { url = new URL(rawUrl); } catch { return refuse(res, t, 400, 'builtin.bad-target', `unparseable URL ${rawUrl.slice(0, 200)}`); }
    // userinfo hides the real host from a casual reader (allowed.com@evil.com): refuse it
    if (url.username || url.password || /^http:\/\/[^/?#]*@/i.test(rawUrl)) return refuse(res, t, 400, 'builtin.bad-target', 'userinfo in the request URI');
  } else if (tport && rawUrl.startsWith('/')) {
    if (!hostHeader) return refuse(res, t, 400, 'builtin.bad-request', 'no Host header');
    try { url = new URL(`http://${hostHeader}${rawUrl}`); } catch { return refuse(res, t, 400, 'builtin.bad-target', `bad Host header ${hostHeader.slice(0, 200)}`); }
    if (url.username || url.password || (url.port && Number(url.port) !== tport)) return refuse(res, t, 400, 'builtin.host-mismatch', `Host ${hostHeader} does not name port ${tport}`);
  } else {
    return refuse(res, t, 400, 'builtin.bad-request', 'not a proxy request: send an absolute URI (http://host/path) or CONNECT host:port');
  }
  // on a transparent port the connection's own port wins when Host names none
  const port = url.port ? Number(url.port) : (tport ?? 80);
  let host: string;
  try { host = normalizeHost(url.hostname).host; } catch (e) { return refuse(res, t, 400, 'builtin.bad-target', e instanceof HostError ? e.message : 'bad host'); }
  Object.assign(t.info, { host, port, path: url.pathname });
  if (!hostHeader) return refuse(res, t, 400, 'builtin.host-mismatch', 'no Host header');
  try {
    const hh = splitAuthority(hostHeader, 80);
    const hn = normalizeHost(hh.host).host;
    if (hn !== host || hh.port !== port) return refuse(res, t, 403, 'builtin.host-mismatch', `Host header ${hostPort(hn, hh.port)} differs from the request target ${hostPort(host, port)}`);
  } catch (e) {
    return refuse(res, t, 403, 'builtin.host-mismatch', `Host header ${JSON.stringify(hostHeader.slice(0, 200))} is not a host (${e instanceof Error ? e.message : e})`);
  }
  if (!admitOr(ctx, res, t)) return;
  const d = await resolveAndDecide(ctx.rules, { host, port, scheme: 'http', method: req.method, path: url.pathname }, ctx.resolver);
  Object.assign(t.info, { address: d.address, range: d.range });
  if (d.action !== 'allow' || !d.address) return refuse(res, t, 403, d.rule, d.reason);
  // outbound DLP inspects model-API bodies inside intercepted TLS only: refuse plain HTTP rather than pass it uninspected
  if (ctx.dlp.mode !== 'off' && isModelApi(ctx, host)) return refuse(res, t, 403, 'secrets.dlp.mode', `${host} is a model API under outbound DLP: plain-http requests cannot be inspected; use https`);
  // Brokered credentials on plain HTTP: only to a destination the policy binds by host
  // AND port (e.g. an internal model gateway on http://host:8080); anywhere else the
  // placeholder is misuse. The real value is added here, never seen by the sandbox.
  let outHeaders = forwardHeaders(req.headers);
  let outPath = url.pathname + url.search;
  let injected: { name: string; fingerprint: string }[] = [];
  if (ctx.broker) {
    const r = ctx.broker.rewrite({ host, port, method: req.method ?? 'GET', path: url.pathname, rawHeaders: req.rawHeaders, url: rawUrl });
    if ('misuse' in r) {
      const h = recordHit(ctx, t, { kind: 'placeholder', credential: r.misuse.credential, where: r.misuse.where });
      return refuse(res, t, 403, h.rule, h.reason);
    }
    if (r.injected.length || r.url !== rawUrl) {
      const hdrs: Record<string, string | string[]> = {};
      for (const [k, v] of r.headers) {
        const key = k.toLowerCase();
        if (HOP_BY_HOP.has(key) || key === 'host') continue;
        const prev = hdrs[key];
        hdrs[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      outHeaders = hdrs;
      const u = new URL(r.url, `http://${hostPort(host, port)}`);
      outPath = u.pathname + u.search;
      injected = r.injected.map((x) => ({ name: x.name, fingerprint: x.fingerprint }));
      t.extra.credentials = injected;
    }
  }
  const leak = textHit(injected.length ? { ...ctx, broker: null } : ctx, `${rawUrl}\n${req.rawHeaders.join('\n')}`, 'url or headers');
  if (leak) { const h = recordHit(ctx, t, leak); return refuse(res, t, 403, h.rule, h.reason); }
  const scanner = outboundScanner(ctx, { host, port, method: req.method ?? 'GET', path: url.pathname });
  try { t.open(d.rule, d.reason); } catch (e) { return refuse(res, t, 503, 'builtin.audit-failed', `audit sink failed (${e instanceof Error ? e.message : e}); refused`); }
  ctx.limits.active++;
  let released = false;
  const release = () => { if (!released) { released = true; ctx.limits.active--; } };
  res.once('close', release);
  const first = headerBytes(req);
  t.bytesUp += first;
  ctx.stats.bytesUp += first;
  const early = ctx.limits.upload(first);
  if (early) { t.severity = 'high'; return refuse(res, t, 403, early.rule, early.reason); }

  const up = httpRequest({
    host: d.address, port, method: req.method, path: outPath, setHost: false,
    headers: { ...outHeaders, host: url.host }, agent: false, timeout: ctx.timeouts.idleMs,
    lookup: undefined,
  });
  let finished = false;
  const fail = (status: number, rule: string, why: string) => {
    if (finished) return;
    finished = true;
    up.destroy();
    if (rule === d.rule) {
      // allowed but the upstream failed: answer 502/504, keep the allow decision on record
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-airlock-rule': headerSafe(rule), 'x-airlock-reason': headerSafe(why), connection: 'close' });
      res.end(`airlock egress: upstream ${hostPort(host, port)} failed: ${why}\n`);
      t.finish({ error: why, status });
    } else {
      t.decision = 'deny';
      refuse(res, Object.assign(t, { severity: 'high' }), status, rule, why);
      req.socket.destroy();
    }
  };
  req.on('data', (c: Buffer) => {
    t.bytesUp += c.length;
    ctx.stats.bytesUp += c.length;
    const hit = ctx.limits.upload(c.length);
    if (hit) { ctx.stats.denied++; fail(403, hit.rule, hit.reason); return; }
    const bad = scanner?.push(c);
    if (bad) {
      if (finished) return;
      finished = true;
      up.destroy();
      const h = recordHit(ctx, t, bad);
      refuse(res, t, 403, h.rule, h.reason);
      req.socket.destroy();
      return;
    }
    if (!up.write(c)) req.pause();
  });
  up.on('drain', () => req.resume());
  req.on('end', () => up.end());
  req.on('error', () => fail(400, d.rule, 'client aborted'));
  up.on('timeout', () => fail(504, d.rule, 'upstream timed out'));
  up.on('error', (e) => fail(502, d.rule, (e as NodeJS.ErrnoException).code ?? e.message));
  up.on('response', (ur) => {
    const headers = forwardHeaders(ur.headers);
    res.writeHead(ur.statusCode ?? 502, headers);
    ur.on('data', (c: Buffer) => {
      t.bytesDown += c.length;
      ctx.stats.bytesDown += c.length;
      if (!res.write(c)) ur.pause();
    });
    res.on('drain', () => ur.resume());
    ur.on('end', () => { if (!finished) { finished = true; res.end(); t.finish({ status: ur.statusCode }); } });
    ur.on('error', (e) => fail(502, d.rule, e.message));
  });
  res.once('close', () => { if (!finished) { finished = true; up.destroy(); t.finish({ error: 'client closed' }); } });
}

function writeRefusal(socket: Socket, status: number, rule: string, reason: string): void {
  if (socket.destroyed) return;
  socket.end(refusalText(status, rule, reason));
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** CONNECT host:port. */
export async function onConnect(ctx: Ctx, req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
  const t = new Tracked(ctx, { protocol: 'connect', method: 'CONNECT' });
  ctx.stats.requests++;
  const deny = (status: number, rule: string, reason: string) => { t.status = status; t.deny(rule, reason); writeRefusal(client, status, rule, reason); };
  let target: { host: string; port: number };
  try { target = splitAuthority(req.url ?? ''); } catch (e) { return deny(400, 'builtin.bad-target', `bad CONNECT target: ${e instanceof Error ? e.message : e}`); }
  let host: string;
  try { host = normalizeHost(target.host).host; } catch (e) { return deny(400, 'builtin.bad-target', `bad CONNECT target: ${e instanceof Error ? e.message : e}`); }
  Object.assign(t.info, { host, port: target.port });
  const dup = duplicated(req.rawHeaders);
  if (dup) return deny(400, 'builtin.bad-request', `duplicated ${dup} header`);
  if (req.headers.host !== undefined) {
    try {
      const hh = splitAuthority(req.headers.host, target.port);
      if (normalizeHost(hh.host).host !== host || hh.port !== target.port) return deny(403, 'builtin.host-mismatch', `Host header ${req.headers.host.slice(0, 200)} differs from the CONNECT target ${hostPort(host, target.port)}`);
    } catch { return deny(403, 'builtin.host-mismatch', 'Host header is not host:port'); }
  }
  const hit = ctx.limits.admit();
  if (hit) { if (hit.rule === 'egress.limits.maxUploadBytes') t.severity = 'high'; return deny(hit.rule === 'egress.limits.requestsPerMinute' ? 429 : 403, hit.rule, hit.reason); }
  const d = await resolveAndDecide(ctx.rules, { host, port: target.port, intercepted: isIntercepted(ctx, host) }, ctx.resolver);
  Object.assign(t.info, { address: d.address, range: d.range });
  if (d.action !== 'allow' || !d.address) return deny(403, d.rule, d.reason);
  await runTunnel(ctx, client, head, t, d, {
    ready: () => client.write('HTTP/1.1 200 Connection established\r\n\r\n'),
    failed: (why) => { t.status = 502; writeRefusal(client, 502, d.rule, `upstream ${hostPort(host, target.port)}: ${why}`); },
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
export async function runTunnel(ctx: Ctx, client: Socket, head: Buffer, t: Tracked, d: TargetDecision, hooks: TunnelHooks): Promise<void> {
  try { t.open(d.rule, d.reason); } catch (e) { hooks.auditFailed(`audit sink failed (${e instanceof Error ? e.message : e}); refused`); return; }
  ctx.limits.active++;
  let upstream;
  try {
    // an upstream that may become intercepted TLS keeps plain reads (the TLS layer takes it over)
    upstream = await connectUpstream(ctx, d.address!, d.port, { relay: !isIntercepted(ctx, d.host) });
  } catch (e) {
    ctx.limits.active--;
    const code = (e as NodeJS.ErrnoException).code;
    hooks.failed(code ?? (e as Error).message, code);
    t.finish({ error: code ?? (e as Error).message });
    return;
  }
  let released = false;
  const release = () => { if (!released) { released = true; ctx.limits.active--; } };
  if (client.destroyed) { upstream.destroy(); release(); t.finish({ error: 'client gone' }); return; }
  hooks.ready();
  const p = await peekFirst(ctx, client, head);
  t.info.scheme = p.scheme;
  const second = decideTunnel(ctx, d, p);
  if (second.action !== 'allow') {
    upstream.destroy();
    release();
    t.deny(second.rule, second.reason);
    refuseInTunnel(client, p.scheme === 'https');
    return;
  }
  if (p.closed && !p.buf.length) { upstream.destroy(); release(); t.finish({ error: 'client closed before sending' }); return; }
  if (p.scheme === 'https' && isIntercepted(ctx, d.host)) {
    // the upstream TCP connection becomes the first upstream TLS connection
    await interceptTunnel(ctx, ctx.interceptServer!, client, p.buf, t, d, upstream, release);
    return;
  }
  upstream.once('close', release);
  if (upstream.destroyed) release();
  pipeBoth(ctx, client, upstream, t, p.buf);
}
