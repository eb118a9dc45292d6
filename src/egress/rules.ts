import { AirlockError } from '../common/index.ts';
import {
  isPublicSuffixWildcard,
  type EgressPolicy,
  type EgressHostRule,
  type EgressCidrRule,
} from '../policy/index.ts';
import { normalizeHost, splitAuthority, HostError } from './host.ts';
import { parseCidr, type Cidr } from './ip.ts';
import { PRESETS } from './presets.ts';

// The egress section compiled into matchers: host patterns normalised once, defaults
// applied, every rule carrying the id that decisions and audit events name.

export type Scheme = 'http' | 'https' | 'tcp';
export const DEFAULT_PORTS = [80, 443];
const DEFAULT_SCHEMES: Scheme[] = ['http', 'https'];

export interface HostRule {
  id: string;
  /** Normalised host; with wildcard, the parent domain (matches subdomains only). */
  host: string;
  wildcard: boolean;
  /** null on deny rules without ports: every port. */
  ports: number[] | null;
  schemes: Scheme[] | null;
  methods: string[] | null;
  paths: string[] | null;
  /** Compare paths without case (deny rules by default). */
  pathFold: boolean;
  /** The rule lists its ports itself (not the 80/443 default): needed for a raw tunnel to port 80. */
  explicitPorts: boolean;
  reason: string;
  /** Record mode's catch-all grant: every name, port and scheme (never an address a builtin refuses). */
  any?: boolean;
}

export interface CidrRule {
  id: string;
  cidr: Cidr;
  text: string;
  ports: number[] | null;
  /** ports listed by the rule itself */ explicitPorts: boolean;
  reason: string;
}

export interface EgressRules {
  allow: HostRule[];
  /** destinations a human may allow at run time (egress.ask) */
  ask: HostRule[];
  deny: HostRule[];
  allowCidrs: CidrRule[];
  denyCidrs: CidrRule[];
  limits: EgressPolicy['limits'];
  transparent: EgressPolicy['transparent'];
  grants: string[];
  /** Hosts whose TLS the gateway terminates (egress.intercept; the gateway adds credential destinations and model APIs). */
  intercept: HostPattern[];
  /** Model API hosts: intercepted requests to them get outbound DLP. */
  modelApis: HostPattern[];
}

export interface HostPattern {
  host: string;
  wildcard: boolean;
}

/** A policy host pattern (name or *.name), normalised; AirlockError naming `where` when invalid. */
export function hostPatternOf(raw: string, where: string, o: { allowIp?: boolean } = {}): HostPattern {
  return hostPattern(raw, where, o.allowIp ?? false);
}

// Egress allow rules never take IP literals (CIDR rules do, with their classification);
// a brokered credential may be bound to one exact address (e.g. an internal model gateway).
function hostPattern(raw: string, where: string, allowIp = false): HostPattern {
  const wildcard = raw.startsWith('*.');
  try {
    const n = normalizeHost(wildcard ? raw.slice(2) : raw);
    if (n.kind === 'ip' && (!allowIp || wildcard)) throw new HostError('an IP address');
    if (wildcard && !n.host.includes('.')) throw new HostError('a wildcard over a top-level domain');
    return { host: n.host, wildcard };
  } catch (e) {
    throw new AirlockError(
      'POLICY_INVALID',
      `${where}: host ${JSON.stringify(raw)} is ${e instanceof HostError ? e.message : 'invalid'}`,
      'use a host name (example.com) or *.example.com; put IP addresses in egress.allowCidrs as 1.2.3.4/32',
    );
  }
}

function ruleId(section: string, i: number, id: string | undefined): string {
  return id ? `egress.${section}.${id}` : `egress.${section}[${i}]`;
}

function hostRule(r: EgressHostRule, id: string, isDeny: boolean): HostRule {
  const p = hostPattern(r.host, id);
  return {
    id,
    ...p,
    ports: r.ports ?? (isDeny ? null : DEFAULT_PORTS),
    schemes: r.schemes ?? (isDeny ? null : DEFAULT_SCHEMES),
    methods: r.methods ?? null,
    paths: r.paths?.map((x) => (x.length > 1 && x.endsWith('/') ? x.slice(0, -1) : x)) ?? null,
    pathFold: (r.pathCase ?? (isDeny ? 'insensitive' : 'sensitive')) === 'insensitive',
    explicitPorts: r.ports !== undefined,
    reason: r.reason ?? '',
  };
}

function cidrRule(r: EgressCidrRule, id: string, isDeny: boolean): CidrRule {
  let cidr: Cidr;
  try {
    cidr = parseCidr(r.cidr);
  } catch {
    throw new AirlockError(
      'POLICY_INVALID',
      `${id}: ${JSON.stringify(r.cidr)} is not a CIDR`,
      'write an address range such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8',
    );
  }
  return {
    id,
    cidr,
    text: r.cidr,
    ports: r.ports ?? (isDeny ? null : DEFAULT_PORTS),
    explicitPorts: r.ports !== undefined,
    reason: r.reason ?? '',
  };
}

/** Compiles the effective egress policy plus per-run `--allow-host HOST[:PORT]` grants. */
export function compileEgress(egress: EgressPolicy, grants: string[] = []): EgressRules {
  const allow: HostRule[] = [];
  const allowCidrs: CidrRule[] = [];
  for (const name of egress.presets) {
    for (const host of PRESETS[name]) {
      allow.push({
        id: `egress.preset.${name}`,
        host,
        wildcard: false,
        ports: [443],
        schemes: ['https'],
        methods: null,
        paths: null,
        pathFold: false,
        explicitPorts: false,
        reason: `preset ${name}`,
      });
    }
  }
  egress.allow.forEach((r, i) => allow.push(hostRule(r, ruleId('allow', i, r.id), false)));
  egress.allowCidrs.forEach((r, i) => allowCidrs.push(cidrRule(r, ruleId('allowCidrs', i, r.id), false)));
  grants.forEach((grant, i) => {
    const id = `egress.grant[${i}]`;
    let target: { host: string; port: number | undefined };
    try {
      const bare = grant.startsWith('*.') ? grant.slice(2) : grant;
      const hasPort = /^[^:]*:\d*$|\]:\d*$/.test(bare);
      const s = splitAuthority(bare, 443);
      target = { host: (grant.startsWith('*.') ? '*.' : '') + s.host, port: hasPort ? s.port : undefined };
    } catch (e) {
      throw new AirlockError(
        'USAGE',
        `--allow-host ${JSON.stringify(grant)}: ${e instanceof Error ? e.message : e}`,
        'use --allow-host HOST or HOST:PORT, e.g. --allow-host api.example.com:8443',
      );
    }
    if (isPublicSuffixWildcard(target.host)) {
      throw new AirlockError(
        'USAGE',
        `--allow-host ${JSON.stringify(grant)}: a wildcard over a public suffix grants hosts anyone can register`,
        "name the domain (--allow-host '*.example.com') or the exact host",
      );
    }
    const ports = target.port ? [target.port] : DEFAULT_PORTS;
    let n;
    try {
      n = target.host.startsWith('*.') ? null : normalizeHost(target.host);
    } catch (e) {
      throw new AirlockError(
        'USAGE',
        `--allow-host ${JSON.stringify(grant)}: ${e instanceof Error ? e.message : e}`,
        'use --allow-host HOST or HOST:PORT',
      );
    }
    if (n?.kind === 'ip') {
      allowCidrs.push({
        id,
        cidr: parseCidr(`${n.host}/${n.family === 4 ? 32 : 128}`),
        text: n.host,
        ports,
        explicitPorts: target.port !== undefined,
        reason: `--allow-host ${grant}`,
      });
    } else {
      allow.push({
        ...hostPattern(target.host, id),
        id,
        ports,
        schemes: ['http', 'https'],
        methods: null,
        paths: null,
        pathFold: false,
        explicitPorts: false,
        reason: `--allow-host ${grant}`,
      });
    }
  });
  return {
    allow,
    ask: egress.ask.map((r, i) => hostRule(r, ruleId('ask', i, r.id), false)),
    allowCidrs,
    deny: egress.deny.map((r, i) => hostRule(r, ruleId('deny', i, r.id), true)),
    denyCidrs: egress.denyCidrs.map((r, i) => cidrRule(r, ruleId('denyCidrs', i, r.id), true)),
    limits: egress.limits,
    transparent: egress.transparent,
    grants: [...grants],
    intercept: egress.intercept.map((h, i) => hostPattern(h, `egress.intercept[${i}]`)),
    modelApis: egress.modelApis.map((h, i) => hostPattern(h, `egress.modelApis[${i}]`)),
  };
}

export function hostMatches(r: HostPattern & { any?: boolean }, host: string): boolean {
  if (r.any) return true;
  return r.wildcard ? host.endsWith('.' + r.host) : host === r.host;
}

/**
 * Record mode (modes.egress: record): the policy's rules plus a last catch-all grant named
 * `modes.egress`. Deny rules are checked before any grant and addresses after it, so an
 * explicit deny, a special-purpose address, an IP literal and every builtin check still refuse;
 * what only the default deny refused goes through, and the gateway records the would-be decision.
 */
export function recordModeRules(rules: EgressRules): EgressRules {
  const catchAll: HostRule = {
    id: 'modes.egress',
    host: '',
    wildcard: true,
    any: true,
    ports: [...DEFAULT_PORTS],
    schemes: ['http', 'https', 'tcp'],
    methods: null,
    paths: null,
    pathFold: false,
    explicitPorts: true,
    reason: 'record mode: what the policy would refuse is let through and recorded',
  };
  return { ...rules, allow: [...rules.allow, catchAll] };
}

/** Segment-boundary prefix match on a normal-form path (egress/path.ts), optionally without case. */
export function pathMatches(prefixes: string[], path: string, fold = false): boolean {
  if (/%2f|%5c|\\/i.test(path)) return false; // encoded separators: what the server sees is unknowable
  const p0 = fold ? path.toLowerCase() : path;
  return prefixes.some((p1) => {
    const p = fold ? p1.toLowerCase() : p1;
    return p === '/' || p0 === p || p0.startsWith(p + '/');
  });
}
