import type pg from 'pg';
import type { AuditEvent, Severity } from '../audit/index.ts';
import { parseData } from './queue.ts';

// The audit search over the shared store: every other host's shipped events, filtered like the
// local search (session, type or type prefix, severity and above, rule prefix, decision, time
// range) plus the host, newest first, one bounded page. Rows are other hosts' writing: `data`
// that is not a JSON object reads as {} (verify reports such a row), every string is left for
// the caller to escape.

export interface SharedEventFilter {
  session?: string;
  /** exact, or a prefix ending in '*' (egress.*) */
  type?: string;
  /** this severity and above */
  severity?: Severity;
  /** rule prefix */
  rule?: string;
  decision?: string;
  /** ISO times, inclusive */
  since?: string;
  until?: string;
  /** a host's log id (or its first characters) or its hostname */
  host?: string;
  /** page size (at most MAX_PAGE) */
  limit?: number;
}

/** An event of another host, with where it comes from. */
export interface SharedEvent extends Omit<AuditEvent, 'prevHash' | 'hash'> {
  logId: string;
  hostname: string;
}

export const MAX_PAGE = 500;
const SEVERITIES: Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

/** LIKE pattern for a literal prefix (the user's text never carries wildcards into SQL). */
const likePrefix = (s: string) => `${s.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;

function whereClause(f: SharedEventFilter, params: unknown[]): string[] {
  const where: string[] = ['e.log_id <> $1'];
  const add = (sql: (n: string) => string, v: unknown) => {
    params.push(v);
    where.push(sql(`$${params.length}`));
  };
  if (f.session) add((n) => `e.session = ${n}`, f.session);
  if (f.type?.endsWith('*')) add((n) => `e.type LIKE ${n}`, likePrefix(f.type.slice(0, -1)));
  else if (f.type) add((n) => `e.type = ${n}`, f.type);
  if (f.severity) add((n) => `e.severity = ANY(${n}::text[])`, SEVERITIES.slice(SEVERITIES.indexOf(f.severity!)));
  if (f.rule) add((n) => `e.rule LIKE ${n}`, likePrefix(f.rule));
  if (f.decision) add((n) => `e.decision = ${n}`, f.decision);
  if (f.since) add((n) => `e.ts >= ${n}`, f.since);
  if (f.until) add((n) => `e.ts <= ${n}`, f.until);
  if (f.host) add((n) => `(e.log_id LIKE ${n} OR h.hostname = $${params.length + 1})`, likePrefix(f.host));
  if (f.host) params.push(f.host);
  return where;
}

const severityOf = (s: string): Severity => (SEVERITIES.includes(s as Severity) ? (s as Severity) : 'info');

interface EventRow {
  log_id: string;
  hostname: string;
  seq: string;
  id: string;
  ts: string;
  type: string;
  session: string | null;
  severity: string;
  decision: string | null;
  rule: string | null;
  data: string;
}

const sharedEvent = (r: EventRow): SharedEvent => ({
  logId: r.log_id,
  hostname: r.hostname,
  seq: Number(r.seq),
  id: r.id,
  ts: r.ts,
  type: r.type,
  session: r.session,
  severity: severityOf(r.severity),
  decision: r.decision as AuditEvent['decision'],
  rule: r.rule,
  data: parseData(r.data),
});

/** Other hosts' events matching `f`, newest first, at most `f.limit` (≤ MAX_PAGE). */
export async function otherHostsEvents(
  c: pg.ClientBase,
  f: SharedEventFilter,
  exceptLogId: string,
): Promise<SharedEvent[]> {
  const params: unknown[] = [exceptLogId];
  const where = whereClause(f, params);
  params.push(Math.max(1, Math.min(f.limit ?? MAX_PAGE, MAX_PAGE)));
  const rows = (
    await c.query<EventRow>(
      `SELECT e.log_id, h.hostname, e.seq, e.id, e.ts, e.type, e.session, e.severity, e.decision, e.rule, e.data
        FROM airlock.events e JOIN airlock.hosts h USING (log_id) WHERE ${where.join(' AND ')}
        ORDER BY e.ts DESC, e.log_id, e.seq DESC LIMIT $${params.length}`,
      params,
    )
  ).rows;
  return rows.map(sharedEvent);
}

/** Another host's session as its summary row (schema v8) tells it, with where its events lie in that host's log. */
export interface SharedSessionRow {
  logId: string;
  hostname: string;
  session: string;
  firstSeq: number;
  lastSeq: number;
  /** the SESSION_COLUMNS shape (start, events, denials, startData, …) for sessionFromRow */
  row: Record<string, unknown>;
}

/** The sessions named `session` on hosts whose log id starts with `logIdPrefix` (normally one; more when the prefix is ambiguous). */
export async function sharedSessions(
  c: pg.ClientBase,
  session: string,
  logIdPrefix: string,
  limit = 5,
): Promise<SharedSessionRow[]> {
  const rows = (
    await c.query<Record<string, unknown> & { logId: string; hostname: string; firstSeq: string; lastSeq: string }>(
      `SELECT s.session AS id, s.log_id AS "logId", h.hostname, s.start AS "start", s.events AS "events",
        s.denials AS "denials", s.start_data AS "startData", s.stop_data AS "stopData", s.stop_ts AS "end",
        s.result_data AS "resultData", s.fail_data AS "failData", s.first_seq AS "firstSeq", s.last_seq AS "lastSeq"
      FROM airlock.session_summary s JOIN airlock.hosts h USING (log_id)
      WHERE s.session = $1 AND s.log_id LIKE $2 ORDER BY s.log_id LIMIT $3`,
      [session, likePrefix(logIdPrefix), limit],
    )
  ).rows;
  return rows.map((r) => ({
    logId: r.logId,
    hostname: r.hostname,
    session,
    firstSeq: Number(r.firstSeq),
    lastSeq: Number(r.lastSeq),
    row: r,
  }));
}

/**
 * One host's events of one session after `afterSeq`, in order, at most `limit` (≤ MAX_PAGE): a
 * range of that host's primary key (log_id, seq) from where the session starts, never the whole table.
 */
export async function sharedSessionEvents(
  c: pg.ClientBase,
  logId: string,
  session: string,
  afterSeq: number,
  limit = MAX_PAGE,
): Promise<SharedEvent[]> {
  const rows = (
    await c.query<EventRow>(
      `SELECT e.log_id, h.hostname, e.seq, e.id, e.ts, e.type, e.session, e.severity, e.decision, e.rule, e.data
        FROM airlock.events e JOIN airlock.hosts h USING (log_id)
        WHERE e.log_id = $1 AND e.seq > $2 AND e.session = $3 ORDER BY e.seq LIMIT $4`,
      [logId, afterSeq, session, Math.max(1, Math.min(limit, MAX_PAGE))],
    )
  ).rows;
  return rows.map(sharedEvent);
}
