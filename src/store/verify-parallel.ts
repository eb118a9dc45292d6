import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import type { Checkpoint } from '../audit/hashing.ts';
import type { HostVerdict, RangeSummary } from './host-check.ts';
import { type HostJob, type VerifyUnit, hostCheck, verifyHost, verifyUnit } from './verify-host.ts';

// The hosts' part of verifySharedStore, spread over threads. Hosts' chains are independent; a
// host larger than the range size is cut into seq ranges of a power of two events each, aligned
// on the host's tree (RangePlan), so every thread stays busy to the end however few or unequal
// the hosts and however late a worker starts. Each range is checked on its own from the stored
// prev_hash of its first row; joining them in order (HostCheck.joinRange) checks every seam —
// that stored prev_hash must be the hash recomputed for the row before — and judges the host's
// checkpoints on the joined tree. A host whose ranges do not join cleanly (anything wrong in it,
// or rows the plan did not expect) is verified again in one pass on this thread, which names the
// first bad event: the ranges only ever accept what the one-pass verify accepts.

export interface HostRow {
  log_id: string;
  hostname: string | null;
  head: string | null;
}

export interface ParallelOptions {
  trustedKeys?: Map<string, KeyObject>;
  url?: string;
  workers?: number;
  parallelFrom?: number;
  rangeSize?: number;
}

type Answer = HostVerdict | RangeSummary;

/** A unit of work, its size (for scheduling) and where its answer goes. */
interface Planned {
  unit: VerifyUnit;
  size: number;
  host: number;
  range?: number;
}

/** Ranges smaller than this cost more in COPY statements than they gain in balance. */
const MIN_RANGE = 4096;
/** At most this many ranges per host (a superuser's seq 10^15 makes a large head): the last is open. */
const MAX_RANGES = 1024;

/** About 8 units per thread: the last one to finish holds the others up by little. */
function defaultRangeSize(total: number, threads: number): number {
  let size = MIN_RANGE;
  while (size * 2 <= total / (threads * 8)) size *= 2;
  return size;
}

/** Every host as one unit, or as its ranges when larger than `rangeSize`; the largest first. */
function plan(jobs: HostJob[], sizes: number[], rangeSize: number): Planned[] {
  const units: Planned[] = [];
  jobs.forEach((job, host) => {
    const size = sizes[host]!;
    if (size <= rangeSize) {
      units.push({ unit: { host: job }, size, host });
      return;
    }
    for (let lo = 1, range = 0; lo <= size; lo += rangeSize, range++) {
      const last = lo + rangeSize - 1 >= size || range === MAX_RANGES - 1;
      const hi = last ? null : lo + rangeSize - 1; // the last range is open
      const want = job.cps.map((cp) => cp.size).filter((s) => s >= lo && (hi === null || s <= hi));
      const unit = { range: { logId: job.logId, lo, hi, want } };
      units.push({ unit, size: Math.min(rangeSize, size - lo + 1), host, range });
      if (last) break;
    }
  });
  return units.sort((a, b) => b.size - a.size);
}

/** The next message of a worker, or its failure. */
function answerOf(w: Worker): Promise<{ answer?: Answer; error?: string }> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      w.off('message', resolve);
      reject(e);
    };
    w.once('error', onError);
    w.once('message', (m: { answer?: Answer; error?: string }) => {
      w.off('error', onError);
      resolve(m);
    });
  });
}

/** Lets a worker end its connection cleanly; stops it after 5 s. */
async function closeWorker(w: Worker): Promise<void> {
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  w.postMessage('close');
  const timer = setTimeout(() => void w.terminate(), 5000);
  await exited;
  clearTimeout(timer);
}

const inThread = (c: pg.ClientBase) => (unit: VerifyUnit) => verifyUnit(c, unit);

const inWorker = (w: Worker) => async (unit: VerifyUnit) => {
  const reply = answerOf(w);
  w.postMessage(unit);
  const { answer, error } = await reply;
  if (!answer) throw new Error(`verify worker: ${error ?? 'no answer'}`);
  return answer;
};

/**
 * Units done by this thread (on `c`, which exports its snapshot) and `count` workers at once, in
 * order: this thread starts at once, a worker when it has loaded. Answers in the units' order.
 */
async function runUnits(c: pg.ClientBase, url: string, units: Planned[], count: number): Promise<Answer[]> {
  const snapshot = (await c.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
  const answers = new Array<Answer>(units.length);
  let next = 0;
  const workers = Array.from(
    { length: count },
    () => new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: { url, snapshot } }),
  );
  const consume = async (run: (unit: VerifyUnit) => Promise<Answer>) => {
    for (let i = next++; i < units.length; i = next++) answers[i] = await run(units[i]!.unit);
  };
  try {
    await Promise.all([consume(inThread(c)), ...workers.map((w) => consume(inWorker(w)))]);
  } finally {
    await Promise.all(workers.map((w) => closeWorker(w)));
  }
  return answers;
}

/** Each host's verdict: its own unit's, or its ranges joined (again in one pass when they do not join). */
async function assemble(c: pg.ClientBase, jobs: HostJob[], units: Planned[], answers: Answer[]) {
  const verdicts = new Array<HostVerdict>(jobs.length);
  const ranges: RangeSummary[][] = jobs.map(() => []);
  units.forEach((p, i) => {
    if (p.range === undefined) verdicts[p.host] = answers[i] as HostVerdict;
    else ranges[p.host]![p.range] = answers[i] as RangeSummary;
  });
  for (const [host, summaries] of ranges.entries()) {
    if (!summaries.length) continue;
    const check = await hostCheck(c, jobs[host]!);
    if (summaries.every((r) => check.joinRange(r))) {
      check.finish();
      verdicts[host] = check.v;
    } else verdicts[host] = await verifyHost(c, jobs[host]!);
  }
  return verdicts;
}

export async function verifyHosts(
  c: pg.ClientBase,
  rows: HostRow[],
  cps: Checkpoint[],
  opts: ParallelOptions,
): Promise<HostVerdict[]> {
  const jobs: HostJob[] = rows.map((h) => ({
    logId: h.log_id,
    hostname: h.hostname,
    cps: cps.filter((cp) => cp.logId === h.log_id),
    trusted: opts.trustedKeys?.get(h.log_id),
  }));
  // the heads only plan the work (a wrong one costs time, never a verdict: see RangeJob)
  const sizes = rows.map((h) => Math.max(0, Number(h.head ?? 0)) || 0);
  const total = sizes.reduce((n, s) => n + s, 0);
  const threads = Math.max(1, opts.workers ?? availableParallelism());
  const { rangeSize } = opts;
  if (rangeSize !== undefined && !(Number.isInteger(Math.log2(rangeSize)) && rangeSize >= 1))
    throw new Error(`rangeSize ${rangeSize} is not a power of two`);
  if (opts.url && threads >= 2 && total >= (opts.parallelFrom ?? 20_000)) {
    const units = plan(jobs, sizes, rangeSize ?? defaultRangeSize(total, threads));
    const answers = await runUnits(c, opts.url, units, Math.min(threads, units.length) - 1);
    return assemble(c, jobs, units, answers);
  }
  const verdicts: HostVerdict[] = [];
  for (const job of jobs) verdicts.push(await verifyHost(c, job));
  return verdicts;
}
