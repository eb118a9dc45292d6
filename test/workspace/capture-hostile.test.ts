import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { captureWorkspace } from '../../src/workspace/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

// Red team (issue 11, points 3 and 4): capture reads only what lies inside the session
// and bounds what it expands. Capture is called directly on a plain directory standing
// for the sandbox's workspace (the sandbox itself is not needed to plant these files).

function g(cwd: string | null, args: string[], o: { input?: string | Buffer; gitDir?: string } = {}): string {
  const r = spawnSync('git', args, {
    cwd: cwd ?? '/',
    input: o.input,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    env: {
      ...process.env,
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'U',
      GIT_AUTHOR_EMAIL: 'u@example.com',
      GIT_COMMITTER_NAME: 'U',
      GIT_COMMITTER_EMAIL: 'u@example.com',
      ...(o.gitDir ? { GIT_DIR: o.gitDir } : {}),
    },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A host repo with a base commit and a private, unpushed commit on top; a mirror holding only the base; a workspace clone at the base. */
function world() {
  const dir = tmp('airlock-capture-');
  const host = makeRepo({ 'README.md': '# app\n' }, join(dir, 'host'));
  const base = g(host, ['rev-parse', 'HEAD']);
  writeFileSync(join(host, 'private.txt'), 'unpushed private work\n');
  g(host, ['add', '-A']);
  g(host, ['commit', '-qm', 'private']);
  const priv = g(host, ['rev-parse', 'HEAD']);
  const mirror = join(dir, 'mirror.git');
  g(dir, ['init', '-q', '--bare', '-b', 'main', mirror]);
  g(host, ['push', '-q', mirror, `${base}:refs/heads/main`]);
  const ws = join(dir, 'ws');
  g(dir, ['clone', '-q', mirror, ws]);
  const capture = () =>
    captureWorkspace({
      workspace: ws,
      upperGitDir: null,
      resultRepo: join(dir, 'result.git'),
      mirror,
      baseCommit: base,
    });
  const has = (obj: string) =>
    spawnSync('git', ['cat-file', '-e', obj], { env: { ...process.env, GIT_DIR: join(dir, 'result.git') } }).status ===
    0;
  return { dir, host, base, priv, mirror, ws, capture, has };
}

test('a .git symlink or gitfile into a host repository is refused and named; nothing of the host repo is captured', () => {
  for (const kind of ['symlink', 'gitfile'] as const) {
    const w = world();
    try {
      cleanup(join(w.ws, '.git'));
      if (kind === 'symlink') symlinkSync(join(w.host, '.git'), join(w.ws, '.git'));
      else writeFileSync(join(w.ws, '.git'), `gitdir: ${join(w.host, '.git')}\n`);
      const r = w.capture();
      assert.equal(r.headCommit, w.base, `${kind}: the host's private commit is not the result`);
      assert.deepEqual(r.commits, []);
      assert.ok(!w.has(w.priv), `${kind}: the private commit's object was not copied`);
      assert.deepEqual(
        r.refusals.map((x) => x.rule),
        [kind === 'symlink' ? 'git-symlink' : 'gitfile'],
      );
      assert.match(r.refusals[0]!.message, /not captured/);
    } finally {
      cleanup(w.dir);
    }
  }
});

test('a nested gitfile pointing at a host repository is left out and named (no gitlink to the host HEAD)', () => {
  const w = world();
  try {
    mkdirSync(join(w.ws, 'sub'));
    writeFileSync(join(w.ws, 'sub', '.git'), `gitdir: ${join(w.host, '.git')}\n`);
    writeFileSync(join(w.ws, 'sub', 'x.txt'), 'x\n');
    writeFileSync(join(w.ws, 'ok.txt'), 'fine\n');
    const r = w.capture();
    const tree = g(null, ['ls-tree', '-r', r.headCommit], { gitDir: join(w.dir, 'result.git') });
    assert.ok(!tree.includes(w.priv), 'the host HEAD is not in the tree');
    assert.doesNotMatch(tree, /\tsub/, 'the nested repository is not captured');
    assert.match(tree, /\tok\.txt$/m, 'the rest of the work is');
    assert.deepEqual(
      r.refusals.map((x) => `${x.rule}:${x.path}`),
      ['nested-repository:sub/.git'],
    );
  } finally {
    cleanup(w.dir);
  }
});

test('alternates and links inside .git are refused and named', () => {
  const w = world();
  try {
    mkdirSync(join(w.ws, '.git', 'objects', 'info'), { recursive: true });
    writeFileSync(join(w.ws, '.git', 'objects', 'info', 'alternates'), join(w.host, '.git', 'objects') + '\n');
    cleanup(join(w.ws, '.git', 'packed-refs'));
    symlinkSync(join(w.host, '.git', 'packed-refs'), join(w.ws, '.git', 'packed-refs'));
    writeFileSync(join(w.ws, '.git', 'HEAD'), `${w.priv}\n`);
    const r = w.capture();
    assert.equal(r.headCommit, w.base);
    assert.deepEqual(r.refusals.map((x) => x.path).sort(), ['.git/objects/info/alternates', '.git/packed-refs']);
  } finally {
    cleanup(w.dir);
  }
});

test('a tree bomb (100 KB expanding to 10⁹ paths) is refused from its trees alone: no host git expands it', () => {
  const w = world();
  try {
    const gd = join(w.ws, '.git');
    const blob = g(null, ['hash-object', '-w', '--stdin'], { input: '', gitDir: gd });
    let t = blob;
    let mode = '100644 blob';
    for (let level = 0; level < 3; level++) {
      const lines = Array.from({ length: 1000 }, (_, i) => `${mode} ${t}\tf${i}`).join('\n') + '\n';
      t = g(null, ['mktree'], { input: lines, gitDir: gd });
      mode = '040000 tree';
    }
    const baseTree = g(null, ['ls-tree', w.base], { gitDir: gd });
    const root = g(null, ['mktree'], { input: `${baseTree}\n040000 tree ${t}\tbomb\n`, gitDir: gd });
    const bomb = g(w.ws, ['commit-tree', root, '-p', w.base, '-m', 'bomb']);
    g(w.ws, ['update-ref', 'refs/heads/main', bomb]);
    const r = w.capture();
    assert.equal(r.headCommit, w.base, 'the bomb is not the result');
    assert.deepEqual(
      r.refusals.map((x) => x.rule),
      ['too-large'],
    );
    assert.match(r.refusals[0]!.message, /more than \d+ paths/);
  } finally {
    cleanup(w.dir);
  }
});
