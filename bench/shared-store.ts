// The shared PostgreSQL store beside SQLite, in one run, rounds interleaved:
//   ingest: 4 writers at once. SQLite: 4 threads appending (redact, hash, group commit of 500,
//           fsync) to one audit.db. PostgreSQL: 4 hosts' shippers at once, each copying its
//           prepared local log (batches of 10,000, one binary COPY per batch) into a fresh database.
//   verify: SQLite's `verifyLogAsync` over the 4-writer file; `verifySharedStore` over the
//           4 hosts in PostgreSQL (the verifier hashes every event itself; hosts and seq ranges
//           in parallel, this thread and workers, one connection each in one snapshot), timed
//           twice: right after the ingest (that first read also sets PostgreSQL's hint bits on
//           every page) and after a VACUUM ANALYZE (what autovacuum does after an insert-heavy
//           load, and what any earlier read leaves: the store an auditor usually verifies).
// PostgreSQL runs with fsync on (a real cluster in a temp dir, unix socket).
// Run: node bench/shared-store.ts [events per writer, default 50000]  (about 2 minutes)
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { AuditStore, verifyLogAsync } from '../src/audit/index.ts';
import { migratePg, verifySharedStore } from '../src/store/index.ts';
import { PgCluster } from '../test/store/pg-cluster.ts';
import { median, writeSection } from './report.ts';

const N = Number(process.argv[2] ?? 50_000);
const WRITERS = 4;
const ROUNDS = 3;
const root = mkdtempSync(join(tmpdir(), 'airlock-bench-shared-'));
const cluster = await PgCluster.create({ durable: true });

/** Starts writers, waits until each is loaded (and connected), then times only their work. */
async function timedWriters(data: object[]): Promise<number> {
  const workers = data.map((d) => new Worker(new URL('./shared-store-worker.ts', import.meta.url), { workerData: d }));
  const message = (w: Worker) =>
    new Promise<unknown>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  await Promise.all(workers.map(message));
  const t = performance.now();
  const done = workers.map(message);
  for (const w of workers) w.postMessage('go');
  await Promise.all(done);
  return (performance.now() - t) / 1000;
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
}

// each host's local log, prepared once (not timed): what its shipper copies
const hosts = Array.from({ length: WRITERS }, (_, i) => join(root, `host${i}.db`));
await timedWriters(hosts.map((path) => ({ mode: 'sqlite', path, n: N, batch: 5000 })));

const rates = {
  sqliteIngest: [] as number[],
  pgIngest: [] as number[],
  sqliteVerify: [] as number[],
  pgVerifyFirst: [] as number[],
  pgVerify: [] as number[],
};
let bytesPerEvent = { total: 0, heap: 0 };
const loadBefore = loadavg()[0]!;
try {
  for (let r = 0; r < ROUNDS; r++) {
    const file = join(root, `ingest${r}.db`);
    new AuditStore(file).close();
    rates.sqliteIngest.push(
      (WRITERS * N) /
        (await timedWriters(Array.from({ length: WRITERS }, () => ({ mode: 'sqlite', path: file, n: N, batch: 500 })))),
    );

    const db = `ingest${r}`;
    await cluster.sql(`CREATE DATABASE ${db}`);
    const admin = new pg.Client({ connectionString: cluster.url('postgres', db) });
    await admin.connect();
    await migratePg(admin, db);
    rates.pgIngest.push(
      (WRITERS * N) /
        (await timedWriters(
          hosts.map((path) => ({ mode: 'pg', path, url: cluster.url('postgres', db), n: N, batch: 10_000 })),
        )),
    );

    let events = 0;
    const sqliteSecs = await timed(async () => {
      const v = await verifyLogAsync(file);
      if (!v.ok) throw new Error('the SQLite log does not verify');
      events = v.events;
    });
    rates.sqliteVerify.push(events / sqliteSecs);
    const pgVerify = () =>
      timed(async () => {
        const v = await verifySharedStore(admin, { url: cluster.url('postgres', db) });
        if (!v.ok || v.events < WRITERS * N)
          throw new Error(`the shared store does not verify: ${JSON.stringify(v).slice(0, 300)}`);
      });
    rates.pgVerifyFirst.push((WRITERS * N) / (await pgVerify()));
    await admin.query('VACUUM (ANALYZE) airlock.events');
    rates.pgVerify.push((WRITERS * N) / (await pgVerify()));
    const size = await admin.query<{ total: string; heap: string }>(
      "SELECT pg_total_relation_size('airlock.events') AS total, pg_relation_size('airlock.events') AS heap",
    );
    bytesPerEvent = {
      total: Number(size.rows[0]!.total) / (WRITERS * N),
      heap: Number(size.rows[0]!.heap) / (WRITERS * N),
    };
    await admin.end();
  }
} finally {
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
}

const load = `${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (1-minute load average, ${availableParallelism()} cores)`;
const fmt = (xs: number[]) => `${Math.round(median(xs)).toLocaleString('en')} ev/s`;
const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
const md = `## Shared store: PostgreSQL beside SQLite (bench/shared-store.ts)

\`node bench/shared-store.ts ${N}\` — ${WRITERS} writers × ${N.toLocaleString('en')} events, ${ROUNDS} rounds interleaved, medians.
Load during the run: ${load}. On a shared machine other engineers' test runs move the absolute numbers; the ratios are the finding.

| | SQLite (one audit.db) | PostgreSQL 15 (shared store, fsync on) | PostgreSQL / SQLite | goal |
| --- | --- | --- | --- | --- |
| ingest, ${WRITERS} writers | ${fmt(rates.sqliteIngest)} | ${fmt(rates.pgIngest)} | ${ratio(rates.pgIngest, rates.sqliteIngest)} | ≥ 50,000 ev/s |
| verify | ${fmt(rates.sqliteVerify)} | ${fmt(rates.pgVerify)} | ${ratio(rates.pgVerify, rates.sqliteVerify)} | ≥ 200,000 ev/s |
| verify, first read right after the ingest | | ${fmt(rates.pgVerifyFirst)} | ${ratio(rates.pgVerifyFirst, rates.sqliteVerify)} | |

What each side does. SQLite ingest is the full append path (redaction, canonical JSON, chain hash,
group commits of 500 under BEGIN IMMEDIATE, fsync at each commit): the four writers serialize on one
file. PostgreSQL ingest is the shipping path: rows already hashed on their host are copied as they
are, one binary \`COPY\` straight into \`airlock.events\` per 10,000 events (the next batch read from
SQLite meanwhile), the four hosts in parallel (each has its own chain, so nothing serializes them
but the WAL). SQLite verify runs on worker threads over ranges; PostgreSQL verify streams each
host's seq ranges by binary \`COPY … TO STDOUT\` and hashes the bytes itself (a superuser is not
trusted to hash for it), ranges in parallel on this thread and worker threads, seams checked when
they are joined. The PostgreSQL verify row is timed after a \`VACUUM ANALYZE\` of the events (what
autovacuum does after an insert-heavy load); the row below it is the first read of the store right
after the ingest, which also sets hint bits on every page it reads. One event takes
${Math.round(bytesPerEvent.total)} bytes in PostgreSQL with its indexes (${Math.round(bytesPerEvent.heap)} in the heap).`;
writeSection('shared-store', md);
console.log(md);
