import { matchesGlob } from 'node:path';
import { type AuditEvent, type AuditStore, eventPaths } from '../audit/index.ts';
import type { Severity } from '../common/index.ts';
import type { Policy, DetectionRule } from '../policy/index.ts';
import {
  MEASURE_LABEL,
  SessionProfile,
  deviation,
  globMatch,
  knownSets,
  pastProfiles,
  programName,
  saveProfile,
  type Measure,
  type StoredProfile,
} from './profile.ts';

export { deviation, type Measure, type Deviation } from './profile.ts';

// Detection over a session's live event stream: policy rules (specific events, counts
// over windows, honeytokens) and per-agent baselines. Each finding is an audit event
// `detect.finding` (OCSF Detection Finding on export) naming its evidence event ids; the
// response chosen for its severity (record | require-approver | pause | kill) is carried
// out through the session's control and recorded as `detect.response`.

export interface SessionControl {
  pause(): Promise<void>;
  resume(): Promise<void>;
  kill(reason: string): Promise<void>;
}

export interface DetectorOptions {
  store: AuditStore;
  policy: Policy;
  session: string;
  /** Agent identity baselines are kept per (e.g. "codex@repo" or the agent profile name). */
  agent: string;
  control: SessionControl;
  /** How often to look for events other processes appended (default 200 ms). */
  pollMs?: number;
}

export interface Detector {
  /** Drains pending events, records the session profile for future baselines, stops. */
  stop(): void;
  /** Resumes a paused session (for `airlock session resume`): calls control.resume() and records it. */
  resume(by: string): Promise<void>;
  paused(): boolean;
  /** Settles when every response started so far has finished (tests, orderly shutdown). */
  idle(): Promise<void>;
}

const MAX_FINDINGS_PER_RULE = 20; // an agent flooding one rule cannot flood the log
const MAX_EVIDENCE = 50;

function typeMatches(types: string[], t: string): boolean {
  return types.some((p) => (p.endsWith('*') ? t.startsWith(p.slice(0, -1)) : t === p));
}

export function ruleMatches(r: DetectionRule, e: AuditEvent): boolean {
  const m = r.match;
  const d = e.data ?? {};
  if (!typeMatches(m.types, e.type)) return false;
  if (m.decision && e.decision !== m.decision) return false;
  if (m.paths && !(e.type !== 'egress.request' && eventPaths(d).some((p) => globMatch(p, m.paths!)))) return false;
  if (m.hosts && !(typeof d.host === 'string' && m.hosts.some((g) => matchesGlob(d.host as string, g)))) return false;
  if (m.processNames) {
    const p = programName(d);
    if (!p || !m.processNames.includes(p)) return false;
  }
  if (m.minBytesUp !== undefined && !(typeof d.bytesUp === 'number' && d.bytesUp >= m.minBytesUp)) return false;
  return true;
}

/** Whether review must require one more approver for this session's proposal (a `require-approver` response was recorded). */
export function extraApproverRequired(store: AuditStore, session: string): { required: boolean; findings: string[] } {
  const findings = store
    .query({ session, type: 'detect.response' })
    .filter((e) => e.data.action === 'require-approver')
    .map((e) => String(e.data.findingId));
  return { required: findings.length > 0, findings };
}

export function startDetector(opts: DetectorOptions): Detector {
  const { store, session } = opts;
  const detector = new SessionDetector(opts);
  let scheduled = false;
  const off = store.onAppend((e) => {
    if (e.session !== session || scheduled || detector.stopped) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (!detector.stopped) detector.drain();
    });
  });
  const timer = setInterval(() => {
    if (!detector.stopped) detector.drain();
  }, opts.pollMs ?? 200);
  timer.unref();
  detector.drain();

  return {
    stop() {
      if (detector.stopped) return;
      detector.drain();
      detector.stopped = true;
      off();
      clearInterval(timer);
      detector.saveBaselineProfile();
    },
    resume: (by: string) => detector.resume(by),
    paused: () => detector.isPaused,
    idle: () => detector.chain,
  };
}

type Telemetry = Policy['telemetry'];

/** One session's detection state: its rules' windows and counts, its baseline profile, its responses so far. */
class SessionDetector {
  private readonly store: AuditStore;
  private readonly session: string;
  private readonly agent: string;
  private readonly control: SessionControl;
  private readonly telemetry: Telemetry;
  private readonly past: StoredProfile[];
  private readonly judging: boolean;
  private readonly profile: SessionProfile;
  private readonly firedMeasures = new Set<Measure>();
  private readonly windows = new Map<string, { t: number; id: string }[]>();
  private readonly fired = new Map<string, number>();
  private lastSeq = 0;
  private killed = false;
  stopped = false;
  isPaused = false;
  chain: Promise<void> = Promise.resolve();

  constructor(opts: DetectorOptions) {
    this.store = opts.store;
    this.session = opts.session;
    this.agent = opts.agent;
    this.control = opts.control;
    this.telemetry = opts.policy.telemetry;
    const baselines = this.telemetry.baselines;
    this.past = baselines.enabled ? this.loadPast(baselines.maxSessions) : [];
    this.judging = baselines.enabled && this.past.length >= baselines.minSessions;
    this.profile = new SessionProfile(this.session, knownSets(this.past));
  }

  private loadPast(maxSessions: number): StoredProfile[] {
    try {
      return pastProfiles(this.store, this.agent, this.session, maxSessions);
    } catch (e) {
      this.store.append({
        type: 'detect.error',
        session: this.session,
        severity: 'medium',
        rule: 'detect.baselines',
        data: { error: e instanceof Error ? e.message : String(e) },
      });
      return [];
    }
  }

  private record(input: Parameters<AuditStore['append']>[0]): AuditEvent {
    return this.store.append({ session: this.session, ...input });
  }

  private respond(finding: AuditEvent): void {
    const action = this.telemetry.responses[finding.severity];
    this.chain = this.chain
      .then(async () => {
        const base = {
          findingId: finding.id,
          findingRule: finding.rule,
          severity: finding.severity,
          agent: this.agent,
        };
        if (this.killed) {
          this.record({
            type: 'detect.response',
            severity: finding.severity,
            rule: `telemetry.responses.${finding.severity}`,
            data: { ...base, action, result: 'session already killed' },
          });
          return;
        }
        const { taken, result } = await this.carryOut(action, finding);
        this.record({
          type: 'detect.response',
          severity: finding.severity,
          rule: `telemetry.responses.${finding.severity}`,
          decision: action === 'record' ? null : 'deny',
          data: { ...base, action: taken, result },
        });
      })
      .catch(() => {
        /* recorded above; the chain continues */
      });
  }

  /** Pauses or kills as the response says; fails closed: a session that cannot be paused is killed. */
  private async carryOut(
    action: Telemetry['responses'][Severity],
    finding: AuditEvent,
  ): Promise<{ taken: typeof action; result: string }> {
    let result = 'done';
    let taken = action;
    try {
      if (action === 'pause') {
        if (this.isPaused) result = 'already paused';
        else {
          await this.control.pause();
          this.isPaused = true;
        }
      } else if (action === 'kill') {
        await this.control.kill(`detection: ${String(finding.data.title ?? finding.rule)}`);
        this.killed = true;
      }
    } catch (e) {
      result = `${action} failed: ${e instanceof Error ? e.message : String(e)}`;
      if (action === 'pause') {
        try {
          await this.control.kill(`pause failed after finding ${finding.id}`);
          this.killed = true;
          taken = 'kill';
          result += '; killed instead';
        } catch (e2) {
          result += `; kill failed too: ${e2 instanceof Error ? e2.message : String(e2)}`;
        }
      }
    }
    return { taken, result };
  }

  private finding(
    rule: string,
    severity: Severity,
    title: string,
    explanation: string,
    evidence: string[],
    extra: Record<string, unknown> = {},
  ): void {
    const count = (this.fired.get(rule) ?? 0) + 1;
    this.fired.set(rule, count);
    // The cap limits log volume, never enforcement: a finding whose response would pause
    // or kill is always recorded and acted on (20 harmless hits must not buy a free pass).
    const action = this.telemetry.responses[severity];
    if (count > MAX_FINDINGS_PER_RULE && action !== 'pause' && action !== 'kill') return;
    const recorded = this.record({
      type: 'detect.finding',
      severity,
      rule,
      data: {
        title,
        explanation,
        agent: this.agent,
        evidence: evidence.slice(-MAX_EVIDENCE),
        ...(count === MAX_FINDINGS_PER_RULE
          ? { note: 'further findings of this rule in this session are not recorded' }
          : {}),
        ...extra,
      },
    });
    this.respond(recorded);
  }

  private checkBaseline(changed: Set<Measure>, event: AuditEvent): void {
    if (!this.judging) return;
    const bl = this.telemetry.baselines;
    const profile = this.profile;
    for (const measure of changed) {
      if (this.firedMeasures.has(measure)) continue;
      const dev = deviation(
        measure,
        profile.value(measure),
        this.past.map((p) => p.metrics[measure] ?? 0),
      );
      if (dev.z <= bl.threshold) continue;
      this.firedMeasures.add(measure);
      const items =
        measure === 'newHosts'
          ? profile.newHosts
          : measure === 'newAreas'
            ? profile.newAreas
            : measure === 'newCommands'
              ? profile.newPrograms
              : undefined;
      const names = items ? [...items.keys()] : [];
      const explanation = `${MEASURE_LABEL[measure]} = ${dev.value}${names.length ? ` (${names.slice(0, 10).join(', ')})` : ''}; usual range ${dev.min}–${dev.max} over ${dev.n} past sessions of ${this.agent} (median ${dev.median}, MAD ${dev.mad}); robust z ${dev.z.toFixed(1)} > ${bl.threshold}`;
      this.finding(
        `detect.baseline.${measure}`,
        bl.severity,
        `Session outside its baseline: ${MEASURE_LABEL[measure]}`,
        explanation,
        items ? [...items.values()] : [event.id],
        {
          kind: 'baseline',
          measure: measure,
          value: dev.value,
          median: dev.median,
          mad: dev.mad,
          z: dev.z,
          usualMin: dev.min,
          usualMax: dev.max,
          sessions: dev.n,
          ...(names.length ? { items: names.slice(0, 50) } : {}),
        },
      );
    }
  }

  private checkRules(event: AuditEvent): void {
    for (const rule of this.telemetry.detection.rules) {
      let hit: boolean;
      try {
        hit = ruleMatches(rule, event);
      } catch (err) {
        this.record({
          type: 'detect.error',
          severity: 'medium',
          rule: `detect.${rule.id}`,
          data: { error: String(err), event: event.id },
        });
        continue;
      }
      if (!hit) continue;
      if (!rule.threshold) {
        this.finding(
          `detect.${rule.id}`,
          rule.severity,
          rule.description || rule.id,
          `event ${event.seq} (${event.type}) matched rule ${rule.id}`,
          [event.id],
        );
        continue;
      }
      const now = Date.parse(event.ts);
      const w = (this.windows.get(rule.id) ?? []).filter((x) => x.t > now - rule.threshold!.windowSeconds * 1000);
      w.push({ t: now, id: event.id });
      if (w.length > rule.threshold.moreThan) {
        this.finding(
          `detect.${rule.id}`,
          rule.severity,
          rule.description || rule.id,
          `${w.length} matching events within ${rule.threshold.windowSeconds}s (more than ${rule.threshold.moreThan})`,
          w.map((x) => x.id),
          { count: w.length, windowSeconds: rule.threshold.windowSeconds },
        );
        this.windows.set(rule.id, []);
      } else this.windows.set(rule.id, w);
    }
  }

  private checkHoneytokens(event: AuditEvent): void {
    const honey = this.telemetry.detection.honeytokens;
    if (!honey.length || event.type === 'egress.request') return;
    let hit: string | undefined;
    try {
      hit = eventPaths(event.data ?? {}).find((p) => globMatch(p, honey));
    } catch (err) {
      // e.g. a glob too long to compile: recorded, and the baseline still runs
      this.record({
        type: 'detect.error',
        severity: 'medium',
        rule: 'detect.honeytoken',
        data: { error: String(err), event: event.id },
      });
    }
    if (hit)
      this.finding(
        'detect.honeytoken',
        'critical',
        'Honeytoken touched',
        `event ${event.seq} (${event.type}) names honeytoken path ${hit}`,
        [event.id],
        { path: hit },
      );
  }

  private onEvent(event: AuditEvent): void {
    if (event.type.startsWith('detect.') || event.type.startsWith('audit.')) return; // never judge our own output
    this.checkRules(event);
    this.checkHoneytokens(event);
    this.checkBaseline(this.profile.add(event), event);
  }

  drain(): void {
    for (let i = 0; i < 100; i++) {
      // bounded per tick; the timer continues
      const batch = this.store.query({ session: this.session, afterSeq: this.lastSeq, limit: 1000 });
      if (batch.length === 0) return;
      for (const e of batch) {
        this.lastSeq = e.seq;
        // An exception here would leave the event unjudged with no trace (and escape the timer).
        try {
          this.onEvent(e);
        } catch (err) {
          this.record({
            type: 'detect.error',
            severity: 'high',
            rule: 'detect',
            data: { error: err instanceof Error ? err.message : String(err), event: e.id },
          });
        }
      }
    }
  }

  async resume(by: string): Promise<void> {
    await this.chain;
    if (!this.isPaused) return;
    await this.control.resume();
    this.isPaused = false;
    this.record({
      type: 'detect.resumed',
      severity: 'info',
      rule: 'telemetry.responses',
      data: { by, agent: this.agent },
    });
  }

  saveBaselineProfile(): void {
    try {
      if (this.profile.firstTs !== undefined) saveProfile(this.store, this.agent, this.profile);
    } catch {
      /* best effort */
    }
  }
}
