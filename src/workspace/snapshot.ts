import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, readFileSync, chownSync, readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { git, makePrivateTree } from '../common/index.ts';
import type { HostRepo } from './repo.ts';

// A copy-on-write workspace is two read-only layers under the session's overlay:
//   shared/<repo>/.git        a bare mirror of the host repo (objects, branches, tags)
//   trees/<repo>/<commit>/    the checked-out files of one commit + a thin .git
//                             (HEAD, config, index, work branch) that overrides the mirror's
// Both are built once (per repo, per commit) and reused, so starting a session on a
// 50k-file repo costs a mount, not a copy. The session's writes go to its own upper dir.

export interface Snapshot {
  commit: string;
  /** overlay lowerdir, top first */
  lowerDirs: string[];
  /** bare mirror repo with the base history (trusted, Airlock-written config) */
  mirror: string;
  /** true when this call had to build the commit layer */
  built: boolean;
}

export const WORK_BRANCH = 'airlock/work';

function chownTree(path: string, uid: number, gid: number): void {
  const st = lstatSync(path);
  if (st.uid !== uid || st.gid !== gid) chownSync(path, uid, gid);
  if (st.isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

function ensureMirror(cacheRoot: string, repo: HostRepo, commit: string, owner: { uid: number; gid: number } | null): string {
  const base = join(cacheRoot, 'shared', repo.key);
  const mirror = join(base, '.git');
  if (!existsSync(join(mirror, 'HEAD'))) {
    const tmp = join(cacheRoot, 'shared', `.build-${repo.key}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { recursive: true, mode: 0o700 });
    git(['init', '--bare', '--quiet', '--template=', join(tmp, '.git')]);
    mkdirSync(join(tmp, '.git', 'refs', 'heads'), { recursive: true });
    mkdirSync(join(tmp, '.git', 'refs', 'tags'), { recursive: true });
    mkdirSync(base, { recursive: true, mode: 0o700 });
    try { renameSync(join(tmp, '.git'), mirror); } catch { /* another process won the race */ }
    rmSync(tmp, { recursive: true, force: true });
  }
  if (git(['cat-file', '-e', `${commit}^{commit}`], { env: { GIT_DIR: mirror }, allowFail: true }).status !== 0) {
    // Objects only: a fetch runs no hooks of ours or the host's (hardened git).
    git(['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', repo.root,
      '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], { env: { GIT_DIR: mirror } });
    if (git(['cat-file', '-e', `${commit}^{commit}`], { env: { GIT_DIR: mirror }, allowFail: true }).status !== 0) {
      git(['fetch', '--quiet', '--no-write-fetch-head', repo.root, commit], { env: { GIT_DIR: mirror } });
    }
    if (owner) chownTree(mirror, owner.uid, owner.gid);
    makePrivateTree(mirror);
  }
  return mirror;
}

/**
 * Returns the read-only layers for a commit, building what is missing. `owner` is the
 * host uid/gid the sandbox user maps to (the layers must be theirs so the overlay lets
 * the agent write), or null when Airlock runs unprivileged and already owns them.
 */
export interface SnapshotSanitizer {
  /** Names the variant (e.g. a hash of the secrets policy): differently sanitized trees are cached apart. */
  variant: string;
  /** Rewrites the checked-out files in place (before they are made read-only layers); returns whether anything changed and a report kept with the tree. */
  run: (dir: string) => Promise<{ changed: boolean; report: unknown }>;
}

const SYNTHETIC_ENV = {
  GIT_AUTHOR_NAME: 'Airlock', GIT_AUTHOR_EMAIL: 'airlock@localhost', GIT_AUTHOR_DATE: '1970-01-01T00:00:00Z',
  GIT_COMMITTER_NAME: 'Airlock', GIT_COMMITTER_EMAIL: 'airlock@localhost', GIT_COMMITTER_DATE: '1970-01-01T00:00:00Z',
};

/**
 * When sanitization changed the base tree, the workspace must not carry the history
 * that still holds the secrets: its .git then has one synthetic root commit of the
 * sanitized tree (`syntheticBase`) and no mirror layer. Capture transplants the agent's
 * commits from that root back onto the real base.
 */
export async function prepareSnapshot(cacheRoot: string, repo: HostRepo, commit: string, owner: { uid: number; gid: number } | null, sanitizer?: SnapshotSanitizer): Promise<Snapshot & { report: unknown; syntheticBase: string | null }> {
  const mirror = ensureMirror(cacheRoot, repo, commit, owner);
  const treeDir = join(cacheRoot, 'trees', repo.key, sanitizer ? `${commit}-${sanitizer.variant}` : commit);
  const reportFile = `${treeDir}.report.json`;
  let built = false;
  if (!existsSync(join(treeDir, '.git', 'HEAD'))) {
    const tmp = join(cacheRoot, 'trees', repo.key, `.build-${commit.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    mkdirSync(join(tmp, '.git', 'refs', 'heads', 'airlock'), { recursive: true, mode: 0o700 });
    const env = { GIT_DIR: mirror, GIT_WORK_TREE: tmp, GIT_INDEX_FILE: join(tmp, '.git', 'index') };
    git(['read-tree', commit], { env });
    // checkout-index applies only built-in conversions: our config defines no filters.
    git(['checkout-index', '--all', '--force'], { env, cwd: tmp });
    writeFileSync(join(tmp, '.git', 'HEAD'), `ref: refs/heads/${WORK_BRANCH}\n`);
    writeFileSync(join(tmp, '.git', 'refs', 'heads', 'airlock', 'work'), `${commit}\n`);
    writeFileSync(join(tmp, '.git', 'config'), '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n');
    writeFileSync(join(tmp, '.git', 'description'), 'Airlock session workspace\n');
    if (sanitizer) {
      const r = await sanitizer.run(tmp);
      let synthetic: string | null = null;
      if (r.changed) {
        // A fresh object store holding only the sanitized tree: no history, no originals.
        const gd = join(tmp, '.git');
        const senv = { GIT_DIR: gd, GIT_WORK_TREE: tmp, GIT_INDEX_FILE: join(gd, 'index'), ...SYNTHETIC_ENV };
        mkdirSync(join(gd, 'objects'), { recursive: true });
        git(['read-tree', '--empty'], { env: senv });
        git(['-c', 'core.bare=false', 'add', '--all', '--force'], { env: senv, cwd: '/' });
        const tree = git(['write-tree'], { env: senv }).stdout.trim();
        synthetic = git(['commit-tree', tree, '-m', `Airlock: base ${commit} with secrets redacted (history not shown)`], { env: senv }).stdout.trim();
        writeFileSync(join(gd, 'refs', 'heads', 'airlock', 'work'), `${synthetic}\n`);
      }
      writeFileSync(`${tmp}.report.json`, JSON.stringify({ report: r.report, syntheticBase: synthetic }), { mode: 0o600 });
    }
    if (owner) chownTree(tmp, owner.uid, owner.gid);
    // private to its owner, the sandbox user (root mode) or the invoking user (who is the sandbox user)
    makePrivateTree(tmp);
    mkdirSync(join(cacheRoot, 'trees', repo.key), { recursive: true, mode: 0o700 });
    try {
      if (sanitizer) renameSync(`${tmp}.report.json`, reportFile);
      renameSync(tmp, treeDir); built = true;
    } catch { rmSync(tmp, { recursive: true, force: true }); }
  }
  let report: unknown = null;
  let syntheticBase: string | null = null;
  if (sanitizer) {
    // Fail closed: an unreadable report could hide that the history must stay out.
    const saved = JSON.parse(readFileSync(reportFile, 'utf8')) as { report: unknown; syntheticBase: string | null };
    report = saved.report;
    syntheticBase = saved.syntheticBase;
  }
  const lowerDirs = syntheticBase ? [treeDir] : [treeDir, join(cacheRoot, 'shared', repo.key)];
  return { commit, lowerDirs, mirror, built, report, syntheticBase };
}
