import type pg from 'pg';
import type { AuditStore } from '../audit/index.ts';
import { APPROVER_KEYS_RULE, type TrustedApprover } from './decisions.ts';

// Reading decision rows (answers, review approvals) that any writer may have inserted, in
// bounded work per poll. Since schema v6 any number of rows may name one ask or approval,
// so a forged row holds no slot; but a writer can insert a million. Since v7 the server
// stamps each row with the login role that wrote it (written_by, which no writer can set),
// so, per slot and poll:
//
// - rows claiming a key the org trusts are read per WRITER ROLE and key through the (log_id,
//   [slot,] written_by, key_id, id) index, at most ROWS_PER_POLL each after where this process
//   stopped, merged in id order: the first whose signature verifies wins. So one role's flood
//   (copying a trusted key id is free) delays only decisions written under that same role;
//   a real answer written under another role (the console's, a reviewer host's) is read at the
//   next poll. Rows with any other key id (unsigned, unknown keys) cost nothing here;
// - every row is also read in id order, at most ROWS_PER_POLL after a second cursor, only to
//   record the refusal of those that do not claim a trusted key (no signature check needed);
// - refusals are recorded at most REFUSALS_RECORDED times per slot, and a writer role that fills
//   a poll's quota is recorded once per slot as a flood: the audit log is not the attacker's to flood.
//
// A row is judged once per process (cursors only move forward; rows never change). What stays:
// hosts that share one login role share one budget, so a flood under it delays that role's own
// answers ROWS_PER_POLL rows per poll (docs/modules/store.md, "Forged rows").

export const ROWS_PER_POLL = 100;
export const REFUSALS_RECORDED = 10;
/** Writer roles of one slot read per poll; more take turns (a deployment has one role per host). */
export const WRITERS_PER_POLL = 64;

/** What a shipper keeps between polls: the keys the org trusts, and where it stopped in each slot. */
export interface RelayContext {
  trust: readonly TrustedApprover[];
  /** per slot, writer role and key (or `*` for the refusal scan): the highest row id already judged */
  cursors: Map<string, number>;
  /** per slot: the writer role after which the next poll's turn starts ('' = from the first) */
  turns: Map<string, string>;
  /** per slot: refusals recorded */
  recorded: Map<string, number>;
  /** per slot and writer role: its flood was recorded */
  floods: Set<string>;
  /** the login role this host's own connection has (read once, when a flood is recorded) */
  self?: string;
}

export function relayContext(trust: readonly TrustedApprover[]): RelayContext {
  return { trust, cursors: new Map(), turns: new Map(), recorded: new Map(), floods: new Set() };
}

/** A decision row: its identity id, the key it claims and the login role the server stamped. */
export interface KeyedRow {
  id: string;
  key_id: string | null;
  written_by: string;
}

/**
 * Where one slot's rows are: `where` selects the slot along the by-writer index (its parameters
 * are `params`, $1…$n, rows aliased `a`); `filter` is any further condition on a row, its
 * parameters numbered from the `first` it is given.
 */
export interface SlotRows {
  table: 'answers' | 'review_approvals';
  columns: string;
  where: string;
  params: unknown[];
  filter?: { sql: (first: number) => string; params: unknown[] };
}

/** The slot's rows with `conditions` (their parameters `extra`, numbered after the slot's and the filter's), oldest first. */
function rowsQuery(q: SlotRows, conditions: (first: number) => string[], extra: unknown[]): [string, unknown[]] {
  const n = q.params.length;
  const m = q.filter?.params.length ?? 0;
  const all = [q.where, ...(q.filter ? [q.filter.sql(n + 1)] : []), ...conditions(n + m + 1)];
  const sql = `SELECT ${q.columns} FROM airlock.${q.table} a WHERE ${all.join(' AND ')} ORDER BY a.id LIMIT $${n + m + extra.length + 1}`;
  return [sql, [...q.params, ...(q.filter?.params ?? []), ...extra, ROWS_PER_POLL]];
}

const cursorKey = (slot: string, writer: string, key: string) => `${slot}\0${writer}\0${key}`;

/** The slot's writer roles this poll: a skip scan of the by-writer index, WRITERS_PER_POLL from this slot's turn. */
async function slotWriters(c: pg.ClientBase, ctx: RelayContext, slot: string, q: SlotRows): Promise<string[]> {
  const n = q.params.length;
  const next = (after: string) =>
    `SELECT a.written_by FROM airlock.${q.table} a WHERE ${q.where} AND a.written_by > ${after} ORDER BY a.written_by LIMIT 1`;
  const sql = `WITH RECURSIVE w(name) AS ((${next(`$${n + 1}::name`)})
    UNION ALL SELECT (${next('w.name')}) FROM w WHERE w.name IS NOT NULL)
    SELECT name FROM w WHERE name IS NOT NULL LIMIT $${n + 2}`;
  const from = ctx.turns.get(slot) ?? '';
  const names = (await c.query<{ name: string }>(sql, [...q.params, from, WRITERS_PER_POLL])).rows.map((r) => r.name);
  ctx.turns.set(slot, names.length === WRITERS_PER_POLL ? names.at(-1)! : '');
  return names;
}

/**
 * Rows of one slot claiming a trusted key, per writer role and key after this process's cursors
 * (at most ROWS_PER_POLL each), merged in id order; `flooding` names the roles that filled a quota.
 */
export async function trustedRows<T extends KeyedRow>(
  c: pg.ClientBase,
  ctx: RelayContext,
  slot: string,
  q: SlotRows,
): Promise<{ rows: T[]; flooding: string[] }> {
  const writers = await slotWriters(c, ctx, slot, q);
  const keys = [...new Set(ctx.trust.map((t) => t.keyId))];
  const lists = await Promise.all(
    writers.flatMap((writer) =>
      keys.map(async (key) => {
        const after = ctx.cursors.get(cursorKey(slot, writer, key)) ?? 0;
        const conditions = (i: number) => [`a.written_by = $${i}`, `a.key_id = $${i + 1}`, `a.id > $${i + 2}`];
        return { writer, rows: (await c.query<T>(...rowsQuery(q, conditions, [writer, key, after]))).rows };
      }),
    ),
  );
  const rows = lists.flatMap((l) => l.rows).sort((x, y) => Number(x.id) - Number(y.id));
  const flooding = [...new Set(lists.filter((l) => l.rows.length === ROWS_PER_POLL).map((l) => l.writer))];
  return { rows, flooding };
}

/** Every row of one slot after the refusal cursor (at most ROWS_PER_POLL), in id order. */
export async function rowsInOrder<T extends KeyedRow>(
  c: pg.ClientBase,
  ctx: RelayContext,
  slot: string,
  q: SlotRows,
): Promise<{ rows: T[]; flooding: string[] }> {
  const after = ctx.cursors.get(cursorKey(slot, '', '*')) ?? 0;
  const rows = (await c.query<T>(...rowsQuery(q, (i) => [`a.id > $${i}`], [after]))).rows;
  // a full batch names the roles that wrote at least half of it (an honest role writes a row or two per slot)
  const count = new Map<string, number>();
  for (const r of rows) count.set(r.written_by, (count.get(r.written_by) ?? 0) + 1);
  const flooding =
    rows.length < ROWS_PER_POLL ? [] : [...count].filter(([, k]) => k * 2 >= ROWS_PER_POLL).map(([w]) => w);
  return { rows, flooding };
}

/** Marks `row` judged: the next poll starts after it (in its writer's and key's list, or the refusal scan with `*`). */
export function judged(ctx: RelayContext, slot: string, row: KeyedRow, scan: 'trusted' | '*' = 'trusted'): void {
  const k = scan === '*' ? cursorKey(slot, '', '*') : cursorKey(slot, row.written_by, row.key_id ?? '');
  ctx.cursors.set(k, Math.max(ctx.cursors.get(k) ?? 0, Number(row.id)));
}

/** Whether the row claims a key the org trusts (then the trusted scan judges it, signature and all). */
export const claimsTrustedKey = (ctx: RelayContext, row: KeyedRow): boolean =>
  row.key_id !== null && ctx.trust.some((t) => t.keyId === row.key_id);

/**
 * Records a refused row (fail closed: what it would have decided stays waiting), at most
 * REFUSALS_RECORDED per slot and process; `row` names it so the refusal settles only that row.
 */
export function recordRefusal(
  local: AuditStore,
  ctx: RelayContext,
  slot: string,
  type: string,
  why: string,
  data: Record<string, unknown>,
): void {
  const n = ctx.recorded.get(slot) ?? 0;
  if (n >= REFUSALS_RECORDED) return;
  ctx.recorded.set(slot, n + 1);
  appendRefusal(local, type, why, data);
}

/**
 * Records, once per slot, writer role and process, that a role wrote more rows naming one
 * decision than a poll reads of it. When that role is the one this host logs in as, hosts share
 * one login (or this host's credentials are used elsewhere): then the flood also delays every
 * decision written under it, ROWS_PER_POLL rows per poll (`sharedRole`).
 */
export async function recordFlood(
  local: AuditStore,
  c: pg.ClientBase,
  ctx: RelayContext,
  slot: string,
  o: { type: string; flooding: string[]; data: Record<string, unknown> },
): Promise<void> {
  for (const writer of o.flooding) {
    const key = `${slot}\0${writer}`;
    if (ctx.floods.has(key)) continue;
    ctx.floods.add(key);
    ctx.self ??= (await c.query<{ name: string }>('SELECT session_user AS name')).rows[0]?.name ?? '';
    const shared = writer === ctx.self;
    appendRefusal(
      local,
      o.type,
      `role ${writer} wrote more than ${ROWS_PER_POLL} rows naming this decision: read ${ROWS_PER_POLL} per poll and trusted key, oldest first, apart from other roles' rows; ${
        shared
          ? 'it is the role this host logs in as (one login shared by hosts?), so decisions written under it wait behind them'
          : `only decisions written under ${writer} itself wait behind them`
      }`,
      { ...o.data, writer, sharedRole: shared, rowsPerPoll: ROWS_PER_POLL },
    );
  }
}

function appendRefusal(local: AuditStore, type: string, why: string, data: Record<string, unknown>): void {
  local.append({
    type,
    session: null,
    severity: 'high',
    decision: 'deny',
    rule: APPROVER_KEYS_RULE,
    data: { ...data, reason: why },
  });
}

/**
 * The recording side: inserts a decision row unless the slot already holds a valid one, in one
 * transaction under an advisory lock on the slot, so two honest recorders never both insert.
 * (A writer that skips the lock can only add rows that do not verify, which count for nothing.)
 */
export async function insertUnlessDecided(
  c: pg.ClientBase,
  o: {
    lock: [string, string, number];
    decided: () => Promise<boolean>;
    refusal: Error;
    insert: string;
    params: unknown[];
  },
): Promise<void> {
  const [what, log, item] = o.lock;
  await c.query('BEGIN');
  try {
    await c.query("SELECT pg_advisory_xact_lock(hashtext($1 || ' ' || $2), $3::int)", [what, log, item % 2 ** 31]);
    if (await o.decided()) throw o.refusal;
    await c.query(o.insert, o.params);
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {
      /* the connection is gone: the server rolled back */
    });
    throw e;
  }
}
