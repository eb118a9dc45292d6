import { hash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { KeyObject } from 'node:crypto';
import {
  type Checkpoint,
  type RawEventRow,
  EventFrontier,
  GENESIS_HASH,
  MerkleFrontier,
  checkEventRow,
  verifyCheckpointSignature,
} from '../audit/hashing.ts';
import type { CopyRow } from './pg-binary.ts';

// One host's chain as the shared store holds it, checked row by row in seq order: the link to
// the previous hash, the row's content against its own hash (the verifier hashes; the server
// is never asked to), its RFC 6962 tree against every signed checkpoint of the host.
//
// Rows arrive as binary COPY bytes. The fast path hashes the bytes the host hashed without
// decoding them: `prev_hash "\n" {"data":…,"decision":…,…}` is assembled from the fields as they
// came, which is exactly eventBodyFromParts' text when no quoted field holds a byte JSON would
// escape (quote, backslash, control) and the whole is valid UTF-8 (then the UTF-8 of the decoded
// strings is these bytes). A row the fast path does not accept at once (any such byte, a broken
// link, a hash that does not match, a seq out of turn) is decoded and judged by the full check
// (checkEventRow, shared with the SQLite verifier), which names what is wrong. So the fast path
// never accepts a row the full check refuses.

export interface BadSharedEvent {
  seq: number;
  id: string | null;
  reason: string;
}

/**
 * A seq range of one host verified on its own (issue 18: a host's chain split across threads):
 * leaf positions [lo - 1, lo - 1 + C) for a power of two C that divides lo - 1, so its tree is a
 * run of perfect subtrees of the host's tree. `want`: the checkpoint sizes inside it.
 */
export interface RangePlan {
  lo: number;
  want: number[];
}

/**
 * What a range's rows gave, to be joined after the rows before it (HostCheck.joinRange). `clean`:
 * its first row is seq lo with a 64-byte prev_hash (`startPrev`, checked at the join against the
 * hash the range before recomputed: the seam), and every row after it passed the checks a
 * one-pass verify makes. Anything else is not judged here: the host is then verified in one pass.
 */
export interface RangeSummary {
  lo: number;
  clean: boolean;
  count: number;
  startPrev: string;
  lastHash: string;
  /** perfect-subtree roots over the range's leaves (hex, largest first), at its end and at each wanted size */
  frontier: string[];
  atSizes: { size: number; frontier: string[] }[];
}

export interface HostVerdict {
  logId: string;
  hostname: string | null;
  events: number;
  checkpoints: number;
  checkpointsChecked: number;
  firstBad?: BadSharedEvent;
  problems: string[];
}

// field positions in a row (pg-binary.ts EVENT_COLUMNS)
const SEQ = 0;
const ID = 1;
const PREV = 9;
const DATA = 8;
const HASH = 10;
/** a SHA-256 in hex: the stored hash and prev_hash, and the first bytes of the hashed text */
const HEX_HASH = 64;
const latin1 = (s: string) => Buffer.from(s, 'latin1');
/** The body's keys in canonical order: [field, the text before it, may it be null]. */
const BODY: [number, Buffer, boolean][] = [
  [DATA, latin1('\n{"data":'), false],
  [6, latin1(',"decision":'), true],
  [1, latin1(',"id":'), false],
  [7, latin1(',"rule":'), true],
  [SEQ, latin1(',"seq":'), false],
  [4, latin1(',"session":'), true],
  [5, latin1(',"severity":'), false],
  [2, latin1(',"ts":'), false],
  [3, latin1(',"type":'), false],
];
const NULL = latin1('null');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Below this many bytes a loop copies faster than a Buffer.copy call (most fields are a few bytes). */
const SHORT = 64;

/** Copies src[from, to) into out at `at`; the position after it. */
function put(src: Buffer, from: number, to: number, out: Buffer, at: number): number {
  if (to - from >= SHORT) return at + src.copy(out, at, from, to);
  for (let i = from; i < to; i++) out[at++] = src[i]!;
  return at;
}

/**
 * Copies a field JSON.stringify would quote as `"` + its bytes + `"` (no quote, backslash or
 * control byte), with its quotes; the position after it, or -1 when it holds such a byte.
 */
function putQuoted(buf: Buffer, from: number, to: number, out: Buffer, at: number): number {
  out[at++] = QUOTE;
  for (let i = from; i < to; i++) {
    const b = buf[i]!;
    if (b < 0x20 || b === QUOTE || b === BACKSLASH) return -1;
    out[at++] = b;
  }
  out[at++] = QUOTE;
  return at;
}

/** Writes a positive integer's decimal digits (String(n) without the string); the position after them. */
function putDecimal(n: number, out: Buffer, at: number): number {
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits += 1;
  for (let i = at + digits - 1; i >= at; i--, n = Math.floor(n / 10)) out[i] = 0x30 + (n % 10);
  return at + digits;
}

/** a[aFrom, aFrom + n) equals b[bFrom, bFrom + n) (a hash is 64 bytes: a loop, not a call) */
function sameBytes(a: Buffer, aFrom: number, b: Buffer, bFrom: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aFrom + i] !== b[bFrom + i]) return false;
  return true;
}

/** The row as strings, for the full check (NULL stays null; a seq that is not 8 bytes is NaN). */
function decodeRow(row: CopyRow): RawEventRow {
  const { buf, start, end } = row;
  const text = (f: number) => (start[f]! < 0 ? null : buf.toString('utf8', start[f], end[f]));
  const seq = end[SEQ]! - start[SEQ]! === 8 ? Number(buf.readBigInt64BE(start[SEQ])) : Number.NaN;
  return [seq, ...Array.from({ length: 10 }, (_, i) => text(i + 1))] as RawEventRow;
}

export class HostCheck {
  readonly v: HostVerdict;
  private frontier = new EventFrontier();
  private prev = GENESIS_HASH;
  private bySize = new Map<number, Checkpoint[]>();
  private keys: Map<string, KeyObject>;
  /** the hashed text of the row at hand; its first 64 bytes are always `prev` (the next row's prefix) */
  private scratch = Buffer.allocUnsafe(4096);
  /** events before the rows this check sees (a range's lo - 1; 0 for a whole host) */
  private offset = 0;
  private range?: { want: Set<number>; atSizes: RangeSummary['atSizes']; startPrev: string | null };
  /** the host's tree once ranges verified elsewhere are joined (the rows' own frontier stays empty) */
  private joined?: MerkleFrontier;

  /** A whole host's check (its checkpoints judged here), or with `range` the check of one of its ranges. */
  constructor(
    logId: string,
    hostname: string | null,
    cps: Checkpoint[],
    keys: Map<string, KeyObject>,
    range?: RangePlan,
  ) {
    this.v = { logId, hostname, events: 0, checkpoints: cps.length, checkpointsChecked: 0, problems: [] };
    this.keys = keys;
    this.scratch.write(this.prev, 0, 'latin1');
    if (range) {
      this.offset = range.lo - 1;
      this.range = { want: new Set(range.want), atSizes: [], startPrev: null };
    }
    for (const c of cps) this.bySize.set(c.size, [...(this.bySize.get(c.size) ?? []), c]);
    this.checkpointsAt(0, () => MerkleFrontier.from(0, []).root().toString('hex'));
  }

  /** One row as COPY sent it; false once the chain broke (later rows cannot be judged). */
  pushCopyRow(row: CopyRow): boolean {
    const { buf, start, end } = row;
    const expect = this.offset + this.v.events + 1;
    if (this.range?.startPrev === null && !this.startRange(row, expect)) return false;
    const length =
      end[SEQ]! - start[SEQ]! === 8 &&
      buf.readUInt32BE(start[SEQ]!) * 0x1_0000_0000 + buf.readUInt32BE(start[SEQ]! + 4) === expect &&
      end[HASH]! - start[HASH]! === HEX_HASH &&
      end[PREV]! - start[PREV]! === HEX_HASH &&
      sameBytes(buf, start[PREV]!, this.scratch, 0, HEX_HASH) // the link: prev_hash is the running hash
        ? this.hashedText(row, expect)
        : 0;
    if (!length) return this.push(decodeRow(row));
    const own = hash('sha256', this.scratch.subarray(0, length), 'hex');
    // the hashed text is done with: its prefix becomes this row's hash, compared with the stored one
    this.scratch.write(own, 0, 'latin1');
    if (!sameBytes(buf, start[HASH]!, this.scratch, 0, HEX_HASH)) return this.push(decodeRow(row));
    this.frontier.pushEventHash(own);
    this.advance(own);
    return true;
  }

  /**
   * Assembles the hashed text into scratch after the previous hash already there; its length, or 0
   * when the fast path cannot judge the row.
   */
  private hashedText(row: CopyRow, seq: number): number {
    const { buf, start, end } = row;
    // the previous hash, the fields' bytes, 2 quotes or "null" each, the keys (79 bytes), the seq
    const size = row.bytes + 256;
    if (this.scratch.length < size) {
      const grown = Buffer.allocUnsafe(size * 2);
      this.scratch.copy(grown, 0, 0, HEX_HASH);
      this.scratch = grown;
    }
    const out = this.scratch;
    let at = HEX_HASH;
    for (const [field, before, nullable] of BODY) {
      at = put(before, 0, before.length, out, at);
      if (field === SEQ) at = putDecimal(seq, out, at);
      else if (start[field]! < 0) {
        if (!nullable) return 0;
        at = put(NULL, 0, NULL.length, out, at);
      } else if (field === DATA)
        at = put(buf, start[field]!, end[field]!, out, at); // canonical JSON, as it is
      else if ((at = putQuoted(buf, start[field]!, end[field]!, out, at)) < 0) return 0;
    }
    out[at++] = 0x7d; // }
    return isUtf8(out.subarray(HEX_HASH, at)) ? at : 0;
  }

  /**
   * A range's first row: it must be seq lo with a prev_hash of 64 bytes, taken as the link to
   * check it against (the seam is checked when the range is joined); false (not clean) otherwise.
   */
  private startRange(row: CopyRow, lo: number): boolean {
    const { buf, start, end } = row;
    const prevLength = end[PREV]! - start[PREV]!;
    const seq = end[SEQ]! - start[SEQ]! === 8 ? Number(buf.readBigInt64BE(start[SEQ])) : Number.NaN;
    if (seq !== lo || prevLength !== HEX_HASH) {
      this.v.firstBad = { seq: lo, id: null, reason: 'the range does not start where planned' };
      return false;
    }
    this.prev = buf.toString('latin1', start[PREV], end[PREV]);
    this.range!.startPrev = this.prev;
    buf.copy(this.scratch, 0, start[PREV]!, end[PREV]!);
    return true;
  }

  /** The full check of one decoded row; false once the chain broke. */
  push(r: RawEventRow): boolean {
    const expect = this.offset + this.v.events + 1;
    if (r[0] !== expect) {
      this.v.firstBad =
        r[0] > expect
          ? { seq: expect, id: null, reason: `events ${expect}..${r[0] - 1} are missing (deleted)` }
          : { seq: Number.isNaN(r[0]) ? expect : r[0], id: r[ID], reason: 'sequence out of order' };
      return false;
    }
    const bad = checkEventRow(this.prev, r);
    if (bad) {
      this.v.firstBad = bad;
      return false;
    }
    if (!this.frontier.pushEventHash(r[HASH])) {
      this.v.firstBad = { seq: r[0], id: r[ID], reason: 'stored hash is not 32 bytes of hex (event altered)' };
      return false;
    }
    this.advance(r[HASH]);
    this.scratch.write(r[HASH], 0, 'latin1'); // 64 hex digits (pushEventHash checked)
    return true;
  }

  /** After the row's hash joined the tree. */
  private advance(hashHex: string): void {
    this.prev = hashHex;
    this.v.events += 1;
    const size = this.offset + this.v.events;
    if (this.range?.want.has(size)) this.range.atSizes.push({ size, frontier: this.frontier.toHex() });
    if (this.bySize.has(size))
      this.checkpointsAt(size, () =>
        MerkleFrontier.from(this.frontier.size, this.frontier.toHex()).root().toString('hex'),
      );
  }

  /** What a range check saw (see RangeSummary). */
  summary(): RangeSummary {
    const r = this.range!;
    return {
      lo: this.offset + 1,
      clean: !this.v.firstBad && r.startPrev !== null,
      count: this.v.events,
      startPrev: r.startPrev ?? '',
      lastHash: this.prev,
      frontier: this.frontier.toHex(),
      atSizes: r.atSizes,
    };
  }

  /**
   * Joins a range verified elsewhere after the events so far (of a whole-host check fed no rows):
   * its checkpoints are judged on the host's tree, exactly as a one-pass verify judges them. False
   * when the range does not continue the chain cleanly — not clean, not starting at the next seq,
   * a seam whose stored prev_hash is not the hash recomputed before it, or longer than planned
   * (its tree no longer aligned) —; the caller then verifies the host in one pass, which names
   * what is wrong.
   */
  joinRange(r: RangeSummary): boolean {
    if (!r.clean || this.v.firstBad || r.lo !== this.v.events + 1 || r.startPrev !== this.prev) return false;
    const tree = (this.joined ??= new MerkleFrontier());
    try {
      for (const at of r.atSizes) {
        const then = MerkleFrontier.from(tree.size, tree.toHex());
        then.pushFrontier(at.size - tree.size, at.frontier);
        this.checkpointsAt(at.size, () => then.root().toString('hex'));
      }
      tree.pushFrontier(r.count, r.frontier);
    } catch {
      return false; // a subtree not aligned: more rows than the range was planned for
    }
    this.v.events += r.count;
    this.prev = r.lastHash;
    return true;
  }

  /** Judges every checkpoint of this size; `root` gives the tree's root then (hex). */
  private checkpointsAt(size: number, root: () => string): void {
    for (const c of this.bySize.get(size) ?? []) this.checkCheckpoint(c, root);
  }

  private checkCheckpoint(c: Checkpoint, treeRoot: () => string): void {
    const key = this.keys.get(c.keyId);
    if (!key) {
      this.v.problems.push(`checkpoint #${c.id}: signed by key ${c.keyId}, which is not known for this host`);
      return;
    }
    if (!verifyCheckpointSignature(c, key)) {
      this.v.problems.push(`checkpoint #${c.id}: signature does not verify (checkpoint altered)`);
      return;
    }
    if (treeRoot() !== c.root) {
      this.v.problems.push(`checkpoint #${c.id}: the events 1..${c.size} do not hash to its signed root`);
      return;
    }
    this.v.checkpointsChecked += 1;
  }

  /** After the last row: signed checkpoints beyond what the store holds mean events were removed. */
  finish(): void {
    if (this.v.firstBad) return;
    const beyond = [...this.bySize.keys()].filter((s) => s > this.v.events).sort((a, b) => b - a)[0];
    if (beyond !== undefined) {
      this.v.firstBad = {
        seq: this.v.events + 1,
        id: null,
        reason: `events ${this.v.events + 1}..${beyond} are missing (deleted or truncated): a signed checkpoint covers ${beyond}`,
      };
    }
  }
}
