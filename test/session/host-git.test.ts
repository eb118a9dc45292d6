// The host never runs what the agent wrote: hooks, hooksPath, fsmonitor, attribute
// filters and nested repositories planted in the workspace must not execute when
// Airlock captures the result and reads it on the host.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Session } from '../../src/session/index.ts';
import { git } from '../../src/common/git.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

describe('host-side git never runs agent-planted code', () => {
  it('ignores planted hooks, hooksPath, fsmonitor, filters and nested repos', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({ 'a.txt': 'one\n' });
    // Markers live in a host directory the sandbox cannot see; anything that runs on the
    // host writes there. Every planted program writes the same marker prefix.
    const markers = tmp('airlock-markers-');
    const pwn = (name: string) => `#!/bin/sh\ntouch ${markers}/${name}\n`;
    // host-side git hardening alone: the command rules would refuse `git config core.hooksPath`
    // before it runs, but an agent can write .git/config directly
    const s = await Session.open({ repo, home, layers: { commands: null } });
    const script = `
set -e
cd /workspace
for h in pre-commit post-commit post-checkout post-merge pre-push reference-transaction post-index-change fsmonitor-watchman; do
  printf '%s' '${pwn('hook-$h')}' > .git/hooks/$h 2>/dev/null || { mkdir -p .git/hooks; printf '%s' '${pwn('hook-$h')}' > .git/hooks/$h; }
  chmod +x .git/hooks/$h
done
mkdir -p evilhooks && for h in pre-commit post-commit reference-transaction; do printf '%s' '${pwn('hookspath-$h')}' > evilhooks/$h; chmod +x evilhooks/$h; done
printf '%s' '${pwn('fsmonitor')}' > fsmon.sh && chmod +x fsmon.sh
git config core.hooksPath /workspace/evilhooks
git config core.fsmonitor /workspace/fsmon.sh
git config filter.evil.clean "touch ${markers}/filter-clean; cat"
git config filter.evil.smudge "touch ${markers}/filter-smudge; cat"
git config diff.evil.textconv "touch ${markers}/textconv; cat"
git config core.sshCommand "touch ${markers}/ssh"
printf '* filter=evil diff=evil\\n' > .gitattributes
echo two >> a.txt
git -c core.hooksPath=/dev/null add -A
git -c core.hooksPath=/dev/null -c core.fsmonitor=false commit -qm "agent change" --no-verify
mkdir nested && cd nested && git init -q && mkdir -p .git/hooks && printf '%s' '${pwn('nested-hook')}' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout && echo n > n.txt && git add n.txt && git -c core.hooksPath=/dev/null commit -qm nested
cd /workspace && echo dirty > dirty.txt
`;
    const r = await s.run(['bash', '-c', script]);
    assert.equal(r.status, 0, r.stderr);
    const res = await s.stop('test');
    assert.ok(res.result, 'result captured');
    assert.equal(res.result!.commits.length, 2, 'agent commit + uncommitted work');
    assert.equal(res.result!.dirty, true);
    // Now read the result on the host the way review does.
    const env = { GIT_DIR: res.result!.resultRepo };
    git(['log', '--oneline', 'refs/airlock/head'], { env });
    git(['diff', '--no-ext-diff', '--no-textconv', 'refs/airlock/base', 'refs/airlock/head'], { env });
    git(['show', '--stat', 'refs/airlock/head'], { env });
    const files = git(['ls-tree', '-r', '--name-only', 'refs/airlock/head'], { env }).stdout;
    assert.match(files, /\.gitattributes/);
    assert.match(files, /dirty\.txt/);
    assert.deepEqual(readdirSync(markers), [], 'agent-planted code ran on the host');
    // The host checkout is untouched: no hooks, no config change, no new files.
    assert.equal(existsSync(join(repo, '.git', 'hooks', 'post-commit')), false);
    assert.doesNotMatch(
      spawnSync('git', ['config', '--list', '--local'], { cwd: repo, encoding: 'utf8' }).stdout,
      /evil|fsmonitor|hooksPath/,
    );
    assert.equal(spawnSync('git', ['status', '--porcelain'], { cwd: repo, encoding: 'utf8' }).stdout, '');
    cleanup(home, repo, markers);
  });
});
