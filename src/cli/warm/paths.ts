import { lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { airlockHome, homeLayout } from '../../common/index.ts';

/** The checkout this code runs from (bin/, src/, build/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const RUN_TS = join(ROOT, 'src', 'cli', 'run.ts');
export const ADDON = join(ROOT, 'build', 'warm.node');
export const CLIENT = join(ROOT, 'build', 'airlock-attach');

export interface WarmPaths {
  /** AIRLOCK_HOME/run/warm: 0700, this user's; bin/airlock derives the same path (one rule: airlockHome). */
  dir: string;
  socket: string;
  /** present while warm start is on; holds the idle setting */
  enabled: string;
  /** the waiting spare's record (pid, served count, idle, load CPU) */
  state: string;
  /** one line per request served, refused or turned away */
  log: string;
}

export function warmPaths(env: NodeJS.ProcessEnv): WarmPaths {
  const dir = join(homeLayout(airlockHome(env)).run, 'warm');
  return {
    dir,
    socket: join(dir, 'spare.sock'),
    enabled: join(dir, 'on'),
    state: join(dir, 'state.json'),
    log: join(dir, 'spare.log'),
  };
}

/**
 * Creates the warm directory (and AIRLOCK_HOME/run above it) 0700 and checks, without
 * following a link, that both are directories of this user that no one else can enter:
 * the socket's directory is what keeps other users from even connecting. null: usable;
 * else why not.
 */
export function privateDirProblem(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    return `cannot create ${dir} (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const uid = process.geteuid?.();
  for (const d of [dirname(dir), dir]) {
    const st = lstatSync(d, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return `${d} is not a directory (a symlink?)`;
    if (uid !== undefined && st.uid !== uid) return `${d} belongs to uid ${st.uid}, not to you (uid ${uid})`;
    if ((st.mode & 0o077) !== 0) return `${d} has mode ${(st.mode & 0o777).toString(8)}; it must be 700`;
  }
  return null;
}

const FINGERPRINT_MAX_FILES = 20_000;

/**
 * What code a spare runs: size and mtime of every file under src/ and build/, of
 * package-lock.json and of the Node binary. A spare whose fingerprint changed between its
 * start and a request refuses it ("stale"), so a request always runs the code on disk.
 */
export function codeFingerprint(root = ROOT): string {
  const hash = createHash('sha256');
  const stack = [join(root, 'src'), join(root, 'build')];
  const add = (path: string) => {
    const st = statSync(path, { throwIfNoEntry: false });
    hash.update(`${path}\0${st ? `${st.size}:${st.mtimeMs}:${st.ino}` : '-'}\n`);
  };
  add(join(root, 'package-lock.json'));
  add(process.execPath);
  for (let n = 0; stack.length && n < FINGERPRINT_MAX_FILES; n++) {
    const dir = stack.pop()!;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      hash.update(`${dir}\0unreadable\n`);
      continue;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) stack.push(path);
      else add(path);
    }
  }
  return hash.digest('hex');
}
