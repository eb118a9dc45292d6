import { homedir } from 'node:os';
import { join } from 'node:path';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { AirlockError, cannotRecord, isRecordingFailure } from './errors.ts';

// Airlock's data dir holds the audit store, keys and caches. It is never mounted into a
// sandbox; the sandbox driver also refuses to run when the workspace lies inside it.
/** Where the organisation's policy is read from when neither --org-policy nor AIRLOCK_ORG_POLICY names one. */
export const DEFAULT_ORG_POLICY = '/etc/airlock/policy.yaml';

export function airlockHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AIRLOCK_HOME) return env.AIRLOCK_HOME;
  const xdg = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'airlock');
}

export interface HomeLayout {
  root: string;
  auditDb: string;
  keys: string;
  cache: string;
  sessions: string;
  run: string;
}

export function homeLayout(root = airlockHome()): HomeLayout {
  return {
    root,
    auditDb: join(root, 'audit.db'),
    keys: join(root, 'keys'),
    cache: join(root, 'cache'),
    sessions: join(root, 'sessions'),
    run: join(root, 'run'),
  };
}

// Everything under the data dir is private to its owner (0700 dirs, 0600 files), also
// when the directory existed before with looser modes: mkdir's mode applies only to what
// it creates, so existing directories are chmodded.
export function ensureHome(root = airlockHome()): HomeLayout {
  const l = homeLayout(root);
  for (const d of [l.root, l.keys, l.cache, l.sessions, l.run]) {
    try {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    } catch (e) {
      if (isRecordingFailure(e)) throw cannotRecord(e, `creating Airlock's data directory ${d}`);
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new AirlockError(
        'UNAVAILABLE',
        `cannot create Airlock's data directory ${d} with mode 0700 (${code})`,
        'set AIRLOCK_HOME to a directory you own, e.g. export AIRLOCK_HOME=$HOME/.local/share/airlock',
      );
    }
  }
  return l;
}

/** Creates `path` as an empty 0600 file unless it exists, and makes an existing one 0600. */
export function makePrivateFile(path: string, o: { create?: boolean } = {}): void {
  try {
    if (o.create !== false) closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && o.create === false) return;
    throw e;
  }
}

/**
 * Removes group and other permissions from every entry of a tree Airlock wrote (session
 * results, cache entries). Never follows a symlink (lstat; chmod on a link would change
 * its target); bounded by `maxEntries`.
 */
export function makePrivateTree(path: string, maxEntries = 1_000_000, opts: { keepShared?: boolean } = {}): void {
  const stack = [path];
  for (let n = 0; stack.length && n < maxEntries; n++) {
    const p = stack.pop()!;
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) continue;
    // a read-only file with other hard links (a pack shared with the user's own repository):
    // its other name is not ours to change; the 0700 directories above keep it private
    if (opts.keepShared && st.isFile() && st.nlink > 1 && (st.mode & 0o777) === 0o444) continue;
    if ((st.mode & 0o077) !== 0) chmodSync(p, st.mode & 0o7700);
    if (st.isDirectory()) for (const e of readdirSync(p)) stack.push(join(p, e));
  }
}
