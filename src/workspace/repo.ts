import { existsSync, realpathSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { AirlockError, git } from '../common/index.ts';

export interface HostRepo {
  /** Absolute real path of the repository's top-level directory. */
  root: string;
  /** Stable key for caches: a hash of the real path. */
  key: string;
}

// The host repository is the user's own (trusted) checkout; Airlock only reads it.
export function openHostRepo(path: string): HostRepo {
  if (!existsSync(path))
    throw new AirlockError(
      'NOT_FOUND',
      `repository not found: ${path}`,
      'run airlock inside a git checkout or pass --repo PATH',
    );
  if (!statSync(path).isDirectory())
    throw new AirlockError('NOT_A_REPO', `not a directory: ${path}`, 'pass the path of a git checkout with --repo');
  const r = git(['rev-parse', '--show-toplevel'], { cwd: path, allowFail: true });
  if (r.status !== 0) {
    throw new AirlockError(
      'NOT_A_REPO',
      `not a git repository: ${path}`,
      'run `git init` and commit first, or pass --repo PATH of a git checkout',
    );
  }
  return hostRepoAt(r.stdout.trim());
}

function hostRepoAt(top: string): HostRepo {
  const root = realpathSync(top);
  return { root, key: createHash('sha256').update(root).digest('hex').slice(0, 16) };
}

/**
 * openHostRepo and resolveCommit in one git call (a session's start path); when that call
 * fails or says anything unexpected, the two separate calls run and name the problem.
 */
export function openHostRepoAt(path: string, ref: string): { repo: HostRepo; commit: string } {
  if (!ref.startsWith('-') && existsSync(path) && statSync(path).isDirectory()) {
    const r = git(['rev-parse', '--show-toplevel', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
      cwd: path,
      allowFail: true,
    });
    const lines = r.stdout.split('\n').filter(Boolean);
    // a top-level path with a newline in it gives more lines: the separate calls handle it
    if (r.status === 0 && lines.length === 2 && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(lines[1]!))
      return { repo: hostRepoAt(lines[0]!), commit: lines[1]! };
  }
  const repo = openHostRepo(path);
  return { repo, commit: resolveCommit(repo, ref) };
}

export function resolveCommit(repo: HostRepo, ref: string): string {
  if (ref.startsWith('-'))
    throw new AirlockError('BAD_REF', `invalid base ref: ${ref}`, 'pass a branch, tag or commit id');
  const r = git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
    cwd: repo.root,
    allowFail: true,
  });
  if (r.status !== 0) {
    const empty = git(['rev-parse', '--verify', '--quiet', 'HEAD'], { cwd: repo.root, allowFail: true }).status !== 0;
    throw new AirlockError(
      'BAD_REF',
      empty ? `the repository has no commits yet (base ref ${ref})` : `base ref does not exist: ${ref}`,
      empty
        ? 'commit something first: Airlock snapshots a commit'
        : 'pass an existing branch, tag or commit with --base',
    );
  }
  return r.stdout.trim();
}

/** Reads a file as of a commit from the trusted host repo (e.g. the policy the session runs under). */
export function readAtCommit(repo: HostRepo, commit: string, path: string): string | null {
  const r = git(['cat-file', 'blob', `${commit}:${path}`], { cwd: repo.root, allowFail: true });
  return r.status === 0 ? r.stdout : null;
}
