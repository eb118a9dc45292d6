import { PassThrough, type Readable, type Writable } from 'node:stream';
import { join } from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';
import { AirlockError, escapeForTerminal } from '../../common/index.ts';
import {
  extractBounded,
  podCommand,
  packDirectory,
  POD_AGENT_CONTAINER,
  POD_WORKSPACE,
  type PodVerb,
  type TarBounds,
} from '../../pod/index.ts';
import type {
  ExecHandle,
  ExecOptions,
  ExecResult,
  Mechanisms,
  Sandbox,
  SandboxDriver,
  SandboxSpec,
} from '../driver.ts';
import { SandboxClaims, type ClaimTarget } from './claims.ts';

// The kubernetes driver: a session runs in a pod of kubernetes-sigs/agent-sandbox. start()
// claims a sandbox from the admin's warm pool and waits until it is Ready, then restores
// the snapshot into the pod's workspace; each command, the kill and the capture are one
// exec into the pod's agent container (the protocol of src/pod/protocol.ts) through the API
// server's exec endpoint (@kubernetes/client-node's Exec). The capture comes back as a tar,
// extracted bounded into the session's state directory, where the same capture as a local
// session reads it. The claim is deleted at stop and on any failure on the way.

export interface KubernetesDriverOptions {
  kubeConfig: KubeConfig;
  target: ClaimTarget;
  readyTimeoutMs?: number;
  readyPollMs?: number;
}

/** Longest wait for one protocol step but a command (kill, capture): the pod is hostile and may never answer. */
const STEP_TIMEOUT_MS = 600_000;

/** The promise's value, or null when it takes longer than `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Capture bounds on the pod's tar: the disk limit in bytes, and entries / depth that capture itself could still walk. */
function captureBounds(spec: SandboxSpec): TarBounds {
  return { maxEntries: 1_000_000, maxBytes: spec.limits.diskMB * 1024 * 1024, maxDepth: 256 };
}

export class KubernetesDriver implements SandboxDriver {
  readonly name = 'kubernetes';
  private o: KubernetesDriverOptions;

  constructor(o: KubernetesDriverOptions) {
    this.o = o;
  }

  check(): { ok: true } | { ok: false; reason: string; fix: string } {
    return this.o.kubeConfig.getCurrentCluster()
      ? { ok: true }
      : {
          ok: false,
          reason: 'the kubeconfig names no cluster',
          fix: 'set KUBECONFIG to a kubeconfig with a current context',
        };
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const c = this.check();
    if (!c.ok) throw new AirlockError('UNAVAILABLE', c.reason, c.fix);
    const claims = new SandboxClaims(this.o.kubeConfig, this.o.target);
    await claims.create(spec.session);
    // from here on the claim exists: any failure deletes it (nothing outlives its session)
    try {
      const status = await claims.waitReady(spec.session, this.o.readyTimeoutMs, this.o.readyPollMs);
      const sb = new PodSandbox(spec, claims, new Exec(this.o.kubeConfig), {
        namespace: this.o.target.namespace,
        pod: status.sandbox!,
      });
      spec.record({
        type: 'sandbox.claimed',
        session: spec.session,
        rule: 'sandbox.runtime',
        data: { namespace: this.o.target.namespace, warmPool: this.o.target.warmPool, sandbox: status.sandbox },
      });
      await sb.restore();
      spec.record({
        type: 'sandbox.degraded',
        session: spec.session,
        severity: 'low',
        rule: 'sandbox.runtime',
        data: {
          feature: 'honeytokens and process tracing',
          reason:
            "the pod's home is not on this host (decoys planted by the session do not reach it) and the pod reports the commands it was asked to run, not their processes",
        },
      });
      return sb;
    } catch (e) {
      await claims.delete(spec.session).catch(() => undefined);
      throw e;
    }
  }
}

/** The exit status Kubernetes reports for an exec (its Status on the error channel). */
function statusOfExec(s: V1Status): number {
  if (s.status === 'Success') return 0;
  const cause = s.details?.causes?.find((c) => c.reason === 'ExitCode');
  const n = Number(cause?.message);
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : 255;
}

interface PodRef {
  namespace: string;
  pod: string;
}

class PodSandbox implements Sandbox {
  readonly mechanisms: Mechanisms;
  readonly bridgesGateway = true;
  readonly overlay = false;
  readonly limitHit: Promise<{ limit: string; detail: string }>;
  private spec: SandboxSpec;
  private claims: SandboxClaims;
  private exec_: Exec;
  private ref: PodRef;
  private execCount = 0;
  private stopped = false;
  private view: string;
  private wallTimer: NodeJS.Timeout;
  private fetched: Promise<void> | null = null;
  private fetchError: string | null = null;

  constructor(spec: SandboxSpec, claims: SandboxClaims, exec: Exec, ref: PodRef) {
    this.spec = spec;
    this.claims = claims;
    this.exec_ = exec;
    this.ref = ref;
    // merged/ and home/ as a local session's: home/ (honeytokens, agent config) is a host directory the pod never sees
    this.view = join(spec.stateDir, 'pod', 'merged');
    for (const d of ['merged', 'home']) mkdirSync(join(spec.stateDir, 'pod', d), { recursive: true, mode: 0o700 });
    this.mechanisms = {
      driver: 'kubernetes',
      limits: 'pod-resources',
      uidMapping: 'unprivileged-host-uid',
      tracing: 'off',
      ...(spec.trace
        ? { tracingFallback: 'the pod reports the commands it was asked to run, not their processes' }
        : {}),
      network: 'gateway',
      seccomp: 'runtime-class',
    };
    let hit!: (v: { limit: string; detail: string }) => void;
    this.limitHit = new Promise((r) => {
      hit = r;
    });
    this.wallTimer = setTimeout(() => {
      hit({ limit: 'wallSeconds', detail: `wall clock ${spec.limits.wallSeconds}s` });
      void this.killAll();
    }, spec.limits.wallSeconds * 1000);
    this.wallTimer.unref();
  }

  /** One protocol step into the agent container; stdout/stderr/stdin as given. */
  private step(
    verb: PodVerb,
    io: { stdin?: Readable | null; stdout?: Writable | null; stderr?: Writable | null },
    argv?: string[],
    o?: ExecOptions,
  ): { done: Promise<ExecResult>; socket: Promise<{ close(): void }> } {
    const request = argv
      ? { argv, cwd: o?.cwd ?? POD_WORKSPACE, env: { ...this.spec.env, ...(o?.env ?? {}) } }
      : undefined;
    let settle!: (r: ExecResult) => void;
    const done = new Promise<ExecResult>((r) => {
      settle = r;
    });
    const finish = (status: number) => settle({ exitCode: status, signal: null, status });
    // client-node throws on a stream it has no sink for: whatever the pod sends, there is one
    const sink = () => new PassThrough().resume();
    const socket = this.exec_
      .exec(
        this.ref.namespace,
        this.ref.pod,
        POD_AGENT_CONTAINER,
        podCommand(verb, request),
        io.stdout ?? sink(),
        io.stderr ?? sink(),
        io.stdin ?? null,
        false,
        (s) => finish(statusOfExec(s)),
      )
      .then((ws) => {
        // closed without a status: the exec failed (fail closed: not a success)
        ws.on('close', () => finish(255));
        return ws;
      });
    socket.catch(() => finish(255));
    return { done, socket };
  }

  exec(argv: string[], o: ExecOptions): ExecHandle {
    if (this.stopped) throw new AirlockError('UNAVAILABLE', 'the sandbox has stopped', 'start a new session');
    const piped = o.stdio === 'pipe';
    const stdin = piped ? new PassThrough() : process.stdin;
    const stdout = piped ? new PassThrough() : process.stdout;
    const stderr = piped ? new PassThrough() : process.stderr;
    const { done, socket } = this.step('exec', { stdin, stdout, stderr }, argv, o);
    this.spec.record({
      type: 'process.exec',
      session: this.spec.session,
      data: { argv: argv.slice(0, 256), cwd: o.cwd ?? POD_WORKSPACE, via: 'kubernetes-exec', pod: this.ref.pod },
    });
    void done.then(() => {
      if (piped) for (const s of [stdout, stderr] as PassThrough[]) s.end();
      void socket.then((ws) => ws.close()).catch(() => undefined);
    });
    return {
      pid: ++this.execCount,
      stdin: piped ? stdin : null,
      stdout: piped ? stdout : null,
      stderr: piped ? stderr : null,
      done,
      // a single process of the pod cannot be signalled through exec: every agent process is
      kill: () => {
        void this.killAll();
      },
    };
  }

  /** Writes the session's snapshot (its lower layers, top first) into the pod's workspace. */
  async restore(): Promise<void> {
    const err = new PassThrough();
    let text = '';
    err.on('data', (d: Buffer) => {
      if (text.length < 2000) text += d.toString();
    });
    const r = await withTimeout(
      this.step('restore', { stdin: packDirectory(...this.spec.lowerDirs), stderr: err }).done,
      STEP_TIMEOUT_MS,
    );
    if (r?.status !== 0)
      throw new AirlockError(
        'UNAVAILABLE',
        `the pod ${this.ref.pod} could not take the workspace (${r ? `status ${r.status}` : 'no answer'}): ${escapeForTerminal(text.trim().slice(0, 300))}`,
        'check the pod (kubectl logs) and its workspace volume size',
      );
  }

  workspaceView(): string {
    if (this.fetchError !== null)
      throw new AirlockError('UNAVAILABLE', `the pod's workspace was not captured: ${this.fetchError}`);
    return this.view;
  }

  trustedNs(): { prefix: string[]; path: string } {
    return { prefix: [], path: this.view };
  }

  namespaces(): Record<string, string | null> {
    return {};
  }

  networkNs(): string[] {
    throw new AirlockError(
      'UNAVAILABLE',
      'a pod has no network namespace on this host',
      'the pod brings its own gateway',
    );
  }

  upperGitDir(): string {
    return join(this.view, '.git');
  }

  pause(): boolean {
    return false;
  }

  resume(): boolean {
    return false;
  }

  /**
   * Kills every agent process in the pod, then fetches the workspace (bounded) for capture.
   * Never throws (the session's stop must reach its teardown): a refused fetch is recorded
   * and makes workspaceView() throw, so capture fails closed instead of reading an empty tree.
   */
  killAll(): Promise<void> {
    this.fetched ??= this.killAndFetch().catch((e: unknown) => {
      rmSync(this.view, { recursive: true, force: true });
      this.fetchError = e instanceof Error ? e.message : String(e);
      this.spec.record({
        type: 'sandbox.workspace_refused',
        session: this.spec.session,
        severity: 'high',
        rule: 'sandbox.limits.diskMB',
        data: { pod: this.ref.pod, reason: this.fetchError },
      });
    });
    return this.fetched;
  }

  private async killAndFetch(): Promise<void> {
    const killed = await withTimeout(this.step('kill', {}).done, STEP_TIMEOUT_MS);
    if (killed?.status !== 0)
      throw new AirlockError(
        'UNAVAILABLE',
        `the pod did not kill its processes (${killed ? `status ${killed.status}` : 'no answer'})`,
      );
    rmSync(this.view, { recursive: true, force: true });
    const tar = new PassThrough();
    const { done } = this.step('capture', { stdout: tar });
    // a pod that trickles its capture forever does not hold the session's stop
    const timer = setTimeout(
      () => tar.destroy(new Error(`no capture within ${STEP_TIMEOUT_MS / 1000}s`)),
      STEP_TIMEOUT_MS,
    );
    const r = await extractBounded(tar, this.view, captureBounds(this.spec)).finally(() => {
      clearTimeout(timer);
      tar.destroy();
    });
    const ended = await withTimeout(done, STEP_TIMEOUT_MS);
    if (ended?.status !== 0)
      throw new AirlockError(
        'UNAVAILABLE',
        `the pod's capture ended ${ended ? `with status ${ended.status}` : 'without a status'}`,
      );
    this.spec.record({
      type: 'sandbox.workspace_fetched',
      session: this.spec.session,
      rule: 'sandbox.limits.diskMB',
      data: { pod: this.ref.pod, entries: r.entries, bytes: r.bytes, skipped: r.skipped },
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.wallTimer);
    await this.claims.delete(this.spec.session);
  }
}
