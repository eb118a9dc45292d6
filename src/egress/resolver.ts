import { lookup } from 'node:dns/promises';
import { Resolver as DnsResolver } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { parseIp } from './ip.ts';

// The gateway resolves names itself, once per request, and connects to exactly the
// address it checked. Resolvers are injectable: the system resolver, a fixed map (tests,
// `egress check --resolve`), or a given DNS server (a test's own server on loopback).

export interface Resolver {
  /** Addresses of a normalised host name, IPv4 first. Throws when the name does not resolve. */
  resolve(host: string): Promise<string[]>;
  readonly description: string;
}

function v4First(xs: string[]): string[] {
  const uniq = [...new Set(xs)];
  return [...uniq.filter((x) => !x.includes(':')), ...uniq.filter((x) => x.includes(':'))];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => {
      t = setTimeout(() => rej(Object.assign(new Error(`${what} timed out`), { code: 'ETIMEOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** getaddrinfo (the host's resolver, /etc/hosts included). */
export function systemResolver(timeoutMs = 5000): Resolver {
  return {
    description: 'system',
    async resolve(host) {
      const rs = await withTimeout(lookup(host, { all: true, order: 'ipv4first' }), timeoutMs, `lookup ${host}`);
      return v4First(rs.map((r) => r.address));
    },
  };
}

/**
 * Fixed answers: { 'registry.npmjs.org': '203.0.113.7', '*': '192.0.2.1' }. `*` answers
 * every other name; without it, an unknown name does not resolve (or goes to `fallback`).
 */
export function mapResolver(map: Record<string, string | string[]>, fallback?: Resolver): Resolver {
  const m = new Map<string, string[]>();
  for (const [k, v] of Object.entries(map)) {
    const ips = (Array.isArray(v) ? v : [v]).map((x) => {
      if (!ipaddr.isValid(x)) throw new Error(`not an IP address: ${x}`);
      return parseIp(x).toString();
    });
    m.set(k === '*' ? '*' : k.toLowerCase().replace(/\.$/, ''), ips);
  }
  return {
    description: fallback ? `map+${fallback.description}` : 'map',
    async resolve(host) {
      const hit = m.get(host) ?? (fallback ? undefined : m.get('*'));
      if (hit) return v4First(hit);
      if (fallback) return fallback.resolve(host);
      throw Object.assign(new Error(`${host} not in the resolver map`), { code: 'ENOTFOUND' });
    },
  };
}

/** Queries one DNS server (`ip` or `ip:port`) for A and AAAA records. */
export function dnsServerResolver(server: string, timeoutMs = 3000): Resolver {
  const r = new DnsResolver({ timeout: timeoutMs, tries: 1 });
  r.setServers([server]);
  return {
    description: `dns ${server}`,
    async resolve(host) {
      const [a, aaaa] = await Promise.allSettled([r.resolve4(host), r.resolve6(host)]);
      const out = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
      if (!out.length)
        throw a.status === 'rejected'
          ? a.reason
          : Object.assign(new Error(`${host} has no addresses`), { code: 'ENODATA' });
      return v4First(out.map((x) => parseIp(x).toString()));
    },
  };
}
