import type { DatabaseSync } from 'node:sqlite';
import { hash } from 'node:crypto';
import { MerkleFrontier } from './merkle.ts';
import { GENESIS_HASH, chainHash, chainHashFast, eventBody, eventBodyFromParts } from './event.ts';

// Verifies the hash chain over one seq range [lo, hi] and returns the RFC 6962 leaf hashes
// of its events. Ranges are independent given the stored hash of event lo-1 (itself
// checked by the range before), so ranges can run in parallel worker threads.

export interface BadEvent { seq: number; id: string | null; reason: string }
/**
 * `frontier`: the perfect-subtree roots over the range's verified events (hex, largest
 * first). Ranges start at multiples of a power of two at least as large as the range, so
 * the global tree's frontier is the frontier before the range followed by this one.
 * `atSizes`: the same, taken when the global tree had each of the requested sizes.
 */
export interface RangeResult {
  lo: number; hi: number; count: number; lastHash: string; firstBad?: BadEvent;
  frontier: string[]; atSizes: { size: number; frontier: string[] }[];
}

type RowArr = [number, string, string, string, string | null, string, string | null, string | null, string, string, string];

/** Fast path over the stored canonical data text; then the parse-and-canonicalize path
 * for rows written before data was stored canonically. Both compare the full hash. */
function rowHashMatches(prev: string, r: RowArr): boolean | 'bad-json' {
  if (chainHashFast(prev, eventBodyFromParts(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])) === r[10]) return true;
  let data: Record<string, unknown>;
  try { data = JSON.parse(r[8]) as Record<string, unknown>; } catch { return 'bad-json'; }
  return chainHash(prev, eventBody({
    seq: r[0], id: r[1], ts: r[2], type: r[3], session: r[4], severity: r[5] as 'info', decision: r[6] as null, rule: r[7], data,
  })) === r[10];
}

export function verifyRange(db: DatabaseSync, lo: number, hi: number, sizes: number[] = []): RangeResult {
  const f = new MerkleFrontier();
  const want = new Set(sizes);
  const atSizes: RangeResult['atSizes'] = [];
  const leafIn = Buffer.allocUnsafe(33);
  leafIn[0] = 0;
  let prev = GENESIS_HASH;
  if (lo > 1) {
    const r = db.prepare('SELECT hash FROM events WHERE seq = ?').get(lo - 1) as { hash: string } | undefined;
    prev = r?.hash ?? ''; // a missing predecessor is reported by the range that should hold it
  }
  const stmt = db.prepare('SELECT seq,id,ts,type,session,severity,decision,rule,data,prev_hash,hash FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT 20000');
  stmt.setReturnArrays(true);
  let expect = lo;
  const done = (firstBad?: BadEvent): RangeResult => ({ lo, hi, count: expect - lo, lastHash: prev, firstBad, frontier: f.toHex(), atSizes });
  for (;;) {
    const rows = stmt.all(expect, hi) as unknown as RowArr[];
    if (rows.length === 0) break;
    for (const r of rows) {
      const seq = r[0];
      if (seq !== expect) {
        return done({ seq: expect, id: r[1], reason: seq > expect ? `events ${expect}..${seq - 1} are missing (deleted)` : 'sequence out of order' });
      }
      if (r[9] !== prev) return done({ seq, id: r[1], reason: 'previous-hash link broken (event inserted, deleted or reordered before it)' });
      const m = rowHashMatches(prev, r);
      if (m !== true) return done({ seq, id: r[1], reason: m === 'bad-json' ? 'event data is not valid JSON (event altered)' : 'content does not match its hash (event altered)' });
      prev = r[10];
      if (leafIn.write(prev, 1, 'hex') !== 32) return done({ seq, id: r[1], reason: 'stored hash is not 32 bytes of hex (event altered)' });
      f.pushLeafHash(hash('sha256', leafIn, 'buffer'));
      if (want.has(seq)) atSizes.push({ size: seq, frontier: f.toHex() });
      expect += 1;
    }
  }
  if (expect <= hi) return done({ seq: expect, id: null, reason: `events ${expect}..${hi} are missing (deleted)` });
  return done();
}
