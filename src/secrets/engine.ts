import { ownRules, OWN_ANCHORS } from './rules.ts';
import { secretlintHits, SECRETLINT_ANCHORS } from './secretlint.ts';
import { allowedReason } from './allowlist.ts';
import { compilePrefilter } from './prefilter.ts';
import { entropy, printable } from './values.ts';
import type { RawHit, Suppressed } from './hits.ts';
import { redactTextSync } from './sync.ts';
import {
  fingerprint,
  type AllowEntry,
  type ScanOptions,
  type ScanResult,
  type SecretFinding,
  type SecretSeverity,
  type SecretSuppression,
} from './types.ts';

// The one detection engine: secretlint's recommended preset plus our rules, known example
// values allowlisted, overlapping detections merged into one finding whose span covers
// everything any rule flagged (so redaction never leaves a piece of a secret behind).
// One prefilter pass finds every rule's anchor literals first; rules (ours and secretlint's)
// run only when their anchors occur.

const PREFILTER = compilePrefilter([...OWN_ANCHORS, ...SECRETLINT_ANCHORS]);

const SEV_RANK: Record<SecretSeverity, number> = { medium: 0, high: 1, critical: 2 };

/** Offsets → 1-based line/column, with one pass to find line starts. */
function locator(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (off) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: off - starts[lo]! + 1 };
  };
}

function better(a: RawHit, b: RawHit): RawHit {
  if (a.priority !== b.priority) return a.priority > b.priority ? a : b;
  const aOwn = !a.rule.startsWith('secretlint/');
  const bOwn = !b.rule.startsWith('secretlint/');
  if (aOwn !== bOwn) return aOwn ? a : b;
  return a.end - a.start <= b.end - b.start ? a : b;
}

/** Merges raw hits: drop allowlisted values (and wider hits containing one), then one
 * finding per cluster of overlapping spans. Dropped hits go to `suppressed` when given. */
export function mergeHits(
  text: string,
  raw: RawHit[],
  allowlist: readonly AllowEntry[] | undefined,
  path?: string,
  suppressed?: Suppressed[],
): SecretFinding[] {
  const allowed: RawHit[] = [];
  const kept: RawHit[] = [];
  for (const h of raw) {
    const why = allowedReason(text.slice(h.start, h.end), allowlist);
    if (why) {
      allowed.push(h);
      suppressed?.push({ rule: h.rule, start: h.start, end: h.end, reason: why });
    } else kept.push(h);
  }
  const live = allowed.length ? kept.filter((h) => !allowed.some((a) => a.start >= h.start && a.end <= h.end)) : kept;
  if (!live.length) return [];
  live.sort((a, b) => a.start - b.start || b.end - a.end);
  const at = locator(text);
  const out: SecretFinding[] = [];
  let clusterStart = 0;
  while (clusterStart < live.length) {
    let primary = live[clusterStart]!;
    let start = primary.start;
    let end = primary.end;
    let sev = primary.severity;
    const rules = new Set([primary.rule]);
    let clusterEnd = clusterStart + 1;
    while (clusterEnd < live.length && live[clusterEnd]!.start < end) {
      const h = live[clusterEnd]!;
      end = Math.max(end, h.end);
      if (SEV_RANK[h.severity] > SEV_RANK[sev]) sev = h.severity;
      primary = better(primary, h);
      rules.add(h.rule);
      clusterEnd++;
    }
    start = Math.min(start, primary.start);
    const s = at(start);
    const e = at(end);
    const value = text.slice(primary.start, primary.end);
    rules.delete(primary.rule);
    out.push({
      rule: primary.rule,
      ...(path !== undefined ? { file: path } : {}),
      line: s.line,
      column: s.column,
      endLine: e.line,
      endColumn: e.column,
      fingerprint: fingerprint(value),
      message: primary.message,
      severity: sev,
      start,
      end,
      why: printable(primary.why),
      entropy: Math.round(entropy(value) * 100) / 100,
      ...(rules.size ? { alsoMatched: [...rules] } : {}),
    });
    clusterStart = clusterEnd;
  }
  return out;
}

async function scan(text: string, opts: ScanOptions, suppressed?: Suppressed[]): Promise<SecretFinding[]> {
  const anchors = PREFILTER.scan(text);
  const raw = ownRules(text, { anchors, ...(suppressed ? { suppressed } : {}) });
  if (anchors.at.size || opts.path?.endsWith('.p12'))
    raw.push(...(await secretlintHits(text, opts.path, { anchors, ...(suppressed ? { suppressed } : {}) })));
  if (!raw.length) return [];
  return mergeHits(text, raw, opts.allowlist, opts.path, suppressed);
}

/** Finds secrets in text. Throws if a rule fails: callers must treat that as "cannot tell"
 * and fail closed (hide the file, block the request). */
export async function scanText(text: string, opts: ScanOptions = {}): Promise<SecretFinding[]> {
  return scan(text, opts);
}

/** scanText plus every candidate a rule matched and rejected, with the reason (placeholder,
 * reference, test dummy, low entropy, allowlisted…): what `secrets scan --explain` shows.
 * A rejected candidate inside a reported finding is not listed. */
export async function scanTextExplained(text: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const sup: Suppressed[] = [];
  const findings = await scan(text, opts, sup);
  const at = locator(text);
  const seen = new Set<string>();
  const suppressed: SecretSuppression[] = [];
  for (const x of sup.sort((a, b) => a.start - b.start)) {
    if (findings.some((f) => x.start < f.end && x.end > f.start)) continue;
    const key = `${x.start}:${x.end}:${x.reason}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const p = at(x.start);
    suppressed.push({
      rule: x.rule,
      ...(opts.path !== undefined ? { file: opts.path } : {}),
      line: p.line,
      column: p.column,
      fingerprint: fingerprint(text.slice(x.start, x.end)),
      reason: printable(x.reason),
    });
  }
  return { findings, suppressed };
}

export function defaultMarker(f: SecretFinding): string {
  return `«REDACTED:${f.rule}:${f.fingerprint.slice(0, 8)}»`;
}

/** Replaces every finding's span with a marker. Line breaks inside a span (a PEM block) are
 * kept after the marker, so every other line keeps its number. */
export function applyRedactions(
  text: string,
  findings: readonly SecretFinding[],
  marker: (f: SecretFinding) => string = defaultMarker,
): string {
  const sorted = [...findings].sort((a, b) => a.start - b.start);
  let out = '';
  let pos = 0;
  for (const f of sorted) {
    if (f.start < pos) continue; // already covered (findings never overlap after merge)
    out += text.slice(pos, f.start);
    const breaks = text.slice(f.start, f.end).match(/\r?\n/g) ?? [];
    out += marker(f) + breaks.join('');
    pos = f.end;
  }
  return out + text.slice(pos);
}

export async function redactText(
  text: string,
  opts: ScanOptions & { marker?: (f: SecretFinding) => string } = {},
): Promise<{ text: string; findings: SecretFinding[] }> {
  const findings = await scanText(text, opts);
  return { text: findings.length ? applyRedactions(text, findings, opts.marker) : text, findings };
}

/**
 * Builds the detection automata now rather than on the first scan (the audit redactor's,
 * ~7 ms, and the engine's, ~4 ms): for a process that has time before its work, a warm spare.
 */
export async function buildScanners(): Promise<void> {
  const sample = 'a sample text long enough to be scanned';
  redactTextSync(sample);
  await scanText(sample);
}
