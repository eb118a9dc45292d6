import { minimatch } from 'minimatch';
import type { PackagesPolicy, PackageRule } from '../../policy/index.ts';
import { normPackageName, typosquatOf, POPULAR } from '../../common/index.ts';
import { inRange, type Ecosystem } from './versions.ts';
import { maliciousMatch, type MaliciousEntry } from './osv.ts';

// One decision per package version, and a name-level one (every version of the package is
// refused) so metadata for a banned name is refused outright. Order: deny rules, the
// malicious list, typosquats, the allowlist (unlisted: deny), the minimum release age.

export interface Verdict {
  action: 'allow' | 'deny';
  rule: string;
  reason: string;
}

const RULE = 'egress.packages';
const HOUR = 3_600_000;

function ruleId(kind: 'allow' | 'deny', r: PackageRule, i: number): string {
  return r.id ? `${RULE}.${kind}.${r.id}` : `${RULE}.${kind}[${i}]`;
}

function label(eco: Ecosystem, name: string, version?: string | null): string {
  return `${eco} package ${JSON.stringify(name)}${version ? `@${version}` : ''}`;
}

export class PackageRules {
  private readonly p: PackagesPolicy;
  private readonly malicious: MaliciousEntry[];
  private readonly now: () => number;

  constructor(p: PackagesPolicy, malicious: MaliciousEntry[], now: () => number = Date.now) {
    this.p = p;
    this.malicious = malicious;
    this.now = now;
  }

  private nameMatches(eco: Ecosystem, r: PackageRule, name: string): boolean {
    if (r.ecosystem !== eco) return false;
    const pattern = normPackageName(eco, r.name);
    const n = normPackageName(eco, name);
    return /[*?]/.test(pattern)
      ? minimatch(n, pattern, { nocase: true, dot: true, nonegate: true, nocomment: true, noext: true, nobrace: true })
      : n === pattern;
  }

  /** Deny rules match unparseable versions (fail closed); allow rules do not. */
  private versionMatches(eco: Ecosystem, r: PackageRule, version: string | null, kind: 'allow' | 'deny'): boolean {
    if (r.versions === undefined) return true;
    if (version === null) return false; // name-level question: only rules without a range speak to every version
    const hit = inRange(eco, version, r.versions);
    return hit === null ? kind === 'deny' : hit;
  }

  private firstRule(
    kind: 'allow' | 'deny',
    eco: Ecosystem,
    name: string,
    version: string | null,
  ): { rule: PackageRule; id: string } | null {
    const list = kind === 'allow' ? this.p.allow : this.p.deny;
    for (const [i, r] of list.entries()) {
      if (this.nameMatches(eco, r, name) && this.versionMatches(eco, r, version, kind))
        return { rule: r, id: ruleId(kind, r, i) };
    }
    return null;
  }

  /** A refusal that covers every version of the package, or null. */
  decideName(eco: Ecosystem, name: string): Verdict | null {
    const d = this.firstRule('deny', eco, name, null);
    if (d) return deny(d.id, `${label(eco, name)} is denied${d.rule.reason ? `: ${d.rule.reason}` : ''}`);
    const m = maliciousMatch(this.malicious, eco, name, null);
    if (m)
      return deny(
        `${RULE}.malicious`,
        `${label(eco, name)} is on the known-malicious list (${m.id}${m.summary ? `: ${m.summary}` : ''})`,
      );
    if (
      this.p.typosquat.mode === 'deny' &&
      !this.p.typosquat.ignore.some((x) => normPackageName(eco, x) === normPackageName(eco, name))
    ) {
      const t = typosquatOf(eco, name, [...POPULAR[eco], ...this.p.typosquat.popular], 2);
      if (t)
        return deny(
          `${RULE}.typosquat`,
          `${label(eco, name)} looks like the popular package ${JSON.stringify(t.target)} (${t.distance === 0 ? 'confusable characters' : `edit distance ${t.distance}`}): likely typosquat`,
        );
    }
    if (this.p.unlisted === 'deny' && !this.p.allow.some((r) => this.nameMatches(eco, r, name))) {
      return deny(
        `${RULE}.unlisted`,
        `${label(eco, name)} is not on the approved list (egress.packages.allow) and unlisted packages are denied`,
      );
    }
    return null;
  }

  /** One version; `published` is the registry's publish time (ms), null when the registry gives none. */
  decideVersion(eco: Ecosystem, name: string, version: string, published: number | null | undefined): Verdict {
    const whole = this.decideName(eco, name);
    if (whole) return whole;
    const what = label(eco, name, version);
    const d = this.firstRule('deny', eco, name, version);
    if (d)
      return deny(
        d.id,
        `${what} is denied (${d.rule.versions ?? 'every version'})${d.rule.reason ? `: ${d.rule.reason}` : ''}`,
      );
    const m = maliciousMatch(this.malicious, eco, name, version);
    if (m)
      return deny(
        `${RULE}.malicious`,
        `${what} is on the known-malicious list (${m.id}${m.summary ? `: ${m.summary}` : ''})`,
      );
    const a = this.firstRule('allow', eco, name, version);
    if (!a && this.p.unlisted === 'deny')
      return deny(
        `${RULE}.unlisted`,
        `${what} is outside every approved range (egress.packages.allow) and unlisted versions are denied`,
      );
    const minAge = this.p.minimumReleaseAgeHours;
    if (minAge > 0 && published !== undefined) {
      if (published === null || !Number.isFinite(published))
        return deny(
          `${RULE}.minimumReleaseAgeHours`,
          `${what}: its publish time is unknown (the registry's metadata gives none), so its age (minimum ${minAge} h) cannot be checked`,
        );
      const ageH = (this.now() - published) / HOUR;
      if (ageH < minAge)
        return deny(
          `${RULE}.minimumReleaseAgeHours`,
          `${what} was published ${new Date(published).toISOString()} (${ageH.toFixed(1)} h ago), less than the minimum release age of ${minAge} h`,
        );
    }
    return a
      ? { action: 'allow', rule: a.id, reason: `${what} is approved` }
      : { action: 'allow', rule: `${RULE}.default`, reason: `${what} passed the package checks` };
  }

  get minimumAgeHours(): number {
    return this.p.minimumReleaseAgeHours;
  }
}

function deny(rule: string, reason: string): Verdict {
  return { action: 'deny', rule, reason };
}
