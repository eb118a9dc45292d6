// The shared store's per-session summary (schema v8), baseline and candidate in one run:
//   ingest: 4 hosts ship their prepared logs at once into a fresh database at schema v6 (no
//           summary trigger) and one at the latest schema (the trigger aggregates each COPY
//           batch into airlock.session_summary and NOTIFYs), rounds interleaved.
//   listing: other hosts' sessions as before v8 (GROUP BY over every event) and from the
//           summary, on the same database, queries interleaved.
// PostgreSQL runs with fsync on (a real cluster in a temp dir, unix socket).
// Run: node bench/session-summary.ts [events per host, default 50000]  (about a minute)
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { AuditStore } from '../src/audit/index.ts';
import { PG_MIGRATIONS, migratePg, otherHostsSessionRows } from '../src/store/index.ts';
import { SESSION_COLUMNS } from '../src/session/index.ts';
import { PgCluster } from '../test/store/pg-cluster.ts';
import { median, writeSection } from './report.ts';

const N = Number(process.argv[2] ?? 50_000);
const HOSTS = 4;
const SESSIONS = 50;
const ROUNDS = 4;
const LISTINGS = 10;
const root = mkdtempSync(join(tmpdir(), 'airlock-bench-summary-'));
const cluster = await PgCluster.create({ durable: true });

/** Each host's local log (not timed): SESSIONS sessions, their events interleaved as concurrent sessions write them. */
function prepareHost(path: string): void {
  const store = new AuditStore(path);
  for (let i = 0; i < N; i += 500) {
    store.appendMany(
      Array.from({ length: Math.min(500, N - i) }, (_, k) => ({
        type: 'process.exec',
        session: `s${(i + k) % SESSIONS}`,
        decision: (i + k) % 11 === 0 ? ('deny' as const) : ('allow' as const),
        data: { pid: 1000 + k, argv: ['cc', '-O2', '-c', `src/file${i + k}.c`] },
      })),
    );
  }
  store.close();
}

/** Ships every host at once (one thread each, shipOnce in batches of 10,000); seconds. */
async function shipAll(url: string, hosts: string[]): Promise<number> {
  const workers = hosts.map(
    (path) =>
      new Worker(new URL('./shared-store-worker.ts', import.meta.url), {
        workerData: { mode: 'pg', path, url, n: N, batch: 10_000 },
      }),
  );
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

async function freshDb(name: string, latest: boolean): Promise<pg.Client> {
  await cluster.sql(`CREATE DATABASE ${name}`);
  const c = new pg.Client({ connectionString: cluster.url('postgres', name) });
  await c.connect();
  await migratePg(c, name, latest ? PG_MIGRATIONS : PG_MIGRATIONS.filter((m) => m.version <= 6));
  return c;
}

// the listing before v8: every other host's events grouped by session
const OLD_LISTING = `SELECT e.session AS id, e.log_id AS "logId", h.hostname, ${SESSION_COLUMNS}
  FROM airlock.events e JOIN airlock.hosts h USING (log_id) WHERE e.session IS NOT NULL AND e.log_id <> $1
  GROUP BY e.log_id, h.hostname, e.session ORDER BY MIN(e.ts) LIMIT $2`;

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

const hosts = Array.from({ length: HOSTS }, (_, i) => join(root, `host${i}.db`));
hosts.forEach(prepareHost);
const rates = { before: [] as number[], after: [] as number[] };
const listing = { before: [] as number[], after: [] as number[] };
const loadBefore = loadavg()[0]!;
try {
  let last: pg.Client | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    for (const latest of r % 2 ? [true, false] : [false, true]) {
      const db = `r${r}${latest ? 'v8' : 'v6'}`;
      const c = await freshDb(db, latest);
      (latest ? rates.after : rates.before).push((HOSTS * N) / (await shipAll(cluster.url('postgres', db), hosts)));
      if (latest) {
        await last?.end();
        last = c;
      } else await c.end();
    }
  }
  await last!.query('ANALYZE');
  for (let i = 0; i < LISTINGS; i++) {
    listing.before.push(await timed(() => last!.query(OLD_LISTING, ['none', 5000])));
    listing.after.push(await timed(() => otherHostsSessionRows(last!, 'none', 5000)));
  }
  const a = (await last!.query(OLD_LISTING, ['none', 5000])).rows.length;
  const b = (await otherHostsSessionRows(last!, 'none', 5000)).length;
  if (a !== HOSTS * SESSIONS || b !== a) throw new Error(`listings differ: ${a} sessions grouped, ${b} summarized`);
  await last!.end();
} finally {
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
}

const load = `${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (1-minute load average, ${availableParallelism()} cores)`;
const ev = (xs: number[]) => `${Math.round(median(xs)).toLocaleString('en')} ev/s`;
const ms = (xs: number[]) => `${median(xs).toFixed(1)} ms`;
const md = `## Shared store: the per-session summary (bench/session-summary.ts)

\`node bench/session-summary.ts ${N}\` — ${HOSTS} hosts × ${N.toLocaleString('en')} events in ${SESSIONS} sessions each,
${ROUNDS} ingest rounds and ${LISTINGS} listings, baseline and candidate interleaved, medians. Load during the run: ${load};
measured under load from other engineers' test runs: read the ratios.

| | before v8 | v8 (summary trigger) | v8 / before |
| --- | --- | --- | --- |
| ingest, ${HOSTS} hosts shipping at once | ${ev(rates.before)} | ${ev(rates.after)} | ${(median(rates.after) / median(rates.before)).toFixed(2)} |
| other hosts' sessions listing (${HOSTS * SESSIONS} sessions, ${(HOSTS * N).toLocaleString('en')} events) | ${ms(listing.before)} (GROUP BY over every event) | ${ms(listing.after)} (one summary row per session) | ${(median(listing.after) / median(listing.before)).toFixed(3)} |

The trigger aggregates each shipped batch (a COPY of 10,000 events) into one upsert per session it
touches and one NOTIFY per kind; the listing before v8 read and grouped every event on each call,
so its time grows with the store, the summary's with the number of sessions.`;
writeSection('session-summary', md);
console.log(md);
