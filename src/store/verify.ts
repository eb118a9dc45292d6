import type { KeyObject } from 'node:crypto';
import type pg from 'pg';
import { type Checkpoint, MerkleFrontier } from '../audit/index.ts';
import { checkpointLeaf } from './global-log.ts';
import type { HostVerdict } from './host-check.ts';
import { READ_BY_PRIMARY_KEY } from './verify-host.ts';
import { verifyHosts, type HostRow } from './verify-parallel.ts';

export type { BadSharedEvent, HostVerdict } from './host-check.ts';

// `airlock audit verify` against the shared store: every host's chain is recomputed from the
// rows PostgreSQL holds (the verifier hashes; the server is not trusted to), its RFC 6962
// tree compared with each of its signed checkpoints, and the global log over all hosts'
// checkpoints rebuilt. A superuser who disabled the triggers and edited, deleted,
// reordered or truncated rows is caught at the first event that no longer fits: a gap in
// seq, a broken previous-hash link, content that does not match its hash, or fewer events
// than a signed checkpoint covers.
//
// Hosts' chains are independent, and a large host's chain is cut into seq ranges whose seams are
// checked when they are joined: with the store's URL and enough events, hosts and ranges are
// verified by this thread and worker threads (one connection each, all in the snapshot this
// connection exported), the largest first (verify-parallel.ts).

export interface SharedVerifyResult {
  ok: boolean;
  hosts: HostVerdict[];
  events: number;
  /** the global log: its size (checkpoints) and RFC 6962 root (hex) */
  global: { size: number; root: string; problems: string[] };
}

export interface SharedVerifyOptions {
  /** Keys to trust per host log id, instead of those the store holds (a superuser can replace those). */
  trustedKeys?: Map<string, KeyObject>;
  /** the store's connection string: lets hosts be verified in worker threads, each over its own connection */
  url?: string;
  /** at most this many threads, this one included (default: the cores, at most one per host) */
  workers?: number;
  /** below this many events in all, one thread verifies everything (default 20,000: a worker costs a start) */
  parallelFrom?: number;
  /**
   * Threads verify a host of more events in seq ranges of this many (a power of two; default from
   * the events and threads, at least 4,096), so they stay busy to the end however unequal the hosts.
   */
  rangeSize?: number;
}

interface CpRow {
  log_id: string;
  id: string;
  size: string;
  root: string;
  ts: string;
  reason: string;
  key_id: string;
  signature: string;
}
const toCheckpoint = (r: CpRow): Checkpoint => ({
  id: Number(r.id),
  logId: r.log_id,
  size: Number(r.size),
  root: r.root,
  ts: r.ts,
  reason: r.reason,
  keyId: r.key_id,
  signature: r.signature,
});

async function verifyGlobalLog(c: pg.ClientBase, cps: Checkpoint[]): Promise<SharedVerifyResult['global']> {
  const problems: string[] = [];
  const byKey = new Map(cps.map((cp) => [`${cp.logId}\n${cp.id}`, cp]));
  const rows = (
    await c.query<{ gseq: string; log_id: string; checkpoint_id: string; leaf: string }>(
      'SELECT gseq, log_id, checkpoint_id, leaf FROM airlock.global_log ORDER BY gseq',
    )
  ).rows;
  const f = new MerkleFrontier();
  const seen = new Set<string>();
  for (const r of rows) {
    const gseq = Number(r.gseq);
    if (gseq !== f.size + 1) {
      problems.push(`global log entries ${f.size + 1}..${gseq - 1} are missing (deleted)`);
      break;
    }
    const k = `${r.log_id}\n${r.checkpoint_id}`;
    const cp = byKey.get(k);
    const leaf = cp ? checkpointLeaf(cp) : null;
    if (!leaf)
      problems.push(
        `global log entry ${gseq}: checkpoint #${r.checkpoint_id} of host log ${r.log_id} is missing (deleted)`,
      );
    else if (leaf.toString('hex') !== r.leaf)
      problems.push(
        `global log entry ${gseq}: does not match checkpoint #${r.checkpoint_id} of host log ${r.log_id} (one of them altered)`,
      );
    seen.add(k);
    f.pushLeafHash(leaf ?? Buffer.from(r.leaf, 'hex'));
  }
  for (const cp of cps)
    if (!seen.has(`${cp.logId}\n${cp.id}`))
      problems.push(`checkpoint #${cp.id} of host log ${cp.logId} is not in the global log`);
  return { size: f.size, root: f.root().toString('hex'), problems };
}

// every log id the store mentions (a superuser may have deleted a host's row but not its events);
// the events' log ids by a skip scan of the primary key (one index probe per host, not a table scan)
const HOSTS = `WITH RECURSIVE ev(log_id) AS (
    SELECT min(log_id) FROM airlock.events
    UNION ALL SELECT (SELECT min(e.log_id) FROM airlock.events e WHERE e.log_id > ev.log_id) FROM ev WHERE ev.log_id IS NOT NULL)
  SELECT l.log_id, h.hostname, (SELECT max(seq) FROM airlock.events e WHERE e.log_id = l.log_id) AS head FROM
    (SELECT log_id FROM airlock.hosts UNION SELECT log_id FROM airlock.checkpoints UNION SELECT log_id FROM ev WHERE log_id IS NOT NULL) l
  LEFT JOIN airlock.hosts h USING (log_id) ORDER BY l.log_id`;

/** Verifies every host's chain, checkpoints and the global log from the shared store alone. */
export async function verifySharedStore(c: pg.ClientBase, opts: SharedVerifyOptions = {}): Promise<SharedVerifyResult> {
  // one snapshot for the whole run: rows shipped meanwhile do not make a consistent store look broken
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await c.query(READ_BY_PRIMARY_KEY);
    const cps = (await c.query<CpRow>('SELECT * FROM airlock.checkpoints ORDER BY log_id, id')).rows.map(toCheckpoint);
    const hostRows = (await c.query<HostRow>(HOSTS)).rows;
    const hosts = await verifyHosts(c, hostRows, cps, opts);
    const global = await verifyGlobalLog(c, cps);
    const ok = global.problems.length === 0 && hosts.every((h) => !h.firstBad && h.problems.length === 0);
    return { ok, hosts, events: hosts.reduce((n, h) => n + h.events, 0), global };
  } finally {
    await c.query('COMMIT').catch(() => {
      /* connection lost */
    });
  }
}
