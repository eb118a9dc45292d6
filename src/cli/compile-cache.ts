import { lstatSync, mkdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

// Node's compile cache holds compiled code (of the type-stripped sources too) and Node runs
// what it finds there: ~100 ms of every `airlock` start (issue 16), and code execution for
// whoever can write into it. So it is used only in the user's own cache directory, when that
// directory and its parents up from the cache base belong to this user and no one else can
// write them; never a shared fallback such as /tmp when HOME is unset.

/** The compile cache directory to enable, or null (NODE_COMPILE_CACHE set: Node already enabled that one). */
export function privateCompileCacheDir(env: NodeJS.ProcessEnv): string | null {
  if (env.NODE_COMPILE_CACHE) return null;
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : '');
  if (!isAbsolute(base)) return null;
  const dir = join(base, 'airlock', 'node-compile-cache');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const uid = process.getuid?.();
    for (const d of [base, join(base, 'airlock'), dir]) {
      const st = lstatSync(d);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) return null;
    }
    return dir;
  } catch {
    return null;
  }
}
