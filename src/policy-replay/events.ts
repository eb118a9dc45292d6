import { AirlockError } from '../common/index.ts';
import type { AuditEvent, AuditStore } from '../audit/index.ts';
import type { PolicyDecision } from '../policy/index.ts';
import { queryOfEvent, type TargetQuery } from '../egress/index.ts';

// The recorded decisions replay and learn read back: egress requests (with the query the
// gateway decided) and commands run through the command rules. What each event says the
// policy decided: in record mode the would-be decision, else the enforced one.

export type ReplayLayer = 'egress' | 'commands' | 'packages';

export interface RecordedDecision {
  event: Pick<AuditEvent, 'seq' | 'id' | 'ts' | 'session'>;
  layer: ReplayLayer;
  /** What the policy in force decided (record mode: what it would have). */
  before: Pick<PolicyDecision, 'action' | 'rule'>;
  /** What the session let happen (differs from `before` only in record mode). */
  enforced: Pick<PolicyDecision, 'action' | 'rule'>;
  egress?: { query: TargetQuery; grants: string[] };
  command?: string[];
  package?: { ecosystem: 'npm' | 'pypi'; name: string; version?: string };
}

export interface ReplayScope {
  sessions?: string[];
  /** Only events at or after this time (ISO 8601). */
  since?: string;
}

const DURATION = /^(\d{1,6})([smhdw])$/;
const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

/** `30d`, `12h`, `2w` → the ISO time that long ago. */
export function sinceTime(text: string, now = Date.now()): string {
  const m = DURATION.exec(text.trim());
  if (!m)
    throw new AirlockError(
      'USAGE',
      `--since ${JSON.stringify(text)}: not a duration`,
      'use a number and a unit: 30d, 12h, 90m, 2w',
    );
  return new Date(now - Number(m[1]) * UNIT_MS[m[2]!]!).toISOString();
}

function asDecision(x: unknown): Pick<PolicyDecision, 'action' | 'rule'> | null {
  const d = x as { action?: unknown; rule?: unknown } | null;
  if (!d || typeof d.rule !== 'string' || !['allow', 'deny', 'ask'].includes(String(d.action))) return null;
  return { action: d.action as PolicyDecision['action'], rule: d.rule };
}

function policyOutcome(
  e: AuditEvent,
): { before: Pick<PolicyDecision, 'action' | 'rule'>; enforced: Pick<PolicyDecision, 'action' | 'rule'> } | null {
  const enforced = asDecision({ action: e.decision, rule: e.rule });
  if (!enforced) return null;
  const wouldBe = e.data.mode === 'record' ? asDecision(e.data.wouldBe) : null;
  // a command a human answered: the policy's own decision was the ask
  const asked = e.data.asked === true && e.rule ? { action: 'ask' as const, rule: e.rule } : null;
  return { before: wouldBe ?? asked ?? enforced, enforced };
}

/** A package the firewall decided (a file, or the whole package by name): its verdict before, as recorded. */
function packageDecision(e: AuditEvent, ref: RecordedDecision['event']): RecordedDecision | null {
  const p = e.data.package as
    | { ecosystem?: unknown; name?: unknown; version?: unknown; rule?: unknown; mode?: unknown; wouldBe?: unknown }
    | undefined;
  if (!p || (p.ecosystem !== 'npm' && p.ecosystem !== 'pypi') || typeof p.name !== 'string') return null;
  const enforced =
    e.decision === 'deny' && e.rule?.startsWith('egress.packages.')
      ? { action: 'deny' as const, rule: e.rule }
      : e.decision === 'allow' && typeof p.rule === 'string'
        ? { action: 'allow' as const, rule: p.rule }
        : null;
  if (!enforced) return null;
  const wouldBe = p.mode === 'record' ? asDecision(p.wouldBe) : null;
  return {
    event: ref,
    layer: 'packages',
    before: wouldBe ?? enforced,
    enforced,
    package: { ecosystem: p.ecosystem, name: p.name, ...(typeof p.version === 'string' ? { version: p.version } : {}) },
  };
}

/** The recorded decisions of one event (an intercepted package fetch is two: its request and its package). */
export function recordedDecisionsOf(e: AuditEvent, grants: string[] = []): RecordedDecision[] {
  const d = recordedDecision(e, grants);
  const pkg =
    e.type === 'egress.request' ? packageDecision(e, { seq: e.seq, id: e.id, ts: e.ts, session: e.session }) : null;
  return [...(d ? [d] : []), ...(pkg ? [pkg] : [])];
}

/** One recorded decision, or null for events that are not decisions replay can repeat. */
export function recordedDecision(e: AuditEvent, grants: string[] = []): RecordedDecision | null {
  const out = policyOutcome(e);
  if (!out) return null;
  const ref = { seq: e.seq, id: e.id, ts: e.ts, session: e.session };
  if (e.type === 'egress.request') {
    const query = queryOfEvent(e.data);
    return query ? { event: ref, layer: 'egress', ...out, egress: { query, grants } } : null;
  }
  if ((e.type === 'command.exec' || e.type === 'command.denied') && e.data.via !== 'run') {
    const argv = e.data.argv;
    if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) return null;
    return { event: ref, layer: 'commands', ...out, command: argv };
  }
  return null;
}

/** Every recorded decision in scope, oldest first, with each session's per-run egress grants. */
export function recordedDecisions(store: AuditStore, scope: ReplayScope): RecordedDecision[] {
  const grants = new Map<string, string[]>();
  const out: RecordedDecision[] = [];
  const take = (e: AuditEvent) => {
    if (e.type === 'session.start' && e.session) {
      const a = e.data.allowHosts;
      grants.set(e.session, Array.isArray(a) ? a.map(String) : []);
      return;
    }
    if (scope.since && e.ts < scope.since) return;
    out.push(...recordedDecisionsOf(e, grants.get(e.session ?? '') ?? []));
  };
  if (scope.sessions?.length) {
    for (const s of scope.sessions) {
      const evs = store.query({ session: s });
      if (!evs.length)
        throw new AirlockError('NOT_FOUND', `unknown session: ${s}`, 'list sessions with `airlock sessions`');
      evs.forEach(take);
    }
  } else {
    for (const e of store.iterate()) take(e);
  }
  return out;
}
