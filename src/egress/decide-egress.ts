import { type PolicyDecision, allow, ask, deny } from '../policy/index.ts';
import { hostPort, normalizeHost, HostError } from './host.ts';
import { classifyAddress, describeClass, inCidr } from './ip.ts';
import { hostMatches, pathMatches, type EgressRules, type HostRule, type Scheme } from './rules.ts';
import type { Resolver } from './resolver.ts';

// The one decision function, used by the gateway for every request and by
// `airlock egress check`. Pure: resolution happens outside and its answer is passed in.

export interface TargetQuery {
  host: string;
  port: number;
  /** Unknown (undefined) before a tunnel's first bytes are seen. */
  scheme?: Scheme;
  method?: string;
  path?: string;
  /**
   * The host is intercepted (TLS terminated by the gateway), or the tunnel carries plain
   * HTTP that the gateway parses, so each HTTP request inside is decided with its method
   * and path. Without a method (the tunnel itself), method and
   * path conditions are left to the per-request decision.
   */
  intercepted?: boolean;
  /** Resolved addresses of a name; when given, every one must pass. */
  addresses?: string[];
  /** An opaque tunnel (CONNECT, SOCKS, https:// URL): to port 80 it needs a rule naming port 80 for tcp. */
  tunnel?: boolean;
}

export interface TargetDecision extends PolicyDecision {
  /** Normalised host (name or IP), or the raw text when it could not be normalised. */
  host: string;
  kind: 'name' | 'ip' | 'invalid';
  port: number;
  /** The address to connect to (IP literal, or the first resolved address), when allowed. */
  address?: string;
  /** Class of the address that decided (public, loopback, metadata...). */
  range?: string;
}

const fmt = (xs: readonly (string | number)[]) => xs.join(', ');

function allowRuleMatch(r: HostRule, q: TargetQuery): string | null {
  if (r.any) return null; // record mode's catch-all
  if (!r.ports!.includes(q.port)) return `ports ${fmt(r.ports!)}`;
  // a tunnel to port 80 is plaintext HTTP around the proxy's request inspection: only a rule
  // that names port 80 for raw tunnels (ports: [80], schemes: [tcp]) grants it
  if (q.tunnel && q.port === 80 && !(r.explicitPorts && r.schemes!.includes('tcp')))
    return 'plain-http proxying on port 80 (a tunnel to port 80 needs ports: [80] and schemes: [tcp])';
  if (q.scheme && !r.schemes!.includes(q.scheme)) return `schemes ${fmt(r.schemes!)}`;
  const later = q.intercepted && q.method === undefined; // decided per request inside the intercepted tunnel
  const where = q.intercepted ? 'on intercepted requests' : 'over plain http';
  if (r.methods && !later && (!q.method || !r.methods.includes(q.method))) return `methods ${fmt(r.methods)} ${where}`;
  if (r.paths && !later && (q.path === undefined || !pathMatches(r.paths, q.path, r.pathFold)))
    return `paths ${fmt(r.paths)} ${where}`;
  return null;
}

function denyRuleMatches(r: HostRule, q: TargetQuery): boolean {
  if (r.ports && !r.ports.includes(q.port)) return false;
  if (r.schemes) {
    if (!q.scheme) return false; // decided again once the scheme is known
    if (!r.schemes.includes(q.scheme)) return false;
  }
  if (r.methods || r.paths) {
    if (!q.scheme) return false;
    // methods/paths cannot be seen inside TLS, raw TCP or a tunnel: there the deny applies (fail closed),
    // except on an intercepted host, where each request is decided on its own
    if (q.intercepted && q.method === undefined && q.scheme !== 'tcp') return false;
    if ((q.scheme === 'http' || q.intercepted) && q.method !== undefined) {
      if (r.methods && !(q.method && r.methods.includes(q.method))) return false;
      if (r.paths && q.path !== undefined && !/%2f|%5c|\\/i.test(q.path) && !pathMatches(r.paths, q.path, r.pathFold))
        return false;
    }
  }
  return true;
}

function checkAddress(
  rules: EgressRules,
  ip: string,
  port: number,
  tunnel = false,
): PolicyDecision & { range: string } {
  for (const c of rules.denyCidrs) {
    if (inCidr(ip, c.cidr) && (!c.ports || c.ports.includes(port)))
      return {
        ...deny(c.id, `${ip} is in ${c.text}${c.reason ? ` (${c.reason})` : ''}`),
        range: classifyAddress(ip).range,
      };
  }
  const cls = classifyAddress(ip);
  // a raw tunnel to port 80 only where the rule lists port 80 itself (see allowRuleMatch)
  const grant = rules.allowCidrs.find(
    (c) => inCidr(ip, c.cidr) && c.ports!.includes(port) && !(tunnel && port === 80 && !c.explicitPorts),
  );
  if (grant) return { ...allow(grant.id, `${ip} granted by ${grant.text} port ${port}`), range: cls.range };
  if (cls.special) {
    const near = rules.allowCidrs.find((c) => inCidr(ip, c.cidr));
    return {
      ...deny(
        'builtin.private-address',
        `${ip} is ${describeClass(cls)}${near ? `; ${near.id} grants ${near.text} only on ports ${fmt(near.ports!)}` : '; special-purpose addresses need an egress.allowCidrs rule'}`,
      ),
      range: cls.range,
    };
  }
  return { ...allow('builtin.public-address', `${ip} is public`), range: cls.range };
}

export function decideTarget(rules: EgressRules, q: TargetQuery): TargetDecision {
  try {
    return decideInner(rules, q);
  } catch (e) {
    return {
      ...deny('builtin.decision-error', `decision failed (${e instanceof Error ? e.message : String(e)}); denied`),
      host: String(q.host),
      kind: 'invalid',
      port: q.port,
    };
  }
}

function decideInner(rules: EgressRules, query: TargetQuery): TargetDecision {
  let normalized;
  try {
    normalized = normalizeHost(query.host);
  } catch (e) {
    return {
      ...deny('builtin.bad-target', e instanceof HostError ? e.message : 'invalid host'),
      host: query.host,
      kind: 'invalid',
      port: query.port,
    };
  }
  const base = { host: normalized.host, kind: normalized.kind, port: query.port } as const;
  if (!Number.isInteger(query.port) || query.port < 1 || query.port > 65535)
    return { ...deny('builtin.bad-target', `bad port ${query.port}`), ...base };
  const where = hostPort(normalized.host, query.port);

  if (normalized.kind === 'ip') {
    const a = checkAddress(rules, normalized.host, query.port, query.tunnel);
    if (a.action === 'allow' && a.rule === 'builtin.public-address') {
      return {
        ...deny('builtin.ip-literal', `${where}: IP literals are refused unless an egress.allowCidrs rule grants them`),
        ...base,
        range: a.range,
      };
    }
    return { ...a, ...base, address: a.action === 'allow' ? normalized.host : undefined };
  }

  const d = rules.deny.find((r) => hostMatches(r, normalized.host) && denyRuleMatches(r, query));
  if (d) return { ...deny(d.id, `${where} is denied${d.reason ? ` (${d.reason})` : ''}`), ...base };

  let near: { id: string; why: string } | undefined;
  let grant: HostRule | undefined;
  for (const r of rules.allow) {
    if (!hostMatches(r, normalized.host)) continue;
    const miss = allowRuleMatch(r, query);
    if (!miss) {
      grant = r;
      break;
    }
    // the closest miss: a rule that at least grants the port explains best
    if (!near || (near.why.startsWith('ports ') && !miss.startsWith('ports '))) near = { id: r.id, why: miss };
  }
  if (!grant) {
    const seen = query.scheme === 'http' || query.intercepted;
    const what = `${query.scheme ? `${query.scheme} ` : ''}${query.method && seen ? `${query.method} ` : ''}${where}${query.path && seen ? query.path : ''}`;
    const asking = rules.ask.find((r) => hostMatches(r, normalized.host) && !allowRuleMatch(r, query));
    if (asking)
      return {
        ...ask(asking.id, `${what} needs a human's answer${asking.reason ? ` (${asking.reason})` : ''}`),
        ...base,
      };
    return {
      ...deny(
        'egress.default-deny',
        near
          ? `${what} is not allowed: ${near.id} allows this host only on ${near.why}`
          : `no egress rule allows ${what}`,
      ),
      ...base,
    };
  }
  if (query.addresses === undefined)
    return {
      ...allow(grant.id, `${where} allowed by ${grant.id}${grant.reason ? ` (${grant.reason})` : ''}`),
      ...base,
    };
  if (query.addresses.length === 0)
    return { ...deny('builtin.resolve-failed', `${normalized.host} did not resolve to any address`), ...base };
  let range = 'public';
  for (const ip of query.addresses) {
    const a = checkAddress(rules, ip, query.port, query.tunnel);
    if (a.action !== 'allow')
      return { ...a, reason: `${normalized.host} resolves to ${ip}: ${a.reason}`, ...base, range: a.range };
    if (ip === query.addresses[0]) range = a.range;
  }
  return {
    ...allow(
      grant.id,
      `${where} allowed by ${grant.id}${grant.reason ? ` (${grant.reason})` : ''}; ${query.addresses[0]} ${range}`,
    ),
    ...base,
    address: query.addresses[0],
    range,
  };
}

/**
 * Name-level decision, then (for names) resolution and the address check. Never throws.
 * `beforeResolve` may still refuse an allowed name before any DNS query is sent.
 */
export async function resolveAndDecide(
  rules: EgressRules,
  q: TargetQuery,
  resolver: Resolver,
  beforeResolve?: (first: TargetDecision) => TargetDecision | null,
): Promise<TargetDecision> {
  const first = decideTarget(rules, { ...q, addresses: undefined });
  if (first.action !== 'allow' || first.kind !== 'name') return first;
  const stop = beforeResolve?.(first);
  if (stop) return stop;
  let addresses: string[];
  try {
    addresses = await resolver.resolve(first.host);
  } catch (e) {
    return {
      ...deny(
        'builtin.resolve-failed',
        `${first.host} did not resolve (${e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e)})`,
      ),
      host: first.host,
      kind: 'name',
      port: q.port,
    };
  }
  return decideTarget(rules, { ...q, addresses });
}

/** What an event records of the query it was decided on: replay decides it again from this. */
export interface RecordedQuery {
  host: string;
  port: number;
  scheme: Scheme | null;
  method: string | null;
  path: string | null;
  intercepted: boolean;
  tunnel: boolean;
}

export function recordedQuery(q: TargetQuery): RecordedQuery {
  return {
    host: q.host,
    port: q.port,
    scheme: q.scheme ?? null,
    method: q.method ?? null,
    path: q.path ?? null,
    intercepted: !!q.intercepted,
    tunnel: !!q.tunnel,
  };
}

/**
 * The query of a recorded egress event (`data.query`, with the address it resolved to), so
 * the same decideTarget decides it again under another policy. Null when the event never
 * reached a decision (refused before its target was known).
 */
export function queryOfEvent(data: Record<string, unknown>): TargetQuery | null {
  const q = data.query as Partial<RecordedQuery> | undefined;
  if (!q || typeof q.host !== 'string' || typeof q.port !== 'number') return null;
  const address = typeof data.address === 'string' ? data.address : undefined;
  return {
    host: q.host,
    port: q.port,
    scheme: q.scheme ?? undefined,
    method: q.method ?? undefined,
    path: q.path ?? undefined,
    intercepted: q.intercepted === true,
    tunnel: q.tunnel === true,
    addresses: address ? [address] : undefined,
  };
}
