import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { AirlockError, shellQuote, type AuditEventInput } from '../../common/index.ts';
import { resolveExecCommand } from '../exec-command.ts';
import type {
  ExecHandle,
  ExecOptions,
  ExecResult,
  Mechanisms,
  Sandbox,
  SandboxDriver,
  SandboxSpec,
} from '../driver.ts';
import { createCgroup, type CgroupHandle } from '../limits.ts';
import { closeInheritedDescriptors, delay, readlinkSafe, which, HOST_UID_FOR_SANDBOX } from '../bwrap.ts';
import { constants } from 'node:os';
import {
  BRIDGE_SCRIPT,
  GVISOR_HOME,
  GVISOR_WORKSPACE,
  ociConfig,
  ociProcess,
  systemEntries,
  type BundleLayout,
} from './oci.ts';
import { GvisorTraceReader, GVISOR_TRACED_SYSCALLS } from './strace.ts';
import { recordTraceFailure } from '../trace-failure.ts';

// gVisor driver: the agent runs under runsc, a user-space kernel (the sentry) between it
// and the host kernel, so a kernel bug reachable from the agent is a bug in gVisor first.
//
//   supervisor ─spawn→ setpriv(pdeathsig) → unshare(mount, pid; kill-child) → holder sh (pid 1):
//                        tmpfs (disk cap) + overlay workspace, in a private mount namespace
//   supervisor ─spawn→ sh(cgroup) → nsenter(holder: mount, pid) → runsc run -detach (sentry + gofer)
//   each command: nsenter(holder) → runsc exec --process P.json (argv, env, uid, rlimits in a file)
//
// Everything runsc starts lives in the holder's pid namespace: when the supervisor dies,
// the holder gets its death signal, and the kernel kills every process of that namespace
// (sentry, gofer, runsc exec) with it. The sentry has no network (--network=none); the
// container's init is Airlock's bridge, root inside (the agent's uid cannot signal it or
// open the sockets it uses), relaying the sandbox's 127.0.0.1:PORT to the gateway's unix
// socket, bind-mounted with --host-uds=open (no other host socket is mounted).

const GATEWAY_CONNECT_TIMEOUT_MS = 15_000;
const LIMIT_KEY = { wall: 'wallSeconds', disk: 'diskMB', memory: 'memoryMB', pids: 'pids' } as const;
/** Host threads and stub processes of the sentry and gofer themselves (ptrace platform), on top of the agent's own. */
const SENTRY_PIDS_HEADROOM = 256;

export class GvisorDriver implements SandboxDriver {
  readonly name = 'gvisor';

  check(): { ok: true } | { ok: false; reason: string; fix: string } {
    if (process.platform !== 'linux')
      return {
        ok: false,
        reason: 'the gVisor runtime needs Linux',
        fix: 'run Airlock on Linux or use sandbox.runtime: kubernetes',
      };
    if (process.getuid?.() !== 0)
      return {
        ok: false,
        reason: 'the gVisor runtime needs root (runsc creates its namespaces and cgroups as root)',
        fix: 'run Airlock as root, or set sandbox.runtime: bwrap',
      };
    for (const c of ['runsc', 'unshare', 'nsenter', 'setpriv']) {
      if (!which(c))
        return {
          ok: false,
          reason: `${c} is not installed`,
          fix: 'apt-get install runsc util-linux (scripts/setup.sh installs both)',
        };
    }
    return { ok: true };
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const c = this.check();
    if (!c.ok) throw new AirlockError('UNAVAILABLE', c.reason, c.fix);
    const sb = new GvisorSandbox(spec);
    try {
      await sb.init();
    } catch (e) {
      await sb.stop();
      throw e;
    }
    if (spec.gateway?.dns) {
      // Nothing is weaker for it: a direct connection still finds no network at all. It only
      // means programs that ignore the proxy variables fail instead of being redirected.
      spec.record({
        type: 'sandbox.degraded',
        session: spec.session,
        severity: 'low',
        rule: 'sandbox.runtime',
        data: {
          feature: 'transparent egress',
          reason:
            'the gVisor sentry has no nftables: connections to ports 80/443 are not redirected and names do not resolve inside; proxy-aware tools reach the gateway as usual',
        },
      });
    }
    return sb;
  }
}

interface LiveExec {
  child: ChildProcess;
  pidFile: string;
  internalPid: number | null;
  argv: string[];
  path: string;
  cwd: string;
  announced: boolean;
}

class GvisorSandbox implements Sandbox {
  readonly mechanisms: Mechanisms;
  readonly limitHit: Promise<{ limit: string; detail: string }>;
  readonly bridgesGateway = true;
  private spec: SandboxSpec;
  private layout: BundleLayout;
  private id: string;
  private holder: ChildProcess | null = null;
  private holderPid = 0;
  private cgroup: CgroupHandle | null;
  private live = new Set<LiveExec>();
  private execCount = 0;
  private stopped = false;
  private monitor: NodeJS.Timeout | null = null;
  private wallTimer: NodeJS.Timeout | null = null;
  private resolveLimit!: (v: { limit: string; detail: string }) => void;
  private limitEnded = false;
  private reader: GvisorTraceReader;
  private log = { file: '', offset: 0, decoder: new StringDecoder('utf8') };

  constructor(spec: SandboxSpec) {
    this.spec = spec;
    this.id = spec.session;
    const ids = spec.hostIds ?? { uid: HOST_UID_FOR_SANDBOX, gid: HOST_UID_FOR_SANDBOX };
    this.layout = {
      rootfs: join(spec.stateDir, 'rootfs'),
      mnt: join(spec.stateDir, 'mnt'),
      etcDir: join(spec.stateDir, 'etc'),
      agentIds: ids,
      gatewaySockets: (spec.gateway?.tcp ?? []).map((t) => ({ port: t.port, socket: t.target })),
      nodeBinary: process.execPath,
    };
    this.cgroup = createCgroup(spec.session, { ...spec.limits, pids: spec.limits.pids + SENTRY_PIDS_HEADROOM });
    this.reader = new GvisorTraceReader(spec.session);
    this.mechanisms = {
      driver: 'gvisor',
      limits: this.cgroup ? (this.cgroup.version === 1 ? 'cgroup-v1' : 'cgroup-v2') : 'rlimit',
      uidMapping: 'unprivileged-host-uid',
      tracing: spec.trace ? 'gvisor-strace' : 'off',
      network: spec.gateway ? 'gateway' : 'none',
      seccomp: 'gvisor-sentry',
    };
    this.limitHit = new Promise((r) => {
      this.resolveLimit = r;
    });
  }

  private runscArgs(): string[] {
    // --ignore-cgroups: runsc would otherwise move the sandbox into cgroups of its own at the hierarchy's root (named after the container, left behind); the session's cgroup, joined before runsc starts, binds it instead
    const a = [
      'runsc',
      `--root=${this.runscRoot()}`,
      '--network=none',
      '--ignore-cgroups',
      '--debug-log-format=json',
      `--debug-log=${join(this.layout.mnt, 'log')}/`,
    ];
    if (this.layout.gatewaySockets.length) a.push('--host-uds=open');
    if (this.spec.trace)
      a.push('--strace', `--strace-syscalls=${GVISOR_TRACED_SYSCALLS.join(',')}`, '--strace-log-size=4096');
    return a;
  }

  /** runsc's state: in the holder's tmpfs, so it vanishes with the holder even when the supervisor is killed */
  private runscRoot(): string {
    return join(this.layout.mnt, 'runsc');
  }

  /** argv prefix: a program in the holder's mount and pid namespaces (nsenter forks into the pid namespace). */
  private inHolder(): string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', '-p', '--'];
  }

  async init(): Promise<void> {
    const s = this.spec;
    const b = this.layout;
    for (const l of s.lowerDirs) {
      if (/[:,\\]/.test(l))
        throw new AirlockError(
          'UNAVAILABLE',
          `path not usable as an overlay layer: ${l}`,
          'set AIRLOCK_HOME to a path without ":" "," or "\\"',
        );
    }
    for (const d of ['bundle', 'mnt']) mkdirSync(join(s.stateDir, d), { recursive: true, mode: 0o700 });
    this.writeEtc();
    this.writeRootfs();
    await this.startHolder();
    writeFileSync(join(s.stateDir, 'bundle', 'config.json'), JSON.stringify(ociConfig(s, b, BRIDGE_SCRIPT)), {
      mode: 0o600,
    });
    await this.startContainer();
    this.startMonitor();
  }

  private writeEtc(): void {
    const etc = this.layout.etcDir;
    const { uid, gid } = this.layout.agentIds;
    mkdirSync(etc, { recursive: true, mode: 0o755 });
    writeFileSync(
      join(etc, 'passwd'),
      `root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:${uid}:${gid}:Airlock agent:${GVISOR_HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    );
    writeFileSync(join(etc, 'group'), `root:x:0:\nagent:x:${gid}:\nnogroup:x:65534:\n`);
    writeFileSync(join(etc, 'hostname'), 'airlock\n');
    writeFileSync(join(etc, 'hosts'), '127.0.0.1 localhost airlock\n::1 localhost ip6-localhost\n');
    writeFileSync(
      join(etc, 'resolv.conf'),
      '# Airlock: no DNS inside the sandbox; use the HTTP/SOCKS proxy (names resolve at the gateway)\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n',
    );
  }

  /** An empty root with only mount points and the system symlinks (read-only in the container). */
  private writeRootfs(): void {
    const r = this.layout.rootfs;
    for (const d of [
      'proc',
      'dev',
      'sys',
      'tmp',
      'var/tmp',
      'workspace',
      'home/agent',
      'run/airlock',
      'etc',
      'usr',
      'opt',
    ])
      mkdirSync(join(r, d), { recursive: true, mode: 0o755 });
    for (const [path, target] of systemEntries().links) {
      try {
        symlinkSync(target, join(r, path));
      } catch {
        /* exists */
      }
    }
  }

  private async startHolder(): Promise<void> {
    const spec = this.spec;
    const { uid, gid } = this.layout.agentIds;
    const script = [
      'set -e',
      // runsc re-executes /proc/self/exe: /proc must be this pid namespace's
      'mount -t proc -o nosuid,nodev,noexec proc /proc',
      `S=${shellQuote(this.layout.mnt)}`,
      `mount -t tmpfs -o size=${spec.limits.diskMB}m,mode=0755,nosuid,nodev tmpfs "$S"`,
      'mkdir -p "$S/upper" "$S/work" "$S/merged" "$S/tmp" "$S/vartmp" "$S/shm" "$S/home" "$S/runsc" "$S/log" "$S/proc"',
      // runsc's state and the sentry's log (argv and paths unredacted) live and die with the holder
      'chmod 0700 "$S/runsc" "$S/log" "$S/proc"',
      'chmod 1777 "$S/tmp" "$S/vartmp" "$S/shm"',
      `chown ${uid}:${gid} "$S/upper" "$S/tmp" "$S/vartmp" "$S/home"`,
      `mount -t overlay overlay -o ${shellQuote(`lowerdir=${spec.lowerDirs.join(':')},upperdir=`)}"$S/upper",workdir="$S/work" "$S/merged"`,
      'echo ready',
      'set +e',
      'read stop',
    ].join('\n');
    this.holder = spawn(
      'setpriv',
      [
        '--pdeathsig',
        'KILL',
        '--',
        'unshare',
        '--mount',
        '--pid',
        '--fork',
        '--kill-child',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        script,
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', AIRLOCK_SESSION: spec.session },
        cwd: '/',
        detached: true,
      },
    );
    let err = '';
    this.holder.stderr!.on('data', (d: Buffer) => {
      if (err.length < 4096) err += d.toString();
    });
    await new Promise<void>((res, rej) => {
      let out = '';
      this.holder!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) res();
      });
      this.holder!.once('exit', (code) =>
        rej(
          new AirlockError(
            'UNAVAILABLE',
            `gVisor sandbox setup failed (exit ${code}): ${err.trim() || 'no output'}`,
            'check that overlayfs and mount/pid namespaces are available',
          ),
        ),
      );
      this.holder!.once('error', rej);
    });
    // the holder is unshare's forked child: pid 1 of the new pid namespace
    const u = this.holder.pid ?? 0;
    const kids = readFileSync(`/proc/${u}/task/${u}/children`, 'utf8').trim().split(/\s+/).map(Number).filter(Boolean);
    if (kids.length !== 1)
      throw new AirlockError(
        'UNAVAILABLE',
        'gVisor sandbox holder not found',
        'report this: unshare --fork left no single child',
      );
    this.holderPid = kids[0]!;
  }

  private async startContainer(): Promise<void> {
    const cg = this.cgroup?.procsFiles.join(':') ?? '';
    closeInheritedDescriptors();
    const argv = [
      ...this.inHolder(),
      ...this.runscArgs(),
      'run',
      '--bundle',
      join(this.spec.stateDir, 'bundle'),
      '--detach',
      this.id,
    ];
    // runsc and everything it starts (sentry, gofer) join the session's cgroup first
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        'IFS=:; for f in $AIRLOCK_CG; do [ -n "$f" ] && { echo $$ > "$f" || exit 125; }; done; unset AIRLOCK_CG; exec "$@"',
        'airlock-runsc',
        ...argv,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: '/',
        detached: true,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', AIRLOCK_SESSION: this.spec.session, AIRLOCK_CG: cg },
      },
    );
    let err = '';
    let out = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 8192) err += d.toString();
    });
    // the container's init (the bridge) keeps runsc's stdout: it says when each listener is up
    const want = this.layout.gatewaySockets.length;
    const listening = new Promise<void>((res) => {
      if (!want) {
        res();
        return;
      }
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^listening \d+$/gm)?.length ?? 0) >= want) res();
      });
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) {
      throw new AirlockError(
        'UNAVAILABLE',
        `runsc could not start the sandbox (exit ${code}): ${err.trim().split('\n').slice(-3).join(' ') || 'no output'}`,
        'check that runsc works here (runsc --version) and that Airlock runs as root',
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      listening.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), GATEWAY_CONNECT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    child.stdout!.on('data', () => {
      /* keep draining: the bridge must never block on a full pipe */
    });
    if (!ok)
      throw new AirlockError(
        'UNAVAILABLE',
        'the egress bridge inside the gVisor sandbox did not start',
        'check that the gateway socket exists and runsc supports --host-uds=open',
      );
  }

  private startMonitor(): void {
    this.monitor = setInterval(() => {
      this.checkLimits();
      this.drain();
    }, 200);
    this.monitor.unref();
    this.wallTimer = setTimeout(
      () => this.hit('wall', `wall-clock limit ${this.spec.limits.wallSeconds}s reached`),
      this.spec.limits.wallSeconds * 1000,
    );
    this.wallTimer.unref();
  }

  private checkLimits(): void {
    if (this.stopped) return;
    const c = this.cgroup?.counters();
    if (c && c.oomKills > 0)
      return this.hit(
        'memory',
        `memory limit ${this.spec.limits.memoryMB} MiB reached (OOM kill in the gVisor sandbox)`,
      );
    if (c && c.pidsRefused > 0) return this.hit('pids', `process limit ${this.spec.limits.pids} reached`);
    try {
      const st = statfsSync(`/proc/${this.holderPid}/root${this.layout.mnt}`);
      if (st.bfree === 0 || st.bavail * st.bsize < 64 * 1024)
        this.hit('disk', `workspace disk cap ${this.spec.limits.diskMB} MiB reached`);
    } catch {
      /* holder gone */
    }
  }

  private hit(limit: keyof typeof LIMIT_KEY, detail: string): void {
    if (this.stopped || this.limitEnded) return;
    this.limitEnded = true;
    this.spec.record({
      type: 'sandbox.limit',
      session: this.spec.session,
      severity: 'high',
      decision: 'deny',
      rule: `sandbox.limits.${LIMIT_KEY[limit]}`,
      data: { limit, detail, mechanism: this.mechanisms.limits },
    });
    this.resolveLimit({ limit, detail });
    void this.killAll();
  }

  /** The events that describe a command's end (command.exit); a store failure is the session's to handle. */
  private recordEnd(events: AuditEventInput[]): void {
    try {
      for (const ev of events) this.spec.record(ev);
    } catch {
      /* the session keeps the events, freezes and ends */
    }
  }

  /** Reads what the sentry's strace appended to the sandbox's log since the last call. */
  private drain(): void {
    if (!this.spec.trace) return;
    for (const l of this.live) this.announce(l);
    try {
      if (!this.log.file) {
        const dir = `/proc/${this.holderPid}/root${join(this.layout.mnt, 'log')}`;
        const f = readdirSync(dir).find((n) => n.endsWith('.boot.txt'));
        if (!f) return;
        this.log.file = join(dir, f);
      }
      const fd = openSync(this.log.file, 'r');
      const buf = Buffer.allocUnsafe(1 << 20);
      try {
        for (let i = 0; i < 64; i++) {
          const n = readSync(fd, buf, 0, buf.length, this.log.offset);
          if (n <= 0) break;
          this.log.offset += n;
          for (const ev of this.reader.push(this.log.decoder.write(buf.subarray(0, n)))) this.spec.record(ev);
        }
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      // fail closed: what cannot be recorded does not run on
      void this.killAll();
      recordTraceFailure(this.spec, e);
    }
  }

  /** Records a command's first process once runsc exec has written its pid inside the sandbox. */
  private announce(l: LiveExec): void {
    if (l.announced) return;
    l.internalPid ??= readPid(l.pidFile);
    if (!l.internalPid) return;
    l.announced = true;
    this.reader.noteRoot(l.internalPid, l.argv[0] ?? '', l.cwd);
    this.spec.record({
      type: 'process.exec',
      session: this.spec.session,
      data: {
        pid: l.internalPid,
        ppid: 0,
        argv: l.argv,
        path: l.path,
        cwd: l.cwd,
        ts: Date.now() / 1000,
        via: 'runsc exec',
      },
    });
  }

  workspaceView(): string {
    return `/proc/${this.holderPid}/root${this.layout.mnt}/merged`;
  }
  trustedNs(): { prefix: string[]; path: string } {
    return { prefix: ['nsenter', '-t', String(this.holderPid), '-m', '--'], path: join(this.layout.mnt, 'merged') };
  }
  namespaces(): Record<string, string | null> {
    return Object.fromEntries(['mnt', 'pid'].map((n) => [n, readlinkSafe(`/proc/${this.holderPid}/ns/${n}`)]));
  }
  networkNs(): string[] {
    throw new AirlockError(
      'BAD_STATE',
      'the gVisor sandbox has no network namespace to enter: its bridge runs inside the sentry',
      'report this: the session should not bridge into a gVisor sandbox',
    );
  }
  upperGitDir(): string {
    return `/proc/${this.holderPid}/root${this.layout.mnt}/upper/.git`;
  }

  /** A path as the agent sees it, as the host can stat it (for "command not found" before runsc starts anything). */
  private hostView(p: string): string | null {
    const root = `/proc/${this.holderPid}/root${this.layout.mnt}`;
    for (const m of [...this.spec.mounts.readOnly, ...this.spec.mounts.readWrite])
      if (p === m || p.startsWith(m + '/')) return p;
    if (p === GVISOR_WORKSPACE || p.startsWith(GVISOR_WORKSPACE + '/'))
      return root + '/merged' + p.slice(GVISOR_WORKSPACE.length);
    if (p === GVISOR_HOME || p.startsWith(GVISOR_HOME + '/')) return root + '/home' + p.slice(GVISOR_HOME.length);
    if (p.startsWith('/tmp/')) return root + '/tmp' + p.slice(4);
    if (/^\/(usr|bin|sbin|lib|lib64|opt|etc)(\/|$)/.test(p)) return p;
    return null;
  }

  exec(argv: string[], opts: ExecOptions): ExecHandle {
    const env = { ...this.spec.env, ...(opts.env ?? {}) };
    const cwd = opts.cwd ?? GVISOR_WORKSPACE;
    const path = resolveExecCommand({ stopped: this.stopped, argv, env, cwd, hostView: (p) => this.hostView(p) });
    // runsc exec cannot be held at its start: the command's event is made durable before anything of it
    opts.beforeStart?.();
    const n = ++this.execCount;
    // in the holder's tmpfs (argv unredacted): runsc reads them there, the host through /proc/<holder>/root
    const procFile = join(this.layout.mnt, 'proc', `${n}.json`);
    const pidFile = join(this.layout.mnt, 'proc', `${n}.pid`);
    const hostView = (p: string) => `/proc/${this.holderPid}/root${p}`;
    writeFileSync(hostView(procFile), JSON.stringify(ociProcess(this.spec, this.layout, argv, env, cwd)), {
      mode: 0o600,
    });
    closeInheritedDescriptors();
    const stdio = opts.stdio === 'inherit' ? ownedStdio() : (['pipe', 'pipe', 'pipe'] as const);
    let child: ChildProcess;
    try {
      child = spawn(
        this.inHolder()[0]!,
        [
          ...this.inHolder().slice(1),
          ...this.runscArgs(),
          'exec',
          '--process',
          procFile,
          '--internal-pid-file',
          pidFile,
          this.id,
        ],
        {
          stdio: [...stdio],
          cwd: '/',
          detached: true,
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', AIRLOCK_SESSION: this.spec.session },
        },
      );
    } finally {
      for (const fd of stdio) if (typeof fd === 'number') closeSync(fd);
    }
    if (opts.stdio === 'inherit') relayStdio(child);
    const live: LiveExec = { child, pidFile: hostView(pidFile), internalPid: null, argv, path, cwd, announced: false };
    this.live.add(live);
    const done = new Promise<ExecResult>((res) => {
      child.once('error', () => res({ exitCode: null, signal: null, status: 126 }));
      child.once('close', (code, signal) => {
        this.drain();
        this.live.delete(live);
        const status = code ?? 128;
        // an exit_group in the trace says how it ended, except for a kill by a signal
        const sig = status > 128 && status < 160 ? status - 128 : null;
        if (live.internalPid && sig) {
          this.spec.record({
            type: 'process.exit',
            session: this.spec.session,
            data: {
              pid: live.internalPid,
              ppid: 0,
              argv0: argv[0],
              exitCode: null,
              signal: signalName(sig),
              start: null,
              end: Date.now() / 1000,
            },
          });
        }
        rmSync(hostView(procFile), { force: true });
        rmSync(hostView(pidFile), { force: true });
        const result = { exitCode: code, signal, status: code ?? 128 };
        this.recordEnd(opts.exitEvents?.(result) ?? []);
        this.checkLimits();
        res(result);
      });
    });
    return {
      pid: child.pid ?? 0,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      done,
      kill: (sig: NodeJS.Signals = 'SIGTERM') => {
        // the command runs inside the sentry: signalling runsc exec on the host would not reach it
        live.internalPid ??= readPid(live.pidFile);
        if (live.internalPid) this.runsc(['kill', '--pid', String(live.internalPid), this.id, sig.replace(/^SIG/, '')]);
        else
          try {
            child.kill(sig);
          } catch {
            /* gone */
          }
      },
    };
  }

  /** One runsc control command in the holder (bounded: a wedged sandbox must not hang the supervisor). */
  private runsc(args: string[]): boolean {
    if (!this.holderPid) return false;
    const r = spawnSync(
      this.inHolder()[0]!,
      [...this.inHolder().slice(1), 'runsc', `--root=${this.runscRoot()}`, ...args],
      { stdio: 'ignore', timeout: 10_000 },
    );
    return r.status === 0;
  }

  pause(): boolean {
    return this.cgroup?.freeze() || this.runsc(['pause', this.id]);
  }
  resume(): boolean {
    return this.cgroup?.thaw() || this.runsc(['resume', this.id]);
  }

  async killAll(): Promise<void> {
    const waits = [...this.live]
      .filter((l) => l.child.exitCode === null && l.child.signalCode === null)
      .map((l) => once(l.child, 'close'));
    // every process in the container, the bridge included: the session is ending
    this.runsc(['kill', '--all', this.id, 'KILL']);
    this.cgroup?.thaw();
    await Promise.race([Promise.all(waits), delay(5000)]);
    for (const l of this.live) {
      try {
        l.child.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.checkLimits();
    if (this.holderPid) {
      this.drain();
      await this.killAll();
    }
    this.stopped = true;
    if (this.monitor) clearInterval(this.monitor);
    if (this.wallTimer) clearTimeout(this.wallTimer);
    // no `runsc delete`: it waits seconds for the sentry to wind down; ending the holder ends its
    // pid namespace (sentry, gofer: SIGKILL from the kernel) and its tmpfs (runsc's state)
    const h = this.holder;
    if (h && h.exitCode === null && h.signalCode === null) {
      const exited = once(h, 'exit');
      h.stdin!.end('stop\n');
      await Promise.race([exited, delay(3000)]);
      if (h.exitCode === null && h.signalCode === null) {
        h.kill('SIGKILL');
        await exited;
      }
    }
    this.cgroup?.remove();
  }
}

function signalName(n: number): string {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}

/**
 * The supervisor's stdin/stdout/stderr reopened as new open file descriptions: runsc donates
 * the descriptors it gets to the sandbox and makes them non-blocking, which on shared ones
 * would make the supervisor's own later writes fail with EAGAIN. A descriptor that cannot be
 * reopened (a socket) becomes a pipe relayed by relayStdio.
 */
function ownedStdio(): (number | 'pipe')[] {
  return [0, 1, 2].map((n) => {
    try {
      return openSync(`/proc/self/fd/${n}`, n === 0 ? 'r' : 'a');
    } catch {
      return 'pipe' as const;
    }
  });
}

/** Where a descriptor could not be reopened (a socket, as Node's own children get), its bytes are relayed instead. */
function relayStdio(child: ChildProcess): void {
  if (child.stdin) {
    process.stdin.pipe(child.stdin);
    child.once('close', () => process.stdin.unpipe(child.stdin!));
  }
  child.stdout?.pipe(process.stdout, { end: false });
  child.stderr?.pipe(process.stderr, { end: false });
}

/** The pid inside the sandbox runsc exec wrote (--internal-pid-file), once it has. */
function readPid(file: string): number | null {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}
