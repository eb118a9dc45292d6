// One rule for where the shared store is (issue 18): `--database`, else AIRLOCK_DATABASE_URL, else
// the org policy's telemetry.sharedStore, for every entry point (src/store/connect.ts
// sharedStoreUrl). A real PostgreSQL; the CLI as a user runs it, with a home of its own.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore, logId as logIdOf } from '../../src/audit/index.ts';
import { airlock, tmp } from '../helpers.ts';
import { type PgCluster, sharedStoreCluster } from './pg-cluster.ts';

let cluster: PgCluster;
let home: string;
let logId: string;
const policies = tmp('airlock-org-url-');
before(async () => {
  cluster = await sharedStoreCluster();
  home = tmp('airlock-host-url-');
  const store = new AuditStore(join(home, 'audit.db'));
  for (let i = 0; i < 3; i++)
    store.append({ type: 'test.event', session: 's1', severity: 'info', decision: null, rule: null, data: { i } });
  logId = logIdOf(store);
  store.close();
});
after(async () => {
  await cluster?.stop();
});

/** An org policy file holding `yaml`; its path. */
function orgPolicy(name: string, yaml: string): string {
  const path = join(policies, name);
  writeFileSync(path, yaml);
  return path;
}

/** The CLI with only what `env` names: no AIRLOCK_DATABASE_URL unless given. */
const cli = (args: string[], env: Record<string, string>) =>
  airlock(args, { home, env: { AIRLOCK_DATABASE_URL: '', ...env } });

const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at .*\.ts:\d+/);

test('with only the org policy naming the store (no flag, no environment), `audit ship`, `db status` and `audit verify` reach it', () => {
  const org = orgPolicy('org.yaml', `telemetry:\n  sharedStore: ${cluster.url('host_writer')}\n`);
  const shipped = cli(['audit', 'ship', '--json'], { AIRLOCK_ORG_POLICY: org });
  assert.equal(shipped.status, 0, shipped.stderr);
  const status = cli(['db', 'status', '--json'], { AIRLOCK_ORG_POLICY: org });
  assert.equal(status.status, 0, status.stderr);
  const hosts = (JSON.parse(status.stdout) as { hosts: { logId: string; events: number }[] }).hosts;
  assert.deepEqual(
    hosts.map((h) => [h.logId, h.events > 0]),
    [[logId, true]],
    "db status reads the org policy's store, which holds this host's log",
  );
  const verify = cli(['audit', 'verify', '--json'], { AIRLOCK_ORG_POLICY: org });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  const r = JSON.parse(verify.stdout) as { ok: boolean; hosts: { logId: string }[] };
  assert.deepEqual(
    [r.ok, r.hosts.map((h) => h.logId)],
    [true, [logId]],
    'verify checked the shared store, not audit.db',
  );
});

test('a bad URL in the org policy: exit 65 naming the file, line and key, no stack, for every entry point', () => {
  const org = orgPolicy('bad.yaml', 'telemetry:\n  sharedStore: mysql://db.example.com/audit\n');
  for (const args of [['db', 'status'], ['db', 'migrate'], ['audit', 'verify'], ['audit', 'ship'], ['sessions']]) {
    const r = cli(args, { AIRLOCK_ORG_POLICY: org });
    assert.equal(r.status, 65, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${org.replaceAll('.', '\\.')}:2:\\d+: telemetry\\.sharedStore: a postgres://`));
    noStack(r.stderr);
  }
});

test('precedence: --database over AIRLOCK_DATABASE_URL over the org policy; a bad one is named by where it came from', () => {
  const org = orgPolicy('org2.yaml', `telemetry:\n  sharedStore: ${cluster.url('host_writer')}\n`);
  // a store nobody listens on: the environment wins over the org policy, so this fails to connect (69)
  const nowhere = `postgres://host_writer@/postgres?host=${encodeURIComponent(join(policies, 'no-socket'))}`;
  const envWins = cli(['db', 'status'], { AIRLOCK_ORG_POLICY: org, AIRLOCK_DATABASE_URL: nowhere });
  assert.equal(envWins.status, 69, envWins.stdout + envWins.stderr);
  assert.match(envWins.stderr, /cannot reach the shared store/);
  noStack(envWins.stderr);
  const flagWins = cli(['db', 'status', '--database', cluster.url('host_writer')], {
    AIRLOCK_ORG_POLICY: org,
    AIRLOCK_DATABASE_URL: nowhere,
  });
  assert.equal(flagWins.status, 0, flagWins.stderr);
  const badEnv = cli(['audit', 'verify'], { AIRLOCK_ORG_POLICY: org, AIRLOCK_DATABASE_URL: 'mysql://db/audit' });
  assert.equal(badEnv.status, 64, badEnv.stderr);
  assert.match(badEnv.stderr, /AIRLOCK_DATABASE_URL: the shared store URL must start with postgres:\/\//);
  noStack(badEnv.stderr);
  const badFlag = cli(['db', 'status', '--database', 'db.example.com/audit'], { AIRLOCK_ORG_POLICY: org });
  assert.equal(badFlag.status, 64, badFlag.stderr);
  assert.match(badFlag.stderr, /--database: the shared store URL must start with postgres:\/\//);
});

test('`db add-host` gives a host its own login role: a writer whose rows the server stamps with it, and nothing more', async () => {
  const owner = cluster.url('postgres');
  const made = cli(['db', 'add-host', 'airlock_host_web1', '--database', owner], {});
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /created.*airlock_host_web1/);
  await cluster.sql(
    'INSERT INTO airlock.hosts (log_id, hostname) VALUES ($1, $2)',
    ['log-web1', 'web1'],
    'airlock_host_web1',
  );
  const [row] = await cluster.sql<{ written_by: string }>(
    "INSERT INTO airlock.answers (log_id, ask_id, decision, by, reason) VALUES ('log-web1', 1, 'allow', 'x', 'x') RETURNING written_by",
    [],
    'airlock_host_web1',
  );
  assert.equal(row!.written_by, 'airlock_host_web1');
  await assert.rejects(
    cluster.sql("UPDATE airlock.answers SET decision = 'deny'", [], 'airlock_host_web1'),
    /permission denied/,
  );
  const again = cli(['db', 'add-host', 'airlock_host_web1', '--database', owner], {});
  assert.equal(again.status, 75, again.stderr);
  assert.match(again.stderr, /already exists/);
  const hostile = cli(['db', 'add-host', 'web1"; DROP SCHEMA airlock CASCADE; --', '--database', owner], {});
  assert.equal(hostile.status, 64, hostile.stderr);
  assert.match(hostile.stderr, /is not a host role name/);
  noStack(hostile.stderr);
  const asWriter = cli(['db', 'add-host', 'airlock_host_web2', '--database', cluster.url('host_writer')], {});
  assert.equal(asWriter.status, 69, 'a host cannot mint roles: only the owner can');
  assert.match(asWriter.stderr, /permission denied/);
  noStack(asWriter.stderr);
});
