import { ownRules, type RawHit } from './rules.ts';
import { secretlintHits } from './secretlint.ts';
import { isAllowed } from './allowlist.ts';
import { fingerprint, type AllowEntry, type ScanOptions, type SecretFinding, type SecretSeverity } from './types.ts';

// The one detection engine: secretlint's recommended preset plus our rules, known example
// values allowlisted, overlapping detections merged into one finding whose span covers
// everything any rule flagged (so redaction never leaves a piece of a secret behind).

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
      if (starts[mid]! <= off) lo = mid; else hi = mid - 1;
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
 * finding per cluster of overlapping spans. */
export function mergeHits(text: string, raw: RawHit[], allowlist: readonly AllowEntry[] | undefined, path?: string): SecretFinding[] {
  const allowed: RawHit[] = [];
  const kept: RawHit[] = [];
  for (const h of raw) (isAllowed(text.slice(h.start, h.end), allowlist) ? allowed : kept).push(h);
  const live = allowed.length
    ? kept.filter((h) => !allowed.some((a) => a.start >= h.start && a.end <= h.end))
    : kept;
  if (!live.length) return [];
  live.sort((a, b) => a.start - b.start || b.end - a.end);
  const at = locator(text);
  const out: SecretFinding[] = [];
  let i = 0;
  while (i < live.length) {
    let primary = live[i]!;
    let start = primary.start;
    let end = primary.end;
    let sev = primary.severity;
    let j = i + 1;
    while (j < live.length && live[j]!.start < end) {
      const h = live[j]!;
      end = Math.max(end, h.end);
      if (SEV_RANK[h.severity] > SEV_RANK[sev]) sev = h.severity;
      primary = better(primary, h);
      j++;
    }
    start = Math.min(start, primary.start);
    const s = at(start);
    const e = at(end);
    out.push({
      rule: primary.rule,
      ...(path !== undefined ? { file: path } : {}),
      line: s.line, column: s.column, endLine: e.line, endColumn: e.column,
      fingerprint: fingerprint(text.slice(primary.start, primary.end)),
      message: primary.message,
      severity: sev,
      start, end,
    });
    i = j;
  }
  return out;
}

/** Finds secrets in text. Throws if a rule fails: callers must treat that as "cannot tell"
 * and fail closed (hide the file, block the request). */
export async function scanText(text: string, opts: ScanOptions = {}): Promise<SecretFinding[]> {
  const raw = ownRules(text);
  raw.push(...await secretlintHits(text, opts.path));
  return mergeHits(text, raw, opts.allowlist, opts.path);
}

export function defaultMarker(f: SecretFinding): string {
  return `«REDACTED:${f.rule}:${f.fingerprint.slice(0, 8)}»`;
}

/** Replaces every finding's span with a marker. Line breaks inside a span (a PEM block) are
 * kept after the marker, so every other line keeps its number. */
export function applyRedactions(text: string, findings: readonly SecretFinding[], marker: (f: SecretFinding) => string = defaultMarker): string {
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
