import { existsSync } from 'node:fs';
import pg from 'pg';
import { AirlockError } from '../common/index.ts';
import { DEFAULT_ORG_POLICY, type Policy, readPolicyFile, resolvePolicy } from '../policy/index.ts';
import { type TrustedApprover, trustedApprovers } from './decisions.ts';

// Where the shared store is: --database, else AIRLOCK_DATABASE_URL, else the org policy's
// telemetry.sharedStore (sharedStoreUrl). Without any, SQLite (AIRLOCK_HOME/audit.db) is the
// whole store, as before.

/** `url` when it is a postgres:// URL; otherwise a usage error naming where it came from. */
function checkedUrl(url: string, source: string): string {
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new AirlockError(
      'USAGE',
      `${source}: the shared store URL must start with postgres:// or postgresql://`,
      `fix ${source}: postgres://USER@HOST/DB (or ?host=/socket/dir); no password in it (PGPASSWORD or ~/.pgpass)`,
    );
  return url;
}

/** --database, else AIRLOCK_DATABASE_URL (checked); undefined when neither names a store. */
export function databaseUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flag) return checkedUrl(flag, '--database');
  return env.AIRLOCK_DATABASE_URL ? checkedUrl(env.AIRLOCK_DATABASE_URL, 'AIRLOCK_DATABASE_URL') : undefined;
}

/**
 * The one resolution every entry point uses (sessions, CLI listings, the SDK): --database, else
 * AIRLOCK_DATABASE_URL, else the org policy's telemetry.sharedStore. `orgSetting` is that
 * setting when the caller already holds the resolved policy (a session); otherwise the org
 * policy file (AIRLOCK_ORG_POLICY, else /etc/airlock/policy.yaml) is read for it. Only the org
 * policy is read: a repo, the agent included, must not choose where the audit stream goes.
 */
export function sharedStoreUrl(
  o: { flag?: string; orgSetting?: string | null; env?: NodeJS.ProcessEnv } = {},
): string | undefined {
  const env = o.env ?? process.env;
  const direct = databaseUrl(o.flag, env);
  if (direct) return direct;
  const org = o.orgSetting !== undefined ? o.orgSetting : orgTelemetry(env)?.sharedStore;
  return org ? checkedUrl(org, "the org policy's telemetry.sharedStore") : undefined;
}

/** The org policy's telemetry section (AIRLOCK_ORG_POLICY, else /etc/airlock/policy.yaml when it exists). */
function orgTelemetry(env: NodeJS.ProcessEnv): Policy['telemetry'] | undefined {
  const path = env.AIRLOCK_ORG_POLICY || DEFAULT_ORG_POLICY;
  if (!env.AIRLOCK_ORG_POLICY && !existsSync(path)) return undefined;
  return resolvePolicy([readPolicyFile(path, 'org')]).policy.telemetry;
}

/**
 * The keys trusted to sign decisions given on other hosts: the org policy's
 * telemetry.approverKeys (`orgSetting` when the caller holds the resolved policy). Only the org
 * policy, never the repo's and never keys found in the shared store.
 */
export function approverTrust(
  o: { orgSetting?: Policy['telemetry']['approverKeys']; env?: NodeJS.ProcessEnv } = {},
): TrustedApprover[] {
  return trustedApprovers(o.orgSetting ?? orgTelemetry(o.env ?? process.env)?.approverKeys ?? []);
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

/** A connected client; UNAVAILABLE (exit 69) with the reason when PostgreSQL cannot be reached. */
export async function connectShared(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  c.on('error', () => {
    /* a dropped connection fails the next query, which reports it */
  });
  try {
    await c.connect();
  } catch (e) {
    throw new AirlockError(
      'UNAVAILABLE',
      `cannot reach the shared store ${redactedUrl(url)}: ${e instanceof Error ? e.message : String(e)}`,
      'check that PostgreSQL runs and AIRLOCK_DATABASE_URL is right; events stay spooled in the local audit.db meanwhile',
    );
  }
  return c;
}

/** A PostgreSQL error (permission, constraint, lost connection) as the user's error: message, hint, exit 69. */
export function sharedStoreError(e: unknown, url: string): unknown {
  if (e instanceof AirlockError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' && !/connect|terminat|Connection/i.test(e.message)) return e;
  const hint =
    code === '42501'
      ? 'the role in AIRLOCK_DATABASE_URL lacks a grant: hosts log in as a member of airlock_writer, `airlock db migrate` runs as the owner'
      : 'check that PostgreSQL runs and AIRLOCK_DATABASE_URL is right; events stay spooled in the local audit.db meanwhile';
  return new AirlockError('UNAVAILABLE', `the shared store ${redactedUrl(url)}: ${e.message}`, hint);
}

/** Connects, runs `fn`, always closes; PostgreSQL errors become AirlockErrors. */
export async function withSharedStore<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connectShared(url);
  try {
    return await fn(c);
  } catch (e) {
    throw sharedStoreError(e, url);
  } finally {
    await c.end().catch(() => {
      /* already closed */
    });
  }
}
