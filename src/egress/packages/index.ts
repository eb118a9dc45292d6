import type { IncomingMessage } from 'node:http';
import type { AuditEventInput } from '../../common/index.ts';
import type { PackagesPolicy } from '../../policy/index.ts';
import { hostMatches, hostPatternOf, type HostPattern } from '../rules.ts';
import { PackageRules, type Verdict } from './policy.ts';
import { loadMaliciousLists } from './osv.ts';
import { CORGI, classifyNpm, filterPackument, decideManifest, publishTimes, type DeniedVersion } from './npm.ts';
import {
  UPSTREAM_ACCEPT,
  classifyIndex,
  distOfFilename,
  filterIndex,
  parseIndex,
  prefersJson,
  uploadsOf,
  type Upload,
} from './pypi.ts';
import { readBody, TooLarge, type Upstream } from './upstream.ts';
import type { Ecosystem } from './versions.ts';

// The package firewall: on intercepted npm and PyPI hosts, every package fetch is decided
// by name and version (policy egress.packages). Metadata answers are read whole (bounded),
// parsed and filtered so denied versions disappear; tarballs and distribution files of a
// denied version are refused with 403 before anything goes upstream. Anything that cannot
// be parsed is refused (fail closed). One instance per gateway: its caches are per session.

export { PackageRules, type Verdict } from './policy.ts';
export { loadMaliciousLists } from './osv.ts';
export { upstreamVia, upstreamAt, type Upstream } from './upstream.ts';

export interface PackageRef {
  ecosystem: Ecosystem;
  name: string;
  version?: string;
  kind: string;
  filtered?: { version: string; rule: string }[];
  filteredCount?: number;
}

export interface PackageQuery {
  host: string;
  method: string;
  pathname: string;
  accept: string | undefined;
  /** The same upstream the request goes to. */
  upstream: Upstream;
  /** Another registry host on the same port (a PyPI index for a file host). */
  upstreamAt(host: string): Upstream;
}

/** A replacement response; `pass` relays the upstream answer untouched (non-200s carry no package data). */
export type Answer =
  | { kind: 'deny'; verdict: Verdict }
  | { kind: 'replace'; status: number; headers: Record<string, string | string[]>; body: Buffer }
  | { kind: 'pass' };

export type Admission =
  | { kind: 'pass' }
  | { kind: 'deny'; verdict: Verdict; pkg?: PackageRef }
  | { kind: 'allow'; verdict: Verdict; pkg: PackageRef }
  | {
      kind: 'filter';
      pkg: PackageRef;
      prepare(headers: Record<string, string | string[]>): void;
      respond(ur: IncomingMessage): Promise<Answer>;
    };

const RULE = 'egress.packages';
const CACHE_CAP = 5000;
const DROP_REQUEST = ['if-none-match', 'if-modified-since', 'if-match', 'if-range', 'range'];
const DROP_RESPONSE = new Set([
  'content-length',
  'content-encoding',
  'content-type',
  'etag',
  'last-modified',
  'content-md5',
  'digest',
  'accept-ranges',
  'content-range',
]);

const deny = (rule: string, reason: string): { kind: 'deny'; verdict: Verdict } => ({
  kind: 'deny',
  verdict: { action: 'deny', rule, reason },
});

function boundedSet<K, V>(m: Map<K, V>, k: K, v: V): void {
  if (m.size >= CACHE_CAP) m.clear();
  m.set(k, v);
}

export class PackageFirewall {
  readonly rules: PackageRules;
  private readonly p: PackagesPolicy;
  private readonly npmHosts: HostPattern[];
  private readonly indexHosts: HostPattern[];
  private readonly fileHosts: HostPattern[];
  private readonly record: (e: AuditEventInput) => void;
  private readonly session: string;
  /** npm publish times by package (from packuments seen or looked up this session). */
  private readonly npmTimes = new Map<string, Map<string, number>>();
  /** PyPI files seen in index pages this session: project, version, upload time. */
  private readonly pypiFiles = new Map<string, Upload>();

  /** null when egress.packages.mode is off. Throws AirlockError when a malicious-list file is unusable. */
  static create(
    p: PackagesPolicy,
    record: (e: AuditEventInput) => void,
    session: string,
    now?: () => number,
  ): PackageFirewall | null {
    if (p.mode === 'off') return null;
    const malicious = loadMaliciousLists(p.malicious);
    return new PackageFirewall(p, new PackageRules(p, malicious, now), record, session, malicious.length);
  }

  private readonly maliciousCount: number;

  private constructor(
    p: PackagesPolicy,
    rules: PackageRules,
    record: (e: AuditEventInput) => void,
    session: string,
    maliciousCount: number,
  ) {
    this.p = p;
    this.rules = rules;
    this.record = record;
    this.session = session;
    this.maliciousCount = maliciousCount;
    const hosts = (xs: string[], key: string) => xs.map((h, i) => hostPatternOf(h, `egress.packages.${key}[${i}]`));
    this.npmHosts = hosts(p.npmRegistries, 'npmRegistries');
    this.indexHosts = hosts(p.pypiIndexes, 'pypiIndexes');
    this.fileHosts = hosts(p.pypiFiles, 'pypiFiles');
  }

  /**
   * The verdict these rules give one fetched package (shadow/record mode: what another policy
   * would decide). The release age is left out: it needs the registry's publish time, which
   * only the enforcing firewall reads.
   */
  verdictFor(pkg: { ecosystem: Ecosystem; name: string; version?: string }): Verdict {
    const whole = this.rules.decideName(pkg.ecosystem, pkg.name);
    if (whole) return whole;
    return pkg.version
      ? this.rules.decideVersion(pkg.ecosystem, pkg.name, pkg.version, undefined)
      : {
          action: 'allow',
          rule: `${RULE}.default`,
          reason: `${pkg.ecosystem} package ${JSON.stringify(pkg.name)} passed the package checks`,
        };
  }

  /** Hosts the gateway must intercept for the firewall to see their requests. */
  get intercept(): HostPattern[] {
    return [...this.npmHosts, ...this.indexHosts, ...this.fileHosts];
  }

  /** What the gateway start record says about the firewall. */
  describe(): Record<string, unknown> {
    const p = this.p;
    return {
      mode: p.mode,
      npmRegistries: p.npmRegistries,
      pypiIndexes: p.pypiIndexes,
      pypiFiles: p.pypiFiles,
      denyRules: p.deny.length,
      allowRules: p.allow.length,
      unlisted: p.unlisted,
      minimumReleaseAgeHours: p.minimumReleaseAgeHours,
      typosquat: p.typosquat.mode,
      maliciousFiles: p.malicious,
      maliciousEntries: this.maliciousCount,
    };
  }

  /** Is this host one of the registries the firewall decides? */
  covers(host: string): boolean {
    return this.intercept.some((p) => hostMatches(p, host));
  }

  /** Decides one intercepted request; `pass` for hosts and paths that are not package fetches. */
  async admit(q: PackageQuery): Promise<Admission> {
    const on = (ps: HostPattern[]) => ps.some((p) => hostMatches(p, q.host));
    const read = q.method === 'GET' || q.method === 'HEAD';
    if (on(this.npmHosts)) return this.npm(q, read);
    if (on(this.indexHosts)) {
      const c = classifyIndex(q.pathname);
      if (c.kind === 'index' && q.method === 'HEAD') return { kind: 'pass' };
      if (c.kind === 'index')
        return read
          ? this.pypiIndex(q, c.name)
          : deny(`${RULE}.mode`, 'only reads (GET, HEAD) of packages pass the package firewall');
      if (c.kind === 'bad') return deny(`${RULE}.unrecognized`, c.reason);
      return distOfFilename(lastSegment(q.pathname)) ? this.pypiFile(q, read) : { kind: 'pass' };
    }
    if (on(this.fileHosts)) return this.pypiFile(q, read);
    return { kind: 'pass' };
  }

  private async npm(query: PackageQuery, read: boolean): Promise<Admission> {
    const classified = classifyNpm(query.pathname);
    if (classified.kind === 'api') return { kind: 'pass' };
    if (classified.kind === 'bad')
      return deny(
        `${RULE}.unrecognized`,
        `${classified.reason}; refused (the package firewall decides every package path)`,
      );
    if (!read)
      return deny(
        `${RULE}.mode`,
        `only reads (GET, HEAD) of packages pass the package firewall; ${query.method} ${classified.name} refused (publishing from a sandbox is not allowed)`,
      );
    const pkg: PackageRef = { ecosystem: 'npm', name: classified.name, kind: classified.kind };
    const whole = this.rules.decideName('npm', classified.name);
    if (whole) return { kind: 'deny', verdict: whole, pkg };
    if (classified.kind === 'tarball') {
      pkg.version = classified.version;
      const published = this.ageMatters
        ? await this.npmPublished(query.upstream, classified.name, classified.version)
        : undefined;
      const v = this.rules.decideVersion('npm', classified.name, classified.version, published);
      return v.action === 'deny' ? { kind: 'deny', verdict: v, pkg } : { kind: 'allow', verdict: v, pkg };
    }
    if (query.method === 'HEAD') return { kind: 'pass' }; // no body: nothing to filter
    const corgi = (query.accept ?? '').includes(CORGI);
    return {
      kind: 'filter',
      pkg,
      prepare: (h) => {
        dropConditionals(h);
        // the abbreviated form has no `time`: with a minimum age the full packument is needed
        h.accept = this.ageMatters || !corgi ? 'application/json' : `${CORGI}, application/json;q=0.8`;
        h['accept-encoding'] = 'gzip';
      },
      respond: async (ur) => {
        const doc = await this.readJson(ur);
        if ('kind' in doc) return doc;
        if (classified.kind === 'manifest') {
          const published = this.ageMatters
            ? await this.npmPublished(
                query.upstream,
                classified.name,
                String((doc.value as { version?: unknown })?.version ?? ''),
              )
            : undefined;
          const v = decideManifest(doc.value, classified.name, this.rules, published);
          pkg.version = String((doc.value as { version?: unknown }).version);
          return v.action === 'deny'
            ? { kind: 'deny', verdict: v }
            : replace(ur, 'application/json', JSON.stringify(doc.value));
        }
        const f = filterPackument(doc.value, classified.name, this.rules, corgi);
        boundedSet(this.npmTimes, classified.name.toLowerCase(), publishTimes(doc.value as Record<string, unknown>));
        return this.filtered(pkg, f.denied, f.kept, ur, corgi ? CORGI : 'application/json', JSON.stringify(f.doc));
      },
    };
  }

  private pypiIndex(q: PackageQuery, name: string): Admission {
    const pkg: PackageRef = { ecosystem: 'pypi', name, kind: 'index' };
    const whole = this.rules.decideName('pypi', name);
    if (whole) return { kind: 'deny', verdict: whole, pkg };
    const wantJson = prefersJson(q.accept);
    return {
      kind: 'filter',
      pkg,
      prepare: (h) => {
        dropConditionals(h);
        h.accept = UPSTREAM_ACCEPT;
        h['accept-encoding'] = 'gzip';
      },
      respond: async (ur) => {
        if (ur.statusCode !== 200) return { kind: 'pass' };
        let body: Buffer;
        try {
          body = await readBody(ur, this.p.maxMetadataBytes);
        } catch (e) {
          return this.unreadable(e);
        }
        let f;
        try {
          f = filterIndex(parseIndex(body, String(ur.headers['content-type'] ?? '')), name, this.rules, wantJson);
        } catch (e) {
          return deny(`${RULE}.unparseable`, `the index page for ${name} cannot be parsed (${errText(e)}); refused`);
        }
        for (const [file, u] of f.uploads) boundedSet(this.pypiFiles, file, u);
        return this.filtered(pkg, f.denied, f.kept, ur, f.contentType, f.body);
      },
    };
  }

  private async pypiFile(q: PackageQuery, read: boolean): Promise<Admission> {
    const file = lastSegment(q.pathname).replace(/\.metadata$/, '');
    if (!read)
      return deny(`${RULE}.mode`, `only reads (GET, HEAD) of packages pass the package firewall; ${q.method} refused`);
    let seen = this.pypiFiles.get(file);
    const dist = seen ?? distOfFilename(file);
    if (!dist)
      return deny(
        `${RULE}.unrecognized`,
        `${JSON.stringify(file.slice(0, 100))} is not a Python distribution file name; refused (the package firewall decides every file)`,
      );
    const pkg: PackageRef = { ecosystem: 'pypi', name: dist.name, version: dist.version, kind: 'file' };
    const whole = this.rules.decideName('pypi', dist.name);
    if (whole) return { kind: 'deny', verdict: whole, pkg };
    if (this.ageMatters && !seen) seen = await this.pypiLookup(q, dist.name, file);
    const v = this.rules.decideVersion(
      'pypi',
      dist.name,
      dist.version,
      this.ageMatters ? (seen?.uploaded ?? null) : undefined,
    );
    return v.action === 'deny' ? { kind: 'deny', verdict: v, pkg } : { kind: 'allow', verdict: v, pkg };
  }

  /** A file fetched by URL: its upload time from the project's index page on the first index host that answers. */
  private async pypiLookup(q: PackageQuery, project: string, file: string): Promise<Upload | undefined> {
    for (const h of this.indexHosts.filter((p) => !p.wildcard).slice(0, 3)) {
      try {
        const r = await q
          .upstreamAt(h.host)
          .get(
            `/simple/${encodeURIComponent(project.toLowerCase().replace(/[-_.]+/g, '-'))}/`,
            UPSTREAM_ACCEPT,
            this.p.maxMetadataBytes,
          );
        if (r.status !== 200) continue;
        const uploads = uploadsOf(parseIndex(r.body, String(r.headers['content-type'] ?? '')), project);
        for (const [name, u] of uploads) boundedSet(this.pypiFiles, name, u);
        const hit = uploads.get(file);
        if (hit) return hit;
      } catch {
        /* next index; none: the time stays unknown (refused) */
      }
    }
    return undefined;
  }

  private get ageMatters(): boolean {
    return this.rules.minimumAgeHours > 0;
  }

  private async readJson(ur: IncomingMessage): Promise<{ value: unknown } | Answer> {
    if (ur.statusCode !== 200) return { kind: 'pass' };
    let body: Buffer;
    try {
      body = await readBody(ur, this.p.maxMetadataBytes);
    } catch (e) {
      return this.unreadable(e);
    }
    try {
      return { value: JSON.parse(body.toString('utf8')) as unknown };
    } catch (e) {
      return deny(`${RULE}.unparseable`, `registry metadata is not JSON (${errText(e)}); refused`);
    }
  }

  private unreadable(e: unknown): Answer {
    return e instanceof TooLarge
      ? deny(
          `${RULE}.maxMetadataBytes`,
          `registry metadata ${e.message} (egress.packages.maxMetadataBytes); it cannot be checked, refused`,
        )
      : deny(`${RULE}.unparseable`, `registry metadata cannot be read (${errText(e)}); refused`);
  }

  /** Publish time of one npm version: from a packument seen this session, else looked up; null when unknown. */
  private async npmPublished(up: Upstream, name: string, version: string): Promise<number | null> {
    const key = name.toLowerCase();
    let times = this.npmTimes.get(key);
    if (!times?.has(version)) {
      try {
        const r = await up.get(`/${name.replace('/', '%2f')}`, 'application/json', this.p.maxMetadataBytes);
        times =
          r.status === 200 ? publishTimes(JSON.parse(r.body.toString('utf8')) as Record<string, unknown>) : new Map();
      } catch {
        times = new Map();
      }
      boundedSet(this.npmTimes, key, times);
    }
    return times.get(version) ?? null;
  }

  private filtered(
    pkg: PackageRef,
    denied: DeniedVersion[],
    kept: number,
    ur: IncomingMessage,
    contentType: string,
    body: string,
  ): Answer {
    // versions come from the registry's document: bounded before they reach the audit log
    denied = denied.map((d) => ({ version: d.version.slice(0, 100), rule: d.rule, reason: d.reason.slice(0, 300) }));
    if (denied.length) {
      pkg.filtered = denied.slice(0, 50).map((d) => ({ version: d.version, rule: d.rule }));
      pkg.filteredCount = denied.length;
      this.record({
        type: 'egress.package',
        session: this.session,
        severity: 'low',
        decision: 'deny',
        rule: denied[0]!.rule,
        data: {
          ecosystem: pkg.ecosystem,
          package: pkg.name,
          action: kept ? 'filtered' : 'refused',
          denied: denied.slice(0, 200),
          deniedCount: denied.length,
          kept,
        },
      });
    }
    if (!kept && denied.length) {
      const first = denied[0]!;
      return deny(
        first.rule,
        `${first.reason}${denied.length > 1 ? ` (and ${denied.length - 1} more version${denied.length > 2 ? 's' : ''} denied; no version left)` : ' (no version left)'}`,
      );
    }
    const r = replace(ur, contentType, body);
    if (denied.length)
      r.headers['x-airlock-filtered'] = denied
        .slice(0, 10)
        .map((d) => `${d.version} (${d.rule})`)
        .join(', ')
        .replace(/[^\x20-\x7e]/g, '?')
        .slice(0, 1024);
    return r;
  }
}

/**
 * The 403 a client gets for a denied package: the rule and reason in the status line (pip
 * prints the reason phrase), in a JSON body's "error" (npm prints it) and in headers.
 */
export function packageDenial(v: Verdict): { statusMessage: string; headers: Record<string, string>; body: string } {
  const text = `airlock egress: denied by ${v.rule}: ${v.reason}`;
  const ascii = (s: string, n: number) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, n);
  const body = `${JSON.stringify({ error: text, rule: v.rule, reason: v.reason })}\n`;
  return {
    statusMessage: ascii(`Forbidden by ${v.rule}: ${v.reason}`, 400),
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'x-airlock-rule': ascii(v.rule, 200),
      'x-airlock-reason': ascii(v.reason, 512),
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
    },
    body,
  };
}

function replace(ur: IncomingMessage, contentType: string, body: string): Extract<Answer, { kind: 'replace' }> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !DROP_RESPONSE.has(k)) headers[k] = v;
  const buf = Buffer.from(body, 'utf8');
  headers['content-type'] = contentType;
  headers['content-length'] = String(buf.length);
  headers['cache-control'] = 'no-store';
  return { kind: 'replace', status: 200, headers, body: buf };
}

function dropConditionals(h: Record<string, string | string[]>): void {
  for (const k of DROP_REQUEST) delete h[k];
}

function lastSegment(pathname: string): string {
  const s = pathname.slice(pathname.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function errText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
}

/**
 * Record mode (modes.packages: record): the firewall enforces only what record mode never
 * lifts, the explicit deny rules and the organisation's known-malicious lists; typosquats,
 * the allowlist and the minimum release age are recorded as would-be verdicts instead.
 */
export function recordModePackages(p: PackagesPolicy): PackagesPolicy {
  return { ...p, unlisted: 'allow', minimumReleaseAgeHours: 0, typosquat: { ...p.typosquat, mode: 'off' } };
}

/** The verdict function of a package policy, for replaying recorded fetches (null: the firewall is off). */
export function packageJudge(
  p: PackagesPolicy,
): ((pkg: { ecosystem: Ecosystem; name: string; version?: string }) => Verdict) | null {
  const f = PackageFirewall.create(p, () => undefined, 'replay');
  return f ? (pkg) => f.verdictFor(pkg) : null;
}
