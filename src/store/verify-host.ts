import { createPublicKey, type KeyObject } from 'node:crypto';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { type Checkpoint, keyId } from '../audit/hashing.ts';
import { HostCheck, type HostVerdict } from './host-check.ts';
import { CopyRowReader, EVENT_COLUMNS } from './pg-binary.ts';

// One host's part of `airlock audit verify` against the shared store, the same in the caller's
// thread and in a verify worker: its keys (the trusted one when the auditor gave it), then its
// rows streamed by one binary COPY in seq order into a HostCheck.

export interface HostJob {
  logId: string;
  hostname: string | null;
  cps: Checkpoint[];
  /** the key the auditor trusts for this host (--host-keys), instead of those the store holds */
  trusted?: KeyObject;
}

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

/** One host's rows in seq order, as one binary COPY (no parameters in COPY: the log id is quoted). */
const hostRowsCopy = (logId: string) =>
  `COPY (SELECT ${EVENT_COLUMNS} FROM airlock.events WHERE log_id = ${pg.escapeLiteral(logId)} ORDER BY seq) TO STDOUT (FORMAT binary)`;

export async function verifyHost(c: pg.ClientBase, job: HostJob): Promise<HostVerdict> {
  const { logId } = job;
  const check = new HostCheck(logId, job.hostname, job.cps, await hostKeys(c, logId, job.trusted));
  const reader = new CopyRowReader();
  let going = true;
  let malformed: unknown;
  // the server streams while this thread hashes; after a break the rest is drained unread
  const stream = c.query(copyTo(hostRowsCopy(logId)));
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
  if (malformed) throw malformed;
  if (going) reader.finish();
  check.finish();
  return check.v;
}
