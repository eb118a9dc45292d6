import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import { type Checkpoint, MerkleFrontier } from '../audit/index.ts';
import { checkpointLeaf } from './global-log.ts';
import type { HostVerdict } from './host-check.ts';
import { type HostJob, READ_BY_PRIMARY_KEY, verifyHost } from './verify-host.ts';

export type { BadSharedEvent, HostVerdict } from './host-check.ts';

// `airlock audit verify` against the shared store: every host's chain is recomputed from the
// rows PostgreSQL holds (the verifier hashes; the server is not trusted to), its RFC 6962
// tree compared with each of its signed checkpoints, and the global log over all hosts'
// checkpoints rebuilt. A superuser who disabled the triggers and edited, deleted,
// reordered or truncated rows is caught at the first event that no longer fits: a gap in
// seq, a broken previous-hash link, content that does not match its hash, or fewer events
// than a signed checkpoint covers.
//
// Hosts' chains are independent: with the store's URL and enough events, they are verified in
// worker threads (one connection each, all in the snapshot this connection exported), the
// largest first.

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

interface HostRow {
  log_id: string;
  hostname: string | null;
  head: string | null;
}

// every log id the store mentions (a superuser may have deleted a host's row but not its events);
// the events' log ids by a skip scan of the primary key (one index probe per host, not a table scan)
const HOSTS = `WITH RECURSIVE ev(log_id) AS (
    SELECT min(log_id) FROM airlock.events
    UNION ALL SELECT (SELECT min(e.log_id) FROM airlock.events e WHERE e.log_id > ev.log_id) FROM ev WHERE ev.log_id IS NOT NULL)
  SELECT l.log_id, h.hostname, (SELECT max(seq) FROM airlock.events e WHERE e.log_id = l.log_id) AS head FROM
    (SELECT log_id FROM airlock.hosts UNION SELECT log_id FROM airlock.checkpoints UNION SELECT log_id FROM ev WHERE log_id IS NOT NULL) l
  LEFT JOIN airlock.hosts h USING (log_id) ORDER BY l.log_id`;

/** The next message of a worker, or its failure. */
function answerOf(w: Worker): Promise<{ verdict?: HostVerdict; error?: string }> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      w.off('message', resolve);
      reject(e);
    };
    w.once('error', onError);
    w.once('message', (m: { verdict?: HostVerdict; error?: string }) => {
      w.off('error', onError);
      resolve(m);
    });
  });
}

/**
 * Hosts verified by this thread (on `c`, which exported `snapshot`) and `count` workers at once,
 * largest first: this thread starts at once, a worker when it has loaded. Verdicts in the jobs' order.
 */
async function verifyInParallel(c: pg.ClientBase, url: string, jobs: HostJob[], sizes: number[], count: number) {
  const snapshot = (await c.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
  const order = jobs.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]!);
  const verdicts: HostVerdict[] = new Array<HostVerdict>(jobs.length);
  const workers = Array.from(
    { length: count },
    () => new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: { url, snapshot } }),
  );
  const inWorker = (w: Worker) => async (job: HostJob) => {
    const answer = answerOf(w);
    w.postMessage(job);
    const { verdict, error } = await answer;
    if (!verdict) throw new Error(`verify worker: ${error ?? 'no verdict'}`);
    return verdict;
  };
  const consume = async (verify: (job: HostJob) => Promise<HostVerdict>) => {
    for (let i = order.shift(); i !== undefined; i = order.shift()) verdicts[i] = await verify(jobs[i]!);
  };
  try {
    await Promise.all([consume((job) => verifyHost(c, job)), ...workers.map((w) => consume(inWorker(w)))]);
  } finally {
    await Promise.all(workers.map((w) => closeWorker(w)));
  }
  return verdicts;
}

/** Lets a worker end its connection cleanly; stops it after 5 s. */
async function closeWorker(w: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  w.postMessage('close');
  const timer = setTimeout(() => void w.terminate(), 5000);
  await exited;
  clearTimeout(timer);
}

async function verifyHosts(c: pg.ClientBase, rows: HostRow[], cps: Checkpoint[], opts: SharedVerifyOptions) {
  const jobs: HostJob[] = rows.map((h) => ({
    logId: h.log_id,
    hostname: h.hostname,
    cps: cps.filter((cp) => cp.logId === h.log_id),
    trusted: opts.trustedKeys?.get(h.log_id),
  }));
  // the heads only schedule the work (a wrong one costs time, never a verdict)
  const sizes = rows.map((h) => Math.max(0, Number(h.head ?? 0)) || 0);
  const total = sizes.reduce((n, s) => n + s, 0);
  const threads = Math.min(opts.workers ?? availableParallelism(), jobs.length);
  if (opts.url && threads >= 2 && total >= (opts.parallelFrom ?? 20_000))
    return verifyInParallel(c, opts.url, jobs, sizes, threads - 1);
  const verdicts: HostVerdict[] = [];
  for (const job of jobs) verdicts.push(await verifyHost(c, job));
  return verdicts;
}

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
