// A session pod made for real on this machine under runsc (gVisor), in the shape the
// SandboxTemplate gives it on a cluster: one gVisor sandbox holding two containers, as a
// Kubernetes node with the gvisor RuntimeClass runs a pod (runsc's CRI annotations):
//   agent   — init `airlock pod supervise`, uid 100000, the workspace and its home;
//   gateway — `airlock pod gateway`, uid 100001, alone mounting the credentials and the policy.
// They share only the pod's loopback (runsc --network=none: no other interface). Airlock's
// code is the worktree, read-only at /opt/airlock (the image's place); Node beside it.
// The runsc state lives under <home>/sessions/<name>/sandbox/runsc, where the leftover
// check looks for containers that outlived their test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT } from '../helpers.ts';

export const AGENT_UID = 100000;
export const GATEWAY_UID = 100001;
const NODE_DIR = dirname(process.execPath);
const PATH = '/opt/node/bin:/usr/bin:/bin';
const PROXY_ENV = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].map((k) => `${k}=http://127.0.0.1:3128`);

export interface RunscPod {
  name: string;
  dirs: { workspace: string; home: string; gatewayHome: string; credentials: string; policy: string; shared: string };
  /** `runsc exec` into one of the pod's containers, as its user. */
  exec(container: 'agent' | 'gateway', argv: string[]): ChildProcess;
  stop(): void;
}

function bind(source: string, destination: string, rw = false) {
  return { destination, type: 'bind', source, options: ['rbind', rw ? 'rw' : 'ro', 'nosuid', 'nodev'] };
}

function containerConfig(o: {
  rootfs: string;
  args: string[];
  uid: number;
  home: string;
  env: string[];
  mounts: ReturnType<typeof bind>[];
  annotations: Record<string, string>;
}) {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: o.uid, gid: o.uid },
      args: o.args,
      cwd: '/',
      env: [`PATH=${PATH}`, `HOME=${o.home}`, ...o.env],
      capabilities: {},
      noNewPrivileges: true,
    },
    root: { path: o.rootfs, readonly: true },
    hostname: 'airlock-session',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
      ...['/usr', '/etc'].map((d) => bind(d, d)),
      bind(ROOT, '/opt/airlock'),
      bind(NODE_DIR, '/opt/node/bin'),
      ...o.mounts,
    ],
    annotations: o.annotations,
    linux: { namespaces: ['pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })) },
  };
}

function makeDirs(base: string, credentials: Record<string, string>, policyYaml: string) {
  const dirs = {
    workspace: join(base, 'workspace'),
    home: join(base, 'agent-home'),
    gatewayHome: join(base, 'gateway-home'),
    shared: join(base, 'shared'),
    credentials: join(base, 'credentials'),
    policy: join(base, 'policy'),
    rootfs: join(base, 'rootfs'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  for (const d of [
    'proc',
    'tmp',
    'usr',
    'etc',
    'opt/airlock',
    'opt/node/bin',
    'workspace',
    'home/agent',
    'run/airlock',
  ])
    mkdirSync(join(dirs.rootfs, d), { recursive: true });
  for (const l of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${l}`, join(dirs.rootfs, l));
  for (const [k, v] of Object.entries(credentials)) writeFileSync(join(dirs.credentials, k), v, { mode: 0o400 });
  writeFileSync(join(dirs.policy, 'airlock.yaml'), policyYaml);
  for (const d of [dirs.workspace, dirs.home]) chownSync(d, AGENT_UID, AGENT_UID);
  for (const d of [dirs.gatewayHome, dirs.credentials, dirs.policy, dirs.shared])
    chownSync(d, GATEWAY_UID, GATEWAY_UID);
  for (const [k] of Object.entries(credentials)) chownSync(join(dirs.credentials, k), GATEWAY_UID, GATEWAY_UID);
  chmodSync(dirs.credentials, 0o500);
  return dirs;
}

/** A runsc step; its output goes to a file, not a pipe (the sandbox it starts would hold a pipe open). */
function runscOrThrow(root: string, log: string, args: string[]): void {
  const fd = openSync(log, 'a');
  try {
    const r = spawnSync('runsc', [`--root=${root}`, '--network=none', '--ignore-cgroups', ...args], {
      stdio: ['ignore', fd, fd],
      timeout: 60_000,
    });
    if (r.status !== 0)
      throw new Error(`runsc ${args.join(' ')}: status ${r.status}: ${readFileSync(log, 'utf8').slice(-2000)}`);
  } finally {
    closeSync(fd);
  }
}

/** Waits (bounded) until the gateway container prints that it listens. */
async function gatewayListening(root: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync(
      'runsc',
      [
        `--root=${root}`,
        'exec',
        '--user',
        `${AGENT_UID}:${AGENT_UID}`,
        'agent',
        '/usr/bin/curl',
        '-s',
        '-o',
        '/dev/null',
        'http://127.0.0.1:3128/',
      ],
      { timeout: 20_000 },
    );
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('the pod gateway did not listen on 127.0.0.1:3128');
}

/** Starts the pod (both containers) under runsc; stop() removes every container and its state. */
export async function startRunscPod(o: {
  home: string;
  name: string;
  policyYaml: string;
  credentials?: Record<string, string>;
}): Promise<RunscPod> {
  const base = join(o.home, 'pods', o.name);
  const dirs = makeDirs(base, o.credentials ?? {}, o.policyYaml);
  const root = join(o.home, 'sessions', o.name, 'sandbox', 'runsc');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const pod = { 'io.kubernetes.cri.sandbox-id': 'agent' };
  const agent = containerConfig({
    rootfs: dirs.rootfs,
    args: ['/opt/airlock/bin/airlock', 'pod', 'supervise'],
    uid: AGENT_UID,
    home: '/home/agent',
    env: PROXY_ENV,
    mounts: [
      bind(dirs.workspace, '/workspace', true),
      bind(dirs.home, '/home/agent', true),
      // the template's gateway-shared volume: read-only in the agent container
      bind(dirs.shared, '/run/airlock/shared'),
    ],
    annotations: { ...pod, 'io.kubernetes.cri.container-type': 'sandbox' },
  });
  const gateway = containerConfig({
    rootfs: dirs.rootfs,
    args: [
      '/opt/airlock/bin/airlock',
      'pod',
      'gateway',
      '--listen',
      '127.0.0.1:3128',
      '--home',
      '/run/airlock/gateway',
      '--session',
      o.name,
    ],
    uid: GATEWAY_UID,
    home: '/run/airlock/gateway',
    env: [],
    mounts: [
      bind(dirs.credentials, '/run/airlock/credentials'),
      bind(dirs.policy, '/run/airlock/policy'),
      bind(dirs.gatewayHome, '/run/airlock/gateway', true),
      bind(dirs.shared, '/run/airlock/shared', true),
    ],
    annotations: { ...pod, 'io.kubernetes.cri.container-type': 'container' },
  });
  for (const [name, cfg] of [
    ['agent', agent],
    ['gateway', gateway],
  ] as const) {
    mkdirSync(join(base, name), { recursive: true });
    writeFileSync(join(base, name, 'config.json'), JSON.stringify(cfg));
  }
  const stop = () => {
    for (const c of ['gateway', 'agent'])
      spawnSync('runsc', [`--root=${root}`, 'delete', '-force', c], { timeout: 30_000 });
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const log = join(base, 'runsc.log');
    runscOrThrow(root, log, ['run', '-detach', '--bundle', join(base, 'agent'), 'agent']);
    runscOrThrow(root, log, ['create', '--bundle', join(base, 'gateway'), 'gateway']);
    runscOrThrow(root, log, ['start', 'gateway']);
    await gatewayListening(root);
  } catch (e) {
    stop();
    throw e;
  }
  return {
    name: o.name,
    dirs,
    exec: (container, argv) =>
      spawn(
        'runsc',
        [
          `--root=${root}`,
          'exec',
          '--user',
          container === 'agent' ? `${AGENT_UID}:${AGENT_UID}` : `${GATEWAY_UID}:${GATEWAY_UID}`,
          '--cwd',
          container === 'agent' ? '/workspace' : '/',
          '--env',
          `PATH=${PATH}`,
          '--env',
          `HOME=${container === 'agent' ? '/home/agent' : '/run/airlock/gateway'}`,
          // Kubernetes exec runs with the container's env: the template's proxy variables
          ...(container === 'agent' ? PROXY_ENV.flatMap((e) => ['--env', e]) : []),
          container,
          ...argv,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    stop,
  };
}
