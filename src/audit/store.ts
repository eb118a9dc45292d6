import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { cannotRecord, isRecordingFailure } from '../common/errors.ts';
import {
  type AuditEvent, type AuditEventInput, GENESIS_HASH, canonicalJson, chainHashFast, eventBodyFromParts, newEventId,
} from './event.ts';

// Append-only, hash-chained event store in SQLite. One chain across all sessions, so a
// deleted session is as detectable as a deleted event. Writers in several processes
// serialize through BEGIN IMMEDIATE; the triggers make UPDATE/DELETE fail at the engine.

const SCHEMA = `
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
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only: update refused'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only: delete refused'); END;
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
`;

export interface EventQuery {
  session?: string;
  type?: string; // exact, or prefix ending with '*'
  afterSeq?: number;
  limit?: number;
}

interface Row {
  seq: number; id: string; ts: string; type: string; session: string | null; severity: string;
  decision: string | null; rule: string | null; data: string; prev_hash: string; hash: string;
}

export function rowToEvent(r: Row): AuditEvent {
  return {
    seq: r.seq, id: r.id, ts: r.ts, type: r.type, session: r.session,
    severity: r.severity as AuditEvent['severity'], decision: r.decision as AuditEvent['decision'],
    rule: r.rule, data: JSON.parse(r.data) as Record<string, unknown>, prevHash: r.prev_hash, hash: r.hash,
  };
}

export type AppendListener = (e: AuditEvent) => void;

export class AuditStore {
  readonly path: string;
  readonly db: DatabaseSync;
  private insert: StatementSync;
  private last: StatementSync;
  private listeners = new Set<AppendListener>();

  constructor(path: string) {
    this.path = path;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.db = new DatabaseSync(path, { timeout: 10_000 });
      this.db.exec('PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;');
      this.db.exec(SCHEMA);
    } catch (e) {
      throw isRecordingFailure(e) ? cannotRecord(e, `the audit log ${path}`) : e;
    }
    this.insert = this.db.prepare(
      'INSERT INTO events (seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)');
    this.last = this.db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1');
  }

  /** Appends and commits before returning: the event is durable when this returns. */
  append(input: AuditEventInput): AuditEvent {
    return this.appendMany([input])[0]!;
  }

  /** Group commit: one transaction, one chain extension. */
  appendMany(inputs: AuditEventInput[]): AuditEvent[] {
    const out: AuditEvent[] = [];
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const last = this.last.get() as { seq: number; hash: string } | undefined;
      let seq = last?.seq ?? 0;
      let prev = last?.hash ?? GENESIS_HASH;
      const ts = new Date().toISOString(); // one commit, one time
      for (const input of inputs) {
        seq += 1;
        const base = {
          seq, id: newEventId(), ts, type: input.type,
          session: input.session ?? null, severity: input.severity ?? 'info',
          decision: input.decision ?? null, rule: input.rule ?? null, data: input.data ?? {},
        };
        // data is stored as its canonical JSON, so verify can rebuild the hashed body
        // from the columns without parsing (see eventBodyFromParts).
        const dataText = canonicalJson(base.data);
        const hash = chainHashFast(prev, eventBodyFromParts(base.seq, base.id, base.ts, base.type,
          base.session, base.severity, base.decision, base.rule, dataText));
        this.insert.run(base.seq, base.id, base.ts, base.type, base.session, base.severity,
          base.decision, base.rule, dataText, prev, hash);
        out.push({ ...base, prevHash: prev, hash });
        prev = hash;
      }
      this.db.exec('COMMIT');
    } catch (e) {
      // SQLite rolls a transaction back by itself on SQLITE_FULL/IOERR; a second ROLLBACK
      // would throw "cannot rollback - no transaction is active" and hide the real error.
      if (this.db.isTransaction) { try { this.db.exec('ROLLBACK'); } catch { /* already rolled back */ } }
      throw isRecordingFailure(e) ? cannotRecord(e, `the audit log ${this.path}`) : e;
    }
    for (const e of out) for (const l of this.listeners) {
      try { l(e); } catch { /* a listener never breaks the writer */ }
    }
    return out;
  }

  /** In-process subscription to events this store instance appends. */
  onAppend(l: AppendListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  query(q: EventQuery = {}): AuditEvent[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.session) { where.push('session = ?'); args.push(q.session); }
    if (q.type) {
      if (q.type.endsWith('*')) { where.push('type LIKE ?'); args.push(q.type.slice(0, -1) + '%'); }
      else { where.push('type = ?'); args.push(q.type); }
    }
    if (q.afterSeq !== undefined) { where.push('seq > ?'); args.push(q.afterSeq); }
    const sql = `SELECT * FROM events ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq ASC`
      + (q.limit ? ` LIMIT ${Math.floor(q.limit)}` : '');
    return (this.db.prepare(sql).all(...args) as unknown as Row[]).map(rowToEvent);
  }

  /** Iterates the whole log in order without loading it at once. */
  *iterate(afterSeq = 0, batch = 5000): Generator<AuditEvent> {
    const stmt = this.db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq ASC LIMIT ?');
    let after = afterSeq;
    for (;;) {
      const rows = stmt.all(after, batch) as unknown as Row[];
      if (rows.length === 0) return;
      for (const r of rows) yield rowToEvent(r);
      after = rows[rows.length - 1]!.seq;
    }
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  }

  getKv(k: string): string | undefined {
    const r = this.db.prepare('SELECT v FROM kv WHERE k = ?').get(k) as { v: string } | undefined;
    return r?.v;
  }

  setKv(k: string, v: string): void {
    this.db.prepare('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v').run(k, v);
  }

  close(): void {
    this.db.close();
  }
}
