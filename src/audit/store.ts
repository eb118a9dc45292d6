import {
  DatabaseSync,
  constants as sqlite,
  type SQLInputValue,
  type SQLOutputValue,
  type StatementResultingChanges,
  type StatementSync,
} from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalJson, cannotRecord, isRecordingFailure, makePrivateFile } from '../common/index.ts';
import {
  type AuditEvent,
  type AuditEventInput,
  GENESIS_HASH,
  chainHashFast,
  eventBodyFromParts,
  newEventId,
} from './event.ts';
import { redactEventInput, redactSqlParams } from './redact.ts';
import { migrateSqlite } from './schema.ts';
import type { RowArr as RawEventRow } from './verify-range.ts';

// Append-only, hash-chained event store in SQLite. One chain across all sessions, so a
// deleted session is as detectable as a deleted event. Writers in several processes
// serialize through BEGIN IMMEDIATE; the triggers make UPDATE/DELETE fail at the engine.
//
// Guarantees that do not depend on the caller: every event is redacted here, whichever
// module appends it; the database handle is private, and other modules' tables (approval
// queue, sink cursors, proposals, profiles, checkpoints) are reached through `tables`,
// whose statements cannot write the event chain and whose string parameters are redacted
// too; its schema is versioned (schema.ts: one list of migrations for every module's
// tables, PRAGMA user_version); the file, its WAL and shared memory are 0600; a commit is fsynced (synchronous=FULL)
// before append returns.

export interface EventQuery {
  session?: string;
  type?: string; // exact, or prefix ending with '*'
  afterSeq?: number;
  limit?: number;
}

interface Row {
  seq: number;
  id: string;
  ts: string;
  type: string;
  session: string | null;
  severity: string;
  decision: string | null;
  rule: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

export function rowToEvent(r: Row): AuditEvent {
  return {
    seq: r.seq,
    id: r.id,
    ts: r.ts,
    type: r.type,
    session: r.session,
    severity: r.severity as AuditEvent['severity'],
    decision: r.decision as AuditEvent['decision'],
    rule: r.rule,
    data: JSON.parse(r.data) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** An event row as stored, in column order (what a shipper copies byte for byte). */
export type { RowArr as RawEventRow } from './verify-range.ts';

export type AppendListener = (e: AuditEvent) => void;

/** A statement over the audit database: what the other modules' tables need, nothing more. */
export interface TableStatement {
  run(...params: SQLInputValue[]): StatementResultingChanges;
  get(...params: SQLInputValue[]): Record<string, SQLOutputValue> | undefined;
  all(...params: SQLInputValue[]): Record<string, SQLOutputValue>[];
  iterate(...params: SQLInputValue[]): Iterator<Record<string, SQLOutputValue>>;
  setReturnArrays(enabled: boolean): void;
}

/** SQL for a module's own tables in the audit database (never a write to the event chain). */
export interface AuditTables {
  exec(sql: string): void;
  prepare(sql: string): TableStatement;
  readonly isTransaction: boolean;
}

/** Durability of a commit: FULL fsyncs the WAL at every commit (see docs/benchmarks.md). */
export type AuditSync = 'FULL' | 'NORMAL';

// Tables only the store writes: the chain and its key-value side (log id, namespaces).
const STORE_TABLES = new Set(['events', 'kv']);
const WRITES = new Set([
  sqlite.SQLITE_INSERT,
  sqlite.SQLITE_UPDATE,
  sqlite.SQLITE_DELETE,
  sqlite.SQLITE_DROP_TABLE,
  sqlite.SQLITE_ALTER_TABLE,
  sqlite.SQLITE_CREATE_TRIGGER,
  sqlite.SQLITE_DROP_TRIGGER,
  sqlite.SQLITE_CREATE_INDEX,
  sqlite.SQLITE_DROP_INDEX,
]);
const NEVER = new Set([sqlite.SQLITE_ATTACH, sqlite.SQLITE_DETACH, sqlite.SQLITE_PRAGMA, sqlite.SQLITE_CREATE_VTABLE]);

/** SQLite authorizer for `tables` statements: reads anywhere, writes only outside the store's own tables. */
function tablesAuthorizer(action: number, a1: string | null, a2: string | null): number {
  if (NEVER.has(action)) return sqlite.SQLITE_DENY;
  if (!WRITES.has(action)) return sqlite.SQLITE_OK;
  // the table is a1 for row writes and DROP TABLE, a2 for ALTER TABLE and trigger/index DDL
  const table =
    action === sqlite.SQLITE_INSERT ||
    action === sqlite.SQLITE_UPDATE ||
    action === sqlite.SQLITE_DELETE ||
    action === sqlite.SQLITE_DROP_TABLE
      ? a1
      : a2;
  return table !== null && STORE_TABLES.has(table.toLowerCase()) ? sqlite.SQLITE_DENY : sqlite.SQLITE_OK;
}

export class AuditStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #last: StatementSync;
  readonly #listeners = new Set<AppendListener>();
  /** Other modules' tables in this database (approval queue, sink cursors, proposals…). */
  readonly tables: AuditTables;

  constructor(path: string, opts: { sync?: AuditSync } = {}) {
    this.path = path;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // SQLite gives -wal and -shm the database file's mode, so 0600 here covers all three.
      makePrivateFile(path);
      this.#db = new DatabaseSync(path, { timeout: 10_000 });
      this.#db.exec(`PRAGMA journal_mode=WAL; PRAGMA synchronous=${opts.sync ?? 'FULL'}; PRAGMA foreign_keys=ON;`);
      for (const f of [`${path}-wal`, `${path}-shm`]) makePrivateFile(f, { create: false });
      migrateSqlite(this.#db, `the audit database ${path}`);
    } catch (e) {
      throw isRecordingFailure(e) ? cannotRecord(e, `the audit log ${path}`) : e;
    }
    this.#insert = this.#db.prepare(
      'INSERT INTO events (seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)',
    );
    this.#last = this.#db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1');
    this.tables = this.#tablesHandle();
  }

  #tablesHandle(): AuditTables {
    const db = this.#db;
    const confined = <T>(compile: () => T): T => {
      db.setAuthorizer(tablesAuthorizer);
      try {
        return compile();
      } finally {
        db.setAuthorizer(null);
      }
    };
    return {
      exec: (sql) => confined(() => db.exec(sql)),
      prepare: (sql) => {
        const st = confined(() => db.prepare(sql));
        return {
          run: (...p) => st.run(...redactSqlParams(p)),
          get: (...p) => st.get(...redactSqlParams(p)),
          all: (...p) => st.all(...redactSqlParams(p)),
          iterate: (...p) => st.iterate(...redactSqlParams(p)),
          setReturnArrays: (on) => st.setReturnArrays(on),
        };
      },
      get isTransaction() {
        return db.isTransaction;
      },
    };
  }

  /** Appends and commits before returning: the event is durable when this returns. */
  append(input: AuditEventInput): AuditEvent {
    return this.appendMany([input])[0]!;
  }

  /** Group commit: one transaction, one chain extension. */
  appendMany(inputs: AuditEventInput[]): AuditEvent[] {
    const clean = inputs.map(redactEventInput); // before the transaction: redaction can be slow on big data
    return this.#commitEvents(() => clean);
  }

  /**
   * One transaction for a module's own write and the events that describe it: `build` runs
   * inside it (on `tables`, this connection) and returns the events, appended in the same
   * commit (one fsync: a signed checkpoint and its `audit.checkpoint` event). A throw rolls
   * back both.
   */
  appendWithin(build: () => AuditEventInput[]): AuditEvent[] {
    return this.#commitEvents(() => build().map(redactEventInput));
  }

  #commitEvents(build: () => AuditEventInput[]): AuditEvent[] {
    const out: AuditEvent[] = [];
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const clean = build();
      const last = this.#last.get() as { seq: number; hash: string } | undefined;
      let seq = last?.seq ?? 0;
      let prev = last?.hash ?? GENESIS_HASH;
      const ts = new Date().toISOString(); // one commit, one time
      for (const input of clean) {
        seq += 1;
        const base = {
          seq,
          id: newEventId(),
          ts,
          type: input.type,
          session: input.session ?? null,
          severity: input.severity ?? 'info',
          decision: input.decision ?? null,
          rule: input.rule ?? null,
          data: input.data ?? {},
        };
        // data is stored as its canonical JSON, so verify can rebuild the hashed body
        // from the columns without parsing (see eventBodyFromParts).
        const dataText = canonicalJson(base.data);
        const hash = chainHashFast(
          prev,
          eventBodyFromParts(
            base.seq,
            base.id,
            base.ts,
            base.type,
            base.session,
            base.severity,
            base.decision,
            base.rule,
            dataText,
          ),
        );
        this.#insert.run(
          base.seq,
          base.id,
          base.ts,
          base.type,
          base.session,
          base.severity,
          base.decision,
          base.rule,
          dataText,
          prev,
          hash,
        );
        out.push({ ...base, prevHash: prev, hash });
        prev = hash;
      }
      this.#db.exec('COMMIT');
    } catch (e) {
      // SQLite rolls a transaction back by itself on SQLITE_FULL/IOERR; a second ROLLBACK
      // would throw "cannot rollback - no transaction is active" and hide the real error.
      if (this.#db.isTransaction) {
        try {
          this.#db.exec('ROLLBACK');
        } catch {
          /* already rolled back */
        }
      }
      throw isRecordingFailure(e) ? cannotRecord(e, `the audit log ${this.path}`) : e;
    }
    for (const e of out)
      for (const l of this.#listeners) {
        try {
          l(e);
        } catch {
          /* a listener never breaks the writer */
        }
      }
    return out;
  }

  /** In-process subscription to events this store instance appends. */
  onAppend(l: AppendListener): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  query(q: EventQuery = {}): AuditEvent[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.session) {
      where.push('session = ?');
      args.push(q.session);
    }
    if (q.type) {
      if (q.type.endsWith('*')) {
        where.push('type LIKE ?');
        args.push(q.type.slice(0, -1) + '%');
      } else {
        where.push('type = ?');
        args.push(q.type);
      }
    }
    if (q.afterSeq !== undefined) {
      where.push('seq > ?');
      args.push(q.afterSeq);
    }
    const sql =
      `SELECT * FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq ASC` +
      (q.limit ? ` LIMIT ${Math.floor(q.limit)}` : '');
    return (this.#db.prepare(sql).all(...args) as unknown as Row[]).map(rowToEvent);
  }

  /** Iterates the whole log in order without loading it at once. */
  *iterate(afterSeq = 0, batch = 5000): Generator<AuditEvent> {
    const stmt = this.#db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?');
    let after = afterSeq;
    for (;;) {
      const rows = stmt.all(after, batch) as unknown as Row[];
      if (rows.length === 0) return;
      for (const r of rows) yield rowToEvent(r);
      after = rows[rows.length - 1]!.seq;
    }
  }

  /** Events after `afterSeq` as stored (data as its canonical JSON text), at most `limit`, in order. */
  rawRows(afterSeq: number, limit: number): RawEventRow[] {
    const st = this.#db.prepare(
      'SELECT seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?',
    );
    st.setReturnArrays(true);
    return st.all(afterSeq, Math.max(1, Math.floor(limit))) as unknown as RawEventRow[];
  }

  count(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  }

  /** The highest sequence number in the log (0 when empty). */
  headSeq(): number {
    return (this.#last.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  /** One event by id, as stored (for inclusion proofs). */
  eventById(id: string): AuditEvent | undefined {
    const r = this.#db.prepare('SELECT * FROM events WHERE id = ?').get(id) as Row | undefined;
    return r ? rowToEvent(r) : undefined;
  }

  getKv(k: string): string | undefined {
    const r = this.#db.prepare('SELECT v FROM kv WHERE k = ?').get(k) as { v: string } | undefined;
    return r?.v;
  }

  setKv(k: string, v: string): void {
    this.#db
      .prepare('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v')
      .run(...redactSqlParams([k, v]));
  }

  /** Sets k unless it is set; returns the value that holds (concurrent first writers agree). */
  setKvOnce(k: string, v: string): string {
    this.#db.prepare('INSERT OR IGNORE INTO kv (k, v) VALUES (?, ?)').run(...redactSqlParams([k, v]));
    return this.getKv(k)!;
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  close(): void {
    this.#db.close();
  }
}
