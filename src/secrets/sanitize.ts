import { closeSync, constants, fsyncSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { Minimatch, type MinimatchOptions } from 'minimatch';
import type { SecretsPolicy } from '../policy/index.ts';
import { joinBytes, walkBytes, type AuditEventInput } from '../common/index.ts';
import { applyRedactions } from './engine.ts';
import { readNoFollow } from './files.ts';
import type { JudgeJob, Verdict } from './judge.ts';
import { inlinePool, workerPool, type JudgePool } from './pool.ts';
import { openScanCache, type ScanCache } from './scan-cache.ts';
import type { SecretFinding } from './types.ts';

// Workspace sanitization, run on a plain directory before the agent starts. Key files and
// credential stores (hide globs) are removed; other files with secrets are rewritten with
// each secret replaced by a marker (or removed, in hide mode). Anything that cannot be
// checked (too large, unreadable, a scan error, a binary with a secret) is removed: fail
// closed. Each action is recorded with file, line, rule and fingerprint, never the value.
// Files over the size limit that the policy names in `binaryPaths` are checked by their
// printable runs instead of hidden. Verdicts are cached by blob id when the caller knows it.

/** Template files that document variable names; scanned and redacted, not hidden. */
const TEMPLATE = /^\.env\.(?:example|sample|template|dist|defaults)$|^example\.env$/i;
/** Above this many bytes to scan, worker threads pay for their start-up (each loads the engine). */
const WORKER_THRESHOLD_BYTES = 32 << 20;
/** Files handed to the pool at once: enough to keep the workers fed, few enough to bound
 * the file contents held in memory (inline, each one is read whole). */
const CONCURRENCY = { inline: 1, workers: 2 };

/** path.matchesGlob's own minimatch options (Node 24, POSIX), so a compiled glob decides
 * exactly as it did; compiled once per run instead of once per file and glob. */
const GLOB_OPTIONS: MinimatchOptions = {
  windowsPathsNoEscape: true,
  nonegate: true,
  nocomment: true,
  optimizationLevel: 2,
  platform: 'linux',
  nocaseMagicOnly: true,
};

export interface PathGlob {
  glob: string;
  test(rel: string): boolean;
}

/** A policy glob, case-insensitive: with a `/` against the relative path (anywhere in the
 * tree), otherwise against the basename (a dotfile also without its dot). */
export function compileGlob(glob: string): PathGlob {
  const g = glob.toLowerCase();
  if (g.includes('/')) {
    const here = new Minimatch(g, GLOB_OPTIONS);
    const anywhere = new Minimatch(`**/${g}`, GLOB_OPTIONS);
    return {
      glob,
      test: (rel) => {
        const r = rel.toLowerCase();
        return here.match(r) || anywhere.match(r);
      },
    };
  }
  const m = new Minimatch(g, GLOB_OPTIONS);
  return {
    glob,
    test: (rel) => {
      const name = basename(rel).toLowerCase();
      return m.match(name) || (name.startsWith('.') && m.match(name.slice(1)));
    },
  };
}

export function hideGlobFor(rel: string, globs: readonly PathGlob[]): string | undefined {
  if (TEMPLATE.test(basename(rel))) return undefined;
  return globs.find((g) => g.test(rel))?.glob;
}

function parentOf(path: Buffer): Buffer {
  const i = path.lastIndexOf(0x2f);
  return i <= 0 ? Buffer.from('/') : path.subarray(0, i);
}

/** Writes next to the target and renames over it: the rename replaces a directory entry,
 * so even a symlink planted at the path is replaced, never written through. */
function atomicWrite(path: Buffer, text: string, mode: number): void {
  const tmp = joinBytes(parentOf(path), `.airlock-redact-${randomBytes(6).toString('hex')}`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode & 0o777,
  );
  try {
    const buf = Buffer.from(text, 'utf8');
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

type RecordFn = (e: AuditEventInput) => void;

/** One entry to look at: a regular file or a symlink, with its blob id when it came from git. */
export interface SanitizeEntry {
  abs: Buffer;
  rel: string;
  kind: 'file' | 'symlink';
  blob?: string;
  key?: string;
  /** blob size, when known before reading */ size?: number;
}

/** A file removed from the agent's view, and the rule that removed it. */
export interface HiddenFile {
  file: string;
  reason: string;
  rule: string;
  size?: number;
  /** exact path bytes (latin1) */ key?: string;
}

export interface SanitizeResult {
  hidden: HiddenFile[];
  redacted: SecretFinding[];
  scanned: number;
  cached: number;
}

export interface SanitizeOptions {
  /** verdict cache directory (blob ids must be given on the entries) */
  cacheDir?: string;
  /** force worker threads on (true) or off (false); by default they start for large scans */
  workers?: boolean;
  /** The entries are not on disk yet: writes the given ones. Called in batches, the next
   * batch written while the last is judged; entries hidden unread (globs, cached hidden
   * verdicts, sizes over the limit) are never written. */
  materialize?: (batch: SanitizeEntry[]) => Promise<void>;
}

/** Files written and judged per batch: enough to keep git and the workers busy, small
 * enough that judging starts soon after the first write. */
const BATCH = { files: 512, bytes: 48 << 20 };

function batches(entries: SanitizeEntry[]): SanitizeEntry[][] {
  const out: SanitizeEntry[][] = [];
  let cur: SanitizeEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    cur.push(e);
    bytes += e.size ?? 0;
    if (cur.length >= BATCH.files || bytes >= BATCH.bytes) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Writes batch k + 1 while batch k is judged; `rest` (links, cached clean files) last. */
async function judgeAsWritten(
  toJudge: SanitizeEntry[],
  rest: SanitizeEntry[],
  materialize: (b: SanitizeEntry[]) => Promise<void>,
  judge: (b: SanitizeEntry[]) => Promise<void>,
): Promise<void> {
  const groups = batches(toJudge).map((b) => ({ b, judge: true }));
  if (rest.length) groups.push({ b: rest, judge: false });
  const start = (b: SanitizeEntry[]) => {
    const w = materialize(b);
    w.catch(() => undefined);
    return w;
  }; // awaited below
  let writing = groups.length ? start(groups[0]!.b) : Promise.resolve();
  try {
    for (let k = 0; k < groups.length; k++) {
      await writing;
      if (k + 1 < groups.length) writing = start(groups[k + 1]!.b);
      if (groups[k]!.judge) await judge(groups[k]!.b);
    }
  } finally {
    await writing.catch(() => undefined); // never leave git writing into a layer being removed
  }
}

async function mapLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const lane = async () => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function sizeOf(e: SanitizeEntry): number {
  if (e.size !== undefined) return e.size;
  try {
    return lstatSync(e.abs).size;
  } catch {
    return 0;
  } // gone: judged as such
}

function choosePool(entries: SanitizeEntry[], opts: SanitizeOptions): { pool: JudgePool; lanes: number } {
  let use = opts.workers;
  if (use === undefined) {
    let bytes = 0;
    for (const e of entries) {
      bytes += sizeOf(e);
      if (bytes > WORKER_THRESHOLD_BYTES) break;
    }
    use = bytes > WORKER_THRESHOLD_BYTES;
  }
  if (!use) return { pool: inlinePool(), lanes: CONCURRENCY.inline };
  const size = Math.max(1, Math.min(4, availableParallelism()));
  return { pool: workerPool(size), lanes: size * CONCURRENCY.workers };
}

/** Sanitizes the given entries of `dir` in place. Records one event per action and returns what it did. */
export async function sanitizeEntries(
  entries: SanitizeEntry[],
  policy: SecretsPolicy,
  record: (e: AuditEventInput, entry: SanitizeEntry) => void,
  opts: SanitizeOptions = {},
): Promise<SanitizeResult> {
  const ws = policy.workspace;
  const res: SanitizeResult = { hidden: [], redacted: [], scanned: 0, cached: 0 };
  const actions = new Map<SanitizeEntry, Verdict | { v: 'glob'; glob: string }>();
  const toJudge: SanitizeEntry[] = [];
  /** kept without being judged: links (never read through), files with a clean cached verdict */
  const keep: SanitizeEntry[] = [];
  const cache: ScanCache | null = opts.cacheDir ? openScanCache(opts.cacheDir, scanVariant(policy)) : null;
  const hide = ws.hide.map(compileGlob);
  const binaryPaths = ws.binaryPaths.map(compileGlob);
  const maxBytes = ws.maxFileKB * 1024;
  const streamLarge = (e: SanitizeEntry) => binaryPaths.some((g) => g.test(e.rel));
  for (const entry of entries) {
    const glob = hideGlobFor(entry.rel, hide);
    if (glob) {
      actions.set(entry, { v: 'glob', glob });
      continue;
    }
    if (entry.kind === 'symlink') {
      keep.push(entry);
      continue;
    }
    const hit = entry.blob ? cache?.get(entry.blob, entry.rel) : undefined;
    if (hit) {
      actions.set(entry, hit);
      res.cached++;
      if (hit.v === 'clean') keep.push(entry);
      continue;
    }
    if (entry.size !== undefined && entry.size > maxBytes && !streamLarge(entry)) {
      // hidden whatever it holds: never read (nor written)
      const v: Verdict = {
        v: 'hide',
        reason: 'too-large',
        rule: 'secrets.workspace.maxFileKB',
        extra: { size: entry.size },
      };
      actions.set(entry, v);
      if (entry.blob) cache?.put(entry.blob, entry.rel, v);
      continue;
    }
    toJudge.push(entry);
  }
  const { pool, lanes } = choosePool(toJudge, opts);
  const judge = (list: SanitizeEntry[]) =>
    mapLimited(list, lanes, async (e) => {
      const job: JudgeJob = {
        abs: e.abs,
        rel: e.rel,
        mode: ws.mode === 'hide' ? 'hide' : 'redact',
        maxBytes,
        streamLarge: streamLarge(e),
        allowlist: ws.allowlist,
      };
      const v = await pool.judge(job);
      if (v.v === 'clean' || v.v === 'redact') res.scanned++;
      if (e.blob) cache?.put(e.blob, e.rel, v);
      actions.set(e, v);
    });
  try {
    if (opts.materialize) await judgeAsWritten(toJudge, keep, opts.materialize, judge);
    else await judge(toJudge);
  } finally {
    await pool.close();
    cache?.flush();
  }
  for (const e of entries) {
    const a = actions.get(e);
    if (a) apply(e, a, (ev) => record(ev, e), res);
  }
  return res;
}

function apply(
  entry: SanitizeEntry,
  verdict: Verdict | { v: 'glob'; glob: string },
  record: RecordFn,
  res: SanitizeResult,
): void {
  const hide = (reason: string, rule: string, extra: Record<string, unknown>) => {
    try {
      unlinkSync(entry.abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } // the entry itself, never a link's target
    res.hidden.push({
      file: entry.rel,
      reason,
      rule,
      ...(typeof extra.size === 'number' ? { size: extra.size } : {}),
      ...(entry.key !== undefined ? { key: entry.key } : {}),
    });
    record({
      type: 'secrets.hidden',
      severity: reason === 'glob' ? 'info' : 'medium',
      decision: 'deny',
      rule,
      data: { file: entry.rel, reason, ...extra },
    });
  };
  if (verdict.v === 'glob')
    return hide('glob', 'secrets.workspace.hide', {
      glob: verdict.glob,
      ...(entry.kind === 'symlink' ? { symlink: true } : {}),
    });
  if (verdict.v === 'hide') return hide(verdict.reason, verdict.rule, verdict.extra);
  if (verdict.v !== 'redact') return;
  const r = readNoFollow(entry.abs, Number.MAX_SAFE_INTEGER);
  if (r.kind !== 'text') return hide('unreadable', 'secrets.workspace.mode', {});
  atomicWrite(entry.abs, applyRedactions(r.text, verdict.findings), r.mode);
  for (const f of verdict.findings) {
    res.redacted.push({ ...f, file: entry.rel });
    record({
      type: 'secrets.redacted',
      severity: f.severity === 'medium' ? 'low' : 'medium',
      decision: null,
      rule: 'secrets.workspace.mode',
      data: { file: entry.rel, line: f.line, column: f.column, rule: f.rule, fingerprint: f.fingerprint },
    });
  }
}

/** The part of the secrets policy a verdict depends on (cache namespace). */
export function scanVariant(policy: SecretsPolicy): string {
  const ws = policy.workspace;
  return createHash('sha256')
    .update(JSON.stringify([ws.mode, ws.maxFileKB, [...ws.binaryPaths].sort(), ws.allowlist]))
    .digest('hex')
    .slice(0, 16);
}

/** Sanitizes a plain directory (all of it; `.git` only for its config's remote URLs). */
export async function sanitizeTree(
  dir: string,
  policy: SecretsPolicy,
  record: RecordFn,
  opts: SanitizeOptions = {},
): Promise<{ hidden: string[]; redacted: SecretFinding[] }> {
  const ws = policy.workspace;
  if (ws.mode === 'off') {
    record({
      type: 'secrets.sanitize',
      severity: 'low',
      rule: 'secrets.workspace.mode',
      data: { mode: 'off', files: 0, hidden: 0, redacted: 0 },
    });
    return { hidden: [], redacted: [] };
  }
  const entries: SanitizeEntry[] = [];
  const gitConfig = joinBytes(dir, '.git/config');
  try {
    if (lstatSync(gitConfig).isFile()) entries.push({ abs: gitConfig, rel: '.git/config', kind: 'file' });
  } catch {
    /* no .git/config */
  }
  for (const e of walkBytes(dir, { skip: (rel) => rel.toString('latin1') === '.git' })) {
    if (e.kind === 'file' || e.kind === 'symlink')
      entries.push({ abs: e.abs, rel: e.rel.toString('utf8'), kind: e.kind });
  }
  const r = await sanitizeEntries(entries, policy, (ev) => record(ev), opts);
  recordSummary(record, ws.mode, r.scanned, r.hidden, r.redacted.length);
  return { hidden: r.hidden.map((h) => h.file), redacted: r.redacted };
}

/** The closing summary: counts, and the hidden files by reason with how to let them in. */
export function recordSummary(
  record: RecordFn,
  mode: string,
  files: number,
  hidden: readonly HiddenFile[],
  redacted: number,
): void {
  const tooLarge = hidden.filter((h) => h.reason === 'too-large').map((h) => h.file);
  record({
    type: 'secrets.sanitize',
    severity: hidden.length ? 'low' : 'info',
    rule: 'secrets.workspace.mode',
    data: {
      mode,
      files,
      hidden: hidden.length,
      redacted,
      hiddenFiles: hidden.slice(0, 200).map((h) => ({ file: h.file, reason: h.reason, rule: h.rule })),
      ...(tooLarge.length
        ? {
            hint: 'files over secrets.workspace.maxFileKB are hidden; raise it, or name them in secrets.workspace.binaryPaths to check their printable text instead',
          }
        : {}),
    },
  });
}

/** What a snapshot layer's sanitization did; kept with the cached layer. `eventKeys[i]`
 * is the exact path (latin1 of its bytes) `events[i]` is about, '' for the summary. */
export interface SnapshotReport {
  events: AuditEventInput[];
  eventKeys: string[];
  hidden: HiddenFile[];
  redacted: number;
  /** paths hidden or rewritten (keys) */
  touched: string[];
  scanned: number;
  cached: number;
}

interface SnapshotFile {
  abs: Buffer;
  rel: string;
  key: string;
  mode: string;
  blob: string;
  size?: number;
}

/** Sanitizes a snapshot layer: the given files, plus what the previous layer's report says
 * about the paths that did not change (their sanitized files were carried over as they are). */
export async function sanitizeSnapshot(
  input: {
    files: SnapshotFile[];
    previous: { report: unknown; changed: ReadonlySet<string> } | null;
    /** the files are not in the layer yet: writes the given paths (keys) */
    write?: (keys: string[]) => Promise<void>;
  },
  policy: SecretsPolicy,
  opts: SanitizeOptions = {},
): Promise<{ changed: boolean; report: SnapshotReport; touched: string[] }> {
  const report: SnapshotReport = {
    events: [],
    eventKeys: [],
    hidden: [],
    redacted: 0,
    touched: [],
    scanned: 0,
    cached: 0,
  };
  const prev = input.previous?.report as SnapshotReport | undefined;
  const touched = new Set<string>();
  if (prev && input.previous) {
    const changed = input.previous.changed;
    prev.events.forEach((ev, i) => {
      const key = prev.eventKeys[i] ?? '';
      if (!key || changed.has(key)) return;
      report.events.push(ev);
      report.eventKeys.push(key);
    });
    report.hidden.push(...prev.hidden.filter((h) => !changed.has(h.key ?? '')));
    for (const k of prev.touched) if (!changed.has(k)) touched.add(k);
  }
  const entries: SanitizeEntry[] = input.files
    .filter((f) => f.mode !== '160000')
    .map((f) => ({
      abs: f.abs,
      rel: f.rel,
      key: f.key,
      blob: f.blob,
      kind: f.mode === '120000' ? 'symlink' : 'file',
      ...(f.size !== undefined ? { size: f.size } : {}),
    }));
  const write = input.write;
  const r = await sanitizeEntries(
    entries,
    policy,
    (ev, e) => {
      report.events.push(ev);
      report.eventKeys.push(e.key ?? '');
      if (ev.type === 'secrets.hidden' || ev.type === 'secrets.redacted') touched.add(e.key ?? '');
    },
    write ? { ...opts, materialize: (batch) => write(batch.map((e) => e.key!)) } : opts,
  );
  for (const h of r.hidden) report.hidden.push(h);
  report.touched = [...touched].filter(Boolean).sort();
  report.redacted = report.events.filter((e) => e.type === 'secrets.redacted').length;
  report.scanned = r.scanned;
  report.cached = r.cached;
  recordSummary(
    (ev) => {
      report.events.push(ev);
      report.eventKeys.push('');
    },
    policy.workspace.mode,
    r.scanned,
    report.hidden,
    report.redacted,
  );
  return { changed: report.touched.length > 0, report, touched: report.touched };
}
