import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '../common/index.ts';
import { scanText, scanTextExplained } from './engine.ts';
import type { AllowEntry, SecretFinding, SecretSuppression } from './types.ts';

// File access for the scanner. Symlinks are never followed: directories are walked with
// lstat/readdir, files are opened with O_NOFOLLOW and checked with fstat, so a link to
// /etc/passwd or outside the tree is neither read nor written through.

export const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024;
const MAX_ENTRIES = 2_000_000;
const MAX_DEPTH = 256;

export type ReadResult =
  | { kind: 'text'; text: string; binary: boolean; size: number; mode: number }
  | { kind: 'skip'; reason: 'symlink' | 'not-a-regular-file' | 'too-large' | 'unreadable'; size?: number };

export type ReadBytesResult =
  { kind: 'bytes'; data: Buffer; binary: boolean; size: number; mode: number } | Extract<ReadResult, { kind: 'skip' }>;

/** Reads a regular file without following a symlink at its last component. Binary files
 * (a NUL in the first 8 KiB) are decoded as latin1 so every byte maps to one char. */
export function readNoFollow(path: string | Buffer, maxBytes: number): ReadResult {
  const r = readNoFollowBytes(path, maxBytes);
  if (r.kind === 'skip') return r;
  return {
    kind: 'text',
    text: r.data.toString(r.binary ? 'latin1' : 'utf8'),
    binary: r.binary,
    size: r.size,
    mode: r.mode,
  };
}

/** The same, as bytes (a binary need not become a string to be judged). */
export function readNoFollowBytes(path: string | Buffer, maxBytes: number): ReadBytesResult {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { kind: 'skip', reason: code === 'ELOOP' ? 'symlink' : 'unreadable' };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: 'skip', reason: 'not-a-regular-file' };
    if (st.size > maxBytes) return { kind: 'skip', reason: 'too-large', size: st.size };
    const buf = Buffer.alloc(st.size);
    let off = 0;
    for (let n = 1; off < st.size && n > 0;) {
      n = readSync(fd, buf, off, st.size - off, off);
      off += n;
    }
    const data = buf.subarray(0, off);
    return { kind: 'bytes', data, binary: data.subarray(0, 8192).includes(0), size: off, mode: st.mode & 0o7777 };
  } finally {
    closeSync(fd);
  }
}

export interface WalkEntry {
  abs: string;
  rel: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
}

/** Depth-first walk that never follows symlinks. `skipDir(rel, name)` prunes directories. */
export function* walk(root: string, skipDir: (rel: string, name: string) => boolean): Generator<WalkEntry> {
  const stack: { abs: string; rel: string; depth: number }[] = [{ abs: root, rel: '', depth: 0 }];
  let seen = 0;
  while (stack.length) {
    const d = stack.pop()!;
    let ents;
    try {
      ents = readdirSync(d.abs, { withFileTypes: true });
    } catch {
      continue;
    }
    ents.sort((a, b) => (a.name < b.name ? 1 : -1));
    for (const ent of ents) {
      if (++seen > MAX_ENTRIES)
        throw new AirlockError(
          'FAILURE',
          `more than ${MAX_ENTRIES} entries under ${root}`,
          'Scan a smaller directory.',
        );
      const abs = join(d.abs, ent.name);
      const rel = d.rel ? `${d.rel}/${ent.name}` : ent.name;
      if (ent.isSymbolicLink()) {
        yield { abs, rel, type: 'symlink' };
        continue;
      }
      if (ent.isDirectory()) {
        if (skipDir(rel, ent.name) || d.depth >= MAX_DEPTH) continue;
        yield { abs, rel, type: 'dir' };
        stack.push({ abs, rel, depth: d.depth + 1 });
        continue;
      }
      yield { abs, rel, type: ent.isFile() ? 'file' : 'other' };
    }
  }
}

export interface ScanPathsOptions {
  allowlist?: readonly AllowEntry[];
  maxFileBytes?: number;
  /** Called for each file not scanned (binary, too large, symlink, unreadable). */
  onSkip?: (file: string, reason: string) => void;
  /** Also collect what rules matched and rejected, with the reason (`--explain`). */
  explain?: boolean;
}

export interface ScanPathsResult {
  findings: SecretFinding[];
  /** Only with `explain`: candidates judged not secret, and why. */
  suppressed: SecretSuppression[];
  skipped: { file: string; reason: string }[];
  files: number;
  bytes: number;
}

/** Scans files and directories (skipping .git, binaries, symlinks and files over the size
 * limit, each reported in `skipped`). A path that does not exist is a user error. */
export async function scanPathsDetailed(paths: string[], opts: ScanPathsOptions = {}): Promise<ScanPathsResult> {
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const res: ScanPathsResult = { findings: [], suppressed: [], skipped: [], files: 0, bytes: 0 };
  const skip = (file: string, reason: string) => {
    res.skipped.push({ file, reason });
    opts.onSkip?.(file, reason);
  };
  const scanFile = async (file: string) => {
    const r = readNoFollow(file, max);
    if (r.kind === 'skip') {
      skip(file, r.reason);
      return;
    }
    if (r.binary) {
      skip(file, 'binary');
      return;
    }
    res.files++;
    res.bytes += r.size;
    const scanOpts = { path: file, allowlist: opts.allowlist };
    if (!opts.explain) {
      res.findings.push(...(await scanText(r.text, scanOpts)));
      return;
    }
    const scanned = await scanTextExplained(r.text, scanOpts);
    res.findings.push(...scanned.findings);
    res.suppressed.push(...scanned.suppressed);
  };
  for (const p of paths) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      throw new AirlockError(
        'NOT_FOUND',
        `no such file or directory: ${p}`,
        'Check the path; `airlock secrets scan` takes files and directories.',
      );
    }
    if (st.isSymbolicLink()) {
      skip(p, 'symlink');
      continue;
    }
    if (st.isFile()) {
      await scanFile(p);
      continue;
    }
    if (!st.isDirectory()) {
      skip(p, 'not-a-regular-file');
      continue;
    }
    for (const e of walk(p, (_rel, name) => name === '.git')) {
      if (e.type === 'file') await scanFile(e.abs);
      else if (e.type === 'symlink') skip(e.abs, 'symlink');
      else if (e.type === 'other') skip(e.abs, 'not-a-regular-file');
    }
  }
  return res;
}
