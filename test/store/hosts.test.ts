// Many hosts, one record: hosts are separate processes with their own AIRLOCK_HOME, each
// with concurrent sessions appending to its local log and a shipper (`airlock audit ship
// --follow`) copying it to one real PostgreSQL. PostgreSQL stopped and restarted mid-run
// loses nothing; a shipper killed with SIGKILL mid-batch duplicates nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditStore, checkpoint } from '../../src/audit/index.ts';
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

const hostEnv = (home: string) => ({
  ...process.env,
  AIRLOCK_HOME: home,
  AIRLOCK_DATABASE_URL: cluster.url('host_writer'),
});

async function remoteCount(logId?: string): Promise<number> {
  const rows = await cluster.sql<{ n: string }>(
    logId ? 'SELECT count(*) AS n FROM airlock.events WHERE log_id = $1' : 'SELECT count(*) AS n FROM airlock.events',
    logId ? [logId] : [],
  );
  return Number(rows[0]!.n);
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end && i < 10_000; i++) {
    if (await cond()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Every local event of the home is in PostgreSQL exactly once, byte for byte. */
async function assertShippedExactly(home: string): Promise<void> {
  const store = new AuditStore(join(home, 'audit.db'));
  try {
    const log = store.getKv('audit.logId')!;
    const local = store.rawRows(0, 1_000_000).map((r) => `${r[0]} ${r[1]} ${r[10]}`);
    const remote = (
      await cluster.sql<{ r: string }>(
        "SELECT seq || ' ' || id || ' ' || hash AS r FROM airlock.events WHERE log_id = $1 ORDER BY seq",
        [log],
      )
    ).map((x) => x.r);
    assert.equal(remote.length, local.length, `host ${home}: ${remote.length} shipped of ${local.length}`);
    assert.deepEqual(remote, local);
  } finally {
    store.close();
  }
}

test('4 hosts × 2 concurrent sessions ship to one PostgreSQL that is stopped and restarted mid-run: nothing lost, nothing twice, all verify', async () => {
  const homes = Array.from({ length: 4 }, () => tmp('airlock-host-'));
  const shippers = homes.map((h) => procs.start(BIN, ['audit', 'ship', '--follow', '--batch', '50'], hostEnv(h)));
  await sleep(300);
  const sessions = homes.flatMap((h, i) =>
    [0, 1].map((k) =>
      procs.start(process.execPath, [join(ROOT, 'test/store/append-events.ts'), `h${i}-s${k}`, '1500'], hostEnv(h)),
    ),
  );
  await waitFor('the first shipped events', async () => (await remoteCount()) > 200);
  await cluster.stopServer();
  await sleep(1500); // the sessions go on appending into their local spools meanwhile
  await cluster.start();
  for (const s of sessions) assert.equal(await s.done, 0, s.out());
  for (const s of shippers) s.p.kill('SIGTERM');
  for (const s of shippers) assert.equal(await s.done, 0, s.out());
  assert.ok(
    shippers.some((s) => /shared store unreachable, events stay spooled/.test(s.out())),
    'a shipper saw the outage',
  );
  for (const h of homes) await assertShippedExactly(h);
  const v = spawnSync(BIN, ['audit', 'verify', '--json'], {
    env: hostEnv(homes[0]!),
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(v.status, 0, v.stdout + v.stderr);
  const r = JSON.parse(v.stdout) as {
    ok: boolean;
    hosts: { events: number; checkpointsChecked: number }[];
    global: { size: number };
  };
  assert.equal(r.hosts.length, 4);
  assert.ok(
    r.hosts.every((h) => h.events >= 3000 && h.checkpointsChecked >= 2),
    v.stdout,
  );
});

test('a shipper killed with SIGKILL mid-batch: the next one resumes where PostgreSQL stands and duplicates nothing', async () => {
  const home = tmp('airlock-host-');
  const store = new AuditStore(join(home, 'audit.db'));
  for (let i = 0; i < 40; i++)
    store.appendMany(
      Array.from({ length: 1000 }, (_, k) => ({
        type: 'process.exec',
        session: 'big',
        data: { argv: ['x', String(i * 1000 + k)] },
      })),
    );
  checkpoint(store, 'test', { keyDir: join(home, 'keys') });
  const log = store.getKv('audit.logId')!;
  store.close();
  for (let round = 0; round < 3; round++) {
    const before = await remoteCount(log);
    const shipper = procs.start(BIN, ['audit', 'ship', '--follow', '--batch', '300'], hostEnv(home));
    await waitFor('the shipper to make progress', async () => (await remoteCount(log)) > before + 1000);
    shipper.p.kill('SIGKILL');
    await shipper.done;
    const now = await remoteCount(log);
    assert.ok(now < 40_001, `round ${round}: killed before the end (${now})`);
  }
  const rest = spawnSync(BIN, ['audit', 'ship', '--json'], { env: hostEnv(home), encoding: 'utf8', timeout: 120_000 });
  assert.equal(rest.status, 0, rest.stderr);
  await assertShippedExactly(home);
  const v = spawnSync(BIN, ['audit', 'verify'], { env: hostEnv(home), encoding: 'utf8', timeout: 120_000 });
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /intact/);
});
