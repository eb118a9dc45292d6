import type { Readable, Writable } from 'node:stream';
import type { AuditEventInput } from '../common/index.ts';
import type { Limits } from './limits.ts';

// The supervisor talks to sandboxes only through this interface, so a second backend
// (another OS, a microVM) is a new driver, not a set of ifs in shared code.

export interface SandboxSpec {
  session: string;
  /** Host directory private to this session's sandbox plumbing (never mounted inside). */
  stateDir: string;
  /** Read-only layers of the workspace, top first. */
  lowerDirs: string[];
  limits: Limits;
  /** The complete environment of sandboxed processes. */
  env: Record<string, string>;
  mounts: { readOnly: string[]; readWrite: string[] };
  /** Paths that must never be mounted (Airlock's data dir). */
  forbiddenMounts: string[];
  /** Shell run as namespace root in the sandbox's network namespace before any agent process (egress bridges). */
  networkSetup: string | null;
  /** TCP ports `networkSetup` redirects to the gateway from any address: connects to them are not direct connections (the gateway records them). */
  redirectedPorts?: number[];
  trace: boolean;
  /** Record failed opens too (only the strace tracer sees a call's outcome). */
  traceFileProbes?: boolean;
  /** Public files Airlock provides read-only inside (e.g. its CA bundle over the system one); copied in, so their host location may be private. */
  files?: { source: string; target: string }[];
  /** The gateway listeners the sandbox's 127.0.0.1 must offer, for drivers that bridge inside the sandbox themselves (gVisor). */
  gateway?: { tcp: { port: number; target: string }[]; dns: boolean } | null;
  /** Host uid/gid the sandbox user maps to when Airlock runs as root. */
  hostIds: { uid: number; gid: number } | null;
  record: (e: AuditEventInput) => void;
  /** Several events in one group commit (a drained process trace); record() one by one when absent. */
  recordMany?: (es: AuditEventInput[]) => void;
}

export interface ExecOptions {
  stdio: 'inherit' | 'pipe';
  cwd?: string;
  env?: Record<string, string>;
  /**
   * Runs once the launch chain is spawned and before the command may start (the chain waits
   * for it): the session makes the command's audit event durable here while the chain starts.
   * If it throws, the chain ends before anything of the command runs, and exec rethrows.
   */
  beforeStart?: () => void;
  /** Events that describe the command's end, committed with its last process events (one group commit) before `done` resolves. */
  exitEvents?: (r: ExecResult) => AuditEventInput[];
}

export interface ExecResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  status: number;
}

export interface ExecHandle {
  pid: number;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  done: Promise<ExecResult>;
  kill(signal?: NodeJS.Signals): void;
}

export interface Mechanisms {
  driver: string;
  /** pod-resources: the pod's limits, enforced by the node (kubernetes) */
  limits: 'cgroup-v1' | 'cgroup-v2' | 'rlimit' | 'pod-resources';
  uidMapping: 'unprivileged-host-uid' | 'invoking-user';
  /** the process tracer this session got (src/sandbox/tracers.ts) */
  tracing: 'seccomp-notify' | 'strace-seccomp-bpf' | 'gvisor-strace' | 'off';
  /** tracing on, but not with seccomp-notify: why */
  tracingFallback?: string;
  network: 'none' | 'gateway';
  /** runtime-class: whatever the pod's RuntimeClass (gVisor, Kata) enforces, on a node Airlock does not run */
  seccomp: 'bpf-x86_64' | 'gvisor-sentry' | 'runtime-class' | 'unavailable';
}

export interface Sandbox {
  readonly mechanisms: Mechanisms;
  /** False when workspaceView() is a plain copy with no overlay upper layer beside it (capture then hashes the whole tree). */
  readonly overlay?: boolean;
  /** True when the driver serves spec.gateway inside the sandbox itself (then networkNs() is not used). */
  readonly bridgesGateway?: boolean;
  exec(argv: string[], o: ExecOptions): ExecHandle;
  /** The merged workspace as the host can read it (only while the sandbox runs). */
  workspaceView(): string;
  /** How to run a trusted host program (git) inside the sandbox's mount namespace, and where the workspace is there. */
  trustedNs(): { prefix: string[]; path: string };
  /** The holder's namespaces (`net:[4026…]`…): recorded, so anyone can check later that none outlived the session. */
  namespaces(): Record<string, string | null>;
  /** Argv prefix that runs a trusted host program as root of the sandbox's network namespace (egress bridge setup); it dies with the supervisor. */
  networkNs(): string[];
  /** The overlay upper .git (only what the agent wrote in .git). */
  upperGitDir(): string;
  pause(): boolean;
  resume(): boolean;
  /** Kills every sandboxed process (the namespaces stay for capture). */
  killAll(): Promise<void>;
  /** Tears the namespaces down. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when a limit ended the sandbox (or never). */
  readonly limitHit: Promise<{ limit: string; detail: string }>;
}

export interface SandboxDriver {
  readonly name: string;
  check(): { ok: true } | { ok: false; reason: string; fix: string };
  start(spec: SandboxSpec): Promise<Sandbox>;
}
