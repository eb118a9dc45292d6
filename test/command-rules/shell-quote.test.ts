import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { shellQuote } from '../../src/common/index.ts';
import { parseArgv, parseShell } from '../../src/command-rules/index.ts';

// The one shell quoter (issue 14): what it quotes is read back byte for byte by dash (the
// sandbox's setup script) and by the command-rules parser (an `env -S` string rebuilt
// from words). A word that read back differently would let a rule see another command
// than the one that runs.

const POOL = [...'ab \'"\\$`!*?[]{}~#&|;<>()=%^,:@\t\n-+é€😀\u0001\u007f\u202e'];

function words(count: number, seed: number): string[] {
  let state = seed;
  const next = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  return Array.from({ length: count }, () => Array.from({ length: next(9) }, () => POOL[next(POOL.length)]).join(''));
}

test('shellQuote: dash reads every quoted word back unchanged', () => {
  const sample = ['', "'", "''", "it's", '$(id)', '`id`', '-n', ...words(2000, 7)];
  const r = spawnSync('dash', ['-c', sample.map((w) => `printf '%s\\0' ${shellQuote(w)}`).join('\n')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const got = r.stdout.split('\0').slice(0, -1);
  assert.deepEqual(got, sample);
});

test('shellQuote: the command parser reads quoted words back unchanged, alone and rebuilt by env -S', () => {
  for (const w of ["it's", '$(rm -rf /)', 'a b;c', ...words(300, 11).filter((x) => x && !x.includes('\u0000'))]) {
    assert.deepEqual(parseShell(`echo ${shellQuote(w)}`).commands[0]?.argv, ['echo', w], JSON.stringify(w));
    const viaEnv = parseArgv(['env', '-S', 'printf %s', w]);
    assert.equal(viaEnv.error, null, JSON.stringify(w));
    assert.deepEqual(viaEnv.commands.at(-1)?.argv, ['printf', '%s', w], JSON.stringify(w));
  }
});
