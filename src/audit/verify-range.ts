import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { hash } from 'node:crypto';
import { EventFrontier } from './merkle.ts';
import { GENESIS_HASH, chainHash, chainHashFast, eventBody, eventBodyFromParts } from './event.ts';

// Verifies the hash chain over one seq range [lo, hi] and returns the RFC 6962 leaf hashes
// of its events. Ranges are independent given the stored hash of event lo-1 (itself
// checked by the range before), so ranges can run in parallel worker threads.

export interface BadEvent {
  seq: number;
  id: string | null;
  reason: string;
}
/**
 * `frontier`: the perfect-subtree roots over the range's verified events (hex, largest
 * first). Ranges start at multiples of a power of two at least as large as the range, so
 * the global tree's frontier is the frontier before the range followed by this one.
 * `atSizes`: the same, taken when the global tree had each of the requested sizes.
 */
export interface RangeResult {
  lo: number;
  hi: number;
  count: number;
  lastHash: string;
  firstBad?: BadEvent;
  frontier: string[];
  atSizes: { size: number; frontier: string[] }[];
}

/** seq, id, ts, type, session, severity, decision, rule, data (canonical JSON text), prev_hash, hash */
export type RowArr = [
  number,
  string,
  string,
  string,
  string | null,
  string,
  string | null,
  string | null,
  string,
  string,
  string,
];

// Fast path: SQLite assembles `prev_hash + "\n" + eventBodyFromParts(columns)` itself, so a
// row costs one string and one hash. The fast path accepts a row only when that string is
// exactly the one the full check (checkEventRow) would hash, so it never accepts a row the full
// check refuses: prev_hash must equal the running hash (compared as its own column); every
// column must have the type the store writes (TEXT, or NULL where allowed), otherwise the
// string is NULL; json_quote() of valid UTF-8 text is JSON.stringify of it (tested in
// test/audit/verify-fast.test.ts); and the string must hold no U+FFFD, the mark of invalid
// UTF-8 that would decode differently column by column than concatenated. Every other row
// (legacy non-canonical data, an edit, a strange type) is judged by the full check.
const Q = (col: string) => `CASE typeof(${col}) WHEN 'text' THEN json_quote(${col}) END`;
const QN = (col: string) => `CASE typeof(${col}) WHEN 'text' THEN json_quote(${col}) WHEN 'null' THEN 'null' END`;
export const HASHED_TEXT_SQL =
  `CASE typeof(prev_hash) WHEN 'text' THEN prev_hash END || char(10) || '{"data":' || ` +
  `CASE typeof(data) WHEN 'text' THEN data END || ',"decision":' || ${QN('decision')} || ',"id":' || ${Q('id')} ` +
  `|| ',"rule":' || ${QN('rule')} || ',"seq":' || seq || ',"session":' || ${QN('session')} || ',"severity":' || ${Q('severity')} ` +
  `|| ',"ts":' || ${Q('ts')} || ',"type":' || ${Q('type')} || '}'`;
const BATCH = 4096;

/** Full check of one row: link, then the column-built body, then parse + canonicalize
 * (rows written before data was stored canonically). */
export function checkEventRow(prev: string, row: RowArr): BadEvent | undefined {
  const seq = row[0];
  if (row[9] !== prev)
    return { seq, id: row[1], reason: 'previous-hash link broken (event inserted, deleted or reordered before it)' };
  if (
    chainHashFast(prev, eventBodyFromParts(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])) ===
    row[10]
  )
    return undefined;
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(row[8]) as Record<string, unknown>;
  } catch {
    return { seq, id: row[1], reason: 'event data is not valid JSON (event altered)' };
  }
  const ok =
    chainHash(
      prev,
      eventBody({
        seq: row[0],
        id: row[1],
        ts: row[2],
        type: row[3],
        session: row[4],
        severity: row[5] as 'info',
        decision: row[6] as null,
        rule: row[7],
        data,
      }),
    ) === row[10];
  return ok ? undefined : { seq, id: row[1], reason: 'content does not match its hash (event altered)' };
}

const stmts = new WeakMap<DatabaseSync, { fast: StatementSync; full: StatementSync; prev: StatementSync }>();
function statements(db: DatabaseSync) {
  let s = stmts.get(db);
  if (!s) {
    const fast = db.prepare(
      `SELECT seq, hash, prev_hash, ${HASHED_TEXT_SQL} FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT ${BATCH}`,
    );
    fast.setReturnArrays(true);
    const full = db.prepare(
      'SELECT seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash FROM events WHERE seq = ?',
    );
    full.setReturnArrays(true);
    s = { fast, full, prev: db.prepare('SELECT hash FROM events WHERE seq = ?') };
    stmts.set(db, s);
  }
  return s;
}

export function verifyRange(db: DatabaseSync, lo: number, hi: number, sizes: number[] = []): RangeResult {
  const st = statements(db);
  const frontier = new EventFrontier();
  const want = new Set(sizes);
  const atSizes: RangeResult['atSizes'] = [];
  let prev = GENESIS_HASH;
  if (lo > 1) {
    const r = st.prev.get(lo - 1) as { hash: string } | undefined;
    prev = r?.hash ?? ''; // a missing predecessor is reported by the range that should hold it
  }
  let expect = lo;
  const done = (firstBad?: BadEvent): RangeResult => ({
    lo,
    hi,
    count: expect - lo,
    lastHash: prev,
    firstBad,
    frontier: frontier.toHex(),
    atSizes,
  });
  const idOf = (seq: number) => (st.full.get(seq) as unknown as RowArr | undefined)?.[1] ?? null;
  for (;;) {
    const rows = st.fast.all(expect, hi) as unknown as [number, string, unknown, string | null][];
    if (rows.length === 0) break;
    for (const r of rows) {
      const seq = r[0];
      if (seq !== expect) {
        return done({
          seq: expect,
          id: idOf(seq),
          reason: seq > expect ? `events ${expect}..${seq - 1} are missing (deleted)` : 'sequence out of order',
        });
      }
      const text = r[3];
      if (r[2] !== prev || text === null || text.includes('\uFFFD') || hash('sha256', text, 'hex') !== r[1]) {
        const full = st.full.get(seq) as unknown as RowArr | undefined;
        const bad = full ? checkEventRow(prev, full) : { seq, id: null, reason: 'event vanished while verifying' };
        if (bad) return done(bad);
      }
      if (!frontier.pushEventHash(r[1]))
        return done({ seq, id: idOf(seq), reason: 'stored hash is not 32 bytes of hex (event altered)' });
      prev = r[1];
      if (want.has(seq)) atSizes.push({ size: seq, frontier: frontier.toHex() });
      expect += 1;
    }
  }
  if (expect <= hi) return done({ seq: expect, id: null, reason: `events ${expect}..${hi} are missing (deleted)` });
  return done();
}
