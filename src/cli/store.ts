import { existsSync } from 'node:fs';
import { AirlockError, ensureHome, homeLayout } from '../common/index.ts';
import { AuditStore } from '../audit/index.ts';

// The audit database the CLI's commands read and write (AIRLOCK_HOME/audit.db).

export function auditDbPath(): string {
  return homeLayout().auditDb;
}

/** For reading the log: refuses (NOT_FOUND) when there is none yet, unless told not to. */
export function openStore(mustExist = true): AuditStore {
  const p = auditDbPath();
  if (mustExist && !existsSync(p))
    throw new AirlockError(
      'NOT_FOUND',
      `no audit log at ${p}`,
      'run a session first, or set AIRLOCK_HOME to the data dir that holds audit.db',
    );
  return new AuditStore(p);
}

/** For commands that answer or record (approvals, review): creates the data dir if needed. */
export function openOrCreateStore(): AuditStore {
  return new AuditStore(ensureHome().auditDb);
}
