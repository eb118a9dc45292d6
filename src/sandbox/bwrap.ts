import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  rmSync,
  openSync,
  readSync,
  closeSync,
  readlinkSync,
  readFileSync,
  readdirSync,
  statfsSync,
  writeFileSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { endianness } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import type { Writable } from 'node:stream';
import { resolveExecCommand } from './exec-command.ts';
import { AirlockError, phase, processRuns, shellQuote, type AuditEventInput } from '../common/index.ts';
import type { ExecHandle, ExecOptions, ExecResult, Mechanisms, Sandbox, SandboxDriver, SandboxSpec } from './driver.ts';
import { buildSeccompProgram } from './seccomp.ts';
import { chooseTracer, notifyTracerChain, type TracerChoice } from './tracers.ts';
import { createCgroup, type CgroupHandle } from './limits.ts';
import { TraceAuditor, TraceParser, TRACED_SYSCALLS } from './trace.ts';
import { recordTraceFailure } from './trace-failure.ts';

// Linux driver: bubblewrap inside a "holder" user+mount+network namespace.
//
//   supervisor ─spawn→ unshare(user,mount,net) → setpriv(pdeathsig) → holder sh: tmpfs (disk cap) + overlay
//   supervisor ─spawn→ bash(cgroup, ulimits, close fds) → nsenter(holder: user,mount,net)
//                        → setpriv(pdeathsig[, uid 1000]) → [strace → setpriv uid 1000] → bwrap(user,pid,ipc,uts,cgroup; seccomp) → agent
//   traced as root:  supervisor ─spawn→ airlock-tracer(pdeathsig, rlimits, cgroup) ┬ (supervises: seccomp notifications, proc connector)
//                       └ filter installed → fd 9, setns(holder), oom_score_adj, uid drop, pdeathsig (in C) → bwrap → agent
//
// Every link of the chain is exec'd in one process whose parent is the supervisor, with
// PR_SET_PDEATHSIG set after the last credential change; bwrap --die-with-parent carries
// it into the sandbox: a supervisor killed with SIGKILL takes every agent process along.
// (A holder that is pid 1 of its own pid namespace was tried: strace -f tracees then get
// reparented to a pid 1 that does not reap, and bwrap can hang in wait.)
//
// The holder keeps the namespaces (workspace overlay, network) alive between commands,
// so `exec` in a running session costs one bwrap, and the host reads the workspace for
// capture through /proc/<holder>/root. When Airlock runs as root, the sandbox user maps
// to an unprivileged host uid (100000), so host files owned by root are not the agent's.

export const SANDBOX_UID = 1000;
export const SANDBOX_HOME = '/home/agent';
export const SANDBOX_WORKSPACE = '/workspace';
export const HOST_UID_FOR_SANDBOX = 100000;
const SANDBOX_MNT = '/mnt';
/** Which policy key each enforced limit comes from (named in the limit's audit event). */
const LIMIT_KEY = {
  wall: 'wallSeconds',
  disk: 'diskMB',
  memory: 'memoryMB',
  pids: 'pids',
  fileSize: 'fileSizeMB',
} as const;
/**
 * Signals strace reports: every one that can end a process, so "+++ killed by SIGXFSZ/SIGKILL +++"
 * reaches the record (strace prints a kill only for signals in this set); not the chatty harmless ones.
 */
const TRACED_SIGNALS = 'signal=!SIGCHLD,SIGWINCH,SIGURG,SIGCONT,SIGALRM,SIGVTALRM,SIGPROF,SIGIO';
/** The agent's side of each launch chain: first in line for the OOM killer. */
const AGENT_OOM_SCORE_ADJ = 1000;
const AGENT_OOM = ['choom', '-n', String(AGENT_OOM_SCORE_ADJ), '--'];
/** Airlock's own side (supervisor, holder, tracer), when it may lower it (root): last in line. */
const SUPERVISOR_OOM_SCORE_ADJ = -500;

export function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(d, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export class BwrapDriver implements SandboxDriver {
  readonly name = 'bubblewrap';

  check(): { ok: true } | { ok: false; reason: string; fix: string } {
    if (process.platform !== 'linux')
      return { ok: false, reason: 'the bubblewrap driver needs Linux', fix: 'run Airlock on Linux' };
    for (const c of ['bwrap', 'unshare', 'nsenter', 'setpriv', 'prlimit', 'strace', 'choom']) {
      if (!which(c))
        return {
          ok: false,
          reason: `${c} is not installed`,
          fix: 'run scripts/setup.sh (apt-get install bubblewrap strace util-linux)',
        };
    }
    if (process.arch !== 'x64')
      return { ok: false, reason: `no seccomp filter for ${process.arch} yet`, fix: 'run on x86_64' };
    return { ok: true };
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const c = this.check();
    if (!c.ok) throw new AirlockError('UNAVAILABLE', c.reason, c.fix);
    // inherited by the holder and the tracer; the agent's side raises its own to 1000
    if (process.getuid?.() === 0) {
      try {
        writeFileSync('/proc/self/oom_score_adj', String(SUPERVISOR_OOM_SCORE_ADJ));
      } catch {
        /* not permitted here */
      }
    }
    const sb = new BwrapSandbox(spec);
    await sb.init();
    return sb;
  }
}

const INHERITED = ['inherit', 'inherit', 'inherit'] as const;
const PIPED = ['pipe', 'pipe', 'pipe'] as const;

interface LiveExec {
  child: ChildProcess;
  traceFile: string | null;
  parser: TraceParser | null;
  offset: number;
  fd: number | null;
  decoder: StringDecoder;
  incomplete: boolean;
  /** false while a held chain waits for its go (and for good when it never got one) */
  started: boolean;
}

/** A notify tracer started ahead of the next command, waiting for it on fd 3. */
interface Spare {
  child: ChildProcess;
  traceFile: string;
  /** ends it while no command has taken it */
  drop: () => void;
}

/** The program for a tracer started ahead (--await-program): 'g', a 32-bit length in host order, the NUL-terminated strings ('r' later lets its exec run). */
function programMessage(program: string[]): Buffer {
  const strings = Buffer.from(program.map((a) => a + '\0').join(''), 'utf8');
  const head = Buffer.alloc(5);
  head.write('g');
  if (endianness() === 'LE') head.writeUInt32LE(strings.length, 1);
  else head.writeUInt32BE(strings.length, 1);
  return Buffer.concat([head, strings]);
}

/** The process runs (not yet reaped is not enough: a killed one is a zombie until Node's loop reaps it). */
function waiting(child: ChildProcess): boolean {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return false;
  return processRuns(child.pid);
}

/** A NUL byte would split a string into two arguments of the chain (Node's spawn refuses it too). */
function refuseNul(strings: string[]): void {
  if (strings.some((x) => x.includes('\0')))
    throw new AirlockError(
      'USAGE',
      'a command argument, the working directory or an environment variable contains a NUL byte',
      'remove the NUL byte (no program can receive one)',
    );
}

class BwrapSandbox implements Sandbox {
  /** set by init(), before the sandbox is handed out */
  mechanisms!: Mechanisms;
  readonly limitHit: Promise<{ limit: string; detail: string }>;
  private spec: SandboxSpec;
  private holder!: ChildProcess;
  private holderPid = 0;
  private mnt: string;
  private seccompFile: string;
  private tracer!: TracerChoice;
  private cgroup: CgroupHandle | null = null;
  private rootMode: boolean;
  private live = new Set<LiveExec>();
  private execCount = 0;
  private spare: Spare | null = null;
  /** killAll ran: the session is ending */
  private ending = false;
  private stopped = false;
  private monitor: NodeJS.Timeout | null = null;
  private wallTimer: NodeJS.Timeout | null = null;
  private resolveLimit!: (v: { limit: string; detail: string }) => void;
  private baseArgs: string[] = [];

  constructor(spec: SandboxSpec) {
    this.spec = spec;
    this.rootMode = process.getuid?.() === 0 && spec.hostIds !== null;
    // Inside the holder's private mount namespace the session tmpfs is mounted over /mnt:
    // a path every sandbox uid can traverse (Airlock's data dir is 0700), invisible to the host.
    this.mnt = SANDBOX_MNT;
    this.seccompFile = join(spec.stateDir, 'seccomp.bpf');
    this.limitHit = new Promise((r) => {
      this.resolveLimit = r;
    });
  }

  async init(): Promise<void> {
    const spec = this.spec;
    for (const l of spec.lowerDirs) {
      if (/[:,\\]/.test(l))
        throw new AirlockError(
          'UNAVAILABLE',
          `path not usable as an overlay layer: ${l}`,
          'set AIRLOCK_HOME to a path without ":" "," or "\\"',
        );
    }
    mkdirSync(join(spec.stateDir, 'etc'), { recursive: true, mode: 0o700 });
    mkdirSync(join(spec.stateDir, 'trace'), { recursive: true });
    this.writeEtc();
    this.baseArgs = this.buildBwrapArgs();

    const own = this.rootMode ? `chown ${SANDBOX_UID}:${SANDBOX_UID} "$S/upper" "$S/tmp" "$S/vartmp" "$S/home"` : ':';
    const script = [
      'read go || exit 1',
      'set -e',
      `S=${shellQuote(this.mnt)}`,
      `mount -t tmpfs -o size=${spec.limits.diskMB}m,mode=0755,nosuid,nodev tmpfs "$S"`,
      'mkdir -p "$S/upper" "$S/work" "$S/merged" "$S/tmp" "$S/vartmp" "$S/shm" "$S/home" "$S/etc"',
      `cp ${shellQuote(join(spec.stateDir, 'etc'))}/* "$S/etc/"`,
      ...(spec.files ?? []).map((f, i) => `cp ${shellQuote(f.source)} "$S/etc/file-${i}"`),
      'chmod 1777 "$S/tmp" "$S/vartmp" "$S/shm"',
      own,
      // userxattr: inside a user namespace, opaque dirs (rm -r of a base dir) need user.* xattrs
      `mount -t overlay overlay -o ${shellQuote(`lowerdir=${spec.lowerDirs.join(':')},upperdir=`)}"$S/upper",workdir="$S/work",userxattr "$S/merged"`,
      'ip link set lo up 2>/dev/null || true',
      spec.networkSetup ?? ':',
      'echo ready',
      'set +e',
      'read stop',
    ].join('\n');
    const ready = this.spawnHolder(script);
    ready.catch(() => {}); // handled now (an early end must not be an unhandled rejection), awaited below
    try {
      await this.whileTheHolderStarts();
      await ready;
    } catch (e) {
      await this.abortStart();
      throw e;
    }
    this.startMonitor();
  }

  /** Spawns the holder (it waits for "go"); resolves when its namespaces, tmpfs and overlay are ready. */
  private spawnHolder(script: string): Promise<void> {
    const unshareArgs = ['--user', '--mount', '--net', '--propagation', 'private'];
    if (!this.rootMode) unshareArgs.push('--map-root-user');
    this.holder = spawn('unshare', [...unshareArgs, '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'sh', '-c', script], {
      // own process group: a Ctrl-C at the terminal reaches the supervisor only, which stops
      // the session in order (capture needs the holder); the death signal still binds it to us
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', AIRLOCK_SESSION: this.spec.session },
      cwd: '/',
      detached: true,
    });
    this.holderPid = this.holder.pid ?? 0;
    let err = '';
    this.holder.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    return new Promise<void>((res, rej) => {
      let out = '';
      this.holder.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) res();
      });
      this.holder.once('exit', (code) =>
        rej(
          new AirlockError(
            'UNAVAILABLE',
            `sandbox setup failed (exit ${code}): ${err.trim() || 'no output'}`,
            'check that user namespaces are enabled (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0) and overlayfs is available',
          ),
        ),
      );
      this.holder.once('error', rej);
    });
  }

  /**
   * What needs no holder runs while its processes start on another core (issue 16): the
   * tracer's check (a process of its own), the cgroup, the seccomp program. The holder gets
   * its "go" (after its uid map, as root) before any of it runs.
   */
  private async whileTheHolderStarts(): Promise<void> {
    const spec = this.spec;
    const tracer = chooseTracer({ wanted: spec.trace, fileProbes: spec.traceFileProbes ?? false, root: this.rootMode });
    tracer.catch(() => {}); // awaited below; a refusal must not surface as unhandled before
    if (this.rootMode) {
      // One write each, as the kernel requires: ns root stays ours, uid 1000 is an unprivileged host uid.
      const ids = spec.hostIds!;
      const pid = this.holderPid;
      await waitFor(() => readlinkSafe(`/proc/${pid}/ns/user`) !== readlinkSafe('/proc/self/ns/user'), 2000);
      writeFileSync(`/proc/${pid}/uid_map`, `0 0 1\n${SANDBOX_UID} ${ids.uid} 1\n`);
      writeFileSync(`/proc/${pid}/gid_map`, `0 0 1\n${SANDBOX_UID} ${ids.gid} 1\n`);
    }
    this.holder.stdin!.write('go\n');
    this.cgroup = this.rootMode ? createCgroup(spec.session, spec.limits) : null;
    this.tracer = await tracer;
    // with the notify tracer, refused socket families reach it (it records and refuses them, EAFNOSUPPORT)
    writeFileSync(
      this.seccompFile,
      buildSeccompProgram({ socketFamiliesRefusedBySupervisor: this.tracer.kind === 'seccomp-notify' }),
    );
    this.mechanisms = {
      driver: 'bubblewrap',
      limits: this.cgroup ? (this.cgroup.version === 1 ? 'cgroup-v1' : 'cgroup-v2') : 'rlimit',
      uidMapping: this.rootMode ? 'unprivileged-host-uid' : 'invoking-user',
      tracing: this.tracer.kind,
      ...(this.tracer.fallbackReason ? { tracingFallback: this.tracer.fallbackReason } : {}),
      network: spec.networkSetup ? 'gateway' : 'none',
      seccomp: 'bpf-x86_64',
    };
  }

  /** A start that failed after the holder was spawned: it and the cgroup go at once. */
  private async abortStart(): Promise<void> {
    this.stopped = true;
    // no pid: it never started (spawn failed), there is nothing to end or wait for
    if (this.holderPid && this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = once(this.holder, 'exit');
      this.holder.kill('SIGKILL');
      await exited;
    }
    this.cgroup?.remove();
  }

  private writeEtc(): void {
    const etc = join(this.spec.stateDir, 'etc');
    writeFileSync(
      join(etc, 'passwd'),
      `root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:${SANDBOX_UID}:${SANDBOX_UID}:Airlock agent:${SANDBOX_HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    );
    writeFileSync(join(etc, 'group'), `root:x:0:\nagent:x:${SANDBOX_UID}:\nnogroup:x:65534:\n`);
    writeFileSync(join(etc, 'hostname'), 'airlock\n');
    writeFileSync(join(etc, 'hosts'), '127.0.0.1 localhost airlock\n::1 localhost ip6-localhost\n');
    // No resolver inside: names are resolved by the gateway only.
    writeFileSync(
      join(etc, 'resolv.conf'),
      '# Airlock: no DNS inside the sandbox; use the HTTP/SOCKS proxy (names resolve at the gateway)\nnameserver 127.0.0.1\noptions attempts:1 timeout:1\n',
    );
  }

  private buildBwrapArgs(): string[] {
    const spec = this.spec;
    const args: string[] = [
      '--unshare-user',
      '--uid',
      String(SANDBOX_UID),
      '--gid',
      String(SANDBOX_UID),
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--hostname',
      'airlock',
      '--die-with-parent',
      '--new-session',
      '--cap-drop',
      'ALL',
      '--clearenv',
    ];
    for (const d of ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt']) {
      let st;
      try {
        st = lstatSync(d);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(d), d);
      else if (st.isDirectory()) args.push('--ro-bind', d, d);
    }
    const etc = join(this.mnt, 'etc');
    for (const f of ['passwd', 'group', 'hostname', 'hosts', 'resolv.conf'])
      args.push('--ro-bind', join(etc, f), `/etc/${f}`);
    (spec.files ?? []).forEach((f, i) => args.push('--ro-bind', join(this.mnt, 'etc', `file-${i}`), f.target));
    // bwrap's /dev is a tmpfs of its own, sized by host RAM: /dev/shm goes to the session tmpfs (the disk cap)
    args.push(
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--bind',
      join(this.mnt, 'shm'),
      '/dev/shm',
      '--dir',
      '/run',
      '--dir',
      '/var',
    );
    args.push('--bind', join(this.mnt, 'tmp'), '/tmp', '--bind', join(this.mnt, 'vartmp'), '/var/tmp');
    args.push('--bind', join(this.mnt, 'home'), SANDBOX_HOME, '--bind', join(this.mnt, 'merged'), SANDBOX_WORKSPACE);
    const forbidden = spec.forbiddenMounts.map((p) => safeReal(p));
    const check = (p: string) => {
      const r = safeReal(p);
      if (!existsSync(r))
        throw new AirlockError(
          'POLICY_INVALID',
          `sandbox.mounts: ${p} does not exist`,
          'remove it from sandbox.mounts or create it',
        );
      if (r === '/' || forbidden.some((f) => r === f || r.startsWith(f + '/') || f.startsWith(r + '/'))) {
        throw new AirlockError(
          'POLICY_INVALID',
          `sandbox.mounts: ${p} would expose Airlock's own data (store, keys) or the whole host`,
          'grant a narrower path',
        );
      }
      return r;
    };
    for (const p of spec.mounts.readOnly) args.push('--ro-bind', check(p), p);
    for (const p of spec.mounts.readWrite) args.push('--bind', check(p), p);
    args.push('--remount-ro', '/');
    return args;
  }

  /**
   * Looks for a limit the kernel enforced since the last look. Runs every 200 ms and once
   * more whenever a command ends and before the sandbox stops, so a limit hit just before
   * an exit (fill the disk, then exit at once) is recorded too.
   */
  private checkLimits(): void {
    if (this.stopped) return;
    if (this.cgroup) {
      const c = this.cgroup.counters();
      if (c.oomKills > 0)
        return this.hit(
          'memory',
          `memory limit ${this.spec.limits.memoryMB} MiB reached (OOM kill of ${c.oomKills} process(es))`,
        );
      if (c.pidsRefused > 0) return this.hit('pids', `process limit ${this.spec.limits.pids} reached`);
    }
    try {
      const st = statfsSync(`/proc/${this.holderPid}/root${this.mnt}`);
      if (st.bfree === 0 || st.bavail * st.bsize < 64 * 1024)
        return this.hit('disk', `workspace disk cap ${this.spec.limits.diskMB} MiB reached`);
    } catch {
      /* holder gone */
    }
  }

  private startMonitor(): void {
    const tick = () => {
      this.checkLimits();
      if (!this.stopped) this.drainTraces();
    };
    this.monitor = setInterval(tick, 200);
    this.monitor.unref();
    this.wallTimer = setTimeout(
      () => this.hit('wall', `wall-clock limit ${this.spec.limits.wallSeconds}s reached`),
      this.spec.limits.wallSeconds * 1000,
    );
    this.wallTimer.unref();
  }

  private limitEnded = false;
  /** A limit that ends the session: recorded once, then every sandbox process is killed. */
  private hit(limit: keyof typeof LIMIT_KEY, detail: string): void {
    if (this.stopped || this.limitEnded) return;
    this.limitEnded = true;
    this.recordLimit(limit, detail);
    this.resolveLimit({ limit, detail });
    void this.killAll();
  }

  private limitNotes = 0;
  private recordLimit(limit: keyof typeof LIMIT_KEY, detail: string, data: Record<string, unknown> = {}): void {
    this.spec.record({
      type: 'sandbox.limit',
      session: this.spec.session,
      severity: 'high',
      decision: 'deny',
      rule: `sandbox.limits.${LIMIT_KEY[limit]}`,
      data: { limit, detail, mechanism: this.mechanisms.limits, ...data },
    });
  }

  /** A limit that stopped one process (the session goes on); bounded so a loop cannot flood the log. */
  private noteLimit(limit: keyof typeof LIMIT_KEY, detail: string, data: Record<string, unknown>): void {
    if (++this.limitNotes > 100) return;
    this.recordLimit(limit, detail, data);
  }

  workspaceView(): string {
    return `/proc/${this.holderPid}/root${this.mnt}/merged`;
  }

  trustedNs(): { prefix: string[]; path: string } {
    return {
      prefix: [
        'nsenter',
        '-t',
        String(this.holderPid),
        '-U',
        '-m',
        ...(this.rootMode ? [] : ['--preserve-credentials']),
        '--',
      ],
      path: join(this.mnt, 'merged'),
    };
  }

  namespaces(): Record<string, string | null> {
    return Object.fromEntries(['user', 'mnt', 'net'].map((n) => [n, readlinkSafe(`/proc/${this.holderPid}/ns/${n}`)]));
  }

  networkNs(): string[] {
    return [
      'nsenter',
      '-t',
      String(this.holderPid),
      '-U',
      '-n',
      ...(this.rootMode ? [] : ['--preserve-credentials']),
      '--',
      'setpriv',
      '--pdeathsig',
      'KILL',
      '--',
    ];
  }

  upperGitDir(): string {
    return `/proc/${this.holderPid}/root${this.mnt}/upper/.git`;
  }

  /** Maps a path as the sandbox sees it to one the host can stat (for command lookup). */
  private hostView(p: string): string | null {
    const root = `/proc/${this.holderPid}/root`;
    // explicit mounts first: they sit on top of /tmp, HOME and the rest
    for (const m of [...this.spec.mounts.readOnly, ...this.spec.mounts.readWrite])
      if (p === m || p.startsWith(m + '/')) return p;
    if (p === SANDBOX_WORKSPACE || p.startsWith(SANDBOX_WORKSPACE + '/'))
      return root + this.mnt + '/merged' + p.slice(SANDBOX_WORKSPACE.length);
    if (p === SANDBOX_HOME || p.startsWith(SANDBOX_HOME + '/'))
      return root + this.mnt + '/home' + p.slice(SANDBOX_HOME.length);
    if (p.startsWith('/tmp/')) return root + this.mnt + '/tmp' + p.slice(4);
    for (const m of [...this.spec.mounts.readOnly, ...this.spec.mounts.readWrite])
      if (p === m || p.startsWith(m + '/')) return p;
    if (/^\/(usr|bin|sbin|lib|lib64|opt|etc)(\/|$)/.test(p)) return p;
    return null;
  }

  exec(argv: string[], opts: ExecOptions): ExecHandle {
    const env = { ...this.spec.env, ...(opts.env ?? {}) };
    const cwd = opts.cwd ?? SANDBOX_WORKSPACE;
    resolveExecCommand({ stopped: this.stopped, argv, env, cwd, hostView: (p) => this.hostView(p) });
    refuseNul([...argv, cwd, ...Object.entries(env).flat()]);
    const held = opts.beforeStart !== undefined;
    const bw = [...this.baseArgs, '--chdir', cwd, '--seccomp', '9'];
    for (const [k, v] of Object.entries(env)) bw.push('--setenv', k, v);
    bw.push('--', ...argv);
    // a tracer started ahead takes a held, piped command: it gets the program with its go
    const spare = held && opts.stdio === 'pipe' ? this.takeSpare() : null;
    const { child, traceFile } = spare ?? this.spawnChain(bw, opts.stdio, held);
    const live: LiveExec = {
      child,
      traceFile,
      parser: traceFile ? new TraceParser(cwd) : null,
      offset: 0,
      fd: null,
      decoder: new StringDecoder('utf8'),
      incomplete: false,
      started: !held,
    };
    this.live.add(live);
    const done = this.settle(live, argv, opts.exitEvents);
    if (opts.beforeStart) this.release(live, opts.beforeStart, spare ? ['bwrap', ...bw] : null);
    // the next command's tracer starts while this one runs (Node's fork is off the next command's path)
    setImmediate(() => this.prepareSpare());
    return {
      pid: child.pid ?? 0,
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      done,
      // the whole chain: killing only the launcher would orphan strace and bwrap
      kill: (sig: NodeJS.Signals = 'SIGTERM') => signalChain(child, sig),
    };
  }

  /** Spawns a command's launch chain (held on fd 3 when asked). */
  private spawnChain(
    bwrapArgs: string[],
    stdio: ExecOptions['stdio'],
    held: boolean,
  ): { child: ChildProcess; traceFile: string | null } {
    const id = ++this.execCount;
    const traceFile = this.spec.trace ? join(this.spec.stateDir, 'trace', `${id}.log`) : null;
    const launch = this.launchOf(traceFile, bwrapArgs, held);
    closeInheritedDescriptors();
    const child = spawn(launch.file, launch.args, {
      // fd 3, when held: the go pipe the chain waits on (close-on-exec in the chain, never the agent's)
      stdio: [...(stdio === 'inherit' ? INHERITED : PIPED), ...(held ? ['pipe' as const] : [])],
      cwd: '/',
      detached: true, // as the holder: terminal signals go to the supervisor, which ends the chain itself
      env: { ...this.chainEnv(), ...launch.env },
    });
    phase('exec.spawned');
    return { child, traceFile };
  }

  private chainEnv(): Record<string, string> {
    return { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/nonexistent', AIRLOCK_SESSION: this.spec.session };
  }

  /**
   * Starts the notify tracer of the next command ahead of it: its spawn (a fork of this whole
   * process), the tracer's cgroup joins, fork and filter happen while nothing waits, and it
   * holds on fd 3 until a command comes with its go (--await-program). It runs nothing of the
   * agent's before that; it dies with the supervisor (death signal) and is ended with the
   * sandbox's processes (killAll). A spare that died unused is replaced by a direct start.
   */
  private prepareSpare(): void {
    if (this.spare || this.ending || this.stopped || this.tracer.kind !== 'seccomp-notify' || !this.spec.trace) return;
    const traceFile = join(this.spec.stateDir, 'trace', `${++this.execCount}.log`);
    const opts = ['--go-fd', '3', '--await-program', ...this.notifyOptions()];
    const [file, ...args] = notifyTracerChain(this.tracer.binary, traceFile, this.spec.redirectedPorts, opts);
    closeInheritedDescriptors();
    const child = spawn(file!, args, { stdio: [...PIPED, 'pipe'], cwd: '/', detached: true, env: this.chainEnv() });
    const spare: Spare = { child, traceFile, drop: () => this.dropSpare(spare) };
    child.once('error', spare.drop);
    child.once('exit', spare.drop);
    this.spare = spare;
  }

  /** The tracer started ahead, when it is still waiting for a command. */
  private takeSpare(): Spare | null {
    const spare = this.spare;
    this.spare = null;
    if (!spare) return null;
    if (!waiting(spare.child)) {
      spare.drop();
      return null;
    }
    // the command's now: its end is settled like any command's, its trace drained and deleted
    spare.child.off('error', spare.drop);
    spare.child.off('exit', spare.drop);
    phase('exec.spawned');
    return spare;
  }

  /** Ends a spare that no command took (its trace holds nothing but the launcher). */
  private dropSpare(spare: Spare | null = this.spare): void {
    if (!spare) return;
    if (this.spare === spare) this.spare = null;
    (spare.child.stdio[3] as Writable | null)?.destroy(); // end of file: the tracer kills its launcher, 125
    try {
      spare.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(spare.traceFile, { force: true });
  }

  /** The launch chain of one command: the notify tracer's two execs, or the dash chain. */
  private launchOf(
    traceFile: string | null,
    bw: string[],
    held: boolean,
  ): { file: string; args: string[]; env: Record<string, string> } {
    if (traceFile && this.tracer.kind === 'seccomp-notify') return this.notifyLaunch(traceFile, bw, held);
    // unprivileged: the user namespace denies setgroups, so keep our (already mapped) ids
    const ns = [
      'nsenter',
      '-t',
      String(this.holderPid),
      '-U',
      '-m',
      '-n',
      ...(this.rootMode ? [] : ['--preserve-credentials']),
      '--',
    ];
    const dropUid = [`--reuid=${SANDBOX_UID}`, `--regid=${SANDBOX_UID}`, '--clear-groups'];
    return this.shellLaunch(traceFile, ns, dropUid, bw, held);
  }

  /**
   * Lets a held chain start once `beforeStart` has run (the command's event is durable by
   * then). When it throws, the chain ends without a go: nothing of the command ran. A tracer
   * started ahead is let further: it sets up the sandbox during `beforeStart`, and only the
   * command's own exec waits (held at its seccomp notification; end of file refuses it).
   */
  private release(live: LiveExec, beforeStart: () => void, program: string[] | null): void {
    const go = live.child.stdio[3] as Writable;
    go.on('error', () => {
      /* the chain ended before its go (it failed to start): its exit status says so */
    });
    // a tracer started ahead gets the program now and sets up the sandbox meanwhile; it holds
    // the command's own exec until the 'r' below
    if (program) go.write(programMessage(program));
    try {
      beforeStart();
    } catch (e) {
      go.destroy();
      signalChain(live.child, 'SIGKILL');
      throw e;
    }
    live.started = true;
    go.end(program ? 'r' : 'g\n');
    phase('exec.released');
  }

  /** Resolves when the chain has ended and its last process events (with `exitEvents`) are committed. */
  private settle(live: LiveExec, argv: string[], exitEvents: ExecOptions['exitEvents']): Promise<ExecResult> {
    const child = live.child;
    return new Promise<ExecResult>((res) => {
      child.once('error', () => res({ exitCode: null, signal: null, status: 126 }));
      child.once('close', (code, signal) => {
        phase('exec.chain-ended');
        const result = { exitCode: code, signal, status: code ?? 128 + (signal ? signalNumber(signal) : 0) };
        // a chain that never got its go ran nothing: no end to record
        const tail = live.started && exitEvents ? exitEvents(result) : [];
        this.drainTrace(live, true, tail);
        if (tail.length) this.recordQuietly(tail);
        phase('exec.recorded-end');
        if (signal === 'SIGXFSZ')
          this.noteLimit('fileSize', `file size limit ${this.spec.limits.fileSizeMB} MiB exceeded (SIGXFSZ)`, {
            argv0: argv[0],
          });
        this.checkLimits();
        this.live.delete(live);
        res(result);
      });
    });
  }

  /** Records what the trace drain could not take along; a store failure is the session's to handle. */
  private recordQuietly(events: AuditEventInput[]): void {
    try {
      if (this.spec.recordMany) this.spec.recordMany(events);
      else for (const ev of events) this.spec.record(ev);
    } catch {
      /* the store failed: the session keeps the events, freezes and ends */
    }
  }

  /** Untraced, or traced by strace: a dash script does limits, cgroup and fd 9, then the exec chain. */
  private shellLaunch(
    traceFile: string | null,
    ns: string[],
    dropUid: string[],
    bwrapArgs: string[],
    held: boolean,
  ): { file: string; args: string[]; env: Record<string, string> } {
    const chain: string[] = [];
    if (traceFile) {
      chain.push(
        ...ns,
        'setpriv',
        '--pdeathsig',
        'KILL',
        '--',
        'strace',
        '-f',
        '--seccomp-bpf',
        '-q',
        '-ttt',
        '-s',
        '4096',
        '--decode-pids=pidns',
        '-e',
        `trace=${TRACED_SYSCALLS.join(',')}`,
        '-e',
        TRACED_SIGNALS,
        '-A',
        '-o',
        traceFile,
        '--',
      );
      // below strace: the OOM killer takes the agent, never the tracer (or the supervisor)
      chain.push(...AGENT_OOM);
      if (this.rootMode) chain.push('setpriv', ...dropUid, '--');
    } else {
      // bwrap --die-with-parent sets the death signal on bwrap itself (its parent is the
      // supervisor: every link before it is an exec in the same process)
      ns.pop();
      chain.push(
        ...ns,
        ...(this.rootMode ? ['-S', String(SANDBOX_UID), '-G', String(SANDBOX_UID)] : []),
        '--',
        ...AGENT_OOM,
      );
    }
    chain.push('bwrap', ...bwrapArgs);
    // dash: the cheapest shell that can join the cgroup, set rlimits and open the seccomp
    // program on fd 9 before exec. Its ulimit takes one resource per call: -f counts
    // 512-byte blocks, -v KiB (rlimits() is in bytes)
    const flag: Record<string, string> = { cpu: '-t', fsize: '-f', core: '-c', nofile: '-n', nproc: '-p', as: '-v' };
    const unit: Record<string, number> = { fsize: 512, as: 1024 };
    const ulimits = this.rlimits()
      .map(([k, v]) => `ulimit ${flag[k]} ${v / (unit[k] ?? 1)} || exit 125; `)
      .join('');
    // The trace file gets 4 MiB allocated up front (fallocate --keep-size; strace appends into
    // it): when AIRLOCK_HOME fills, strace still has room while the session is frozen and
    // ended (src/session/recording.ts), instead of losing the agent's last execs.
    const prealloc =
      '[ -z "$AIRLOCK_TRACE" ] || { : >> "$AIRLOCK_TRACE" && fallocate -n -l 4MiB "$AIRLOCK_TRACE" 2>/dev/null; } || true; ';
    // held: wait for the supervisor's go on fd 3 (end of file or anything else: nothing runs), then close it
    const go = held ? 'read -r go <&3 && [ "$go" = g ] || exit 125; exec 3<&-; ' : '';
    const script =
      prealloc +
      ulimits +
      'IFS=:; for f in $AIRLOCK_CG; do [ -n "$f" ] && { echo $$ > "$f" || exit 125; }; done; ' +
      go +
      'exec 9<"$AIRLOCK_SECCOMP"; unset AIRLOCK_CG AIRLOCK_SECCOMP AIRLOCK_TRACE; exec "$@"';
    return {
      file: '/bin/sh',
      args: ['-c', script, 'airlock-exec', ...chain],
      env: {
        AIRLOCK_CG: this.cgroup?.procsFiles.join(':') ?? '',
        AIRLOCK_SECCOMP: this.seccompFile,
        AIRLOCK_TRACE: traceFile ?? '',
      },
    };
  }

  /** Process limits in the kernel's units (cgroup present: memory and pids are the cgroup's). */
  private rlimits(): [string, number][] {
    const l = this.spec.limits;
    const r: [string, number][] = [
      ['cpu', l.cpuSeconds],
      ['fsize', Math.floor(l.fileSizeMB * 1024 * 1024)],
      ['core', 0],
      ['nofile', 4096],
    ];
    if (!this.cgroup) r.push(['nproc', l.pids + userProcessCount()], ['as', Math.floor(l.memoryMB * 1024 * 1024)]);
    return r;
  }

  /**
   * Traced as root: airlock-tracer does the whole chain itself (limits, cgroup, seccomp fd,
   * setns into the holder, OOM score, uid drop, death signal) and execs bwrap: two execs per
   * command instead of six (dash → tracer → nsenter → setpriv → choom → setpriv → bwrap).
   */
  private notifyLaunch(
    traceFile: string,
    bwrapArgs: string[],
    held: boolean,
  ): { file: string; args: string[]; env: Record<string, string> } {
    const opts = [...(held ? ['--go-fd', '3'] : []), ...this.notifyOptions()];
    const [file, ...args] = notifyTracerChain(this.tracer.binary, traceFile, this.spec.redirectedPorts, opts);
    return { file: file!, args: [...args, 'bwrap', ...bwrapArgs], env: {} };
  }

  /** The notify tracer's launch options: the chain's limits, cgroups, namespaces and ids. */
  private notifyOptions(): string[] {
    return [
      ...this.rlimits().flatMap(([k, v]) => ['--rlimit', `${k}=${v}`]),
      ...(this.cgroup?.procsFiles ?? []).flatMap((f) => ['--cgroup', f]),
      '--fd9',
      this.seccompFile,
      '--join-ns',
      String(this.holderPid),
      '--oom-score-adj',
      String(AGENT_OOM_SCORE_ADJ),
      '--gid',
      String(SANDBOX_UID),
      '--uid',
      String(SANDBOX_UID),
    ];
  }

  private drainTraces(): void {
    for (const l of this.live) this.drainTrace(l, false);
  }

  private readBuf = Buffer.allocUnsafe(1 << 20); // one read buffer for every trace drain

  /** `tail`: events committed with the final drain's batch (taken out of the array once committed). */
  private drainTrace(live: LiveExec, final: boolean, tail: AuditEventInput[] = []): void {
    if (!live.traceFile || !live.parser) return;
    try {
      if (live.fd === null) {
        if (!existsSync(live.traceFile)) return;
        live.fd = openSync(live.traceFile, 'r');
      }
      // one group commit per chunk read; the last chunk waits for the end of a final drain, so a
      // short command's processes and its end (tail) are one commit
      let last: ReturnType<TraceParser['push']> = [];
      for (;;) {
        const n = readSync(live.fd, this.readBuf, 0, this.readBuf.length, live.offset);
        if (n <= 0) break;
        live.offset += n;
        this.emitTrace(last, live.parser.rootPid);
        last = live.parser.push(live.decoder.write(this.readBuf.subarray(0, n)));
      }
      if (!final) this.emitTrace(last, live.parser.rootPid);
      else {
        const rest = [...last, ...live.parser.push(live.decoder.end()), ...live.parser.flush()];
        this.emitTrace(rest, live.parser.rootPid, tail);
        closeSync(live.fd);
        live.fd = null;
        // everything in it is now in the (redacted) audit log; the raw trace holds argv unredacted.
        // A trace some of whose events could not be recorded stays for recovery (src/session/recover.ts).
        if (!live.incomplete) rmSync(live.traceFile, { force: true });
      }
    } catch (e) {
      live.incomplete = true;
      if (final && live.fd !== null) {
        try {
          closeSync(live.fd);
        } catch {
          /* */
        }
        live.fd = null;
      }
      // Fail closed: a command whose processes can no longer be recorded does not go on.
      for (const pid of descendants(live.child.pid ?? 0).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      recordTraceFailure(this.spec, e);
    }
  }

  private auditor: TraceAuditor | null = null;
  private emitTrace(
    events: Parameters<TraceAuditor['convert']>[0],
    rootPid: number | null,
    tail: AuditEventInput[] = [],
  ): void {
    this.auditor ??= new TraceAuditor(this.spec.session);
    const converted = this.auditor.convert(events, rootPid);
    // the command's end rides in the same group commit as its last processes (one fsync)
    const batch = [...converted, ...tail.splice(0)];
    if (batch.length === 0) return;
    // one group commit per drain: a loop of short processes is thousands of events
    if (this.spec.recordMany) this.spec.recordMany(batch);
    else for (const ev of batch) this.spec.record(ev);
    for (const ev of converted) {
      const d = ev.data as { signal?: string; pid?: number; argv0?: string } | undefined;
      if (ev.type === 'process.exit' && d?.signal === 'SIGXFSZ') {
        this.noteLimit('fileSize', `file size limit ${this.spec.limits.fileSizeMB} MiB exceeded (SIGXFSZ)`, {
          pid: d.pid,
          argv0: d.argv0,
        });
      }
    }
  }

  pause(): boolean {
    if (this.cgroup?.freeze()) return true;
    let any = false;
    for (const l of this.live)
      for (const pid of descendants(l.child.pid ?? 0)) {
        try {
          process.kill(pid, 'SIGSTOP');
          any = true;
        } catch {
          /* */
        }
      }
    return any;
  }

  resume(): boolean {
    if (this.cgroup?.thaw()) return true;
    let any = false;
    for (const l of this.live)
      for (const pid of descendants(l.child.pid ?? 0)) {
        try {
          process.kill(pid, 'SIGCONT');
          any = true;
        } catch {
          /* */
        }
      }
    return any;
  }

  async killAll(): Promise<void> {
    // every caller ends the session: no tracer is started ahead any more
    this.ending = true;
    this.dropSpare();
    // SIGKILL first, thaw after: a frozen agent wakes only to die, it never runs another
    // instruction (thawing first let it go on, unrecorded, while the kills were being sent)
    const waits: Promise<unknown>[] = [];
    for (const l of this.live) {
      for (const pid of descendants(l.child.pid ?? 0).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* */
        }
      }
      if (l.child.exitCode === null && l.child.signalCode === null) waits.push(once(l.child, 'close'));
    }
    if (this.cgroup)
      for (const pid of this.cgroup.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* */
        }
      }
    this.cgroup?.thaw(); // (a SIGSTOPped process needs no SIGCONT: SIGKILL ends it as it is)
    await Promise.race([Promise.all(waits), delay(5000)]);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.checkLimits();
    await this.killAll();
    this.stopped = true;
    if (this.monitor) clearInterval(this.monitor);
    if (this.wallTimer) clearTimeout(this.wallTimer);
    if (this.holder.exitCode === null) {
      const exited = once(this.holder, 'exit');
      this.holder.stdin!.end('stop\n');
      await Promise.race([exited, delay(3000)]);
      if (this.holder.exitCode === null) {
        this.holder.kill('SIGKILL');
        await exited;
      }
    }
    this.cgroup?.remove();
  }
}

/** Signals a launch chain and everything below it, deepest first. */
function signalChain(child: ChildProcess, sig: NodeJS.Signals): void {
  for (const pid of descendants(child.pid ?? 0).reverse()) {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

function descendants(root: number): number[] {
  if (!root) return [];
  const r = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const kids = new Map<number, number[]>();
  for (const line of (r.stdout ?? '').split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number);
    if (!p || pp === undefined) continue;
    if (!kids.has(pp)) kids.set(pp, []);
    kids.get(pp)!.push(p);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length && out.length < 100_000) {
    const p = stack.pop()!;
    out.push(p);
    for (const k of kids.get(p) ?? []) stack.push(k);
  }
  return out;
}

function userProcessCount(): number {
  const r = spawnSync('ps', ['-U', String(process.getuid?.() ?? 0), '-L', '-o', 'lwp='], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).length;
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
  SIGXFSZ: 25,
};
export function signalNumber(s: string): number {
  return SIGNALS[s] ?? 0;
}

let inheritedClosed = false;
/**
 * Closes descriptors this process inherited without close-on-exec (a parent's leaked
 * pipes and sockets), so no spawned sandbox chain can pass them to the agent. Everything
 * Node and SQLite open themselves is O_CLOEXEC, so only inherited descriptors qualify.
 */
export function closeInheritedDescriptors(): void {
  if (inheritedClosed) return;
  inheritedClosed = true;
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const f of fds) {
    const fd = Number(f);
    if (!(fd > 2)) continue;
    try {
      const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
      const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(info)?.[1] ?? '0', 8);
      if ((flags & 0o2000000) === 0) closeSync(fd);
    } catch {
      /* already gone */
    }
  }
}

/** A timer that never keeps the process alive on its own. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => {
    setTimeout(r, ms).unref();
  });
}

export function readlinkSafe(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}
function safeReal(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end)
      throw new AirlockError(
        'UNAVAILABLE',
        'sandbox namespace did not come up in time',
        'check that user namespaces are enabled',
      );
    await new Promise((r) => setTimeout(r, 2));
  }
}
