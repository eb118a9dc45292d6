import semver from 'semver';
import type { PackageRules, Verdict } from './policy.ts';
import { bestLatest } from './versions.ts';

// The npm registry protocol as the firewall sees it: packuments at /<name> (full JSON, or
// the abbreviated "corgi" form for Accept: application/vnd.npm.install-v1+json), one
// version's manifest at /<name>/<version|tag>, tarballs at /<name>/-/<base>-<version>.tgz
// (scoped: /@scope/name/-/name-1.0.0.tgz). Paths under /-/ are registry APIs (search,
// audit), not packages.

export type NpmRequest =
  | { kind: 'packument'; name: string }
  | { kind: 'manifest'; name: string; spec: string }
  | { kind: 'tarball'; name: string; version: string }
  | { kind: 'api' }
  | { kind: 'bad'; reason: string };

export const CORGI = 'application/vnd.npm.install-v1+json';
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9._~-][a-z0-9._~-]*$/i;

function decodeSegment(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

export function classifyNpm(pathname: string): NpmRequest {
  if (pathname === '/-' || pathname.startsWith('/-/')) return { kind: 'api' };
  // a scoped name may arrive as /@scope%2fname: split on raw slashes after folding that one
  const raw = pathname
    .replace(/^\/(@[^/]+)%2f/i, '/$1/')
    .split('/')
    .slice(1);
  const segs = raw.map(decodeSegment);
  if (segs.some((s) => s === null || s === '' || s.includes('/')))
    return { kind: 'bad', reason: 'unrecognised registry path' };
  const parts = segs as string[];
  const scoped = parts[0]!.startsWith('@');
  const name = scoped ? `${parts[0]}/${parts[1] ?? ''}` : parts[0]!;
  const rest = parts.slice(scoped ? 2 : 1);
  if (!NAME.test(name) || name.length > 214)
    return { kind: 'bad', reason: `${JSON.stringify(name.slice(0, 100))} is not an npm package name` };
  if (rest.length === 0) return { kind: 'packument', name };
  if (rest[0] === '-' && (rest.length === 2 || (rest.length === 3 && rest[1]!.startsWith('@')))) {
    const file = rest[rest.length - 1]!;
    const base = name.slice(name.indexOf('/') + 1);
    const version =
      file.toLowerCase().startsWith(`${base.toLowerCase()}-`) && file.endsWith('.tgz')
        ? file.slice(base.length + 1, -4)
        : '';
    if (!semver.valid(version))
      return {
        kind: 'bad',
        reason: `tarball ${JSON.stringify(file.slice(0, 100))} does not name a version of ${name}`,
      };
    return { kind: 'tarball', name, version };
  }
  if (rest.length === 1 && rest[0] !== '-') return { kind: 'manifest', name, spec: rest[0]! };
  return { kind: 'bad', reason: 'unrecognised registry path' };
}

// Fields npm's abbreviated metadata keeps per version (registry docs, "package metadata").
const CORGI_VERSION_FIELDS = [
  'name',
  'version',
  'deprecated',
  'dependencies',
  'optionalDependencies',
  'devDependencies',
  'bundleDependencies',
  'bundledDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'acceptDependencies',
  'bin',
  'directories',
  'dist',
  'engines',
  'cpu',
  'os',
  'libc',
  '_hasShrinkwrap',
  'hasInstallScript',
  'funding',
  'license',
];

export interface DeniedVersion {
  version: string;
  rule: string;
  reason: string;
}
export interface Filtered {
  doc: Record<string, unknown>;
  denied: DeniedVersion[];
  kept: number;
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Publish times (ms) by version from a packument's `time`; non-dates are left out. */
export function publishTimes(doc: Record<string, unknown>): Map<string, number> {
  const out = new Map<string, number>();
  const t = doc.time;
  if (!t || typeof t !== 'object') return out;
  for (const [v, s] of Object.entries(t as Record<string, unknown>)) {
    const ms = typeof s === 'string' ? Date.parse(s) : NaN;
    if (Number.isFinite(ms)) out.set(v, ms);
  }
  return out;
}

/**
 * Removes denied versions (and their `time` entries) from a packument, points every
 * dist-tag at an allowed version (latest: the highest allowed stable one) or drops it, and
 * abbreviates it when the client asked for the corgi form. Throws on a malformed document.
 */
export function filterPackument(body: unknown, name: string, rules: PackageRules, corgi: boolean): Filtered {
  const doc = object(body, 'the packument');
  const versions = object(doc.versions ?? {}, 'packument "versions"');
  if (typeof doc.name === 'string' && doc.name.toLowerCase() !== name.toLowerCase())
    throw new Error(`the packument names ${JSON.stringify(doc.name.slice(0, 100))}, not ${name}`);
  const times = publishTimes(doc);
  const denied: DeniedVersion[] = [];
  const kept: Record<string, unknown> = {};
  for (const [v, manifest] of Object.entries(versions)) {
    const d = rules.decideVersion('npm', name, v, rules.minimumAgeHours > 0 ? (times.get(v) ?? null) : undefined);
    if (d.action === 'allow') kept[v] = corgi ? abbreviate(object(manifest, `version ${v}`)) : manifest;
    else denied.push({ version: v, rule: d.rule, reason: d.reason });
  }
  const tags = object(doc['dist-tags'] ?? {}, 'packument "dist-tags"');
  const newTags: Record<string, string> = {};
  for (const [tag, v] of Object.entries(tags)) if (typeof v === 'string' && v in kept) newTags[tag] = v;
  const latest = typeof tags.latest === 'string' && tags.latest in kept ? tags.latest : bestLatest(Object.keys(kept));
  if (latest) newTags.latest = latest;
  else delete newTags.latest;
  const out: Record<string, unknown> = corgi
    ? {
        name: doc.name ?? name,
        modified: doc.modified ?? (doc.time as Record<string, unknown> | undefined)?.modified,
        'dist-tags': newTags,
        versions: kept,
      }
    : { ...doc, 'dist-tags': newTags, versions: kept };
  if (!corgi && doc.time && typeof doc.time === 'object') {
    const time = { ...(doc.time as Record<string, unknown>) };
    for (const d of denied) delete time[d.version];
    out.time = time;
  }
  return { doc: out, denied, kept: Object.keys(kept).length };
}

function abbreviate(m: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of CORGI_VERSION_FIELDS) if (m[k] !== undefined) out[k] = m[k];
  return out;
}

/** A single version manifest (/<name>/<version|tag>): decided by the version it holds. */
export function decideManifest(
  body: unknown,
  name: string,
  rules: PackageRules,
  published: number | null | undefined,
): Verdict {
  const m = object(body, 'the version manifest');
  if (typeof m.version !== 'string') throw new Error('the version manifest has no "version"');
  return rules.decideVersion('npm', name, m.version, published);
}
