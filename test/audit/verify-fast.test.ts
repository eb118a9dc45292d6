import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { hash } from 'node:crypto';
import { AuditStore, verifyLog, verifyLogAsync } from '../../src/audit/index.ts';
import { chainHash, eventBody, eventBodyFromParts } from '../../src/audit/event.ts';
import { HASHED_TEXT_SQL } from '../../src/audit/verify-range.ts';

// verify's fast path lets SQLite build the hashed text (json_quote for the JSON strings).
// These tests hold it to the promise in verify-range.ts: it produces exactly the text the
// full check hashes, and every row it cannot vouch for still gets the full check.

// Deterministic PRNG (mulberry32), so a failure reproduces.
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const POOL = [
  '"',
  '\\',
  '/',
  '\u2028',
  '\u2029',
  '\u007f',
  '\u0080',
  '\u00ff',
  'é',
  '€',
  '\ufeff',
  '\uffff',
  '😀',
  '𝄞',
  ' ',
  'a',
  'Z',
  '0',
  '{',
  '}',
  ',',
  ':',
];
function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 12);
  for (let i = 0; i < n; i++)
    s += r() < 0.4 ? String.fromCharCode(Math.floor(r() * 0x20)) : POOL[Math.floor(r() * POOL.length)]!;
  return s;
}

test('json_quote of any valid text equals JSON.stringify (every control character, quotes, non-BMP, random mixes)', () => {
  const db = new DatabaseSync(':memory:');
  const q = db.prepare('SELECT json_quote(?) AS q');
  const cases: string[] = [];
  for (let c = 0; c < 0x100; c++) cases.push(`x${String.fromCharCode(c)}y`, String.fromCharCode(c));
  const r = rng(6962);
  for (let i = 0; i < 3000; i++) cases.push(randomString(r));
  for (const s of cases) assert.equal((q.get(s) as { q: string }).q, JSON.stringify(s), `for ${JSON.stringify(s)}`);
  db.close();
});

function storeWithTrickyEvents(n: number): { db: string; home: string } {
  const home = mkdtempSync(join(tmpdir(), 'airlock-vfast-'));
  const db = join(home, 'audit.db');
  const s = new AuditStore(db);
  const r = rng(42);
  for (let i = 0; i < n; i++) {
    s.append({
      type: `t.${randomString(r)}`,
      session: i % 3 ? randomString(r) : null,
      decision: i % 4 === 0 ? 'deny' : null,
      rule: i % 2 ? randomString(r) : null,
      data: { [randomString(r)]: randomString(r), n: i, nested: { z: [randomString(r), 1.5, -0, 1e21, true, null] } },
    });
  }
  s.close();
  return { db, home };
}

test('the SQL-built text is exactly prev_hash + "\\n" + the body the store hashed, for events full of characters that need escaping', () => {
  const f = storeWithTrickyEvents(300);
  const db = new DatabaseSync(f.db, { readOnly: true });
  type Row = {
    seq: number;
    id: string;
    ts: string;
    type: string;
    session: string | null;
    severity: string;
    decision: string | null;
    rule: string | null;
    data: string;
    prev_hash: string;
    hash: string;
    text: string;
  };
  const rows = db.prepare(`SELECT *, ${HASHED_TEXT_SQL} AS text FROM events ORDER BY seq`).all() as unknown as Row[];
  assert.equal(rows.length, 300);
  for (const x of rows) {
    assert.equal(
      x.text,
      `${x.prev_hash}\n${eventBodyFromParts(x.seq, x.id, x.ts, x.type, x.session, x.severity, x.decision, x.rule, x.data)}`,
    );
  }
  db.close();
  const v = verifyLog(f.db);
  assert.equal(v.ok, true, JSON.stringify(v.firstBad));
  assert.equal(v.events, 300);
});

const sqlite = (db: string, script: string) =>
  execFileSync('sqlite3', [db, `DROP TRIGGER IF EXISTS events_no_update; ${script}`]);

test('a legacy row (data stored non-canonically, hashed canonically) still verifies through the full check, in one thread and with workers', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-vlegacy-'));
  const path = join(home, 'audit.db');
  const s = new AuditStore(path);
  // more than one 65,536-event range, so verifyLogAsync really splits the work
  for (let i = 0; i < 70_000; i += 1000)
    s.appendMany(Array.from({ length: 1000 }, (_, j) => ({ type: 'y', data: { i: i + j } })));
  s.close();
  // Insert a row the way the store wrote them before data was stored canonically.
  const db = new DatabaseSync(path);
  const last = db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1').get() as {
    seq: number;
    hash: string;
  };
  const e = {
    seq: last.seq + 1,
    id: 'legacy-1',
    ts: '2025-01-01T00:00:00.000Z',
    type: 'process.exec',
    session: 's',
    severity: 'info' as const,
    decision: null,
    rule: null,
    data: { z: 1, a: 'two' },
  };
  db.prepare('INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)').run(
    e.seq,
    e.id,
    e.ts,
    e.type,
    e.session,
    e.severity,
    null,
    null,
    '{ "z": 1, "a": "two" }',
    last.hash,
    chainHash(last.hash, eventBody(e)),
  );
  db.close();
  const s2 = new AuditStore(path);
  s2.append({ type: 'after.legacy', data: {} });
  s2.close();
  const one = verifyLog(path);
  assert.equal(one.ok, true, JSON.stringify(one.firstBad));
  assert.equal(one.events, last.seq + 2);
  const par = await verifyLogAsync(path, { workers: 2 });
  assert.equal(par.ok, true, JSON.stringify(par.firstBad));
  assert.equal(par.root, one.root);

  // Editing that legacy row is still caught at its seq.
  sqlite(path, `UPDATE events SET data = '{ "z": 2, "a": "two" }' WHERE seq = ${e.seq};`);
  const bad = verifyLog(path);
  assert.equal(bad.firstBad?.seq, e.seq);
  assert.match(bad.firstBad!.reason, /altered/);
});

test('a column turned into a BLOB with the same bytes is named as altered at its own seq (no crash, not accepted)', () => {
  const f = storeWithTrickyEvents(20);
  // Same bytes, other type: the full check reads a BLOB and refuses it; json_quote would throw on it.
  sqlite(f.db, 'UPDATE events SET id = CAST(id AS BLOB) WHERE seq = 7;');
  const r = verifyLog(f.db);
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.seq, 7, JSON.stringify(r.firstBad));
  assert.match(r.firstBad!.reason, /altered/);
});

test('a row whose prev_hash was edited is named at its own seq even when its hash is recomputed over the edited text', () => {
  const f = storeWithTrickyEvents(20);
  const db = new DatabaseSync(f.db);
  db.exec('DROP TRIGGER events_no_update');
  // prev_hash gets a suffix; hash = SHA-256 of the text the SQL would now build for the row.
  db.exec("UPDATE events SET prev_hash = prev_hash || 'x' WHERE seq = 9");
  const text = (db.prepare(`SELECT ${HASHED_TEXT_SQL} AS t FROM events WHERE seq = 9`).get() as { t: string }).t;
  db.prepare('UPDATE events SET hash = ? WHERE seq = 9').run(hash('sha256', text, 'hex'));
  db.close();
  const r = verifyLog(f.db);
  assert.equal(r.firstBad?.seq, 9, JSON.stringify(r.firstBad));
  assert.match(r.firstBad!.reason, /link broken/);
});

test('a row with a seq beyond 2^53 is named as outside the chain instead of crashing verify', () => {
  const f = storeWithTrickyEvents(5);
  execFileSync('sqlite3', [
    f.db,
    "INSERT INTO events (seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash) VALUES (9007199254740993,'big','t','x',NULL,'info',NULL,NULL,'{}','a','b');",
  ]);
  const r = verifyLog(f.db);
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.id, 'big');
  assert.match(r.firstBad!.reason, /9007199254740993 \(beyond 2\^53\) inserted outside the chain/);
});
