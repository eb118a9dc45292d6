import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import type { Policy } from '../policy/index.ts';
import { AirlockError, type AuditEventInput } from '../common/index.ts';
import { compileEgress, recordModeRules, type EgressRules } from './rules.ts';
import { systemResolver, type Resolver } from './resolver.ts';
import { SessionLimits } from './limits.ts';
import { DEFAULT_TIMEOUTS, Tracked, type Ctx, type EgressAsker, type ObservedRules, type Timeouts } from './context.ts';
import { onConnect, onRequest, refusalText } from './http.ts';
import { onSocks } from './socks.ts';
import { peekFirst, refuseInTunnel, connectUpstream, pipeBoth } from './tunnel.ts';
import { decideAndResolve } from './names.ts';
import { normalizeHost } from './host.ts';
import { transparentSocketPath, transparentPortList } from './network.ts';
import { interceptTunnel, isIntercepted, createInterceptServer } from './intercept.ts';
import { HOST_LOOPBACK, hostLoopbackGrants, hostLoopbackSocketPath, onHostLoopback } from './loopback.ts';
import type { GatewayCa } from './tls/ca.ts';
import { hostTrustStore } from './tls/bundle.ts';
import type { Broker } from './broker.ts';
import { DEFAULT_DLP_MAX_BYTES, type KnownSecret } from './dlp.ts';
import type { Honeytoken } from '../secrets/index.ts';
import { TunnelRelay, relayMode } from './relay/index.ts';
import { PackageFirewall, recordModePackages } from './packages/index.ts';

// One gateway per session: HTTP proxy, CONNECT and SOCKS5 on ONE listening socket,
// told apart by the first byte (0x05 = SOCKS5, anything else = HTTP). With a unix
// socket and transparent mode, one more socket per redirected port (80, 443).

export interface GatewayOptions {
  session: string;
  /** The full effective policy (src/policy). */
  policy: Policy;
  /** Shadow mode: the candidate policy whose egress decisions are recorded beside the enforced ones. */
  candidate?: Policy;
  /** `--allow-host HOST[:PORT]` values: extra destinations for this session, recorded as grants. */
  grants?: string[];
  audit: (e: AuditEventInput) => void;
  listen: { unixPath: string } | { host: string; port: number };
  resolver?: Resolver;
  /** Also listen on `<unixPath>.80` / `<unixPath>.443` for transparent mode (default: policy egress.transparent == 'auto'). */
  transparent?: boolean;
  /** Mode of the unix sockets (default 0600: only the gateway's user). */
  socketMode?: number;
  timeouts?: Partial<Timeouts>;
  /** TLS interception: Airlock's CA (loadOrCreateCa) and the upstream trust store (default: the host's system roots). Without it, hosts that must be intercepted are refused. */
  tls?: { ca: GatewayCa; upstreamCa?: string[] };
  /** The session's credential broker (prepareCredentials). */
  broker?: Broker;
  /** Host secrets outbound DLP looks for besides what the engine finds: values and fingerprints. */
  dlp?: { known?: KnownSecret[]; fingerprints?: string[]; maxBytes?: number };
  /** Decoys planted in the sandbox: any attempt to send one out is refused and a critical finding. */
  honeytokens?: Honeytoken[];
  /** Relay tunnel downloads on the native thread when it is built (default true; false: on the event loop). */
  nativeRelay?: boolean;
  /** Asks a human about `egress.ask` destinations (the session's approval queue); absent: an ask is a deny. */
  ask?: EgressAsker;
}

export interface Gateway {
  /** Unix socket path or host:port. */
  address: string;
  /** Transparent-mode sockets by original port (empty when off). */
  transparentSockets: Record<number, string>;
  /** Host-loopback grants: gateway socket per port, for a sandbox listener on 127.0.0.1:port (sandboxNetwork's hostLoopback). */
  hostLoopbackSockets: Record<number, string>;
  close(): Promise<void>;
  stats(): {
    connections: number;
    bytesUp: number;
    bytesDown: number;
    denied: number;
    active: number;
    requests: number;
  };
  /** Honeytokens planted after the gateway started (the gateway refuses to let them out). */
  setHoneytokens(tokens: readonly Honeytoken[]): void;
}

const MAX_HEADERS = 200;

function listenOn(server: Server, l: GatewayOptions['listen'], mode: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', (e) =>
      reject(
        new AirlockError(
          'UNAVAILABLE',
          `egress gateway cannot listen on ${'unixPath' in l ? l.unixPath : `${l.host}:${l.port}`}: ${(e as Error).message}`,
          'pick a free port or a writable directory for the socket',
        ),
      ),
    );
    if ('unixPath' in l) {
      try {
        if (lstatSync(l.unixPath, { throwIfNoEntry: false })?.isSocket()) unlinkSync(l.unixPath);
      } catch {
        /* listen reports it */
      }
      server.listen({ path: l.unixPath }, () => {
        chmodSync(l.unixPath, mode);
        resolve(l.unixPath);
      });
    } else {
      server.listen({ host: l.host, port: l.port }, () => {
        const a = server.address();
        resolve(
          typeof a === 'object' && a
            ? a.family === 'IPv6'
              ? `[${a.address}]:${a.port}`
              : `${a.address}:${a.port}`
            : String(a),
        );
      });
    }
  });
}

/** The rules the gateway enforces and, in shadow or record mode (modes.egress), the ones it records beside them. */
function modeRules(o: GatewayOptions): { rules: EgressRules; observe: ObservedRules | null } {
  const own = compileEgress(o.policy.egress, o.grants ?? []);
  switch (o.policy.modes.egress) {
    case 'record':
      return { rules: recordModeRules(own), observe: { mode: 'record', rules: own } };
    case 'shadow':
      return {
        rules: own,
        observe: o.candidate ? { mode: 'shadow', rules: compileEgress(o.candidate.egress, o.grants ?? []) } : null,
      };
    default:
      return { rules: own, observe: null };
  }
}

/** The package firewall that enforces and, in shadow or record mode (modes.packages), the one whose verdicts are recorded beside it. */
function modePackages(o: GatewayOptions): {
  packages: PackageFirewall | null;
  packagesObserve: Ctx['packagesObserve'];
} {
  const own = o.policy.egress.packages;
  const create = (p: typeof own) => PackageFirewall.create(p, o.audit, o.session);
  switch (o.policy.modes.packages) {
    case 'record': {
      const f = create(own);
      return { packages: create(recordModePackages(own)), packagesObserve: f && { mode: 'record', firewall: f } };
    }
    case 'shadow': {
      const f = o.candidate ? create(o.candidate.egress.packages) : null;
      return { packages: create(own), packagesObserve: f && { mode: 'shadow', firewall: f } };
    }
    default:
      return { packages: create(own), packagesObserve: null };
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const ctx = gatewayContext(opts);
  if (ctx.tls) ctx.interceptServer = createInterceptServer(ctx, ctx.timeouts.handshakeMs);
  const http = proxyHttpServer(ctx);
  const main = mainServer(ctx, http, ctx.rules.limits.maxConnections * 2 + 32);
  const listeners: Listeners = { servers: [main], paths: [], mode: opts.socketMode ?? 0o600 };
  const address = await listenOn(main, opts.listen, listeners.mode);
  if ('unixPath' in opts.listen) listeners.paths.push(opts.listen.unixPath);
  const transparentSockets = await listenTransparent(ctx, opts, http, listeners);
  const loopback = hostLoopbackGrants(ctx.rules);
  const hostLoopbackSockets = await listenHostLoopback(ctx, opts, loopback, listeners);
  recordGatewayStart(ctx, opts, { address, transparentSockets, hostLoopbackSockets, loopback });
  return {
    address,
    transparentSockets,
    hostLoopbackSockets,
    stats: () => ({ ...ctx.stats, active: ctx.limits.active }),
    setHoneytokens(tokens) {
      ctx.honeytokens = [...tokens];
    },
    async close() {
      await closeGateway(ctx, opts, http, listeners);
    },
  };
}

/** The servers a gateway listens with and the socket files it must remove on close. */
interface Listeners {
  servers: Server[];
  paths: string[];
  mode: number;
}

/** The state every handler of one gateway shares: its rules in their mode, limits, TLS, broker, DLP, package firewall. */
function gatewayContext(opts: GatewayOptions): Ctx {
  const { rules, observe } = modeRules(opts);
  const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const { packages, packagesObserve } = modePackages(opts);
  const ctx: Ctx = {
    session: opts.session,
    rules,
    resolver: opts.resolver ?? systemResolver(),
    limits: new SessionLimits(rules.limits),
    timeouts,
    stats: { connections: 0, bytesUp: 0, bytesDown: 0, denied: 0, requests: 0 },
    sockets: new Set(),
    transparentPort: new WeakMap(),
    tunnelTarget: new WeakMap(),
    wildcardNames: new Map(),
    httpServer: null,
    record: opts.audit,
    closing: false,
    intercept: [
      ...rules.intercept,
      ...(opts.broker?.interceptPatterns() ?? []),
      ...(packages?.intercept ?? []),
      ...(opts.policy.secrets.dlp.mode !== 'off' ? rules.modelApis : []),
    ],
    modelApis: rules.modelApis,
    tls: opts.tls ? { ca: opts.tls.ca, upstreamCa: opts.tls.upstreamCa ?? hostTrustStore() } : null,
    broker: opts.broker ?? null,
    dlp: {
      mode: opts.policy.secrets.dlp.mode,
      allowlist: opts.policy.secrets.workspace.allowlist,
      known: [
        ...(opts.broker?.credentials.map((c) => ({ label: c.name, value: c.value })) ?? []),
        ...(opts.dlp?.known ?? []),
      ],
      fingerprints: new Set(opts.dlp?.fingerprints ?? []),
      maxBytes: opts.dlp?.maxBytes ?? DEFAULT_DLP_MAX_BYTES,
    },
    honeytokens: [...(opts.honeytokens ?? [])],
    interceptServer: null,
    relay: opts.nativeRelay === false ? null : TunnelRelay.create(),
    packages,
    ask: opts.ask ?? null,
    pendingAsks: new Map(),
    observe,
    packagesObserve,
  };
  return ctx;
}

/** The HTTP parser every plain-HTTP connection is handed to (proxy requests, CONNECT, transparent port 80, plain-HTTP tunnels). */
function proxyHttpServer(ctx: Ctx): HttpServer {
  const http = createHttpServer({
    maxHeaderSize: 16 * 1024,
    headersTimeout: ctx.timeouts.handshakeMs,
    requestTimeout: 0,
    keepAliveTimeout: 5000,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(ctx.timeouts.handshakeMs / 4))),
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  });
  http.maxHeadersCount = MAX_HEADERS + 1;
  ctx.httpServer = http;
  // This server never listens itself (sockets are handed over after sniffing), so start
  // its connection tracking by hand: headersTimeout (slowloris) is enforced by it.
  http.emit('listening');
  http.on('request', (req, res) => {
    if (req.rawHeaders.length / 2 > MAX_HEADERS) {
      const t = new Tracked(ctx, { protocol: 'http', method: req.method });
      t.status = 431;
      t.deny('builtin.bad-request', `more than ${MAX_HEADERS} headers`);
      res.socket?.end(refusalText(431, 'builtin.bad-request', `more than ${MAX_HEADERS} headers`));
      return;
    }
    onRequest(ctx, req, res).catch((e) => {
      res.destroy();
      record500(ctx, e);
    });
  });
  http.on('connect', (req, socket, head) => {
    if (ctx.transparentPort.has(socket as Socket) || ctx.tunnelTarget.has(socket)) {
      (socket as Socket).end(
        refusalText(400, 'builtin.bad-request', 'CONNECT on a transparent port or inside a tunnel'),
      );
      return;
    }
    onConnect(ctx, req, socket as Socket, head).catch((e) => {
      socket.destroy();
      record500(ctx, e);
    });
  });
  http.on('upgrade', (req, socket) => {
    const t = new Tracked(ctx, { protocol: 'http', method: req.method, path: undefined });
    t.status = 400;
    t.deny('builtin.bad-request', 'protocol upgrades over plain-http proxying are not supported (use https: CONNECT)');
    socket.end(refusalText(400, 'builtin.bad-request', 'protocol upgrades are not proxied over plain http; use https'));
  });
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT'
          ? 408
          : 400;
    const rule = status === 408 ? 'builtin.timeout' : 'builtin.bad-request';
    const reason =
      status === 408
        ? 'request headers not received in time'
        : status === 431
          ? 'request headers too large'
          : `malformed HTTP (${err.code ?? err.message})`;
    const t = new Tracked(ctx, {
      protocol: ctx.transparentPort.has(socket)
        ? 'transparent-http'
        : ctx.tunnelTarget.has(socket)
          ? 'tunnel-http'
          : 'http',
    });
    t.status = status;
    t.deny(rule, reason);
    if (socket.writable) socket.end(refusalText(status, rule, reason));
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  return http;
}

/** Counts and tracks a client socket; false (and the socket destroyed) once the gateway is closing. */
function trackSocket(ctx: Ctx, s: Socket): boolean {
  ctx.stats.connections++;
  ctx.sockets.add(s);
  s.once('close', () => ctx.sockets.delete(s));
  s.on('error', () => s.destroy());
  if (ctx.closing) {
    s.destroy();
    return false;
  }
  return true;
}

/** The one listening socket for HTTP proxy, CONNECT and SOCKS5: the first byte tells them apart. */
function mainServer(ctx: Ctx, http: HttpServer, clientCap: number): Server {
  return createNetServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
    if (!trackSocket(ctx, socket)) return;
    socket.setTimeout(ctx.timeouts.handshakeMs, () => {
      const t = new Tracked(ctx, { protocol: 'unknown' });
      t.deny('builtin.timeout', 'client sent nothing in time');
      socket.destroy();
    });
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(first);
      const b0 = first[0];
      if (ctx.sockets.size > clientCap) {
        const t = new Tracked(ctx, { protocol: b0 === 0x05 ? 'socks5' : 'http' });
        t.deny('egress.limits.maxConnections', `more than ${clientCap} client connections open`);
        socket.end(
          b0 === 0x05
            ? Buffer.from([0x05, 0xff])
            : refusalText(503, 'egress.limits.maxConnections', 'too many client connections'),
        );
        return;
      }
      if (b0 === 0x05) {
        onSocks(ctx, socket).catch((e) => {
          socket.destroy();
          record500(ctx, e);
        });
        return;
      }
      if (b0 === 0x04) {
        const t = new Tracked(ctx, { protocol: 'socks5' });
        t.deny('builtin.bad-request', 'SOCKS4 is not supported; use SOCKS5 (socks5h://)');
        socket.end(Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
        return;
      }
      http.emit('connection', socket);
      socket.resume();
    });
    socket.resume();
  });
}

/**
 * Transparent mode: 80 and 443, plus every port an allow rule grants: a program that ignores
 * the proxy reaches a granted port through the gateway too, decided by Host or SNI.
 */
async function listenTransparent(
  ctx: Ctx,
  opts: GatewayOptions,
  http: HttpServer,
  listeners: Listeners,
): Promise<Record<number, string>> {
  const rules = ctx.rules;
  const transparentSockets: Record<number, string> = {};
  const wantTransparent = opts.transparent ?? rules.transparent === 'auto';
  if (wantTransparent && rules.transparent === 'auto' && 'unixPath' in opts.listen) {
    const granted = [...rules.allow, ...rules.allowCidrs].flatMap(
      (r) => (r as { ports?: number[] | null }).ports ?? [],
    );
    for (const port of transparentPortList(granted)) {
      const path = transparentSocketPath(opts.listen.unixPath, port);
      const srv = createNetServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => {
        if (!trackSocket(ctx, s)) return;
        ctx.transparentPort.set(s, port);
        const tls = () => {
          transparentTls(ctx, s, port).catch((e) => {
            s.destroy();
            record500(ctx, e);
          });
        };
        const plain = () => {
          http.emit('connection', s);
          s.resume();
        };
        if (port === 443) return tls();
        if (port === 80) return plain();
        // other ports: the first byte tells TLS (a handshake record) from HTTP
        s.once('data', (b: Buffer) => {
          s.pause();
          s.unshift(b);
          if (b[0] === 0x16) tls();
          else plain();
        });
        s.resume();
      });
      await listenOn(srv, { unixPath: path }, listeners.mode);
      listeners.servers.push(srv);
      listeners.paths.push(path);
      transparentSockets[port] = path;
    }
  }
  return transparentSockets;
}

/** Host-loopback grants: one socket per usable port, for a sandbox listener on 127.0.0.1:port. */
async function listenHostLoopback(
  ctx: Ctx,
  opts: GatewayOptions,
  loopback: ReturnType<typeof hostLoopbackGrants>,
  listeners: Listeners,
): Promise<Record<number, string>> {
  const hostLoopbackSockets: Record<number, string> = {};
  if ('unixPath' in opts.listen) {
    for (const g of loopback.filter((x) => x.usable)) {
      const path = hostLoopbackSocketPath(opts.listen.unixPath, g.port);
      const srv = createNetServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => {
        if (!trackSocket(ctx, s)) return;
        onHostLoopback(ctx, s, g.port).catch((e) => {
          s.destroy();
          record500(ctx, e);
        });
      });
      await listenOn(srv, { unixPath: path }, listeners.mode);
      listeners.servers.push(srv);
      listeners.paths.push(path);
      hostLoopbackSockets[g.port] = path;
    }
  }
  return hostLoopbackSockets;
}

interface Started {
  address: string;
  transparentSockets: Record<number, string>;
  hostLoopbackSockets: Record<number, string>;
  loopback: ReturnType<typeof hostLoopbackGrants>;
}

/** The gateway's start on record, then each grant it opened. */
function recordGatewayStart(ctx: Ctx, opts: GatewayOptions, started: Started): void {
  const { address, transparentSockets, hostLoopbackSockets, loopback } = started;
  opts.audit({
    type: 'egress.gateway.start',
    session: opts.session,
    severity: 'info',
    decision: null,
    rule: null,
    data: {
      address,
      mode: Object.keys(transparentSockets).length ? 'proxy+transparent' : 'proxy',
      transparentSockets,
      resolver: ctx.resolver.description,
      relay: opts.nativeRelay === false ? { mode: 'node', why: 'nativeRelay: false' } : relayMode(),
      presets: opts.policy.egress.presets,
      allowRules: ctx.rules.allow.length,
      cidrRules: ctx.rules.allowCidrs.length,
      limits: ctx.rules.limits,
      grants: ctx.rules.grants,
      interception: {
        available: ctx.tls !== null,
        caFingerprint: ctx.tls?.ca.fingerprint ?? null,
        hosts: ctx.intercept.map((p) => (p.wildcard ? `*.${p.host}` : p.host)),
        dlp: ctx.dlp.mode,
        credentials: ctx.broker?.describe() ?? [],
        knownSecrets: ctx.dlp.known.length + ctx.dlp.fingerprints.size,
      },
      packages: ctx.packages?.describe() ?? { mode: 'off' },
    },
  });
  // host-loopback grants are recorded one by one: they open the host's own loopback port
  for (const g of loopback) {
    opts.audit({
      type: 'egress.grant',
      session: opts.session,
      severity: 'medium',
      decision: g.usable ? 'allow' : 'deny',
      rule: g.rule,
      data: {
        grant: `${HOST_LOOPBACK}:${g.port}`,
        via: 'host-loopback',
        scope: 'this session only',
        sandboxListener: g.usable && hostLoopbackSockets[g.port] ? `${HOST_LOOPBACK}:${g.port}` : null,
        ...(g.why ? { why: g.why } : {}),
      },
    });
  }
  ctx.rules.grants.forEach((g, i) =>
    opts.audit({
      type: 'egress.grant',
      session: opts.session,
      severity: 'low',
      decision: 'allow',
      rule: `egress.grant[${i}]`,
      data: { grant: g, via: '--allow-host', scope: 'this session only' },
    }),
  );
}

async function closeGateway(ctx: Ctx, opts: GatewayOptions, http: HttpServer, listeners: Listeners): Promise<void> {
  const { servers, paths } = listeners;
  if (ctx.closing) return;
  ctx.closing = true;
  const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  http.closeAllConnections();
  http.close();
  ctx.interceptServer?.closeAllConnections();
  ctx.interceptServer?.close();
  for (const s of ctx.sockets) s.destroy();
  await closed;
  ctx.relay?.close();
  for (const p of paths) {
    try {
      unlinkSync(p);
    } catch {
      /* already gone */
    }
  }
  opts.audit({
    type: 'egress.gateway.stop',
    session: opts.session,
    severity: 'info',
    decision: null,
    rule: null,
    data: { ...ctx.stats },
  });
}

function record500(ctx: Ctx, e: unknown): void {
  const t = new Tracked(ctx, { protocol: 'unknown' });
  t.deny('builtin.internal-error', `gateway error: ${e instanceof Error ? e.message : String(e)}`, 'medium');
}

/** Transparent TLS (original port 443, or another granted port): the SNI names the destination. */
async function transparentTls(ctx: Ctx, client: Socket, port = 443): Promise<void> {
  const tracked = new Tracked(ctx, { protocol: 'transparent-tls', port, scheme: 'https' });
  ctx.stats.requests++;
  const peeked = await peekFirst(ctx, client, Buffer.alloc(0));
  if (peeked.closed && !peeked.buf.length) return; // connected and left: nothing to record
  if (peeked.bad || peeked.scheme !== 'https' || !peeked.sni) {
    tracked.deny(
      peeked.bad ? 'builtin.bad-tls' : 'builtin.sni-mismatch',
      peeked.bad ??
        (peeked.scheme !== 'https' ? `non-TLS traffic to port ${port}` : 'no SNI: the destination is unknown'),
    );
    refuseInTunnel(client, peeked.scheme === 'https');
    return;
  }
  let host: string;
  try {
    host = normalizeHost(peeked.sni).host;
  } catch {
    tracked.info.host = peeked.sni.slice(0, 255);
    tracked.deny('builtin.bad-target', `SNI ${JSON.stringify(peeked.sni.slice(0, 100))} is not a host name`);
    refuseInTunnel(client, true);
    return;
  }
  tracked.info.host = host;
  const hit = ctx.limits.admit();
  if (hit) {
    tracked.deny(hit.rule, hit.reason);
    refuseInTunnel(client, true);
    return;
  }
  const intercepted = isIntercepted(ctx, host);
  const decision = await decideAndResolve(ctx, tracked, { host, port, scheme: 'https', intercepted });
  Object.assign(tracked.info, { address: decision.address, range: decision.range });
  if (decision.action !== 'allow' || !decision.address) {
    tracked.deny(decision.rule, decision.reason);
    refuseInTunnel(client, true);
    return;
  }
  try {
    tracked.open(decision.rule, decision.reason);
  } catch (e) {
    tracked.deny('builtin.audit-failed', String(e));
    refuseInTunnel(client, true);
    return;
  }
  ctx.limits.active++;
  if (intercepted) {
    let released = false;
    await interceptTunnel(ctx, ctx.interceptServer!, client, peeked.buf, tracked, decision, null, () => {
      if (!released) {
        released = true;
        ctx.limits.active--;
      }
    });
    return;
  }
  let up: Socket;
  try {
    up = await connectUpstream(ctx, decision.address, port, { relay: true });
  } catch (e) {
    ctx.limits.active--;
    tracked.finish({ error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    refuseInTunnel(client, true);
    return;
  }
  up.once('close', () => {
    ctx.limits.active--;
  });
  pipeBoth(ctx, client, up, tracked, peeked.buf);
}
