import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { READ_BY_PRIMARY_KEY, type VerifyUnit, verifyUnit } from './verify-host.ts';

// A verify worker (verifySharedStore with several hosts or a large one): one connection of its
// own, inside the snapshot the caller exported, so every host is judged on the same state of the
// store; it verifies the hosts and host ranges it is handed one by one and answers each with its
// verdict or range summary.

const { url, snapshot } = workerData as { url: string; snapshot: string };
const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
client.on('error', () => {
  /* a dropped connection fails the next query, which is reported */
});

async function open(): Promise<void> {
  await client.connect();
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await client.query(`SET TRANSACTION SNAPSHOT ${pg.escapeLiteral(snapshot)}`);
  await client.query(READ_BY_PRIMARY_KEY);
}
const opened = open();
opened.catch(() => {
  /* answered to the first job */
});

const reply = (m: object) => parentPort!.postMessage(m);
parentPort!.on('message', (unit: VerifyUnit | 'close') => {
  if (unit === 'close') {
    void client
      .end()
      .catch(() => {
        /* already closed */
      })
      .finally(() => parentPort!.close());
    return;
  }
  opened
    .then(() => verifyUnit(client, unit))
    .then(
      (answer) => reply({ answer }),
      (e: unknown) => reply({ error: e instanceof Error ? e.message : String(e) }),
    );
});
