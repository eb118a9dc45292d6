// One writer of bench/shared-store.ts, on its own thread: appends to the SQLite log, or ships
// a host's prepared log to PostgreSQL. Reports its event count when done.
import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { AuditStore } from '../src/audit/index.ts';
import { shipOnce } from '../src/store/index.ts';

const w = workerData as { mode: 'sqlite' | 'pg'; path: string; url?: string; n: number; batch: number };
const store = new AuditStore(w.path);
const client = w.mode === 'pg' ? new pg.Client({ connectionString: w.url }) : undefined;
await client?.connect();
// loaded and connected: the timed part starts when the parent says go
parentPort!.postMessage('ready');
await new Promise((resolve) => parentPort!.once('message', resolve));
if (w.mode === 'sqlite') {
  for (let i = 0; i < w.n; i += w.batch) {
    store.appendMany(
      Array.from({ length: Math.min(w.batch, w.n - i) }, (_, k) => ({
        type: 'process.exec',
        session: 'bench',
        data: { pid: 1000 + k, argv: ['cc', '-O2', '-c', `src/file${i + k}.c`, '-o', `obj/file${i + k}.o`] },
      })),
    );
  }
  parentPort!.postMessage(w.n);
} else {
  const r = await shipOnce(store, client!, { batch: w.batch });
  await client!.end();
  parentPort!.postMessage(r.events);
}
store.close();
