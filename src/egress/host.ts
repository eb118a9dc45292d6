import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { parseIp } from './ip.ts';

// Host normalisation: every spelling of a destination becomes one canonical form before
// any rule sees it, so `GitHub.COM.`, `git%68ub.com` and `bücher.example` match like their
// canonical names and `0x7f.1`, `2130706433`, `0177.0.0.1` are all 127.0.0.1. What cannot
// be normalised is refused (the caller denies with builtin.bad-target).

export type NormalHost = { kind: 'name'; host: string } | { kind: 'ip'; host: string; family: 4 | 6 };

export class HostError extends Error {}

const FOUR_PART = /^(0|[1-9]\d*)(\.(0|[1-9]\d*)){3}$/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Canonical host or throws HostError. Accepts [v6], percent-encoding, IDN, numeric IPv4 forms. */
export function normalizeHost(raw: string): NormalHost {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 1024) throw new HostError('empty or oversized host');
  let h = raw;
  if (/%[0-9a-f]{2}/i.test(h)) {
    try {
      h = decodeURIComponent(h);
    } catch {
      throw new HostError('bad percent-encoding in host');
    }
  }
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  // userinfo, paths, ports, whitespace and control characters have no place in a host
  if (/[@/\\?#\s\x00-\x1f\x7f<>^|"'`{}]/.test(h)) throw new HostError(`not a host name: ${JSON.stringify(raw)}`);
  if (h.includes(':')) {
    if (h.includes('%')) throw new HostError('IPv6 zone identifiers are not allowed');
    let a;
    try {
      a = parseIp(h);
    } catch {
      throw new HostError(`not an IPv6 address: ${raw}`);
    }
    if (a.kind() !== 'ipv6') throw new HostError(`not an IPv6 address: ${raw}`);
    return { kind: 'ip', host: a.toString(), family: 6 };
  }
  const ascii = domainToASCII(h); // WHATWG host parser: lower-cases, IDNA, numeric IPv4 forms
  if (!ascii) throw new HostError(`not a valid host name: ${JSON.stringify(raw)}`);
  let name = ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
  // the shape first: ipaddr's isValid throws (and builds a stack trace) for every non-IP name
  if (FOUR_PART.test(name) && ipaddr.IPv4.isValidFourPartDecimal(name)) return { kind: 'ip', host: name, family: 4 };
  name = name.toLowerCase();
  if (name.length === 0 || name.length > 253) throw new HostError('host name too long or empty');
  const labels = name.split('.');
  if (labels.some((l) => !LABEL.test(l))) throw new HostError(`not a valid host name: ${JSON.stringify(raw)}`);
  // an all-numeric last label is an IPv4 form the parser refused (09.1.1.1): never a name
  if (/^(0x[0-9a-f]*|\d+)$/.test(labels[labels.length - 1]!))
    throw new HostError(`malformed numeric address: ${JSON.stringify(raw)}`);
  return { kind: 'name', host: name };
}

/** Formats host:port, bracketing IPv6. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Splits an authority `host:port` (CONNECT target, --allow-host value, Host header).
 * Userinfo, paths and empty or non-numeric ports are refused.
 */
export function splitAuthority(raw: string, defaultPort?: number): { host: string; port: number } {
  const s = raw.trim();
  if (!s || s.length > 1024) throw new HostError('empty target');
  if (/[@/\\?#\s]/.test(s)) throw new HostError(`not host:port: ${JSON.stringify(raw)}`);
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) throw new HostError(`unterminated [ in ${JSON.stringify(raw)}`);
    host = s.slice(0, end + 1);
    const rest = s.slice(end + 1);
    if (rest && !rest.startsWith(':')) throw new HostError(`junk after ] in ${JSON.stringify(raw)}`);
    portText = rest ? rest.slice(1) : undefined;
  } else {
    const i = s.lastIndexOf(':');
    if (i >= 0 && s.indexOf(':') !== i) throw new HostError(`IPv6 addresses need brackets: ${JSON.stringify(raw)}`);
    host = i >= 0 ? s.slice(0, i) : s;
    portText = i >= 0 ? s.slice(i + 1) : undefined;
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw new HostError(`a port is required: ${JSON.stringify(raw)}`);
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) throw new HostError(`bad port in ${JSON.stringify(raw)}`);
    port = Number(portText);
  }
  if (port < 1 || port > 65535) throw new HostError(`port out of range in ${JSON.stringify(raw)}`);
  if (!host) throw new HostError(`empty host in ${JSON.stringify(raw)}`);
  return { host, port };
}
