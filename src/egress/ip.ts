import ipaddr from 'ipaddr.js';

// Address classification. Every address the gateway would connect to is classified; a
// special-purpose one is refused unless an allowCidrs rule grants it. IPv6 forms that
// embed an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) are special in
// themselves, and the reason names what they embed.

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

export interface AddressClass {
  /** 'public' or the special range name (loopback, private, metadata, ...). */
  range: string;
  special: boolean;
  /** The IPv4 address an IPv6 embedding carries, and its class. */
  embedded?: { kind: string; ipv4: string; range: string };
}

const V4: [string, string][] = [
  ['169.254.169.254/32', 'metadata'],
  ['168.63.129.16/32', 'metadata'], // Azure wire server
  ['100.100.100.200/32', 'metadata'], // Alibaba
  ['255.255.255.255/32', 'broadcast'],
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'ietf-protocol'],
  ['192.0.2.0/24', 'documentation'],
  ['192.31.196.0/24', 'as112'],
  ['192.52.193.0/24', 'amt'],
  ['192.88.99.0/24', '6to4-relay'],
  ['192.168.0.0/16', 'private'],
  ['192.175.48.0/24', 'as112'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
];
const V6: [string, string][] = [
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', 'ipv4-mapped'],
  ['::ffff:0:0:0/96', 'ipv4-translated'],
  ['::/96', 'ipv4-compatible'],
  ['64:ff9b::/96', 'nat64'],
  ['64:ff9b:1::/48', 'nat64'],
  ['100::/64', 'discard'],
  ['2001::/32', 'teredo'],
  ['2001:2::/48', 'benchmarking'],
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'ietf-protocol'],
  ['2002::/16', '6to4'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'srv6'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
  ['::/8', 'reserved'],
];
const parsed4 = V4.map(([c, n]) => [ipaddr.IPv4.parseCIDR(c), n] as const);
const parsed6 = V6.map(([c, n]) => [ipaddr.IPv6.parseCIDR(c), n] as const);

function v4Range(a: ipaddr.IPv4): string {
  for (const [[net, bits], name] of parsed4) if (a.match(net, bits)) return name;
  return 'public';
}

function v4FromBytes(b: number[]): ipaddr.IPv4 {
  return new ipaddr.IPv4(b.slice(0, 4));
}

/** The IPv4 address inside an IPv6 embedding form, if any. */
export function embeddedIpv4(a: ipaddr.IPv6, range: string): ipaddr.IPv4 | undefined {
  const b = a.toByteArray();
  switch (range) {
    case 'ipv4-mapped':
    case 'ipv4-compatible':
    case 'ipv4-translated':
    case 'nat64':
      return v4FromBytes(b.slice(12));
    case '6to4':
      return v4FromBytes(b.slice(2, 6));
    case 'teredo':
      return v4FromBytes(b.slice(12).map((x) => x ^ 0xff));
    default:
      return undefined;
  }
}

/**
 * Parses an address. ipaddr.js reads every `::a.b.c.d` as IPv4-mapped; the trailing
 * dotted quad is rewritten as two hex groups first so `::127.0.0.1` stays IPv4-compatible.
 */
export function parseIp(ip: string): Addr {
  const m = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (m && ip.includes(':')) {
    const b = m.slice(2, 6).map(Number);
    if (b.some((x) => x > 255)) throw new Error(`bad embedded IPv4 in ${ip}`);
    return ipaddr.IPv6.parse(`${m[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`);
  }
  return ipaddr.parse(ip);
}

export function classifyAddress(ip: string | Addr): AddressClass {
  const a = typeof ip === 'string' ? parseIp(ip) : ip;
  if (a.kind() === 'ipv4') {
    const range = v4Range(a as ipaddr.IPv4);
    return { range, special: range !== 'public' };
  }
  const v6 = a as ipaddr.IPv6;
  let range = 'public';
  for (const [[net, bits], name] of parsed6)
    if (v6.match(net, bits)) {
      range = name;
      break;
    }
  const emb = embeddedIpv4(v6, range);
  if (emb) return { range, special: true, embedded: { kind: range, ipv4: emb.toString(), range: v4Range(emb) } };
  return { range, special: range !== 'public' };
}

/** The address to match CIDR rules against: an IPv4-mapped IPv6 address is its IPv4 address. */
export function unmapped(ip: string): Addr {
  const a = parseIp(ip);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
  return a;
}

export type Cidr = [Addr, number];

export function parseCidr(text: string): Cidr {
  const [net, bits] = ipaddr.parseCIDR(text);
  return [net, bits];
}

export function inCidr(ip: string, c: Cidr): boolean {
  const a = unmapped(ip);
  const [net, bits] = c;
  if (a.kind() !== net.kind()) return false;
  return (a as ipaddr.IPv4).match(net as ipaddr.IPv4, bits);
}

export function describeClass(c: AddressClass): string {
  if (c.embedded) return `${c.range} embedding of ${c.embedded.ipv4} (${c.embedded.range})`;
  return c.range;
}
