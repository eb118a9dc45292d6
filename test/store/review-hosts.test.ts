// `airlock review list` on any host shows every host's proposals once they are shipped: a
// proposal made on host A (real checks, real result repo) is listed on host B with its host,
// state, size and findings; its approval on A shows on B after the next ship.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BIN, tmp } from '../helpers.ts';
import { agentSession, runCli, setup } from '../review/fixture.ts';
import { type PgCluster, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
before(async () => {
  cluster = await sharedStoreCluster();
});
after(async () => {
  await cluster?.stop();
});

interface Listed {
  ref?: string;
  host?: string;
  session: string;
  state: string;
  approvers?: string[];
  findingCount?: number;
}

test('a proposal made on host A is listed by `airlock review list` on host B, and its approval follows', async () => {
  const a = setup('review:\n  approvals:\n    required: 1\n');
  const b = tmp('airlock-host-b-');
  const url = cluster.url('host_writer');
  try {
    agentSession(a, 's-a1', { 'src/feature.js': 'module.exports = 42;\n' });
    const envA = { AIRLOCK_HOME: a.home, AIRLOCK_ORG_POLICY: a.orgPolicy, AIRLOCK_DATABASE_URL: url };
    const proposed = await runCli(['propose', 's-a1', '--json'], envA);
    assert.equal(proposed.code, 0, proposed.stderr);
    const ship = () =>
      spawnSync(BIN, ['audit', 'ship'], { env: { ...process.env, ...envA }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(ship().status, 0);
    const listOnB = () => {
      const r = spawnSync(BIN, ['review', 'list', '--json'], {
        env: { ...process.env, AIRLOCK_HOME: b, AIRLOCK_DATABASE_URL: url },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as Listed[]).find((p) => p.session === 's-a1');
    };
    const seen = listOnB();
    assert.ok(seen?.ref && /^1@[0-9a-f]{8}$/.test(seen.ref), JSON.stringify(seen));
    assert.equal(seen.state, 'pending');
    const approve = await runCli(['review', 'approve', '1', '--as', 'alice@example.com'], envA);
    assert.equal(approve.code, 0, approve.stdout + approve.stderr);
    assert.equal(ship().status, 0);
    const after = listOnB();
    assert.equal(after?.state, 'approved');
    assert.deepEqual(after?.approvers, ['alice@example.com']);
    const plain = spawnSync(BIN, ['review', 'list'], {
      env: { ...process.env, AIRLOCK_HOME: b, AIRLOCK_DATABASE_URL: url },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.match(plain.stdout, /host\s+id\s+session[\s\S]*1@[0-9a-f]{8}\s+s-a1\s+approved/);
  } finally {
    a.done();
  }
});
