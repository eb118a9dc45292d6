import type { Socket } from 'node:net';
import type { AuditEventInput, Severity } from '../common/index.ts';
import type { EgressRules, HostRule } from './rules.ts';
import { decideTarget, recordedQuery, type TargetQuery } from './decide-egress.ts';
import type { Resolver } from './resolver.ts';
import type { SessionLimits } from './limits.ts';
import type { HostPattern } from './rules.ts';
import type { Broker } from './broker.ts';
import type { DlpConfig } from './dlp.ts';
import type { GatewayCa } from './tls/ca.ts';
import type { Honeytoken } from '../secrets/index.ts';
import type { TunnelRelay } from './relay/index.ts';
import type { PackageFirewall } from './packages/index.ts';

// What every protocol handler of one gateway shares. One per gateway (= per session):
// no module-level state, so one process can run many sessions with different policies.

export interface Timeouts {
  /** Time for a client to send its request line + headers, or its SOCKS handshake. */
  handshakeMs: number;
  /** Time to wait for a tunnel's first bytes (the TLS ClientHello). */
  peekMs: number;
  /** Time for the upstream TCP connection. */
  connectMs: number;
  /** An established connection idle this long is closed. */
  idleMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { handshakeMs: 10_000, peekMs: 10_000, connectMs: 10_000, idleMs: 300_000 };

export interface Stats {
  connections: number;
  bytesUp: number;
  bytesDown: number;
  denied: number;
  requests: number;
}

export interface Ctx {
  session: string;
  rules: EgressRules;
  resolver: Resolver;
  limits: SessionLimits;
  timeouts: Timeouts;
  stats: Stats;
  sockets: Set<Socket>;
  /** Sockets accepted on a transparent listener, keyed to the original port. */
  transparentPort: WeakMap<Socket, number>;
  /** Client sockets of tunnels that turned out to carry plain HTTP: parsed per request, bound to the tunnel's target. */
  tunnelTarget: WeakMap<object, { host: string; port: number; tunnel: Tracked }>;
  /** Distinct names resolved per wildcard allow rule (egress.limits.maxNamesPerWildcard). */
  wildcardNames: Map<string, Set<string>>;
  /** The plain-HTTP request parser (absolute-URI proxying, transparent port 80, HTTP inside tunnels). */
  httpServer: import('node:http').Server | null;
  record: (e: AuditEventInput) => void;
  closing: boolean;
  /** Hosts whose TLS is terminated (egress.intercept, credential destinations, model APIs unless DLP is off). */
  intercept: HostPattern[];
  /** Model API hosts (outbound DLP on intercepted requests). */
  modelApis: HostPattern[];
  /** Airlock's CA and the upstream trust store; null: interception unavailable (intercepted hosts are refused). */
  tls: { ca: GatewayCa; upstreamCa: string[] } | null;
  broker: Broker | null;
  dlp: DlpConfig;
  honeytokens: Honeytoken[];
  /** Parses the HTTP inside intercepted TLS (set by the gateway when interception is possible). */
  interceptServer: import('node:http').Server | null;
  /** The native download relay thread for tunnels; null: tunnels relay in Node (relayMode() says why). */
  relay: TunnelRelay | null;
  /** The package firewall on intercepted npm/PyPI hosts (egress.packages); null when off. */
  packages: PackageFirewall | null;
  /** Asks a human about an `egress.ask` destination; null: nobody can answer, so an ask is a deny. */
  ask: EgressAsker | null;
  /** Open questions by host:port: concurrent connections to one destination share one ask. */
  pendingAsks: Map<string, PendingAsk>;
  /** Shadow or record mode (modes.egress): the rules whose decision is recorded beside the enforced one; null in enforce mode. */
  observe: ObservedRules | null;
  /** Shadow or record mode (modes.packages): the firewall whose verdict on each package fetch is recorded beside the enforced one. */
  packagesObserve: { mode: 'record' | 'shadow'; firewall: PackageFirewall } | null;
}

export interface ObservedRules {
  mode: 'record' | 'shadow';
  /** record: the policy's own rules (the gateway enforces them plus a catch-all); shadow: the candidate policy's. */
  rules: EgressRules;
}

export interface EgressAskRequest {
  host: string;
  port: number;
  rule: string;
  reason: string;
}
/** An allow is for this one connection unless its scope is 'session' (absent: once, the narrower). */
export interface EgressAnswer {
  decision: 'allow' | 'deny';
  by: string | null;
  reason: string;
  scope?: 'once' | 'session';
}
/** One question that concurrent connections wait on; a 'once' allow goes to the first that takes it. */
export interface PendingAsk {
  answer: Promise<EgressAnswer>;
  onceTaken: boolean;
}
/** Resolves with the human's answer (a timeout is a deny); held connections wait on it. */
export type EgressAsker = (r: EgressAskRequest) => Promise<EgressAnswer>;

export type Protocol =
  | 'http'
  | 'connect'
  | 'socks5'
  | 'transparent-http'
  | 'transparent-tls'
  | 'tunnel-http'
  | 'host-loopback'
  | 'intercepted'
  | 'unknown';

export interface RequestInfo {
  protocol: Protocol;
  host?: string;
  port?: number;
  scheme?: string;
  method?: string;
  path?: string;
  address?: string;
  range?: string;
}

/**
 * One request's audit record: opened when decided, closed once with bytes and duration.
 * Denials are recorded at once; allowed requests get an `egress.open` event before any
 * byte goes out (so a failing audit sink refuses the request) and `egress.request` at the end.
 */
export class Tracked {
  readonly ctx: Ctx;
  readonly info: RequestInfo;
  readonly start = Date.now();
  bytesUp = 0;
  bytesDown = 0;
  decision: 'allow' | 'deny' = 'deny';
  rule = 'builtin.unfinished';
  reason = '';
  severity: Severity = 'info';
  status: number | string | undefined;
  error: string | undefined;
  /** Extra audit fields (credentials used, DLP outcome...); never secret values. */
  extra: Record<string, unknown> = {};
  /** The last query decideTarget decided for this request: recorded, so replay and the modes decide it again. */
  decided: TargetQuery | undefined;
  /** A destination a human allowed once: for this connection only (a tunnel's inner requests inherit it). */
  onceGrant: HostRule | undefined;
  private done = false;

  constructor(ctx: Ctx, info: RequestInfo) {
    this.ctx = ctx;
    this.info = info;
  }

  private data(): Record<string, unknown> {
    const i = this.info;
    const d: Record<string, unknown> = {
      protocol: i.protocol,
      destination:
        i.host !== undefined && i.port !== undefined
          ? i.host.includes(':')
            ? `[${i.host}]:${i.port}`
            : `${i.host}:${i.port}`
          : null,
      host: i.host ?? null,
      port: i.port ?? null,
      scheme: i.scheme ?? null,
      method: i.method ?? null,
      path: i.path ?? null,
      address: i.address ?? null,
      range: i.range ?? null,
      reason: this.reason,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      durationMs: Date.now() - this.start,
    };
    if (this.status !== undefined) d.status = this.status;
    if (this.error) d.error = this.error;
    if (this.decided) Object.assign(d, { query: recordedQuery(this.decided), ...this.observed(this.decided) });
    return { ...d, ...this.extra };
  }

  /** Shadow/record mode: what the observed rules decide for the same query (the same decideTarget). */
  private observed(q: TargetQuery): Record<string, unknown> {
    const o = this.ctx.observe;
    if (!o) return {};
    const w = decideTarget(o.rules, { ...q, addresses: this.info.address ? [this.info.address] : undefined });
    return {
      mode: o.mode,
      wouldBe: {
        action: w.action,
        rule: w.rule,
        reason: w.reason,
        policy: o.mode === 'record' ? 'effective' : 'candidate',
      },
    };
  }

  /** Allowed: records `egress.open`. Throws when the audit sink fails (caller refuses). */
  open(rule: string, reason: string): void {
    this.decision = 'allow';
    this.rule = rule;
    this.reason = reason;
    this.ctx.record({
      type: 'egress.open',
      session: this.ctx.session,
      severity: 'info',
      decision: 'allow',
      rule,
      data: this.data(),
    });
  }

  /** Denied: recorded now. */
  deny(rule: string, reason: string, severity?: Severity): void {
    if (this.done) return;
    this.decision = 'deny';
    this.rule = rule;
    this.reason = reason;
    this.severity = severity ?? severityFor(rule, this.info.range);
    this.ctx.stats.denied++;
    this.finish();
  }

  finish(extra?: { error?: string; status?: number | string }): void {
    if (this.done) return;
    this.done = true;
    if (extra?.error) this.error = extra.error;
    if (extra?.status !== undefined) this.status = extra.status;
    try {
      this.ctx.record({
        type: 'egress.request',
        session: this.ctx.session,
        severity: this.severity,
        decision: this.decision,
        rule: this.rule,
        data: this.data(),
      });
    } catch {
      /* the sink already failed loudly; the connection is over either way */
    }
  }
}

export function severityFor(rule: string, range?: string): Severity {
  if (rule === 'egress.limits.maxUploadBytes') return 'high';
  if (range === 'metadata') return 'high';
  if (rule === 'builtin.private-address' || rule === 'builtin.sni-mismatch' || rule === 'builtin.host-mismatch')
    return 'medium';
  return 'low';
}

/** The rules one connection is decided by: the session's, plus what a human allowed once for exactly this connection. */
export function connectionRules(ctx: Ctx, t: Tracked | undefined): EgressRules {
  return t?.onceGrant ? { ...ctx.rules, allow: [...ctx.rules.allow, t.onceGrant] } : ctx.rules;
}
