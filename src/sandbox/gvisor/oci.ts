import { lstatSync, readlinkSync } from 'node:fs';
import type { SandboxSpec } from '../driver.ts';

// The OCI bundle runsc runs: generated here from the same SandboxSpec the bubblewrap
// driver takes, so the workspace, mounts, environment and limits are one policy.
// Paths are host paths as seen in the holder's private mount namespace.

export const GVISOR_WORKSPACE = '/workspace';
export const GVISOR_HOME = '/home/agent';
/** Where Airlock's own pieces sit inside (root-only: the agent's uid cannot open the gateway sockets). */
export const GVISOR_PRIVATE_DIR = '/run/airlock';
/** The in-sandbox egress bridge binary (the supervisor's Node, bind-mounted read-only under a name that says what it is). */
export const GVISOR_BRIDGE_BIN = `${GVISOR_PRIVATE_DIR}/egress-bridge`;

/** System directories the agent sees read-only (symlinks, as on merged-/usr systems, are recreated in the root). */
export const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt'] as const;

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface BundleLayout {
  /** the empty, read-only root directory (mount points only) */
  rootfs: string;
  /** session tmpfs in the holder: merged/ home/ tmp/ vartmp/ shm/ */
  mnt: string;
  /** Airlock's /etc files (passwd, group, hosts, resolv.conf…) */
  etcDir: string;
  /** uid/gid the agent runs as (the unprivileged host uid: gVisor maps ids 1:1 to its gofer) */
  agentIds: { uid: number; gid: number };
  /** gateway unix sockets bind-mounted into GVISOR_PRIVATE_DIR, by in-sandbox port */
  gatewaySockets: { port: number; socket: string }[];
  /** the Node binary that serves the bridges (when there are any) */
  nodeBinary: string;
}

/** Symlinked system dirs (/bin → usr/bin) become symlinks in the root, real ones read-only binds. */
export function systemEntries(dirs: readonly string[] = SYSTEM_DIRS): { links: [string, string][]; binds: string[] } {
  const links: [string, string][] = [];
  const binds: string[] = [];
  for (const d of dirs) {
    let st;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) links.push([d, readlinkSync(d)]);
    else if (st.isDirectory()) binds.push(d);
  }
  return { links, binds };
}

function bind(source: string, destination: string, rw = false): OciMount {
  return { destination, type: 'bind', source, options: ['rbind', rw ? 'rw' : 'ro', 'nosuid', 'nodev'] };
}

/** The mounts of the container, in order (later ones sit on top). */
export function ociMounts(spec: SandboxSpec, b: BundleLayout, systemBinds: string[]): OciMount[] {
  const m: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    ...systemBinds.map((d) => bind(d, d)),
    ...['passwd', 'group', 'hostname', 'hosts', 'resolv.conf'].map((f) => bind(`${b.etcDir}/${f}`, `/etc/${f}`)),
    bind(`${b.mnt}/merged`, GVISOR_WORKSPACE, true),
    bind(`${b.mnt}/home`, GVISOR_HOME, true),
    bind(`${b.mnt}/tmp`, '/tmp', true),
    bind(`${b.mnt}/vartmp`, '/var/tmp', true),
    bind(`${b.mnt}/shm`, '/dev/shm', true),
    ...spec.mounts.readOnly.map((p) => bind(p, p)),
    ...spec.mounts.readWrite.map((p) => bind(p, p, true)),
    ...(spec.files ?? []).map((f) => bind(f.source, f.target)),
  ];
  for (const g of b.gatewaySockets) m.push(bind(g.socket, `${GVISOR_PRIVATE_DIR}/gateway-${g.port}.sock`, true));
  if (b.gatewaySockets.length) m.push(bind(b.nodeBinary, GVISOR_BRIDGE_BIN));
  return m;
}

/** rlimits of every agent process (the same as the bubblewrap driver's ulimits). */
export function ociRlimits(spec: SandboxSpec): { type: string; hard: number; soft: number }[] {
  const l = spec.limits;
  const r = (type: string, v: number) => ({ type, hard: v, soft: v });
  return [
    r('RLIMIT_CPU', l.cpuSeconds),
    r('RLIMIT_FSIZE', l.fileSizeMB * 1024 * 1024),
    r('RLIMIT_CORE', 0),
    r('RLIMIT_NOFILE', 4096),
    r('RLIMIT_NPROC', l.pids),
  ];
}

const NO_CAPS = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] };

/** The process.json of one agent command (`runsc exec --process`): argv and env never on a host command line. */
export function ociProcess(
  spec: SandboxSpec,
  b: BundleLayout,
  argv: string[],
  env: Record<string, string>,
  cwd: string,
): Record<string, unknown> {
  return {
    terminal: false,
    user: { uid: b.agentIds.uid, gid: b.agentIds.gid, additionalGids: [] },
    args: argv,
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cwd,
    capabilities: NO_CAPS,
    noNewPrivileges: true,
    rlimits: ociRlimits(spec),
  };
}

/** The container's config.json. Its init is the egress bridge (root, no capabilities) or an idle sleep. */
export function ociConfig(spec: SandboxSpec, b: BundleLayout, bridgeScript: string): Record<string, unknown> {
  const sys = systemEntries();
  const init = b.gatewaySockets.length ? [GVISOR_BRIDGE_BIN, '-e', bridgeScript] : ['/bin/sleep', 'infinity'];
  const l = spec.limits;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: init,
      cwd: '/',
      env: [
        'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
        `AIRLOCK_BRIDGE=${b.gatewaySockets.map((g) => `${g.port}=${GVISOR_PRIVATE_DIR}/gateway-${g.port}.sock`).join(',')}`,
      ],
      capabilities: NO_CAPS,
      noNewPrivileges: true,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }],
    },
    root: { path: b.rootfs, readonly: true },
    hostname: 'airlock',
    mounts: ociMounts(spec, b, sys.binds),
    linux: {
      namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })),
      // what the sentry itself enforces and reports inside; the host cgroup around runsc binds it from outside
      resources: {
        memory: { limit: l.memoryMB * 1024 * 1024 },
        pids: { limit: l.pids },
        cpu: { quota: l.cpuPercent * 1000, period: 100000 },
      },
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger', '/proc/irq', '/proc/bus'],
    },
  };
}

/**
 * The bridge that runs as the container's init (root inside gVisor, no capabilities): it
 * listens on the sandbox's 127.0.0.1:PORT and relays each connection to the gateway's unix
 * socket, bind-mounted root-only. Fixed text, trusted; it never reads what it relays.
 */
export const BRIDGE_SCRIPT = `'use strict';
const net = require('node:net');
const pairs = (process.env.AIRLOCK_BRIDGE || '').split(',').filter(Boolean).map((p) => p.split('='));
for (const [port, path] of pairs) {
  net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect({ path, allowHalfOpen: true });
    const end = () => { down.destroy(); up.destroy(); };
    down.on('error', end); up.on('error', end); down.on('close', end); up.on('close', end);
    down.pipe(up); up.pipe(down);
  }).listen({ port: Number(port), host: '127.0.0.1', backlog: 512 }, () => process.stdout.write('listening ' + port + '\\n'));
}
setInterval(() => {}, 1 << 30);`;
