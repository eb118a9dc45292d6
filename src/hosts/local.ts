import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { DEFAULT_ORG_POLICY } from '../common/index.ts';
import { logId, type AuditStore } from '../audit/index.ts';
import { listSessions } from '../session/client.ts';
import type { HostSession } from './view.ts';

// This host's part of the work view, kept light: `airlock sessions` without a shared store
// loads neither the policy engine nor PostgreSQL's client (a light entry, see
// .dependency-cruiser.cjs), and lists in the same shape the shared view does.

/** Whether a shared store may be configured: only then is the full work view worth loading. */
export function sharedStorePossible(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.AIRLOCK_DATABASE_URL || env.AIRLOCK_ORG_POLICY) || existsSync(DEFAULT_ORG_POLICY);
}

/** This host's sessions, each marked as this host's. */
export function localSessions(store: AuditStore): HostSession[] {
  const here = { host: hostname(), logId: logId(store), thisHost: true };
  return listSessions(store).map((s) => ({ ...s, ...here, ref: s.id }));
}
