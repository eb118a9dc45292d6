import type { DatabaseSync } from 'node:sqlite';
import { AirlockError } from '../common/index.ts';

// The schema of the audit database, in one versioned list. Every module's tables live in
// this one file (the event chain and kv, checkpoints, sink cursors, proposals and their
// decisions, command asks and answers, detection profiles), so the database has one
// version (SQLite's PRAGMA user_version) and one place that says how it got there. The
// modules keep their queries and reach their tables through `AuditStore.tables` only.
//
// Rules for a new migration: append, never edit a released one; one transaction applies
// every pending step (DDL is transactional in SQLite and PostgreSQL), so a failed step
// leaves the database at the version it had.

export interface Migration {
  version: number;
  /** one line: what this step adds and why */
  what: string;
  sql: string;
}

const APPEND_ONLY = (table: string, what = 'append-only') => `
CREATE TRIGGER IF NOT EXISTS ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, '${what}: update refused'); END;
CREATE TRIGGER IF NOT EXISTS ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, '${what}: delete refused'); END;`;

// Version 1 is the schema the modules used to create ad hoc (CREATE … IF NOT EXISTS), so a
// database written before versions existed (user_version 0) is brought to 1 without loss.
const V1 = `
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  ts TEXT NOT NULL,
  type TEXT NOT NULL,
  session TEXT,
  severity TEXT NOT NULL,
  decision TEXT,
  rule TEXT,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(session, seq);
CREATE INDEX IF NOT EXISTS events_type ON events(type, seq);
${APPEND_ONLY('events', 'audit log is append-only')}
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
  id INTEGER PRIMARY KEY,
  size INTEGER NOT NULL,
  root TEXT NOT NULL,
  ts TEXT NOT NULL,
  reason TEXT NOT NULL,
  log_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL,
  frontier TEXT NOT NULL
);
${APPEND_ONLY('audit_checkpoints', 'audit checkpoints are append-only')}

CREATE TABLE IF NOT EXISTS sink_state (
  name TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  cursor INTEGER NOT NULL DEFAULT 0,
  delivered INTEGER NOT NULL DEFAULT 0,
  last_ok_at TEXT,
  last_error TEXT,
  last_error_at TEXT,
  failures INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS review_proposals (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session TEXT NOT NULL,
  hash TEXT NOT NULL,
  created TEXT NOT NULL,
  result_repo TEXT NOT NULL,
  base TEXT NOT NULL,
  head TEXT NOT NULL,
  commits TEXT NOT NULL,
  diff_sha256 TEXT NOT NULL,
  repo TEXT,
  base_ref TEXT,
  started_by TEXT,
  policy_hash TEXT NOT NULL,
  policy TEXT NOT NULL,
  findings TEXT NOT NULL,
  stats TEXT NOT NULL,
  UNIQUE (session, hash)
);
CREATE TABLE IF NOT EXISTS review_decisions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  proposal_id INTEGER NOT NULL REFERENCES review_proposals(id),
  kind TEXT NOT NULL CHECK (kind IN ('approve', 'reject', 'apply', 'apply_failed')),
  by TEXT,
  by_source TEXT,
  proposal_hash TEXT NOT NULL,
  reason TEXT,
  override INTEGER NOT NULL DEFAULT 0,
  data TEXT NOT NULL DEFAULT '{}',
  ts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_decisions_p ON review_decisions(proposal_id, seq);
${APPEND_ONLY('review_proposals')}
${APPEND_ONLY('review_decisions')}

CREATE TABLE IF NOT EXISTS command_asks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session TEXT NOT NULL,
  command TEXT NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  created TEXT NOT NULL,
  expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command_answers (
  ask_id INTEGER PRIMARY KEY REFERENCES command_asks(id),
  decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
  kind TEXT NOT NULL CHECK (kind IN ('human', 'prompt', 'timeout')),
  by TEXT,
  reason TEXT NOT NULL,
  ts TEXT NOT NULL
);
${APPEND_ONLY('command_asks')}
${APPEND_ONLY('command_answers')}

CREATE TABLE IF NOT EXISTS detect_profiles (
  session TEXT PRIMARY KEY,
  agent TEXT NOT NULL,
  started TEXT NOT NULL,
  metrics TEXT NOT NULL,
  sets TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS detect_profiles_agent ON detect_profiles(agent, started);
`;

// Version 2 (issue 17): an allow answer names its scope. A destination allowed 'once' lets
// one connection through, 'session' grants it for the rest of the session; a command ask
// always allows one run ('once'). NULL: a deny, or an answer given before scopes existed.
const V2 = `
ALTER TABLE command_answers ADD COLUMN scope TEXT CHECK (scope IS NULL OR scope IN ('once', 'session'));
`;

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'the tables of the event chain, checkpoints, sinks, review, command asks and detection',
    sql: V1,
  },
  { version: 2, what: 'the scope of an allow answer (once or for the session)', sql: V2 },
];

/** The version a list brings a database to. */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.reduce((m, x) => Math.max(m, x.version), 0);
}

/** The steps after `current`, in order; refuses a database newer than this Airlock knows. */
export function pendingMigrations(migrations: readonly Migration[], current: number, where: string): Migration[] {
  const latest = latestVersion(migrations);
  if (current > latest) {
    throw new AirlockError(
      'BAD_STATE',
      `${where} has schema version ${current}, newer than this Airlock knows (${latest})`,
      'a newer Airlock wrote it: upgrade Airlock on this host; never point an older one at it (it would miss what the newer schema records)',
    );
  }
  return [...migrations].filter((m) => m.version > current).sort((a, b) => a.version - b.version);
}

const userVersion = (db: DatabaseSync): number =>
  Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);

/**
 * Brings an SQLite database to the latest version of `migrations` in one IMMEDIATE
 * transaction (concurrent openers wait; the second finds nothing to do). Returns the version.
 */
export function migrateSqlite(
  db: DatabaseSync,
  where: string,
  migrations: readonly Migration[] = SQLITE_MIGRATIONS,
): number {
  // read outside the transaction first: a newer database is refused without taking the write lock
  if (pendingMigrations(migrations, userVersion(db), where).length === 0) return userVersion(db);
  db.exec('BEGIN IMMEDIATE');
  try {
    const steps = pendingMigrations(migrations, userVersion(db), where);
    for (const m of steps) {
      db.exec(m.sql);
      db.exec(`PRAGMA user_version = ${Math.trunc(m.version)}`);
    }
    db.exec('COMMIT');
  } catch (e) {
    if (db.isTransaction) {
      try {
        db.exec('ROLLBACK');
      } catch {
        /* already rolled back */
      }
    }
    throw e;
  }
  return userVersion(db);
}
