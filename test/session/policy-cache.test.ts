import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

// `airlock run` starts from a resolved policy cached in AIRLOCK_HOME (issue 16). The agent of
// one session must not be able to read it or to plant the policy the next session starts
// from: the cache lives in the data dir, which no sandbox sees.

test('an agent that knows where the policy cache is can neither read nor plant an entry for the next session', () => {
  const repo = makeRepo();
  const home = tmp('airlock-policy-cache-');
  try {
    assert.equal(airlock(['run', '--', 'true'], { cwd: repo, home }).status, 0);
    const dir = join(home, 'cache', 'results');
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    assert.ok(Object.keys(before).length >= 1, 'the first run cached its policy');
    const attack = [
      'cat "$1"/* 2>&1',
      'mkdir -p "$1" 2>/dev/null',
      `for f in ${Object.keys(before).join(' ')}; do echo '{"key":"'$f'","value":{"policy":{}}}' > "$1/$f"; done`,
      'echo planted > "$1/planted"',
      'true',
    ].join('; ');
    const r = airlock(['run', '--', 'sh', '-c', attack, 'sh', dir], { cwd: repo, home });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /"key"|"policy"/, 'the agent read a cache entry');
    const after = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    assert.deepEqual(after, before);
  } finally {
    cleanup(repo, home);
  }
});
