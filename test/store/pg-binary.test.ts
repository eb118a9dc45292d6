// The binary COPY reader the shared-store verifier parses PostgreSQL's output with: what the
// server sends is hostile (a superuser may have written anything), so rows cut anywhere across
// chunks read the same, and a stream that is not well formed is refused, never read past its end.
// The streams are built here byte by byte (no server needed to say what the format is).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CopyFormatError, CopyRowReader } from '../../src/store/pg-binary.ts';

const HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const TRAILER = Buffer.from([0xff, 0xff]);

/** One row of 11 fields: seq as int8, the rest as text (null: SQL NULL). */
function row(seq: number, texts: (string | null)[]): Buffer {
  const parts = [Buffer.from([0, 11]), Buffer.from([0, 0, 0, 8]), Buffer.alloc(8)];
  parts[2]!.writeBigInt64BE(BigInt(seq));
  for (const t of texts) {
    const len = Buffer.alloc(4);
    if (t === null) {
      len.writeInt32BE(-1);
      parts.push(len);
      continue;
    }
    const bytes = Buffer.from(t, 'utf8');
    len.writeInt32BE(bytes.length);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

const TEXTS = (i: number) => [
  `id${i}`,
  'ts',
  'type',
  i % 2 ? null : 'é\u2028😀',
  'info',
  null,
  null,
  `{"i":${i}}`,
  'p',
  'h',
];

/** Every row the reader yields from `chunks`, as [seq, field texts]. */
function readAll(chunks: Buffer[]): [number, (string | null)[]][] {
  const reader = new CopyRowReader();
  const out: [number, (string | null)[]][] = [];
  for (const chunk of chunks) {
    for (const r of reader.rows(chunk)) {
      const fields = Array.from({ length: 10 }, (_, f) =>
        r.start[f + 1]! < 0 ? null : r.buf.toString('utf8', r.start[f + 1], r.end[f + 1]),
      );
      out.push([Number(r.buf.readBigInt64BE(r.start[0])), fields]);
    }
  }
  reader.finish();
  return out;
}

test('rows cut at every byte boundary read the same as the whole stream', () => {
  const stream = Buffer.concat([HEADER, ...Array.from({ length: 5 }, (_, i) => row(i + 1, TEXTS(i))), TRAILER]);
  const whole = readAll([stream]);
  assert.deepEqual(
    whole.map(([seq]) => seq),
    [1, 2, 3, 4, 5],
  );
  assert.deepEqual(whole[0]![1], TEXTS(0));
  const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
  assert.deepEqual(readAll(bytes), whole);
  for (const cut of [1, 7, 19, 20, 21, stream.length - 1]) {
    assert.deepEqual(readAll([stream.subarray(0, cut), stream.subarray(cut)]), whole, `cut at ${cut}`);
  }
});

test('a stream that is not well formed is refused: wrong signature, wrong field count, negative length, cut short, bytes after the end', () => {
  const good = row(1, TEXTS(0));
  const wrongCount = Buffer.from(good);
  wrongCount.writeInt16BE(12, 0);
  const negative = Buffer.from(good);
  negative.writeInt32BE(-7, 2);
  const cases: [string, Buffer[]][] = [
    ['signature', [Buffer.from('PGCOPY\nXX\r\n\0\0\0\0\0\0\0\0\0', 'latin1'), good, TRAILER]],
    ['field count', [HEADER, wrongCount, TRAILER]],
    ['negative length', [HEADER, negative, TRAILER]],
    ['cut mid-row', [HEADER, good.subarray(0, good.length - 3)]],
    ['no trailer', [HEADER, good]],
    ['after the end', [HEADER, good, TRAILER, good]],
  ];
  for (const [what, parts] of cases) {
    assert.throws(() => readAll([Buffer.concat(parts)]), CopyFormatError, what);
  }
});

test('a field that claims more bytes than the stream holds waits for them and is refused at the end, not read past', () => {
  const claim = Buffer.from(row(1, TEXTS(0)));
  claim.writeInt32BE(0x7fff_fff0, 2 + 4 + 8); // the id field claims ~2 GiB
  assert.throws(() => readAll([HEADER, claim, TRAILER]), CopyFormatError);
});
