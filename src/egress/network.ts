import { spawn } from 'node:child_process';
import { connect, type Server, type Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import { AirlockError, type AuditEventInput } from '../common/index.ts';

// The sandbox side of egress. The sandbox runs in its own, empty network namespace:
// only loopback, no route out. `setup` (POSIX sh, run as namespace root before the agent
// starts) brings lo up; in transparent mode it also gives the namespace a dummy default
// route and redirects TCP to ports 80/443 (nftables) to bridge ports 3180/3443, and
// rejects everything else at once.
//
// The bridges themselves run inside Airlock's own process: a short-lived helper, started
// in the namespace, opens the listening sockets (127.0.0.1:3128, the transparent ports,
// 127.0.0.1:53/udp) and hands them to the supervisor over its IPC channel (SCM_RIGHTS),
// then exits. A socket keeps the namespace it was created in, so the supervisor accepts
// the sandbox's connections without a process of its own: nothing can multiply per
// connection (the earlier socat `fork` bridge made one root process per connection,
// outside every limit) and nothing outlives the supervisor (its descriptors close with
// it). DNS is answered here too: every A query gets one fixed synthetic address, nothing
// is forwarded, so a lookup cannot carry data out.

export const PROXY_PORT = 3128;
export const TRANSPARENT_PORTS = [80, 443] as const;
/** Bridge port inside the sandbox for each original destination port. */
export const BRIDGE_PORT: Record<number, number> = { 80: 3180, 443: 3443 };
/** What every name resolves to inside a transparent-mode sandbox (benchmarking range; never routed). */
export const SYNTHETIC_ADDRESS = '198.18.0.1';
/** Transparent ports: 80 and 443 always, plus ports the policy grants (at most 64). */
export function transparentPortList(extra: readonly number[] = []): number[] {
  return [...new Set([...TRANSPARENT_PORTS, ...extra])]
    .filter((p) => Number.isInteger(p) && p > 0 && p < 65536)
    .sort((a, b) => a - b)
    .slice(0, 64);
}

/** Where inside the sandbox the bridge for an original destination port listens. */
export function bridgePortFor(port: number, all: readonly number[]): number {
  if (BRIDGE_PORT[port]) return BRIDGE_PORT[port]!;
  return 41000 + all.filter((p) => !BRIDGE_PORT[p]).indexOf(port);
}

export function transparentSocketPath(unixPath: string, port: number): string {
  return `${unixPath}.${port}`;
}

/** What the supervisor listens on inside the sandbox's namespace, and where each listener leads. */
export interface BridgePlan {
  tcp: { port: number; target: string }[];
  /** answer DNS on 127.0.0.1:53/udp with SYNTHETIC_ADDRESS (transparent mode) */
  dns: boolean;
  /** concurrent bridged connections; more are refused and recorded (counted like the gateway's own client cap) */
  maxConnections: number;
}

export interface SandboxNetwork {
  setup: string;
  env: Record<string, string>;
  bridge: BridgePlan;
  /** TCP ports whose connects to any address the namespace redirects to the gateway (transparent mode) */ redirectedPorts: number[];
}

export function sandboxNetwork(
  gatewayUnixPath: string,
  opts: {
    transparent: boolean;
    /** the gateway's transparent ports (default 80, 443) */ ports?: number[];
    /** egress.limits.maxConnections */ maxConnections?: number;
    /** host-loopback grants: the sandbox's 127.0.0.1:port leads to this gateway socket (Gateway.hostLoopbackSockets) */ hostLoopback?: Record<
      number,
      string
    >;
  },
): SandboxNetwork {
  const tports = transparentPortList(opts.ports ?? []);
  const lines = ['set -eu', 'ip link set lo up'];
  const tcp = [{ port: PROXY_PORT, target: gatewayUnixPath }];
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
    for (const p of tports)
      tcp.push({ port: bridgePortFor(p, tports), target: transparentSocketPath(gatewayUnixPath, p) });
  }
  for (const [port, target] of Object.entries(opts.hostLoopback ?? {})) tcp.push({ port: Number(port), target });
  // the gateway admits up to maxConnections*2+32 clients per socket before refusing them itself
  const maxConnections = (opts.maxConnections ?? 128) * 2 + 64;
  return {
    setup: lines.join('\n') + '\n',
    env: proxyEnv(opts.transparent),
    bridge: { tcp, dns: opts.transparent, maxConnections },
    redirectedPorts: opts.transparent ? tports : [],
  };
}

function proxyEnv(transparent: boolean): Record<string, string> {
  const proxy = `http://127.0.0.1:${PROXY_PORT}`;
  const socks = `socks5h://127.0.0.1:${PROXY_PORT}`;
  const noProxy = 'localhost,127.0.0.1,::1';
  const env: Record<string, string> = {
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    ALL_PROXY: socks,
    NO_PROXY: noProxy,
    http_proxy: proxy,
    https_proxy: proxy,
    all_proxy: socks,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1', // Node 24: fetch/http honour HTTP(S)_PROXY
    npm_config_proxy: proxy,
    npm_config_https_proxy: proxy,
    npm_config_noproxy: noProxy,
    YARN_HTTP_PROXY: proxy,
    YARN_HTTPS_PROXY: proxy,
    PIP_PROXY: proxy,
    CARGO_HTTP_PROXY: proxy,
    GIT_CONFIG_COUNT: '2',
    GIT_CONFIG_KEY_0: 'http.proxy',
    GIT_CONFIG_VALUE_0: proxy,
    GIT_CONFIG_KEY_1: 'https.proxy',
    GIT_CONFIG_VALUE_1: proxy,
    JAVA_TOOL_OPTIONS: `-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=${PROXY_PORT} -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=${PROXY_PORT} -Dhttp.nonProxyHosts=localhost|127.0.0.1`,
    AIRLOCK_EGRESS_PROXY: proxy,
    AIRLOCK_EGRESS_MODE: transparent ? 'proxy+transparent' : 'proxy',
  };
  return env;
}

// Runs in the sandbox's network namespace as its root (trusted code, fixed text): opens
// the listeners, hands each to the supervisor, exits. It never touches agent data.
const BRIDGE_HELPER = `'use strict';
const net = require('node:net'), dgram = require('node:dgram');
const fail = (e) => { process.send({ t: 'error', error: String((e && e.message) || e) }, () => process.exit(1)); };
const ports = (process.env.AIRLOCK_BRIDGE_TCP || '').split(',').filter(Boolean).map(Number);
for (const port of ports) {
  const s = net.createServer();
  s.on('error', fail);
  s.listen({ port, host: '127.0.0.1', backlog: 512 }, () => process.send({ t: 'tcp', port }, s, () => s.close()));
}
if (process.env.AIRLOCK_BRIDGE_DNS === '1') {
  const u = dgram.createSocket('udp4');
  u.on('error', fail);
  u.bind(53, '127.0.0.1', () => process.send({ t: 'udp' }, u, () => u.close()));
}`;

export interface Bridge {
  /** connections open right now */
  readonly active: number;
  close(): Promise<void>;
}

/**
 * Opens the plan's listeners inside a network namespace (`enter`: argv prefix that runs a
 * program as that namespace's root) and serves them from this process until close().
 */
export async function startBridge(
  plan: BridgePlan,
  options: {
    enter: string[];
    record: (e: AuditEventInput) => void;
    /** names the helper process (its environment) */ session?: string;
    timeoutMs?: number;
  },
): Promise<Bridge> {
  const child = spawn(options.enter[0]!, [...options.enter.slice(1), process.execPath, '-e', BRIDGE_HELPER], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    cwd: '/',
    env: {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      AIRLOCK_SESSION: options.session ?? '',
      AIRLOCK_BRIDGE_TCP: plan.tcp.map((t) => t.port).join(','),
      AIRLOCK_BRIDGE_DNS: plan.dns ? '1' : '0',
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let received = 0;
  const want = plan.tcp.length + (plan.dns ? 1 : 0);
  const bridge = new LiveBridge(plan, options.record);
  try {
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error('timed out')), options.timeoutMs ?? 15_000);
      const got = () => {
        if (++received === want) {
          clearTimeout(timer);
          res();
        }
      };
      child.on('message', (m: { t: string; port?: number; error?: string }, handle: unknown) => {
        const target = plan.tcp.find((t) => t.port === m.port)?.target;
        if (m.t === 'tcp' && handle && target) bridge.serve(handle as Server, target);
        else if (m.t === 'udp' && handle) bridge.answerDns(handle as UdpSocket);
        else {
          clearTimeout(timer);
          rej(new Error(m.error ?? `unexpected message ${String(m.t)}`));
          return;
        }
        got();
      });
      child.once('exit', (code) => {
        if (received < want) {
          clearTimeout(timer);
          rej(new Error(`helper exited (${code})`));
        }
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        rej(e);
      });
    });
  } catch (e) {
    child.kill('SIGKILL');
    await bridge.close();
    throw new AirlockError(
      'UNAVAILABLE',
      `the egress bridge into the sandbox did not start: ${e instanceof Error ? e.message : String(e)}${stderr ? ` (${stderr.trim()})` : ''}`,
      'check that nsenter (util-linux) is installed and network namespaces work here',
    );
  }
  if (child.connected) child.disconnect();
  return bridge;
}

class LiveBridge implements Bridge {
  active = 0;
  private refused = 0;
  private servers: Server[] = [];
  private udp: UdpSocket | null = null;
  private sockets = new Set<Socket>();
  private plan: BridgePlan;
  private record: (e: AuditEventInput) => void;
  constructor(plan: BridgePlan, record: (e: AuditEventInput) => void) {
    this.plan = plan;
    this.record = record;
  }

  serve(server: Server, target: string): void {
    this.servers.push(server);
    // half-close passes through (a client may shut down its side and still read the answer)
    (server as Server & { allowHalfOpen: boolean }).allowHalfOpen = true;
    server.on('connection', (down: Socket) => this.relay(down, target));
    server.on('error', () => {
      /* accept errors (EMFILE) refuse that one connection only */
    });
  }

  private relay(down: Socket, target: string): void {
    if (this.active >= this.plan.maxConnections) {
      if (this.refused++ === 0) {
        this.record({
          type: 'sandbox.limit',
          severity: 'high',
          decision: 'deny',
          rule: 'egress.limits.maxConnections',
          data: {
            limit: 'connections',
            detail: `${this.active} bridged connections open; the limit is ${this.plan.maxConnections}; further ones refused`,
          },
        });
      }
      down.destroy();
      return;
    }
    this.active++;
    const up = connect({ path: target, allowHalfOpen: true });
    this.sockets.add(down);
    this.sockets.add(up);
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      this.active--;
      this.sockets.delete(down);
      this.sockets.delete(up);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
    }
    down.pipe(up);
    up.pipe(down);
  }

  answerDns(udp: UdpSocket): void {
    this.udp = udp;
    udp.on('error', () => {
      /* a bad peer address: nothing to answer */
    });
    udp.on('message', (msg, peer) => {
      const answer = synthesizeAnswer(msg);
      if (answer) udp.send(answer, peer.port, peer.address);
    });
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    try {
      this.udp?.close();
    } catch {
      /* already closed */
    }
    if (this.refused > 1) {
      this.record({
        type: 'sandbox.limit',
        severity: 'high',
        decision: 'deny',
        rule: 'egress.limits.maxConnections',
        data: {
          limit: 'connections',
          detail: `${this.refused} bridged connections refused in all`,
          refused: this.refused,
        },
      });
    }
  }
}

/** Every A question gets SYNTHETIC_ADDRESS; other types get an empty answer; garbage gets nothing. */
export function synthesizeAnswer(query: Buffer): Buffer | null {
  if (query.length < 12 || query.length > 4096) return null;
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(query);
  } catch {
    return null;
  }
  if (q.type !== 'query' || !q.questions?.length || q.questions.length > 4) return null;
  try {
    return dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: q.questions
        .filter((x) => x.type === 'A' && x.class === 'IN')
        .map((x) => ({ type: 'A' as const, class: 'IN' as const, name: x.name, ttl: 1, data: SYNTHETIC_ADDRESS })),
    });
  } catch {
    return null;
  }
}
