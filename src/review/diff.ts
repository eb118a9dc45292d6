import { createHash } from 'node:crypto';
import parseDiff from 'parse-diff';
import { spawn } from 'node:child_process';
import { AGENT_DATA_BOUNDS, git, gitBytes, gitEnv, hardenedArgs, AirlockError } from '../common/index.ts';
import { countTreePaths, DEFAULT_TREE_LIMITS } from '../workspace/index.ts';
import type { ChangeSet, ChangedFile } from './types.ts';

// The change under review, read from the TRUSTED result repo with hardened git: no
// textconv, no external diff, no renames (a rename is a delete and an add, so nothing
// hides behind a similarity index), attributes from no tree (an agent's .gitattributes
// cannot mark a file `-diff` to hide it), full blob ids in the canonical diff.

export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const CFG = [
  '-c',
  `attr.tree=${EMPTY_TREE}`,
  '-c',
  'core.quotePath=false',
  '-c',
  'diff.noprefix=false',
  '-c',
  'diff.mnemonicPrefix=false',
  '-c',
  'diff.relative=false',
  '-c',
  'diff.renames=false',
  '-c',
  'diff.suppressBlankEmpty=false',
  '-c',
  'core.attributesFile=/dev/null',
];
const DIFF_TEXT = [
  '--no-color',
  '--no-ext-diff',
  '--no-textconv',
  '--no-renames',
  '--full-index',
  '--src-prefix=a/',
  '--dst-prefix=b/',
  '--ignore-submodules=none',
];
const ZERO = '0'.repeat(40);
/** Files larger than this are not loaded whole (they are a size finding anyway). */
export const TEXT_CAP = 4 * 1024 * 1024;
const PRINTABLE_RUN = /[\x20-\x7e\t\r\n]{8,}/g;

export function rgit(repo: string, args: string[], input?: string, encoding?: 'utf8' | 'latin1'): string {
  return git([...CFG, ...args], { env: { GIT_DIR: repo }, input, encoding, bounds: AGENT_DATA_BOUNDS }).stdout;
}

const lineText = (content: string): string => content.slice(1);

/** Most paths one proposal may change: past this Airlock refuses (TOO_LARGE) rather than truncating. */
export const MAX_CHANGED_PATHS = 50_000;
/** Most bytes of the canonical diff, and of whole texts loaded for the parsers. */
export const MAX_DIFF_BYTES = 256 * 1024 * 1024;
const MAX_TEXT_BYTES = 512 * 1024 * 1024;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A name as git stored it: UTF-8 when it is, else lossy (U+FFFD) with the bytes kept in hex. */
function decodePath(b: Buffer): { path: string; pathHex: string | null } {
  try {
    return { path: UTF8.decode(b), pathHex: null };
  } catch {
    return { path: b.toString('utf8'), pathHex: b.toString('hex') };
  }
}

function rawEntries(repo: string, base: string, head: string): ChangedFile[] {
  const out = gitBytes(
    [...CFG, 'diff', '--raw', '-z', '--no-renames', '--no-abbrev', '--ignore-submodules=none', base, head],
    { env: { GIT_DIR: repo }, bounds: AGENT_DATA_BOUNDS, maxBuffer: MAX_CHANGED_PATHS * 8192 },
  ).stdout;
  const files: ChangedFile[] = [];
  let at = 0;
  while (at < out.length) {
    const a = out.indexOf(0, at);
    const b = out.indexOf(0, a + 1);
    if (a < 0 || b < 0 || out[at] !== 0x3a)
      throw new AirlockError('BAD_STATE', 'unexpected output from git diff --raw', 'please report this');
    const [oldMode, newMode, oldBlob, newBlob, st] = out.toString('latin1', at + 1, a).split(' ');
    const status = st === 'A' ? 'added' : st === 'D' ? 'deleted' : st === 'T' ? 'typechange' : 'modified';
    files.push({
      ...decodePath(out.subarray(a + 1, b)),
      status,
      oldMode: oldMode!,
      newMode: newMode!,
      oldBlob: oldBlob!,
      newBlob: newBlob!,
      binary: false,
      large: false,
      newSize: 0,
      added: [],
      deletedCount: 0,
      newText: null,
      oldText: null,
      binaryStrings: null,
    });
    at = b + 1;
  }
  return files;
}

/**
 * Splits the canonical diff into its per-file sections and pairs them with the raw
 * entries BY POSITION (git emits both in the same order; a typechange is two sections),
 * checking each pairing against the full blob ids of its `index` line. Names are never
 * parsed back out of the patch text, so quoting (backslash, quote, TAB, control or
 * non-UTF-8 bytes) cannot make a file miss its checks.
 */
export function diffSections(diff: string, files: ChangedFile[]): { file: ChangedFile; text: string }[] {
  const starts: number[] = [];
  for (const m of diff.matchAll(/^diff --git /gm)) starts.push(m.index);
  const parts = starts.map((s, i) => diff.slice(s, starts[i + 1] ?? diff.length));
  const out: { file: ChangedFile; text: string }[] = [];
  let i = 0;
  for (const f of files) {
    const n = f.status === 'typechange' && f.oldMode !== '160000' && f.newMode !== '160000' ? 2 : 1;
    for (let k = 0; k < n; k++) {
      const text = parts[i++];
      if (text === undefined)
        throw new AirlockError(
          'BAD_STATE',
          'the diff has fewer file sections than git listed changes',
          'please report this',
        );
      const idx = /^index ([0-9a-f]{40})\.\.([0-9a-f]{40})/m.exec(
        text.slice(0, text.search(/^@@ |^Binary files |^---/m) >>> 0),
      );
      const [ob, nb] = n === 2 ? (k === 0 ? [f.oldBlob, ZERO] : [ZERO, f.newBlob]) : [f.oldBlob, f.newBlob];
      if (idx && (idx[1] !== ob || idx[2] !== nb))
        throw new AirlockError(
          'BAD_STATE',
          'a diff section does not match the change git listed at its position',
          'please report this',
        );
      out.push({ file: f, text });
    }
  }
  if (i !== parts.length)
    throw new AirlockError(
      'BAD_STATE',
      'the diff has more file sections than git listed changes',
      'please report this',
    );
  return out;
}

/** Blob contents in one `cat-file --batch` (sizes known beforehand), as bytes. */
function readBlobs(repo: string, oids: string[], size: Map<string, number>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!oids.length) return out;
  const total = oids.reduce((n, o) => n + (size.get(o) ?? 0) + 64, 1024);
  const buf = gitBytes([...CFG, 'cat-file', '--batch'], {
    env: { GIT_DIR: repo },
    input: oids.join('\n') + '\n',
    bounds: AGENT_DATA_BOUNDS,
    maxBuffer: total,
  }).stdout;
  let at = 0;
  for (const oid of oids) {
    const nl = buf.indexOf(0x0a, at);
    const [, type, n] = buf.toString('latin1', at, nl).split(' ');
    if (type !== 'blob')
      throw new AirlockError(
        'BAD_STATE',
        `blob ${oid} cannot be read for review`,
        'the result repository is damaged: propose again',
      );
    out.set(oid, buf.subarray(nl + 1, nl + 1 + Number(n)));
    at = nl + 1 + Number(n) + 1; // content, then a newline
  }
  return out;
}

export function loadChange(repo: string, base: string, head: string, commits: string[]): ChangeSet {
  // 0. bounded before anything is expanded: a tree bomb is refused here, having read only trees
  countTreePaths(
    repo,
    rgit(repo, ['rev-parse', `${base}^{tree}`]).trim(),
    rgit(repo, ['rev-parse', `${head}^{tree}`]).trim(),
    { ...DEFAULT_TREE_LIMITS, maxPaths: MAX_CHANGED_PATHS },
  );
  // 1. what changed, with modes and blob ids, names as bytes
  const files = rawEntries(repo, base, head);

  // 2. sizes of both versions, one git process
  const blobs = new Set<string>();
  for (const f of files) {
    if (f.newBlob !== ZERO && f.newMode !== '160000') blobs.add(f.newBlob);
    if (f.oldBlob !== ZERO && f.oldMode !== '160000') blobs.add(f.oldBlob);
  }
  const size = new Map<string, number>();
  if (blobs.size) {
    for (const line of rgit(repo, ['cat-file', '--batch-check'], [...blobs].join('\n') + '\n').split('\n')) {
      const [sha, type, n] = line.split(' ');
      if (sha && type === 'blob') size.set(sha, Number(n));
    }
  }
  for (const f of files) f.newSize = f.newBlob === ZERO ? 0 : (size.get(f.newBlob) ?? 0);

  // 3. the canonical diff: what is hashed (as bytes), shown and scanned
  const diffBytes = gitBytes([...CFG, 'diff', ...DIFF_TEXT, '-U3', base, head], {
    env: { GIT_DIR: repo },
    bounds: AGENT_DATA_BOUNDS,
    maxBuffer: MAX_DIFF_BYTES,
  }).stdout;
  const diff = diffBytes.toString('utf8');
  let addedLines = 0;
  let deletedLines = 0;
  for (const { file: f, text } of diffSections(diff, files)) {
    const head = text.slice(0, (text.search(/^@@ /m) + 1 || text.length + 1) - 1);
    if (/^(Binary files |GIT binary patch)/m.test(head)) {
      f.binary = true;
      continue;
    }
    for (const pf of parseDiff(text))
      for (const ch of pf.chunks)
        for (const c of ch.changes) {
          if (c.type === 'add') {
            f.added.push({ line: c.ln, text: lineText(c.content) });
            addedLines++;
          } else if (c.type === 'del') {
            f.deletedCount++;
            deletedLines++;
          }
        }
  }

  // 4. whole texts (parsers, manifests, symlink targets) and binaries' printable runs
  // (a secret in a blob is as live as one in a text file), read from the blobs themselves
  const want: string[] = [];
  let budget = 0;
  const take = (oid: string) => {
    const n = size.get(oid) ?? 0;
    if (oid === ZERO || n > TEXT_CAP || budget + n > MAX_TEXT_BYTES) return false;
    budget += n;
    want.push(oid);
    return true;
  };
  for (const f of files) {
    if (f.newMode === '160000' && f.oldMode === '160000') continue;
    if (f.binary) {
      if (f.status !== 'deleted' && f.newMode !== '160000' && !take(f.newBlob)) f.large = true;
      continue;
    }
    // both versions or neither: a parser comparing them must not see half the story
    if (
      f.newMode === '160000' ||
      f.oldMode === '160000' ||
      (size.get(f.newBlob) ?? 0) > TEXT_CAP ||
      (size.get(f.oldBlob) ?? 0) > TEXT_CAP
    )
      continue;
    take(f.newBlob);
    take(f.oldBlob);
  }
  const content = readBlobs(repo, [...new Set(want)], size);
  for (const f of files) {
    const nb = content.get(f.newBlob);
    const ob = content.get(f.oldBlob);
    if (f.binary) {
      if (nb) f.binaryStrings = (nb.toString('latin1').match(PRINTABLE_RUN) ?? []).join('\n');
      continue;
    }
    f.newText = f.status === 'deleted' || !nb ? null : nb.toString('utf8');
    f.oldText = f.status === 'added' || !ob ? null : ob.toString('utf8');
  }
  return {
    base,
    head,
    commits,
    files,
    diff,
    diffSha256: createHash('sha256').update(diffBytes).digest('hex'),
    addedLines,
    deletedLines,
    repo,
  };
}

/** Most bytes of one blob the streaming secrets scan reads; past it the file is a blocking finding. */
export const MAX_STREAM_BYTES = 4 * 1024 ** 3;
const WINDOW = 8 * 1024 * 1024;
const OVERLAP = 64 * 1024;

/**
 * A large blob's printable runs in overlapping windows of ~8 MiB, read streaming from a
 * bounded `git cat-file` (memory stays flat whatever the size): a file git calls binary
 * (NUL bytes, or over core.bigFileThreshold like a 700 MB text file) is still scanned.
 * Returns false when the blob is over MAX_STREAM_BYTES or git failed.
 */
export async function streamPrintable(
  repo: string,
  oid: string,
  onWindow: (text: string) => Promise<void>,
): Promise<boolean> {
  const b = AGENT_DATA_BOUNDS;
  const child = spawn(
    'prlimit',
    [
      `--as=${b.memoryBytes}`,
      `--cpu=${b.cpuSeconds}`,
      '--core=0',
      '--',
      'git',
      ...hardenedArgs(['cat-file', 'blob', oid], b),
    ],
    {
      env: gitEnv({ GIT_DIR: repo }),
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: b.timeoutMs,
      killSignal: 'SIGKILL',
    },
  );
  const exited = new Promise<number | null>((r) => {
    child.once('close', (code) => r(code));
    child.once('error', () => r(null));
  });
  let buf = '';
  let total = 0;
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_STREAM_BYTES) {
      child.kill('SIGKILL');
      await exited;
      return false;
    }
    buf += chunk.toString('latin1');
    if (buf.length >= WINDOW) {
      await onWindow((buf.match(PRINTABLE_RUN) ?? []).join('\n'));
      buf = buf.slice(-OVERLAP); // a secret cut by the window edge is whole in the next one
    }
  }
  if (buf) await onWindow((buf.match(PRINTABLE_RUN) ?? []).join('\n'));
  return (await exited) === 0;
}
