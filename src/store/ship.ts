import { hostname } from 'node:os';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import {
  type AuditStore,
  type Checkpoint,
  type RawEventRow,
  keyId,
  listCheckpoints,
  loadPublicKey,
  logId,
} from '../audit/index.ts';
import { checkpointLeaf } from './global-log.ts';
import { EVENT_COLUMNS, encodeEventRows } from './pg-binary.ts';
import type { TrustedApprover } from './decisions.ts';
import { ANSWERS_CHANNEL, relayAnswers, relayContext } from './queue.ts';
import { type RelayedApproval, relayApprovals } from './review-queue.ts';

// The shipper: a host's local SQLite log is the durable spool; this copies it to the shared
// PostgreSQL store. Where it stands is read from PostgreSQL itself (the highest seq of this
// host's log there), never kept on the side, so a shipper killed at any point (before,
// during or after a commit) resumes exactly after what PostgreSQL holds: nothing is sent
// twice into the table, and the rows are idempotent anyway (primary key (log_id, seq),
// unique event id, ON CONFLICT DO NOTHING). An outage only makes the spool grow.
//
// A batch goes as one binary COPY straight into airlock.events (one statement, one commit:
// all of it or none). COPY has no ON CONFLICT: when another shipper of the same host got
// there first, the COPY fails whole on the unique key and that batch is sent again as an
// INSERT … ON CONFLICT DO NOTHING, so a race costs time, never a duplicate or a gap. The next
// batch is read from SQLite while the server takes the current one.

export interface ShipOptions {
  /** events per COPY (one statement, one commit); default 10000 */
  batch?: number;
  /** the directory holding this host's audit key (its public half is registered once) */
  keyDir?: string;
}

export interface ShipResult {
  logId: string;
  events: number;
  checkpoints: number;
  shippedSeq: number;
  localSeq: number;
}

const INSERT_EVENTS = `INSERT INTO airlock.events (log_id, seq, id, ts, type, session, severity, decision, rule, data, prev_hash, hash)
  SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
  ON CONFLICT DO NOTHING`;

const COPY_EVENTS = `COPY airlock.events (log_id, ${EVENT_COLUMNS}) FROM STDIN (FORMAT binary)`;
const UNIQUE_VIOLATION = '23505';

/** One batch in one statement: COPY, or when a row is there already, INSERT … ON CONFLICT DO NOTHING. Rows added. */
async function sendBatch(c: pg.ClientBase, log: string, rows: RawEventRow[]): Promise<number> {
  const encoded = encodeEventRows(log, rows);
  const copy = c.query(copyFrom(COPY_EVENTS));
  try {
    copy.end(encoded);
    await once(copy, 'finish');
    return copy.rowCount;
  } catch (e) {
    if ((e as { code?: unknown }).code !== UNIQUE_VIOLATION) throw e;
  }
  return (await c.query(INSERT_EVENTS, [log, ...columns(rows)])).rowCount ?? 0;
}

/** The columns of a batch as arrays, for one unnest() INSERT. */
function columns(rows: RawEventRow[]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: 11 }, () => new Array<unknown>(rows.length));
  rows.forEach((r, i) => {
    for (let c = 0; c < 11; c++) cols[c]![i] = r[c];
  });
  return cols;
}

async function registerHost(c: pg.ClientBase, log: string, keyDir: string | undefined): Promise<void> {
  await c.query('INSERT INTO airlock.hosts (log_id, hostname) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
    log,
    hostname(),
  ]);
  let pem: string;
  let id: string;
  try {
    const pub = loadPublicKey(undefined, keyDir);
    pem = pub.export({ type: 'spki', format: 'pem' }).toString();
    id = keyId(pub);
  } catch {
    return;
  } // no key yet: no checkpoint to verify either
  await c.query(
    'INSERT INTO airlock.host_keys (log_id, key_id, public_key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
    [log, id, pem],
  );
}

async function shippedSeq(c: pg.ClientBase, log: string): Promise<number> {
  const r = await c.query<{ m: string | null }>('SELECT max(seq) AS m FROM airlock.events WHERE log_id = $1', [log]);
  return Number(r.rows[0]?.m ?? 0);
}

/** Ships one checkpoint and appends it to the global log, in one transaction (gseq has no gaps). */
async function shipCheckpoint(c: pg.ClientBase, cp: Checkpoint): Promise<boolean> {
  await c.query('BEGIN');
  try {
    await c.query("SELECT pg_advisory_xact_lock(hashtext('airlock.global_log'))");
    const ins = await c.query(
      `INSERT INTO airlock.checkpoints (log_id, id, size, root, ts, reason, key_id, signature)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [cp.logId, cp.id, cp.size, cp.root, cp.ts, cp.reason, cp.keyId, cp.signature],
    );
    if (ins.rowCount === 1) {
      await c.query(
        `INSERT INTO airlock.global_log (gseq, log_id, checkpoint_id, leaf)
        SELECT coalesce(max(gseq), 0) + 1, $1, $2, $3 FROM airlock.global_log`,
        [cp.logId, cp.id, checkpointLeaf(cp).toString('hex')],
      );
    }
    await c.query('COMMIT');
    return ins.rowCount === 1;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {
      /* connection lost: the server rolled back */
    });
    throw e;
  }
}

/** Ships everything the local log holds now that PostgreSQL does not. */
export async function shipOnce(local: AuditStore, c: pg.ClientBase, opts: ShipOptions = {}): Promise<ShipResult> {
  const log = logId(local);
  const batch = Math.max(1, opts.batch ?? 10_000);
  await registerHost(c, log, opts.keyDir);
  let seq = await shippedSeq(c, log);
  let events = 0;
  let rows = local.rawRows(seq, batch);
  while (rows.length > 0) {
    const sending = sendBatch(c, log, rows);
    const last = rows[rows.length - 1]![0];
    rows = local.rawRows(last, batch); // read while the server takes the batch before
    events += await sending;
    seq = last;
  }
  const have = await c.query<{ id: string }>('SELECT id FROM airlock.checkpoints WHERE log_id = $1', [log]);
  const shippedIds = new Set(have.rows.map((r) => Number(r.id)));
  let checkpoints = 0;
  for (const cp of listCheckpoints(local.tables)) {
    // a checkpoint goes after the events it covers, so the shared store never holds one it cannot check
    if (cp.logId !== log || shippedIds.has(cp.id) || cp.size > seq) continue;
    if (await shipCheckpoint(c, cp)) checkpoints += 1;
  }
  return { logId: log, events, checkpoints, shippedSeq: seq, localSeq: local.headSeq() };
}

export interface ShipperOptions extends ShipOptions {
  /** how often to look for events other processes appended (default 500 ms) */
  pollMs?: number;
  /** longest wait between retries while PostgreSQL is unreachable (default 5 s) */
  maxBackoffMs?: number;
  /** run on every new connection before shipping (e.g. the schema version check) */
  onConnect?: (c: pg.Client) => Promise<void>;
  /** answers given on other hosts are applied to this host's waiting asks through these */
  relay?: {
    pendingLocal: () => number[];
    answer: (id: number, decision: 'allow' | 'deny', by: string, reason: string) => void;
  };
  /** approvals of this host's proposals given on other hosts are applied through this (the review module's relay) */
  approvals?: (a: RelayedApproval) => void;
  /** keys the org policy trusts to sign those answers and approvals (approverTrust()); none: every one is refused */
  trust?: readonly TrustedApprover[];
  /** called after each failed attempt (the shipper retries; nothing is dropped) */
  onError?: (e: unknown) => void;
}

export interface Shipper {
  /** Ships what is left once more (bounded by flushMs, default 5 s), then ends. */
  stop(flushMs?: number): Promise<ShipResult | undefined>;
  readonly lastError: string | null;
  readonly last: ShipResult | undefined;
}

/** Ships continuously until stop(): wakes on this process's appends and every pollMs. */
export function startShipper(local: AuditStore, connectionString: string, opts: ShipperOptions = {}): Shipper {
  const stopping = new AbortController();
  let client: pg.Client | undefined;
  let lastError: string | null = null;
  let last: ShipResult | undefined;
  let wake = new AbortController();
  const relayed = relayContext(opts.trust ?? []);
  const off = local.onAppend(() => wake.abort());
  const drop = () => {
    const c = client;
    client = undefined;
    c?.end().catch(() => {
      /* already closed */
    });
  };

  const attempt = async (): Promise<void> => {
    if (!client) {
      const c = new pg.Client({ connectionString, connectionTimeoutMillis: 5000 });
      c.on('error', () => {
        if (client === c) drop();
      }); // a server restart: reconnect on the next attempt
      try {
        await c.connect();
        await opts.onConnect?.(c);
        if (opts.relay || opts.approvals) {
          const log = logId(local);
          c.on('notification', (n) => {
            if (n.payload === log) wake.abort();
          });
          await c.query(`LISTEN ${ANSWERS_CHANNEL}`);
        }
      } catch (e) {
        await c.end().catch(() => {
          /* not connected */
        });
        throw e;
      }
      client = c;
    }
    last = await shipOnce(local, client, opts);
    if (opts.relay) await relayAnswers(local, client, opts.relay.pendingLocal(), opts.relay.answer, relayed);
    if (opts.approvals) await relayApprovals(local, client, opts.approvals, relayed);
    lastError = null;
  };

  const loop = (async () => {
    let backoff = 100;
    while (!stopping.signal.aborted) {
      try {
        await attempt();
        backoff = 100;
      } catch (e) {
        drop();
        lastError = e instanceof Error ? e.message : String(e);
        opts.onError?.(e);
        backoff = Math.min(backoff * 2, opts.maxBackoffMs ?? 5000);
      }
      const waitMs = lastError ? backoff : (opts.pollMs ?? 500);
      await sleep(waitMs, undefined, { signal: AbortSignal.any([stopping.signal, wake.signal]) }).catch(() => {
        /* woken */
      });
      if (wake.signal.aborted) wake = new AbortController();
    }
  })();

  return {
    async stop(flushMs = 5000) {
      off();
      stopping.abort();
      await loop;
      const deadline = Date.now() + flushMs;
      for (let i = 0; i < 50 && Date.now() < deadline; i++) {
        try {
          await attempt();
          break;
        } catch (e) {
          drop();
          lastError = e instanceof Error ? e.message : String(e);
          await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
        }
      }
      drop();
      return last;
    },
    get lastError() {
      return lastError;
    },
    get last() {
      return last;
    },
  };
}
