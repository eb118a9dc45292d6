import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { AirlockError, ExitCode, git } from '../../src/common/index.ts';
import { airlock, cleanup, makeRepo, tmp } from '../helpers.ts';

// Issue 14: git failing on a repository is the user's problem to fix, not a bug: the CLI
// names the git command, the repository and git's own words, exits GIT_FAILED (71) and
// prints no "internal error" and no stack trace.

const STACK = /internal error|\n\s+at .*:\d+:\d+/;

function headBlob(repo: string, path: string): string {
  return spawnSync('git', ['rev-parse', `HEAD:${path}`], { cwd: repo, encoding: 'utf8' }).stdout.trim();
}

function runIn(repo: string): ReturnType<typeof airlock> {
  const home = tmp('airlock-giterr-home-');
  try {
    return airlock(['run', '--repo', repo, '--', 'true'], { home });
  } finally {
    cleanup(home);
  }
}

function assertGitFailure(r: ReturnType<typeof airlock>, repo: string, gitSaid: RegExp): void {
  assert.equal(r.status, ExitCode.GIT_FAILED, r.stderr);
  assert.doesNotMatch(r.stderr, STACK, 'no internal error, no stack trace');
  assert.match(r.stderr, /airlock: error: git fetch on the repository .* failed \(exit 128\)/);
  assert.ok(r.stderr.includes(repo), `names the repository: ${r.stderr}`);
  assert.match(r.stderr, gitSaid, 'quotes what git said');
  assert.match(r.stderr, /hint: .*git fsck/);
}

test('airlock run on a repository with a missing object: a clear git error, exit 71', () => {
  const repo = makeRepo({ 'a.txt': 'hello\n', 'b.txt': 'other\n' });
  try {
    const oid = headBlob(repo, 'a.txt');
    const file = join(repo, '.git', 'objects', oid.slice(0, 2), oid.slice(2));
    chmodSync(file, 0o644);
    rmSync(file);
    assertGitFailure(runIn(repo), repo, /unable to read|corruption/);
  } finally {
    cleanup(repo);
  }
});

test('airlock run on a repository with a branch that points at no object: a clear git error, exit 71', () => {
  const repo = makeRepo();
  try {
    writeFileSync(join(repo, '.git', 'refs', 'heads', 'dangling'), `${'0123456789'.repeat(4)}\n`);
    assertGitFailure(runIn(repo), repo, /not our ref 0123456789/);
  } finally {
    cleanup(repo);
  }
});

test('git failures are AirlockErrors whose message escapes what git quotes (names the agent may choose)', () => {
  const repo = makeRepo();
  try {
    const hostile = 'x\u001b[2K\u001b]52;c;cm0=\u0007\u202e.txt';
    assert.throws(
      () => git(['cat-file', '-p', `HEAD:${hostile}`], { cwd: repo }),
      (e: unknown) => {
        assert.ok(e instanceof AirlockError, `an AirlockError, not ${String(e)}`);
        assert.equal(e.kind, 'GIT_FAILED');
        assert.match(e.message, /^git cat-file failed \(exit 128\): /);
        assert.doesNotMatch(e.message, /[\u001b\u0007\u202e]/, 'no raw control or bidi character');
        assert.match(e.message, /<U\+202E>\.txt/, 'the bidi override git passes through is shown as a tag');
        return true;
      },
    );
  } finally {
    cleanup(repo);
  }
});
