import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { approverKeysYaml } from './approvers.ts';
import { BIN, tmp } from '../helpers.ts';
import { gitHttpServer, makeRemote, setup, type Env, type GitHttp } from '../review/fixture.ts';
import type { PgCluster } from './pg-cluster.ts';

// Two hosts of one org (two AIRLOCK_HOMEs, one org policy naming the shared store, trusting both
// hosts' keys for decisions across hosts, and a real git remote for apply), and the CLI run as each with NO AIRLOCK_DATABASE_URL: the org policy
// alone must lead every entry point to the shared store.

export interface TwoHosts {
  a: Env;
  b: Env;
  srv: GitHttp;
  remote: string;
  done: () => Promise<void>;
}

export async function twoHosts(cluster: PgCluster): Promise<TwoHosts> {
  const root = tmp('airlock-remote-');
  const srv = await gitHttpServer(root);
  const org = `review:\n  approvals:\n    required: 1\n  apply:\n    remote: ${srv.url}/remote.git\ntelemetry:\n  sharedStore: ${JSON.stringify(cluster.url('host_writer'))}\n`;
  const a = setup(org);
  const b = setup(org);
  // decisions either host records are signed with its audit key; the org trusts both keys
  const trusted =
    org +
    approverKeysYaml([
      { name: 'host-a', home: a.home },
      { name: 'host-b', home: b.home },
    ]);
  for (const h of [a, b]) writeFileSync(h.orgPolicy, trusted);
  return {
    a,
    b,
    srv,
    remote: makeRemote(a, root),
    done: async () => {
      a.done();
      b.done();
      await srv.close();
    },
  };
}

/** A host's environment: its home and its org policy. */
export function envOf(h: Env): Record<string, string> {
  return { AIRLOCK_HOME: h.home, AIRLOCK_ORG_POLICY: h.orgPolicy };
}

/** `airlock ARGS` as host `h`, without AIRLOCK_DATABASE_URL. */
export function airlockAs(h: Env, args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, ...envOf(h) };
  delete env.AIRLOCK_DATABASE_URL;
  return spawnSync(BIN, args, { env, encoding: 'utf8', timeout: 60_000 });
}
