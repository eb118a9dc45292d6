import { Worker } from 'node:worker_threads';
import { judgeFile, type JudgeJob, type Verdict } from './judge.ts';

// Runs file verdicts on worker threads when there is enough to scan to pay for starting
// them (each loads the detection engine), inline otherwise. A worker that dies fails its
// jobs closed: the file is hidden as a scan error, never passed as clean.

export interface JudgePool {
  judge(job: JudgeJob): Promise<Verdict>;
  close(): Promise<void>;
}

/** One file at a time per worker: a file's bytes and text are its memory (10 MiB files, 256 MiB goal). */
const IN_FLIGHT_PER_WORKER = 1;

/** Heap bounds per worker: V8 otherwise lets each heap grow with the garbage of a gigabyte
 * scan (the supervisor's peak memory goal is 256 MiB). Ample for one 10 MiB file at a time;
 * a worker that still runs out dies, and its files fail closed. */
const WORKER_HEAP = { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 96 };

const failed = (why: string): Verdict => ({
  v: 'hide',
  reason: 'scan-error',
  rule: 'secrets.workspace.mode',
  extra: { error: why },
});

export function inlinePool(): JudgePool {
  return { judge: judgeFile, close: async () => {} };
}

interface Slot {
  worker: Worker;
  pending: Map<number, (v: Verdict) => void>;
  dead: boolean;
}

export function workerPool(size: number): JudgePool {
  let next = 0;
  const queue: { id: number; job: JudgeJob; done: (v: Verdict) => void }[] = [];
  const slots: Slot[] = [];
  const pump = () => {
    for (const s of slots) {
      while (!s.dead && s.pending.size < IN_FLIGHT_PER_WORKER && queue.length) {
        const q = queue.shift()!;
        s.pending.set(q.id, q.done);
        s.worker.postMessage({ id: q.id, job: q.job });
      }
    }
    if (queue.length && slots.every((s) => s.dead)) for (const q of queue.splice(0)) q.done(failed('worker-exited'));
  };
  const kill = (s: Slot, why: string) => {
    s.dead = true;
    for (const done of s.pending.values()) done(failed(why));
    s.pending.clear();
    pump();
  };
  for (let i = 0; i < size; i++) {
    const worker = new Worker(new URL('./scan-worker.ts', import.meta.url), { resourceLimits: WORKER_HEAP });
    const slot: Slot = { worker, pending: new Map(), dead: false };
    worker.on('message', (m: { id: number; verdict: Verdict }) => {
      const done = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      done?.(m.verdict);
      pump();
    });
    worker.on('error', (e) => kill(slot, e.name || 'worker-error'));
    worker.on('exit', () => {
      if (!slot.dead) kill(slot, 'worker-exited');
    });
    slots.push(slot);
  }
  return {
    judge: (job) =>
      new Promise<Verdict>((done) => {
        queue.push({ id: next++, job, done });
        pump();
      }),
    close: async () => {
      for (const s of slots) s.dead = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
