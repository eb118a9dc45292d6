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

  // result.git is made while the sandbox starts with both refs at the base, and an untouched
  // session's capture runs no git (issue 16): each smallest change must still move the head,
  // in the session's record and in result.git's refs alike.
  it('captures each smallest change (only .git, only a mode bit, only a deletion, only a removed dir), and nothing for nothing', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({ 'a.txt': 'a\n', 'tool.sh': 'echo t\n', 'dir/x.txt': 'x\n' });
    const cases: [string, string, string | null][] = [
      ['only .git (an empty commit)', 'git commit -q --allow-empty -m "only a ref moves"', null],
      ['only a mode bit', 'chmod +x tool.sh', 'tool.sh'],
      ['only a deletion (whiteout)', 'rm a.txt', 'a.txt'],
      ['only a removed directory', 'rm -r dir', 'dir/x.txt'],
      ['nothing', 'true', null],
    ];
    try {
      for (const [name, cmd, path] of cases) {
        const s = await Session.open({ repo, home, layers: { commands: null } });
        const r = await s.run(['sh', '-c', cmd]);
        assert.equal(r.status, 0, `${name}: ${r.stderr}`);
        const res = (await s.stop('test')).result!;
        const env = { GIT_DIR: res.resultRepo };
        const ref = (n: string) => git(['rev-parse', `refs/airlock/${n}`], { env }).stdout.trim();
        assert.equal(ref('base'), s.baseCommit, name);
        assert.equal(ref('head'), res.headCommit, `${name}: result.git's head is the recorded head`);
        if (name === 'nothing') {
          assert.equal(res.headCommit, s.baseCommit, name);
          assert.deepEqual(res.commits, [], name);
          continue;
        }
        assert.notEqual(res.headCommit, s.baseCommit, `${name}: captured`);
        assert.equal(res.commits.length, 1, name);
        const changed = git(['diff-tree', '-r', '--name-only', s.baseCommit, 'refs/airlock/head'], { env })
          .stdout.split('\n')
          .filter(Boolean);
        assert.deepEqual(changed, path ? [path] : [], name);
      }
    } finally {
      cleanup(home, repo);
    }
  });
});
