import { lstatSync, mkdirSync, openSync, closeSync, readdirSync, readlinkSync, symlinkSync, writeSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { extract, pack, type Headers } from 'tar-stream';
import { AirlockError, escapeForTerminal } from '../common/index.ts';

// The workspace crosses between the host and the pod as a tar stream (tar-stream, no
// hand-written tar parser). Packing never follows a link. Extracting treats the stream as
// hostile (on the host it is what the agent left): only regular files, directories and
// symbolic links are written, each name must be relative with no `..`, no component of
// its parent may be a link or a file (a link entry cannot lead a later entry out of the
// directory), no mode keeps setuid/setgid, ownership is never taken from the archive, and
// entries, bytes and depth are bounded before anything is written past the bound.

export interface TarBounds {
  maxEntries: number;
  maxBytes: number;
  maxDepth: number;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
  /** entries not written, and why (names escaped for printing) */
  skipped: string[];
}

const MAX_SKIPPED_LISTED = 50;

/** A name safe to print: terminal controls escaped (the one escaping function), length bounded. */
export function printableName(name: string): string {
  return escapeForTerminal(name.slice(0, 300));
}

/** Relative path components of an archive name, or null when it is absolute, empty, has `..` or NUL. */
function safeParts(name: string): string[] | null {
  if (name.startsWith('/') || name.includes('\0')) return null;
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return null;
  return parts;
}

/** True when every directory on the way to `parts`' parent is a real directory (created when missing). */
function parentIsInside(root: string, parts: string[]): boolean {
  let p = root;
  for (const part of parts.slice(0, -1)) {
    p = join(p, part);
    const st = lstatOrNull(p);
    if (!st) mkdirSync(p, { mode: 0o755 });
    else if (!st.isDirectory()) return false;
  }
  return true;
}

function tooLarge(what: string, bounds: TarBounds): AirlockError {
  return new AirlockError(
    'TOO_LARGE',
    `the workspace archive ${what} (bounds: ${bounds.maxEntries} entries, ${bounds.maxBytes} bytes, depth ${bounds.maxDepth})`,
    'the session left more than capture reads; nothing past the bound was written',
  );
}

/** Writes one entry's body to a new file (never through an existing name). */
async function writeFileEntry(path: string, mode: number, body: Readable, budget: { left: number }): Promise<number> {
  const fd = openSync(path, 'wx', mode & 0o755);
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      n += chunk.length;
      budget.left -= chunk.length;
      if (budget.left < 0) throw new Error('bytes');
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

function lstatOrNull(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** Writes one archive entry under root; returns why it was skipped, or null when written. */
async function writeEntry(root: string, h: Headers, body: Readable, budget: { left: number }): Promise<string | null> {
  const parts = safeParts(h.name);
  if (!parts) return 'unsafe name';
  if (parts.length === 0) return h.type === 'directory' ? null : 'empty name';
  if (!parentIsInside(root, parts)) return 'parent is not a directory';
  const path = join(root, ...parts);
  const existing = lstatOrNull(path);
  // a name met twice is never written through (the first one may be a link)
  if (existing) return h.type === 'directory' && existing.isDirectory() ? null : 'duplicate name';
  if (h.type === 'directory') mkdirSync(path, { mode: 0o755 });
  else if (h.type === 'symlink') symlinkSync(String(h.linkname ?? ''), path);
  else if (h.type === 'file' || h.type === 'contiguous-file') await writeFileEntry(path, h.mode ?? 0o644, body, budget);
  else return `type ${String(h.type)} not captured`;
  return null;
}

/** Extracts a hostile tar stream into the empty directory `root`, bounded (throws TOO_LARGE past a bound). */
export async function extractBounded(input: Readable, root: string, bounds: TarBounds): Promise<ExtractResult> {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const result: ExtractResult = { entries: 0, bytes: 0, skipped: [] };
  const budget = { left: bounds.maxBytes };
  const ex = extract();
  const done = pipeline(input, ex);
  // its failure surfaces through the loop or the await below
  done.catch(() => undefined);
  try {
    for await (const entry of ex) {
      if (++result.entries > bounds.maxEntries) throw tooLarge(`has more than ${bounds.maxEntries} entries`, bounds);
      const depth = entry.header.name.split('/').length;
      const why = depth > bounds.maxDepth ? 'too deep' : await writeEntry(root, entry.header, entry, budget);
      // what was not written still crossed: its bytes count against the same bound
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        budget.left -= chunk.length;
        if (budget.left < 0) throw new Error('bytes');
      }
      if (why && result.skipped.length < MAX_SKIPPED_LISTED)
        result.skipped.push(`${printableName(entry.header.name)}: ${why}`);
    }
    await done;
  } catch (e) {
    input.destroy();
    if (e instanceof AirlockError) throw e;
    if (e instanceof Error && e.message === 'bytes') throw tooLarge(`is larger than ${bounds.maxBytes} bytes`, bounds);
    throw new AirlockError(
      'UNAVAILABLE',
      `the workspace archive is unreadable: ${printableName(String((e as Error)?.message ?? e))}`,
      'the pod sent a malformed archive: the capture fails rather than read it as an empty workspace',
    );
  }
  result.bytes = bounds.maxBytes - budget.left;
  return result;
}

/** Adds `dir`'s tree to the pack, names already packed (from a layer above) left out. */
async function packTree(p: ReturnType<typeof pack>, dir: string, seen: Map<string, boolean>): Promise<void> {
  const stack: string[] = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const full = join(dir, r);
      const st = lstatSync(full);
      const above = seen.get(r);
      // a layer above decided this name: only a directory there lets this layer's children through
      if (st.isDirectory() && above !== false) stack.push(r);
      if (above !== undefined) continue;
      seen.set(r, st.isDirectory());
      if (st.isDirectory()) p.entry({ name: r, type: 'directory', mode: 0o755 });
      else if (st.isSymbolicLink()) p.entry({ name: r, type: 'symlink', linkname: readlinkSync(full) });
      else if (st.isFile() && st.size === 0) p.entry({ name: r, type: 'file', mode: st.mode & 0o755 }, '');
      else if (st.isFile()) {
        const entry = p.entry({ name: r, type: 'file', size: st.size, mode: st.mode & 0o755 });
        await pipeline(createReadStream(full, { start: 0, end: st.size - 1 }), entry);
      }
    }
  }
}

/**
 * A tar stream of `dirs` as one tree (the first, top, layer wins a name), by an lstat walk:
 * links are stored as links, never followed; sockets and devices are left out.
 */
export function packDirectory(...dirs: string[]): Readable {
  const p = pack();
  void (async () => {
    const seen = new Map<string, boolean>();
    for (const d of dirs) await packTree(p, d, seen);
    p.finalize();
  })().catch((e: unknown) => p.destroy(e as Error));
  return p;
}
