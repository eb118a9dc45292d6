import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { privateCompileCacheDir } from '../../src/cli/compile-cache.ts';
import { BIN, tmp, cleanup } from '../helpers.ts';

// Node's compile cache holds compiled code that Node then runs: whoever can write it runs
// code as the user of `airlock` (often root). The CLI uses it only in the user's own cache
// directory (issue 16), never a shared fallback (/tmp when HOME is unset) nor a directory
// another user owns or anyone else may write. Node reports what it uses with
// NODE_DEBUG_NATIVE=COMPILE_CACHE; the launcher is run for real.

function cacheUsedBy(env: Record<string, string>): string {
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
  };
  const r = spawnSync(BIN, ['--version'], { env: { ...base, ...env }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return /\[compile cache\] resolved path (\S+)/.exec(r.stderr)?.[1] ?? '';
}

/** Cache bases under `dir`: this user's and private, another user's (uid 1000), this user's but writable by anyone. */
function cacheBases(dir: string): { own: string; theirs: string; open: string } {
  const own = join(dir, 'own');
  mkdirSync(own, { mode: 0o700 });
  const theirs = join(dir, 'theirs');
  mkdirSync(theirs, { mode: 0o755 });
  chownSync(theirs, 1000, 1000);
  const open = join(dir, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  return { own, theirs, open };
}

test('the compile cache is used in a cache directory of this user only', () => {
  const dir = tmp('airlock-compile-cache-');
  try {
    const { own, theirs, open } = cacheBases(dir);
    // the user's own, private: used (so the assertions below can fail)
    assert.equal(cacheUsedBy({ XDG_CACHE_HOME: own }), join(own, 'airlock', 'node-compile-cache'));
    // no HOME and no XDG_CACHE_HOME: no shared fallback such as /tmp/.cache
    assert.equal(cacheUsedBy({}), '');
    // a cache base another user owns (they could plant compiled code): not used
    assert.equal(cacheUsedBy({ XDG_CACHE_HOME: theirs }), '');
    // this user's, but writable by anyone: not used
    assert.equal(cacheUsedBy({ XDG_CACHE_HOME: open }), '');
    // HOME that is a shared directory another user prepared: its .cache is theirs
    const sharedHome = join(dir, 'shared-home');
    mkdirSync(join(sharedHome, '.cache', 'airlock', 'node-compile-cache'), { recursive: true });
    chownSync(join(sharedHome, '.cache'), 1000, 1000);
    assert.equal(cacheUsedBy({ HOME: sharedHome }), '');
  } finally {
    cleanup(dir);
  }
});

test('a start without the launcher (the session supervisor runs src/cli/run.ts) makes the same check', () => {
  const dir = tmp('airlock-compile-cache-');
  try {
    const { own, theirs, open } = cacheBases(dir);
    assert.equal(privateCompileCacheDir({ XDG_CACHE_HOME: own }), join(own, 'airlock', 'node-compile-cache'));
    assert.equal(privateCompileCacheDir({}), null);
    assert.equal(privateCompileCacheDir({ HOME: 'relative' }), null);
    assert.equal(privateCompileCacheDir({ XDG_CACHE_HOME: theirs }), null);
    assert.equal(privateCompileCacheDir({ XDG_CACHE_HOME: open }), null);
    // already chosen by whoever set NODE_COMPILE_CACHE (the launcher): Node has enabled it
    assert.equal(privateCompileCacheDir({ XDG_CACHE_HOME: own, NODE_COMPILE_CACHE: own }), null);
  } finally {
    cleanup(dir);
  }
});
