import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { scanText } from './engine.ts';
import { readNoFollowBytes } from './files.ts';
import type { AllowEntry, SecretFinding } from './types.ts';

// The verdict on one workspace file, computed without touching the tree (the caller hides
// or rewrites). Pure over (bytes, path, policy), so it runs in a worker thread and its
// result can be cached by blob id. Binary content is reduced to its printable runs before
// the engine sees it: a secret is printable text, and content with no run cannot hold one.

/** Package-manager configs hidden only when they hold a credential. */
export const CREDENTIAL_CONFIGS = new Set([
  '.npmrc',
  '.yarnrc',
  '.yarnrc.yml',
  '.pypirc',
  '.gemrc',
  'pip.conf',
  '.condarc',
  'settings.xml',
  '.cargo-credentials',
  'credentials.toml',
]);
const CREDENTIAL_HINT = /_auth|authtoken|password|passwd|token\s*[=:]|npmauthtoken/i;
/** Printable ASCII runs of 8+ characters, as review reads binaries. */
export const PRINTABLE_RUN = /[\x20-\x7e\t\r\n]{8,}/g;
const CHUNK = 1 << 20;
const BATCH = 4 << 20;
/** Tail of an unfinished run carried into the next chunk, so a secret across a chunk edge is seen whole. */
const OVERLAP = 4096;

export interface JudgeJob {
  /** absolute path as bytes (names need not be UTF-8) */
  abs: Uint8Array;
  /** workspace-relative path for rules and records */
  rel: string;
  mode: 'redact' | 'hide';
  maxBytes: number;
  /** over the size limit, scan printable runs as a stream instead of hiding (secrets.workspace.binaryPaths) */
  streamLarge: boolean;
  allowlist: readonly AllowEntry[];
}

export type FindingSummary = Pick<SecretFinding, 'line' | 'rule' | 'fingerprint'>;

export type Verdict =
  | { v: 'clean'; scanned: number; binary: boolean }
  | { v: 'hide'; reason: string; rule: string; extra: Record<string, unknown> }
  /** a text file with secrets to replace in place; findings carry offsets into its UTF-8 text */
  | { v: 'redact'; findings: SecretFinding[] }
  /** not a regular file any more (replaced since listing): leave it */
  | { v: 'skip' };

const summary = (fs: SecretFinding[]): FindingSummary[] =>
  fs.map((f) => ({ line: f.line, rule: f.rule, fingerprint: f.fingerprint }));

/** Length of the printable text at the end of `s`, at most `max`. */
function printableTail(s: string, max: number): number {
  let n = 0;
  while (n < max && n < s.length) {
    if (!isPrintable(s.charCodeAt(s.length - 1 - n))) break;
    n++;
  }
  return n;
}

const isPrintable = (c: number) => (c >= 0x20 && c <= 0x7e) || c === 9 || c === 10 || c === 13;
/** Byte → 1 when printable (the bytes of PRINTABLE_RUN). */
const PRINTABLE_BYTE = Uint8Array.from({ length: 256 }, (_, c) => (isPrintable(c) ? 1 : 0));
const MIN_RUN = 8;

/** Printable runs of a binary, joined by newlines, read straight from the bytes (no
 * string of the whole file: a megabyte of machine code becomes a few kilobytes). Exactly
 * the maximal runs of 8+ printable bytes, found by looking ahead: when the 8th byte from a
 * run's possible start is not printable, none of those 8 positions starts a run, so most
 * of a binary is skipped 8 bytes at a time. Invariant: the byte before `i` is not printable. */
export function printableRunsOf(buf: Buffer): string {
  const runs: string[] = [];
  const p = PRINTABLE_BYTE;
  const len = buf.length;
  let i = 0;
  while (i + MIN_RUN <= len) {
    if (p[buf[i + MIN_RUN - 1]!] === 0) {
      i += MIN_RUN;
      continue;
    }
    let j = i + MIN_RUN - 2;
    while (j >= i && p[buf[j]!] === 1) j--;
    if (j >= i) {
      i = j + 1;
      continue;
    } // not printable at j: a run can start only after it
    let e = i + MIN_RUN;
    while (e < len && p[buf[e]!] === 1) e++;
    runs.push(buf.toString('latin1', i, e));
    i = e + 1;
  }
  return runs.join('\n');
}

/** The regex form of printableRunsOf: the reference its tests compare against. */
export function printableRuns(latin1: string): string {
  return (latin1.match(PRINTABLE_RUN) ?? []).join('\n');
}

export async function judgeFile(job: JudgeJob): Promise<Verdict> {
  const abs = Buffer.from(job.abs.buffer, job.abs.byteOffset, job.abs.byteLength);
  const read = readNoFollowBytes(abs, job.maxBytes);
  if (read.kind === 'skip') {
    if (read.reason === 'symlink' || read.reason === 'not-a-regular-file') return { v: 'skip' };
    if (read.reason === 'too-large' && job.streamLarge) return judgeStream(abs, job);
    return {
      v: 'hide',
      reason: read.reason,
      rule: read.reason === 'too-large' ? 'secrets.workspace.maxFileKB' : 'secrets.workspace.mode',
      extra: read.size ? { size: read.size } : {},
    };
  }
  const text = read.binary ? printableRunsOf(read.data) : read.data.toString('utf8');
  if (read.binary && !text) return { v: 'clean', scanned: 0, binary: true }; // nothing printable: cannot hold a secret
  let findings: SecretFinding[];
  try {
    findings = await scanText(text, { path: job.rel, allowlist: job.allowlist });
  } catch (err) {
    return {
      v: 'hide',
      reason: 'scan-error',
      rule: 'secrets.workspace.mode',
      extra: { error: err instanceof Error ? err.name : 'error' },
    };
  }
  if (CREDENTIAL_CONFIGS.has(basename(job.rel).toLowerCase()) && (findings.length || CREDENTIAL_HINT.test(text))) {
    return {
      v: 'hide',
      reason: 'credential-config',
      rule: 'secrets.workspace.hide',
      extra: { findings: summary(findings) },
    };
  }
  if (!findings.length) return { v: 'clean', scanned: text.length, binary: read.binary };
  const keyOnly = findings.some((f) => f.rule === 'private-key') && text.trim().startsWith('-----BEGIN');
  if (job.mode === 'hide' || read.binary || keyOnly) {
    const reason = job.mode === 'hide' ? 'secret' : read.binary ? 'binary-with-secret' : 'private-key-file';
    return { v: 'hide', reason, rule: 'secrets.workspace.mode', extra: { findings: summary(findings) } };
  }
  return { v: 'redact', findings };
}

/** A file over the size limit that the policy names for a printable-run check: read in
 * chunks (bounded memory whatever its size); any secret hides it, since it cannot be rewritten. */
async function judgeStream(abs: Buffer, job: JudgeJob): Promise<Verdict> {
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return { v: 'hide', reason: 'unreadable', rule: 'secrets.workspace.mode', extra: {} };
  }
  const buf = Buffer.alloc(CHUNK);
  let carry = '';
  let batch: string[] = [];
  let batchLen = 0;
  let scanned = 0;
  const found: SecretFinding[] = [];
  const flush = async () => {
    if (!batchLen) return;
    const text = batch.join('\n');
    scanned += text.length;
    batch = [];
    batchLen = 0;
    found.push(...(await scanText(text, { path: job.rel, allowlist: job.allowlist })));
  };
  try {
    if (!fstatSync(fd).isFile()) return { v: 'skip' };
    for (let pos = 0; ;) {
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n <= 0) break;
      pos += n;
      const s = carry + buf.toString('latin1', 0, n);
      const runs = s.match(PRINTABLE_RUN) ?? [];
      // printable text touching the chunk's end may continue (even when still shorter
      // than a run): keep its tail for the next round
      carry = s.slice(s.length - printableTail(s, OVERLAP));
      for (const run of runs) {
        batch.push(run);
        batchLen += run.length;
      }
      if (batchLen >= BATCH) await flush();
      if (found.length) break;
    }
    await flush();
  } catch (err) {
    return {
      v: 'hide',
      reason: 'scan-error',
      rule: 'secrets.workspace.mode',
      extra: { error: err instanceof Error ? err.name : 'error' },
    };
  } finally {
    closeSync(fd);
  }
  if (found.length)
    return {
      v: 'hide',
      reason: 'binary-with-secret',
      rule: 'secrets.workspace.mode',
      extra: { findings: summary(found) },
    };
  return { v: 'clean', scanned, binary: true };
}
