import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePrefilter } from '../../src/secrets/prefilter.ts';
import { OWN_ANCHORS } from '../../src/secrets/rules.ts';

// The prefilter decides where the redaction rules run: an anchor it misses is a secret the
// audit store keeps. Its automaton is built at every CLI start (issue 16 made that cheaper),
// so the table is checked against the plainest possible matcher: every case-insensitive
// occurrence of every anchor, found with indexOf, on texts dense with anchors and overlaps.

function naive(text: string, anchors: readonly string[]): Map<string, number[]> {
  const lower = text.toLowerCase();
  const at = new Map<string, number[]>();
  for (const a of new Set(anchors.map((x) => x.toLowerCase()))) {
    const offsets: number[] = [];
    for (let i = lower.indexOf(a); i >= 0; i = lower.indexOf(a, i + 1)) offsets.push(i);
    if (offsets.length) at.set(a, offsets);
  }
  return at;
}

test('the prefilter finds exactly the occurrences a plain search finds, overlaps and case included', () => {
  let seed = 11;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const sets = [OWN_ANCHORS, ['he', 'she', 'his', 'hers'], ['a', 'ab', 'bab', 'bc', 'bca', 'c', 'caa'], ['aa', 'aaaa']];
  for (const anchors of sets) {
    const pf = compilePrefilter(anchors);
    const chars = [...new Set(anchors.join('') + anchors.join('').toUpperCase() + ' =:\n\u00e9')];
    for (let k = 0; k < 150; k++) {
      let text = '';
      const len = 20 + next(1500);
      while (text.length < len) text += next(3) === 0 ? anchors[next(anchors.length)]! : chars[next(chars.length)]!;
      const hits = pf.scan(text);
      assert.ok(hits.complete);
      const got = new Map([...hits.at].map(([a, offs]) => [a, [...offs].sort((x, y) => x - y)]));
      assert.deepEqual(got, naive(text, anchors), JSON.stringify(text.slice(0, 60)));
    }
  }
});

test('a bad anchor is refused when the prefilter is defined, not at its first scan (it is built lazily)', () => {
  assert.throws(() => compilePrefilter(['ok', '']), /empty anchor/);
  assert.throws(() => compilePrefilter(['ok', 'caf\u00e9']), /not ASCII/);
  const pf = compilePrefilter(['she', 'he']);
  assert.deepEqual(
    [...pf.scan('USHERS').at],
    [
      ['she', [1]],
      ['he', [2]],
    ],
  );
});
