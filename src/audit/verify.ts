import { DatabaseSync } from 'node:sqlite';
import { GENESIS_HASH, chainHash, eventBody } from './event.ts';
import { rowToEvent } from './store.ts';

export interface VerifyResult {
  ok: boolean;
  events: number;
  /** First event that does not verify, and why. */
  firstBad?: { seq: number; id: string | null; reason: string };
  headHash: string;
}

// Recomputes the chain from genesis. Reads the file read-only and with its own
// connection, so a tampered file (triggers dropped, rows edited) is judged as it is.
export function verifyChain(dbPath: string): VerifyResult {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const stmt = db.prepare('SELECT * FROM events WHERE rowid > ? ORDER BY rowid ASC LIMIT 5000');
    let prev = GENESIS_HASH;
    let expectSeq = 1;
    let n = 0;
    let after = 0;
    for (;;) {
      const rows = stmt.all(after) as unknown as Parameters<typeof rowToEvent>[0][];
      if (rows.length === 0) break;
      for (const r of rows) {
        after = (r as unknown as { seq: number }).seq;
        let e;
        try { e = rowToEvent(r); } catch {
          return { ok: false, events: n, firstBad: { seq: r.seq, id: r.id, reason: 'event data is not valid JSON' }, headHash: prev };
        }
        if (e.seq !== expectSeq) {
          const reason = e.seq > expectSeq ? `events ${expectSeq}..${e.seq - 1} are missing (deleted)` : 'sequence out of order';
          return { ok: false, events: n, firstBad: { seq: expectSeq, id: e.id, reason }, headHash: prev };
        }
        if (e.prevHash !== prev) {
          return { ok: false, events: n, firstBad: { seq: e.seq, id: e.id, reason: 'previous-hash link broken (event inserted, deleted or reordered before it)' }, headHash: prev };
        }
        const h = chainHash(prev, eventBody(e));
        if (h !== e.hash) {
          return { ok: false, events: n, firstBad: { seq: e.seq, id: e.id, reason: 'content does not match its hash (event altered)' }, headHash: prev };
        }
        prev = h;
        expectSeq += 1;
        n += 1;
      }
    }
    return { ok: true, events: n, headHash: prev };
  } finally {
    db.close();
  }
}
