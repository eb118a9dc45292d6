import type { AuditStore } from '../audit/index.ts';
import { runtimeOfDriver } from '../sandbox/index.ts';
import { processRuns } from '../common/index.ts';

export interface SessionSummary {
  id: string;
  command: string[] | null;
  agent: string | null;
  repo: string | null;
  baseCommit: string | null;
  start: string;
  end: string | null;
  status: number | null;
  /** interrupted: ended by a signal to its supervisor; aborted: the supervisor died without recording an end */
  state: 'running' | 'stopped' | 'interrupted' | 'failed' | 'aborted';
  events: number;
  denials: number;
  commits: number | null;
  dirty: boolean | null;
  /** pid of the process that ran the session (from session.start) */
  supervisorPid: number | null;
  /** the sandbox runtime it ran under (sandbox.runtime: bwrap, gvisor), from session.start */
  runtime: string | null;
}

/**
 * The per-session columns both stores compute with the same SQL (SQLite here, PostgreSQL for
 * every host's sessions in the shared store); aliases quoted, since PostgreSQL folds case.
 */
export const SESSION_COLUMNS = `MIN(ts) AS "start",
      COUNT(*) AS "events",
      SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) AS "denials",
      MAX(CASE WHEN type = 'session.start' THEN data END) AS "startData",
      MAX(CASE WHEN type = 'session.stop' THEN data END) AS "stopData",
      MAX(CASE WHEN type = 'session.stop' THEN ts END) AS "end",
      MAX(CASE WHEN type = 'session.result' THEN data END) AS "resultData",
      MAX(CASE WHEN type = 'session.failed' THEN data END) AS "failData"`;

/** Sessions as the audit log tells them (the log is the only source of truth). */
export function listSessions(store: AuditStore, only?: string): SessionSummary[] {
  const rows = store.tables
    .prepare(
      `
    SELECT session AS id, ${SESSION_COLUMNS}
    FROM events WHERE session IS NOT NULL ${only ? 'AND session = ?' : ''}
    GROUP BY session ORDER BY MIN(seq) ASC`,
    )
    .all(...(only ? [only] : [])) as Record<string, unknown>[];
  return rows.map((r) => sessionFromRow(r, true));
}

/** One row of SESSION_COLUMNS as a summary; `local`: its supervisor would run on this host (so a dead one means aborted). */
export function sessionFromRow(r: Record<string, unknown>, local: boolean): SessionSummary {
  const sd = r.startData ? (JSON.parse(String(r.startData)) as Record<string, unknown>) : {};
  const st = r.stopData ? (JSON.parse(String(r.stopData)) as Record<string, unknown>) : null;
  const rd = r.resultData ? (JSON.parse(String(r.resultData)) as Record<string, unknown>) : null;
  let state: SessionSummary['state'] = st
    ? String(st.reason ?? '').startsWith('interrupted')
      ? 'interrupted'
      : 'stopped'
    : r.failData
      ? 'failed'
      : 'running';
  if (local && state === 'running' && typeof sd.supervisorPid === 'number' && !processRuns(sd.supervisorPid))
    state = 'aborted';
  return {
    id: String(r.id),
    command: (sd.command as string[] | null) ?? null,
    agent: (sd.agent as string) ?? null,
    repo: (sd.repo as string) ?? null,
    baseCommit: (sd.baseCommit as string) ?? null,
    start: String(r.start),
    end: (r.end as string | null) ?? null,
    status: (st?.status as number | null) ?? null,
    state,
    events: Number(r.events),
    denials: Number(r.denials ?? 0),
    commits: rd ? (rd.commits as unknown[]).length : null,
    dirty: rd ? Boolean(rd.dirty) : null,
    supervisorPid: typeof sd.supervisorPid === 'number' ? sd.supervisorPid : null,
    runtime: runtimeOf(sd),
  };
}

/** sandbox.runtime of a session.start (sessions recorded before runtimes existed ran under bubblewrap). */
function runtimeOf(start: Record<string, unknown>): string | null {
  const d = (start.runtime ?? (start.mechanisms as { driver?: unknown } | undefined)?.driver) as string | undefined;
  return d === undefined ? null : runtimeOfDriver(String(d));
}
