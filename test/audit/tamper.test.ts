import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  AuditStore,
  checkpoint,
  listCheckpoints,
  loadPublicKey,
  loadSigningKey,
  proveEvent,
  startCheckpointer,
  verifyLog,
  verifyLogAsync,
  verifyProof,
  type VerifyResult,
} from '../../src/audit/index.ts';
import { chainHash, eventBody, GENESIS_HASH } from '../../src/audit/event.ts';
import { generateKeyPairSync } from 'node:crypto';

// Tampering is done the way an attacker with write access to the file would: the
// sqlite3 CLI (Debian package sqlite3) drops the append-only triggers and edits rows.

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'run.ts');

function fixture(n = 60, cpAt = 30): { home: string; db: string; ids: string[] } {
  const home = mkdtempSync(join(tmpdir(), 'airlock-audit-'));
  const db = join(home, 'audit.db');
  const s = new AuditStore(db);
  const ids: string[] = [];
  for (let i = 1; i <= n; i++) {
    ids.push(
      s.append({
        type: i % 3 ? 'process.exec' : 'egress.request',
        session: `s${i % 4}`,
        decision: i % 5 ? 'allow' : 'deny',
        rule: 'r',
        data: { i, argv: ['echo', String(i)] },
      }).id,
    );
    if (i === cpAt) checkpoint(s, 'test', { keyDir: join(home, 'keys') }); // adds one audit.checkpoint event
  }
  s.close();
  return { home, db, ids };
}
/** What an attacker with write access does after editing rows: recompute every link of the chain. */
function recomputeChain(db: DatabaseSync): void {
  let prev = GENESIS_HASH;
  type Row = {
    seq: number;
    id: string;
    ts: string;
    type: string;
    session: string | null;
    severity: 'info';
    decision: 'allow' | null;
    rule: string | null;
    data: string;
  };
  for (const r of db.prepare('SELECT * FROM events ORDER BY seq').all() as unknown as Row[]) {
    const e = {
      seq: r.seq,
      id: r.id,
      ts: r.ts,
      type: r.type,
      session: r.session,
      severity: r.severity,
      decision: r.decision,
      rule: r.rule,
      data: JSON.parse(r.data) as Record<string, unknown>,
    };
    const h = chainHash(prev, eventBody(e));
    db.prepare('UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?').run(prev, h, e.seq);
    prev = h;
  }
}

/** Event 5 rewritten and the whole chain recomputed, as an attacker would; the caller closes the db. */
function rewriteWithChainRecomputed(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('DROP TRIGGER events_no_update');
  db.exec(`UPDATE events SET data = '{"argv":["curl","evil"],"i":5}' WHERE seq = 5`);
  recomputeChain(db);
  return db;
}

const sql = (db: string, script: string) =>
  execFileSync('sqlite3', [
    db,
    `DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete; DROP TRIGGER IF EXISTS audit_checkpoints_no_update; ${script}`,
  ]);
const verify = (f: { home: string; db: string }): VerifyResult =>
  verifyLog(f.db, { publicKey: loadPublicKey(undefined, join(f.home, 'keys')) });
const cli = (home: string, args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
    encoding: 'utf8',
  });

test('an untouched log verifies, in this thread and with workers, and the CLI exits 0', async () => {
  const f = fixture();
  const r = verify(f);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.events, 61);
  assert.equal(r.checkpointsChecked, 1);
  const p = await verifyLogAsync(f.db, { publicKey: loadPublicKey(undefined, join(f.home, 'keys')), workers: 2 });
  assert.equal(p.root, r.root);
  const c = cli(f.home, ['audit', 'verify']);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /intact: 61 events, 1 signed checkpoints verified/);
});

test('the store refuses UPDATE and DELETE while the triggers are in place', () => {
  const f = fixture(5, 5);
  assert.throws(
    () => execFileSync('sqlite3', [f.db, "UPDATE events SET data = '{}' WHERE seq = 2"], { stdio: 'pipe' }),
    /append-only/,
  );
  assert.throws(
    () => execFileSync('sqlite3', [f.db, 'DELETE FROM events WHERE seq = 2'], { stdio: 'pipe' }),
    /append-only/,
  );
});

const cases: { name: string; script: (f: { ids: string[] }) => string; seq: number; reason: RegExp }[] = [
  {
    name: 'edit',
    script: () => `UPDATE events SET data = '{"argv":["rm","-rf","/"],"i":10}' WHERE seq = 10;`,
    seq: 10,
    reason: /altered/,
  },
  {
    name: 'edit decision',
    script: () => `UPDATE events SET decision = 'allow' WHERE seq = 15;`,
    seq: 15,
    reason: /altered/,
  },
  { name: 'delete', script: () => 'DELETE FROM events WHERE seq = 12;', seq: 12, reason: /missing/ },
  {
    name: 'reorder',
    script: () =>
      'UPDATE events SET seq = -1 WHERE seq = 20; UPDATE events SET seq = 20 WHERE seq = 21; UPDATE events SET seq = 21 WHERE seq = -1;',
    seq: 20,
    reason: /link broken/,
  },
  {
    name: 'truncate below a checkpoint',
    script: () => 'DELETE FROM events WHERE seq > 25;',
    seq: 26,
    reason: /truncated: checkpoint #1 signed 30 events, only 25/,
  },
  {
    name: 'stray row outside the chain',
    script: () =>
      `INSERT INTO events (seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash) VALUES (0,'x','2026-01-01T00:00:00Z','session.start','s1','info',NULL,NULL,'{}','${GENESIS_HASH}','${GENESIS_HASH}');`,
    seq: 0,
    reason: /outside the chain/,
  },
];
for (const c of cases) {
  test(`tamper (${c.name}): verify names the first bad event and the CLI exits 78`, () => {
    const f = fixture();
    sql(f.db, c.script(f));
    const r = verify(f);
    assert.equal(r.ok, false);
    assert.equal(r.firstBad?.seq, c.seq, JSON.stringify(r.firstBad));
    assert.match(r.firstBad!.reason, c.reason);
    const out = cli(f.home, ['audit', 'verify']);
    assert.equal(out.status, 78, out.stderr);
    assert.match(out.stdout, new RegExp(`first bad event seq ${c.seq}\\b`));
  });
}

test("tamper (insert with a correctly hashed forged event): the next event's link names the insertion", () => {
  const f = fixture();
  const db = new DatabaseSync(f.db);
  db.exec('DROP TRIGGER events_no_update');
  const prev = (db.prepare('SELECT hash FROM events WHERE seq = 9').get() as { hash: string }).hash;
  db.exec('UPDATE events SET seq = -seq WHERE seq >= 10; UPDATE events SET seq = -seq + 1 WHERE seq < 0;');
  const forged = {
    seq: 10,
    id: 'forged',
    ts: '2026-01-01T00:00:00.000Z',
    type: 'approval.granted',
    session: 's1',
    severity: 'info' as const,
    decision: 'allow' as const,
    rule: 'r',
    data: {},
  };
  db.prepare('INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)').run(
    forged.seq,
    forged.id,
    forged.ts,
    forged.type,
    forged.session,
    forged.severity,
    forged.decision,
    forged.rule,
    '{}',
    prev,
    chainHash(prev, eventBody(forged)),
  );
  db.close();
  const r = verify(f);
  assert.equal(r.firstBad?.seq, 11);
  assert.match(r.firstBad!.reason, /inserted/);
});

test('tamper with the chain recomputed after the edit: the signed checkpoint still catches it', () => {
  const f = fixture();
  const db = rewriteWithChainRecomputed(f.db);
  db.close();
  assert.equal(verifyLog(f.db, { checkpoints: false }).ok, true, 'the chain alone is fooled');
  const r = verify(f);
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.seq, 1);
  assert.match(r.firstBad!.reason, /events 1\.\.30 do not match signed checkpoint #1/);
});

test('a checkpoint edited in the table fails its signature; another key fails too', () => {
  const f = fixture();
  sql(f.db, 'UPDATE audit_checkpoints SET size = 29 WHERE id = 1;');
  const r = verify(f);
  assert.equal(r.ok, false);
  assert.match(r.problems!.join('\n'), /checkpoint #1 \(size 29\): signature does not verify/);
  const g = fixture();
  const other = generateKeyPairSync('ed25519').publicKey;
  const r2 = verifyLog(g.db, { publicKey: other });
  assert.equal(r2.ok, false);
  assert.match(r2.problems!.join('\n'), /signature does not verify/);
});

test('inclusion proofs: valid with the public key alone; altered event, path or key fail; prove refuses an altered event', () => {
  const f = fixture();
  const keys = join(f.home, 'keys');
  const s = new AuditStore(f.db);
  const proof = proveEvent(s, f.ids[14]!, { keyDir: keys });
  s.close();
  const pub = loadPublicKey(undefined, keys);
  assert.deepEqual(verifyProof(proof, pub).ok, true);
  assert.equal(proof.rfc6962.treeSize, 30); // the checkpoint signed after event 30

  const altered = structuredClone(proof);
  altered.event.data = { ...altered.event.data, argv: ['echo', 'innocent'] };
  assert.match(verifyProof(altered, pub).reason, /content was altered/);
  const rehashed = structuredClone(altered);
  rehashed.event.hash = chainHash(rehashed.event.prevHash, eventBody(rehashed.event));
  rehashed.rfc6962.leafInput = rehashed.event.hash;
  assert.match(verifyProof(rehashed, pub).reason, /not in the signed log/);
  const badPath = structuredClone(proof);
  badPath.rfc6962.auditPath[1] = '00'.repeat(32);
  assert.equal(verifyProof(badPath, pub).ok, false);
  assert.equal(verifyProof(proof, generateKeyPairSync('ed25519').publicKey).ok, false);

  // CLI round trip: prove -> file -> verify-proof with the exported public key.
  const pemFile = join(f.home, 'pub.pem');
  const pk = cli(f.home, ['audit', 'pubkey']);
  assert.equal(pk.status, 0, pk.stderr);
  assert.match(pk.stdout, /BEGIN PUBLIC KEY/);
  writeFileSync(pemFile, pk.stdout);
  const proofFile = join(f.home, 'proof.json');
  assert.equal(cli(f.home, ['audit', 'prove', f.ids[40]!, '--out', proofFile]).status, 0);
  const ok = cli(f.home, ['audit', 'verify-proof', proofFile, '--pubkey', pemFile]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  const doc = JSON.parse(readFileSync(proofFile, 'utf8'));
  doc.event.data.i = 999;
  writeFileSync(proofFile, JSON.stringify(doc));
  const no = cli(f.home, ['audit', 'verify-proof', proofFile, '--pubkey', pemFile]);
  assert.equal(no.status, 78);
  assert.match(no.stdout, /INVALID/);

  // Once the event is altered in the database, prove refuses it.
  sql(f.db, `UPDATE events SET data = '{"i":15}' WHERE seq = 15;`);
  const s2 = new AuditStore(f.db);
  assert.throws(
    () => proveEvent(s2, f.ids[14]!, { keyDir: keys }),
    (e: Error & { exitCode?: number }) => e.exitCode === 78 && /altered/.test(e.message),
  );
  s2.close();
});

test('the signing key is created mode 0600 and a key readable by others is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-keys-'));
  loadSigningKey(dir);
  assert.equal(statSync(join(dir, 'audit-ed25519.pem')).mode & 0o777, 0o600);
  chmodSync(join(dir, 'audit-ed25519.pem'), 0o644);
  assert.throws(() => loadSigningKey(dir), /readable by group or others/);
});

test('a missing event id and a missing log are user errors with distinct exit codes, not stack traces', () => {
  const f = fixture(3, 3);
  const r = cli(f.home, ['audit', 'prove', 'nope']);
  assert.equal(r.status, 66);
  assert.match(r.stderr, /no audit event with id nope/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
  const empty = mkdtempSync(join(tmpdir(), 'airlock-empty-'));
  assert.equal(cli(empty, ['audit', 'verify']).status, 66);
  assert.equal(cli(f.home, ['audit', 'export', '--format', 'xml']).status, 64);
  assert.equal(cli(f.home, ['audit', 'export', '--format', 'ocsf', '--since', 'yesterday-ish']).status, 64);
});

test('startCheckpointer signs every N events; the signed checkpoints verify and are in the log for sinks', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-cp-'));
  const s = new AuditStore(join(home, 'audit.db'));
  const cp = startCheckpointer(s, { everyEvents: 10, everySeconds: 3600, keyDir: join(home, 'keys') });
  for (let i = 0; i < 25; i++) {
    s.append({ type: 'process.exec', session: 's', data: { i } });
    await new Promise((r) => setImmediate(r));
  }
  cp.stop();
  const cps = listCheckpoints(s.tables);
  assert.equal(cps.length, 2);
  assert.deepEqual(
    s.query({ type: 'audit.checkpoint' }).map((e) => e.data.size),
    cps.map((c) => c.size),
  );
  s.close();
  const r = verifyLog(join(home, 'audit.db'), { publicKey: loadPublicKey(undefined, join(home, 'keys')) });
  assert.equal(r.ok, true);
  assert.equal(r.checkpointsChecked, 2);
});

test('tamper with the chain recomputed and the checkpoint size retyped as text: the checkpoint is still compared (or named)', () => {
  const f = fixture();
  const db = rewriteWithChainRecomputed(f.db);
  // A table without column types keeps '30' as text; the signed text "size 30" is unchanged.
  db.exec(`DROP TRIGGER audit_checkpoints_no_delete; DROP TRIGGER audit_checkpoints_no_update;
    CREATE TABLE cp2 (id, size, root, ts, reason, log_id, key_id, signature, frontier);
    INSERT INTO cp2 SELECT id, CAST(size AS TEXT), root, ts, reason, log_id, key_id, signature, frontier FROM audit_checkpoints;
    DROP TABLE audit_checkpoints; ALTER TABLE cp2 RENAME TO audit_checkpoints;`);
  assert.equal((db.prepare('SELECT typeof(size) AS t FROM audit_checkpoints').get() as { t: string }).t, 'text');
  db.close();
  const r = verify(f);
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.match([r.firstBad?.reason ?? '', ...(r.problems ?? [])].join('\n'), /checkpoint #1/);
});

test('a new checkpoint is never built on a stored checkpoint whose signature fails: refused as tampering, nothing signed', () => {
  const f = fixture(40, 20);
  // an attacker rewrites the last checkpoint row (here: its signature, as after swapping in a forged root and frontier)
  sql(f.db, `UPDATE audit_checkpoints SET signature = '${Buffer.alloc(64, 7).toString('base64')}' WHERE id = 1;`);
  const s = new AuditStore(f.db);
  try {
    s.append({ type: 'process.exec', session: 's1', decision: 'allow', rule: 'r', data: { i: 41 } });
    assert.throws(
      () => checkpoint(s, 'after tamper', { keyDir: join(f.home, 'keys') }),
      (e: Error & { kind?: string }) => /signature does not verify/.test(e.message),
    );
    assert.equal(listCheckpoints(s.tables).length, 1, 'no checkpoint signed over the tampered one');
  } finally {
    s.close();
  }
});

test('after a key rotation the next checkpoint is rebuilt from the events and verifies with the new key', () => {
  const f = fixture(30, 10);
  const s = new AuditStore(f.db);
  const newKeys = join(f.home, 'keys2');
  try {
    s.append({ type: 'process.exec', session: 's1', decision: 'allow', rule: 'r', data: { i: 31 } });
    const c = checkpoint(s, 'rotated', { keyDir: newKeys });
    assert.equal(c.size, 32);
    assert.notEqual(c.keyId, listCheckpoints(s.tables)[0]!.keyId);
    const r = verifyLog(f.db, { publicKey: loadPublicKey(undefined, newKeys) });
    assert.equal(r.checkpointsChecked, 2);
    // checkpoint #2 (rebuilt) matches the tree of the events; with only the new public key,
    // the checkpoint of the old key is the one reported
    assert.deepEqual(
      (r.problems ?? []).map((x) => /checkpoint #(\d+)/.exec(x)?.[1]),
      ['1'],
    );
  } finally {
    s.close();
  }
});

test('the checkpoint table dropped after a rewrite with the chain recomputed: the checkpoint events in the chain still catch it', () => {
  const f = fixture();
  const db = rewriteWithChainRecomputed(f.db);
  db.exec('DROP TABLE audit_checkpoints');
  db.close();
  const r = verify(f);
  assert.equal(r.ok, false, 'a dropped checkpoint table must not read as "no checkpoints"');
  assert.ok(
    r.problems?.some((p) =>
      /checkpoint #1 recorded in the chain \(event 31\) is missing from the checkpoint table/.test(p),
    ),
    JSON.stringify(r.problems),
  );
  assert.match(r.firstBad?.reason ?? '', /do not match signed checkpoint #1/);
});

test('the checkpoint table dropped alone is reported, the events themselves verify against the chain-borne checkpoint', () => {
  const f = fixture();
  sql(f.db, 'DROP TRIGGER IF EXISTS audit_checkpoints_no_delete; DROP TABLE audit_checkpoints;');
  const r = verify(f);
  assert.equal(r.ok, false);
  assert.equal(r.firstBad, undefined, 'no event is blamed');
  assert.equal(r.checkpointsChecked, 1, 'the chain-borne checkpoint was compared with the tree');
});
