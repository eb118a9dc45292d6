// A session started with AIRLOCK_DATABASE_URL ships its host's log to the shared store while it
// runs and at its end (no separate shipper needed), and the store then verifies, signed end
// checkpoint included; with PostgreSQL down, the session still runs and ends, and everything it
// recorded is shipped later from the local spool.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { AuditStore } from '../../src/audit/index.ts';
import { Session } from '../../src/session/index.ts';
import { shipOnce, verifySharedStore } from '../../src/store/index.ts';
import { cleanup, makeRepo, tmp } from '../helpers.ts';
import { type PgCluster, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
const saved = process.env.AIRLOCK_DATABASE_URL;
before(async () => {
  cluster = await sharedStoreCluster();
});
after(async () => {
  if (saved === undefined) delete process.env.AIRLOCK_DATABASE_URL;
  else process.env.AIRLOCK_DATABASE_URL = saved;
  await cluster?.stop();
});

async function sessionTypes(session: string): Promise<string[]> {
  return (
    await cluster.sql<{ type: string }>('SELECT type FROM airlock.events WHERE session = $1 ORDER BY seq', [session])
  ).map((r) => r.type);
}

test('a session ships its events and its end checkpoint to the shared store by itself', async () => {
  const home = tmp('airlock-home-');
  const repo = makeRepo();
  process.env.AIRLOCK_DATABASE_URL = cluster.url('host_writer');
  try {
    const s = await Session.open({ repo, home, layers: { commands: null } });
    assert.equal((await s.run(['true'])).status, 0);
    await s.stop('test');
    const types = await sessionTypes(s.id);
    assert.ok(types.includes('session.start') && types.includes('session.stop'), types.join(' '));
    const c = new pg.Client({ connectionString: cluster.url() });
    await c.connect();
    try {
      const v = await verifySharedStore(c);
      assert.equal(v.ok, true, JSON.stringify(v).slice(0, 500));
      assert.ok(v.hosts[0]!.checkpointsChecked >= 1);
    } finally {
      await c.end();
    }
  } finally {
    delete process.env.AIRLOCK_DATABASE_URL;
    cleanup(home, repo);
  }
});

test('with PostgreSQL down the session runs and ends; its events ship later from the spool', async () => {
  const home = tmp('airlock-home-');
  const repo = makeRepo();
  process.env.AIRLOCK_DATABASE_URL = cluster.url('host_writer');
  await cluster.stopServer();
  let id: string;
  try {
    const s = await Session.open({ repo, home, layers: { commands: null } });
    id = s.id;
    assert.equal((await s.run(['true'])).status, 0);
    await s.stop('test');
  } finally {
    delete process.env.AIRLOCK_DATABASE_URL;
    await cluster.start();
  }
  assert.deepEqual(await sessionTypes(id), []);
  const store = new AuditStore(join(home, 'audit.db'));
  const c = new pg.Client({ connectionString: cluster.url('host_writer') });
  await c.connect();
  try {
    await shipOnce(store, c, { keyDir: join(home, 'keys') });
    assert.deepEqual(
      await sessionTypes(id),
      store.query({ session: id }).map((e) => e.type),
    );
  } finally {
    await c.end();
    store.close();
    cleanup(home, repo);
  }
});

test("the org policy's telemetry.sharedStore makes sessions ship without AIRLOCK_DATABASE_URL", async () => {
  const home = tmp('airlock-home-');
  const repo = makeRepo();
  const org = join(home, 'org.yaml');
  writeFileSync(org, `telemetry:\n  sharedStore: ${cluster.url('host_writer')}\n`);
  delete process.env.AIRLOCK_DATABASE_URL;
  try {
    const s = await Session.open({ repo, home, orgPolicy: org, layers: { commands: null } });
    await s.stop('test');
    assert.ok((await sessionTypes(s.id)).includes('session.start'));
  } finally {
    cleanup(home, repo);
  }
});
