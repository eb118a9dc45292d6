import {
  Agent,
  createServer as createHttpServer,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
  type Server,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import { Duplex, Readable } from 'node:stream';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { decideTarget, type TargetDecision } from './decide-egress.ts';
import { hostMatches } from './rules.ts';
import { hostPort, normalizeHost, splitAuthority } from './host.ts';
import { Tracked, connectionRules, type Ctx } from './context.ts';
import { refuseInTunnel } from './tunnel.ts';
import { inspectBody, inspectText, type DlpResult } from './dlp.ts';
import type { Credential } from './broker.ts';
import { outboundScanner, requestText, textHit } from './guard.ts';
import { requestPath, type RequestPath } from './path.ts';
import { textViews } from './views.ts';
import {
  duplicatedHeader,
  headerObject,
  headerSafe,
  isEncoded,
  readWhole,
  refuse,
  relayResponse,
  scanWholeBody,
  type UpstreamAnswer,
  refuseHit,
  refuseUnlessClean,
} from './exchange.ts';
import {
  upstreamVia,
  upstreamAt,
  packageDenial,
  type Admission,
  type Answer,
  type Verdict,
  type PackageRef,
} from './packages/index.ts';

// Opt-in TLS interception. For an intercepted host the gateway completes the client's TLS
// handshake itself with a leaf minted by Airlock's CA for exactly the CONNECT/SNI host,
// parses the HTTP/1.1 requests inside (node:http: keep-alive, chunked bodies), decides each
// request on its own (method and path rules, credential broker, outbound DLP), and sends it
// on over a second TLS connection to the checked address, verifying the upstream certificate
// against the host trust store. A failed upstream verification is a denial, never ignored.

const SINGLE = ['host', 'content-length', 'transfer-encoding', 'authorization'];

interface Conn {
  host: string;
  port: number;
  address: string;
  range?: string;
  agent: Agent;
  tunnel: Tracked;
  requests: number;
}

export function isIntercepted(ctx: Ctx, host: string): boolean {
  return ctx.intercept.some((p) => hostMatches(p, host));
}

export function isModelApi(ctx: Ctx, host: string): boolean {
  return ctx.modelApis.some((p) => hostMatches(p, host));
}

const conns = new WeakMap<object, Conn>();

/** A TLS verification or handshake failure (as opposed to a refused or reset connection). */
export function isTlsFailure(e: NodeJS.ErrnoException): boolean {
  return (
    /^(ERR_TLS_|ERR_SSL_|ERR_OSSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|CERT_UNTRUSTED)/.test(
      e.code ?? '',
    ) || /certificate|SSL routines|handshake/i.test(e.message ?? '')
  );
}

/**
 * Refused mid-body: the rest of the body is never forwarded, but the client must still get
 * its 403, so the connection closes once the response is flushed (destroying it at once
 * raced the TLS write and left curl with an empty reply), at the latest after 2 s.
 */
function closeAfterRefusal(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => req.socket.end());
  setTimeout(() => req.socket.destroy(), 2000).unref();
}

/** The per-gateway HTTP server that parses requests inside intercepted TLS connections. */
export function createInterceptServer(ctx: Ctx, handshakeMs: number): Server {
  const srv = createHttpServer({
    maxHeaderSize: 32 * 1024,
    headersTimeout: handshakeMs,
    requestTimeout: 0,
    keepAliveTimeout: 30_000,
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  });
  srv.maxHeadersCount = 201;
  srv.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const c = conns.get(req.socket);
    if (!c) {
      res.destroy();
      return;
    }
    onIntercepted(ctx, c, req, res).catch((e) => {
      const t = new Tracked(ctx, { protocol: 'intercepted', host: c.host, port: c.port, method: req.method });
      refuse(
        res,
        t,
        500,
        'builtin.internal-error',
        `gateway error: ${e instanceof Error ? e.message : String(e)}`,
        'medium',
      );
    });
  });
  const noTunnel = (req: IncomingMessage, socket: Duplex) => {
    const c = conns.get(socket);
    const t = new Tracked(ctx, {
      protocol: 'intercepted',
      host: c?.host,
      port: c?.port,
      scheme: 'https',
      method: req.method,
    });
    const reason =
      req.method === 'CONNECT'
        ? 'CONNECT inside an intercepted connection'
        : 'protocol upgrades (WebSocket) are not supported on intercepted hosts';
    t.status = 501;
    t.deny('builtin.intercept-unsupported', reason);
    socket.end(
      `HTTP/1.1 501 Not Implemented\r\nX-Airlock-Rule: builtin.intercept-unsupported\r\nX-Airlock-Reason: ${reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  };
  srv.on('connect', noTunnel);
  srv.on('upgrade', noTunnel);
  srv.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const c = conns.get(socket);
    if (err.code === 'ECONNRESET' || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (c && c.requests === 0 && !(socket as TLSSocket).encrypted) {
      socket.destroy();
      return;
    }
    const t = new Tracked(ctx, { protocol: 'intercepted', host: c?.host, port: c?.port, scheme: 'https' });
    const code = err.code ?? '';
    if (/SSL|TLS|ERR_OSSL/.test(code) || /SSL|certificate|alert/i.test(err.message)) {
      // the client refused our leaf: most often it does not trust Airlock's CA
      t.deny(
        'builtin.intercept-handshake',
        `client TLS handshake failed (${code || err.message}); does the client trust Airlock's CA bundle?`,
      );
      socket.destroy();
      return;
    }
    const status =
      code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT'
          ? 408
          : 400;
    t.status = status;
    t.deny(
      status === 408 ? 'builtin.timeout' : 'builtin.bad-request',
      `malformed HTTP inside intercepted TLS (${code || err.message})`,
    );
    if (socket.writable) socket.end(`HTTP/1.1 ${status} Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  return srv;
}

/**
 * Takes over an allowed https tunnel to an intercepted host. `first` holds the client's
 * bytes read so far (its ClientHello); `pre` an upstream TCP connection already open (or null).
 */
export async function interceptTunnel(
  ctx: Ctx,
  server: Server,
  client: Socket,
  first: Buffer,
  tracked: Tracked,
  decision: TargetDecision,
  pre: Socket | null,
  release: () => void,
): Promise<void> {
  const host = decision.host;
  const port = decision.port;
  const refuse = (rule: string, reason: string) => {
    pre?.destroy();
    release();
    tracked.deny(rule, reason, 'medium');
    refuseInTunnel(client, true);
  };
  if (!ctx.tls)
    return refuse(
      'builtin.intercept-unavailable',
      `${host} must be intercepted (egress.intercept, a brokered credential or a model API under DLP) but this gateway has no CA; refused`,
    );
  let leaf;
  try {
    leaf = await ctx.tls.ca.leaf(host);
  } catch (e) {
    return refuse(
      'builtin.internal-error',
      `cannot mint a certificate for ${host}: ${e instanceof Error ? e.message : e}`,
    );
  }
  tracked.info.scheme = 'https';
  tracked.extra.intercepted = true;
  const duplex = replayingDuplex(client, first, ctx.timeouts.idleMs);
  const pending = { socket: pre };
  const agent = upstreamAgent(ctx, decision, ctx.tls.upstreamCa, pending);
  const tls = new TLSSocket(duplex, { isServer: true, secureContext: leaf.context, ALPNProtocols: ['http/1.1'] });
  const c: Conn = {
    host,
    port,
    address: decision.address!,
    range: decision.range,
    agent,
    tunnel: tracked,
    requests: 0,
  };
  conns.set(tls, c);
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    agent.destroy();
    pending.socket?.destroy();
    release();
    tracked.extra.requests = c.requests;
    tracked.finish();
  };
  tls.once('close', done);
  client.once('close', () => {
    tls.destroy();
    done();
  });
  server.emit('connection', tls);
}

/**
 * A duplex over the client socket that first replays the bytes already read (a TLSSocket
 * over a net.Socket would read its handle directly and miss them).
 */
function replayingDuplex(client: Socket, first: Buffer, idleMs: number): Duplex {
  const duplex = new Duplex({
    read() {
      client.resume();
    },
    write(chunk: Buffer, _e, cb) {
      if (client.write(chunk)) cb();
      else client.once('drain', () => cb());
    },
    final(cb) {
      client.end();
      cb();
    },
    destroy(err, cb) {
      client.destroy();
      cb(err);
    },
  });
  if (first.length) duplex.push(first);
  client.on('data', (b: Buffer) => {
    if (!duplex.push(b)) client.pause();
  });
  client.on('end', () => duplex.push(null));
  client.on('close', () => duplex.destroy());
  client.on('error', () => duplex.destroy());
  client.setTimeout(idleMs, () => client.destroy());
  client.setNoDelay(true); // small TLS records both ways: Nagle + delayed ACK would add ~40 ms per exchange
  return duplex;
}

/**
 * The agent for a tunnel's upstream requests: TLS to the decided address (never re-resolved),
 * the first connection taken from `pending` (the one already open), verified against `upstreamCa`.
 */
function upstreamAgent(
  ctx: Ctx,
  decision: TargetDecision,
  upstreamCa: string[],
  pending: { socket: Socket | null },
): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: 8, maxFreeSockets: 2, timeout: ctx.timeouts.idleMs });
  (agent as unknown as { createConnection: (o: unknown) => Duplex }).createConnection = () => {
    const raw = pending.socket ?? connect({ host: decision.address!, port: decision.port, noDelay: true });
    pending.socket = null;
    ctx.sockets.add(raw);
    raw.once('close', () => ctx.sockets.delete(raw));
    if (raw.connecting) {
      const timer = setTimeout(
        () => raw.destroy(Object.assign(new Error('upstream connect timed out'), { code: 'ETIMEDOUT' })),
        ctx.timeouts.connectMs,
      );
      raw.once('connect', () => clearTimeout(timer));
      raw.once('close', () => clearTimeout(timer));
    }
    return tlsConnect({
      socket: raw,
      servername: decision.host,
      ca: upstreamCa,
      ALPNProtocols: ['http/1.1'],
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    });
  };
  return agent;
}

async function onIntercepted(ctx: Ctx, conn: Conn, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  const tracked = new Tracked(ctx, {
    protocol: 'intercepted',
    host: conn.host,
    port: conn.port,
    scheme: 'https',
    method,
    address: conn.address,
    range: conn.range,
  });
  ctx.stats.requests++;
  conn.requests++;
  const raw = req.rawHeaders;
  const rp = checkedInterceptedRequest(ctx, conn, req, res, tracked);
  if (!rp) return;
  tracked.decided = { host: conn.host, port: conn.port, scheme: 'https', method, path: rp.match, intercepted: true };
  const decision = decideTarget(connectionRules(ctx, conn.tunnel), { ...tracked.decided, addresses: [conn.address] });
  if (decision.action !== 'allow') return refuse(res, tracked, 403, decision.rule, decision.reason);

  const outbound = brokeredIntercept(ctx, conn, req, res, tracked, rp);
  if (!outbound) return;
  const rawUrl = req.url ?? '';
  const head = requestText(rawUrl, raw);
  const honey = textHit({ ...ctx, broker: null }, head, 'url or headers');
  if (honey) {
    return refuseHit(ctx, res, tracked, honey);
  }
  const { injected } = outbound;
  if (injected.length) tracked.extra.credentials = injected.map((x) => ({ name: x.name, fingerprint: x.fingerprint }));
  // with DLP off a model API body streams like any other (buffering it would only cap it)
  const dlpHere = ctx.dlp.mode !== 'off' && isModelApi(ctx, conn.host);
  if (dlpHere && !(await headOk(ctx, tracked, res, conn, method, rp.match, requestText(rawUrl, withoutApiAuth(raw)))))
    return;
  // the package firewall decides on the path the upstream will receive
  const pkg = await admitPackage(ctx, conn, method, rawUrl, rp.forward, req.headers.accept);
  if (pkg.kind === 'deny') {
    if (pkg.pkg) tracked.extra.package = observePackage(ctx, pkg.pkg);
    return refusePackage(res, tracked, pkg.verdict);
  }
  if (pkg.kind !== 'pass')
    tracked.extra.package = observePackage(
      ctx,
      pkg.kind === 'allow' ? { ...pkg.pkg, rule: pkg.verdict.rule } : pkg.pkg,
    );
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

  const headers = headerObject(outbound.pairs, req.headers.connection);
  headers.host = conn.port === 443 ? conn.host : hostPort(conn.host, conn.port);
  if (injected.length) headers['accept-encoding'] = 'identity'; // so an echoed value can be scrubbed from the response
  if (pkg.kind === 'filter') pkg.prepare(headers); // metadata the package firewall reads whole and filters

  const hasBody =
    req.headers['content-length'] !== undefined
      ? Number(req.headers['content-length']) > 0
      : req.headers['transfer-encoding'] !== undefined;
  const scanner = outboundScanner(ctx, { host: conn.host, port: conn.port, method, path: rp.match });
  const count = (n: number): boolean => {
    tracked.bytesUp += n;
    ctx.stats.bytesUp += n;
    const h = ctx.limits.upload(n);
    if (h) {
      refuse(res, tracked, 403, h.rule, h.reason, 'high');
      return false;
    }
    return true;
  };
  const buffered = hasBody
    ? await readInspectedBody(ctx, conn, req, res, tracked, { path: rp.match, headers, scanner, count, dlpHere })
    : null;
  if (buffered === false) return;
  forwardIntercepted(ctx, conn, req, res, tracked, {
    decision,
    target: outbound.target,
    headers,
    injected,
    pkg,
    hasBody,
    buffered,
    scanner,
    count,
  });
}

/**
 * The request line and headers, checked before any decision: no duplicated single headers,
 * no smuggling, an origin-form path the upstream reads as decided, a Host naming the
 * intercepted host, the session's rate limits. Null when refused.
 */
function checkedInterceptedRequest(
  ctx: Ctx,
  conn: Conn,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
): RequestPath | null {
  const no = (status: number, rule: string, reason: string): null => {
    refuse(res, tracked, status, rule, reason);
    return null;
  };
  const raw = req.rawHeaders;
  const dup = duplicatedHeader(raw, SINGLE);
  if (dup) return no(400, 'builtin.bad-request', `duplicated ${dup} header`);
  if (raw.length / 2 > 200) return no(431, 'builtin.bad-request', 'more than 200 headers');
  if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] !== undefined)
    return no(400, 'builtin.bad-request', 'both Content-Length and Transfer-Encoding');
  const rawUrl = req.url ?? '';
  if (!rawUrl.startsWith('/'))
    return no(400, 'builtin.bad-request', 'an intercepted request must use an origin-form target (/path)');
  let rp: RequestPath;
  try {
    rp = requestPath(rawUrl);
  } catch (e) {
    return no(
      400,
      'builtin.ambiguous-path',
      `${e instanceof Error ? e.message : e}: the upstream could read another path than the one decided`,
    );
  }
  tracked.info.path = rp.match;
  const hh = req.headers.host;
  if (!hh) return no(400, 'builtin.host-mismatch', 'no Host header');
  try {
    const a = splitAuthority(hh, 443);
    if (normalizeHost(a.host).host !== conn.host || a.port !== conn.port)
      return no(
        403,
        'builtin.host-mismatch',
        `Host ${headerSafe(hh)} differs from the intercepted host ${hostPort(conn.host, conn.port)}`,
      );
  } catch {
    return no(403, 'builtin.host-mismatch', `Host ${headerSafe(hh)} is not a host`);
  }
  const hit = ctx.limits.admit();
  if (hit) {
    refuse(
      res,
      tracked,
      hit.rule === 'egress.limits.requestsPerMinute' ? 429 : 403,
      hit.rule,
      hit.reason,
      hit.rule === 'egress.limits.maxUploadBytes' ? 'high' : undefined,
    );
    return null;
  }
  return rp;
}

/** Credentials: placeholders swapped where bound, injected per policy; misuse refused (null). */
function brokeredIntercept(
  ctx: Ctx,
  conn: Conn,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  rp: RequestPath,
): { pairs: [string, string][]; target: string; injected: Credential[] } | null {
  const raw = req.rawHeaders;
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  if (!ctx.broker) return { pairs, target: rp.forward, injected: [] };
  const r = ctx.broker.rewrite({
    host: conn.host,
    port: conn.port,
    method: req.method ?? 'GET',
    path: rp.match,
    rawHeaders: raw,
    url: rp.forward,
  });
  if ('misuse' in r) {
    refuseHit(ctx, res, tracked, { kind: 'placeholder', credential: r.misuse.credential, where: r.misuse.where });
    return null;
  }
  return { pairs: r.headers, target: r.url, injected: r.injected };
}

interface BodyInspection {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  scanner: ReturnType<typeof outboundScanner>;
  count: (n: number) => boolean;
  dlpHere: boolean;
}

/**
 * A body that must be seen whole before it is sent: a model API's under DLP, or an encoded
 * (gzip…) one, which would hide placeholders and honeytokens from the streaming scanner. It is
 * read whole (bounded) and scanned decoded, then sent as it came. Null when the body streams;
 * false when refused.
 */
async function readInspectedBody(
  ctx: Ctx,
  conn: Conn,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  body: BodyInspection,
): Promise<Buffer | null | false> {
  const { headers, scanner, count, dlpHere } = body;
  const encoding = req.headers['content-encoding'];
  const scanDecoded = scanner !== null && isEncoded(encoding);
  if (!dlpHere && !scanDecoded) return null;
  const r = await readWhole(req, ctx.dlp.maxBytes, count);
  if (!r.ok) {
    if (!res.headersSent) refuse(res, tracked, 400, 'builtin.bad-request', 'client aborted the request body');
    return false;
  }
  const uninspectable = dlpHere ? 'secrets.dlp.mode' : 'builtin.encoded-body';
  if (r.over) {
    refuse(
      res,
      tracked,
      413,
      uninspectable,
      `request body larger than ${ctx.dlp.maxBytes} bytes cannot be inspected`,
      'medium',
    );
    return false;
  }
  let buffered = r.body;
  const v = scanWholeBody(buffered, scanDecoded ? encoding : undefined, scanner, ctx.dlp.maxBytes, uninspectable);
  if (!refuseUnlessClean(ctx, res, tracked, v)) return false;
  if (dlpHere) {
    const r2 = await inspectBody(
      buffered,
      req.headers['content-type'],
      req.headers['content-encoding'],
      ctx.dlp,
      ctx.honeytokens,
    );
    if (r2.honeytoken) {
      refuseHit(ctx, res, tracked, { kind: 'honeytoken', token: r2.honeytoken, where: 'body' });
      return false;
    }
    if (!recordDlp(ctx, tracked, res, conn, req.method ?? 'GET', body.path, r2)) return false;
    if (r2.action === 'blocked') {
      refuse(res, tracked, 403, 'secrets.dlp.mode', r2.reason, 'high');
      return false;
    }
    if (r2.decoded) {
      buffered = r2.body;
      delete headers['content-encoding'];
    }
  }
  headers['content-length'] = String(buffered.length);
  delete headers['transfer-encoding'];
  return buffered;
}

interface InterceptedForward {
  decision: TargetDecision;
  target: string;
  headers: Record<string, string | string[] | undefined>;
  injected: Credential[];
  pkg: Admission;
  hasBody: boolean;
  buffered: Buffer | null;
  scanner: ReturnType<typeof outboundScanner>;
  count: (n: number) => boolean;
}

/** Sends the request upstream over the connection's verified TLS agent; the answer goes through the package firewall when it filters. */
function forwardIntercepted(
  ctx: Ctx,
  conn: Conn,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  fwd: InterceptedForward,
): void {
  const { decision, target, headers, injected, pkg } = fwd;
  const method = req.method ?? 'GET';
  const up = httpRequest({
    agent: conn.agent,
    method,
    path: target,
    headers,
    setHost: false,
    timeout: ctx.timeouts.idleMs,
  });
  const state = { finished: false };
  const fail = (e: NodeJS.ErrnoException | null, why: string, status = 502) => {
    if (state.finished) return;
    state.finished = true;
    up.destroy();
    if (e && isTlsFailure(e)) {
      tracked.decision = 'deny';
      refuse(
        res,
        tracked,
        502,
        'builtin.upstream-tls',
        `upstream ${hostPort(conn.host, conn.port)} failed TLS verification (${e.code ?? e.message}); refused`,
        'medium',
      );
      return;
    }
    if (!res.headersSent)
      res.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'x-airlock-rule': headerSafe(decision.rule),
        'x-airlock-reason': headerSafe(why),
        connection: 'close',
      });
    res.end(`airlock egress: upstream ${hostPort(conn.host, conn.port)} failed: ${why}\n`);
    tracked.finish({ error: why, status });
  };
  up.on('error', (e) => fail(e as NodeJS.ErrnoException, (e as NodeJS.ErrnoException).code ?? e.message));
  up.on('timeout', () => fail(null, 'upstream timed out', 504));
  res.once('close', () => {
    if (!state.finished) {
      state.finished = true;
      up.destroy();
      tracked.finish({ error: 'client closed' });
    }
  });
  sendInterceptedBody(ctx, req, res, tracked, up, fwd, state);
  const relay = (ur: UpstreamAnswer) =>
    relayResponse(ctx, tracked, method, ur, res, injected, {
      end: (status) => {
        if (!state.finished) {
          state.finished = true;
          tracked.finish({ status });
        }
      },
      error: (e) => fail(e, e.message),
    });
  up.on('response', (ur) => answerThroughPackageFirewall(pkg, ur, res, tracked, state, relay));
}

/** The request body upstream: the buffered copy, or streamed through the size cap and the outbound scanner. */
function sendInterceptedBody(
  ctx: Ctx,
  req: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  up: ClientRequest,
  fwd: InterceptedForward,
  state: { finished: boolean },
): void {
  const { hasBody, buffered, scanner, count } = fwd;
  if (buffered) {
    up.end(buffered);
  } else if (hasBody) {
    req.on('data', (b: Buffer) => {
      if (state.finished) return;
      if (!count(b.length)) {
        state.finished = true;
        up.destroy();
        return;
      }
      const ph = scanner?.push(b) ?? null;
      if (ph) {
        state.finished = true;
        up.destroy();
        refuseHit(ctx, res, tracked, ph);
        closeAfterRefusal(req, res);
        return;
      }
      if (!up.write(b)) req.pause();
    });
    up.on('drain', () => req.resume());
    req.on('end', () => up.end());
  } else {
    req.resume();
    up.end();
  }
}

/** The upstream answer to the client, through the package firewall when it filters this request. */
function answerThroughPackageFirewall(
  pkg: Admission,
  ur: IncomingMessage,
  res: ServerResponse,
  tracked: Tracked,
  state: { finished: boolean },
  relay: (answer: UpstreamAnswer) => void,
): void {
  if (pkg.kind !== 'filter') {
    relay(ur);
    return;
  }
  pkg.respond(ur).then(
    (a) => {
      if (state.finished) return;
      if (a.kind === 'pass') relay(ur);
      else if (a.kind === 'replace') relay(answerStream(a));
      else {
        state.finished = true;
        refusePackage(res, tracked, a.verdict);
      }
    },
    (e) => {
      if (state.finished) return;
      state.finished = true;
      refusePackage(res, tracked, {
        action: 'deny',
        rule: 'egress.packages.unparseable',
        reason: `registry answer cannot be checked (${e instanceof Error ? e.message : e}); refused`,
      });
    },
  );
}

function refusePackage(res: ServerResponse, t: Tracked, v: Verdict): void {
  t.status = 403;
  t.deny(v.rule, v.reason);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const d = packageDenial(v);
  res.writeHead(403, d.statusMessage, d.headers);
  res.end(d.body);
}

/** The package firewall's decision for one intercepted request (pass when it is off or not a package fetch); a firewall error is a denial. */
/** Shadow/record mode for packages: the other firewall's verdict on the same package, beside the enforced one. */
function observePackage<T extends PackageRef>(
  ctx: Ctx,
  pkg: T,
): T | (T & { mode: string; wouldBe: Verdict & { policy: string } }) {
  const o = ctx.packagesObserve;
  if (!o) return pkg;
  const v = o.firewall.verdictFor(pkg);
  return { ...pkg, mode: o.mode, wouldBe: { ...v, policy: o.mode === 'record' ? 'effective' : 'candidate' } };
}

async function admitPackage(
  ctx: Ctx,
  conn: Conn,
  method: string,
  rawUrl: string,
  forward: string,
  accept: string | undefined,
): Promise<Admission> {
  if (!ctx.packages) return { kind: 'pass' };
  try {
    // on a registry only the canonical spelling passes: what the client sent, what is
    // decided and what the upstream gets are one path (no dot segments, no re-encoding)
    const pathname = new URL(forward, 'https://registry.invalid').pathname;
    const sent = rawUrl.replace(/%[0-9a-f]{2}/gi, (m) => m.toUpperCase()); // %2f and %2F are one spelling (RFC 3986 §6.2.2.1)
    if (ctx.packages.covers(conn.host) && (sent !== forward || forward.split('?')[0] !== pathname)) {
      return {
        kind: 'deny',
        verdict: {
          action: 'deny',
          rule: 'egress.packages.unrecognized',
          reason: 'ambiguous registry path (dot segments or characters the URL parser re-encodes); refused',
        },
      };
    }
    return await ctx.packages.admit({
      host: conn.host,
      method,
      pathname,
      accept,
      upstream: upstreamVia(
        conn.agent,
        conn.port === 443 ? conn.host : hostPort(conn.host, conn.port),
        ctx.timeouts.idleMs,
      ),
      upstreamAt: (host) => upstreamAt(ctx, host, conn.port),
    });
  } catch (e) {
    return {
      kind: 'deny',
      verdict: {
        action: 'deny',
        rule: 'egress.packages.error',
        reason: `package firewall failed (${e instanceof Error ? e.message : e}); refused`,
      },
    };
  }
}

function answerStream(a: Extract<Answer, { kind: 'replace' }>): UpstreamAnswer {
  return Object.assign(Readable.from([a.body]), { statusCode: a.status, headers: a.headers });
}

/** Records an `egress.dlp` event for findings; false (and refused) when the audit sink fails. */
function recordDlp(
  ctx: Ctx,
  tracked: Tracked,
  res: ServerResponse,
  c: Conn,
  method: string,
  path: string,
  dlpResult: DlpResult,
): boolean {
  if (!dlpResult.findings.length && dlpResult.action === 'pass') return true;
  const sev =
    dlpResult.action === 'blocked'
      ? 'high'
      : dlpResult.findings.some((f) => f.severity === 'critical')
        ? 'high'
        : 'medium';
  try {
    ctx.record({
      type: 'egress.dlp',
      session: ctx.session,
      severity: sev,
      decision: dlpResult.action === 'blocked' ? 'deny' : 'allow',
      rule: 'secrets.dlp.mode',
      data: {
        host: c.host,
        port: c.port,
        method,
        path,
        mode: ctx.dlp.mode,
        action: dlpResult.action,
        reason: dlpResult.reason,
        findings: dlpResult.findings,
      },
    });
  } catch (e) {
    refuse(
      res,
      tracked,
      503,
      'builtin.audit-failed',
      `audit sink failed (${e instanceof Error ? e.message : e}); refused`,
    );
    return false;
  }
  tracked.extra.dlp = { action: dlpResult.action, findings: dlpResult.findings.length };
  return true;
}

/** Headers that carry the model API's own credential (a login token belongs there) are left out of header DLP. */
const API_AUTH = new Set(['authorization', 'x-api-key', 'api-key', 'x-goog-api-key', 'cookie']);

function withoutApiAuth(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push(raw[i]!, API_AUTH.has(raw[i]!.toLowerCase()) ? '' : raw[i + 1]!);
  return out;
}

/**
 * DLP on a model API request's URL and headers (names and values): a secret there cannot
 * be cut out cleanly, so it is refused unless the mode is off. Placeholders are not secrets.
 */
async function headOk(
  ctx: Ctx,
  t: Tracked,
  res: ServerResponse,
  c: Conn,
  method: string,
  path: string,
  head: string,
): Promise<boolean> {
  // every reading a server may apply (percent-decoding, double encoding), placeholders left out
  let text = textViews(head).join('\n');
  for (const cr of ctx.broker?.credentials ?? []) text = text.split(cr.placeholder).join('');
  const r = await inspectText(text, ctx.dlp);
  if (r.honeytoken) {
    refuseHit(ctx, res, t, { kind: 'honeytoken', token: r.honeytoken, where: 'url or headers' });
    return false;
  }
  if (!r.findings.length) return true;
  const blocked = ctx.dlp.mode !== 'off';
  const result: DlpResult = {
    ...r,
    action: blocked ? 'blocked' : 'pass',
    reason: `${r.findings.length} secret(s) in the URL or headers of a request to a model API${blocked ? '' : ' (recorded only: secrets.dlp.mode off)'}`,
  };
  if (!recordDlp(ctx, t, res, c, method, path, result)) return false;
  if (blocked) {
    refuse(res, t, 403, 'secrets.dlp.mode', result.reason, 'high');
    return false;
  }
  return true;
}
