import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { AirlockError, AGENT_DATA_BOUNDS, git, gitEnv, hardenedArgs, type GitOptions } from '../common/index.ts';
import { countTreePaths, DEFAULT_TREE_LIMITS } from './bounds.ts';

// Turns what the agent left in its workspace into commits in a repository that Airlock
// owns, without ever running anything the agent wrote: the agent's .git is read as
// plain files (refs) and plain object files (copied after lstat: no symlinks followed);
// its config, hooks, attributes-driven filters and fsmonitor are never consulted,
// because every git command here runs on our own GIT_DIR with hardened settings.

export interface CaptureResult {
  resultRepo: string;
  baseCommit: string;
  headCommit: string;
  commits: string[];
  dirty: boolean;
  filesChanged: number;
  /** Problems met while reading agent-controlled data (recorded, never fatal). */
  warnings: string[];
  /** What capture refused to read or follow; each becomes a finding on the proposal. */
  refusals: Refusal[];
}

/** Something in the workspace capture would not follow: named, and a finding on the proposal. */
export interface Refusal {
  rule:
    | 'git-symlink'
    | 'gitfile'
    | 'git-not-directory'
    | 'git-link-inside'
    | 'alternates'
    | 'commondir'
    | 'nested-repository'
    | 'too-large';
  path: string;
  message: string;
}

/** Most paths capture materialises in an index (the agent's HEAD tree, expanded). */
export const CAPTURE_MAX_PATHS = 2_000_000;
/** Most agent commits capture walks. */
export const CAPTURE_MAX_COMMITS = 10_000;

/** git on agent-made data: hardened (always) and bounded in memory and time. */
function agit(args: string[], opts: GitOptions = {}) {
  return git(args, { bounds: AGENT_DATA_BOUNDS, ...opts });
}

/**
 * Resolves `rel` under `root` one component at a time with lstat: null when any component
 * is a symlink or missing, so nothing the agent links ever leads out of the session.
 */
export function insideOnly(root: string, rel: string, want: 'file' | 'dir'): string | null {
  let p = root;
  const parts = rel.split('/').filter(Boolean);
  for (const [i, part] of parts.entries()) {
    p = join(p, part);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return null;
    }
    const last = i === parts.length - 1;
    if (st.isSymbolicLink()) return null;
    if (!last && !st.isDirectory()) return null;
    if (last && (want === 'dir' ? !st.isDirectory() : !st.isFile())) return null;
  }
  return p;
}

function kindOf(p: string): 'missing' | 'symlink' | 'file' | 'dir' | 'other' {
  try {
    const st = lstatSync(p);
    return st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
}

/**
 * Checks the agent's .git (as the merged view and as the overlay's upper layer) before
 * anything in it is read. A .git that is a symlink or a gitfile, links inside it,
 * alternates and commondir are refused with a refusal naming them: they can only point
 * at repositories outside the session (the host's, another user's).
 */
function inspectGitDir(gitDirs: string[]): Refusal[] {
  const out: Refusal[] = [];
  for (const dir of [...new Set(gitDirs)]) {
    const k = kindOf(dir);
    if (k === 'missing') continue;
    if (k === 'symlink') {
      out.push({
        rule: 'git-symlink',
        path: '.git',
        message:
          ".git is a symbolic link: it would lead capture into another repository (e.g. the host's); the agent's commits are not captured",
      });
      continue;
    }
    if (k === 'file') {
      out.push({
        rule: 'gitfile',
        path: '.git',
        message: ".git is a gitfile pointing elsewhere; the agent's commits are not captured",
      });
      continue;
    }
    if (k !== 'dir') {
      out.push({
        rule: 'git-not-directory',
        path: '.git',
        message: ".git is not a directory; the agent's commits are not captured",
      });
      continue;
    }
    for (const rel of ['HEAD', 'packed-refs', 'refs', 'objects', 'objects/pack', 'objects/info']) {
      if (kindOf(join(dir, rel)) === 'symlink')
        out.push({
          rule: 'git-link-inside',
          path: `.git/${rel}`,
          message: `.git/${rel} is a symbolic link out of the repository; not followed, the agent's commits are not captured`,
        });
    }
    for (const rel of ['objects/info/alternates', 'objects/info/http-alternates']) {
      if (kindOf(join(dir, rel)) !== 'missing')
        out.push({
          rule: 'alternates',
          path: `.git/${rel}`,
          message: `.git/${rel} would borrow objects from another repository; ignored, the agent's commits are not captured`,
        });
    }
    if (kindOf(join(dir, 'commondir')) !== 'missing')
      out.push({
        rule: 'commondir',
        path: '.git/commondir',
        message:
          ".git/commondir would share refs and objects with another repository; the agent's commits are not captured",
      });
  }
  return out.filter((r, i, a) => a.findIndex((x) => x.rule === r.rule && x.path === r.path) === i);
}

/** Directories below the root holding a `.git` of any kind: nested repositories git would read through. */
function nestedRepos(root: string, under: string[] | null): string[] {
  const found: string[] = [];
  let seen = 0;
  const walk = (rel: string, depth: number) => {
    if (depth > 256 || ++seen > 2_000_000)
      throw new AirlockError(
        'TOO_LARGE',
        'the workspace has too many entries to capture',
        'split the work into smaller sessions',
      );
    const abs = rel ? join(root, rel) : root;
    let names: string[];
    try {
      if (!lstatSync(abs).isDirectory()) return;
      names = readdirSync(abs);
    } catch {
      return;
    }
    for (const n of names) {
      const p = rel ? `${rel}/${n}` : n;
      if (n === '.git') {
        if (rel) found.push(rel);
        continue;
      }
      walk(p, depth + 1);
    }
  };
  if (under === null) walk('', 0);
  else
    for (const p of under) {
      if (p.split('/').includes('.git')) found.push(p.slice(0, p.lastIndexOf('.git')).replace(/\/$/, ''));
      else if (insideOnly(root, p, 'dir')) walk(p, p.split('/').length);
    }
  return [...new Set(found.filter(Boolean))];
}

const SHA = /^[0-9a-f]{40}$/;
const MAX_OBJECT_BYTES = 512 * 1024 * 1024;

function isRegular(p: string): boolean {
  try {
    return lstatSync(p).isFile();
  } catch {
    return false;
  }
}

function copyObjects(gitDir: string, toObjects: string, warnings: string[]): number {
  let copied = 0;
  let entries: string[];
  const fromObjects = insideOnly(gitDir, 'objects', 'dir');
  if (!fromObjects) {
    if (kindOf(join(gitDir, 'objects')) !== 'missing')
      warnings.push('.git/objects is not a directory (symlink?); ignored');
    return 0;
  }
  try {
    entries = readdirSync(fromObjects);
  } catch {
    return 0;
  }
  for (const d of entries) {
    const dir = join(fromObjects, d);
    if (/^[0-9a-f]{2}$/.test(d)) {
      if (!lstatSync(dir).isDirectory()) continue;
      for (const f of readdirSync(dir)) {
        const src = join(dir, f);
        if (!/^[0-9a-f]{38}$/.test(f) || !isRegular(src)) {
          warnings.push(`skipped odd object entry ${d}/${f}`);
          continue;
        }
        if (lstatSync(src).size > MAX_OBJECT_BYTES) {
          warnings.push(`skipped oversized object ${d}${f}`);
          continue;
        }
        mkdirSync(join(toObjects, d), { recursive: true });
        if (!existsSync(join(toObjects, d, f))) {
          copyFileSync(src, join(toObjects, d, f));
          copied++;
        }
      }
    } else if (d === 'pack') {
      if (!lstatSync(dir).isDirectory()) continue;
      for (const f of readdirSync(dir)) {
        const src = join(dir, f);
        if (!/^pack-[0-9a-f]{40,64}\.(pack|idx)$/.test(f) || !isRegular(src)) continue;
        mkdirSync(join(toObjects, 'pack'), { recursive: true });
        if (!existsSync(join(toObjects, 'pack', f))) {
          copyFileSync(src, join(toObjects, 'pack', f));
          copied++;
        }
      }
    }
    // info/alternates, info/http-alternates and anything else: ignored on purpose.
  }
  return copied;
}

function readRef(gitDir: string, ref: string, warnings: string[]): string | null {
  if (!/^refs\/[A-Za-z0-9._/-]+$/.test(ref) || ref.includes('..')) {
    warnings.push(`HEAD points at an invalid ref name`);
    return null;
  }
  const loose = insideOnly(gitDir, ref, 'file');
  if (loose) {
    const v = readFileSync(loose, 'utf8').slice(0, 4096).trim();
    return SHA.test(v) ? v : null;
  }
  const packed = insideOnly(gitDir, 'packed-refs', 'file');
  if (packed && lstatSync(packed).size <= 64 * 1024 * 1024) {
    for (const line of readFileSync(packed, 'utf8').split('\n')) {
      const [sha, name] = line.split(' ');
      if (name === ref && sha && SHA.test(sha)) return sha;
    }
  }
  return null;
}

function readHead(gitDir: string, warnings: string[]): string | null {
  const head = insideOnly(gitDir, 'HEAD', 'file');
  if (!head) {
    warnings.push('.git/HEAD missing or not a regular file');
    return null;
  }
  const v = readFileSync(head, 'utf8').slice(0, 4096).trim();
  if (SHA.test(v)) return v;
  const m = /^ref: (\S+)$/.exec(v);
  if (!m) {
    warnings.push('.git/HEAD unreadable');
    return null;
  }
  return readRef(gitDir, m[1]!, warnings);
}

/** Paths (relative to the workspace root) that may differ from the lower layer. */
export function changedPaths(upper: string, lower: string, merged: string): string[] {
  const out: string[] = [];
  const walk = (rel: string, depth: number) => {
    if (depth > 256 || out.length > 1_000_000) throw new Error('upper layer too deep or too large');
    for (const name of readdirSync(join(upper, rel))) {
      if (rel === '' && name === '.git') continue;
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(upper, p));
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push(p);
        continue;
      } // whiteout: deleted
      if (!st.isDirectory()) {
        out.push(p);
        continue;
      }
      let lowerIsDir = false;
      try {
        lowerIsDir = lstatSync(join(lower, p)).isDirectory();
      } catch {
        /* new */
      }
      if (!lowerIsDir) {
        out.push(p);
        continue;
      }
      // An opaque dir hides the lower entries without whiteouts: rescan it whole.
      const mergedNames = new Set(readdirSync(join(merged, p)));
      const opaque = readdirSync(join(lower, p)).some((n) => !mergedNames.has(n) && !isWhiteout(join(upper, p, n)));
      if (opaque) out.push(p);
      else walk(p, depth + 1);
    }
  };
  walk('', 0);
  return out;
}

function isWhiteout(p: string): boolean {
  try {
    const st = lstatSync(p);
    return st.isCharacterDevice() && st.rdev === 0;
  } catch {
    return false;
  }
}

export function initResultRepo(path: string, mirror: string, extraObjects: string[] = []): void {
  if (existsSync(join(path, 'HEAD'))) return;
  git(['init', '--bare', '--quiet', '--template=', path]);
  writeAlternates(path, mirror, extraObjects);
}

/** The base history comes from Airlock's own mirror (trusted), not from the agent. */
function writeAlternates(path: string, mirror: string, extraObjects: string[]): void {
  mkdirSync(join(path, 'objects', 'info'), { recursive: true });
  writeFileSync(
    join(path, 'objects', 'info', 'alternates'),
    [join(mirror, 'objects'), ...extraObjects].join('\n') + '\n',
  );
}

/** The refs a capture leaves: what it started from and what it proposes. */
function resultRefs(base: string, head: string): string {
  return `update refs/airlock/base ${base}\nupdate refs/airlock/head ${head}\n`;
}

/**
 * The session's result repository, made while its sandbox starts (issue 16): as capture
 * makes it, with both refs at the base, which is exactly what capture leaves when the agent
 * changed nothing, so that capture then runs no git at all (`refsAtBase`). Host-side only:
 * no sandbox sees the session's state directory.
 */
export async function prepareResultRepo(
  path: string,
  mirror: string,
  baseCommit: string,
  extraObjects: string[] = [],
): Promise<void> {
  // asynchronous: its two gits run beside the holder's processes while the supervisor works on
  await gitAsync(['init', '--bare', '--quiet', '--template=', path], {});
  writeAlternates(path, mirror, extraObjects);
  await gitAsync(['update-ref', '--stdin'], { GIT_DIR: path }, resultRefs(baseCommit, baseCommit));
}

/** Hardened git on Airlock's own repository, without blocking the event loop; rejects on a failure. */
function gitAsync(args: string[], env: Record<string, string>, input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('git', hardenedArgs(args), { env: gitEnv(env), timeout: 60_000 }, (err) =>
      err ? reject(err) : resolve(),
    );
    // git may exit before it reads its input (git init reads none): its exit status tells
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** Per path: [marker, original value] pairs to put back (values kept in memory only). */
export type Restore = Record<string, [string, string][]>;

/**
 * Replays commits made on top of a synthetic (sanitized) base onto the real base: each
 * commit keeps its message and author and carries exactly the paths it changed; paths
 * the agent never touched keep the real base's content (secrets included, as before).
 */
function transplant(
  env: Record<string, string>,
  synthetic: string,
  realBase: string,
  commits: string[],
  restore: Restore,
): string {
  let prev = realBase;
  let parentOf = synthetic;
  const index = join(env.GIT_DIR!, `transplant-index-${process.pid}`);
  try {
    for (const commit of commits) {
      // each agent commit is bounded before git expands it (an intermediate tree bomb)
      const trees = agit(['rev-parse', `${parentOf}^{tree}`, `${commit}^{tree}`], { env })
        .stdout.trim()
        .split('\n');
      countTreePaths(env.GIT_DIR!, trees[0]!, trees[1]!, { ...DEFAULT_TREE_LIMITS, maxPaths: CAPTURE_MAX_PATHS });
      const ienv = { ...env, GIT_INDEX_FILE: index };
      agit(['read-tree', prev], { env: ienv });
      // latin1: one char per byte, so a non-UTF-8 name is written back byte for byte
      const raw = agit(['diff-tree', '-r', '-z', '--no-renames', '--raw', parentOf, commit], {
        env,
        encoding: 'latin1',
      }).stdout.split('\0');
      const lines: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const meta = raw[i]!.replace(/^:/, '').split(' ');
        const path = raw[i + 1]!;
        const [, newMode, , newSha, status] = meta;
        if (status === 'D') {
          lines.push(`0 ${'0'.repeat(40)}\t${path}`);
          continue;
        }
        let sha = newSha!;
        const pairs = restore[Buffer.from(path, 'latin1').toString('utf8')];
        if (pairs?.length && newMode !== '120000') {
          // the agent edited a file whose secrets it only saw as markers: put the real
          // values back where the markers still stand, so the change edits only its lines
          let text = agit(['cat-file', 'blob', sha], { env }).stdout;
          for (const [marker, value] of pairs) text = text.split(marker).join(value);
          sha = agit(['hash-object', '-w', '--no-filters', '--stdin'], { env, input: text }).stdout.trim();
        }
        lines.push(`${newMode} ${sha}\t${path}`);
      }
      if (lines.length)
        agit(['update-index', '-z', '--index-info'], {
          env: ienv,
          input: Buffer.from(lines.join('\0') + '\0', 'latin1'),
        });
      const tree = agit(['write-tree'], { env: ienv }).stdout.trim();
      const hdr = agit(['cat-file', 'commit', commit], { env }).stdout;
      const who = (k: string) =>
        /^(.*) <(.*)> (\d+ [+-]\d{4})$/.exec(new RegExp(`^${k} (.*)$`, 'm').exec(hdr)?.[1] ?? '');
      const a = who('author');
      const cm = who('committer');
      const msg = hdr.slice(hdr.indexOf('\n\n') + 2);
      prev = agit(['commit-tree', tree, '-p', prev, '-F', '-'], {
        env: {
          ...env,
          GIT_AUTHOR_NAME: a?.[1] ?? 'agent',
          GIT_AUTHOR_EMAIL: a?.[2] ?? '',
          GIT_AUTHOR_DATE: a?.[3] ?? '',
          GIT_COMMITTER_NAME: cm?.[1] ?? 'agent',
          GIT_COMMITTER_EMAIL: cm?.[2] ?? '',
          GIT_COMMITTER_DATE: cm?.[3] ?? '',
        },
        input: msg,
      }).stdout.trim();
      parentOf = commit;
    }
  } finally {
    rmSync(index, { force: true });
  }
  return prev;
}

/** What a capture reads: the workspace and git state the session left, and where the result goes. */
interface CaptureOptions {
  workspace: string;
  upperGitDir: string | null;
  resultRepo: string;
  mirror: string;
  baseCommit: string;
  /** Where git should run to see the work tree: the sandbox's mount namespace (its mounts are invisible to the host's getcwd/realpath). */
  workTreeNs?: { prefix: string[]; path: string };
  /** Overlay layers as the host can read them: only paths in `upper` can differ from `lower`. */
  layers?: { upper: string; lower: string };
  /** The workspace started from a sanitized synthetic root commit (objects in `syntheticObjects`), not from baseCommit. */
  synthetic?: { commit: string; objects: string; restore?: Restore } | null;
  /** `resultRepo` was made by prepareResultRepo for this base: its refs already say "nothing changed". */
  refsAtBase?: boolean;
}

type GitEnv = Record<string, string>;

/**
 * Uncommitted work: hashes the work tree into our own index and commits it on top of `head`.
 * No filters can run: the only config consulted is ours.
 */
function commitWorkTree(
  opts: CaptureOptions,
  start: string,
  agentHeadCommit: string,
  warnings: string[],
  refusals: CaptureResult['refusals'],
): { head: string; dirty: boolean } {
  const env = { GIT_DIR: opts.resultRepo };
  const index = join(opts.resultRepo, `capture-index-${process.pid}`);
  const wenv = {
    GIT_DIR: opts.resultRepo,
    GIT_WORK_TREE: opts.workTreeNs?.path ?? opts.workspace,
    GIT_INDEX_FILE: index,
  };
  let head = agentHeadCommit;
  try {
    const specs = overlaySpecs(opts, env, start, head, warnings);
    // nested repositories (sub/.git of any kind): git would read through them, possibly
    // into a host repository; they are left out and named
    const nested = nestedRepos(opts.workspace, specs === null ? null : [...new Set(specs)]);
    for (const n of nested)
      refusals.push({
        rule: 'nested-repository',
        path: `${n}/.git`,
        message: `${n}/.git makes ${n} a nested repository (a gitfile or repository git would read through); ${n} is not captured`,
      });
    const excludes = nested.map((n) => `:(exclude,top,literal)${n}`);
    const untouched = specs !== null && specs.length === 0;
    // nothing in the upper layer: no index to build (a 50k-file read-tree is most of a short session's stop)
    if (untouched) return { head, dirty: false }; // the work tree is the head's tree, nothing to compare
    agit(['read-tree', head], { env: wenv });
    const add = stageWorkTree(opts, wenv, specs, excludes);
    if (add.status !== 0) warnings.push(`some files could not be captured: ${add.stderr.trim().slice(0, 500)}`);
    const headTree = agit(['rev-parse', `${head}^{tree}`], { env }).stdout.trim();
    const tree = agit(['write-tree'], { env: wenv }).stdout.trim();
    if (tree === headTree) return { head, dirty: false };
    head = agit(['commit-tree', tree, '-p', head, '-m', 'airlock: uncommitted work'], {
      env: {
        ...env,
        GIT_AUTHOR_NAME: 'Airlock',
        GIT_AUTHOR_EMAIL: 'airlock@localhost',
        GIT_COMMITTER_NAME: 'Airlock',
        GIT_COMMITTER_EMAIL: 'airlock@localhost',
      },
    }).stdout.trim();
    return { head, dirty: true };
  } finally {
    rmSync(index, { force: true });
  }
}

/**
 * Only what the overlay's upper layer holds can differ from the base: just those paths (plus
 * what the agent's commits changed); null when every path must be hashed.
 */
function overlaySpecs(
  opts: CaptureOptions,
  env: GitEnv,
  start: string,
  head: string,
  warnings: string[],
): string[] | null {
  if (!opts.layers) return null;
  try {
    const specs = changedPaths(opts.layers.upper, opts.layers.lower, opts.workspace);
    if (head !== start) specs.push(...changedBetween(env, start, head));
    return specs;
  } catch (e) {
    if (e instanceof AirlockError && e.kind === 'TOO_LARGE') throw e;
    warnings.push(`overlay walk failed (${String(e)}); hashing the whole tree`);
    return null;
  }
}

/** Stages the work tree's paths (all of them, or `specs`: removed ones unstaged, present ones added) into our index. */
function stageWorkTree(
  opts: CaptureOptions,
  wenv: GitEnv,
  specs: string[] | null,
  excludes: string[],
): { status: number; stderr: string } {
  const prefix = opts.workTreeNs?.prefix;
  const addArgs = ['-c', 'core.bare=false', 'add', '--all', '--ignore-errors'];
  const fromFile = ['--pathspec-from-file=-', '--pathspec-file-nul'];
  const list = (ps: string[]) => [...ps.map((p) => `:(top,literal)${p}`), ...excludes].join('\0');
  if (specs === null)
    return agit([...addArgs, ...fromFile], {
      env: wenv,
      cwd: '/',
      allowFail: true,
      prefix,
      input: [':(top)', ...excludes].join('\0'),
    });
  let add: { status: number; stderr: string } = { status: 0, stderr: '' };
  const exists = (p: string) => {
    try {
      lstatSync(join(opts.workspace, p));
      return true;
    } catch {
      return false;
    }
  };
  const present = [...new Set(specs)].filter(exists);
  const gone = [...new Set(specs)].filter((p) => !exists(p));
  if (gone.length) {
    const rm = agit(['-c', 'core.bare=false', 'rm', '--cached', '-r', '-q', '--ignore-unmatch', ...fromFile], {
      env: wenv,
      cwd: '/',
      allowFail: true,
      prefix,
      input: list(gone),
    });
    if (rm.status !== 0) add = rm;
  }
  if (present.length && add.status === 0)
    add = agit([...addArgs, ...fromFile], { env: wenv, cwd: '/', allowFail: true, prefix, input: list(present) });
  return add;
}

/**
 * @param workspace the merged workspace as the host can read it (e.g. /proc/PID/root/…/merged)
 * @param upper the overlay upper dir (only what the agent wrote), for the object copy
 */
export function captureWorkspace(opts: CaptureOptions): CaptureResult {
  const warnings: string[] = [];
  initResultRepo(opts.resultRepo, opts.mirror, opts.synthetic ? [opts.synthetic.objects] : []);
  const start = opts.synthetic?.commit ?? opts.baseCommit;
  const env = { GIT_DIR: opts.resultRepo };
  const gitDir = join(opts.workspace, '.git');
  const refusals = inspectGitDir([gitDir, ...(opts.upperGitDir ? [opts.upperGitDir] : [])]);
  let head = start;
  if (!refusals.length) {
    copyObjects(opts.upperGitDir ?? gitDir, join(opts.resultRepo, 'objects'), warnings);
    head = agentHead(env, gitDir, start, warnings, refusals);
  }

  const work = commitWorkTree(opts, start, head, warnings, refusals);
  head = work.head;
  const dirty = work.dirty;
  if (opts.synthetic && head !== start) {
    const onSynthetic = agit(['rev-list', '--reverse', '--first-parent', `${start}..${head}`], { env })
      .stdout.split('\n')
      .filter(Boolean);
    head = transplant(env, start, opts.baseCommit, onSynthetic, opts.synthetic.restore ?? {});
  } else if (opts.synthetic) head = opts.baseCommit;
  // nothing was committed or left uncommitted: no history or paths to list (most short sessions)
  const same = head === opts.baseCommit;
  if (!(same && opts.refsAtBase)) agit(['update-ref', '--stdin'], { env, input: resultRefs(opts.baseCommit, head) });
  const commits = same
    ? []
    : agit(['rev-list', '--reverse', `${opts.baseCommit}..${head}`], { env })
        .stdout.split('\n')
        .filter(Boolean);
  const changed = same ? [] : changedBetween(env, opts.baseCommit, head);
  return {
    resultRepo: opts.resultRepo,
    baseCommit: opts.baseCommit,
    headCommit: head,
    commits,
    dirty,
    filesChanged: changed.length,
    warnings,
    refusals,
  };
}

/** Paths that differ between two commits (no rename detection: every path is named). */
function changedBetween(env: Record<string, string>, from: string, to: string): string[] {
  return agit(['diff-tree', '-r', '-z', '--no-renames', '--name-only', from, to], { env })
    .stdout.split('\0')
    .filter(Boolean);
}

/**
 * The agent's HEAD, if it is a commit descending from the start with a bounded history
 * and a tree that expands to a bounded number of paths; else the start (and why).
 */
function agentHead(
  env: Record<string, string>,
  gitDir: string,
  start: string,
  warnings: string[],
  refusals: Refusal[],
): string {
  const head = readHead(gitDir, warnings) ?? start;
  if (head === start) return start;
  if (agit(['cat-file', '-e', `${head}^{commit}`], { env, allowFail: true }).status !== 0) {
    warnings.push(`agent HEAD ${head} is not a readable commit; using the base commit`);
    return start;
  }
  // Only history that descends from the base is a proposal; anything else is reported.
  if (agit(['merge-base', '--is-ancestor', start, head], { env, allowFail: true }).status !== 0) {
    warnings.push(`agent HEAD ${head} does not descend from the base commit; its commits are not captured`);
    return start;
  }
  try {
    const n = Number(agit(['rev-list', '--count', `${start}..${head}`], { env }).stdout.trim());
    if (n > CAPTURE_MAX_COMMITS)
      throw new AirlockError('TOO_LARGE', `${n} commits, over the limit of ${CAPTURE_MAX_COMMITS}`, '');
    countTreePaths(env.GIT_DIR!, null, agit(['rev-parse', `${head}^{tree}`], { env }).stdout.trim(), {
      ...DEFAULT_TREE_LIMITS,
      maxPaths: CAPTURE_MAX_PATHS,
    });
  } catch (e) {
    if (!(e instanceof AirlockError && e.kind === 'TOO_LARGE')) throw e;
    refusals.push({
      rule: 'too-large',
      path: head,
      message: `the agent's HEAD ${head.slice(0, 12)} is too large to capture (${e.message}); its commits are not captured`,
    });
    return start;
  }
  return head;
}
