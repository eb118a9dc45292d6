// Snapshot layers built from a previous layer (hard links + changed paths) must be exactly
// what a full build gives, never touch anything outside the layer while doing it, and keep
// the sanitized history self-contained. Scan verdicts cached by blob id are reused only
// under the same policy.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { prepareSnapshot, openHostRepo, type SnapshotSanitizer } from '../../src/workspace/index.ts';
import { sanitizeSnapshot, sanitizeTree, type SnapshotReport } from '../../src/secrets/index.ts';
import { defaultPolicy, parsePolicyText, resolvePolicy, type PolicySource } from '../../src/policy/index.ts';
import type { SecretsPolicy } from '../../src/policy/schema/secrets.ts';
import { walkBytes } from '../../src/common/fs.ts';
import { binaryBytes, repoGit } from '../fixtures/real-repo.ts';
import { cleanup, isRoot, tmp } from '../helpers.ts';

const AWS_ID = 'AKIA' + 'Q3EGRKZ7XHP5WN2B';
const AWS_SECRET = 'aB3dE5fG7hJ9kL1mN3pQ' + '5rS7tU9vW1xY3zA5bC7d';

function policy(over: Partial<SecretsPolicy['workspace']> = {}): SecretsPolicy {
  const p = defaultPolicy().secrets;
  return { ...p, workspace: { ...p.workspace, maxFileKB: 16, ...over } };
}

function sanitizer(p: SecretsPolicy, cacheDir: string, variant = 'v'): SnapshotSanitizer {
  return { variant, run: (input) => sanitizeSnapshot(input, p, { cacheDir }) };
}

/** Every entry of a layer (not .git): type, mode and content or link target. */
function listing(dir: string): string[] {
  const out: string[] = [];
  for (const e of walkBytes(dir, { skip: (rel) => rel.toString('latin1') === '.git' })) {
    const st = lstatSync(e.abs);
    const what =
      e.kind === 'symlink'
        ? `-> ${readlinkSync(e.abs, 'latin1')}`
        : e.kind === 'file'
          ? readFileSync(e.abs).toString('latin1')
          : '';
    out.push(`${e.rel.toString('latin1')} ${e.kind} ${(st.mode & 0o777).toString(8)} ${what}`);
  }
  return out.sort();
}

function write(
  repo: string,
  files: Record<string, string | Buffer | null>,
  links: Record<string, string> = {},
): string {
  for (const [p, c] of Object.entries(files)) {
    rmSync(join(repo, p), { recursive: true, force: true });
    if (c === null) continue;
    mkdirSync(join(repo, p, '..'), { recursive: true });
    writeFileSync(join(repo, p), c);
  }
  for (const [p, t] of Object.entries(links)) {
    rmSync(join(repo, p), { recursive: true, force: true });
    mkdirSync(join(repo, p, '..'), { recursive: true });
    symlinkSync(t, join(repo, p));
  }
  repoGit(repo, ['add', '-A']);
  repoGit(repo, ['commit', '-qm', 'step', '--allow-empty']);
  return repoGit(repo, ['rev-parse', 'HEAD']).trim();
}

describe('snapshot layers', () => {
  it('a layer built from the previous one equals a full build, and nothing outside is touched', async () => {
    const root = tmp('airlock-snap-');
    const repo = join(root, 'repo');
    const outside = join(root, 'outside');
    mkdirSync(join(outside, 'lib'), { recursive: true });
    writeFileSync(join(outside, 'lib', 'x'), 'host file\n');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q', '-b', 'main']);
    const big = binaryBytes(20 * 1024, 'big');
    const c1 = write(
      repo,
      {
        'README.md': '# one\n',
        'src/a.js': 'a\n',
        'src/b.js': 'b\n',
        'keep/same.txt': 'same\n',
        'big.bin': big,
        'config.py': `AWS_ACCESS_KEY_ID = "${AWS_ID}"\n`,
        'becomes-dir': 'file\n',
        'data/one.txt': '1\n',
      },
      { lib: outside + '/lib', 'link-to-big': 'big.bin', dangling: 'nowhere' },
    );
    const c2 = write(
      repo,
      {
        'README.md': '# two\n',
        'src/b.js': null,
        'src/c.js': 'c\n',
        'becomes-dir': null,
        'becomes-dir/inner.txt': 'inner\n',
        lib: null,
        'lib/x': 'now a real dir\n',
        'secret.txt': `aws_secret_access_key = "${AWS_SECRET}"\n`,
        'data/one.txt': null,
      },
      { 'src/link': '../README.md' },
    );
    const p = policy();
    const hostRepo = openHostRepo(repo);
    const incr = join(root, 'cache-incr');
    const owner = isRoot ? { uid: 100000, gid: 100000 } : null; // as sessions run: layers belong to the sandbox user
    const first = await prepareSnapshot(incr, hostRepo, c1, owner, sanitizer(p, join(incr, 'scan')));
    assert.equal(first.build, 'full');
    const second = await prepareSnapshot(incr, hostRepo, c2, owner, sanitizer(p, join(incr, 'scan')));
    assert.equal(second.build, 'incremental');
    if (owner) {
      const foreign = [...walkBytes(second.lowerDirs[0]!)]
        .filter((e) => lstatSync(e.abs).uid !== owner.uid)
        .map((e) => e.rel.toString());
      assert.deepEqual(foreign, [], 'every entry of the new layer belongs to the sandbox user');
    }
    const full = join(root, 'cache-full');
    const whole = await prepareSnapshot(full, hostRepo, c2, null, sanitizer(p, join(full, 'scan')));
    assert.equal(whole.build, 'full');

    assert.equal(
      readFileSync(join(outside, 'lib', 'x'), 'utf8'),
      'host file\n',
      'a path under a replaced link was written on the host',
    );
    assert.deepEqual(listing(second.lowerDirs[0]!), listing(whole.lowerDirs[0]!));
    const l = listing(second.lowerDirs[0]!).join('\n');
    assert.match(l, /^lib\/x file 600 now a real dir$/m); // layers are private to their owner (AIRLOCK_HOME)
    assert.match(l, /^becomes-dir\/inner\.txt file/m);
    assert.doesNotMatch(l, /^(src\/b\.js|data|big\.bin) /m, 'removed and hidden paths are absent');
    assert.ok(!l.includes(AWS_ID) && !l.includes(AWS_SECRET), 'secrets are redacted in both layers');
    // the same sanitized commit, self-contained: every object it needs, no original, no history
    assert.ok(second.syntheticBase && second.syntheticBase === whole.syntheticBase, 'identical sanitized commit');
    const gd = join(second.lowerDirs[0]!, '.git');
    assert.equal(existsSync(join(gd, 'objects', 'info', 'alternates')), false);
    repoGit(root, ['--git-dir', gd, 'rev-list', '--objects', '--missing=error', second.syntheticBase!]);
    assert.equal(repoGit(root, ['--git-dir', gd, 'rev-list', '--count', second.syntheticBase!]).trim(), '1');
    const originals = repoGit(repo, ['rev-parse', `${c1}:config.py`, `${c2}:secret.txt`, `${c1}:big.bin`])
      .trim()
      .split('\n');
    for (const o of originals) {
      assert.notEqual(
        spawnSync('git', ['--git-dir', gd, 'cat-file', '-e', o]).status,
        0,
        `original ${o} is in the layer`,
      );
    }
    const r2 = second.report as SnapshotReport;
    const rw = whole.report as SnapshotReport;
    assert.deepEqual(r2.hidden.map((h) => h.file).sort(), rw.hidden.map((h) => h.file).sort());
    assert.deepEqual(r2.touched, rw.touched);
    assert.deepEqual(
      r2.events
        .filter((e) => e.type === 'secrets.redacted')
        .map((e) => e.data?.file)
        .sort(),
      ['config.py', 'secret.txt'],
    );
    cleanup(root);
  });

  it('scan verdicts are reused by blob id under the same policy only', async () => {
    const root = tmp('airlock-snap-cache-');
    const repo = join(root, 'repo');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q', '-b', 'main']);
    const c1 = write(repo, { 'a.txt': 'alpha\n', 'b.bin': binaryBytes(20 * 1024, 'b'), 'c.txt': 'gamma\n' });
    const hostRepo = openHostRepo(repo);
    const cache = join(root, 'scan');
    const one = await prepareSnapshot(join(root, 'c1'), hostRepo, c1, null, sanitizer(policy(), cache));
    assert.deepEqual([(one.report as SnapshotReport).scanned, (one.report as SnapshotReport).cached], [2, 0]);
    // another data dir layout (no previous layer) on the same cache: nothing rescanned, same verdicts
    const two = await prepareSnapshot(join(root, 'c2'), hostRepo, c1, null, sanitizer(policy(), cache));
    assert.deepEqual([(two.report as SnapshotReport).scanned, (two.report as SnapshotReport).cached], [0, 3]);
    assert.deepEqual(
      (two.report as SnapshotReport).hidden.map((h) => `${h.file}:${h.reason}`),
      ['b.bin:too-large'],
    );
    // a larger limit is another policy: the binary is read (its verdict differs), not taken from the cache
    const three = await prepareSnapshot(
      join(root, 'c3'),
      hostRepo,
      c1,
      null,
      sanitizer(policy({ maxFileKB: 64 }), cache, 'w'),
    );
    assert.deepEqual((three.report as SnapshotReport).hidden, []);
    assert.equal((three.report as SnapshotReport).cached, 0);
    cleanup(root);
  });

  it('a broken build leaves no partial layer behind and the next attempt builds it whole', async () => {
    const root = tmp('airlock-snap-fail-');
    const repo = join(root, 'repo');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q', '-b', 'main']);
    const c1 = write(repo, { 'a.txt': 'alpha\n' });
    const hostRepo = openHostRepo(repo);
    const cache = join(root, 'cache');
    const failing: SnapshotSanitizer = {
      variant: 'v',
      run: async () => {
        throw new Error('scanner down');
      },
    };
    await assert.rejects(prepareSnapshot(cache, hostRepo, c1, null, failing), /scanner down/);
    const layers = join(cache, 'trees', hostRepo.key);
    assert.deepEqual(existsSync(layers) ? readdirNames(layers) : [], [], 'no .build-* left');
    const ok = await prepareSnapshot(cache, hostRepo, c1, null, sanitizer(policy(), join(root, 'scan')));
    assert.equal(ok.build, 'full');
    cleanup(root);
  });
});

describe('the mirror of a packed repository', () => {
  it('links the host packs only when they hold nothing but branches and tags, and never changes their owner', async () => {
    const root = tmp('airlock-mirror-');
    const repo = join(root, 'repo');
    mkdirSync(repo);
    repoGit(repo, ['init', '-q', '-b', 'main']);
    const c1 = write(repo, { 'a.txt': 'alpha\n' });
    repoGit(repo, ['repack', '-adq']);
    const packs = join(repo, '.git', 'objects', 'pack');
    const hostPack = [...walkBytes(packs)].find((e) => e.rel.toString().endsWith('.pack'))!.abs;
    const before = lstatSync(hostPack);
    const owner = isRoot ? { uid: 100000, gid: 100000 } : null;
    const clean = await prepareSnapshot(join(root, 'c1'), openHostRepo(repo), c1, owner);
    const linked = [...walkBytes(join(clean.mirror, 'objects', 'pack'))].filter((e) =>
      e.rel.toString().endsWith('.pack'),
    );
    assert.equal(linked.length, 1);
    assert.equal(lstatSync(linked[0]!.abs).ino, before.ino, 'the packed repository is linked, not re-indexed');
    assert.equal(lstatSync(hostPack).uid, before.uid, "the user's pack kept its owner");
    // a stash (not a branch or tag) holding a secret: that pack must not be linked
    writeFileSync(join(repo, 'a.txt'), `key = ${AWS_ID}\n`);
    repoGit(repo, ['stash', '-q']);
    const stashBlob = repoGit(repo, ['rev-parse', 'stash@{0}:a.txt']).trim();
    repoGit(repo, ['repack', '-adq']);
    const stashed = await prepareSnapshot(join(root, 'c2'), openHostRepo(repo), c1, owner);
    assert.notEqual(
      spawnSync('git', ['--git-dir', stashed.mirror, 'cat-file', '-e', stashBlob]).status,
      0,
      'the stash reached the mirror',
    );
    assert.equal(spawnSync('git', ['--git-dir', stashed.mirror, 'cat-file', '-e', `${c1}:a.txt`]).status, 0);
    cleanup(root);
  });
});

describe('binary content', () => {
  it('is checked by its printable runs: a secret hides it, none keeps it, a large one named in binaryPaths is streamed', async () => {
    const root = tmp('airlock-bin-');
    const withSecret = Buffer.concat([
      binaryBytes(4096, 's'),
      Buffer.from(`\0key=${AWS_ID}\0`),
      binaryBytes(4096, 't'),
    ]);
    // a secret that straddles the 1 MiB read boundary of the stream
    const edge = Buffer.concat([binaryBytes((1 << 20) - 5, 'e'), Buffer.from(`\0${AWS_ID}\0`), binaryBytes(4096, 'f')]);
    writeFileSync(join(root, 'small-secret.bin'), withSecret);
    writeFileSync(join(root, 'small-clean.bin'), binaryBytes(8192, 'c'));
    mkdirSync(join(root, 'vendor'));
    writeFileSync(join(root, 'vendor', 'edge.wasm'), edge);
    writeFileSync(join(root, 'vendor', 'clean.wasm'), binaryBytes(2 << 20, 'w'));
    writeFileSync(join(root, 'other.wasm'), binaryBytes(2 << 20, 'o'));
    const res = await sanitizeTree(root, policy({ maxFileKB: 1024, binaryPaths: ['vendor/*.wasm'] }), () => {});
    assert.deepEqual(res.hidden.sort(), ['other.wasm', 'small-secret.bin', 'vendor/edge.wasm']);
    assert.ok(existsSync(join(root, 'small-clean.bin')) && existsSync(join(root, 'vendor', 'clean.wasm')));
    // the same verdicts on worker threads
    const again = tmp('airlock-bin-w-');
    writeFileSync(join(again, 'secret.bin'), withSecret);
    writeFileSync(join(again, 'clean.bin'), binaryBytes(8192, 'c'));
    writeFileSync(join(again, 'config.py'), `AWS_ACCESS_KEY_ID = "${AWS_ID}"\n`);
    const w = await sanitizeTree(again, policy(), () => {}, { workers: true });
    assert.deepEqual(w.hidden, ['secret.bin']);
    assert.equal(w.redacted.length, 1);
    assert.ok(existsSync(join(again, 'clean.bin')) && !readFileSync(join(again, 'config.py'), 'utf8').includes(AWS_ID));
    cleanup(root, again);
  });
});

describe('secrets.workspace.binaryPaths', () => {
  it('loosens maxFileKB, so a repo policy cannot name a path the org policy did not', () => {
    const src = (kind: string, text: string): PolicySource => ({
      kind,
      origin: `${kind}.yaml`,
      raw: parsePolicyText(text, `${kind}.yaml`),
    });
    const org = src('org', 'secrets:\n  workspace:\n    binaryPaths: ["**/*.node"]\n');
    const repo = src('repo', 'secrets:\n  workspace:\n    binaryPaths: ["**/*.node", "**/*"]\n');
    assert.deepEqual(resolvePolicy([org, repo]).policy.secrets.workspace.binaryPaths, ['**/*.node']);
    assert.deepEqual(
      resolvePolicy([repo]).policy.secrets.workspace.binaryPaths,
      ['**/*.node', '**/*'],
      'without an org policy the repo names its own',
    );
    assert.deepEqual(
      defaultPolicy().secrets.workspace.binaryPaths,
      [],
      'by default every file over the limit is hidden',
    );
  });
});

function readdirNames(dir: string): string[] {
  return [...walkBytes(dir)].filter((e) => e.depth === 1).map((e) => e.rel.toString());
}
