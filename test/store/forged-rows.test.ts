// A forged row must not block a decision across hosts (issue 18, schema v6). Every host holds the
// writer role, so anyone with its credentials can insert answer rows for an ask before the real
// one: unsigned, or claiming the trusted key's id with a bad signature, a deny, or a flood of
// them. The asking host must skip every one of them (recorded, bounded), the reviewer's CLI must
// still be able to answer, and the first VALID answer is the one applied.
// Two hosts = two AIRLOCK_HOMEs and processes, a real PostgreSQL over its unix socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditStore, keyId, loadSigningKey } from '../../src/audit/index.ts';
import { ROWS_PER_POLL } from '../../src/store/index.ts';
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

/** `n` answer rows inserted with the writer role: unsigned, or claiming host B's (trusted) key id with a bad signature. */
async function forge(ask: { logId: string; askId: number }, n: number, o: { decision: string; claimB?: boolean }) {
  const kid = o.claimB ? keyId(loadSigningKey(join(b, 'keys')).publicKey) : null;
  const statement = o.claimB
    ? JSON.stringify({ v: 'airlock-decision/1', kind: 'ask-answer', logId: ask.logId, item: ask.askId })
    : null;
  await cluster.sql(
    `INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason, statement, key_id, signature)
      SELECT $1, $2, $3, 'bob@example.com', 'forged', $4, $5, $6 FROM generate_series(1, $7::int)`,
    [ask.logId, ask.askId, o.decision, statement, kid, kid ? Buffer.alloc(64, 7).toString('base64') : null, n],
    'host_writer',
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
  'a flood of forged answers is read in bounded batches, recorded once, and the real answer after it is still applied',
  async () => {
    const shipA = procs.start(BIN, ['audit', 'ship', '--follow'], env(a));
    const waiting = waiter('flooded');
    const ask = await askOf('flooded');
    // 10^6 unsigned rows (never read but by the bounded refusal scan) and 2.5 polls' worth of
    // rows claiming the trusted key (each one's signature checked, ROWS_PER_POLL per poll)
    await forge(ask, 1_000_000, { decision: 'allow' });
    await forge(ask, Math.floor(ROWS_PER_POLL * 2.5), { decision: 'deny', claimB: true });
    const allow = run(b, ['approvals', 'allow', ask.ref, '--as', 'bob@example.com', '--reason', 'after the flood']);
    assert.equal(allow.status, 0, allow.stdout + allow.stderr);
    assert.equal(await waiting.done, 0, waiting.out());
    assert.equal((JSON.parse(waiting.out()) as { reason: string }).reason, 'after the flood');
    const floods = await eventsOnA('command.answer_flood', ask.askId, 1);
    assert.equal(floods.length, 1, 'the flood is recorded once');
    assert.equal(floods[0]!.severity, 'high');
    const refusals = await eventsOnA('command.answer_refused', ask.askId, 1);
    assert.ok(refusals.length <= 10, `refusals are recorded bounded, not once per forged row: ${refusals.length}`);
    shipA.p.kill('SIGTERM');
    assert.equal(await shipA.done, 0, shipA.out());
  },
);
