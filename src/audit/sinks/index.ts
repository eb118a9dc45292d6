import { hostname } from 'node:os';
import type { AuditTables } from '../store.ts';
import type { SinkConfig } from '../../policy/index.ts';
import type { AuditEvent, Severity } from '../event.ts';
import type { AuditStore } from '../store.ts';
import { acknowledgementOf, createSink, DEFAULT_TIMEOUT_MS, type Acknowledgement, type Sink } from './transports.ts';
import { PartialDelivery } from './relp.ts';
import { processRuns, processState } from '../../common/index.ts';

export { type Sink, type Acknowledgement } from './transports.ts';
export * from './formats.ts';

// Delivery: each sink has a durable cursor (last delivered seq) in the audit database.
// The log itself is the spool: a sink that is down simply falls behind and later
// catches up from its cursor, in seq order. The cursor moves only after the receiver
// acknowledged (a RELP "200", an HTTP 2xx, an fsync), never on a clean close, and never
// backwards, so an acknowledged event is never re-sent; an unacknowledged batch is re-sent
// (at-least-once: every record carries its event id and seq for the SIEM to de-duplicate).
// One process at a time delivers a sink: a lease in the same row keeps a supervisor and
// `airlock sinks flush` from sending the same batch twice.

export interface SinkStatus {
  name: string;
  type: string;
  /** What counts as delivered for this sink; 'none' (plain syslog TCP/TLS): the cursor means "sent", not delivered. */
  ack: Acknowledgement | null;
  cursor: number;
  head: number;
  lag: number;
  delivered: number;
  lastOkAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  /** consecutive failed attempts */
  failures: number;
  /** the live process delivering this sink now (a dead holder's lease is not shown) */
  owner: string | null;
  configured: boolean;
}

interface StateRow {
  name: string;
  type: string;
  cursor: number;
  delivered: number;
  last_ok_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  failures: number;
  owner: string | null;
  lease_until: number;
}

function headSeq(db: AuditTables): number {
  return (db.prepare('SELECT MAX(seq) AS m FROM events').get() as { m: number | null }).m ?? 0;
}

const ME = `${hostname()}:${process.pid}`;
/** A lease holder on this host is alive while its pid is (not a zombie); another host's lease is trusted until it expires. */
function ownerAlive(owner: string | null): boolean {
  if (!owner) return false;
  const i = owner.lastIndexOf(':');
  const host = owner.slice(0, i);
  const pid = Number(owner.slice(i + 1));
  if (host !== hostname()) return true;
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  if (processState(pid) !== null) return processRuns(pid);
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Lag, cursor and last error of every sink that is configured or has state in this database. */
export function sinkStatus(store: AuditStore, sinks: SinkConfig[] = []): SinkStatus[] {
  const head = headSeq(store.tables);
  const rows = new Map(
    (store.tables.prepare('SELECT * FROM sink_state ORDER BY name').all() as unknown as StateRow[]).map((r) => [
      r.name,
      r,
    ]),
  );
  const names = [...new Set([...sinks.map((s) => s.name), ...rows.keys()])];
  const now = Date.now();
  return names.map((name) => {
    const r = rows.get(name);
    const cfg = sinks.find((s) => s.name === name);
    const cursor = r?.cursor ?? 0;
    return {
      name,
      type: cfg?.type ?? r?.type ?? '?',
      ack: cfg ? acknowledgementOf(cfg) : null,
      cursor,
      head,
      lag: Math.max(0, head - cursor),
      delivered: r?.delivered ?? 0,
      lastOkAt: r?.last_ok_at ?? null,
      lastError: r?.last_error ?? null,
      lastErrorAt: r?.last_error_at ?? null,
      failures: r?.failures ?? 0,
      owner: r && r.lease_until > now && ownerAlive(r.owner) ? r.owner : null,
      configured: Boolean(cfg),
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
  /** How long to wait for a receiver's connect, acknowledgement or response (default 30 s). */
  timeoutMs?: number;
  /** For flush: stop each sink when it reached this seq or failed once. */
  until?: number;
}

export interface StopOptions {
  /**
   * How long stop() keeps delivering what was recorded before it (the session's tail:
   * command.exit, session.stop, audit.checkpoint) before it gives up; default 2000 ms.
   * A failed attempt ends it sooner. Then any request in flight is aborted; what is left stays spooled in the log for the
   * next deliverer (`airlock sinks serve`, the next session, `airlock sinks flush`).
   */
  flushMs?: number;
}

class SinkWorker {
  readonly cfg: SinkConfig;
  private store: AuditStore;
  private sink: Sink | undefined;
  private opts: Required<Omit<DeliveryOptions, 'until' | 'env'>> & DeliveryOptions;
  /** Aborted when the worker must end now: in-flight sends and sleeps return at once. */
  private abort = new AbortController();
  /** Set by stop(): deliver up to this head, then end. */
  private stopAt: number | null = null;
  private deadline: NodeJS.Timeout | undefined;
  private woken = false;
  private wakeUp: (() => void) | undefined;
  done: Promise<void>;
  lastError: string | undefined;

  constructor(store: AuditStore, cfg: SinkConfig, opts: DeliveryOptions) {
    this.store = store;
    this.cfg = cfg;
    this.opts = { pollMs: 500, maxBackoffMs: 30_000, leaseMs: 30_000, timeoutMs: DEFAULT_TIMEOUT_MS, ...opts };
    store.tables.prepare('INSERT OR IGNORE INTO sink_state (name, type) VALUES (?, ?)').run(cfg.name, cfg.type);
    this.done = this.loop();
  }

  wake(): void {
    this.woken = true;
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /** Delivers up to `head` for at most flushMs, then aborts whatever is in flight. */
  stop(head: number, flushMs: number): void {
    this.stopAt = head;
    this.deadline = setTimeout(() => this.abort.abort(), Math.max(0, flushMs));
    this.deadline.unref();
    this.wake();
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || this.abort.signal.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.abort.signal.removeEventListener('abort', done);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Takes or renews the lease; false when another live process delivers this sink. */
  private lease(): boolean {
    const db = this.store.tables;
    const now = Date.now();
    const r = db.prepare('SELECT owner, lease_until FROM sink_state WHERE name = ?').get(this.cfg.name) as {
      owner: string | null;
      lease_until: number;
    };
    if (r.owner && r.owner !== ME && r.lease_until > now && ownerAlive(r.owner)) return false;
    const res = db
      .prepare('UPDATE sink_state SET owner = ?, lease_until = ? WHERE name = ? AND owner IS ? AND lease_until = ?')
      .run(ME, now + this.opts.leaseMs, this.cfg.name, r.owner, r.lease_until);
    return res.changes === 1;
  }

  private release(): void {
    try {
      this.store.tables
        .prepare('UPDATE sink_state SET lease_until = 0 WHERE name = ? AND owner = ?')
        .run(this.cfg.name, ME);
    } catch {
      /* closing */
    }
  }

  private cursor(): number {
    return (
      this.store.tables.prepare('SELECT cursor FROM sink_state WHERE name = ?').get(this.cfg.name) as { cursor: number }
    ).cursor;
  }

  /** Moves the cursor from `from` to `to` (never backwards, never from a cursor someone else moved). */
  private advance(from: number, to: number, count: number): void {
    if (to <= from) return;
    this.store.tables
      .prepare(
        `UPDATE sink_state SET cursor = ?, delivered = delivered + ?, last_ok_at = ?, failures = 0
      WHERE name = ? AND cursor = ?`,
      )
      .run(to, count, new Date().toISOString(), this.cfg.name, from);
  }

  private fail(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    this.lastError = msg;
    this.store.tables
      .prepare('UPDATE sink_state SET last_error = ?, last_error_at = ?, failures = failures + 1 WHERE name = ?')
      .run(msg.slice(0, 1000), new Date().toISOString(), this.cfg.name);
  }

  private finished(cursor: number): boolean {
    if (this.abort.signal.aborted) return true;
    if (this.stopAt !== null && cursor >= this.stopAt) return true;
    return this.opts.until !== undefined && cursor >= this.opts.until;
  }

  /** Sends one batch after the cursor; true when there was nothing to send. */
  private async deliverOnce(cursor: number): Promise<boolean> {
    const batch = this.store.query({ afterSeq: cursor, limit: this.cfg.batchSize });
    if (batch.length === 0) return true;
    const last = batch[batch.length - 1]!.seq;
    const selected = batch.filter((e) => selects(this.cfg, e));
    try {
      if (selected.length) {
        this.sink ??= createSink(this.cfg, this.opts.env, this.opts.timeoutMs);
        await this.sink.send(selected, this.abort.signal);
      }
      this.advance(cursor, last, selected.length);
      this.lastError = undefined;
    } catch (e) {
      // A receiver that acknowledged the first k messages (RELP) moves the cursor past them only.
      const acked = e instanceof PartialDelivery ? Math.min(e.acked, selected.length) : 0;
      if (acked > 0) this.advance(cursor, acked === selected.length ? last : selected[acked]!.seq - 1, acked);
      throw e;
    }
    return false;
  }

  private async loop(): Promise<void> {
    let backoff = 250;
    try {
      for (;;) {
        if (this.abort.signal.aborted) return;
        if (!this.lease()) {
          // another live process delivers this sink: stopping or flushing leaves it to them
          if (this.opts.until !== undefined || this.stopAt !== null) return;
          await this.sleep(Math.min(this.opts.leaseMs, 1000));
          continue;
        }
        const cursor = this.cursor();
        if (this.finished(cursor)) return;
        try {
          const idle = await this.deliverOnce(cursor);
          backoff = 250;
          if (idle) {
            if (this.stopAt !== null) return;
            await this.sleep(this.opts.pollMs);
          }
        } catch (e) {
          if (this.abort.signal.aborted) return; // aborted at stop: not a receiver failure
          this.fail(e);
          // flushing or stopping: one failed attempt is enough, the rest stays spooled
          if (this.opts.until !== undefined || this.stopAt !== null) return;
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, this.opts.maxBackoffMs);
        }
      }
    } finally {
      clearTimeout(this.deadline);
      this.release();
      await this.sink?.close().catch(() => {});
    }
  }
}

export interface Delivery {
  /** Delivers the tail recorded so far for at most `flushMs`, then ends; never waits longer on a SIEM. */
  stop(opts?: StopOptions): Promise<void>;
  status(): SinkStatus[];
}

function sinkList(cfg: SinkConfig[] | { sinks: SinkConfig[] }): SinkConfig[] {
  const list = Array.isArray(cfg) ? cfg : cfg.sinks;
  const seen = new Set<string>();
  for (const s of list) {
    if (seen.has(s.name))
      throw new Error(`two sinks are named ${s.name}: names must be unique (each has its own cursor)`);
    seen.add(s.name);
  }
  return list;
}

/**
 * Starts delivering to every sink until stop(). Run it inside a long-running process (the
 * session supervisor, `airlock sinks serve`). Pass the policy's `telemetry` section or the sinks list.
 */
export function startDelivery(
  store: AuditStore,
  sinksConfig: SinkConfig[] | { sinks: SinkConfig[] },
  opts: DeliveryOptions = {},
): Delivery {
  const list = sinkList(sinksConfig);
  const workers = list.map((c) => new SinkWorker(store, c, { ...opts, until: undefined }));
  const off = store.onAppend(() => {
    for (const w of workers) w.wake();
  });
  return {
    async stop(o: StopOptions = {}) {
      off();
      const head = headSeq(store.tables);
      for (const w of workers) w.stop(head, o.flushMs ?? 2000);
      await Promise.all(workers.map((w) => w.done));
    },
    status: () => sinkStatus(store, list),
  };
}

/** Delivers everything pending now (up to the current head), once per sink; returns the status after. */
export async function flushSinks(
  store: AuditStore,
  sinksConfig: SinkConfig[] | { sinks: SinkConfig[] },
  opts: DeliveryOptions = {},
): Promise<SinkStatus[]> {
  const list = sinkList(sinksConfig);
  const until = headSeq(store.tables);
  const workers = list.map((c) => new SinkWorker(store, c, { ...opts, until }));
  await Promise.all(workers.map((w) => w.done));
  return sinkStatus(store, list).map((s) => ({
    ...s,
    lastError: workers.find((w) => w.cfg.name === s.name)?.lastError ?? s.lastError,
  }));
}

export { sessionSinks, planSessionSinks, type SessionSinkPlan, type RefusedSink } from './select.ts';
