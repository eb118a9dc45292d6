// The shared PostgreSQL store against a real PostgreSQL 15 (initdb'd for this file): versioned
// schema, idempotent shipping from a host's local SQLite log, append-only tables (triggers and
// an INSERT-only writer role), and verification that catches a superuser who disabled the
// triggers and edited, deleted, reordered or truncated rows, naming the first bad event.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AuditStore, checkpoint, keyId, loadPublicKey } from '../../src/audit/index.ts';
import { AirlockError } from '../../src/common/index.ts';
import {
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  migratePg,
  otherHostsProposals,
  pendingSharedAsks,
  shipOnce,
  verifySharedStore,
  type SharedVerifyOptions,
  type SharedVerifyResult,
} from '../../src/store/index.ts';
import { tmp } from '../helpers.ts';
import { PgCluster } from './pg-cluster.ts';
import { workView } from '../../src/hosts/index.ts';

let cluster: PgCluster;
let dbs = 0;

before(async () => {
  cluster = await PgCluster.create();
  await cluster.sql('CREATE ROLE host_writer LOGIN');
});
after(async () => {
  await cluster?.stop();
});

async function client(db: string, user = 'postgres'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster.url(user, db) });
  await c.connect();
  return c;
}

/** A fresh database at the latest schema; the host role may write it (as a member of airlock_writer). */
async function freshDb(): Promise<string> {
  const name = `t${++dbs}`;
  await cluster.sql(`CREATE DATABASE ${name}`);
  const c = await client(name);
  try {
    await migratePg(c, name);
  } finally {
    await c.end();
  }
  await cluster.sql('GRANT airlock_writer TO host_writer');
  return name;
}

/** A host: its own AIRLOCK_HOME, 40 events in 4 sessions, checkpoints at 20 and at the end. */
function host(): { store: AuditStore; keyDir: string } {
  const home = tmp();
  const store = new AuditStore(join(home, 'audit.db'));
  const keyDir = join(home, 'keys');
  for (let i = 0; i < 40; i++) {
    store.append({ type: 'process.exec', session: `s${i % 4}`, data: { argv: ['echo', String(i)], note: 'é"\\\n' } });
    if (i === 19) checkpoint(store, 'test', { keyDir });
  }
  checkpoint(store, 'test', { keyDir });
  return { store, keyDir };
}

/** A fresh database holding one host's shipped log, for `fn`; the host's store is closed after. */
async function withShipped(fn: (db: string, h: ReturnType<typeof host>) => Promise<void>): Promise<void> {
  const db = await freshDb();
  const h = host();
  try {
    await shipAs(db, h);
    await fn(db, h);
  } finally {
    h.store.close();
  }
}

async function shipAs(db: string, h: { store: AuditStore; keyDir: string }, batch = 7) {
  const c = await client(db, 'host_writer');
  try {
    return await shipOnce(h.store, c, { batch, keyDir: h.keyDir });
  } finally {
    await c.end();
  }
}

/** Seq ranges of 8 events: a test host's 40 events are cut at 8|9, 16|17, 24|25 and 32|33. */
const RANGE = 8;

/**
 * Verifies in this thread, again with every host in parallel (this thread and a worker, each over
 * its own connection in one exported snapshot), and again with each host cut into seq ranges of
 * RANGE events verified in parallel and joined: all three must give the same verdict.
 */
async function verify(db: string, opts: SharedVerifyOptions = {}): Promise<SharedVerifyResult> {
  const c = await client(db);
  try {
    const alone = await verifySharedStore(c, opts);
    const parallel = await verifySharedStore(c, { ...opts, url: cluster.url('postgres', db), parallelFrom: 0 });
    assert.deepEqual(parallel, alone, 'the parallel verdict differs from the single-thread one');
    const ranges = await verifySharedStore(c, {
      ...opts,
      url: cluster.url('postgres', db),
      parallelFrom: 0,
      rangeSize: RANGE,
    });
    assert.deepEqual(ranges, alone, 'the verdict over seq ranges differs from the single-thread one');
    return alone;
  } finally {
    await c.end();
  }
}

/** Runs SQL as the superuser with every trigger of airlock.events and airlock.checkpoints disabled. */
async function tamper(db: string, sql: string): Promise<void> {
  const c = await client(db);
  try {
    await c.query(
      'ALTER TABLE airlock.events DISABLE TRIGGER ALL; ALTER TABLE airlock.checkpoints DISABLE TRIGGER ALL',
    );
    await c.query(sql);
  } finally {
    await c.end();
  }
}

test('migrations: a fresh database reaches the latest version, a second run does nothing, a newer one is refused', async () => {
  const db = await freshDb();
  const c = await client(db);
  try {
    assert.equal(await migratePg(c, db), PG_SCHEMA_VERSION);
    const rows = (await c.query('SELECT version FROM airlock.schema_migrations ORDER BY version')).rows.map(
      (r) => r.version,
    );
    assert.deepEqual(
      rows,
      PG_MIGRATIONS.map((m) => m.version),
    );
    await c.query("INSERT INTO airlock.schema_migrations (version, what) VALUES (99, 'from the future')");
    await assert.rejects(
      migratePg(c, 'the shared store'),
      (e: unknown) =>
        e instanceof AirlockError &&
        e.kind === 'BAD_STATE' &&
        e.message.includes('schema version 99, newer than this Airlock knows'),
    );
  } finally {
    await c.end();
  }
});

test('migrations: a store at an older version is brought forward in place, keeping what it holds', async () => {
  const name = `t${++dbs}`;
  await cluster.sql(`CREATE DATABASE ${name}`);
  const su = await client(name);
  try {
    assert.equal(await migratePg(su, name, PG_MIGRATIONS.slice(0, 1)), 1);
    await cluster.sql('GRANT airlock_writer TO host_writer');
    const h = host();
    try {
      const shipped = await shipAs(name, h);
      assert.equal(await migratePg(su, name), PG_SCHEMA_VERSION);
      assert.equal(Number((await su.query('SELECT count(*) AS n FROM airlock.events')).rows[0].n), shipped.events);
      assert.equal((await su.query("SELECT to_regclass('airlock.answers')::text AS t")).rows[0].t, 'airlock.answers');
      assert.equal((await verify(name)).ok, true);
    } finally {
      h.store.close();
    }
  } finally {
    await su.end();
  }
});

test('a store one schema version behind hides other hosts with a note naming `airlock db migrate`; this host is still listed', async () => {
  const name = `t${++dbs}`;
  await cluster.sql(`CREATE DATABASE ${name}`);
  const su = await client(name);
  const h = host();
  try {
    await migratePg(su, name, PG_MIGRATIONS.slice(0, -1));
    const notes: string[] = [];
    const view = workView(h.store, { database: cluster.url('postgres', name), onUnavailable: (m) => notes.push(m) });
    const sessions = await view.sessions();
    assert.ok(sessions.length > 0 && sessions.every((x) => x.thisHost), 'this host keeps its listing');
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /schema version \d+; this Airlock needs \d+: run `airlock db migrate`/);
  } finally {
    h.store.close();
    await su.end();
  }
});

test("shipping copies a host's log byte for byte; shipping again adds nothing; the store verifies", async () => {
  const db = await freshDb();
  const h = host();
  try {
    const first = await shipAs(db, h);
    assert.equal(first.events, h.store.count());
    assert.equal(first.checkpoints, 2);
    const again = await shipAs(db, h);
    assert.deepEqual([again.events, again.checkpoints], [0, 0]);
    const local = h.store.rawRows(0, 1000).map((r) => r.join('\u0001'));
    const c = await client(db);
    const remote = (
      await c.query({
        text: 'SELECT seq::float8, id, ts, type, session, severity, decision, rule, data, prev_hash, hash FROM airlock.events ORDER BY seq',
        rowMode: 'array',
      })
    ).rows.map((r: unknown[]) => r.join('\u0001'));
    await c.end();
    assert.deepEqual(remote, local);
    const v = await verify(db);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.hosts[0]!.checkpointsChecked, 2);
    assert.equal(v.global.size, 2);
    // the auditor's own copy of the host key reaches the workers too
    const pub = loadPublicKey(undefined, h.keyDir);
    const trusted = await verify(db, { trustedKeys: new Map([[h.store.getKv('audit.logId')!, pub]]) });
    assert.deepEqual([trusted.ok, trusted.hosts[0]!.checkpointsChecked], [true, 2]);
    const stranger = host();
    try {
      const wrong = loadPublicKey(undefined, stranger.keyDir);
      const refused = await verify(db, { trustedKeys: new Map([[h.store.getKv('audit.logId')!, wrong]]) });
      assert.equal(refused.ok, false);
      assert.match(refused.hosts[0]!.problems[0]!, new RegExp(`not known for this host`));
      assert.notEqual(keyId(wrong), keyId(pub));
    } finally {
      stranger.store.close();
    }
  } finally {
    h.store.close();
  }
});

test('the writer role may only insert; triggers refuse UPDATE, DELETE and TRUNCATE even to a superuser in replica mode', async () => {
  await withShipped(async (db) => {
    const w = await client(db, 'host_writer');
    try {
      for (const sql of [
        "UPDATE airlock.events SET data = '{}' WHERE seq = 3",
        'DELETE FROM airlock.events WHERE seq = 3',
        'TRUNCATE airlock.events',
        "UPDATE airlock.checkpoints SET root = 'x'",
        'DELETE FROM airlock.global_log',
        "UPDATE airlock.answers SET decision = 'deny'",
        'DELETE FROM airlock.review_approvals',
        // v6: the writer cannot pick a row's place in insertion order (the first valid row wins)
        "INSERT INTO airlock.answers (id, log_id, ask_id, decision, by, reason) OVERRIDING SYSTEM VALUE VALUES (0, 'x', 1, 'allow', 'a', 'b')",
      ]) {
        await assert.rejects(w.query(sql), /permission denied/, sql);
      }
    } finally {
      await w.end();
    }
    const su = await client(db);
    try {
      await su.query('SET session_replication_role = replica');
      for (const sql of [
        "UPDATE airlock.events SET data = '{}' WHERE seq = 3",
        'DELETE FROM airlock.events WHERE seq = 3',
        'TRUNCATE airlock.events CASCADE',
        "UPDATE airlock.host_keys SET public_key = 'x'",
        'DELETE FROM airlock.checkpoints',
        'TRUNCATE airlock.global_log',
        'TRUNCATE airlock.answers',
        'TRUNCATE airlock.review_approvals',
      ]) {
        await assert.rejects(su.query(sql), /append-only: (UPDATE|DELETE|TRUNCATE) refused/, sql);
      }
    } finally {
      await su.end();
    }
    assert.equal((await verify(db)).ok, true);
  });
});

// LOG stands for the tampered host's log id (a second host's rows stay untouched)
const TAMPERING: { what: string; sql: string; seq: number; reason: RegExp; sameId?: number }[] = [
  {
    what: 'an edited event',
    sql: `UPDATE airlock.events SET data = '{"argv":["true"]}' WHERE log_id = LOG AND seq = 12`,
    seq: 12,
    reason: /does not match its hash/,
    sameId: 12,
  },
  {
    what: 'a deleted event',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq = 12',
    seq: 12,
    reason: /events 12\.\.12 are missing/,
  },
  {
    what: 'two events swapped',
    sql: 'UPDATE airlock.events SET seq = -12 WHERE log_id = LOG AND seq = 12; UPDATE airlock.events SET seq = 12 WHERE log_id = LOG AND seq = 13; UPDATE airlock.events SET seq = 13 WHERE log_id = LOG AND seq = -12',
    seq: 12,
    reason: /previous-hash link broken/,
    sameId: 13,
  },
  {
    what: 'a deleted event with the rest renumbered',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq = 12; UPDATE airlock.events SET seq = seq - 1 WHERE log_id = LOG AND seq > 12',
    seq: 12,
    reason: /link broken/,
    sameId: 13,
  },
  {
    what: 'a stored hash edited alone',
    sql: `UPDATE airlock.events SET hash = repeat('0', 64) WHERE log_id = LOG AND seq = 12`,
    seq: 12,
    reason: /does not match its hash/,
    sameId: 12,
  },
  {
    what: 'a previous hash edited alone',
    sql: 'UPDATE airlock.events SET prev_hash = upper(prev_hash) WHERE log_id = LOG AND seq = 12',
    seq: 12,
    reason: /previous-hash link broken/,
    sameId: 12,
  },
  {
    what: 'a previous hash with a byte appended',
    sql: "UPDATE airlock.events SET prev_hash = prev_hash || '0' WHERE log_id = LOG AND seq = 12",
    seq: 12,
    reason: /previous-hash link broken/,
    sameId: 12,
  },
  // at the seams between seq ranges (RANGE = 8: ranges end at 8, 16, 24, 32)
  {
    what: "an edited event, a range's first row",
    sql: `UPDATE airlock.events SET data = '{"argv":["true"]}' WHERE log_id = LOG AND seq = 9`,
    seq: 9,
    reason: /does not match its hash/,
    sameId: 9,
  },
  {
    what: "an edited event, a range's last row",
    sql: `UPDATE airlock.events SET data = '{"argv":["true"]}' WHERE log_id = LOG AND seq = 16`,
    seq: 16,
    reason: /does not match its hash/,
    sameId: 16,
  },
  {
    what: "a deleted event, a range's first row",
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq = 9',
    seq: 9,
    reason: /events 9\.\.9 are missing/,
  },
  {
    what: 'two events deleted across a seam',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq IN (8, 9)',
    seq: 8,
    reason: /events 8\.\.9 are missing/,
  },
  {
    what: 'a whole range deleted',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq BETWEEN 9 AND 16',
    seq: 9,
    reason: /events 9\.\.16 are missing/,
  },
  {
    what: 'two events swapped across a seam',
    sql: 'UPDATE airlock.events SET seq = -8 WHERE log_id = LOG AND seq = 8; UPDATE airlock.events SET seq = 8 WHERE log_id = LOG AND seq = 9; UPDATE airlock.events SET seq = 9 WHERE log_id = LOG AND seq = -8',
    seq: 8,
    reason: /previous-hash link broken/,
    sameId: 9,
  },
  {
    what: "a previous hash edited alone, a range's first row",
    sql: 'UPDATE airlock.events SET prev_hash = upper(prev_hash) WHERE log_id = LOG AND seq = 17',
    seq: 17,
    reason: /previous-hash link broken/,
    sameId: 17,
  },
  {
    what: "a previous hash with a byte appended, a range's first row",
    sql: "UPDATE airlock.events SET prev_hash = prev_hash || '0' WHERE log_id = LOG AND seq = 17",
    seq: 17,
    reason: /previous-hash link broken/,
    sameId: 17,
  },
  {
    what: 'the rows after a seam renumbered down over a deleted one',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq = 16; UPDATE airlock.events SET seq = seq - 1 WHERE log_id = LOG AND seq > 16',
    seq: 16,
    reason: /link broken/,
    sameId: 17,
  },
  {
    what: 'an event with seq 0 before the first',
    sql: `INSERT INTO airlock.events (log_id, seq, id, ts, type, session, severity, decision, rule, data, prev_hash, hash)
      SELECT log_id, 0, id || '-0', ts, type, session, severity, decision, rule, data, prev_hash, hash FROM airlock.events WHERE log_id = LOG AND seq = 1`,
    seq: 0,
    reason: /sequence out of order/,
  },
  {
    what: 'the tail cut off at a seam',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq > 32',
    seq: 33,
    reason: /events 33\.\.\d+ are missing \(deleted or truncated\): a signed checkpoint covers/,
  },
  {
    what: 'a truncated table',
    sql: 'TRUNCATE airlock.events',
    seq: 1,
    reason: /events 1\.\.\d+ are missing \(deleted or truncated\)/,
  },
  {
    what: 'the tail cut off',
    sql: 'DELETE FROM airlock.events WHERE log_id = LOG AND seq > 30',
    seq: 31,
    reason: /events 31\.\.\d+ are missing/,
  },
];

for (const t of TAMPERING) {
  test(`a superuser's tampering is caught and the first bad event named: ${t.what}`, async () => {
    const db = await freshDb();
    const h = host();
    const other = host();
    const truncate = t.sql.startsWith('TRUNCATE');
    try {
      await shipAs(db, h);
      if (!truncate) await shipAs(db, other); // a second host's log stays intact beside the tampered one
      const log = h.store.getKv('audit.logId')!;
      const ids = new Map(h.store.query().map((e) => [e.seq, e.id]));
      await tamper(db, t.sql.replaceAll('LOG', `'${log}'`));
      const v = await verify(db);
      assert.equal(v.ok, false);
      const bad = v.hosts.find((x) => x.logId === log)!;
      assert.equal(bad.firstBad?.seq, t.seq, JSON.stringify(bad));
      assert.match(bad.firstBad!.reason, t.reason);
      if (t.sameId !== undefined) assert.equal(bad.firstBad!.id, ids.get(t.sameId));
      if (!truncate) {
        const good = v.hosts.find((x) => x.logId === other.store.getKv('audit.logId'))!;
        assert.deepEqual([good.firstBad, good.checkpointsChecked, good.events], [undefined, 2, other.store.count()]);
      }
    } finally {
      h.store.close();
      other.store.close();
    }
  });
}

test('a truncated shared store (events, checkpoints and all) does not pass as intact against its global log', async () => {
  await withShipped(async (db) => {
    await tamper(
      db,
      'ALTER TABLE airlock.global_log DISABLE TRIGGER ALL; DELETE FROM airlock.events; DELETE FROM airlock.checkpoints',
    );
    const v = await verify(db);
    assert.equal(v.ok, false);
    assert.ok(
      v.global.problems.some((p) => /checkpoint #1 of host log .* is missing/.test(p)),
      JSON.stringify(v.global),
    );
  });
});

test('an edited checkpoint fails its signature and no longer matches the global log', async () => {
  await withShipped(async (db) => {
    await tamper(db, `UPDATE airlock.checkpoints SET root = repeat('a', 64) WHERE id = 1`);
    const v = await verify(db);
    assert.equal(v.ok, false);
    assert.ok(
      v.hosts[0]!.problems.some((p) => /checkpoint #1: signature does not verify/.test(p)),
      JSON.stringify(v.hosts[0]),
    );
    assert.ok(v.global.problems.some((p) => /global log entry 1: does not match checkpoint #1/.test(p)));
  });
});

test("a hostile host's rows that are not JSON do not break the other hosts' listings; verify names the row", async () => {
  await withShipped(async (db) => {
    const w = await client(db, 'host_writer');
    try {
      await w.query("INSERT INTO airlock.hosts (log_id, hostname) VALUES ('evil', 'evil\u001b[2Jhost')");
      for (const [seq, type, data] of [
        [1, 'command.ask', 'not json'],
        [2, 'review.proposed', '[1,2'],
        [3, 'command.answer', '{"askId":'],
        [4, 'review.proposed', '{"proposal":1,"stats":"x"}'],
      ] as const) {
        await w.query(
          `INSERT INTO airlock.events (log_id, seq, id, ts, type, session, severity, data, prev_hash, hash)
          VALUES ('evil', $1, $2, '2026-01-01T00:00:00Z', $3, 's', 'info', $4, 'x', 'y')`,
          [seq, `evil-${seq}`, type, data],
        );
      }
      assert.deepEqual(await pendingSharedAsks(w), []);
      const proposals = await otherHostsProposals(w, 'none');
      assert.deepEqual(
        proposals.map((p) => [p.ref, p.stats]),
        [['1@evil', null]],
      );
    } finally {
      await w.end();
    }
    const v = await verify(db);
    const evil = v.hosts.find((x) => x.logId === 'evil')!;
    assert.equal(evil.firstBad?.seq, 1);
    assert.equal(v.hosts.find((x) => x.logId !== 'evil')!.firstBad, undefined);
  });
});

// Every column a host (or the agent through it) controls, with what JSON escapes, what it does not
// (non-ASCII, U+2028, astral), and plain text: the verifier's byte path must take the plain rows
// and hand the others to the full check, with the same verdict.
const AWKWARD = [
  'plain',
  'quote " here',
  'back\\slash',
  'tab\tnl\ncr\r',
  'bell\u0007nul-ish\u0001',
  'é ü 中文',
  'line\u2028sep',
  '😀 astral',
  '',
];

test('rows with quotes, backslashes, control and non-ASCII characters in every column ship byte for byte and verify; an edit to one is caught', async () => {
  const db = await freshDb();
  const home = tmp();
  const store = new AuditStore(join(home, 'audit.db'));
  const keyDir = join(home, 'keys');
  try {
    for (const [i, text] of AWKWARD.entries()) {
      store.append({ type: `t.${text}`, session: text, rule: text, decision: 'allow', data: { text, i } });
      store.append({ type: 'plain.event', session: 's', data: { i } });
    }
    checkpoint(store, 'test', { keyDir });
    const h = { store, keyDir };
    assert.equal((await shipAs(db, h)).events, store.count());
    const c = await client(db);
    const remote = (
      await c.query({
        text: 'SELECT seq::float8, id, ts, type, session, severity, decision, rule, data, prev_hash, hash FROM airlock.events ORDER BY seq',
        rowMode: 'array',
      })
    ).rows;
    await c.end();
    assert.deepEqual(remote, store.rawRows(0, 1000));
    const v = await verify(db);
    assert.deepEqual([v.ok, v.events, v.hosts[0]!.checkpointsChecked], [true, store.count(), 1]);
    // a superuser turns one character of a row the byte path cannot take alone
    await tamper(db, `UPDATE airlock.events SET session = 'quote '' here' WHERE seq = 3`);
    const bad = await verify(db);
    assert.equal(bad.ok, false);
    assert.equal(bad.hosts[0]!.firstBad?.seq, 3);
    assert.match(bad.hosts[0]!.firstBad!.reason, /does not match its hash/);
  } finally {
    store.close();
  }
});

test('a plain row edited to hold a character JSON escapes is caught at that row', async () => {
  await withShipped(async (db) => {
    await tamper(db, `UPDATE airlock.events SET session = E's0\\\\' WHERE seq = 5`);
    const v = await verify(db);
    assert.deepEqual([v.ok, v.hosts[0]!.firstBad?.seq], [false, 5]);
    assert.match(v.hosts[0]!.firstBad!.reason, /does not match its hash/);
  });
});

test('three shippers of one host at once (COPY races on the same rows): every event lands once, counted once', async () => {
  const db = await freshDb();
  const home = tmp();
  const store = new AuditStore(join(home, 'audit.db'));
  try {
    store.appendMany(Array.from({ length: 3000 }, (_, i) => ({ type: 'process.exec', session: 's', data: { i } })));
    const h = { store, keyDir: join(home, 'keys') };
    const results = await Promise.all([shipAs(db, h, 200), shipAs(db, h, 300), shipAs(db, h, 500)]);
    assert.equal(
      results.reduce((n, r) => n + r.events, 0),
      3000,
    );
    const c = await client(db);
    const n = (await c.query('SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM airlock.events')).rows[0];
    await c.end();
    assert.deepEqual(n, { n: 3000, ids: 3000 });
    assert.equal((await verify(db)).ok, true);
  } finally {
    store.close();
  }
});

// 12: inside a range; 8 and 16: a range's last row, so the break is at the next range's first row
// (only the seam between them shows it: each range alone is consistent)
for (const at of [12, 8, 16])
  test(`an event rewritten with its own hash recomputed (a superuser who knows the format) is caught where the chain no longer links: seq ${at}`, async () => {
    await withShipped(async (db, h) => {
      await rewriteWithOwnHash(db, h.store, at);
      const v = await verify(db);
      assert.equal(v.ok, false);
      assert.equal(v.hosts[0]!.firstBad?.seq, at + 1, JSON.stringify(v.hosts[0]));
      assert.match(v.hosts[0]!.firstBad!.reason, /previous-hash link broken/);
    });
  });

/** Rewrites event `at`'s data and stores the hash recomputed for it, as a superuser who knows the format. */
async function rewriteWithOwnHash(db: string, store: AuditStore, at: number): Promise<void> {
  const [seq, id, ts, type, session, severity, decision, rule, , prev] = store.rawRows(at - 1, 1)[0]!;
  const data = '{"argv":["true"]}';
  const q = (s: string | null) => (s === null ? 'null' : JSON.stringify(s));
  const body = `{"data":${data},"decision":${q(decision)},"id":${q(id)},"rule":${q(rule)},"seq":${seq},"session":${q(session)},"severity":${q(severity)},"ts":${q(ts)},"type":${q(type)}}`;
  const forged = createHash('sha256').update(`${prev}\n${body}`).digest('hex');
  await tamper(db, `UPDATE airlock.events SET data = '${data}', hash = '${forged}' WHERE seq = ${at}`);
}

/** What the cluster's log gained since `from` (its size then). */
function logSince(from: number): string {
  const fd = openSync(join(cluster.dir, 'log'), 'r');
  try {
    const buf = Buffer.alloc(statSync(join(cluster.dir, 'log')).size - from);
    readSync(fd, buf, 0, buf.length, from);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

test("verify reads each host's rows along the primary key, never a scan of every host's rows and a sort (the server shares the verifier's cores)", async () => {
  const db = await freshDb();
  const homes = [tmp(), tmp()];
  const stores = homes.map((home) => new AuditStore(join(home, 'audit.db')));
  try {
    for (const [i, store] of stores.entries()) {
      store.appendMany(Array.from({ length: 3000 }, (_, k) => ({ type: 'process.exec', session: 's', data: { k } })));
      await shipAs(db, { store, keyDir: join(homes[i]!, 'keys') }, 1000);
    }
    // as autovacuum leaves a store: with statistics, half the table matching a host looks cheaper to scan
    const c = await client(db);
    await c.query('ANALYZE airlock.events');
    await c.end();
    // every connection to this database (this thread's and the workers') logs the plan of each statement
    await cluster.sql(`ALTER DATABASE ${db} SET session_preload_libraries = 'auto_explain'`);
    await cluster.sql(`ALTER DATABASE ${db} SET auto_explain.log_min_duration = 0`);
    const from = statSync(join(cluster.dir, 'log')).size;
    assert.equal((await verify(db)).ok, true);
    const plans = logSince(from)
      .split(/\n(?=\S[^\n]*LOG: {2})/)
      .filter((entry) => entry.includes('Query Text: COPY (SELECT seq'));
    const whole = plans.filter((plan) => !/AND seq/.test(plan));
    // 2 hosts × (alone, parallel); none again after the ranges: a clean store's ranges all join
    assert.equal(whole.length, 4, 'one COPY per host, alone and in parallel, none to verify a host again');
    const ranges = plans.filter((plan) => /AND seq/.test(plan));
    assert.equal(ranges.length, 2 * (3000 / RANGE), 'one COPY per range of each host');
    assert.ok(ranges.some((plan) => /AND seq >= 9 AND seq <= 16 ORDER BY seq/.test(plan)));
    for (const plan of plans) {
      assert.match(plan, /Index Scan using events_pkey on events/, plan);
      assert.doesNotMatch(plan, /Seq Scan|Sort|Gather/, plan);
    }
  } finally {
    for (const store of stores) store.close();
  }
});
