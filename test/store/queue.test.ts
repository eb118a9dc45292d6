// Work queues across hosts: a session waiting on host A for a human is listed by
// `airlock approvals` on host B, and an approval given there releases it on host A; a
// second answer from a third host is refused. Each host is its own AIRLOCK_HOME and its own
// processes; they share only PostgreSQL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditStore } from '../../src/audit/index.ts';
import { BIN, ROOT, tmp } from '../helpers.ts';
import { type PgCluster, Procs, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
const procs = new Procs();

before(async () => {
  cluster = await sharedStoreCluster();
});
after(async () => {
  procs.killAll();
  await cluster?.stop();
});

const env = (home: string) => ({
  ...process.env,
  AIRLOCK_HOME: home,
  AIRLOCK_DATABASE_URL: cluster.url('host_writer'),
});
const start = (args: string[], home: string, cmd = BIN) => procs.start(cmd, args, env(home));

test('an approval given on host B releases the session waiting on host A; a later answer from host C is refused', async () => {
  const [a, b, c] = [tmp('airlock-host-a-'), tmp('airlock-host-b-'), tmp('airlock-host-c-')];
  const shipA = start(['audit', 'ship', '--follow'], a);
  const waiting = start([join(ROOT, 'test/store/wait-ask.ts'), 'session-on-a'], a, process.execPath);
  // host B sees host A's ask once it is shipped
  let ref = '';
  for (let i = 0; i < 300 && !ref; i++) {
    const r = spawnSync(BIN, ['approvals', '--json'], { env: env(b), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const asks = JSON.parse(r.stdout) as { ref?: string; session: string; command: string[] }[];
    ref = asks.find((x) => x.ref && x.session === 'session-on-a' && x.command.join(' ') === 'rm -rf build')?.ref ?? '';
    if (!ref) await sleep(100);
  }
  assert.match(ref, /^1@[0-9a-f]{8}$/);
  const allow = spawnSync(
    BIN,
    ['approvals', 'allow', ref, '--as', 'bob@example.com', '--reason', 'cleaning the build dir is fine'],
    { env: env(b), encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(allow.status, 0, allow.stdout + allow.stderr);
  assert.equal(await waiting.done, 0, waiting.out());
  assert.deepEqual(
    JSON.parse(waiting.out()),
    { decision: 'allow', by: 'bob@example.com', reason: 'cleaning the build dir is fine', scope: 'once' },
    'an answer from another host is for one run or connection',
  );
  const late = spawnSync(BIN, ['approvals', 'deny', ref, '--as', 'carol@example.com'], {
    env: env(c),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.notEqual(late.status, 0);
  assert.match(late.stderr, /no pending approval|already answered/);
  shipA.p.kill('SIGTERM');
  assert.equal(await shipA.done, 0, shipA.out());
  // host A's own chain records who answered, and the shared store holds it
  const store = new AuditStore(join(a, 'audit.db'));
  const answer = store.query({ type: 'command.answer' });
  store.close();
  assert.equal(answer.length, 1);
  assert.equal(answer[0]!.data.by, 'bob@example.com');
  const shipped = await cluster.sql("SELECT data FROM airlock.events WHERE type = 'command.answer'");
  assert.equal(shipped.length, 1);
  // `airlock sessions` on host B lists host A's session, named by its host
  const sessions = spawnSync(BIN, ['sessions', '--json'], { env: env(b), encoding: 'utf8', timeout: 60_000 });
  assert.equal(sessions.status, 0, sessions.stderr);
  const onA = (JSON.parse(sessions.stdout) as { id: string; host?: string; events: number }[]).find(
    (x) => x.id === 'session-on-a',
  );
  assert.ok(onA?.host, sessions.stdout);
  assert.equal(onA.events, 2, 'its ask and the answer');
  const plain = spawnSync(BIN, ['sessions'], { env: env(b), encoding: 'utf8', timeout: 60_000 });
  assert.match(plain.stdout, /HOST\s+SESSION[\s\S]*session-on-a/);
  const v = spawnSync(BIN, ['audit', 'verify'], { env: env(c), encoding: 'utf8', timeout: 60_000 });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test("with the shared store unreachable, the listings show this host's work and say other hosts are missing", () => {
  const home = tmp('airlock-host-');
  for (const args of [['sessions'], ['approvals'], ['review', 'list']]) {
    const r = spawnSync(BIN, args, {
      env: { ...process.env, AIRLOCK_HOME: home, AIRLOCK_DATABASE_URL: `postgres://nobody@/x?host=${home}/nowhere` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /other hosts not shown: cannot reach the shared store/);
  }
});
