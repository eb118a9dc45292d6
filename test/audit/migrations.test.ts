// The audit database has one versioned schema (src/audit/schema.ts, PRAGMA user_version):
// a database from before versions existed is migrated in place without losing what it
// recorded; one from a newer Airlock is refused with a clear error and left untouched;
// a failing step leaves the database at the version it had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditStore, verifyLog } from '../../src/audit/index.ts';
import { SQLITE_MIGRATIONS, latestVersion, migrateSqlite } from '../../src/audit/schema.ts';
import { answerAsk, listAsks, requestApproval } from '../../src/command-rules/index.ts';
import { AirlockError } from '../../src/common/index.ts';
import { BIN, tmp } from '../helpers.ts';

const LATEST = latestVersion(SQLITE_MIGRATIONS);
const tables = (db: DatabaseSync) =>
  (
    db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { name: string }[]
  ).map((r) => r.name);
const version = (db: DatabaseSync) =>
  Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);

/** A database as Airlock wrote it before schema versions: user_version 0, only the tables its modules had created by then. */
function legacyDatabase(path: string): void {
  const s = new AuditStore(path);
  s.append({ type: 'session.start', session: 's-old', data: { agent: 'old' } });
  s.append({ type: 'session.stop', session: 's-old', data: { status: 0 } });
  s.close();
  const db = new DatabaseSync(path);
  db.exec('PRAGMA user_version = 0');
  for (const t of [
    'command_answers',
    'command_asks',
    'detect_profiles',
    'review_decisions',
    'review_proposals',
    'sink_state',
  ])
    db.exec(`DROP TABLE ${t}`);
  db.close();
}

test('a database from before schema versions is migrated to the latest version; its events stay and verify', async () => {
  const path = join(tmp(), 'audit.db');
  legacyDatabase(path);
  const store = new AuditStore(path);
  try {
    const raw = new DatabaseSync(path, { readOnly: true });
    assert.equal(version(raw), LATEST, 'user_version after opening');
    assert.deepEqual(tables(raw), [
      'audit_checkpoints',
      'command_answers',
      'command_asks',
      'detect_profiles',
      'events',
      'kv',
      'review_decisions',
      'review_proposals',
      'sink_state',
    ]);
    raw.close();
    assert.deepEqual(
      store.query().map((e) => e.type),
      ['session.start', 'session.stop'],
    );
    // the migrated tables work: an ask is recorded and answered, and the chain goes on
    const waiting = requestApproval(store, {
      session: 's-new',
      command: ['rm', '-rf', 'x'],
      rule: 'commands.ask',
      timeoutSeconds: 30,
      pollMs: 20,
    });
    answerAsk(store, listAsks(store)[0]!.id, 'deny', 'alice');
    assert.equal((await waiting).decision, 'deny');
    assert.equal(verifyLog(path).ok, true);
  } finally {
    store.close();
  }
});

test('a database of a newer schema version is refused with an error naming both versions, and left untouched', () => {
  const home = tmp();
  const path = join(home, 'audit.db');
  new AuditStore(path).close();
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA user_version = ${LATEST + 7}`);
  db.close();
  assert.throws(
    () => new AuditStore(path),
    (e: unknown) =>
      e instanceof AirlockError &&
      e.kind === 'BAD_STATE' &&
      e.message.includes(`schema version ${LATEST + 7}, newer than this Airlock knows (${LATEST})`) &&
      /upgrade Airlock/.test(e.hint ?? ''),
  );
  const after = new DatabaseSync(path, { readOnly: true });
  assert.equal(version(after), LATEST + 7);
  after.close();
  // what a user sees: the message and hint, exit 75, no stack
  const r = spawnSync(BIN, ['sessions'], { env: { ...process.env, AIRLOCK_HOME: home }, encoding: 'utf8' });
  assert.equal(r.status, 75, r.stderr);
  assert.match(r.stderr, /newer than this Airlock knows/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('migrations apply in order in one transaction: a failing step leaves the database at the version it had', () => {
  const db = new DatabaseSync(join(tmp(), 'm.db'));
  const steps = [
    { version: 1, what: 'a', sql: 'CREATE TABLE a (x INTEGER)' },
    { version: 2, what: 'b', sql: 'CREATE TABLE b (x INTEGER)' },
  ];
  assert.equal(migrateSqlite(db, 'm.db', steps.slice(0, 1)), 1);
  assert.throws(
    () => migrateSqlite(db, 'm.db', [...steps, { version: 3, what: 'broken', sql: 'CREATE TABLE a (x INTEGER)' }]),
    /already exists/,
  );
  assert.equal(version(db), 1);
  assert.deepEqual(tables(db), ['a'], 'step 2 was rolled back with step 3');
  assert.equal(migrateSqlite(db, 'm.db', steps), 2);
  assert.equal(migrateSqlite(db, 'm.db', steps), 2, 'nothing left to do');
  db.close();
});
