import { hostname } from 'node:os';
import type { AuditTables } from '../store.ts';
import type { SinkConfig } from '../../policy/schema/telemetry.ts';
import type { AuditEvent, Severity } from '../event.ts';
import type { AuditStore } from '../store.ts';
import { createSink, type Sink } from './transports.ts';

export { createSink, webhookSignature, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, type Sink } from './transports.ts';
export * from './formats.ts';

// Delivery: each sink has a durable cursor (last delivered seq) in the audit database.
// The log itself is the spool: a sink that is down simply falls behind and later
// catches up from its cursor, in seq order. The cursor moves only after the receiver
// acknowledged a batch, and never backwards, so an acknowledged event is never re-sent;
// an unacknowledged batch is re-sent whole (at-least-once, stable event ids).
// One process at a time delivers a sink: a lease in the same row keeps a supervisor and
// `airlock sinks flush` from sending the same batch twice.

const SCHEMA = `
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
);`;

export interface SinkStatus {
  name: string;
  type: string;
  cursor: number;
  head: number;
  lag: number;
  delivered: number;
  lastOkAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** consecutive failed attempts */
  failures: number;
  owner: string | null;
  configured: boolean;
}

interface StateRow { name: string; type: string; cursor: number; delivered: number; last_ok_at: string | null; last_error: string | null; last_error_at: string | null; failures: number; owner: string | null; lease_until: number }

export function ensureSinkSchema(db: AuditTables): void {
  db.exec(SCHEMA);
}

function headSeq(db: AuditTables): number {
  return (db.prepare('SELECT MAX(seq) AS m FROM events').get() as { m: number | null }).m ?? 0;
}

/** Lag, cursor and last error of every sink that is configured or has state in this database. */
export function sinkStatus(store: AuditStore, sinks: SinkConfig[] = []): SinkStatus[] {
  ensureSinkSchema(store.tables);
  const head = headSeq(store.tables);
  const rows = new Map((store.tables.prepare('SELECT * FROM sink_state ORDER BY name').all() as unknown as StateRow[]).map((r) => [r.name, r]));
  const names = [...new Set([...sinks.map((s) => s.name), ...rows.keys()])];
  return names.map((name) => {
    const r = rows.get(name);
    const cfg = sinks.find((s) => s.name === name);
    const cursor = r?.cursor ?? 0;
    return {
      name, type: cfg?.type ?? r?.type ?? '?', cursor, head, lag: Math.max(0, head - cursor), delivered: r?.delivered ?? 0,
      lastOkAt: r?.last_ok_at ?? null, lastError: r?.last_error ?? null, lastErrorAt: r?.last_error_at ?? null, failures: r?.failures ?? 0,
      owner: r && r.lease_until > Date.now() ? r.owner : null, configured: Boolean(cfg),
    };
  });
}

const SEV_ORDER: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
function selects(c: SinkConfig, e: AuditEvent): boolean {
  if (SEV_ORDER[e.severity] < SEV_ORDER[c.minSeverity]) return false;
  if (c.types.length === 0) return true;
  return c.types.some((t) => (t.endsWith('*') ? e.type.startsWith(t.slice(0, -1)) : e.type === t));
}

export interface DeliveryOptions {
  /** How often to look for events appended by other processes (default 500 ms). */
  pollMs?: number;
  /** Longest wait between retries of a failing sink (default 30 s; starts at 250 ms). */
  maxBackoffMs?: number;
  /** Lease length; a lease held by a dead process on this host is taken over at once (default 30 s). */
  leaseMs?: number;
  env?: NodeJS.ProcessEnv;
  /** For flush: stop each sink when it reached this seq or failed once. */
  until?: number;
}

const ME = `${hostname()}:${process.pid}`;
function ownerAlive(owner: string | null): boolean {
  if (!owner) return false;
  const [host, pid] = owner.split(':');
  if (host !== hostname()) return true; // another host: trust its lease
  try { process.kill(Number(pid), 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

class SinkWorker {
  readonly cfg: SinkConfig;
  private store: AuditStore;
  private sink: Sink | undefined;
  private opts: Required<Omit<DeliveryOptions, 'until' | 'env'>> & DeliveryOptions;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  done: Promise<void>;
  lastError: string | undefined;

  constructor(store: AuditStore, cfg: SinkConfig, opts: DeliveryOptions) {
    this.store = store;
    this.cfg = cfg;
    this.opts = { pollMs: 500, maxBackoffMs: 30_000, leaseMs: 30_000, ...opts };
    store.tables.prepare('INSERT OR IGNORE INTO sink_state (name, type) VALUES (?, ?)').run(cfg.name, cfg.type);
    this.done = this.loop();
  }

  wake(): void { const w = this.wakeUp; this.wakeUp = undefined; w?.(); }
  stop(): void { this.stopped = true; this.wake(); }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeUp = undefined; resolve(); }, ms);
      this.wakeUp = () => { clearTimeout(t); resolve(); };
    });
  }

  /** Takes or renews the lease; false when another live process delivers this sink. */
  private lease(): boolean {
    const db = this.store.tables;
    const now = Date.now();
    const r = db.prepare('SELECT owner, lease_until FROM sink_state WHERE name = ?').get(this.cfg.name) as { owner: string | null; lease_until: number };
    if (r.owner && r.owner !== ME && r.lease_until > now && ownerAlive(r.owner)) return false;
    const res = db.prepare('UPDATE sink_state SET owner = ?, lease_until = ? WHERE name = ? AND owner IS ? AND lease_until = ?')
      .run(ME, now + this.opts.leaseMs, this.cfg.name, r.owner, r.lease_until);
    return res.changes === 1;
  }

  private release(): void {
    try { this.store.tables.prepare('UPDATE sink_state SET lease_until = 0 WHERE name = ? AND owner = ?').run(this.cfg.name, ME); } catch { /* closing */ }
  }

  private cursor(): number {
    return (this.store.tables.prepare('SELECT cursor FROM sink_state WHERE name = ?').get(this.cfg.name) as { cursor: number }).cursor;
  }

  private async loop(): Promise<void> {
    let backoff = 250;
    try {
      while (!this.stopped) {
        if (!this.lease()) { await this.sleep(Math.min(this.opts.leaseMs, 1000)); if (this.opts.until !== undefined) return; continue; }
        const cursor = this.cursor();
        if (this.opts.until !== undefined && cursor >= this.opts.until) return;
        const batch = this.store.query({ afterSeq: cursor, limit: this.cfg.batchSize });
        if (batch.length === 0) { await this.sleep(this.opts.pollMs); continue; }
        const last = batch[batch.length - 1]!.seq;
        const selected = batch.filter((e) => selects(this.cfg, e));
        try {
          if (selected.length) {
            this.sink ??= createSink(this.cfg, this.opts.env);
            await this.sink.send(selected);
          }
          // Never backwards, and only from the cursor this batch started at.
          this.store.tables.prepare(`UPDATE sink_state SET cursor = ?, delivered = delivered + ?, last_ok_at = ?, failures = 0
            WHERE name = ? AND cursor = ?`).run(last, selected.length, new Date().toISOString(), this.cfg.name, cursor);
          backoff = 250;
          this.lastError = undefined;
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          this.lastError = msg;
          this.store.tables.prepare('UPDATE sink_state SET last_error = ?, last_error_at = ?, failures = failures + 1 WHERE name = ?')
            .run(msg.slice(0, 1000), new Date().toISOString(), this.cfg.name);
          if (this.opts.until !== undefined) return;
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, this.opts.maxBackoffMs);
        }
      }
    } finally {
      this.release();
      await this.sink?.close().catch(() => {});
    }
  }
}

export interface Delivery {
  stop(): Promise<void>;
  status(): SinkStatus[];
}

function sinkList(cfg: SinkConfig[] | { sinks: SinkConfig[] }): SinkConfig[] {
  const list = Array.isArray(cfg) ? cfg : cfg.sinks;
  const seen = new Set<string>();
  for (const s of list) {
    if (seen.has(s.name)) throw new Error(`two sinks are named ${s.name}: names must be unique (each has its own cursor)`);
    seen.add(s.name);
  }
  return list;
}

/**
 * Starts delivering to every sink until stop(). Run it inside a long-running process (the
 * session supervisor). Pass the policy's `telemetry` section or the sinks list.
 */
export function startDelivery(store: AuditStore, sinksConfig: SinkConfig[] | { sinks: SinkConfig[] }, opts: DeliveryOptions = {}): Delivery {
  const list = sinkList(sinksConfig);
  ensureSinkSchema(store.tables);
  const workers = list.map((c) => new SinkWorker(store, c, { ...opts, until: undefined }));
  const off = store.onAppend(() => { for (const w of workers) w.wake(); });
  return {
    async stop() {
      off();
      for (const w of workers) w.stop();
      await Promise.all(workers.map((w) => w.done));
    },
    status: () => sinkStatus(store, list),
  };
}

/** Delivers everything pending now (up to the current head), once per sink; returns the status after. */
export async function flushSinks(store: AuditStore, sinksConfig: SinkConfig[] | { sinks: SinkConfig[] }, opts: DeliveryOptions = {}): Promise<SinkStatus[]> {
  const list = sinkList(sinksConfig);
  ensureSinkSchema(store.tables);
  const until = headSeq(store.tables);
  const workers = list.map((c) => new SinkWorker(store, c, { ...opts, until }));
  await Promise.all(workers.map((w) => w.done));
  return sinkStatus(store, list).map((s) => ({ ...s, lastError: workers.find((w) => w.cfg.name === s.name)?.lastError ?? s.lastError }));
}

export { sessionSinks, planSessionSinks, type SessionSinkPlan, type RefusedSink } from './select.ts';
