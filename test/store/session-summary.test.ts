// The per-session summary of the shared store (schema v8): the sessions listing over every host
// reads one row per session instead of grouping every event, the server keeps it from the rows
// it inserts into the append-only events table (a writer cannot write it), and every insert
// NOTIFYs airlock_events with the host's log id and what changed, nothing else.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AuditStore } from '../../src/audit/index.ts';
import { BIN, cleanup, tmp } from '../helpers.ts';
import { type PgCluster, Procs, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
const procs = new Procs();
const homes = Array.from({ length: 4 }, () => tmp('airlock-host-'));
const stores: AuditStore[] = [];

before(async () => {
  cluster = await sharedStoreCluster();
  for (const h of homes) stores.push(new AuditStore(join(h, 'audit.db')));
});
after(async () => {
  procs.killAll();
  for (const s of stores) s.close();
  await cluster?.stop();
  cleanup(...homes);
});

const hostEnv = (home: string) => ({
  ...process.env,
  AIRLOCK_HOME: home,
  AIRLOCK_DATABASE_URL: cluster.url('host_writer'),
});

/** One round of two sessions per host: starts, commands (some denied), and in the last round their ends. */
function appendRound(store: AuditStore, host: number, round: number, last: boolean): void {
  for (const k of [0, 1]) {
    const session = `h${host}-s${k}`;
    if (round === 0)
      store.append({ type: 'session.start', session, data: { command: ['agent', `--task=${k}`], agent: 'codex' } });
    store.appendMany(
      Array.from({ length: 3 + ((host + round + k) % 5) }, (_, i) => ({
        type: 'process.exec',
        session,
        decision: i % 3 === 0 ? ('deny' as const) : ('allow' as const),
        data: { argv: ['make', `r${round}-${i}`] },
      })),
    );
    if (last && k === 0) store.append({ type: 'session.stop', session, data: { status: 0, reason: 'exit' } });
    if (last && k === 1) store.append({ type: 'session.failed', session, data: { message: 'boom' } });
  }
  store.append({ type: 'policy.loaded', data: { note: 'an event of no session' } });
}

/** Every host ships at once, each in small batches (the summary is kept per inserting statement). */
async function shipAll(): Promise<void> {
  const shippers = homes.map((h) => procs.start(BIN, ['audit', 'ship', '--batch', '7'], hostEnv(h)));
  for (const s of shippers) assert.equal(await s.done, 0, s.out());
}

const SUMMARY_COLUMNS =
  'log_id, session, first_seq, last_seq, start, events, denials, start_data, stop_data, stop_ts, result_data, fail_data';
const RECOUNT = `SELECT log_id, session, min(seq) AS first_seq, max(seq) AS last_seq, min(ts) AS start, count(*) AS events,
    sum(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) AS denials,
    max(CASE WHEN type = 'session.start' THEN data END) AS start_data, max(CASE WHEN type = 'session.stop' THEN data END) AS stop_data,
    max(CASE WHEN type = 'session.stop' THEN ts END) AS stop_ts, max(CASE WHEN type = 'session.result' THEN data END) AS result_data,
    max(CASE WHEN type = 'session.failed' THEN data END) AS fail_data
  FROM airlock.events WHERE session IS NOT NULL GROUP BY log_id, session ORDER BY log_id, session`;

test("the session summary equals a recount of the events after 4 hosts' sessions shipped concurrently; each insert notifies its host's log id and kind only", async () => {
  const listener = new pg.Client({ connectionString: cluster.url() });
  await listener.connect();
  const payloads: string[] = [];
  listener.on('notification', (n) => payloads.push(`${n.channel} ${n.payload}`));
  await listener.query('LISTEN airlock_events');
  try {
    for (let round = 0; round < 3; round++) {
      stores.forEach((s, i) => appendRound(s, i, round, round === 2));
      await shipAll();
    }
    const summary = await cluster.sql(
      `SELECT ${SUMMARY_COLUMNS} FROM airlock.session_summary ORDER BY log_id, session`,
    );
    const recount = await cluster.sql(RECOUNT);
    assert.equal(summary.length, 8, 'two sessions on each of 4 hosts');
    assert.deepEqual(summary, recount);
    for (const [i, store] of stores.entries()) {
      const log = store.getKv('audit.logId')!;
      const local = store.query({ session: `h${i}-s0`, limit: 10_000 });
      const row = summary.find((r) => r.log_id === log && r.session === `h${i}-s0`)!;
      assert.equal(Number(row.events), local.length);
      assert.equal(Number(row.denials), local.filter((e) => e.decision === 'deny').length);
      assert.ok(row.stop_data, 'the stop is summarized');
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // notifications arrive after the commits
    const logs = stores.map((s) => s.getKv('audit.logId')!);
    for (const p of payloads) assert.match(p, /^airlock_events [0-9a-f-]{36} (events|sessions|asks)$/);
    for (const log of logs) {
      assert.ok(payloads.includes(`airlock_events ${log} sessions`), `a new session of ${log} was announced`);
      assert.ok(payloads.includes(`airlock_events ${log} events`));
    }
  } finally {
    await listener.end();
  }
});

test('a host (the writer role) cannot write the summary; nobody can edit or remove it but the trigger', async () => {
  await assert.rejects(
    cluster.sql(
      "INSERT INTO airlock.session_summary VALUES ('x', 'forged', 1, 1, '2026', 1, 0, NULL, NULL, NULL, NULL, NULL)",
      [],
      'host_writer',
    ),
    /permission denied for table session_summary/,
  );
  await assert.rejects(
    cluster.sql("UPDATE airlock.session_summary SET denials = 0 WHERE session = 'h0-s0'", [], 'host_writer'),
    /permission denied/,
  );
  // even the owner: the summary is what the events say, or nothing
  await assert.rejects(
    cluster.sql("UPDATE airlock.session_summary SET denials = 0 WHERE session = 'h0-s0'"),
    /session_summary is kept by the server/,
  );
  await assert.rejects(cluster.sql('DELETE FROM airlock.session_summary'), /session_summary is kept by the server/);
  await assert.rejects(cluster.sql('TRUNCATE airlock.session_summary'), /append-only/);
  const denials = await cluster.sql<{ n: string }>(
    "SELECT sum(denials) AS n FROM airlock.session_summary WHERE session = 'h0-s0'",
  );
  assert.ok(Number(denials[0]!.n) > 0);
});

test("`airlock sessions` lists every host's sessions from the summary: its query reads no event (auto_explain)", async () => {
  await cluster.sql('ANALYZE airlock.events');
  await cluster.sql("ALTER DATABASE postgres SET session_preload_libraries = 'auto_explain'");
  await cluster.sql('ALTER DATABASE postgres SET auto_explain.log_min_duration = 0');
  const from = statSync(join(cluster.dir, 'log')).size;
  const viewer = tmp('airlock-host-');
  try {
    const r = procs.start(BIN, ['sessions', '--json'], hostEnv(viewer));
    assert.equal(await r.done, 0, r.out());
    const listed = JSON.parse(r.out()) as { id: string; events: number; state: string; thisHost: boolean }[];
    assert.equal(listed.filter((s) => !s.thisHost).length, 8);
    assert.deepEqual(
      listed.filter((s) => s.id === 'h1-s1').map((s) => s.state),
      ['failed'],
    );
    const log = readFileSync(join(cluster.dir, 'log'), 'utf8').slice(from);
    const plans = log.split(/\n(?=\S[^\n]*LOG: {2})/).filter((entry) => entry.includes('AS "logId"'));
    assert.equal(plans.length, 1, log.slice(0, 4000));
    assert.match(plans[0]!, /on session_summary/);
    assert.doesNotMatch(plans[0]!, /on events\b/, plans[0]);
  } finally {
    await cluster.sql('ALTER DATABASE postgres RESET ALL');
    cleanup(viewer);
  }
});

test("another host's malformed session rows (data not JSON, fields of the wrong type) do not break the listing", async () => {
  // a compromised host inserts what it likes as the writer role: events that are not its chain's
  const evil = [
    ['1', 'evil-1', 'session.start', 'not json at all'],
    ['2', 'evil-2', 'session.start', '{"command":"rm -rf /","agent":7,"repo":["x"]}'],
    ['3', 'evil-2', 'session.result', '{"commits":5,"dirty":"yes"}'],
    ['4', 'evil-2', 'session.stop', '{"status":"zero","reason":{"x":1}}'],
  ];
  await cluster.sql("INSERT INTO airlock.hosts (log_id, hostname) VALUES ('0bad0bad-evil', 'evil')", [], 'host_writer');
  for (const [seq, session, type, data] of evil)
    await cluster.sql(
      `INSERT INTO airlock.events (log_id, seq, id, ts, type, session, severity, data, prev_hash, hash)
       VALUES ('0bad0bad-evil', $1, $2, $3, $4, $5, 'info', $6, 'x', 'x')`,
      [seq, `evil-event-${seq}`, `2026-12-03T00:00:0${seq}Z`, type, session, data],
      'host_writer',
    );
  const viewer = tmp('airlock-host-');
  try {
    const r = procs.start(BIN, ['sessions', '--json'], hostEnv(viewer));
    assert.equal(await r.done, 0, r.out());
    const listed = JSON.parse(r.out()) as { id: string; command: unknown; agent: unknown; state: string }[];
    const one = listed.find((s) => s.id === 'evil-1');
    const two = listed.find((s) => s.id === 'evil-2');
    assert.deepEqual([one?.command, one?.agent], [null, null]);
    assert.deepEqual([two?.command, two?.agent, two?.state], [null, null, 'stopped']);
    assert.equal(listed.filter((s) => !s.id.startsWith('evil-')).length, 8, "the other hosts' sessions are all there");
  } finally {
    cleanup(viewer);
  }
});
