import { createPublicKey, type KeyObject } from 'node:crypto';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { type Checkpoint, keyId } from '../audit/hashing.ts';
import { HostCheck, type HostVerdict, type RangeSummary } from './host-check.ts';
import { CopyRowReader, EVENT_COLUMNS } from './pg-binary.ts';

// One host's part of `airlock audit verify` against the shared store, the same in the caller's
// thread and in a verify worker: its keys (the trusted one when the auditor gave it), then its
// rows streamed by one binary COPY in seq order into a HostCheck. Or one seq range of a large
// host's rows, summed up for the caller to join (HostCheck.joinRange).

export interface HostJob {
  logId: string;
  hostname: string | null;
  cps: Checkpoint[];
  /** the key the auditor trusts for this host (--host-keys), instead of those the store holds */
  trusted?: KeyObject;
}

/**
 * Rows lo..hi of one host (see RangePlan). The first range has no lower bound and the last no
 * upper bound, so every row of the host falls in one range: a row with seq 0, or one past the head
 * the plan was made from, makes its range unclean, never unseen.
 */
export interface RangeJob {
  logId: string;
  lo: number;
  /** null: the host's last range */
  hi: number | null;
  want: number[];
}

/** What a thread is handed: a whole host, or one seq range of a host. */
export type VerifyUnit = { host: HostJob } | { range: RangeJob };

async function hostKeys(
  c: pg.ClientBase,
  logId: string,
  trusted: KeyObject | undefined,
): Promise<Map<string, KeyObject>> {
  if (trusted) return new Map([[keyId(trusted), trusted]]);
  const r = await c.query<{ key_id: string; public_key: string }>(
    'SELECT key_id, public_key FROM airlock.host_keys WHERE log_id = $1',
    [logId],
  );
  const m = new Map<string, KeyObject>();
  for (const row of r.rows) {
    try {
      const k = createPublicKey(row.public_key);
      if (keyId(k) === row.key_id) m.set(row.key_id, k); // a row whose id is not its key's is ignored
    } catch {
      /* not a key: its checkpoints will not verify */
    }
  }
  return m;
}

/**
 * Set at the start of every verify transaction (this thread's and each worker's): a host's rows are
 * read along the primary key (log_id, seq), already in order. Left to itself the planner takes a
 * parallel scan of every host's rows and a sort for each host (a quarter of the table matches, so
 * the index looks dear): measured, 2.7x the server's CPU per verify, and growing with the number of
 * hosts (each host's COPY read all of them). The server shares the verifier's cores.
 */
export const READ_BY_PRIMARY_KEY =
  'SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL max_parallel_workers_per_gather = 0';

/**
 * One host's rows in seq order (from lo, up to hi), as one binary COPY (no parameters in COPY: the
 * log id is quoted, the bounds are integers).
 */
function rowsCopy(logId: string, lo = 1, hi: number | null = null): string {
  const from = lo > 1 ? ` AND seq >= ${Math.trunc(lo)}` : '';
  const to = hi === null ? '' : ` AND seq <= ${Math.trunc(hi)}`;
  return `COPY (SELECT ${EVENT_COLUMNS} FROM airlock.events WHERE log_id = ${pg.escapeLiteral(logId)}${from}${to} ORDER BY seq) TO STDOUT (FORMAT binary)`;
}

/** A check of the host's whole chain (its keys loaded), to feed rows or join ranges into. */
export async function hostCheck(c: pg.ClientBase, job: HostJob): Promise<HostCheck> {
  return new HostCheck(job.logId, job.hostname, job.cps, await hostKeys(c, job.logId, job.trusted));
}

export async function verifyHost(c: pg.ClientBase, job: HostJob): Promise<HostVerdict> {
  const check = await hostCheck(c, job);
  const malformed = await streamRows(c, rowsCopy(job.logId), check);
  if (malformed) throw malformed;
  check.finish();
  return check.v;
}

export async function verifyRange(c: pg.ClientBase, job: RangeJob): Promise<RangeSummary> {
  const check = new HostCheck(job.logId, null, [], new Map(), { lo: job.lo, want: job.want });
  const malformed = await streamRows(c, rowsCopy(job.logId, job.lo, job.hi), check);
  // bytes that are not a COPY stream: not judged here (the one-pass verify meets them or stops before)
  return malformed ? { ...check.summary(), clean: false } : check.summary();
}

/** A whole host's verdict, or a range's summary. */
export function verifyUnit(c: pg.ClientBase, unit: VerifyUnit): Promise<HostVerdict | RangeSummary> {
  return 'host' in unit ? verifyHost(c, unit.host) : verifyRange(c, unit.range);
}

/** Streams the COPY's rows into `check` until its chain breaks; what was malformed in the stream, if anything. */
async function streamRows(c: pg.ClientBase, copy: string, check: HostCheck): Promise<unknown> {
  const reader = new CopyRowReader();
  let going = true;
  let malformed: unknown;
  // the server streams while this thread hashes; after a break the rest is drained unread
  const stream = c.query(copyTo(copy));
  stream.on('data', (chunk: Buffer) => {
    if (!going) return;
    try {
      for (const row of reader.rows(chunk)) if (!(going = check.pushCopyRow(row))) break;
    } catch (e) {
      going = false;
      malformed = e;
    }
  });
  await finished(stream);
  if (malformed) return malformed;
  try {
    if (going) reader.finish();
  } catch (e) {
    return e;
  }
  return undefined;
}
