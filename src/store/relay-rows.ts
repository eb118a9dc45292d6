import type pg from 'pg';
import type { AuditStore } from '../audit/index.ts';
import { APPROVER_KEYS_RULE, type TrustedApprover } from './decisions.ts';

// Reading decision rows (answers, review approvals) that any writer may have inserted, in
// bounded work per poll. Since schema v6 any number of rows may name one ask or approval,
// so a forged row holds no slot; but a writer can insert a million. So, per slot and poll:
//
// - rows claiming a key the org trusts are read per key through the (log_id, [slot,] key_id,
//   id) index, at most ROWS_PER_POLL after where this process stopped, merged in id order: the
//   first whose signature verifies wins. Rows with any other key id (unsigned, unknown keys)
//   cost nothing here, however many there are;
// - every row is also read in id order, at most ROWS_PER_POLL after a second cursor, only to
//   record the refusal of those that do not claim a trusted key (no signature check needed);
// - refusals are recorded at most REFUSALS_RECORDED times per slot, and a slot that fills a
//   poll's quota is recorded once as a flood: the audit log is not the attacker's to flood.
//
// A row is judged once per process (cursors only move forward; rows never change). What stays
// open: a flood of rows that claim a trusted key id (with bad signatures) is verified
// ROWS_PER_POLL per key and poll, so a real answer behind 10^6 of them waits 10^4 polls.

export const ROWS_PER_POLL = 100;
export const REFUSALS_RECORDED = 10;

/** What a shipper keeps between polls: the keys the org trusts, and where it stopped in each slot. */
export interface RelayContext {
  trust: readonly TrustedApprover[];
  /** per slot and key (or `*` for the refusal scan): the highest row id already judged */
  cursors: Map<string, number>;
  /** per slot: refusals recorded, and whether its flood was */
  recorded: Map<string, number>;
  floods: Set<string>;
}

export function relayContext(trust: readonly TrustedApprover[]): RelayContext {
  return { trust, cursors: new Map(), recorded: new Map(), floods: new Set() };
}

/** A decision row: its identity id and the key it claims. */
export interface KeyedRow {
  id: string;
  key_id: string | null;
}

/**
 * Rows of one slot claiming a trusted key, after this process's cursors, merged in id order
 * (at most ROWS_PER_POLL). `sql` selects the slot's rows with `key_id = $n AND id > $n+1`
 * as its last two parameters, ordered by id, limited to `$n+2`.
 */
export async function trustedRows<T extends KeyedRow>(
  c: pg.ClientBase,
  ctx: RelayContext,
  slot: string,
  sql: string,
  params: unknown[],
): Promise<{ rows: T[]; full: boolean }> {
  const lists = await Promise.all(
    [...new Set(ctx.trust.map((t) => t.keyId))].map(async (key) => {
      const after = ctx.cursors.get(`${slot}\n${key}`) ?? 0;
      return (await c.query<T>(sql, [...params, key, after, ROWS_PER_POLL])).rows;
    }),
  );
  const rows = lists
    .flat()
    .sort((x, y) => Number(x.id) - Number(y.id))
    .slice(0, ROWS_PER_POLL);
  return { rows, full: lists.some((l) => l.length === ROWS_PER_POLL) };
}

/** Every row of one slot after the refusal cursor (at most ROWS_PER_POLL); `sql` ends with `id > $n ORDER BY id LIMIT $n+1`. */
export async function rowsInOrder<T extends KeyedRow>(
  c: pg.ClientBase,
  ctx: RelayContext,
  slot: string,
  sql: string,
  params: unknown[],
): Promise<{ rows: T[]; full: boolean }> {
  const after = ctx.cursors.get(`${slot}\n*`) ?? 0;
  const rows = (await c.query<T>(sql, [...params, after, ROWS_PER_POLL])).rows;
  return { rows, full: rows.length === ROWS_PER_POLL };
}

/** Marks `row` judged: the next poll starts after it (in its key's list, or the refusal scan with `*`). */
export function judged(ctx: RelayContext, slot: string, row: KeyedRow, key = row.key_id ?? '*'): void {
  const k = `${slot}\n${key}`;
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

/** Records, once per slot and process, that a slot holds more rows than one poll reads. */
export function recordFlood(
  local: AuditStore,
  ctx: RelayContext,
  slot: string,
  type: string,
  data: Record<string, unknown>,
): void {
  if (ctx.floods.has(slot)) return;
  ctx.floods.add(slot);
  appendRefusal(
    local,
    type,
    `more than ${ROWS_PER_POLL} rows per poll name this decision: read ${ROWS_PER_POLL} per poll and trusted key, oldest first`,
    { ...data, rowsPerPoll: ROWS_PER_POLL },
  );
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
