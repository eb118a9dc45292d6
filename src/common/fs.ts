import {
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  copyFileSync,
  constants,
} from 'node:fs';

// Host-side tree operations on directories whose content came from a repository or an
// agent. Names are handled as bytes (a non-UTF-8 name must not turn into a different
// path), and a symlink is an entry of its own: never followed, never resolved, never
// a reason to fail (a link to a generated or absent file is normal in real repos).

export type PathBytes = Buffer;

const SLASH = Buffer.from('/');

export function joinBytes(dir: PathBytes | string, name: PathBytes | string): PathBytes {
  const d = typeof dir === 'string' ? Buffer.from(dir) : dir;
  const n = typeof name === 'string' ? Buffer.from(name) : name;
  return d.length && d[d.length - 1] === 0x2f ? Buffer.concat([d, n]) : Buffer.concat([d, SLASH, n]);
}

export interface TreeEntry {
  abs: PathBytes;
  rel: PathBytes;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  depth: number;
}

/** Depth-first walk that never follows a symlink; `skip(rel)` prunes a directory. Bounded
 * by `maxEntries` (a tree bomb is an error, not a hang). */
export function* walkBytes(
  root: string,
  opts: { skip?: (rel: PathBytes) => boolean; maxEntries?: number } = {},
): Generator<TreeEntry> {
  const max = opts.maxEntries ?? 2_000_000;
  const stack: { abs: PathBytes; rel: PathBytes; depth: number }[] = [
    { abs: Buffer.from(root), rel: Buffer.alloc(0), depth: 0 },
  ];
  let seen = 0;
  while (stack.length) {
    const d = stack.pop()!;
    for (const ent of readdirSync(d.abs, { withFileTypes: true, encoding: 'buffer' })) {
      if (++seen > max) throw new Error(`more than ${max} entries under ${root}`);
      const abs = joinBytes(d.abs, ent.name);
      const rel = d.rel.length ? joinBytes(d.rel, ent.name) : Buffer.from(ent.name);
      const kind = ent.isSymbolicLink() ? 'symlink' : ent.isDirectory() ? 'dir' : ent.isFile() ? 'file' : 'other';
      if (kind === 'dir' && opts.skip?.(rel)) continue;
      yield { abs, rel, kind, depth: d.depth + 1 };
      if (kind === 'dir') stack.push({ abs, rel, depth: d.depth + 1 });
    }
  }
}

/** chown of a whole tree with lchown: a link's own owner changes, its target (absent, or a
 * host file such as /etc/shadow) is never touched. With `keepShared`, a read-only file with
 * other hard links (a pack shared with the user's own repository) keeps its owner: every
 * user can read it, and its other name is not ours to change. */
export function chownTreeNoFollow(
  root: string,
  ids: { uid: number; gid: number },
  opts: { keepShared?: boolean } = {},
): void {
  const fix = (p: PathBytes | string) => {
    const st = lstatSync(p);
    if (opts.keepShared && st.isFile() && st.nlink > 1 && (st.mode & 0o777) === 0o444) return;
    if (st.uid !== ids.uid || st.gid !== ids.gid) lchownSync(p, ids.uid, ids.gid);
  };
  fix(root);
  for (const e of walkBytes(root)) fix(e.abs);
}

/** Recreates `src` under `dst` with hard links (a copy where linking is refused), symlinks
 * recreated as links with the same target text. `skip(rel)` leaves a top entry out. Used
 * for read-only cache layers only: nothing ever writes through the shared inodes. */
export function linkTree(src: string, dst: string, skip: (rel: PathBytes) => boolean): void {
  mkdirSync(dst, { recursive: true });
  for (const e of walkBytes(src, { skip })) {
    if (skip(e.rel)) continue;
    const to = joinBytes(dst, e.rel);
    if (e.kind === 'dir') {
      mkdirSync(to, { mode: lstatSync(e.abs).mode & 0o7777 });
      continue;
    }
    if (e.kind === 'symlink') {
      symlinkSync(readlinkSync(e.abs, { encoding: 'buffer' }), to);
      continue;
    }
    if (e.kind !== 'file') continue;
    try {
      linkSync(e.abs, to);
    } catch {
      copyFileSync(e.abs, to, constants.COPYFILE_EXCL);
    }
  }
}
