// A forged row must not block a decision across hosts (issue 18, schemas v6 and v7). Every host
// holds the writer role, so anyone with its credentials can insert answer rows for an ask before
// the real one: unsigned, or claiming the trusted key's id with a bad signature, a deny, or a
// flood of them. The asking host must skip every one of them (recorded, bounded), the reviewer's
// CLI must still be able to answer, and the first VALID answer is the one applied. Since v7 the
// server stamps the login role that wrote each row, and a flood under one role (a compromised
// host's) does not delay an answer written under another: counted in polls, never in time.
// Two hosts = two AIRLOCK_HOMEs and processes, a real PostgreSQL over its unix socket; the poll
// counts drive the waiting host's relay in this process against the same PostgreSQL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { AuditStore, keyId, loadSigningKey, logId } from '../../src/audit/index.ts';
import { ROWS_PER_POLL, relayApprovals, relayContext, signDecision } from '../../src/store/index.ts';
import { trustedApprovers } from '../../src/store/decisions.ts';
import { relayAnswers } from '../../src/store/queue.ts';
import { BIN, ROOT, tmp } from '../helpers.ts';
import { approverKeysYaml } from './approvers.ts';
import { type PgCluster, Procs, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
const procs = new Procs();
let a: string;
let b: string;
let orgPolicy: string;
before(async () => {
  cluster = await sharedStoreCluster();
  [a, b] = [tmp('airlock-host-a-'), tmp('airlock-host-b-')];
  orgPolicy = join(tmp('airlock-org-'), 'org.yaml');
  writeFileSync(orgPolicy, `telemetry:\n${approverKeysYaml([{ name: 'host-b', home: b }])}`);
  // one login role per host: host A's, and a compromised host's (the reviewer host B logs in as host_writer)
  await cluster.sql(
    'CREATE ROLE host_a LOGIN IN ROLE airlock_writer; CREATE ROLE flooder LOGIN IN ROLE airlock_writer',
  );
});
after(async () => {
  procs.killAll();
  await cluster?.stop();
});
/** A test whose host processes end with it, also when it fails (nothing left for the leftovers check). */
const hostTest = (name: string, body: () => Promise<void>) =>
  test(name, async () => {
    try {
      await body();
    } finally {
      await procs.stopAll();
    }
  });

const env = (home: string) => ({
  ...process.env,
  AIRLOCK_HOME: home,
  AIRLOCK_DATABASE_URL: cluster.url('host_writer'),
  AIRLOCK_ORG_POLICY: orgPolicy,
});
const run = (home: string, args: string[]) =>
  spawnSync(BIN, args, { env: env(home), encoding: 'utf8', timeout: 60_000 });
const waiter = (session: string) =>
  procs.start(process.execPath, [join(ROOT, 'test/store/wait-ask.ts'), session], env(a));

/** The ask `session` waits on, as host B lists it: its ref, host A's log id and the ask id. */
async function askOf(session: string): Promise<{ ref: string; logId: string; askId: number }> {
  for (let i = 0; i < 300; i++) {
    const r = run(b, ['approvals', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const ask = (JSON.parse(r.stdout) as { ref: string; session: string; logId: string }[]).find(
      (x) => x.session === session,
    );
    if (ask) return { ref: ask.ref, logId: ask.logId, askId: Number(ask.ref.split('@')[0]) };
    await sleep(100);
  }
  throw new Error(`no ask of ${session} listed`);
}

/** Host A's events of `type` about ask `askId`, once at least `n` are there (bounded wait). */
async function eventsOnA(type: string, askId: number, n: number) {
  for (let i = 0; i < 600; i++) {
    const store = new AuditStore(join(a, 'audit.db'));
    const got = store.query({ type }).filter((e) => e.data.askId === askId);
    store.close();
    if (got.length >= n) return got;
    await sleep(100);
  }
  throw new Error(`host A recorded fewer than ${n} ${type} for ask ${askId}`);
}

/** `n` answer rows inserted with a writer role (host_writer unless `role`): unsigned, or claiming host B's (trusted) key id with a bad signature. */
async function forge(
  ask: { logId: string; askId: number },
  n: number,
  o: { decision: string; claimB?: boolean; role?: string },
) {
  const kid = o.claimB ? keyId(loadSigningKey(join(b, 'keys')).publicKey) : null;
  const statement = o.claimB
    ? JSON.stringify({ v: 'airlock-decision/1', kind: 'ask-answer', logId: ask.logId, item: ask.askId })
    : null;
  await cluster.sql(
    `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason, statement, key_id, signature)
      SELECT $1, $2, $3, 'bob@example.com', 'forged', $4, $5, $6 FROM generate_series(1, $7::int)`,
    [ask.logId, ask.askId, o.decision, statement, kid, kid ? Buffer.alloc(64, 7).toString('base64') : null, n],
    o.role ?? 'host_writer',
  );
}

void hostTest(
  'forged answers inserted first (unsigned allow, a deny claiming the trusted key) hold no slot: the real allow is applied',
  async () => {
    const shipA = procs.start(BIN, ['audit', 'ship', '--follow'], env(a));
    const waiting = waiter('forged-first');
    const ask = await askOf('forged-first');
    await forge(ask, 1, { decision: 'allow' });
    await forge(ask, 1, { decision: 'deny', claimB: true });
    const refused = await eventsOnA('command.answer_refused', ask.askId, 2);
    assert.deepEqual(refused.map((e) => e.rule).sort(), ['telemetry.approverKeys', 'telemetry.approverKeys']);
    assert.match(refused.map((e) => String(e.data.reason)).join('\n'), /not signed/);
    assert.match(refused.map((e) => String(e.data.reason)).join('\n'), /signature does not verify/);
    assert.equal(waiting.p.exitCode, null, `a forged deny decides nothing: ${waiting.out()}`);

    const allow = run(b, ['approvals', 'allow', ask.ref, '--as', 'bob@example.com', '--reason', 'real']);
    assert.equal(allow.status, 0, `the reviewer can still answer: ${allow.stdout}${allow.stderr}`);
    assert.equal(await waiting.done, 0, waiting.out());
    assert.deepEqual(JSON.parse(waiting.out()), {
      decision: 'allow',
      by: 'bob@example.com',
      reason: 'real',
      scope: 'once',
    });
    const again = run(b, ['approvals', 'deny', ask.ref, '--as', 'bob@example.com']);
    assert.notEqual(again.status, 0, 'a second valid answer is refused: the first valid one won');
    assert.match(again.stderr, /already answered|no pending approval/);
    shipA.p.kill('SIGTERM');
    assert.equal(await shipA.done, 0, shipA.out());
  },
);

void hostTest(
  "10^6 forged answers claiming the trusted key under a compromised host's role: the reviewer's answer is applied, the flood recorded once naming that role",
  async () => {
    const shipA = procs.start(BIN, ['audit', 'ship', '--follow'], env(a));
    const waiting = waiter('flooded');
    const ask = await askOf('flooded');
    // 10^6 rows claiming the trusted key (each a signature to check) and 10^3 unsigned ones, all
    // written under role flooder; the reviewer's CLI on host B writes under host_writer
    await forge(ask, 1_000_000, { decision: 'deny', claimB: true, role: 'flooder' });
    await forge(ask, 1000, { decision: 'allow', role: 'flooder' });
    const allow = run(b, ['approvals', 'allow', ask.ref, '--as', 'bob@example.com', '--reason', 'after the flood']);
    assert.equal(allow.status, 0, allow.stdout + allow.stderr);
    // the ask's own timeout is 120 s: before v7 the answer sat behind 10^4 polls and the session timed out
    assert.equal(await waiting.done, 0, waiting.out());
    assert.equal((JSON.parse(waiting.out()) as { reason: string }).reason, 'after the flood');
    const floods = await eventsOnA('command.answer_flood', ask.askId, 1);
    assert.equal(floods.length, 1, 'the flood is recorded once');
    assert.equal(floods[0]!.severity, 'high');
    assert.equal(floods[0]!.data.writer, 'flooder', 'the flood names the role that wrote it');
    const refusals = await eventsOnA('command.answer_refused', ask.askId, 1);
    assert.ok(refusals.length <= 10, `refusals are recorded bounded, not once per forged row: ${refusals.length}`);
    shipA.p.kill('SIGTERM');
    assert.equal(await shipA.done, 0, shipA.out());
  },
);

/** Host A's relay in this process, logged in as `role`: its local log, its host row, and one poll at a time. */
async function relayHost(role: string) {
  const home = tmp('airlock-host-a-relay-');
  const local = new AuditStore(join(home, 'audit.db'));
  const log = logId(local);
  await cluster.sql('INSERT INTO airlock.hosts (log_id, hostname) VALUES ($1, $2)', [log, 'relay-a'], role);
  const c = new pg.Client({ connectionString: cluster.url(role) });
  await c.connect();
  const pem = loadSigningKey(join(b, 'keys')).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ctx = relayContext(trustedApprovers([{ name: 'host-b', publicKey: pem }]));
  const answers: { decision: string; by: string; reason: string }[] = [];
  const approvals: { proposal: number; by: string }[] = [];
  return {
    local,
    log,
    answers,
    approvals,
    pollAnswers: (askId: number) =>
      relayAnswers(local, c, [askId], (_id, decision, by, reason) => answers.push({ decision, by, reason }), ctx),
    pollApprovals: () => relayApprovals(local, c, (x) => approvals.push({ proposal: x.proposal, by: x.by }), ctx),
    events: (type: string) => local.query({ type }),
    close: async () => {
      await c.end();
      local.close();
    },
  };
}

const signedBy = () => ({ reason: 'real', ts: new Date().toISOString(), from: 'host-b' });

/** A real decision signed with host B's (trusted) key, inserted under `role`. */
async function signedAnswer(log: string, askId: number, role: string) {
  const s = signDecision(
    {
      kind: 'ask-answer',
      logId: log,
      item: askId,
      hash: null,
      decision: 'allow',
      by: 'bob@example.com',
      ...signedBy(),
    },
    loadSigningKey(join(b, 'keys')),
  );
  await cluster.sql(
    `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason, statement, key_id, signature)
      VALUES ($1, $2, 'allow', 'bob@example.com', 'real', $3, $4, $5)`,
    [log, askId, s.statement, s.keyId, s.signature],
    role,
  );
}

/** Polls (at most `max`) until the relay applied something; the number of polls it took, or null. */
async function pollsUntil(poll: () => Promise<number>, max: number): Promise<number | null> {
  for (let i = 1; i <= max; i++) if ((await poll()) > 0) return i;
  return null;
}

test('a flood under one role does not delay an answer written under another: 10^6 rows claiming the trusted key, the real answer applied at the next poll', async () => {
  const host = await relayHost('host_a');
  try {
    const ask = { logId: host.log, askId: 1 };
    await forge(ask, 1_000_000, { decision: 'deny', claimB: true, role: 'flooder' });
    assert.equal(await host.pollAnswers(1), 0, 'a forged deny decides nothing');
    await signedAnswer(host.log, 1, 'host_writer');
    // before v7: 10^6 / ROWS_PER_POLL polls behind the flood
    assert.equal(await pollsUntil(() => host.pollAnswers(1), 3), 1, 'applied at the next poll');
    assert.deepEqual(host.answers, [{ decision: 'allow', by: 'bob@example.com', reason: 'real' }]);
    const floods = host.events('command.answer_flood');
    assert.equal(floods.length, 1, 'the flood is recorded once');
    assert.equal(floods[0]!.data.writer, 'flooder');
    assert.equal(floods[0]!.data.sharedRole, false);
    assert.equal(floods[0]!.rule, 'telemetry.approverKeys');
  } finally {
    await host.close();
  }
});

test('one role shared by every host (flooding and answering): the old bound, ROWS_PER_POLL rows per poll, recorded as such', async () => {
  const host = await relayHost('host_writer');
  try {
    const forged = Math.floor(ROWS_PER_POLL * 2.5);
    await forge({ logId: host.log, askId: 2 }, forged, { decision: 'deny', claimB: true });
    await signedAnswer(host.log, 2, 'host_writer');
    const polls = await pollsUntil(() => host.pollAnswers(2), 10);
    assert.equal(polls, Math.ceil((forged + 1) / ROWS_PER_POLL), 'the real answer waits behind its own role’s rows');
    const floods = host.events('command.answer_flood');
    assert.equal(floods.length, 1);
    assert.equal(floods[0]!.data.writer, 'host_writer');
    assert.equal(floods[0]!.data.sharedRole, true, 'the flood came under the login this host uses itself');
    assert.match(String(floods[0]!.data.reason), /one login shared by hosts/);
  } finally {
    await host.close();
  }
});

test('a writer cannot choose the role a row is stamped with: an explicit written_by is refused, SET ROLE does not change it', async () => {
  const host = await relayHost('host_a');
  try {
    await assert.rejects(
      cluster.sql(
        `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason, written_by) VALUES ($1, 3, 'allow', 'x', 'x', 'host_writer')`,
        [host.log],
        'flooder',
      ),
      /permission denied/,
    );
    await assert.rejects(
      cluster.sql(
        `INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, written_by) VALUES ($1, 3, 'h', 'x', 'x', 'host_writer')`,
        [host.log],
        'flooder',
      ),
      /permission denied/,
    );
    const c = new pg.Client({ connectionString: cluster.url('flooder') });
    await c.connect();
    try {
      await c.query('SET ROLE airlock_writer');
      const r = await c.query<{ written_by: string }>(
        `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason) VALUES ($1, 3, 'allow', 'x', 'x') RETURNING written_by`,
        [host.log],
      );
      assert.equal(r.rows[0]!.written_by, 'flooder', 'stamped with the login role (session_user), not current_user');
    } finally {
      await c.end();
    }
  } finally {
    await host.close();
  }
});

test("a flood of review approvals under one role does not delay a reviewer's approval written under another", async () => {
  const host = await relayHost('host_a');
  try {
    const hash = 'ab'.repeat(32);
    const kid = keyId(loadSigningKey(join(b, 'keys')).publicKey);
    await cluster.sql(
      `INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, statement, key_id, signature)
        SELECT $1, 4, $2, 'carol@example.com', 'host-b', '{}', $3, $4 FROM generate_series(1, 20000)`,
      [host.log, hash, kid, Buffer.alloc(64, 7).toString('base64')],
      'flooder',
    );
    assert.equal(await host.pollApprovals(), 0);
    const s = signDecision(
      {
        kind: 'review-approval',
        logId: host.log,
        item: 4,
        hash,
        decision: 'approve',
        by: 'carol@example.com',
        ...signedBy(),
      },
      loadSigningKey(join(b, 'keys')),
    );
    await cluster.sql(
      `INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, statement, key_id, signature)
        VALUES ($1, 4, $2, 'carol@example.com', 'host-b', $3, $4, $5)`,
      [host.log, hash, s.statement, s.keyId, s.signature],
      'host_writer',
    );
    assert.equal(await pollsUntil(() => host.pollApprovals(), 3), 1, 'applied at the next poll');
    assert.deepEqual(host.approvals, [{ proposal: 4, by: 'carol@example.com' }]);
    assert.deepEqual(
      host.events('review.approval_flood').map((e) => e.data.writer),
      ['flooder'],
    );
  } finally {
    await host.close();
  }
});

test('migrating a v6 store with answers in it: its rows are stamped "(before v7)", new rows with their login role', async () => {
  const { migratePg, PG_MIGRATIONS, PG_SCHEMA_VERSION } = await import('../../src/store/index.ts');
  await cluster.sql('CREATE DATABASE v6_store');
  const owner = new pg.Client({ connectionString: cluster.url('postgres', 'v6_store') });
  await owner.connect();
  try {
    assert.equal(await migratePg(owner, 'v6_store', PG_MIGRATIONS.slice(0, 6)), 6);
    const answer = `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason) VALUES ('log-a', 1, 'deny', 'x', 'x')`;
    await owner.query(`INSERT INTO airlock.hosts (log_id, hostname) VALUES ('log-a', 'a'); ${answer}`);
    assert.equal(await migratePg(owner, 'v6_store'), PG_SCHEMA_VERSION);
    const writer = new pg.Client({ connectionString: cluster.url('flooder', 'v6_store') });
    await writer.connect();
    await writer.query(answer).finally(() => writer.end());
    const rows = await owner.query<{ written_by: string }>('SELECT written_by FROM airlock.answers ORDER BY id');
    assert.deepEqual(
      rows.rows.map((r) => r.written_by),
      ['(before v7)', 'flooder'],
    );
  } finally {
    await owner.end();
  }
});
