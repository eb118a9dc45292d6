import semver from 'semver';
import * as pep440 from '@renovatebot/pep440';

// Version grammar per ecosystem: npm is semver (the `semver` package npm itself uses),
// PyPI is PEP 440 (@renovatebot/pep440). Unparseable input is reported as such so callers
// can fail closed (a deny rule matches it, an allow rule does not).

export type Ecosystem = 'npm' | 'pypi';

export function validVersion(eco: Ecosystem, v: string): boolean {
  return eco === 'npm' ? semver.valid(v, { loose: false }) !== null : pep440.valid(v) !== null;
}

/** true / false, or null when the version or the range cannot be parsed. */
export function inRange(eco: Ecosystem, version: string, range: string): boolean | null {
  if (!validVersion(eco, version)) return null;
  if (eco === 'npm') {
    if (semver.validRange(range) === null) return null;
    return semver.satisfies(version, range, { includePrerelease: true });
  }
  if (!pep440.validRange(range)) return null;
  return pep440.satisfies(version, range, { prereleases: true });
}

/** Ordering for OSV range events; null when either side does not parse. */
export function compareVersions(eco: Ecosystem, a: string, b: string): number | null {
  if (eco === 'npm') {
    if (!semver.valid(a) || !semver.valid(b)) return null;
    return semver.compare(a, b);
  }
  if (!pep440.valid(a) || !pep440.valid(b)) return null;
  return pep440.compare(a, b);
}

/** The highest version of `versions` that is not a pre-release (else the highest one), for dist-tags.latest. */
export function bestLatest(versions: string[]): string | null {
  const valid = versions.filter((v) => semver.valid(v));
  const stable = valid.filter((v) => !semver.prerelease(v));
  const pick = (xs: string[]) => (xs.length ? xs.sort(semver.rcompare)[0]! : null);
  return pick(stable) ?? pick(valid);
}
