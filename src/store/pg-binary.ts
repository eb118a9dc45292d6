import type { RawEventRow } from '../audit/hashing.ts';

// PostgreSQL's binary COPY format (https://www.postgresql.org/docs/15/sql-copy.html, "Binary
// Format") for the events table, both ways. Binary, not text: a text column's bytes go as they
// are (no escaping to write or undo, no escaping bug possible), bigint is 8 bytes. What the
// server sends is hostile input (a superuser may have written anything): every length is
// checked against the bytes at hand before it is used.

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER = Buffer.concat([SIGNATURE, Buffer.alloc(8)]); // flags 0, no header extension
/** The columns shipped and read back, in this order (RawEventRow's, after the log id). */
export const EVENT_COLUMNS = 'seq, id, ts, type, session, severity, decision, rule, data, prev_hash, hash';
const FIELDS = 11;

/** Writes rows into one growing buffer: each string's length is known only once written. */
class CopyWriter {
  buf: Buffer;
  pos = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
    HEADER.copy(this.buf);
    this.pos = HEADER.length;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  int16(v: number): void {
    this.reserve(2);
    this.pos = this.buf.writeInt16BE(v, this.pos);
  }

  int8Field(v: number): void {
    this.reserve(12);
    this.pos = this.buf.writeInt32BE(8, this.pos);
    this.pos = this.buf.writeBigInt64BE(BigInt(v), this.pos);
  }

  textField(s: string | null): void {
    if (s === null) {
      this.int32(-1);
      return;
    }
    this.reserve(4 + s.length * 3); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeInt32BE(n, this.pos);
    this.pos += 4 + n;
  }

  private int32(v: number): void {
    this.reserve(4);
    this.pos = this.buf.writeInt32BE(v, this.pos);
  }
}

/** One host's rows as a complete binary COPY stream for `COPY airlock.events (log_id, …) FROM STDIN`. */
export function encodeEventRows(log: string, rows: readonly RawEventRow[]): Buffer {
  const w = new CopyWriter(64 + rows.length * 512);
  for (const r of rows) {
    w.int16(FIELDS + 1);
    w.textField(log);
    w.int8Field(r[0]);
    for (let col = 1; col < FIELDS; col++) w.textField(r[col] as string | null);
  }
  w.int16(-1);
  return w.buf.subarray(0, w.pos);
}

/**
 * One row as it arrived: `buf` holds it, `start[i]`/`end[i]` bound field i (start -1: NULL).
 * Valid until the next row is read.
 */
export interface CopyRow {
  buf: Buffer;
  start: Int32Array;
  end: Int32Array;
  /** the row's size in the stream (its fields with their length words) */
  bytes: number;
}

export class CopyFormatError extends Error {}

/**
 * Reads `COPY (SELECT <EVENT_COLUMNS> …) TO STDOUT (FORMAT binary)` chunk by chunk (the server
 * cuts rows across chunks). `rows(chunk)` yields each complete row; `finish()` throws unless
 * the trailer was seen.
 */
export class CopyRowReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** bytes the pending row needs before it can be parsed further (a large row is not re-joined per chunk) */
  private need = 0;
  private headerDone = false;
  private ended = false;
  private row: CopyRow = { buf: Buffer.alloc(0), start: new Int32Array(FIELDS), end: new Int32Array(FIELDS), bytes: 0 };

  *rows(chunk: Buffer): Generator<CopyRow> {
    if (this.ended) throw new CopyFormatError('bytes after the end of the COPY stream');
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.need) return;
    const buf = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    let pos = this.headerDone ? 0 : this.header(buf);
    for (; pos >= 0 && !this.ended;) {
      const next = this.parseRow(buf, pos);
      if (next < 0) break;
      pos = next;
      if (!this.ended) yield this.row;
    }
    const rest = buf.subarray(Math.max(pos, 0));
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    this.need -= Math.max(pos, 0);
  }

  finish(): void {
    if (!this.ended || this.pendingBytes) throw new CopyFormatError('the COPY stream ended mid-row');
  }

  /** Bytes the header takes, or -1 when more are needed. */
  private header(buf: Buffer): number {
    this.need = HEADER.length;
    if (buf.length < HEADER.length) return -1;
    if (!buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new CopyFormatError('not a binary COPY stream');
    const ext = buf.readUInt32BE(SIGNATURE.length + 4);
    this.need = HEADER.length + ext;
    if (buf.length < this.need) return -1;
    this.headerDone = true;
    return HEADER.length + ext;
  }

  /** Position after the row at `pos` (its fields into this.row), or -1 when it is not complete yet. */
  private parseRow(buf: Buffer, pos: number): number {
    const short = (upTo: number) => {
      this.need = upTo;
      return upTo > buf.length;
    };
    if (short(pos + 2)) return -1;
    const count = buf.readInt16BE(pos);
    if (count === -1) {
      this.ended = true;
      return pos + 2;
    }
    if (count !== FIELDS) throw new CopyFormatError(`a row of ${count} fields, expected ${FIELDS}`);
    let at = pos + 2;
    const { start, end } = this.row;
    for (let f = 0; f < FIELDS; f++) {
      if (short(at + 4)) return -1;
      const len = buf.readInt32BE(at);
      at += 4;
      if (len < -1) throw new CopyFormatError(`a field of length ${len}`);
      if (len === -1) {
        start[f] = -1;
        end[f] = -1;
        continue;
      }
      if (short(at + len)) return -1;
      start[f] = at;
      end[f] = at + len;
      at += len;
    }
    this.row.buf = buf;
    this.row.bytes = at - pos;
    return at;
  }
}
