// What the agent leaves becomes exactly the proposed change: commits plus uncommitted
// work, including deletions of base files and directories and replaced directories
// (overlay whiteouts and opaque dirs), while only the overlay's upper layer is hashed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/session/index.ts';
import { git } from '../../src/common/git.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

describe('result capture', () => {
  it('captures edits, new files, deleted files and dirs, replaced dirs, and commits', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({
      'a.txt': 'a\n',
      'gone/x.txt': 'x\n',
      'swap/old.txt': 'o\n',
      'keep/k.txt': 'k\n',
      'edit.txt': '1\n',
    });
    // the test's own rm -rf would wait for a human under the command rules: this tests capture alone
    const s = await Session.open({ repo, home, layers: { commands: null } });
    const r = await s.run([
      'bash',
      '-c',
      `set -e
      echo committed > c.txt && git add c.txt && git commit -qm "agent commit"
      rm a.txt; rm -rf gone; rm -rf swap && mkdir swap && echo n > swap/new.txt
      echo 2 >> edit.txt; mkdir -p deep/er && echo d > deep/er/file.txt`,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const res = await s.stop('test');
    const env = { GIT_DIR: res.result!.resultRepo };
    const files = git(['ls-tree', '-r', '--name-only', 'refs/airlock/head'], { env })
      .stdout.split('\n')
      .filter(Boolean)
      .sort();
    assert.deepEqual(files, ['c.txt', 'deep/er/file.txt', 'edit.txt', 'keep/k.txt', 'swap/new.txt']);
    assert.equal(git(['show', 'refs/airlock/head:edit.txt'], { env }).stdout, '1\n2\n');
    assert.equal(res.result!.commits.length, 2);
    assert.equal(res.result!.dirty, true);
    assert.deepEqual(res.result!.warnings, []);
    cleanup(home, repo);
  });
});
