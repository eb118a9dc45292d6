import { parentPort } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { verifyRange } from './verify-range.ts';

// Worker thread for verifyLogAsync: verifies seq ranges of one database, read-only.
let db: DatabaseSync | undefined;
let dbPath = '';
parentPort!.on('message', (m: { dbPath: string; lo: number; hi: number; sizes: number[] } | 'close') => {
  if (m === 'close') {
    db?.close();
    parentPort!.close();
    return;
  }
  if (!db || dbPath !== m.dbPath) {
    db?.close();
    db = new DatabaseSync(m.dbPath, { readOnly: true });
    dbPath = m.dbPath;
  }
  try {
    parentPort!.postMessage(verifyRange(db, m.lo, m.hi, m.sizes));
  } catch (e) {
    parentPort!.postMessage({ lo: m.lo, hi: m.hi, error: e instanceof Error ? e.message : String(e) });
  }
});
