// The pod's gateway sidecar (`airlock pod gateway`, src/pod/gateway.ts) shipping its events to
// the shared store: a real PostgreSQL cluster (test/store/pg-cluster.ts). The sidecar runs here
// on the host, not in the runsc pod of pod.test.ts: gVisor would need a host socket opened for
// the collector, which is the cluster's network policy's job, not the sidecar's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPodGateway } from '../../src/pod/index.ts';
import { airlock, cleanup, tmp } from '../helpers.ts';
import { sharedStoreCluster, type PgCluster } from '../store/pg-cluster.ts';

/** One proxied GET through the gateway at `address` (host:port); the status it answers. */
function proxiedGet(address: string, url: string): Promise<number> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: url, headers: { host: new URL(url).host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('airlock pod gateway with a shared store (real PostgreSQL)', () => {
  let cluster: PgCluster;
  let home: string;
  before(async () => {
    cluster = await sharedStoreCluster();
    home = tmp('airlock-pod-gateway-');
    mkdirSync(join(home, 'credentials'));
  });
  /** The sidecar of session sbx-`name` with the policy file `policy` (its own data dir; no credentials). */
  const gateway = (name: string, policy: string, databaseUrl?: string) =>
    startPodGateway({
      session: `sbx-${name}`,
      listen: { host: '127.0.0.1', port: 0 },
      policyFile: policy,
      credentialsDir: join(home, 'credentials'),
      home: join(home, `gateway-${name}`),
      databaseUrl,
    });
  after(async () => {
    await cluster?.stop();
    cleanup(home);
  });

  it('records a refusal in its own store and ships it to the shared store; a bad policy file stops it before it listens', async () => {
    const policy = join(home, 'airlock.yaml');
    writeFileSync(policy, 'egress:\n  allow:\n    - host: allowed.example\n');
    const gw = await gateway('ship', policy, cluster.url('host_writer'));
    let closed = false;
    try {
      assert.equal(await proxiedGet(gw.gateway.address, 'http://denied.example/'), 403);
      await gw.close();
      closed = true;
      const rows = await cluster.sql<{ decision: string; rule: string }>(
        "SELECT decision, rule FROM airlock.events WHERE session = 'sbx-ship' AND type = 'egress.request'",
      );
      assert.deepEqual(rows, [{ decision: 'deny', rule: 'egress.default-deny' }]);
    } finally {
      if (!closed) await gw.close();
    }
    writeFileSync(policy, 'egress:\n  allow: 7\n');
    await assert.rejects(gateway('bad', policy), (e: Error & { kind?: string }) => e.kind === 'POLICY_INVALID');
  });

  it('with no --database, ships to the store its policy names (telemetry.sharedStore), as every entry point finds it', async () => {
    const policy = join(home, 'with-store.yaml');
    writeFileSync(policy, `telemetry:\n  sharedStore: ${cluster.url('host_writer')}\negress:\n  allow: []\n`);
    const gw = await gateway('org-store', policy);
    try {
      assert.equal(await proxiedGet(gw.gateway.address, 'http://denied.example/'), 403);
    } finally {
      await gw.close();
    }
    const rows = await cluster.sql<{ decision: string }>(
      "SELECT decision FROM airlock.events WHERE session = 'sbx-org-store' AND type = 'egress.request'",
    );
    assert.deepEqual(rows, [{ decision: 'deny' }]);
  });
});

describe('airlock pod exec with a malformed request', () => {
  it('is a usage error (exit 64) naming the problem, never a stack', () => {
    const home = tmp('airlock-pod-exec-');
    try {
      for (const bad of [
        '!!!',
        Buffer.from('{"argv":[],"cwd":"/"}').toString('base64url'),
        Buffer.from('null').toString('base64url'),
      ]) {
        const r = airlock(['pod', 'exec', bad], { home });
        assert.equal(r.status, 64, r.stderr);
        assert.match(r.stderr, /not an exec request/);
        assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
      }
    } finally {
      cleanup(home);
    }
  });
});
