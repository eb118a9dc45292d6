import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AuditStore, type AuditEvent, type AuditEventInput } from '../audit/index.ts';
import {
  AirlockError,
  cannotRecord,
  isRecordingFailure,
  ensureHome,
  makePrivateTree,
  phase,
  type HomeLayout,
} from '../common/index.ts';
import type { LoadedPolicy, ModalDecision } from '../policy/index.ts';
import { MODE_LAYERS } from '../policy/source.ts';
import {
  driverFor,
  runtimeOfDriver,
  buildSandboxEnv,
  HOST_UID_FOR_SANDBOX,
  SANDBOX_HOME,
  SANDBOX_WORKSPACE,
  type ExecHandle,
  type Sandbox,
  type SandboxDriver,
} from '../sandbox/index.ts';
import {
  captureWorkspace,
  prepareResultRepo,
  prepareSnapshot,
  type CaptureResult,
  type HostRepo,
  type Snapshot,
} from '../workspace/index.ts';
import { policyAt, readSessionOrigin, type PolicyChoice, type SessionOrigin } from './policy.ts';
import { newSessionId } from './id.ts';
import {
  resolveLayers,
  LAYER_NAMES,
  type LayerName,
  type NetworkSetup,
  type SessionLayer,
  type SessionLayers,
} from './layers.ts';
import { recoverSessions } from './recover.ts';
import { assertRoomToRecord, holdBallast, watchRecordingSpace } from './recording.ts';

const execFileAsync = promisify(execFile);

export interface OpenSessionOptions extends PolicyChoice {
  /** Repository path (default: current directory). */
  repo?: string;
  /** Base ref (default: policy sandbox.baseRef, i.e. HEAD). */
  base?: string;
  /** Repository, base commit and policy files already read (applyProfile); then `repo`, `base` and the policy files are not read again. */
  origin?: SessionOrigin;
  /** Agent identity for baselines and approvals (default: "generic"). */
  agent?: string;
  /** The agent's version when its profile knows it (recorded in session.start; signed provenance names it). */
  agentVersion?: string | null;
  /** What started the session, for the record (e.g. the run command). */
  command?: string[];
  /** AIRLOCK_HOME override. */
  home?: string;
  /** Host environment the allowlist picks from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Extra fixed variables inside the sandbox (agent profiles). */
  sandboxEnv?: Record<string, string>;
  /** Extra read-only host paths (agent runtimes). */
  readOnlyPaths?: string[];
  /** --allow-host values: one more destination for this session only (recorded). */
  allowHosts?: string[];
  /** Where the gateway resolves names and which CAs it trusts upstream (default: the host's resolver and trust store); e.g. a registry mirror, or a test's loopback servers. */
  egressUpstream?: EgressUpstream;
  driver?: SandboxDriver;
  /**
   * Security layers by name (egress, commands, secrets, detection, review, telemetry).
   * Every layer not named runs with its default; `null` leaves one out, and the session
   * records that as a high-severity `session.layer_disabled` event.
   */
  layers?: Partial<Record<LayerName, SessionLayer | null>>;
  /** Called with each audit event this session records. */
  onEvent?: (e: AuditEvent) => void;
  /** Called before the policy engine loads to parse policy files (the resolved policy was not cached). */
  beforePolicyParse?: () => Promise<void>;
}

export interface EgressUpstream {
  resolver?: { resolve(host: string): Promise<string[]>; readonly description: string };
  upstreamCa?: string[];
}

export interface ExecRequest {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  stdio?: 'inherit' | 'pipe';
  /** Which path the command came through, for the record. */
  via?: 'run' | 'exec' | 'mcp' | 'api';
}

export interface StopResult {
  session: string;
  result: CaptureResult | null;
  status: number | null;
  reason: string;
  /** Set when Airlock could not record (disk full): the agent was frozen and ended. */
  recordingFailure: string | null;
}

export type SessionState = 'running' | 'paused' | 'stopping' | 'stopped';

/** One sandboxed agent session: its policy, workspace, sandbox, gateway and audit handle. */
export class Session {
  readonly id: string;
  readonly repo: HostRepo;
  readonly baseCommit: string;
  readonly policy: LoadedPolicy;
  readonly home: HomeLayout;
  readonly store: AuditStore;
  readonly stateDir: string;
  readonly agent: string;
  state: SessionState = 'running';
  lastStatus: number | null = null;
  private sandbox!: Sandbox;
  private snapshot!: Snapshot;
  /** Set when secrets were redacted from the base: the workspace starts from this synthetic root commit. */
  syntheticBase: string | null = null;
  /** What the snapshot sanitizer did to the base tree (cached with the tree). */
  snapshotReport: unknown = null;
  /** --allow-host grants for this session. */
  allowHosts: string[] = [];
  /** Resolver and upstream trust store overrides for the gateway (OpenSessionOptions.egressUpstream). */
  egressUpstream: EgressUpstream = {};
  /** Host uid/gid the sandbox user maps to (root mode), or null. */
  hostIds: { uid: number; gid: number } | null = null;
  /** Layer state (gateway, detector, honeytokens…) keyed by layer name. */
  readonly layerState = new Map<string, unknown>();
  /** The layers this session runs with (left-out ones are null). */
  readonly layers: SessionLayers;
  private readonly disabledLayers: LayerName[];
  private ownsStore: boolean;
  private onEvent?: (e: AuditEvent) => void;
  private cleanups: (() => Promise<void> | void)[] = [];
  private stopPromise: Promise<StopResult> | null = null;
  private stopReason: string | null = null;
  /** Why Airlock could not record, once it could not; the session is then frozen and ended. */
  recordingFailure: string | null = null;
  /** Events the store refused (disk full), retried in order as soon as it takes them again. */
  private unrecorded: AuditEventInput[] = [];
  /** result.git was made while the session ran, refs at the base (prepareResultRepo). */
  private resultRepoAtBase = false;
  /** Making result.git in the background (never rejects); capture and teardown wait for it. */
  private resultRepoMade: Promise<void> = Promise.resolve();
  /** Events of the start not yet committed (recordAtStart), while the session starts; null once it has. */
  private starting: AuditEventInput[] | null = [];
  /** Frees the session's ballast in AIRLOCK_HOME (room to record why it stops). */
  private releaseBallast: () => void = () => {};
  private endedController = new AbortController();
  /** Aborted when the session starts to end: whatever waits for it (an "ask") gives up. */
  get endedSignal(): AbortSignal {
    return this.endedController.signal;
  }

  private constructor(a: {
    id: string;
    repo: HostRepo;
    base: string;
    policy: LoadedPolicy;
    home: HomeLayout;
    store: AuditStore;
    ownsStore: boolean;
    agent: string;
    layers: SessionLayers;
    disabledLayers: LayerName[];
    onEvent?: (e: AuditEvent) => void;
  }) {
    this.id = a.id;
    this.repo = a.repo;
    this.baseCommit = a.base;
    this.policy = a.policy;
    this.home = a.home;
    this.layers = a.layers;
    this.disabledLayers = a.disabledLayers;
    this.store = a.store;
    this.ownsStore = a.ownsStore;
    this.agent = a.agent;
    this.onEvent = a.onEvent;
    this.stateDir = join(this.home.sessions, this.id);
  }

  /**
   * Records an event for this session; durable when it returns. When the store cannot take
   * it (disk full), the session is frozen and ended (cannotRecordNow) and this throws.
   */
  record(e: AuditEventInput): AuditEvent {
    return this.recordMany([e])[0]!;
  }

  /**
   * Records events in one group commit (one fsync for all: a process trace drained at once),
   * in order; durable when it returns, or none of them is and all are kept to retry.
   */
  recordMany(es: AuditEventInput[]): AuditEvent[] {
    // The store redacts argv, paths, reasons… whoever appends (see src/audit/redact.ts).
    // The start's events still waiting go first, in the same commit: the log keeps their order.
    const waiting = this.starting?.splice(0) ?? [];
    const inputs = [...waiting, ...es.map((e) => ({ ...e, session: e.session ?? this.id }))];
    if (this.unrecorded.length && !this.retryUnrecorded()) {
      for (const i of inputs) this.keep(i);
      throw cannotRecord(
        new Error(this.recordingFailure ?? 'the store refused earlier events'),
        `the audit log ${this.store.path}`,
      );
    }
    try {
      const evs = this.store.appendMany(inputs);
      for (const ev of evs) this.onEvent?.(ev);
      return evs.slice(waiting.length);
    } catch (err) {
      if (!isRecordingFailure(err) && !(err instanceof AirlockError && err.kind === 'CANNOT_RECORD')) throw err;
      for (const i of inputs) this.keep(i);
      this.cannotRecordNow(err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /**
   * Records an event of the session's start (session.start, what the layers set up): all of
   * them share one commit, made before open() returns and so before the agent's first
   * command, or earlier with any other event (in order). Nothing they describe has been
   * acknowledged before that commit: no agent process runs yet (issue 16: one fsync, not five).
   */
  recordAtStart(e: AuditEventInput): void {
    if (this.starting) this.starting.push({ ...e, session: e.session ?? this.id });
    else this.record(e);
  }

  /** Commits the start's events; from here on every event is its own commit again. */
  private commitStart(): void {
    const waiting = this.starting ?? [];
    this.starting = null;
    if (waiting.length) this.recordMany(waiting);
  }

  /** Records if it can; a failure is already handled by record() (freeze, end, keep the event). */
  private note(e: AuditEventInput): void {
    try {
      this.record(e);
    } catch {
      /* kept in `unrecorded`, retried */
    }
  }

  private keep(e: AuditEventInput): void {
    if (this.unrecorded.length < 10_000) this.unrecorded.push(e);
  }

  /** Appends what the store refused before, in order; false while it still refuses. */
  private retryUnrecorded(): boolean {
    try {
      for (const ev of this.store.appendMany(this.unrecorded)) this.onEvent?.(ev);
      this.unrecorded = [];
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Airlock cannot record: the agent must not go on unrecorded. Freeze it at once, record
   * why as soon as the store takes it (first in line), and end the session.
   */
  cannotRecordNow(detail: string): void {
    if (this.recordingFailure) return;
    this.recordingFailure = detail;
    try {
      this.sandbox?.pause();
    } catch {
      /* ending it below either way */
    }
    this.stopReason = `cannot record: ${detail}`;
    this.releaseBallast();
    this.unrecorded.unshift({
      type: 'telemetry.recording_failed',
      session: this.id,
      severity: 'critical',
      decision: 'deny',
      rule: 'builtin.telemetry-required',
      data: { detail, action: 'froze the agent and ended the session' },
    });
    this.retryUnrecorded();
    if (this.state === 'running' || this.state === 'paused') void this.stop(this.stopReason);
  }

  static async open(options: OpenSessionOptions = {}, store?: AuditStore): Promise<Session> {
    const env = options.env ?? process.env;
    const home = ensureHome(options.home ?? env.AIRLOCK_HOME ?? undefined);
    // Base first from the flag or HEAD, then read the policy as of that commit.
    const { repo, base, sources } = options.origin ?? readSessionOrigin(options, env);
    // Caller grants (agent profiles: credentials.brokered); --allow-host values go to the gateway as grants.
    const policy = await policyAt({ sources }, options.grants, options.shadowPolicy, {
      home,
      beforeParse: options.beforePolicyParse,
    });
    phase('session.policy');
    const { layers, disabled } = resolveLayers(options.layers);
    assertRoomToRecord(home.root);
    const ownsStore = !store;
    const st = store ?? new AuditStore(home.auditDb);
    phase('session.audit-open');
    // what a killed or starved session left behind (raw trace, cgroups) goes into the log first
    try {
      recoverSessions(st, home);
    } catch {
      /* left in place for the next attempt */
    }
    phase('session.recover');
    const s = new Session({
      id: newSessionId(),
      repo,
      base,
      policy,
      home,
      store: st,
      ownsStore,
      agent: options.agent ?? 'generic',
      layers,
      disabledLayers: disabled,
      onEvent: options.onEvent,
    });
    try {
      await s.start(options, env);
    } catch (e) {
      s.note({ type: 'session.failed', severity: 'high', data: { error: e instanceof Error ? e.message : String(e) } });
      // layers that started before the failure (the detector, the checkpointer) stop with it
      await s.stopLayers(null);
      await s.teardown();
      if (ownsStore) st.close();
      throw isRecordingFailure(e) ? cannotRecord(e, 'starting the session') : e;
    }
    return s;
  }

  private async start(opts: OpenSessionOptions, env: NodeJS.ProcessEnv): Promise<void> {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const identities = hostIdentities();
    this.releaseBallast = holdBallast(join(this.stateDir, 'recording-ballast'));
    this.cleanups.push(() => this.releaseBallast());
    const policy = this.policy.policy;
    const root = process.getuid?.() === 0;
    const hostIds = root ? { uid: HOST_UID_FOR_SANDBOX, gid: HOST_UID_FOR_SANDBOX } : null;
    this.hostIds = hostIds;
    this.allowHosts = opts.allowHosts ?? [];
    this.egressUpstream = opts.egressUpstream ?? {};
    const sanitizer = (await this.firstOf((l) => l.sanitizer?.(this))) ?? undefined;
    const snap = await prepareSnapshot(this.home.cache, this.repo, this.baseCommit, hostIds, sanitizer);
    this.snapshot = snap;
    this.snapshotReport = snap.report;
    this.syntheticBase = snap.syntheticBase;
    phase('session.snapshot');

    const fixed: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: SANDBOX_HOME,
      USER: 'agent',
      LOGNAME: 'agent',
      SHELL: '/bin/bash',
      TMPDIR: '/tmp',
      AIRLOCK_SANDBOX: '1',
      AIRLOCK_SESSION: this.id,
      GIT_AUTHOR_NAME: 'Airlock agent',
      GIT_AUTHOR_EMAIL: 'agent@airlock.invalid',
      GIT_COMMITTER_NAME: 'Airlock agent',
      GIT_COMMITTER_EMAIL: 'agent@airlock.invalid',
      ...(opts.sandboxEnv ?? {}),
    };
    if (!env.LANG) fixed.LANG = 'C.UTF-8';
    // Layers that plug in (egress gateway, credential broker, honeytokens) contribute here.
    const net: NetworkSetup | null = await this.firstOf((l) => l.network?.(this, env));
    if (net) {
      Object.assign(fixed, net.env);
      this.cleanups.push(net.close);
    }
    const sandboxEnv = buildSandboxEnv({
      hostEnv: env,
      allow: policy.sandbox.env.allow,
      set: policy.sandbox.env.set,
      fixed,
    });

    // the policy's runtime (the org may require a stronger one); a caller's driver is recorded as what ran
    const driver = opts.driver ?? (await driverFor(policy.sandbox));
    this.sandbox = await driver.start({
      session: this.id,
      stateDir: join(this.stateDir, 'sandbox'),
      lowerDirs: this.snapshot.lowerDirs,
      limits: policy.sandbox.limits,
      env: sandboxEnv,
      mounts: {
        readOnly: [...policy.sandbox.mounts.readOnly, ...(opts.readOnlyPaths ?? [])],
        readWrite: policy.sandbox.mounts.readWrite,
      },
      forbiddenMounts: [this.home.root],
      networkSetup: net?.setup ?? null,
      redirectedPorts: net?.redirectedPorts ?? [],
      gateway: net?.bridge ?? null,
      files: net?.files ?? [],
      trace: policy.sandbox.traceProcesses,
      traceFileProbes: policy.sandbox.traceProcesses && policy.sandbox.traceFileProbes,
      hostIds,
      record: (e) => {
        this.record(e);
      },
      recordMany: (es) => {
        this.recordMany(es);
      },
    });
    this.cleanups.push(() => this.sandbox.stop());
    phase('session.sandbox');
    // the bridges live in this process: no agent connection becomes a host process
    if (net?.attach && !this.sandbox.bridgesGateway) this.cleanups.push(await net.attach(this.sandbox.networkNs()));
    await this.recordStart(opts, sandboxEnv, identities);
    for (const l of this.activeLayers()) await l.afterStart?.(this);
    this.cleanups.push(watchRecordingSpace(this.home.root, (detail) => this.cannotRecordNow(detail)));
    void this.sandbox.limitHit.then((h) => {
      if (this.state === 'running' || this.state === 'paused') this.stopReason = `limit: ${h.detail}`;
    });
    this.commitStart();
    // result.git is made while the agent runs (capture waits for it), not on the start's path:
    // measured here, the supervisor's work beside the holder slowed the start more than it saved
    this.resultRepoMade = this.prepareResult();
    phase('session.started');
  }

  /** The capture's result repository, made in the background (capture makes it itself when this failed). */
  private async prepareResult(): Promise<void> {
    try {
      await prepareResultRepo(this.resultRepo, this.snapshot.mirror, this.baseCommit, this.syntheticObjects());
      this.resultRepoAtBase = true;
    } catch {
      /* capture makes it (a half-made one: its refs are written then) */
    }
  }

  private get resultRepo(): string {
    return join(this.stateDir, 'result.git');
  }

  /** Where the synthetic base's objects are (the sanitized layer's own .git), when the workspace starts from one. */
  private syntheticObjects(): string[] {
    return this.syntheticBase ? [join(this.snapshot.lowerDirs[0]!, '.git', 'objects')] : [];
  }

  /** session.start (what runs, under which policy and mechanisms), then each disabled layer and lifted mode, loudly. */
  private async recordStart(
    opts: OpenSessionOptions,
    sandboxEnv: Record<string, string>,
    identities: ReturnType<typeof hostIdentities>,
  ): Promise<void> {
    const policy = this.policy.policy;
    this.recordAtStart({
      type: 'session.start',
      data: {
        repo: this.repo.root,
        baseRef: opts.base ?? 'HEAD',
        baseCommit: this.baseCommit,
        agent: this.agent,
        agentVersion: opts.agentVersion ?? null,
        command: opts.command ?? null,
        policyHash: this.policy.hash,
        policySources: this.policy.sources.map((s) => ({ kind: s.kind, origin: s.origin })),
        modes: { egress: policy.modes.egress, commands: policy.modes.commands, packages: policy.modes.packages },
        candidatePolicy: this.policy.candidate
          ? {
              hash: this.policy.candidate.hash,
              sources: this.policy.candidate.sources.map((s) => ({ kind: s.kind, origin: s.origin })),
            }
          : null,
        runtime: this.runtime,
        mechanisms: this.sandbox.mechanisms,
        namespaces: this.sandbox.namespaces(),
        limits: policy.sandbox.limits,
        envNames: Object.keys(sandboxEnv).sort(),
        mounts: policy.sandbox.mounts,
        allowHosts: opts.allowHosts ?? [],
        snapshotBuilt: this.snapshot.built,
        historyHidden: this.syntheticBase !== null,
        syntheticBase: this.syntheticBase,
        startedBy: safeUser(),
        startedByIdentities: await identities,
        supervisorPid: process.pid,
        workspace: SANDBOX_WORKSPACE,
        layers: Object.fromEntries(LAYER_NAMES.map((n) => [n, this.layers[n] ? 'on' : 'off'])),
      },
    });
    for (const layer of this.disabledLayers) {
      this.recordAtStart({
        type: 'session.layer_disabled',
        severity: 'high',
        rule: 'builtin.session.layers',
        data: { layer, by: 'caller', reason: 'left out when the session was opened' },
      });
    }
    for (const layer of MODE_LAYERS.filter((l) => policy.modes[l] !== 'enforce')) {
      // record mode lifts refusals: the defenders see it as loudly as a disabled layer
      const mode = policy.modes[layer];
      this.recordAtStart({
        type: 'session.mode',
        severity: mode === 'record' ? 'medium' : 'info',
        rule: `modes.${layer}`,
        data: { layer, mode, allowed: policy.modes.allowed, candidateHash: this.policy.candidate?.hash ?? null },
      });
    }
  }

  get mechanisms() {
    return this.sandbox.mechanisms;
  }

  /** The sandbox runtime this session runs under, by its policy name (sandbox.runtime). */
  get runtime(): string {
    return runtimeOfDriver(this.sandbox.mechanisms.driver);
  }

  /** The mirror repository with the real base history (host-side, trusted). */
  get mirror(): string {
    return this.snapshot.mirror;
  }

  /** Where the agent's workspace can be read on the host while the session runs. */
  workspaceView(): string {
    return this.sandbox.workspaceView();
  }

  /** The sandbox HOME as the host can write it while the session runs. */
  homeView(): string {
    return this.sandbox.workspaceView().replace(/merged$/, 'home');
  }

  /** Runs a command in the session's sandbox. Policy on the command applies (allow/ask/deny). */
  async exec(req: ExecRequest): Promise<ExecHandle> {
    if (this.state === 'stopping' || this.state === 'stopped')
      throw new AirlockError('BAD_STATE', `session ${this.id} has stopped`, 'start a new session');
    const decision = await this.decideCommand(req);
    if (this.endedSignal.aborted) {
      throw new AirlockError(
        'BAD_STATE',
        `session ${this.id} ended while the command waited for a decision`,
        'start a new session',
      );
    }
    if (decision && decision.action !== 'allow') {
      this.record({
        type: 'command.denied',
        severity: 'medium',
        decision: 'deny',
        rule: decision.rule,
        data: { argv: req.argv, reason: decision.reason, via: req.via ?? 'api', ...modeData(decision) },
      });
      throw new AirlockError(
        'DENIED',
        `command denied by ${decision.rule}: ${decision.reason}`,
        'change the command or ask an admin to change the policy rule',
      );
    }
    phase('exec.decided');
    const via = req.via ?? 'api';
    return this.sandbox.exec(req.argv, {
      stdio: req.stdio ?? 'pipe',
      cwd: req.cwd,
      env: req.env,
      // Durable before the command starts: the chain is spawned and waits for this fsync (their
      // costs overlap); if it fails, the chain ends without starting anything.
      beforeStart: () => {
        // `airlock run`'s command is the human's own choice; everything else met the command rules
        this.record({
          type: 'command.exec',
          decision: 'allow',
          rule: decision?.rule ?? (req.via === 'run' ? 'builtin.human-command' : 'commands.default'),
          data: { argv: req.argv, cwd: req.cwd ?? SANDBOX_WORKSPACE, via, ...modeData(decision) },
        });
      },
      // one group commit with the command's last process events, durable before its result is returned
      exitEvents: (r) => {
        this.lastStatus = r.status;
        return [{ type: 'command.exit', data: { argv0: req.argv[0], status: r.status, signal: r.signal, via } }];
      },
    });
  }

  /** Convenience: run to completion, collecting output. */
  async run(
    argv: string[],
    o: Omit<ExecRequest, 'argv' | 'stdio'> = {},
  ): Promise<{ status: number; stdout: string; stderr: string }> {
    const h = await this.exec({ ...o, argv, stdio: 'pipe' });
    h.stdin?.end();
    let stdout = '';
    let stderr = '';
    h.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    h.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const r = await h.done;
    return { status: r.status, stdout, stderr };
  }

  pause(reason = 'requested'): boolean {
    if (this.state !== 'running') return false;
    const ok = this.sandbox.pause();
    if (ok) {
      this.state = 'paused';
      this.record({ type: 'session.paused', severity: 'medium', data: { reason } });
    }
    return ok;
  }

  resume(by = safeUser()): boolean {
    if (this.state !== 'paused') return false;
    const ok = this.sandbox.resume();
    if (ok) {
      this.state = 'running';
      this.record({ type: 'session.resumed', data: { by } });
    }
    return ok;
  }

  /** Resolves when a resource limit ends the session. */
  get limitHit() {
    return this.sandbox.limitHit;
  }

  /** Ends the session: stops processes, captures the result, tears the sandbox down. Idempotent. */
  stop(reason = 'completed'): Promise<StopResult> {
    if (!this.stopPromise) this.stopPromise = this.doStop(reason);
    return this.stopPromise;
  }

  /**
   * Ends the session at once, without capture (a second Ctrl-C): records the end and
   * kills the sandbox's processes; the caller exits right after, and the holder, bridges
   * and gateway end with this process.
   */
  abandon(reason: string): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.endedController.abort();
    void this.sandbox.killAll();
    this.record({
      type: 'session.stop',
      severity: 'medium',
      data: { reason, status: this.lastStatus, forced: true, commits: 0, dirty: false },
    });
  }

  private async doStop(reason: string): Promise<StopResult> {
    const why = this.stopReason ?? reason;
    this.state = 'stopping';
    this.endedController.abort();
    // children's handles can all be gone while capture still runs: keep the process up until the end is recorded
    const keepAlive = setInterval(() => {
      /* nothing */
    }, 60_000);
    try {
      return await this.stopAndCapture(why);
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async stopAndCapture(why: string): Promise<StopResult> {
    await this.sandbox.killAll();
    phase('stop.kill');
    let result: CaptureResult | null = null;
    try {
      let restore: Record<string, [string, string][]> = {};
      if (this.syntheticBase) {
        // convenience, not safety: without it the markers simply stay in the proposal
        try {
          restore = await this.restoreSecrets();
        } catch (e) {
          this.note({
            type: 'session.capture_warning',
            severity: 'low',
            data: { warning: `redacted values not restored: ${e instanceof Error ? e.message : String(e)}` },
          });
        }
      }
      await this.resultRepoMade;
      result = captureWorkspace({
        workspace: this.sandbox.workspaceView(),
        upperGitDir: this.sandbox.upperGitDir(),
        resultRepo: this.resultRepo,
        refsAtBase: this.resultRepoAtBase,
        mirror: this.snapshot.mirror,
        baseCommit: this.baseCommit,
        workTreeNs: this.sandbox.trustedNs(),
        layers:
          this.sandbox.overlay === false
            ? undefined
            : { upper: this.sandbox.workspaceView().replace(/merged$/, 'upper'), lower: this.snapshot.lowerDirs[0]! },
        synthetic: this.syntheticBase
          ? { commit: this.syntheticBase, objects: this.syntheticObjects()[0]!, restore }
          : null,
      });
      this.note({ type: 'session.result', data: { ...result } });
    } catch (e) {
      this.note({
        type: 'session.capture_failed',
        severity: 'high',
        data: { error: e instanceof Error ? e.message : String(e) },
      });
    }
    phase('stop.capture');
    await this.teardown();
    phase('stop.teardown');
    // result.git, traces: git and strace create them with the umask's modes
    try {
      makePrivateTree(this.stateDir);
    } catch (e) {
      this.record({
        type: 'session.capture_warning',
        severity: 'medium',
        data: { warning: `session files not made private: ${e instanceof Error ? e.message : String(e)}` },
      });
    }
    this.state = 'stopped';
    this.note({
      type: 'session.stop',
      data: {
        reason: why,
        status: this.lastStatus,
        commits: result?.commits.length ?? 0,
        dirty: result?.dirty ?? false,
      },
    });
    await this.stopLayers(result);
    this.retryUnrecorded();
    if (this.ownsStore) this.store.close();
    phase('stop.layers');
    return {
      session: this.id,
      result,
      status: this.lastStatus,
      reason: this.stopReason ?? why,
      recordingFailure: this.recordingFailure,
    };
  }

  /** Each layer's afterStop (a failure is recorded, the others still stop). */
  private async stopLayers(result: CaptureResult | null): Promise<void> {
    for (const [name, l] of this.namedLayers()) {
      try {
        await l.afterStop?.(this, result);
      } catch (e) {
        this.note({
          type: 'session.hook_failed',
          severity: 'high',
          data: { hook: 'afterStop', layer: name, error: String(e) },
        });
      }
    }
  }

  private namedLayers(): [LayerName, SessionLayer][] {
    return LAYER_NAMES.flatMap((n) => {
      const l = this.layers[n];
      return l ? [[n, l] as [LayerName, SessionLayer]] : [];
    });
  }

  private activeLayers(): SessionLayer[] {
    return this.namedLayers().map(([, l]) => l);
  }

  /** The first non-null contribution of a layer, in layer order. */
  private async firstOf<T>(pick: (l: SessionLayer) => Promise<T | null> | undefined): Promise<T | null> {
    for (const l of this.activeLayers()) {
      const v = await pick(l);
      if (v) return v;
    }
    return null;
  }

  /** Every layer with an opinion decides; the first that does not allow wins, else the last allow (null: none had one). */
  private async decideCommand(req: ExecRequest): Promise<ModalDecision | null> {
    let allow: ModalDecision | null = null;
    for (const l of this.activeLayers()) {
      const d = (await l.decideCommand?.(this, req)) ?? null;
      if (d && d.action !== 'allow') return d;
      allow = d ?? allow;
    }
    return allow;
  }

  private async restoreSecrets(): Promise<Record<string, [string, string][]>> {
    const out: Record<string, [string, string][]> = {};
    for (const l of this.activeLayers()) Object.assign(out, (await l.restoreSecrets?.(this)) ?? {});
    return out;
  }

  private async teardown(): Promise<void> {
    await this.resultRepoMade; // no git of this session outlives it
    for (const c of this.cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* best effort; recorded by the owner */
      }
    }
    this.cleanups = [];
    // Sandbox plumbing (traces stay: they are evidence); mountpoints are empty dirs.
  }
}

/** A decision made in shadow or record mode says so in its event: the mode and the would-be decision. */
function modeData(d: ModalDecision | null): Record<string, unknown> {
  const asked = d?.asked ? { asked: true } : {};
  return d?.modeNote
    ? { ...asked, mode: d.modeNote.mode, wouldBe: { ...d.modeNote.wouldBe, policy: d.modeNote.policy } }
    : asked;
}

/**
 * The starter's other names (git identity from the human's own config), for separation of
 * duties. Asked while the sandbox starts (both at once), not before it.
 */
async function hostIdentities(): Promise<string[]> {
  // one git for both keys (NUL-separated: a value cannot break the parse); the last value of a key wins, as with --get
  const listed = await execFileAsync('git', ['config', '--global', '--null', '--get-regexp', '^user\\.(email|name)$'], {
    encoding: 'utf8',
    timeout: 2000,
  }).then(
    (r) => r.stdout,
    () => '',
  );
  const values = new Map(
    listed
      .split('\0')
      .filter(Boolean)
      .map((entry): [string, string] => {
        const nl = entry.indexOf('\n');
        return nl < 0 ? [entry, ''] : [entry.slice(0, nl), entry.slice(nl + 1).trim()];
      }),
  );
  const names = ['user.email', 'user.name'].map((k) => values.get(k) ?? '');
  return [safeUser(), ...names.filter(Boolean)];
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
