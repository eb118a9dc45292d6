import { readFileSync } from 'node:fs';
import { AirlockError, normPackageName } from '../../common/index.ts';
import { compareVersions, type Ecosystem } from './versions.ts';

// The organisation's known-malicious list: OSV records (https://ossf.github.io/osv-schema/)
// kept in local files, read once on the host when the gateway starts. A record names
// affected versions, ranges of events (introduced / fixed / last_affected), or neither
// (every version, as OSV's MAL- records usually do). Unevaluable ranges count as affected.

interface RangeEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}
interface Affected {
  eco: Ecosystem;
  name: string;
  versions: Set<string>;
  ranges: RangeEvent[][];
  all: boolean;
}
export interface MaliciousEntry {
  id: string;
  summary: string;
  file: string;
  affected: Affected;
}

const OSV_ECOSYSTEMS: Record<string, Ecosystem> = { npm: 'npm', pypi: 'pypi' };
const MAX_FILE_BYTES = 256 * 1024 * 1024;

function records(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc;
  if (doc && typeof doc === 'object' && Array.isArray((doc as { vulns?: unknown }).vulns))
    return (doc as { vulns: unknown[] }).vulns;
  return [doc];
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function affectedOf(a: Record<string, unknown>): Affected | null {
  const pkg = (a.package ?? {}) as Record<string, unknown>;
  const eco = OSV_ECOSYSTEMS[str(pkg.ecosystem).toLowerCase()];
  const name = str(pkg.name);
  if (!eco || !name) return null;
  const versions = new Set(
    Array.isArray(a.versions) ? a.versions.filter((v): v is string => typeof v === 'string') : [],
  );
  const ranges: RangeEvent[][] = [];
  let unevaluable = false;
  for (const r of Array.isArray(a.ranges) ? (a.ranges as Record<string, unknown>[]) : []) {
    if (r.type === 'GIT' || !Array.isArray(r.events)) {
      unevaluable = true;
      continue;
    }
    ranges.push(r.events as RangeEvent[]);
  }
  const all =
    (versions.size === 0 && ranges.length === 0) || (unevaluable && ranges.length === 0 && versions.size === 0);
  return { eco, name: normPackageName(eco, name), versions, ranges, all };
}

/** Reads OSV files; AirlockError naming the file on any problem (the session does not start). */
export function loadMaliciousLists(files: string[]): MaliciousEntry[] {
  const out: MaliciousEntry[] = [];
  for (const file of files) {
    let doc: unknown;
    try {
      const text = readFileSync(file, 'utf8');
      if (text.length > MAX_FILE_BYTES) throw new Error('larger than 256 MiB');
      doc = JSON.parse(text);
    } catch (e) {
      throw new AirlockError(
        'POLICY_INVALID',
        `egress.packages.malicious: cannot read ${file}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
        'the file must exist, be readable by Airlock and hold OSV JSON (one record, an array of records, or {"vulns": [...]})',
      );
    }
    for (const [i, r] of records(doc).entries()) {
      if (!r || typeof r !== 'object' || !Array.isArray((r as { affected?: unknown }).affected)) {
        throw new AirlockError(
          'POLICY_INVALID',
          `egress.packages.malicious: ${file}: record ${i} is not an OSV record (no "affected" list)`,
          'see https://ossf.github.io/osv-schema/',
        );
      }
      const rec = r as Record<string, unknown>;
      if (rec.withdrawn) continue;
      for (const a of rec.affected as Record<string, unknown>[]) {
        const affected = affectedOf(a ?? {});
        if (affected)
          out.push({ id: str(rec.id) || `${file}#${i}`, summary: str(rec.summary).slice(0, 200), file, affected });
      }
    }
  }
  return out;
}

function inEvents(eco: Ecosystem, version: string, events: RangeEvent[]): boolean {
  let affected = false;
  for (const e of events) {
    const cmp = (x: string) => compareVersions(eco, version, x);
    if (e.introduced !== undefined) {
      if (e.introduced === '0') {
        affected = true;
        continue;
      }
      const c = cmp(e.introduced);
      if (c === null) return true; // cannot order: fail closed
      if (c >= 0) affected = true;
    } else if (e.fixed !== undefined || e.limit !== undefined) {
      const c = cmp((e.fixed ?? e.limit)!);
      if (c === null) return true;
      if (c >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      const c = cmp(e.last_affected);
      if (c === null) return true;
      if (c > 0) affected = false;
    }
  }
  return affected;
}

/** The entry listing this exact version (or all versions) of the package, if any. */
export function maliciousMatch(
  list: MaliciousEntry[],
  eco: Ecosystem,
  name: string,
  version: string | null,
): MaliciousEntry | null {
  const n = normPackageName(eco, name);
  for (const m of list) {
    const a = m.affected;
    if (a.eco !== eco || a.name !== n) continue;
    if (a.all) return m;
    if (version === null) continue;
    if (a.versions.has(version) || a.ranges.some((ev) => inEvents(eco, version, ev))) return m;
  }
  return null;
}
