import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from './json.ts';

// A content-addressed cache of pure, JSON-shaped results (the resolved policy, an agent
// profile) in AIRLOCK_HOME, so that a CLI start skips the parsers and schemas that produced
// them (issue 16). An entry is found by the SHA-256 of everything its result depends on
// (the files' text, the code that computes it), so it can never answer for other inputs;
// the sandbox never sees AIRLOCK_HOME, and an entry is read only when it is a regular file
// of this user, private (0600), bounded, and names its own key. Anything else is a miss:
// the result is computed again and the entry rewritten. A failure to write is no failure.

const MAX_ENTRY_BYTES = 4 * 1024 * 1024;
/** Entries kept; a miss that writes past it removes the least recently written (a new commit's airlock.yaml is a new entry). */
const MAX_ENTRIES = 256;

export interface ResultCache {
  /** Directory of the entries (created 0700). */
  dir: string;
}

/** The cached value for `key`, or compute(), stored; hit or miss, the caller gets the same JSON shape. */
export async function cachedResult<T>(
  cache: ResultCache | null,
  key: unknown,
  compute: () => Promise<T> | T,
): Promise<T> {
  // loaded here, not with common: `airlock --version` and `--help` load common but no crypto
  const { createHash, randomBytes } = await import('node:crypto');
  const id = createHash('sha256').update(canonicalJson(key)).digest('hex');
  const hit = cache ? readEntry(cache.dir, id) : undefined;
  if (hit !== undefined) return hit as T;
  const text = JSON.stringify(await compute());
  if (cache) writeEntry(cache.dir, id, text, randomBytes(6).toString('hex'));
  // a miss answers with the round-tripped value, exactly what a later hit will answer
  return JSON.parse(text) as T;
}

function readEntry(dir: string, id: string): unknown {
  let fd: number;
  try {
    fd = openSync(join(dir, id), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    const mine = process.getuid === undefined || st.uid === process.getuid();
    if (!st.isFile() || !mine || (st.mode & 0o077) !== 0 || st.size > MAX_ENTRY_BYTES) return undefined;
    const buf = Buffer.alloc(st.size);
    if (readSync(fd, buf, 0, st.size, 0) !== st.size) return undefined;
    const entry = JSON.parse(buf.toString('utf8')) as { key?: unknown; value?: unknown };
    return entry.key === id && 'value' in entry ? entry.value : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function writeEntry(dir: string, id: string, valueJson: string, nonce: string): void {
  const tmp = join(dir, `.${id}.${nonce}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, `{"key":${JSON.stringify(id)},"value":${valueJson}}`, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, join(dir, id));
    pruneOldest(dir);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      /* never written */
    }
  }
}

function pruneOldest(dir: string): void {
  const names = readdirSync(dir);
  if (names.length <= MAX_ENTRIES) return;
  const byAge = names
    .map((name) => ({ name, at: lstatSync(join(dir, name), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
    .sort((a, b) => a.at - b.at);
  for (const { name } of byAge.slice(0, names.length - MAX_ENTRIES)) rmSync(join(dir, name), { force: true });
}
