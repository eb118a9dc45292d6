import quote from 'shell-quote';

// The sandbox side of egress. The sandbox runs in its own, empty network namespace:
// only loopback, no route out. `setup` (POSIX sh, run as namespace root before the agent
// starts) brings lo up and bridges 127.0.0.1:3128 to the gateway's unix socket with
// socat. In transparent mode it also gives the namespace a dummy default route, redirects
// TCP to ports 80/443 (nftables) to bridges on 3180/3443 that reach the gateway's
// per-port sockets, answers DNS locally with one fixed synthetic address (dnsmasq, never
// forwarding: a lookup cannot carry data out) and rejects everything else at once.

export const PROXY_PORT = 3128;
export const TRANSPARENT_PORTS = [80, 443] as const;
/** Bridge port inside the sandbox for each original destination port. */
export const BRIDGE_PORT: Record<number, number> = { 80: 3180, 443: 3443 };
/** What every name resolves to inside a transparent-mode sandbox (benchmarking range; never routed). */
export const SYNTHETIC_ADDRESS = '198.18.0.1';
/** dnsmasq inside a transparent-mode sandbox: loopback only, every name → SYNTHETIC_ADDRESS, nothing forwarded. */
export const DNSMASQ_ARGS = [
  '--conf-file=/dev/null', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces',
  '--listen-address=127.0.0.1', '--port=53', `--address=/#/${SYNTHETIC_ADDRESS}`, '--user=root', '--group=', '--pid-file=', '--local-ttl=1',
] as const;

/** Transparent ports: 80 and 443 always, plus ports the policy grants (at most 64). */
export function transparentPortList(extra: readonly number[] = []): number[] {
  return [...new Set([...TRANSPARENT_PORTS, ...extra])].filter((p) => Number.isInteger(p) && p > 0 && p < 65536).sort((a, b) => a - b).slice(0, 64);
}

/** Where inside the sandbox the bridge for an original destination port listens. */
export function bridgePortFor(port: number, all: readonly number[]): number {
  if (BRIDGE_PORT[port]) return BRIDGE_PORT[port]!;
  return 41000 + all.filter((p) => !BRIDGE_PORT[p]).indexOf(port);
}

export function transparentSocketPath(unixPath: string, port: number): string {
  return `${unixPath}.${port}`;
}

const q = (s: string) => quote.quote([s]);

function bridge(port: number, path: string): string {
  return `socat TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,backlog=512 UNIX-CONNECT:${q(path)} </dev/null >/dev/null 2>&1 &\necho $! >> "$pids"`;
}

function waitListen(port: number): string {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return `i=0; until grep -q ':${hex} 00000000:0000 0A' /proc/net/tcp; do i=$((i+1)); [ $i -le 200 ] || { echo "airlock: egress bridge on 127.0.0.1:${port} did not start" >&2; exit 1; }; sleep 0.01; done`;
}

export function sandboxNetwork(gatewayUnixPath: string, opts: { transparent: boolean; pidFile?: string; /** the gateway's transparent ports (default 80, 443) */ ports?: number[]; /** host-loopback grants: the sandbox's 127.0.0.1:port leads to this gateway socket (Gateway.hostLoopbackSockets) */ hostLoopback?: Record<number, string> }): { setup: string; env: Record<string, string> } {
  const tports = transparentPortList(opts.ports ?? []);
  const lines = [
    'set -eu',
    `pids=${q(opts.pidFile ?? '/dev/null')}`,
    'command -v socat >/dev/null || { echo "airlock: socat is required for the egress bridge (apt-get install socat)" >&2; exit 1; }',
    'ip link set lo up',
    bridge(PROXY_PORT, gatewayUnixPath),
  ];
  if (opts.transparent) {
    lines.push(
      'command -v nft >/dev/null || { echo "airlock: nft is required for transparent egress (apt-get install nftables)" >&2; exit 1; }',
      // a default route so connect() reaches the nat hook instead of failing with ENETUNREACH
      // (a veth pair with both ends inside: the dummy driver is not always available)
      'ip link add airlock0 type veth peer name airlock1',
      'ip link set airlock1 up',
      'ip addr add 192.0.2.1/32 dev airlock0',
      'ip link set airlock0 up',
      'ip route add default dev airlock0',
      ...tports.map((p) => bridge(bridgePortFor(p, tports), transparentSocketPath(gatewayUnixPath, p))),
      // Names: a non-forwarding dnsmasq on 127.0.0.1:53 (the sandbox's resolv.conf says
      // `nameserver 127.0.0.1`) answers every A query with the synthetic address and has no
      // upstream server: a lookup never leaves, whatever name it carries. No user/group
      // change (setgroups is denied in a user namespace) and no host config (/etc/dnsmasq.conf
      // could name upstream servers). Without dnsmasq names do not resolve (fail fast).
      `if command -v dnsmasq >/dev/null; then dnsmasq ${DNSMASQ_ARGS.join(' ')} </dev/null >/dev/null 2>&1 & echo $! >> "$pids"; else echo "airlock: dnsmasq not installed: names do not resolve inside the sandbox in transparent mode (apt-get install dnsmasq-base)" >&2; fi`,
      `nft -f - <<'NFT'
table inet airlock {
  chain nat_out {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.0/8 return
    ip6 daddr ::1 return
${tports.map((p) => `    meta nfproto ipv4 tcp dport ${p} redirect to :${bridgePortFor(p, tports)}`).join('\n')}
  }
  chain filter_out {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    ct status dnat accept
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }
}
NFT`,
    );
  }
  const loopback = Object.entries(opts.hostLoopback ?? {}).map(([p, path]) => [Number(p), path] as const);
  for (const [port, path] of loopback) lines.push(bridge(port, path));
  lines.push(waitListen(PROXY_PORT));
  for (const [port] of loopback) lines.push(waitListen(port));
  if (opts.transparent) for (const p of tports) lines.push(waitListen(bridgePortFor(p, tports)));
  if (opts.transparent) {
    // dnsmasq binds before it serves; a failure here leaves names unresolved (nothing leaves either way)
    lines.push(`if command -v dnsmasq >/dev/null; then i=0; until grep -q ':0035 00000000:0000 0A' /proc/net/tcp; do i=$((i+1)); [ $i -le 200 ] || { echo "airlock: dnsmasq did not start: names do not resolve inside the sandbox" >&2; break; }; sleep 0.01; done; fi`);
  }
  const proxy = `http://127.0.0.1:${PROXY_PORT}`;
  const socks = `socks5h://127.0.0.1:${PROXY_PORT}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  const env: Record<string, string> = {
    HTTP_PROXY: proxy, HTTPS_PROXY: proxy, ALL_PROXY: socks, NO_PROXY: noProxy,
    http_proxy: proxy, https_proxy: proxy, all_proxy: socks, no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1', // Node 24: fetch/http honour HTTP(S)_PROXY
    npm_config_proxy: proxy, npm_config_https_proxy: proxy, npm_config_noproxy: noProxy,
    YARN_HTTP_PROXY: proxy, YARN_HTTPS_PROXY: proxy,
    PIP_PROXY: proxy,
    CARGO_HTTP_PROXY: proxy,
    GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_0: 'http.proxy', GIT_CONFIG_VALUE_0: proxy,
    GIT_CONFIG_KEY_1: 'https.proxy', GIT_CONFIG_VALUE_1: proxy,
    JAVA_TOOL_OPTIONS: `-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=${PROXY_PORT} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=${PROXY_PORT} -Dhttp.nonProxyHosts=localhost|127.0.0.1`,
    AIRLOCK_EGRESS_PROXY: proxy,
    AIRLOCK_EGRESS_MODE: opts.transparent ? 'proxy+transparent' : 'proxy',
  };
  return { setup: lines.join('\n') + '\n', env };
}
