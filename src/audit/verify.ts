import { DatabaseSync } from 'node:sqlite';
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GENESIS_HASH } from './event.ts';
import { MerkleFrontier } from './merkle.ts';
import { type Checkpoint, listCheckpoints, verifyCheckpointSignature } from './checkpoint.ts';
import { type BadEvent, type RangeResult, verifyRange } from './verify-range.ts';

export interface VerifyResult {
  ok: boolean;
  events: number;
  /** First event that does not verify, and why. */
  firstBad?: BadEvent;
  headHash: string;
  /** RFC 6962 root over all events (hex), when the chain verified. */
  root?: string;
  /** Checkpoints whose signature and root were checked against the events. */
  checkpointsChecked?: number;
  /** False when checkpoints exist but no public key was given. */
  signaturesChecked?: boolean;
  /** Everything found wrong that is not an event (bad signatures, foreign checkpoints). */
  problems?: string[];
}

export interface VerifyOptions {
  /** Check signed checkpoints (default true). */
  checkpoints?: boolean;
  /** Key to check checkpoint signatures with; null/absent = signatures not checked. */
  publicKey?: KeyObject | null;
}

const CHUNK = 65_536; // a power of two: ranges start at multiples of it (see RangeResult)

// Recomputes the chain from genesis and the RFC 6962 tree alongside it, compares the tree
// with every signed checkpoint and checks their signatures. Reads the file read-only with
// its own connection, so a tampered file (triggers dropped, rows edited) is judged as is.
class Verifier {
  readonly cps: Checkpoint[];
  readonly problems: string[] = [];
  readonly pub: KeyObject | null;
  private bySize = new Map<number, Checkpoint[]>();
  private frontier = new MerkleFrontier();
  private lastGoodCpSize = 0;
  private cpChecked = 0;
  private head = GENESIS_HASH;
  maxSeq = 0;
  early?: VerifyResult;

  constructor(db: DatabaseSync, opts: VerifyOptions) {
    this.cps = opts.checkpoints === false ? [] : listCheckpoints(db);
    this.pub = opts.publicKey ?? null;
    let logIdKv: string | undefined;
    try {
      logIdKv = (db.prepare("SELECT v FROM kv WHERE k = 'audit.logId'").get() as { v: string } | undefined)?.v;
    } catch {
      /* no kv table */
    }
    for (const c of this.cps) {
      // Typed as the store writes them: a size read back as text ('30') would still sign as
      // "size 30" but never match the numeric tree size, so the checkpoint would go unchecked.
      if (!Number.isSafeInteger(c.size) || c.size < 0 || typeof c.root !== 'string' || !/^[0-9a-f]{64}$/.test(c.root)) {
        this.problems.push(
          `checkpoint #${c.id}: size or root is not of the type Airlock writes (checkpoint table altered); it cannot be checked against the events`,
        );
        continue;
      }
      if (this.pub && !verifyCheckpointSignature(c, this.pub))
        this.problems.push(
          `checkpoint #${c.id} (size ${c.size}): signature does not verify (checkpoint altered, or signed by another key)`,
        );
      if (logIdKv && c.logId !== logIdKv)
        this.problems.push(`checkpoint #${c.id}: belongs to log ${c.logId}, not to this log (${logIdKv})`);
      this.bySize.set(c.size, [...(this.bySize.get(c.size) ?? []), c]);
    }
    if (opts.checkpoints !== false) this.crossCheckChain(db);
    // Rows outside 1..n are not part of the chain but readers would show them. seq is read
    // as text: beyond 2^53 node:sqlite would throw instead of letting verify name the row.
    const stray = db
      .prepare(
        `SELECT CAST(seq AS TEXT) AS s, id FROM events WHERE seq <= 0 OR seq > ${Number.MAX_SAFE_INTEGER} ORDER BY seq LIMIT 1`,
      )
      .get() as { s: string; id: string } | undefined;
    if (stray) {
      const low = stray.s.startsWith('-') || stray.s === '0';
      this.early = this.result({
        seq: Number(stray.s),
        id: stray.id,
        reason: `event with seq ${low ? '<= 0' : `${stray.s} (beyond 2^53)`} inserted outside the chain`,
      });
    }
    if (this.early) return;
    this.maxSeq = (db.prepare('SELECT MAX(seq) AS m FROM events').get() as { m: number | null }).m ?? 0;
    const bad = this.checkAt(0, () => this.frontier.root());
    if (!this.early && bad) this.early = this.result(bad);
  }

  /**
   * Every checkpoint is also an `audit.checkpoint` event in the chain. A table row that is
   * missing or differs from its event (a dropped or rewritten table) is a problem, and the
   * event's own signed (size, root) is checked against the events instead. The event rows
   * are trustworthy once the chain verifies; if they were edited, the chain names them.
   */
  private crossCheckChain(db: DatabaseSync): void {
    let rows: { seq: number; data: string }[];
    try {
      rows = db
        .prepare("SELECT seq, data FROM events WHERE type = 'audit.checkpoint' ORDER BY seq")
        .all() as unknown as { seq: number; data: string }[];
    } catch {
      return;
    }
    const byId = new Map(this.cps.map((c) => [c.id, c]));
    for (const row of rows) {
      let d: Record<string, unknown>;
      try {
        d = JSON.parse(row.data) as Record<string, unknown>;
      } catch {
        continue;
      }
      const id = d.checkpointId;
      if (typeof id !== 'number') continue;
      const c = byId.get(id);
      if (c && c.size === d.size && c.root === d.root) continue;
      this.problems.push(
        `checkpoint #${id} recorded in the chain (event ${row.seq}) is ${c ? 'different in' : 'missing from'} the checkpoint table (table altered or dropped)`,
      );
      const cp: Checkpoint = {
        id,
        logId: String(d.logId),
        size: d.size as number,
        root: d.root as string,
        ts: String(d.time),
        reason: String(d.reason),
        keyId: String(d.keyId),
        signature: String(d.signature),
      };
      if (
        !Number.isSafeInteger(cp.size) ||
        cp.size < 0 ||
        typeof cp.root !== 'string' ||
        !/^[0-9a-f]{64}$/.test(cp.root)
      )
        continue;
      if (this.pub && !verifyCheckpointSignature(cp, this.pub)) {
        this.problems.push(`checkpoint #${id} in the chain (event ${row.seq}): signature does not verify`);
        continue;
      }
      this.bySize.set(cp.size, [...(this.bySize.get(cp.size) ?? []), cp]);
    }
  }

  private checkAt(n: number, rootOf: () => Buffer): BadEvent | undefined {
    const list = this.bySize.get(n);
    if (!list) return undefined;
    const root = rootOf().toString('hex');
    for (const c of list) {
      if (c.root !== root) {
        return {
          seq: this.lastGoodCpSize + 1,
          id: null,
          reason: `events ${this.lastGoodCpSize + 1}..${n} do not match signed checkpoint #${c.id} (root differs: the log was rewritten and its chain recomputed)`,
        };
      }
      this.cpChecked += 1;
    }
    this.lastGoodCpSize = n;
    return undefined;
  }

  /** Checkpoint sizes inside [lo, hi], for the range verifier to take frontiers at. */
  sizesIn(lo: number, hi: number): number[] {
    return [...this.bySize.keys()].filter((n) => n >= lo && n <= hi);
  }

  /** Consumes one verified range, in order. Returns a final result when it found a bad event. */
  take(r: RangeResult): VerifyResult | undefined {
    for (const at of r.atSizes) {
      const bad = this.checkAt(at.size, () => this.frontier.root(at.frontier.map((h) => Buffer.from(h, 'hex'))));
      if (bad) return this.result(bad);
    }
    this.frontier.pushFrontier(r.count, r.frontier);
    this.head = r.lastHash;
    return r.firstBad ? this.result(r.firstBad) : undefined;
  }

  finish(): VerifyResult {
    const beyond = this.cps.filter((c) => c.size > this.frontier.size).sort((a, b) => b.size - a.size)[0];
    if (beyond)
      return this.result({
        seq: this.frontier.size + 1,
        id: null,
        reason: `log truncated: checkpoint #${beyond.id} signed ${beyond.size} events, only ${this.frontier.size} present`,
      });
    return this.result(undefined);
  }

  result(firstBad: BadEvent | undefined): VerifyResult {
    return {
      ok: !firstBad && this.problems.length === 0,
      events: this.frontier.size,
      firstBad,
      headHash: this.head,
      root: firstBad ? undefined : this.frontier.root().toString('hex'),
      checkpointsChecked: this.cpChecked,
      signaturesChecked: this.cps.length === 0 || this.pub !== null,
      problems: this.problems,
    };
  }
}

/** Verifies in this thread. */
export function verifyLog(dbPath: string, opts: VerifyOptions = {}): VerifyResult {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return verifyInThread(db, new Verifier(db, opts));
  } finally {
    db.close();
  }
}

function verifyInThread(db: DatabaseSync, v: Verifier): VerifyResult {
  if (v.early) return v.early;
  for (let lo = 1; lo <= v.maxSeq; lo += CHUNK) {
    const hi = Math.min(v.maxSeq, lo + CHUNK - 1);
    const bad = v.take(verifyRange(db, lo, hi, v.sizesIn(lo, hi)));
    if (bad) return bad;
  }
  return v.finish();
}

/**
 * Same result as verifyLog; large logs are split into ranges verified by worker threads
 * (chain hashes and leaf hashes), while this thread folds the tree and checks checkpoints.
 */
export async function verifyLogAsync(
  dbPath: string,
  opts: VerifyOptions & { workers?: number } = {},
): Promise<VerifyResult> {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  let verifier: Verifier;
  let nWorkers: number;
  try {
    verifier = new Verifier(db, opts);
    nWorkers = Math.min(opts.workers ?? availableParallelism(), 8, Math.ceil(verifier.maxSeq / CHUNK));
    // small log: same thread, same connection and checkpoints (signatures checked once)
    if (verifier.early || nWorkers < 2) return verifyInThread(db, verifier);
  } finally {
    db.close();
  }
  const ranges: [number, number][] = [];
  for (let lo = 1; lo <= verifier.maxSeq; lo += CHUNK) ranges.push([lo, Math.min(verifier.maxSeq, lo + CHUNK - 1)]);
  const workers = Array.from({ length: nWorkers }, () => new Worker(new URL('./verify-worker.ts', import.meta.url)));
  try {
    const results = new Map<number, RangeResult>();
    let next = 0;
    let wanted = 0;
    let final: VerifyResult | undefined;
    await new Promise<void>((resolve, reject) => {
      const idle: Worker[] = [];
      const feed = (w: Worker) => {
        if (final || next >= ranges.length) return;
        if (next - wanted >= nWorkers * 3) {
          idle.push(w);
          return;
        } // bound memory held in results
        const [lo, hi] = ranges[next++]!;
        w.postMessage({ dbPath, lo, hi, sizes: verifier.sizesIn(lo, hi) });
      };
      const drain = () => {
        while (!final && wanted < ranges.length && results.has(wanted)) {
          const r = results.get(wanted)!;
          results.delete(wanted);
          wanted += 1;
          final = verifier.take(r);
          while (idle.length && next - wanted < nWorkers * 3) feed(idle.shift()!);
        }
        if (final || wanted >= ranges.length) resolve();
      };
      for (const w of workers) {
        w.on('message', (r: RangeResult & { error?: string }) => {
          if (r.error) {
            reject(new Error(`verify worker: ${r.error}`));
            return;
          }
          results.set((r.lo - 1) / CHUNK, r);
          feed(w);
          drain();
        });
        w.on('error', reject);
        feed(w);
      }
    });
    return final ?? verifier.finish();
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Chain only (kept for callers of the original API). */
export function verifyChain(dbPath: string): VerifyResult {
  return verifyLog(dbPath, { checkpoints: false });
}
