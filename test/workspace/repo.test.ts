import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openHostRepo, openHostRepoAt, resolveCommit } from '../../src/workspace/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

// Issue 16: a session's start resolves the repository and its base commit in one git call;
// whatever that call cannot answer plainly goes through the two separate calls, so the
// result and every error are the same as theirs.

function separately(path: string, ref: string): unknown {
  try {
    const repo = openHostRepo(path);
    return { repo, commit: resolveCommit(repo, ref) };
  } catch (e) {
    return String(e);
  }
}
function combined(path: string, ref: string): unknown {
  try {
    return openHostRepoAt(path, ref);
  } catch (e) {
    return String(e);
  }
}

test('openHostRepoAt gives what openHostRepo + resolveCommit give, results and errors alike', () => {
  const dir = tmp('airlock-repo-at-');
  const repo = makeRepo({ 'a/b.txt': 'x\n' }, join(dir, 'repo'));
  spawnSync('git', ['tag', 'v1'], { cwd: repo });
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  spawnSync('git', ['init', '-q', empty]);
  const odd = makeRepo({ f: '1\n' }, join(dir, 'line\nbreak'));
  const notGit = join(dir, 'plain');
  mkdirSync(notGit);
  try {
    const cases: [string, string][] = [
      [repo, 'HEAD'],
      [join(repo, 'a'), 'HEAD'],
      [repo, 'v1'],
      [repo, 'main'],
      [repo, 'no-such-branch'],
      [repo, '-x'],
      [repo, 'HEAD:a'],
      [empty, 'HEAD'],
      [notGit, 'HEAD'],
      [join(dir, 'missing'), 'HEAD'],
      [odd, 'HEAD'],
    ];
    for (const [path, ref] of cases)
      assert.deepEqual(combined(path, ref), separately(path, ref), `${JSON.stringify(path)} at ${ref}`);
    const ok = openHostRepoAt(join(repo, 'a'), 'HEAD');
    assert.equal(ok.repo.root, realpathSync(repo));
    assert.match(ok.commit, /^[0-9a-f]{40}$/);
    assert.equal(openHostRepoAt(odd, 'HEAD').repo.root, realpathSync(odd));
  } finally {
    cleanup(dir);
  }
});
