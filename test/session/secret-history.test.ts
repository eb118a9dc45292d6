// Secrets in the base commit never reach the sandbox: files are redacted or hidden, and
// the workspace's git history (which still holds them) is replaced by one sanitized
// root commit. The agent's commits are transplanted back onto the real base on capture.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/session/index.ts';
import { git } from '../../src/common/git.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

// built at run time so no token-shaped literal sits in the repository
const AWS_ID = 'AKIA' + 'Q3EGRKZ7XHP5WN2B';
const AWS_SECRET = 'aB3dE5fG7hJ9kL1mN3pQ' + '5rS7tU9vW1xY3zA5bC7d';

describe('secrets in the base commit', () => {
  it('are redacted in files and absent from the workspace history; agent commits land on the real base', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({
      'README.md': '# app\n',
      'src/config.py': `AWS_ACCESS_KEY_ID = "${AWS_ID}"\nAWS_SECRET_ACCESS_KEY = "${AWS_SECRET}"\nDEBUG = True\n`,
      '.env': `DATABASE_URL=postgres://app:S3cr3tPassw0rd@db.internal:5432/prod\n`,
    });
    const base = git(['rev-parse', 'HEAD'], { cwd: repo }).stdout.trim();
    const s = await Session.open({ repo, home });
    const look = await s.run([
      'bash',
      '-c',
      'cat src/config.py; ls -a; git log --oneline | wc -l; git cat-file -t ' +
        base +
        ' 2>&1; grep -r -a -c -F "' +
        AWS_SECRET.slice(0, 12) +
        '" . .git 2>/dev/null | grep -v ":0" ; echo end',
    ]);
    assert.ok(!look.stdout.includes(AWS_SECRET) && !look.stdout.includes(AWS_ID), `secret visible:\n${look.stdout}`);
    assert.match(look.stdout, /REDACTED/);
    assert.doesNotMatch(look.stdout, /\.env\n/, '.env is hidden');
    assert.match(look.stdout, /^1$/m, 'one synthetic commit, no history');
    assert.match(look.stdout, /(fatal|Not a valid object)/, 'the real base commit is not in the workspace');
    assert.match(look.stdout, /end\n?$/);
    const edit = await s.run([
      'bash',
      '-c',
      'echo "More docs" >> README.md && git commit -qam "Document the app" && sed -i s/True/False/ src/config.py',
    ]);
    assert.equal(edit.status, 0, edit.stderr);
    const res = await s.stop('test');
    const env = { GIT_DIR: res.result!.resultRepo };
    assert.equal(res.result!.baseCommit, base);
    assert.equal(
      git(['rev-parse', `${res.result!.commits[0]}^`], { env }).stdout.trim(),
      base,
      'transplanted onto the real base',
    );
    assert.equal(git(['log', '-1', '--format=%s', res.result!.commits[0]!], { env }).stdout.trim(), 'Document the app');
    const diff = git(['diff', '--name-only', base, res.result!.headCommit], { env }).stdout.trim().split('\n').sort();
    assert.deepEqual(
      diff,
      ['README.md', 'src/config.py'],
      'only what the agent changed; the hidden .env is not deleted',
    );
    // The agent edited a redacted file around markers: the real values are back in place,
    // so the change touches only the line it edited.
    const cfg = git(['show', `${res.result!.headCommit}:src/config.py`], { env }).stdout;
    assert.match(cfg, /DEBUG = False/);
    assert.ok(
      cfg.includes(AWS_SECRET) && cfg.includes(AWS_ID) && !cfg.includes('REDACTED'),
      cfg.replace(AWS_SECRET, '<secret>'),
    );
    const cfgDiff = git(['diff', '--unified=0', base, res.result!.headCommit, '--', 'src/config.py'], { env }).stdout;
    assert.equal(cfgDiff.split('\n').filter((l) => /^[-+][^-+]/.test(l)).length, 2, 'one line changed');
    assert.equal(
      git(['show', `${res.result!.headCommit}:.env`], { env }).stdout.includes('S3cr3tPassw0rd'),
      true,
      'untouched hidden file keeps its base content',
    );
    cleanup(home, repo);
  });
});
