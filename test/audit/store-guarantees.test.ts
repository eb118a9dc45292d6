// Guarantees of the audit store that do not depend on its callers: whoever appends (a
// session, the approval queue, review, detection, checkpoints, a sink's cursor), no
// secret reaches the database file; nobody gets the raw database handle; nothing but the
// store writes the event chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditStore, checkpoint, verifyLog } from '../../src/audit/index.ts';
import { answerAsk, requestApproval } from '../../src/command-rules/index.ts';
import { saveProfile, SessionProfile } from '../../src/detect/profile.ts';

const TOKEN = 'ghp_' + 'Zq8Wx2Ec4Rv6Tb8Yn0Um2Ik4Ol6Pa8Sd0Fg1';
const GITLAB = 'glpat-' + 'Xk3Lm5Np7Qr9St1Uv3Wx';
const SECRETS = [TOKEN, GITLAB];

function dbFiles(db: string): Buffer[] {
  return [db, `${db}-wal`, `${db}-shm`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
}

function assertNowhere(db: string, when: string): void {
  for (const [i, bytes] of dbFiles(db).entries()) {
    for (const s of SECRETS)
      assert.ok(
        !bytes.includes(Buffer.from(s)),
        `${when}: ${s.slice(0, 6)}… found in ${['audit.db', '-wal', '-shm'][i]}`,
      );
  }
}

/** Nested `depth` levels deep, with the secret in keys and values at the bottom. */
function deep(depth: number): unknown {
  let v: unknown = { [`token=${TOKEN}`]: [`Bearer ${TOKEN}`, { k: GITLAB }] };
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { level: v };
  return v;
}

test('a secret put through every append path is nowhere in audit.db, its WAL or shared memory; the log verifies', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-redact-'));
  const db = join(home, 'audit.db');
  const store = new AuditStore(db);
  try {
    const curl = ['curl', '-H', `Authorization: Bearer ${TOKEN}`, `https://gitlab.example/api?private_token=${GITLAB}`];
    // the approval queue: ask → timeout (command.ask, command.timeout, command_asks, command_answers)
    const timedOut = await requestApproval(store, {
      session: 's1',
      command: curl,
      rule: 'commands.curl',
      reason: `asks for ${TOKEN}`,
      timeoutSeconds: 0.3,
      pollMs: 20,
    });
    assert.equal(timedOut.decision, 'deny');
    // ask → a human's answer whose reason quotes the secret (command.answer)
    const pending = requestApproval(store, {
      session: 's1',
      command: curl,
      rule: 'commands.curl',
      timeoutSeconds: 30,
      pollMs: 20,
    });
    await new Promise((r) => setTimeout(r, 50));
    const ask = store.query({ type: 'command.ask' }).at(-1)!.data.askId as number;
    answerAsk(store, ask, 'deny', `alice ${TOKEN}`, `no, ${GITLAB} must not leave`);
    assert.equal((await pending).decision, 'deny');
    // direct appends: the secret in every string field, in keys, 200 levels deep, and in a batch
    store.append({
      type: `custom.${TOKEN}`,
      session: `s-${GITLAB}`,
      rule: `rule ${TOKEN}`,
      severity: 'high',
      decision: 'deny',
      data: { argv: curl, [TOKEN]: 1, nested: deep(200) },
    });
    store.appendMany([
      { type: 'process.exec', session: 's1', data: { argv: curl } },
      { type: 'egress.request', data: { url: `https://x/?t=${GITLAB}` } },
    ]);
    // a signed checkpoint whose reason carries the secret (audit_checkpoints + audit.checkpoint)
    checkpoint(store, `session end ${TOKEN}`, { keyDir: join(home, 'keys') });
    // the key-value side and other modules' tables (detection profiles, any new table)
    store.setKv('note', `k ${TOKEN}`);
    store.setKvOnce(`once ${GITLAB}`, TOKEN);
    const p = new SessionProfile('s1', { hosts: new Set(), areas: new Set(), programs: new Set() });
    p.add(store.query({ type: 'process.exec' })[0]!);
    saveProfile(store, `agent ${TOKEN}`, p);
    store.tables.exec('CREATE TABLE IF NOT EXISTS extra (a TEXT, b TEXT)');
    store.tables
      .prepare('INSERT INTO extra (a, b) VALUES (?, ?)')
      .run(`x ${TOKEN}`, JSON.stringify({ h: [`Bearer ${GITLAB}`] }));

    assertNowhere(db, 'while open');
    // the markers are there: the test would not pass on an empty log
    const all = JSON.stringify(store.query());
    assert.match(all, /«REDACTED:github-token:[0-9a-f]{8}»/);
    assert.match(all, /«REDACTED:gitlab-token:[0-9a-f]{8}»/);
    assert.ok(store.count() >= 8, String(store.count()));
    const extra = store.tables.prepare('SELECT b FROM extra').get() as { b: string };
    assert.match(JSON.parse(extra.b).h[0], /^Bearer «REDACTED:gitlab/, 'JSON written to a table stays JSON');
  } finally {
    store.close();
  }
  assertNowhere(db, 'after close (WAL checkpointed into the file)');
  assert.equal(verifyLog(db, { checkpoints: false }).ok, true);
  rmSync(home, { recursive: true, force: true });
});

test('no caller reaches the raw database: tables cannot write the chain, its triggers or the kv, nor attach or pragma', () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-private-'));
  const store = new AuditStore(join(home, 'audit.db'));
  try {
    store.append({ type: 'session.start', session: 's1' });
    for (const v of Object.values(store))
      assert.ok(!(v instanceof DatabaseSync), 'a DatabaseSync is reachable as a property');
    assert.equal((store as unknown as { db?: unknown }).db, undefined);
    const refused = [
      "INSERT INTO events (seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash) VALUES (99,'x','t','forged',null,'info',null,null,'{}','','')",
      'DROP TRIGGER events_no_update',
      'CREATE TRIGGER t1 AFTER INSERT ON events BEGIN SELECT 1; END',
      'DROP TABLE events',
      'ALTER TABLE events RENAME TO old_events',
      "UPDATE kv SET v = 'other' WHERE k = 'audit.logId'",
      "INSERT INTO kv (k, v) VALUES ('audit.logId', 'forged')",
      'PRAGMA writable_schema = ON',
      'PRAGMA synchronous = OFF',
      `ATTACH DATABASE '${join(home, 'other.db')}' AS o`,
    ];
    for (const sql of refused) {
      assert.throws(() => store.tables.exec(sql), /not authorized/, sql);
      assert.throws(() => store.tables.prepare(sql), /not authorized/, sql);
    }
    // reading the chain and owning a table of one's own stay possible
    assert.equal((store.tables.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n, 1);
    store.tables.exec('CREATE TABLE IF NOT EXISTS mine (x INTEGER)');
    store.tables.prepare('INSERT INTO mine (x) VALUES (?)').run(1);
    // and the store itself still appends after its tables were used
    store.append({ type: 'session.stop', session: 's1' });
    assert.deepEqual(
      store.query().map((e) => e.type),
      ['session.start', 'session.stop'],
    );
  } finally {
    store.close();
    rmSync(home, { recursive: true, force: true });
  }
});

test('audit.db, its WAL and shared memory are 0600 while open, also when the file existed 0644', () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-mode-'));
  const db = join(home, 'audit.db');
  writeFileSync(db, '');
  chmodSync(db, 0o644);
  const store = new AuditStore(db);
  try {
    store.append({ type: 'session.start', session: 's1' });
    for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal((statSync(f).mode & 0o777).toString(8), '600', f);
  } finally {
    store.close();
    rmSync(home, { recursive: true, force: true });
  }
});
