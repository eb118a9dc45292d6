import {
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  readFileSync,
  unlinkSync,
  rmdirSync,
  readdirSync,
  linkSync,
  lstatSync,
  lchownSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { git, gitEnv, hardenedArgs, makePrivateTree, chownTreeNoFollow, joinBytes, linkTree } from '../common/index.ts';
import type { HostRepo } from './repo.ts';

// A copy-on-write workspace is two read-only layers under the session's overlay:
//   shared/<repo>/.git        a bare mirror of the host repo (objects, branches, tags)
//   trees/<repo>/<commit>/    the checked-out files of one commit + a thin .git
//                             (HEAD, config, index, work branch) that overrides the mirror's
// Both are built once (per repo, per commit) and reused, so starting a session on a
// 50k-file repo costs a mount, not a copy. The session's writes go to its own upper dir.
// A new commit's layer is built from the last one built for the repo: unchanged files
// are hard links to the previous layer's (already sanitized) files, and only the paths
// git reports as changed are checked out and scanned; scan verdicts are cached by blob
// id, so the cost follows the change, not the repository.

export interface Snapshot {
  commit: string;
  /** overlay lowerdir, top first */
  lowerDirs: string[];
  /** bare mirror repo with the base history (trusted, Airlock-written config) */
  mirror: string;
  /** true when this call had to build the commit layer */
  built: boolean;
  /** how the layer was built: reused, from a previous layer (changed paths only), or whole */
  build: 'cached' | 'incremental' | 'full';
}

export const WORK_BRANCH = 'airlock/work';

/** One file of the base commit as git's index lists it. */
export interface TreeFile {
  /** path bytes in the layer (names need not be UTF-8) */
  abs: Buffer;
  /** the path as text (lossy for non-UTF-8 names): for rules and records */
  rel: string;
  /** the exact path bytes as a latin1 string: a lossless key */
  key: string;
  /** git mode: 100644, 100755, 120000 (symlink), 160000 (submodule) */
  mode: string;
  blob: string;
  /** blob size in bytes (regular files, when the layer is sanitized) */
  size?: number;
}

export interface SanitizeInput {
  dir: string;
  /** files to look at: all on a full build, the changed ones on an incremental build */
  files: TreeFile[];
  /** the previous layer's report and the paths (keys) that changed since it */
  previous: { report: unknown; changed: ReadonlySet<string> } | null;
  /** `files` are not in the layer yet: writes the given paths (keys), so the sanitizer
   * writes what it keeps, batch by batch, and never what it hides unread. Whatever it
   * neither wrote nor touched is written after it returns. */
  write: (keys: string[]) => Promise<void>;
}

export interface SanitizeOutput {
  /** whether the layer differs from the commit (then its history must stay out) */
  changed: boolean;
  report: unknown;
  /** keys of every path the layer lacks or rewrote, for the sanitized commit's index */
  touched: string[];
}

/**
 * Sanitizes a layer before it becomes read-only (secrets redacted, key files hidden).
 * `variant` names the policy (e.g. a hash of the secrets policy): differently sanitized
 * layers are cached apart.
 */
export interface SnapshotSanitizer {
  variant: string;
  run: (input: SanitizeInput) => Promise<SanitizeOutput>;
}

type Owner = { uid: number; gid: number } | null;

const SYNTHETIC_ENV = {
  GIT_AUTHOR_NAME: 'Airlock',
  GIT_AUTHOR_EMAIL: 'airlock@localhost',
  GIT_AUTHOR_DATE: '1970-01-01T00:00:00Z',
  GIT_COMMITTER_NAME: 'Airlock',
  GIT_COMMITTER_EMAIL: 'airlock@localhost',
  GIT_COMMITTER_DATE: '1970-01-01T00:00:00Z',
};
/** Stat checks that survive hard links and chown (the content check is by size and mtime). */
const STAT_CONFIG = ['-c', 'core.trustctime=false', '-c', 'core.checkStat=minimal'];

function ensureMirror(cacheRoot: string, repo: HostRepo, commit: string, owner: Owner): string {
  const base = join(cacheRoot, 'shared', repo.key);
  const mirror = join(base, '.git');
  if (!existsSync(join(mirror, 'HEAD'))) {
    const tmp = join(cacheRoot, 'shared', `.build-${repo.key}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    git(['init', '--bare', '--quiet', '--template=', join(tmp, '.git')]);
    mkdirSync(join(tmp, '.git', 'refs', 'heads'), { recursive: true });
    mkdirSync(join(tmp, '.git', 'refs', 'tags'), { recursive: true });
    mkdirSync(base, { recursive: true, mode: 0o700 });
    try {
      renameSync(join(tmp, '.git'), mirror);
    } catch {
      /* another process won the race */
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  if (git(['cat-file', '-e', `${commit}^{commit}`], { env: { GIT_DIR: mirror }, allowFail: true }).status !== 0) {
    linkHostPacks(repo, mirror);
    // Objects only: a fetch runs no hooks of ours or the host's (hardened git). Fast zlib:
    // the mirror is a cache, and compressing a gigabyte at the default level costs more than it saves.
    const fetch = [
      '-c',
      'pack.compression=1',
      '-c',
      'core.compression=1',
      'fetch',
      '--quiet',
      '--no-write-fetch-head',
      repo.root,
    ];
    const about = `the repository ${repo.root}`;
    git([...fetch, '--no-tags', '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], {
      env: { GIT_DIR: mirror },
      about,
    });
    if (git(['cat-file', '-e', `${commit}^{commit}`], { env: { GIT_DIR: mirror }, allowFail: true }).status !== 0) {
      git([...fetch, commit], { env: { GIT_DIR: mirror }, about });
    }
    if (owner) chownTreeNoFollow(mirror, owner, { keepShared: true });
    makePrivateTree(mirror, undefined, { keepShared: true });
  }
  return mirror;
}

/**
 * Hard-links the host repository's pack files into the mirror when they hold nothing but
 * what a fetch would bring (objects reachable from branches and tags): a gigabyte is then
 * mirrored in milliseconds instead of re-indexed by a fetch. A pack with anything else in
 * it (a stash, dropped commits, remote-tracking history) is left to the fetch, which
 * copies only the reachable objects; so is every pack on another filesystem.
 */
function linkHostPacks(repo: HostRepo, mirror: string): void {
  const common = git(['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: repo.root, allowFail: true });
  if (common.status !== 0) return;
  const packDir = join(common.stdout.trim(), 'objects', 'pack');
  let idxs: string[];
  try {
    idxs = readdirSync(packDir).filter(
      (f) => /^pack-[0-9a-f]+\.idx$/.test(f) && !existsSync(join(packDir, f.replace(/\.idx$/, '.promisor'))),
    );
  } catch {
    return;
  }
  const target = join(mirror, 'objects', 'pack');
  idxs = idxs.filter((f) => !existsSync(join(target, f)));
  if (!idxs.length) return;
  const reachable = new Set(
    git(['rev-list', '--objects', '--branches', '--tags'], { cwd: repo.root, encoding: 'latin1' })
      .stdout.split('\n')
      .map((l) => l.split(' ', 1)[0]!),
  );
  for (const idx of idxs) {
    const ids = git(['show-index'], { input: readFileSync(join(packDir, idx)) })
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[1]!);
    if (!ids.every((id) => reachable.has(id))) continue;
    const pack = idx.replace(/\.idx$/, '.pack');
    mkdirSync(target, { recursive: true });
    try {
      linkSync(join(packDir, pack), join(target, `.tmp-${pack}`)); // the .pack first, its .idx last: git sees a pack only once both are there
      linkSync(join(packDir, idx), join(target, `.tmp-${idx}`));
      renameSync(join(target, `.tmp-${pack}`), join(target, pack));
      renameSync(join(target, `.tmp-${idx}`), join(target, idx));
    } catch {
      rmSync(join(target, `.tmp-${pack}`), { force: true });
      rmSync(join(target, `.tmp-${idx}`), { force: true });
    }
  }
}

/** The files of the index, with their blob ids (byte-exact names). */
function listIndex(dir: string, env: Record<string, string>): TreeFile[] {
  const out = git(['ls-files', '-s', '-z'], { env, encoding: 'latin1' }).stdout;
  const files: TreeFile[] = [];
  for (const rec of out.split('\0')) {
    if (!rec) continue;
    const m = /^(\d{6}) ([0-9a-f]{40,64}) \d\t([\s\S]+)$/.exec(rec);
    if (!m) continue;
    const bytes = Buffer.from(m[3]!, 'latin1');
    files.push({ abs: joinBytes(dir, bytes), rel: bytes.toString('utf8'), key: m[3]!, mode: m[1]!, blob: m[2]! });
  }
  return files;
}

/** Paths (keys) that differ between two commits, and which of them still exist in the new one. */
function changedPaths(mirror: string, from: string, to: string): Set<string> {
  const out = git(['diff-tree', '-r', '-z', '--no-renames', '--name-only', '--no-commit-id', from, to], {
    env: { GIT_DIR: mirror },
    encoding: 'latin1',
  }).stdout;
  return new Set(out.split('\0').filter(Boolean));
}

interface PreviousLayer {
  commit: string;
  dir: string;
  report: unknown;
  syntheticBase: string | null;
}

const latestFile = (cacheRoot: string, repo: HostRepo, variant: string) =>
  join(cacheRoot, 'trees', repo.key, `.latest-${variant}`);

function previousLayer(cacheRoot: string, repo: HostRepo, variant: string, commit: string): PreviousLayer | null {
  try {
    const prev = readFileSync(latestFile(cacheRoot, repo, variant), 'utf8').trim();
    if (!/^[0-9a-f]{40,64}$/.test(prev) || prev === commit) return null;
    const dir = join(cacheRoot, 'trees', repo.key, layerName(prev, variant));
    if (!existsSync(join(dir, '.git', 'HEAD'))) return null;
    const saved = JSON.parse(readFileSync(`${dir}.report.json`, 'utf8')) as {
      report: unknown;
      syntheticBase: string | null;
    };
    return { commit: prev, dir, ...saved };
  } catch {
    return null;
  }
}

const layerName = (commit: string, variant: string) => (variant ? `${commit}-${variant}` : commit);

/** True when every parent of `key` in the layer is a real directory (never a link out). */
function realDirs(root: Buffer, key: string): boolean {
  const parts = key.split('/');
  for (let n = 1; n < parts.length; n++) {
    try {
      if (!lstatSync(joinBytes(root, Buffer.from(parts.slice(0, n).join('/'), 'latin1'))).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Removes now-empty parent directories of a removed path, up to the layer root. */
function pruneEmptyParents(dir: Buffer, key: string): void {
  const parts = key.split('/');
  for (let n = parts.length - 1; n > 0; n--) {
    const p = joinBytes(dir, Buffer.from(parts.slice(0, n).join('/'), 'latin1'));
    try {
      if (readdirSync(p).length) return;
      rmdirSync(p);
    } catch {
      return;
    }
  }
}

/** Blob sizes of the regular files, from the object headers (one git process). */
function withSizes(files: TreeFile[], mirror: string): TreeFile[] {
  const regular = files.filter((f) => f.mode === '100644' || f.mode === '100755');
  if (!regular.length) return files;
  const out = git(['cat-file', '--batch-check=%(objectname) %(objectsize)'], {
    env: { GIT_DIR: mirror },
    input: regular.map((f) => f.blob).join('\n') + '\n',
  }).stdout;
  const size = new Map<string, number>();
  for (const line of out.split('\n')) {
    const [id, n] = line.split(' ');
    if (id && n && /^\d+$/.test(n)) size.set(id, Number(n));
  }
  return files.map((f) => (size.has(f.blob) ? { ...f, size: size.get(f.blob)! } : f));
}

/** Writes the given paths of the index into the layer. checkout-index applies only
 * built-in conversions: our config defines no filters. Asynchronous, so the sanitizer
 * judges one batch while git writes the next. */
function writeFiles(tmp: string, env: Record<string, string>, keys: string[]): Promise<void> {
  if (!keys.length) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn('git', hardenedArgs(['checkout-index', '--force', '-z', '--stdin']), {
      cwd: tmp,
      env: gitEnv(env),
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`git checkout-index failed (${code}): ${stderr.trim()}`)),
    );
    child.stdin.on('error', () => undefined); // a git that died early reports through close
    child.stdin.end(Buffer.from(keys.join('\0') + '\0', 'latin1'));
  });
}

/** Fills `tmp` with the commit's files: from the previous layer plus the changes, or whole.
 * With `defer`, the files to add are listed (with their sizes) but not written yet. */
function checkout(
  tmp: string,
  env: Record<string, string>,
  prev: PreviousLayer | null,
  mirror: string,
  commit: string,
  defer: boolean,
): { files: TreeFile[]; changed: Set<string> | null } {
  git(['read-tree', commit], { env });
  const all = listIndex(tmp, env);
  if (!prev) {
    if (defer) return { files: withSizes(all, mirror), changed: null };
    git(['checkout-index', '--all', '--force'], { env, cwd: tmp });
    return { files: all, changed: null };
  }
  const changed = changedPaths(mirror, prev.commit, commit);
  const root = Buffer.from(tmp);
  // shortest first, so a link that became a directory goes before anything under it
  for (const key of [...changed].sort((a, b) => a.length - b.length)) {
    if (!realDirs(root, key)) continue; // under a link or a file: that entry was removed already, or never here
    // the entry itself (a link is never followed), or a directory that is now a file
    const p = joinBytes(root, Buffer.from(key, 'latin1'));
    try {
      unlinkSync(p);
    } catch {
      rmSync(p, { recursive: true, force: true });
    }
    pruneEmptyParents(root, key);
  }
  const files = all.filter((f) => changed.has(f.key));
  if (defer) return { files: withSizes(files, mirror), changed };
  if (files.length)
    git(['checkout-index', '--force', '-z', '--stdin'], {
      env,
      cwd: tmp,
      input: Buffer.from(files.map((f) => f.key).join('\0') + '\0', 'latin1'),
    });
  return { files, changed };
}

/**
 * The sanitized layer's history: one parentless commit of exactly what the layer holds,
 * and a pack with only its objects (no history, no original of a redacted or hidden
 * file). Built from the commit's index (unchanged entries keep their blob ids, so nothing
 * is rehashed but what sanitization touched). When the previous layer was sanitized too,
 * its packs are linked in and only the objects it lacks are packed.
 */
function syntheticCommit(
  tmp: string,
  mirror: string,
  commit: string,
  touched: string[],
  prev: PreviousLayer | null,
): string {
  const gd = join(tmp, '.git');
  const packDir = join(gd, 'objects', 'pack');
  mkdirSync(join(gd, 'objects', 'info'), { recursive: true });
  mkdirSync(packDir, { recursive: true });
  const alternates = join(gd, 'objects', 'info', 'alternates');
  writeFileSync(alternates, `${join(mirror, 'objects')}\n`); // build time only: removed below
  const env = { GIT_DIR: gd, GIT_WORK_TREE: tmp, GIT_INDEX_FILE: join(gd, 'index'), ...SYNTHETIC_ENV };
  if (touched.length) {
    git([...STAT_CONFIG, 'update-index', '--add', '--remove', '-z', '--stdin'], {
      env,
      cwd: tmp,
      input: Buffer.from(touched.join('\0') + '\0', 'latin1'),
    });
  }
  const tree = git(['write-tree'], { env }).stdout.trim();
  const synthetic = git(
    ['commit-tree', tree, '-m', `Airlock: base ${commit} with secrets redacted (history not shown)`],
    { env },
  ).stdout.trim();
  // every object of the sanitized commit, minus those the previous layer's packs hold
  // (the commits are unrelated roots, so `^previous` would not exclude its blobs)
  let objects = git(['rev-list', '--objects', synthetic], { env, encoding: 'latin1' })
    .stdout.split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ', 1)[0]!);
  if (prev?.syntheticBase) {
    const have = new Set<string>();
    const prevPacks = join(prev.dir, '.git', 'objects', 'pack');
    for (const f of readdirSync(prevPacks)) {
      if (!/^pack-[0-9a-f]+\.idx$/.test(f)) continue;
      for (const name of [f, f.replace(/\.idx$/, '.pack')]) linkSync(join(prevPacks, name), join(packDir, name));
      for (const line of git(['show-index'], { env, input: readFileSync(join(prevPacks, f)) }).stdout.split('\n'))
        have.add(line.split(' ')[1] ?? '');
    }
    objects = objects.filter((o) => !have.has(o));
  }
  // --window=0: no new delta search. The kept blobs are reused as the mirror stores them;
  // searching 600 MB of them for deltas cost ~10% of the pack's CPU for a few bytes saved.
  git(['pack-objects', '--quiet', '--window=0', join(packDir, 'pack')], { env, input: objects.join('\n') + '\n' });
  unlinkSync(alternates);
  for (const d of readdirSync(join(gd, 'objects')))
    if (/^[0-9a-f]{2}$/.test(d)) rmSync(join(gd, 'objects', d), { recursive: true, force: true });
  return synthetic;
}

function writeThinGit(tmp: string, head: string): void {
  writeFileSync(join(tmp, '.git', 'HEAD'), `ref: refs/heads/${WORK_BRANCH}\n`);
  writeFileSync(join(tmp, '.git', 'refs', 'heads', 'airlock', 'work'), `${head}\n`);
  writeFileSync(
    join(tmp, '.git', 'config'),
    '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n\ttrustctime = false\n\tcheckStat = minimal\n',
  );
  writeFileSync(join(tmp, '.git', 'description'), 'Airlock session workspace\n');
}

/** The previous layer's files as hard links (owners and modes kept): `cp -al` in C, or the
 * same in JS where cp refuses (another filesystem, a link count limit). */
function linkPrevious(prev: string, tmp: string): void {
  const cp = spawnSync('cp', ['-a', '--link', '--no-target-directory', '--', prev, tmp], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 600_000,
  });
  if (cp.status === 0) {
    rmSync(join(tmp, '.git'), { recursive: true, force: true });
    return;
  }
  rmSync(tmp, { recursive: true, force: true });
  linkTree(prev, tmp, (rel) => rel.length === 4 && rel.toString('latin1') === '.git');
}

/** The changed paths of a layer built from a previous one and every directory above them,
 * once each, as byte paths (non-UTF-8 names too). */
function* changedEntries(tmp: string, changed: ReadonlySet<string>): Generator<Buffer> {
  const root = Buffer.from(tmp);
  const done = new Set<string>();
  for (const key of changed) {
    const parts = key.split('/');
    for (let n = parts.length; n > 0; n--) {
      const rel = parts.slice(0, n).join('/');
      if (done.has(rel)) break;
      done.add(rel);
      yield joinBytes(root, Buffer.from(rel, 'latin1'));
    }
  }
}

/** Group and other bits off: the whole layer on a full build, only what is new on one built
 * from a previous layer (its hard links are private already). */
function privateLayer(tmp: string, changed: ReadonlySet<string> | null): void {
  if (!changed) return makePrivateTree(tmp);
  makePrivateTree(join(tmp, '.git'));
  for (const path of changedEntries(tmp, changed)) {
    try {
      const st = lstatSync(path);
      if (!st.isSymbolicLink() && (st.mode & 0o077) !== 0) chmodSync(path, st.mode & 0o7700);
    } catch {
      /* removed or hidden */
    }
  }
  makePrivateTree(tmp, 1);
}

/** Gives the layer to the sandbox user: all of it on a full build; on one built from a
 * previous layer only what is new (the links kept their owners). */
function chownLayer(tmp: string, owner: { uid: number; gid: number }, changed: ReadonlySet<string> | null): void {
  if (!changed) return chownTreeNoFollow(tmp, owner);
  chownTreeNoFollow(join(tmp, '.git'), owner);
  for (const path of changedEntries(tmp, changed)) {
    try {
      lchownSync(path, owner.uid, owner.gid);
    } catch {
      /* removed or hidden */
    }
  }
  lchownSync(tmp, owner.uid, owner.gid);
}

async function buildLayer(
  tmp: string,
  mirror: string,
  commit: string,
  sanitizer: SnapshotSanitizer | undefined,
  prev: PreviousLayer | null,
): Promise<{ report: unknown; syntheticBase: string | null; changed: ReadonlySet<string> | null }> {
  if (prev) linkPrevious(prev.dir, tmp);
  mkdirSync(join(tmp, '.git', 'refs', 'heads', 'airlock'), { recursive: true });
  const env = { GIT_DIR: mirror, GIT_WORK_TREE: tmp, GIT_INDEX_FILE: join(tmp, '.git', 'index') };
  const { files, changed } = checkout(tmp, env, prev, mirror, commit, !!sanitizer);
  writeThinGit(tmp, commit);
  if (!sanitizer) return { report: null, syntheticBase: null, changed };
  const written = new Set<string>();
  const write = (keys: string[]) => {
    for (const k of keys) written.add(k);
    return writeFiles(tmp, env, keys);
  };
  const r = await sanitizer.run({
    dir: tmp,
    files,
    previous: prev && changed ? { report: prev.report, changed } : null,
    write,
  });
  const touched = new Set(r.touched);
  await writeFiles(
    tmp,
    env,
    files.filter((f) => !written.has(f.key) && !touched.has(f.key)).map((f) => f.key),
  );
  const syntheticBase = r.changed ? syntheticCommit(tmp, mirror, commit, r.touched, prev) : null;
  if (syntheticBase) writeFileSync(join(tmp, '.git', 'refs', 'heads', 'airlock', 'work'), `${syntheticBase}\n`);
  return { report: r.report, syntheticBase, changed };
}

/**
 * Returns the read-only layers for a commit, building what is missing. `owner` is the
 * host uid/gid the sandbox user maps to (the layers must be theirs so the overlay lets
 * the agent write), or null when Airlock runs unprivileged and already owns them.
 *
 * When sanitization changed the base tree, the workspace must not carry the history
 * that still holds the secrets: its .git then has one synthetic root commit of the
 * sanitized tree (`syntheticBase`) and no mirror layer. Capture transplants the agent's
 * commits from that root back onto the real base.
 */
export async function prepareSnapshot(
  cacheRoot: string,
  repo: HostRepo,
  commit: string,
  owner: Owner,
  sanitizer?: SnapshotSanitizer,
): Promise<Snapshot & { report: unknown; syntheticBase: string | null }> {
  const mirror = ensureMirror(cacheRoot, repo, commit, owner);
  const variant = sanitizer?.variant ?? '';
  const layers = join(cacheRoot, 'trees', repo.key);
  const treeDir = join(layers, layerName(commit, variant));
  const reportFile = `${treeDir}.report.json`;
  let build: Snapshot['build'] = 'cached';
  if (!existsSync(join(treeDir, '.git', 'HEAD'))) {
    mkdirSync(layers, { recursive: true, mode: 0o700 });
    const tmp = join(layers, `.build-${commit.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    try {
      const prev = previousLayer(cacheRoot, repo, variant, commit);
      const { changed, ...saved } = await buildLayer(tmp, mirror, commit, sanitizer, prev);
      writeFileSync(`${tmp}.report.json`, JSON.stringify(saved), { mode: 0o600 });
      if (owner) chownLayer(tmp, owner, changed);
      // private to its owner, the sandbox user (root mode) or the invoking user (who is the sandbox user)
      privateLayer(tmp, changed);
      renameSync(`${tmp}.report.json`, reportFile);
      renameSync(tmp, treeDir);
      writeFileSync(latestFile(cacheRoot, repo, variant), `${commit}\n`, { mode: 0o600 });
      build = prev ? 'incremental' : 'full';
    } catch (e) {
      if (!existsSync(join(treeDir, '.git', 'HEAD'))) throw e; // else another process built it first
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(`${tmp}.report.json`, { force: true });
    }
  }
  // Fail closed: an unreadable report could hide that the history must stay out.
  const saved = JSON.parse(readFileSync(reportFile, 'utf8')) as { report: unknown; syntheticBase: string | null };
  const lowerDirs = saved.syntheticBase ? [treeDir] : [treeDir, join(cacheRoot, 'shared', repo.key)];
  return {
    commit,
    lowerDirs,
    mirror,
    built: build !== 'cached',
    build,
    report: saved.report,
    syntheticBase: saved.syntheticBase,
  };
}
