// Work queues across hosts: a session waiting on host A for a human is listed by
// `airlock approvals` on host B, and an approval given there releases it on host A; a
// second answer from a third host is refused. Answers travel signed: one written straight into
// the store, or signed by a host the org policy does not trust, releases nothing and is recorded.
// Each host is its own AIRLOCK_HOME, its own processes and its own network namespace, linked to
// the test's namespace by one veth pair where PostgreSQL listens: hosts share only PostgreSQL,
// reached over that link (root needed; a failure in CI, never a skip).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditStore } from '../../src/audit/index.ts';
import { BIN, ROOT, tmp } from '../helpers.ts';
import { approverKeysYaml } from './approvers.ts';
import { HostNetns, netnsUnavailable } from './netns.ts';
import { type PgCluster, Procs, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
const procs = new Procs();
const noNetns = netnsUnavailable();
/** A host: its data dir and its network namespace. */
interface Host {
  home: string;
  ns: HostNetns;
}
const namespaces: HostNetns[] = [];

before(async () => {
  if (noNetns) return;
  for (let i = 0; i < 3; i++) namespaces.push(HostNetns.create());
  cluster = await sharedStoreCluster({
    tcp: { addresses: namespaces.map((n) => n.outside), clients: '100.100.0.0/16' },
  });
});
after(async () => {
  procs.killAll();
  await cluster?.stop();
  for (const n of namespaces) n.remove();
});

let orgPolicy = '';
/** A host's environment: the shared store at its end of its own link. */
const env = (h: Host) => ({
  ...process.env,
  AIRLOCK_HOME: h.home,
  AIRLOCK_DATABASE_URL: cluster.tcpUrl(h.ns.outside, 'host_writer'),
  AIRLOCK_ORG_POLICY: orgPolicy,
});
/** `airlock ARGS` (or `cmd ARGS`) run on host `h`, in its namespace. */
const run = (h: Host, args: string[]) => h.ns.spawnSync(BIN, args, env(h));
const start = (args: string[], h: Host, cmd = BIN) => procs.start(...h.ns.argv(cmd, args), env(h));

/** The ref (`N@HOST`) of the ask `session` waits on, as host `home` lists it. */
async function askRef(h: Host, session: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const r = run(h, ['approvals', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const asks = JSON.parse(r.stdout) as { ref?: string; session: string; command: string[] }[];
    const ref = asks.find((x) => x.ref && x.session === session && x.command.join(' ') === 'rm -rf build')?.ref;
    if (ref) return ref;
    await sleep(100);
  }
  throw new Error(`no ask of ${session} listed`);
}

/** Waits (bounded) until host A's log holds `n` refusals of remote answers. */
async function refusalsOnA(h: Host, n: number) {
  for (let i = 0; i < 300; i++) {
    const store = new AuditStore(join(h.home, 'audit.db'));
    const got = store.query({ type: 'command.answer_refused' });
    store.close();
    if (got.length >= n) return got;
    await sleep(100);
  }
  throw new Error(`host A recorded fewer than ${n} refused answers`);
}

test(
  'an approval given on host B releases the session waiting on host A; forged, untrusted and late answers are refused',
  { skip: noNetns },
  async () => {
    const host = (n: string, i: number): Host => ({ home: tmp(`airlock-host-${n}-`), ns: namespaces[i]! });
    const [a, b, c] = [host('a', 0), host('b', 1), host('c', 2)];
    // the org trusts decisions recorded on host B (its audit key); host C signs with a key it does not list
    orgPolicy = join(tmp('airlock-org-'), 'org.yaml');
    writeFileSync(orgPolicy, `telemetry:\n${approverKeysYaml([{ name: 'host-b', home: b.home }])}`);
    const shipA = start(['audit', 'ship', '--follow'], a);
    const waiter = (session: string) => start([join(ROOT, 'test/store/wait-ask.ts'), session], a, process.execPath);
    const waiting = waiter('session-on-a');
    const forgedOn = waiter('forged-on-a');
    const untrustedOn = waiter('untrusted-on-a');
    // host B sees host A's asks once they are shipped
    const ref = await askRef(b, 'session-on-a');
    assert.match(ref, /^\d@[0-9a-f]{8}$/);
    // an answer row written with the writer role every host holds, unsigned: A refuses it
    const forged = (await askRef(b, 'forged-on-a')).split('@');
    await cluster.sql(
      "INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason) SELECT log_id, $1, 'allow', 'bob@example.com', 'forged' FROM airlock.hosts WHERE log_id LIKE $2",
      [Number(forged[0]), `${forged[1]}%`],
      'host_writer',
    );
    // an answer given on host C, signed with C's key, which the org policy does not list: refused
    const fromC = run(c, ['approvals', 'allow', await askRef(c, 'untrusted-on-a'), '--as', 'carol@example.com']);
    assert.equal(fromC.status, 0, fromC.stderr);
    const refusals = await refusalsOnA(a, 2);
    assert.deepEqual(
      refusals.map((e) => [e.rule, e.data.by, /not signed|does not trust/.test(String(e.data.reason))]).sort(),
      [
        ['telemetry.approverKeys', 'bob@example.com', true],
        ['telemetry.approverKeys', 'carol@example.com', true],
      ],
      JSON.stringify(refusals),
    );
    assert.equal(forgedOn.p.exitCode, null, `the session keeps waiting: ${forgedOn.out()}`);
    assert.equal(untrustedOn.p.exitCode, null, `the session keeps waiting: ${untrustedOn.out()}`);
    forgedOn.p.kill('SIGTERM');
    untrustedOn.p.kill('SIGTERM');

    const allow = run(b, [
      'approvals',
      'allow',
      ref,
      '--as',
      'bob@example.com',
      '--reason',
      'cleaning the build dir is fine',
    ]);
    assert.equal(allow.status, 0, allow.stdout + allow.stderr);
    assert.equal(await waiting.done, 0, waiting.out());
    assert.deepEqual(
      JSON.parse(waiting.out()),
      { decision: 'allow', by: 'bob@example.com', reason: 'cleaning the build dir is fine', scope: 'once' },
      'an answer from another host is for one run or connection',
    );
    // host A's shipper is connected now: the server sees it at A's namespace address, never on its socket
    const peers = await cluster.sql<{ addr: string | null }>(
      "SELECT host(client_addr) AS addr FROM pg_stat_activity WHERE usename = 'host_writer'",
    );
    assert.ok(
      peers.some((p) => p.addr === a.ns.inside),
      JSON.stringify(peers),
    );
    assert.ok(
      peers.every((p) => [a, b, c].some((h) => h.ns.inside === p.addr)),
      `hosts reach PostgreSQL over their own link only: ${JSON.stringify(peers)}`,
    );
    const late = run(c, ['approvals', 'deny', ref, '--as', 'carol@example.com']);
    assert.notEqual(late.status, 0);
    assert.match(late.stderr, /no pending approval|already answered/);
    shipA.p.kill('SIGTERM');
    assert.equal(await shipA.done, 0, shipA.out());
    // host A's own chain records who answered, and the shared store holds it
    const store = new AuditStore(join(a.home, 'audit.db'));
    const answer = store.query({ type: 'command.answer' });
    store.close();
    assert.equal(answer.length, 1);
    assert.equal(answer[0]!.data.by, 'bob@example.com');
    const shipped = await cluster.sql("SELECT data FROM airlock.events WHERE type = 'command.answer'");
    assert.equal(shipped.length, 1);
    // `airlock sessions` on host B lists host A's session, named by its host
    const sessions = run(b, ['sessions', '--json']);
    assert.equal(sessions.status, 0, sessions.stderr);
    const onA = (JSON.parse(sessions.stdout) as { id: string; host?: string; events: number }[]).find(
      (x) => x.id === 'session-on-a',
    );
    assert.ok(onA?.host, sessions.stdout);
    assert.equal(onA.events, 2, 'its ask and the answer');
    const plain = run(b, ['sessions']);
    assert.match(plain.stdout, /HOST\s+SESSION[\s\S]*session-on-a/);
    const v = run(c, ['audit', 'verify']);
    assert.equal(v.status, 0, v.stdout + v.stderr);
  },
);

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
