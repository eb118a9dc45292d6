// The shared store's verifier, baseline against candidate, on one store in one run: 4 hosts ×
// N events shipped once into a real PostgreSQL (fsync on), then `verifySharedStore` of a base
// commit (its src/ extracted with `git archive` beside this file, so it resolves the same
// node_modules) and of this tree's src/, rounds interleaved (the order flips every round), medians
// and their ratio. For a machine others load too: both sides see the same load.
// The first verify of a freshly written store also sets PostgreSQL's hint bits on every page
// (a cost a later read does not pay); it is timed on its own and left out of the rounds.
// Run: node bench/shared-verify-ab.ts [events per host, default 50000] [base ref, default HEAD]
//      [rounds, default 5]   (--cpu-prof: add AB_ONLY=candidate to profile one side)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { migratePg } from '../src/store/index.ts';
import { PgCluster } from '../test/store/pg-cluster.ts';
import { median, writeSection } from './report.ts';

type Verify = typeof import('../src/store/index.ts').verifySharedStore;

const N = Number(process.argv[2] ?? 50_000);
const BASE = process.argv[3] ?? 'HEAD';
const ROUNDS = Number(process.argv[4] ?? 5);
const HOSTS = 4;
const only = process.env.AB_ONLY;
const here = dirname(fileURLToPath(import.meta.url));

/** The base commit's src/ beside this file (inside the repository: its imports find node_modules). */
async function baseVerifier(dir: string): Promise<Verify> {
  const tar = execFileSync('git', ['-C', join(here, '..'), 'archive', BASE, 'src'], { maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  return ((await import(join(dir, 'src/store/index.ts'))) as { verifySharedStore: Verify }).verifySharedStore;
}

/** Runs the bench's writer threads (bench/shared-store-worker.ts) to the end. */
async function writers(data: object[]): Promise<void> {
  const workers = data.map((d) => new Worker(new URL('./shared-store-worker.ts', import.meta.url), { workerData: d }));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.once('message', () => {
            w.once('message', () => resolve());
            w.postMessage('go');
          });
          w.once('error', reject);
        }),
    ),
  );
}

const TICK = 100; // clock ticks per second (USER_HZ) on Linux

/** CPU seconds the cluster spent so far: the postmaster, its live children and those it reaped. */
function serverCpu(data: string): number {
  const ticks = (pid: string, fields: number[]) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: rest[1], sum: fields.reduce((n, f) => n + Number(rest[f - 3]), 0) };
  };
  const postmaster = readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]!;
  let sum = ticks(postmaster, [14, 15, 16, 17]).sum;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const t = ticks(pid, [14, 15]);
      if (t.ppid === postmaster) sum += t.sum;
    } catch {
      /* gone meanwhile */
    }
  }
  return sum / TICK;
}

interface Run {
  wall: number;
  client: number;
  server: number;
}

/** One verify: wall time, this process's CPU (every thread), the cluster's CPU. */
async function timedVerify(verify: Verify, c: pg.Client, url: string): Promise<Run> {
  const server = serverCpu(cluster.data);
  const cpu = process.cpuUsage();
  const t = performance.now();
  const v = await verify(c, { url });
  const wall = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the workers' backends are reaped
  if (!v.ok || v.events !== HOSTS * N) throw new Error(`the store does not verify: ${JSON.stringify(v).slice(0, 300)}`);
  return { wall, client: (used.user + used.system) / 1e6, server: serverCpu(cluster.data) - server };
}

type Side = { rate: number; wall: number; clientCpu: number; serverCpu: number };

function report(
  base: Side,
  cand: Side,
  r: { ratio: number | null; load: string; walls: { base: number[]; candidate: number[] } },
): string {
  const row = (name: string, x: Side) =>
    `| ${name} | ${x.rate.toLocaleString('en')} ev/s | ${x.wall.toFixed(3)} s | ${x.clientCpu.toFixed(2)} s | ${x.serverCpu.toFixed(2)} s |`;
  return `## Shared store verify, base against candidate (bench/shared-verify-ab.ts)

\`node bench/shared-verify-ab.ts ${N} ${BASE} ${ROUNDS}\` — ${HOSTS} hosts × ${N.toLocaleString('en')} events in one
PostgreSQL 15 (fsync on), verified by the verifier of \`${BASE}\` and of this tree, ${ROUNDS} rounds interleaved
(order flipped each round), medians. CPU: this process's (every thread) and the cluster's (/proc), per verify.
Load during the run: ${r.load}: both sides share it; the ratio is the finding.

| verifier | verify | wall | client CPU | server CPU |
| --- | --- | --- | --- | --- |
${row(`base (${BASE})`, base)}
${row('candidate', cand)}

Speed-up, base wall / candidate wall (medians): **${r.ratio}×**.
Walls per round (s), base: ${r.walls.base.join(', ')}; candidate: ${r.walls.candidate.join(', ')}.`;
}

const root = mkdtempSync(join(tmpdir(), 'airlock-bench-verify-'));
const baseDir = mkdtempSync(join(here, '.ab-base-'));
mkdirSync(baseDir, { recursive: true });
const cluster = await PgCluster.create({ durable: true });
try {
  const base = await baseVerifier(baseDir);
  const candidate = ((await import('../src/store/index.ts')) as { verifySharedStore: Verify }).verifySharedStore;
  const hosts = Array.from({ length: HOSTS }, (_, i) => join(root, `host${i}.db`));
  await writers(hosts.map((path) => ({ mode: 'sqlite', path, n: N, batch: 5000 })));
  await cluster.sql('CREATE DATABASE ab');
  const url = cluster.url('postgres', 'ab');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await migratePg(c, 'ab');
  await writers(hosts.map((path) => ({ mode: 'pg', path, url, n: N, batch: 10_000 })));
  const first = await timedVerify(candidate, c, url);
  const loadBefore = loadavg()[0]!;
  const times = { base: [] as Run[], candidate: [] as Run[] };
  for (let r = 0; r < ROUNDS; r++) {
    const sides = r % 2 ? (['candidate', 'base'] as const) : (['base', 'candidate'] as const);
    for (const side of sides)
      if (!only || only === side) times[side].push(await timedVerify(side === 'base' ? base : candidate, c, url));
  }
  await c.end();
  const med = (runs: Run[], k: keyof Run) => median(runs.map((r) => r[k]));
  const side = (runs: Run[]) =>
    runs.length
      ? {
          rate: Math.round((HOSTS * N) / med(runs, 'wall')),
          wall: +med(runs, 'wall').toFixed(3),
          clientCpu: +med(runs, 'client').toFixed(3),
          serverCpu: +med(runs, 'server').toFixed(3),
        }
      : null;
  const result = {
    events: HOSTS * N,
    baseRef: BASE,
    firstRead: first,
    base: side(times.base),
    candidate: side(times.candidate),
    ratio:
      times.base.length && times.candidate.length
        ? +(med(times.base, 'wall') / med(times.candidate, 'wall')).toFixed(2)
        : null,
    walls: {
      base: times.base.map((r) => +r.wall.toFixed(3)),
      candidate: times.candidate.map((r) => +r.wall.toFixed(3)),
    },
    load: `${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (1-minute load average, ${availableParallelism()} cores)`,
  };
  console.log(JSON.stringify(result));
  if (result.base && result.candidate) writeSection('shared-verify-ab', report(result.base, result.candidate, result));
} finally {
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(baseDir, { recursive: true, force: true });
}
