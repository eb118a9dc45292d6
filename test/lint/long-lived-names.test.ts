import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Linter } from 'eslint';
import local from '../../scripts/lint-long-lived-names.ts';

// The CI's rule against long-lived one-letter names (issue 14): a name read far from where
// it was bound is flagged, a callback's argument or a loop counter is not.

function lint(code: string): string[] {
  const linter = new Linter({ configType: 'flat' });
  const messages = linter.verify(code, [
    { plugins: { local }, rules: { 'local/long-lived-names': ['error', { maxLines: 5 }] } },
  ]);
  return messages.map((m) => `${m.line}:${m.message}`);
}

const filler = (n: number) => Array.from({ length: n }, (_, i) => `  work(${i});`).join('\n');

test('a one-letter local read beyond the limit is flagged, with its name and how far it reaches', () => {
  const found = lint(`function run(o) {\n  const r = load();\n${filler(8)}\n  return r + o;\n}`);
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0]!, /^1:'o' is used 10 lines after its declaration/);
  assert.match(found[1]!, /^2:'r' is used 9 lines after its declaration/);
});

test('callbacks, loop counters and imports keep their one-letter names', () => {
  assert.deepEqual(
    lint(
      `import { z } from 'zod';\nexport const list = [1, 2].map((e) => e + 1);\nfor (let i = 0; i < 3; i++) work(i);\n${filler(8)}\nwork(z);`,
    ),
    [],
  );
});

test('a long-lived name is fine once it says what it holds', () => {
  assert.deepEqual(
    lint(`function run(options) {\n  const result = load();\n${filler(8)}\n  return result + options;\n}`),
    [],
  );
});
