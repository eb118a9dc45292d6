// Repositories shaped like real ones (test/fixtures/real-repo.ts): a session starts on
// them, links keep their meaning inside the sandbox and are never followed on the host,
// files over the size limit are hidden and named (or kept when the policy checks them as
// binaries), and an agent that reads, edits and commits among them gets exactly its
// change captured and reviewed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/session/index.ts';
import '../../src/session/layers.ts';
import { AuditStore } from '../../src/audit/index.ts';
import { createProposal, loadChange } from '../../src/review/index.ts';
import { makeRealRepo, repoGit, SHAPES } from '../fixtures/real-repo.ts';
import { airlock, cleanup, tmp } from '../helpers.ts';

const POLICY = 'secrets:\n  workspace:\n    maxFileKB: 64\n    binaryPaths: ["vendor/*.wasm"]\n';

function hostTarget(root: string): string {
  const p = join(root, 'host-secret.txt');
  writeFileSync(p, 'host only\n', { mode: 0o600 });
  chmodSync(p, 0o600);
  return p;
}

describe('real repository shapes', () => {
  it('a session starts, links keep their meaning in the sandbox, and the host target is untouched', async () => {
    const root = tmp('airlock-real-');
    const home = join(root, 'home');
    const target = hostTarget(root);
    const before = statSync(target);
    const repo = join(root, 'repo');
    const { long, deep } = makeRealRepo(repo, { maxFileKB: 64, hostTarget: target, policy: POLICY });
    const s = await Session.open({ repo, home });
    try {
      const after = statSync(target);
      assert.deepEqual(
        [after.uid, after.gid, after.mode],
        [before.uid, before.gid, before.mode],
        'the link target on the host was chowned or changed',
      );
      const look = await s.run([
        'bash',
        '-c',
        [
          `for l in ${SHAPES.relLink} ${SHAPES.absLink} ${SHAPES.upLink} ${SHAPES.dangling} ${SHAPES.dirLink} ${SHAPES.chain} ${SHAPES.gitLink} ${SHAPES.binLink} ${SHAPES.bigNativeLink}; do echo "link $l -> $(readlink $l)"; done`,
          `echo "rel: $(cat ${SHAPES.relLink} | head -1)"; echo "chain: $(cat ${SHAPES.chain} | head -1)"; echo "dir: $(ls ${SHAPES.dirLink}/ | tr '\\n' ' ')"`,
          `cat ${SHAPES.absLink} >/dev/null 2>&1 && echo "host readable" || echo "host not readable"`,
          `./${SHAPES.binLink}`,
          `test -x ${SHAPES.exec} && echo exec-ok`,
          `head -1 ${SHAPES.lfs}`,
          `test -d ${SHAPES.submodule} && echo submodule-dir`,
          `cat ${SHAPES.caseA} ${SHAPES.caseB} | grep echo`,
          `test -f ${SHAPES.empty} && ! test -s ${SHAPES.empty} && echo empty-ok`,
          'ls | grep -c "^non-"',
          `cat '${long}' '${deep}'`,
          `test -e ${SHAPES.bigNative} && echo native-present || echo native-hidden`,
          `test -e ${SHAPES.bigText} && echo dump-present || echo dump-hidden`,
          `test -s ${SHAPES.bigAllowed} && echo wasm-present`,
          'git status --porcelain | head -5; echo status-done',
        ].join('; '),
      ]);
      const out = look.stdout;
      for (const [l, t] of [
        [SHAPES.relLink, '../README.md'],
        [SHAPES.absLink, target],
        [SHAPES.upLink, '../../../../../../etc/passwd'],
        [SHAPES.dangling, 'does-not-exist'],
        [SHAPES.dirLink, 'src'],
        [SHAPES.chain, 'chain-b'],
        [SHAPES.gitLink, '.git/config'],
        [SHAPES.binLink, '../tool/bin/cli.js'],
        [SHAPES.bigNativeLink, '../native/build/addon.node'],
      ]) {
        assert.ok(out.includes(`link ${l} -> ${t}\n`), `${l} should point at ${t}:\n${out}`);
      }
      assert.match(out, /rel: # app\n/);
      assert.match(out, /chain: # app\n/);
      assert.match(out, /dir: index\.js util\.js \n/);
      assert.match(out, /host not readable/);
      assert.match(out, /tool ran\n/);
      assert.match(out, /exec-ok\n/);
      assert.match(
        out,
        /version https:\/\/git-lfs\.github\.com\/spec\/v1\n/,
        'the LFS pointer stays a pointer (no filter runs)',
      );
      assert.match(out, /submodule-dir\n/);
      assert.match(out, /echo upper\n\techo lower\n/, 'case-colliding names are two files');
      assert.match(out, /empty-ok\n/);
      assert.match(out, /^1$/m, 'the non-UTF-8 name is there');
      assert.match(out, /long name\ndeep\n/);
      assert.match(out, /native-hidden\n/);
      assert.match(out, /dump-hidden\n/);
      assert.match(out, /wasm-present\n/, 'binaryPaths keeps a large binary whose printable text is clean');
      assert.match(out, /status-done/);
    } finally {
      await s.stop('test');
    }
    const store = new AuditStore(join(home, 'audit.db'));
    try {
      const hidden = store
        .query({ session: s.id, type: 'secrets.hidden' })
        .map((e) => `${e.data.file}:${e.data.reason}`)
        .sort();
      assert.deepEqual(hidden, [`${SHAPES.bigText}:too-large`, `${SHAPES.bigNative}:too-large`].sort());
      const sum = store.query({ session: s.id, type: 'secrets.sanitize' })[0]!;
      assert.equal(sum.data.hidden, 2);
      assert.match(String(sum.data.hint), /binaryPaths/);
    } finally {
      store.close();
    }
    cleanup(root);
  });

  it('an agent reads, edits and commits among the shapes; capture and review give exactly its change', async () => {
    const root = tmp('airlock-real-');
    const home = join(root, 'home');
    const repo = join(root, 'repo');
    const { commit: base } = makeRealRepo(repo, { maxFileKB: 64, hostTarget: hostTarget(root), policy: POLICY });
    const s = await Session.open({ repo, home });
    let res;
    try {
      const edit = await s.run([
        'bash',
        '-c',
        [
          'set -e',
          `echo "More." >> ${SHAPES.chain}`,
          `echo "module.exports = () => 'v2';" > ${SHAPES.dirLink}/index.js`,
          'ln -s src/util.js new-link',
          `rm ${SHAPES.dangling}`,
          'chmod +x src/util.js',
          "printf 'edited\\n' > non-*.txt",
          `ln -sfn ../README.md ${SHAPES.bigNativeLink}`,
          // over review's size limit (1 MiB) and its whole-text cap (4 MiB)
          "head -c 5000000 /dev/zero | tr '\\0' a > big-new.txt",
          'git add -A',
          'git commit -qm "agent change"',
        ].join('\n'),
      ]);
      assert.equal(edit.status, 0, edit.stderr);
    } finally {
      res = await s.stop('test');
    }
    const r = res.result!;
    assert.equal(r.baseCommit, base);
    const change = loadChange(r.resultRepo, r.baseCommit, r.headCommit, r.commits);
    const got = change.files.map((f) => `${f.status} ${f.path}`).sort();
    const nonUtf8 = repoGit(repo, ['-c', 'core.quotePath=false', 'ls-files', '--', 'non-*']).trim();
    assert.deepEqual(
      got,
      [
        `deleted ${SHAPES.dangling}`,
        'added new-link',
        'added big-new.txt',
        `modified ${SHAPES.bigNativeLink}`,
        'modified README.md',
        'modified src/index.js',
        'modified src/util.js',
        `modified ${Buffer.from(nonUtf8, 'latin1').toString('utf8')}`,
      ].sort(),
      "exactly the agent's change: hidden files are not deleted, links are changes of their own",
    );
    const show = (p: string) => repoGit(repo, ['--git-dir', r.resultRepo, 'show', `${r.headCommit}:${p}`]);
    assert.equal(show('new-link'), 'src/util.js');
    assert.equal(show('README.md'), '# app\n\nSee docs.\nMore.\n');
    assert.equal(show(SHAPES.bigNative).length, 64 * 1024 + 4096, 'the hidden binary keeps its base content');
    assert.match(
      repoGit(repo, ['--git-dir', r.resultRepo, 'ls-tree', r.headCommit, SHAPES.submodule]),
      /^160000 commit /,
      'the submodule stays a gitlink',
    );
    const store = new AuditStore(join(home, 'audit.db'));
    try {
      const { proposal } = await createProposal(store, s.id, { home });
      assert.equal(proposal.stats.files, 8);
      assert.deepEqual(
        proposal.findings.filter((f) => f.rule === 'size.file').map((f) => f.file),
        ['big-new.txt'],
        'the oversized file is named in review',
      );
    } finally {
      store.close();
    }
    cleanup(root);
  });

  it('airlock run names the hidden files and how to let them in', () => {
    const root = tmp('airlock-real-');
    const repo = join(root, 'repo');
    makeRealRepo(repo, { maxFileKB: 64, hostTarget: hostTarget(root), policy: POLICY });
    const r = airlock(['run', '--', 'true'], { cwd: repo, home: join(root, 'home') });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /2 file\(s\) hidden from the agent \(too-large; over secrets\.workspace\.maxFileKB: raise it, or name them in secrets\.workspace\.binaryPaths/,
    );
    assert.ok(r.stderr.includes(`"${SHAPES.bigNative}"`) && r.stderr.includes(`"${SHAPES.bigText}"`), r.stderr);
    cleanup(root);
  });
});

describe('a link to a host file', () => {
  it("never hands the host file to the sandbox user (chown followed links: /etc/shadow would have become the agent's)", () => {
    const root = tmp('airlock-abslink-');
    const target = hostTarget(root);
    const before = statSync(target);
    const repo = join(root, 'repo');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q']);
    repoGit(repo, [
      'update-index',
      '--add',
      '--cacheinfo',
      `120000,${repoGit(repo, ['hash-object', '-w', '--stdin'], target).trim()},host-link`,
    ]);
    repoGit(repo, ['commit', '-qm', 'link']);
    const r = airlock(['run', '--', 'sh', '-c', 'readlink host-link; cat host-link 2>/dev/null || echo unreadable'], {
      cwd: repo,
      home: join(root, 'home'),
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${target}\nunreadable\n`);
    const after = statSync(target);
    assert.deepEqual([after.uid, after.gid, after.mode], [before.uid, before.gid, before.mode]);
    cleanup(root);
  });
});

describe('a dangling symlink alone', () => {
  it('does not stop a session (it killed every one with ENOENT)', () => {
    const root = tmp('airlock-dangling-');
    const repo = join(root, 'repo');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q']);
    repoGit(repo, ['commit', '-q', '--allow-empty', '-m', 'empty']);
    writeFileSync(join(repo, 'a'), 'a\n');
    repoGit(repo, ['add', 'a']);
    repoGit(repo, [
      'update-index',
      '--add',
      '--cacheinfo',
      `120000,${repoGit(repo, ['hash-object', '-w', '--stdin'], 'does-not-exist').trim()},dangling`,
    ]);
    repoGit(repo, ['commit', '-qm', 'link']);
    const r = airlock(['run', '--', 'readlink', 'dangling'], { cwd: repo, home: join(root, 'home') });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'does-not-exist\n');
    assert.doesNotMatch(r.stderr, /internal error/);
    assert.equal(readFileSync(join(repo, 'a'), 'utf8'), 'a\n');
    cleanup(root);
  });
});
