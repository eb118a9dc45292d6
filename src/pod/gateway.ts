import { lstatSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError, type AuditEventInput } from '../common/index.ts';
import { AuditStore } from '../audit/index.ts';
import { readPolicyFile, resolvePolicy } from '../policy/index.ts';
import { prepareCredentials, startGateway, type Gateway, type PreparedCredentials } from '../egress/index.ts';
import { POD_SHARED_CA, POD_SHARED_ENV } from './protocol.ts';

// `airlock pod gateway`: the gateway sidecar of a session pod. The same egress gateway as a
// local session (src/egress), listening on the pod's loopback (the agent container shares
// it, and reaches nothing else), with the session's policy and the brokered credentials
// read from files mounted into this container only. Every event goes to a hash-chained
// audit store on this container's own volume; with a shared store configured (--database,
// AIRLOCK_DATABASE_URL, or the policy's telemetry.sharedStore), a shipper copies it there as
// each host's log is copied.

export interface PodGatewayOptions {
  session: string;
  listen: { host: string; port: number };
  policyFile: string;
  credentialsDir: string;
  /** the gateway's own data (CA, audit store): a volume of this container only */
  home: string;
  /** the shared store (`--database`); AIRLOCK_DATABASE_URL, then the policy's telemetry.sharedStore, when absent */
  databaseUrl?: string;
  /** mounted read-only into the agent container: where the placeholders and the CA bundle are published */
  sharedDir?: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_CREDENTIAL_BYTES = 64 * 1024;

/** Brokered credentials from the mounted Secret: one regular file per variable (Kubernetes' `..data` links resolved by name). */
export function readCredentialFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.filter((n) => ENV_NAME.test(n))) {
    const path = join(dir, name);
    // a Secret volume's files are links into its ..data directory: read them, but only small regular files
    const size = lstatSync(path).isSymbolicLink() ? null : lstatSync(path).size;
    const text = readFileSync(path);
    if ((size ?? text.length) > MAX_CREDENTIAL_BYTES) continue;
    out[name] = text.toString('utf8').replace(/\r?\n$/, '');
  }
  return out;
}

/** Written whole or not at all: the agent container reads it at every command. */
function writeAtomic(path: string, data: string | Buffer): void {
  writeFileSync(`${path}.tmp`, data, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
}

/**
 * Publishes what the agent's commands need of this gateway (before it listens): its brokered
 * placeholders and its CA bundle, public values; the real credentials stay in this container.
 */
function publishForAgent(dir: string, prep: PreparedCredentials): void {
  const bundle = join(dir, POD_SHARED_CA);
  writeAtomic(bundle, readFileSync(prep.caBundlePath));
  const env = Object.fromEntries(
    Object.entries(prep.sandboxEnv).map(([k, v]) => [k, v === prep.caBundleSandboxPath ? bundle : v]),
  );
  writeAtomic(join(dir, POD_SHARED_ENV), JSON.stringify(env));
}

export interface RunningPodGateway {
  gateway: Gateway;
  store: AuditStore;
  close(): Promise<void>;
}

/** Starts the sidecar's gateway; fails closed (throws) when the policy or a credential cannot be read. */
export async function startPodGateway(o: PodGatewayOptions): Promise<RunningPodGateway> {
  const policy = resolvePolicy([readPolicyFile(o.policyFile, 'org')]).policy;
  const store = new AuditStore(join(o.home, 'audit.db'));
  const audit = (e: AuditEventInput) => {
    store.append({ ...e, session: e.session ?? o.session });
  };
  let shipper: { stop(): Promise<unknown> } | null = null;
  try {
    const prep = await prepareCredentials(policy, readCredentialFiles(o.credentialsDir), o.session, o.home);
    if (o.sharedDir) publishForAgent(o.sharedDir, prep);
    const gateway = await startGateway({ ...prep.gateway, session: o.session, policy, listen: o.listen, audit });
    // the shared store found as every entry point finds it (--database, AIRLOCK_DATABASE_URL, the
    // policy's telemetry.sharedStore: the session's policy, whose value only the org may set);
    // its module and PostgreSQL's client load only when one of them names a store
    const orgSetting = policy.telemetry.sharedStore ?? null;
    if (o.databaseUrl || process.env.AIRLOCK_DATABASE_URL || orgSetting) {
      const { sharedStoreUrl, startShipper } = await import('../store/index.ts');
      const url = sharedStoreUrl({ flag: o.databaseUrl, orgSetting });
      if (url) shipper = startShipper(store, url, { keyDir: join(o.home, 'keys') });
    }
    return {
      gateway,
      store,
      async close() {
        await gateway.close();
        await shipper?.stop();
        store.close();
      },
    };
  } catch (e) {
    store.close();
    if (e instanceof AirlockError) throw e;
    throw new AirlockError(
      'UNAVAILABLE',
      `the pod gateway could not start: ${String(e)}`,
      'check the mounted policy and credentials',
    );
  }
}
