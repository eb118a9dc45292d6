import { createHash } from 'node:crypto';
import parseDiff from 'parse-diff';
import { git } from '../common/git.ts';
import { AirlockError } from '../common/errors.ts';
import type { AddedLine, ChangeSet, ChangedFile } from './types.ts';

// The change under review, read from the TRUSTED result repo with hardened git: no
// textconv, no external diff, no renames (a rename is a delete and an add, so nothing
// hides behind a similarity index), attributes from no tree (an agent's .gitattributes
// cannot mark a file `-diff` to hide it), full blob ids in the canonical diff.

export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const CFG = [
  '-c', `attr.tree=${EMPTY_TREE}`, '-c', 'core.quotePath=false', '-c', 'diff.noprefix=false', '-c', 'diff.mnemonicPrefix=false',
  '-c', 'diff.relative=false', '-c', 'diff.renames=false', '-c', 'diff.suppressBlankEmpty=false', '-c', 'core.attributesFile=/dev/null',
];
const DIFF_TEXT = ['--no-color', '--no-ext-diff', '--no-textconv', '--no-renames', '--full-index', '--src-prefix=a/', '--dst-prefix=b/', '--ignore-submodules=none'];
const ZERO = '0'.repeat(40);
/** Files larger than this are not loaded whole (they are a size finding anyway). */
export const TEXT_CAP = 4 * 1024 * 1024;
// eslint-disable-next-line no-control-regex
const PRINTABLE_RUN = /[\x20-\x7e\t\r\n]{8,}/g;

export function rgit(repo: string, args: string[], input?: string, encoding?: 'utf8' | 'latin1'): string {
  try {
    return git([...CFG, ...args], { env: { GIT_DIR: repo }, input, encoding }).stdout;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/ENOBUFS|maxBuffer/i.test(msg)) throw new AirlockError('BAD_STATE', 'the change is too large to read for review', 'split the work into smaller sessions');
    throw e;
  }
}

/** C-style unquoting of a path git printed in quotes. */
export function cUnquote(s: string): string {
  if (!s.startsWith('"') || !s.endsWith('"')) return s;
  const body = s.slice(1, -1);
  const bytes: number[] = [];
  const esc: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, '"': 34 };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) {
      const n = body[i + 1]!;
      if (/[0-7]/.test(n)) { bytes.push(parseInt(body.slice(i + 1, i + 4), 8)); i += 3; continue; }
      bytes.push(esc[n] ?? n.charCodeAt(0)); i += 1; continue;
    }
    for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

function fileKey(f: parseDiff.File): string {
  const to = f.to && f.to !== '/dev/null' ? f.to : f.from ?? '';
  return cUnquote(to);
}

function lineText(content: string): string {
  return content.slice(1);
}

function texts(f: parseDiff.File): { newText: string; oldText: string } {
  const n: string[] = [];
  const o: string[] = [];
  for (const ch of f.chunks) for (const c of ch.changes) {
    if (c.content.startsWith('\\')) continue; // "\ No newline at end of file"
    if (c.type === 'normal') { n.push(lineText(c.content)); o.push(lineText(c.content)); }
    else if (c.type === 'add') n.push(lineText(c.content));
    else o.push(lineText(c.content));
  }
  return { newText: n.join('\n'), oldText: o.join('\n') };
}

export function loadChange(repo: string, base: string, head: string, commits: string[]): ChangeSet {
  // 1. what changed, with modes and blob ids
  const raw = rgit(repo, ['diff', '--raw', '-z', '--no-renames', '--no-abbrev', '--ignore-submodules=none', base, head]).split('\0');
  const files: ChangedFile[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const meta = raw[i]!;
    if (!meta.startsWith(':')) break;
    const [oldMode, newMode, oldBlob, newBlob, st] = meta.slice(1).split(' ');
    const status = st === 'A' ? 'added' : st === 'D' ? 'deleted' : st === 'T' ? 'typechange' : 'modified';
    files.push({ path: raw[i + 1]!, status, oldMode: oldMode!, newMode: newMode!, oldBlob: oldBlob!, newBlob: newBlob!,
      binary: false, newSize: 0, added: [], deletedCount: 0, newText: null, oldText: null, binaryStrings: null });
  }
  const byPath = new Map(files.map((f) => [f.path, f]));

  // 2. binary or not (git's own heuristic; no attributes can change it, see CFG)
  const num = rgit(repo, ['diff', '--numstat', '-z', '--no-renames', base, head]).split('\0');
  for (const entry of num) {
    const m = /^(-|\d+)\t(-|\d+)\t([\s\S]*)$/.exec(entry);
    if (!m) continue;
    const f = byPath.get(m[3]!);
    if (f && m[1] === '-') f.binary = true;
  }

  // 3. sizes of both versions, one git process
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
  for (const f of files) f.newSize = f.newBlob === ZERO ? 0 : size.get(f.newBlob) ?? 0;

  // 4. the canonical diff: what is hashed, shown and scanned
  const diff = rgit(repo, ['diff', ...DIFF_TEXT, '-U3', base, head]);
  let addedLines = 0;
  let deletedLines = 0;
  for (const pf of parseDiff(diff)) {
    const f = byPath.get(fileKey(pf));
    if (!f) continue;
    const added: AddedLine[] = [];
    for (const ch of pf.chunks) for (const c of ch.changes) {
      if (c.type === 'add') added.push({ line: c.ln, text: lineText(c.content) });
      else if (c.type === 'del') f.deletedCount++;
    }
    f.added = added;
    addedLines += added.length;
    deletedLines += f.deletedCount;
  }

  // 5. whole texts of changed text files (for parsers and manifests): one diff with
  // unlimited context carries both versions of every file in it
  const whole = files.filter((f) => !f.binary && f.newMode !== '160000' && f.oldMode !== '160000'
    && (size.get(f.newBlob) ?? 0) <= TEXT_CAP && (size.get(f.oldBlob) ?? 0) <= TEXT_CAP);
  if (whole.length) {
    const full = rgit(repo, ['diff', ...DIFF_TEXT, '-U2147483647', base, head, '--', ...whole.map((f) => `:(literal)${f.path}`)]);
    for (const pf of parseDiff(full)) {
      const f = byPath.get(fileKey(pf));
      if (!f) continue;
      const t = texts(pf);
      f.newText = f.status === 'deleted' ? null : t.newText;
      f.oldText = f.status === 'added' ? null : t.oldText;
    }
  }
  // 6. binaries: a secret in a blob is as live as one in a text file. One cat-file for all
  // of them, read as latin1 (a character per byte) so each blob is cut out by its size.
  const bins = files.filter((f) => f.binary && f.newBlob !== ZERO && f.newMode !== '160000' && f.newSize <= TEXT_CAP);
  if (bins.length) {
    const out = rgit(repo, ['cat-file', '--batch'], bins.map((f) => f.newBlob).join('\n') + '\n', 'latin1');
    let at = 0;
    for (const f of bins) {
      const nl = out.indexOf('\n', at);
      const [, type, n] = out.slice(at, nl).split(' ');
      if (type !== 'blob') throw new AirlockError('BAD_STATE', `blob ${f.newBlob} of ${f.path} cannot be read for review`, 'the result repository is damaged: propose again');
      const blob = out.slice(nl + 1, nl + 1 + Number(n));
      f.binaryStrings = (blob.match(PRINTABLE_RUN) ?? []).join('\n');
      at = nl + 1 + Number(n) + 1; // content, then a newline
    }
  }
  return { base, head, commits, files, diff, diffSha256: createHash('sha256').update(diff).digest('hex'), addedLines, deletedLines };
}
