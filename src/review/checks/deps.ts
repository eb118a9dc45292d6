import { parse as parseToml } from 'smol-toml';
import npa from 'npm-package-arg';
import semver from 'semver';
import type { Policy } from '../../policy/index.ts';
import type { ChangedFile, Finding } from '../types.ts';
import type { Severity } from '../../audit/index.ts';
import { type Ecosystem, POPULAR, typosquatOf, normPackageName as normName } from '../../common/index.ts';

// Dependency changes in manifests and lockfiles (npm, PyPI, Go, Cargo): every added
// package is listed; denylisted names, likely typosquats (edit distance after folding
// confusable characters), git/URL/file sources, new or changed install scripts,
// loosened version ranges and registries other than the allowed ones are findings.

type Eco = Ecosystem;
type Kind = 'registry' | 'git' | 'url' | 'file' | 'alias';
interface Dep {
  name: string;
  spec: string;
  kind: Kind;
  section: string;
  alias?: string;
}
interface Manifest {
  eco: Eco;
  deps: Map<string, Dep>;
  scripts: Map<string, string>;
  registries: string[];
  lock: boolean;
}

const key = (d: { section: string; name: string }) => `${d.section}\u0000${d.name}`;

/**
 * What an npm dependency spec points at, as npm itself reads it (npm-package-arg): a
 * hand-written regex called `"x": "evil.tgz"` a registry package, npm installs the file.
 * Protocols npm does not know are yarn/pnpm's local forms (link:, portal:, workspace:,
 * file-like) or something unknown, which counts as a URL: never as the registry.
 */
function npmKind(name: string, spec: string): { kind: Kind; alias?: string } {
  const s = spec.trim();
  let parsed: npa.Result;
  try {
    parsed = npa.resolve(name, s, '/nonexistent');
  } catch {
    return /^(link|portal|workspace|patch):/.test(s) ? { kind: 'file' } : { kind: 'url' };
  }
  switch (parsed.type) {
    case 'alias':
      return { kind: 'alias', alias: (parsed as npa.AliasResult).subSpec.name ?? s.slice(4) };
    case 'git':
      return { kind: 'git' };
    case 'remote':
      return { kind: 'url' };
    case 'file':
    case 'directory':
      return { kind: 'file' };
    default:
      return { kind: 'registry' }; // version, range, tag
  }
}

function parseNpm(text: string): Manifest {
  const manifest = JSON.parse(text) as Record<string, unknown>;
  const deps = new Map<string, Dep>();
  for (const section of [
    'dependencies',
    'devDependencies',
    'optionalDependencies',
    'peerDependencies',
    'overrides',
    'resolutions',
  ]) {
    const o = manifest[section];
    if (!o || typeof o !== 'object' || Array.isArray(o)) continue;
    for (const [name, spec] of Object.entries(o as Record<string, unknown>)) {
      if (typeof spec !== 'string') continue;
      const d: Dep = { name, spec, section, ...npmKind(name, spec) };
      deps.set(key(d), d);
    }
  }
  const scripts = new Map<string, string>();
  const s = manifest.scripts;
  if (s && typeof s === 'object') {
    for (const k of [
      'preinstall',
      'install',
      'postinstall',
      'prepare',
      'preprepare',
      'postprepare',
      'prepublish',
      'prepack',
      'postpack',
      'dependencies',
    ]) {
      const v = (s as Record<string, unknown>)[k];
      if (typeof v === 'string') scripts.set(k, v);
    }
  }
  const registries: string[] = [];
  const pc = manifest.publishConfig as Record<string, unknown> | undefined;
  if (pc && typeof pc.registry === 'string') registries.push(pc.registry);
  return { eco: 'npm', deps, scripts, registries, lock: false };
}

function parseNpmLock(text: string): Manifest {
  const j = JSON.parse(text) as {
    packages?: Record<string, { version?: string; resolved?: string }>;
    dependencies?: Record<string, { version?: string; resolved?: string }>;
  };
  const deps = new Map<string, Dep>();
  const registries: string[] = [];
  const entries = j.packages
    ? Object.entries(j.packages)
    : Object.entries(j.dependencies ?? {}).map(([k, v]) => [`node_modules/${k}`, v] as const);
  for (const [path, v] of entries) {
    if (!path) continue;
    const i = path.lastIndexOf('node_modules/');
    const name = i >= 0 ? path.slice(i + 'node_modules/'.length) : path;
    const resolved = v.resolved ?? '';
    const resolvedKind = resolved ? npmKind(name, resolved).kind : 'registry';
    const kind = resolvedKind === 'registry' && resolved ? 'url' : resolvedKind;
    const d: Dep = { name, spec: v.version ?? '', kind: /^https?:/.test(resolved) ? 'registry' : kind, section: path };
    deps.set(key(d), d);
    if (/^https?:/.test(resolved)) registries.push(resolved);
  }
  return { eco: 'npm', deps, scripts: new Map(), registries, lock: true };
}

function pep508(line: string, section: string): Dep | null {
  const s = line.replace(/\s*;.*$/, '').trim();
  if (!s) return null;
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(@\s*(\S+))?\s*(.*)$/.exec(s);
  if (!m) return null;
  const name = m[1]!;
  if (m[4]) {
    const u = m[4];
    return { name, spec: u, section, kind: /^git\+/.test(u) ? 'git' : /^file:/.test(u) ? 'file' : 'url' };
  }
  return { name, spec: m[5]!.trim(), section, kind: 'registry' };
}

function parseRequirements(text: string): Manifest {
  const deps = new Map<string, Dep>();
  const registries: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const opt = /^(-i|--index-url|--extra-index-url|-f|--find-links|--trusted-host)[\s=]+(\S+)/.exec(line);
    if (opt) {
      registries.push(opt[2]!);
      continue;
    }
    if (/^(-r|-c|--requirement|--constraint)\b/.test(line)) continue;
    const editable = /^(-e|--editable)\s+(\S+)/.exec(line);
    if (editable || /^(git\+|https?:|file:|\.{0,2}\/)/.test(line)) {
      const spec = editable ? editable[2]! : line;
      const egg = /#egg=([A-Za-z0-9._-]+)/.exec(spec);
      const d: Dep = {
        name: egg?.[1] ?? spec,
        spec,
        section: 'requirements',
        kind: /git\+/.test(spec) ? 'git' : /^https?:/.test(spec) ? 'url' : 'file',
      };
      deps.set(key(d), d);
      continue;
    }
    const d = pep508(line, 'requirements');
    if (d) deps.set(key(d), d);
  }
  return { eco: 'pypi', deps, scripts: new Map(), registries, lock: false };
}

function tomlTable(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function tableDeps(t: Record<string, unknown>, section: string, deps: Map<string, Dep>, registries: string[]): void {
  for (const [name, v] of Object.entries(t)) {
    if (typeof v === 'string') {
      const d: Dep = { name, spec: v, section, kind: 'registry' };
      deps.set(key(d), d);
      continue;
    }
    const o = tomlTable(v);
    const real = typeof o.package === 'string' ? o.package : name;
    let d: Dep;
    if (typeof o.git === 'string') d = { name: real, spec: o.git, section, kind: 'git' };
    else if (typeof o.path === 'string') d = { name: real, spec: o.path, section, kind: 'file' };
    else if (typeof o.url === 'string') d = { name: real, spec: o.url, section, kind: 'url' };
    else d = { name: real, spec: typeof o.version === 'string' ? o.version : '', section, kind: 'registry' };
    if (typeof o.registry === 'string' && o.registry !== 'crates-io') registries.push(`registry "${o.registry}"`);
    if (typeof o['registry-index'] === 'string') registries.push(o['registry-index']);
    if (typeof o.source === 'string') registries.push(`source "${o.source}"`);
    deps.set(key(d), d);
  }
}

function parsePyproject(text: string): Manifest {
  const t = parseToml(text) as Record<string, unknown>;
  const deps = new Map<string, Dep>();
  const registries: string[] = [];
  const project = tomlTable(t.project);
  const add = (list: unknown, section: string) => {
    if (!Array.isArray(list)) return;
    for (const s of list)
      if (typeof s === 'string') {
        const d = pep508(s, section);
        if (d) deps.set(key(d), d);
      }
  };
  add(project.dependencies, 'project.dependencies');
  for (const [g, l] of Object.entries(tomlTable(project['optional-dependencies'])))
    add(l, `project.optional-dependencies.${g}`);
  add(tomlTable(t['build-system']).requires, 'build-system.requires');
  const tool = tomlTable(t.tool);
  const poetry = tomlTable(tool.poetry);
  const pd = { ...tomlTable(poetry.dependencies) };
  delete pd.python;
  tableDeps(pd, 'tool.poetry.dependencies', deps, registries);
  for (const [g, grp] of Object.entries(tomlTable(poetry.group)))
    tableDeps(tomlTable(tomlTable(grp).dependencies), `tool.poetry.group.${g}`, deps, registries);
  const sources = poetry.source;
  if (Array.isArray(sources))
    for (const s of sources) if (typeof tomlTable(s).url === 'string') registries.push(tomlTable(s).url as string);
  const uv = tomlTable(tool.uv);
  for (const k of ['index-url', 'extra-index-url']) {
    const v = uv[k];
    if (typeof v === 'string') registries.push(v);
  }
  if (Array.isArray(uv.index))
    for (const s of uv.index) if (typeof tomlTable(s).url === 'string') registries.push(tomlTable(s).url as string);
  for (const [name, v] of Object.entries(tomlTable(uv.sources))) {
    const o = tomlTable(v);
    const spec = String(o.git ?? o.url ?? o.path ?? '');
    if (spec) {
      const d: Dep = { name, spec, section: 'tool.uv.sources', kind: o.git ? 'git' : o.url ? 'url' : 'file' };
      deps.set(key(d), d);
    }
  }
  return { eco: 'pypi', deps, scripts: new Map(), registries, lock: false };
}

function parseCargo(text: string): Manifest {
  const t = parseToml(text) as Record<string, unknown>;
  const deps = new Map<string, Dep>();
  const registries: string[] = [];
  for (const s of ['dependencies', 'dev-dependencies', 'build-dependencies'])
    tableDeps(tomlTable(t[s]), s, deps, registries);
  for (const [target, tt] of Object.entries(tomlTable(t.target))) {
    for (const s of ['dependencies', 'dev-dependencies', 'build-dependencies'])
      tableDeps(tomlTable(tomlTable(tt)[s]), `target.${target}.${s}`, deps, registries);
  }
  for (const [src, pt] of Object.entries(tomlTable(t.patch)))
    tableDeps(tomlTable(pt), `patch.${src}`, deps, registries);
  const scripts = new Map<string, string>();
  const pkg = tomlTable(t.package);
  if (typeof pkg.build === 'string' || pkg.build === true) scripts.set('build', String(pkg.build));
  return { eco: 'cargo', deps, scripts, registries, lock: false };
}

function parseGoMod(text: string): Manifest {
  const deps = new Map<string, Dep>();
  let block: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\/\/.*$/, '').trim();
    if (!line) continue;
    if (block) {
      if (line === ')') {
        block = null;
        continue;
      }
      handle(block, line);
      continue;
    }
    const m = /^(require|replace|exclude|retract|tool|ignore)\s*(\(?)\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[2] === '(') {
      block = m[1]!;
      continue;
    }
    handle(m[1]!, m[3]!);
  }
  function handle(kind: string, line: string): void {
    if (kind === 'require') {
      const [name, version] = line.split(/\s+/);
      if (name) {
        const d: Dep = { name, spec: version ?? '', section: 'require', kind: 'registry' };
        deps.set(key(d), d);
      }
    } else if (kind === 'replace') {
      const [from, to] = line.split('=>').map((x) => x.trim());
      if (from && to) {
        const name = from.split(/\s+/)[0]!;
        const target = to.split(/\s+/)[0]!;
        const d: Dep = { name, spec: to, section: 'replace', kind: /^\.{0,2}\//.test(target) ? 'file' : 'url' };
        deps.set(key(d), d);
      }
    }
  }
  return { eco: 'go', deps, scripts: new Map(), registries: [], lock: false };
}

function parseRc(text: string): Manifest {
  const registries: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(?:@[\w-]+:)?(registry|npmRegistryServer)\s*[=:]\s*"?([^"\s]+)/.exec(line);
    if (m) registries.push(m[2]!);
  }
  return { eco: 'npm', deps: new Map(), scripts: new Map(), registries, lock: false };
}

export function manifestParser(path: string): ((text: string) => Manifest) | null {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === 'package.json') return parseNpm;
  if (base === 'package-lock.json' || base === 'npm-shrinkwrap.json') return parseNpmLock;
  if (/^requirements[^/]*\.(txt|in)$/.test(base) || /^constraints[^/]*\.txt$/.test(base)) return parseRequirements;
  if (base === 'pyproject.toml') return parsePyproject;
  if (base === 'Cargo.toml') return parseCargo;
  if (base === 'go.mod') return parseGoMod;
  if (base === '.npmrc' || base === '.yarnrc' || base === '.yarnrc.yml') return parseRc;
  return null;
}

function looseness(eco: Eco, spec: string): number {
  const s = spec.trim();
  if (eco === 'go') return 0;
  if (eco === 'pypi') {
    if (!s) return 4;
    if (/^===?\s*[^*,]+$/.test(s)) return 0;
    if (/^~=/.test(s)) return 1;
    if (/^==.*\*/.test(s)) return 2;
    if (/<|<=/.test(s)) return 2;
    return 3;
  }
  if (eco === 'cargo') return cargoLooseness(s);
  return npmLooseness(s);
}

/** npm ranges as npm reads them (semver): how many versions a spec admits, in steps. */
function npmLooseness(s: string): number {
  if (semver.valid(s)) return 0; // one exact version
  const range = semver.validRange(s);
  if (range === null) return 4; // a tag (latest, next) or nothing npm can bound
  if (range === '*' || range === '') return 4;
  const low = semver.minVersion(range);
  if (!low || !semver.intersects(range, `>=${semver.inc(low, 'major')}`)) {
    // bounded below the next major: ~ (patch range) or ^ / x-range within a major
    return low && !semver.intersects(range, `>=${semver.inc(low, 'minor')}`) ? 1 : 2;
  }
  return 3; // open upward past a major (>=, ||, hyphen ranges reaching further)
}

/** Cargo: a bare version means ^ (caret), "=x.y.z" pins. */
function cargoLooseness(s: string): number {
  if (!s || s === '*') return 4;
  if (/^=\s*\d+\.\d+\.\d+/.test(s)) return 0;
  if (/^~/.test(s)) return 1;
  if (/>|\|\|/.test(s) && !/</.test(s)) return 3;
  return 2;
}

function hostOf(u: string): string {
  try {
    return new URL(u).hostname.toLowerCase();
  } catch {
    return u;
  }
}

function lineOf(text: string | null, needle: string): number {
  if (!text) return 0;
  const i = text.indexOf(needle);
  return i < 0 ? 0 : text.slice(0, i).split('\n').length;
}

type PushFinding = (rule: string, severity: Severity, line: number, message: string) => void;

/** What every dependency of one manifest is checked against. */
interface DependencyContext {
  cfg: Policy['review']['dependencies'];
  deny: { name: string; version: string | null }[];
  popular: string[];
  now: Manifest;
  newText: string;
  push: PushFinding;
}

/** One added or changed dependency: denylist, typosquat, non-registry source, loosened range. */
function checkDependency(ctx: DependencyContext, dep: Dep, old: Dep | undefined, addedNames: string[]): void {
  const { cfg, deny, popular, now, push } = ctx;
  const line = lineOf(ctx.newText, now.eco === 'npm' ? `"${dep.name}"` : dep.name);
  const label = `${now.eco} package "${dep.name}"${dep.spec && dep.kind === 'registry' ? `@${dep.spec}` : ''}`;
  if (!old) {
    if (now.lock) addedNames.push(`${dep.name}@${dep.spec}`);
    else push('added', 'info', line, `adds ${label} (${dep.section})`);
  }
  const names = [dep.name, ...(dep.alias ? [dep.alias] : [])];
  for (const n of names) {
    const hit = deny.find(
      (x) =>
        normName(now.eco, x.name) === normName(now.eco, n) &&
        (x.version === null || x.version === dep.spec.replace(/^[=v^~]+/, '')),
    );
    if (hit)
      push(
        'denylisted',
        'critical',
        line,
        `${label} is on the denylist (review.dependencies.denylist: ${hit.name}${hit.version ? `@${hit.version}` : ''})`,
      );
    if (!old && cfg.typosquatDistance > 0) {
      const t = typosquatOf(now.eco, n, popular, cfg.typosquatDistance);
      if (t)
        push(
          'typosquat',
          'high',
          line,
          `"${n}" looks like the popular package "${t.target}" (${t.distance === 0 ? 'confusable characters' : `edit distance ${t.distance}`}): likely typosquat`,
        );
    }
  }
  if (dep.kind === 'git' || dep.kind === 'url' || dep.kind === 'file') {
    if (!(now.lock && dep.kind === 'url'))
      push(
        'source',
        'high',
        line,
        `${label} comes from a ${dep.kind === 'file' ? 'local path' : dep.kind === 'git' ? 'git repository' : 'URL'} (${dep.spec.slice(0, 200)}), not the registry: unpinned and unreviewed code`,
      );
  }
  if (
    old &&
    old.kind === 'registry' &&
    dep.kind === 'registry' &&
    looseness(now.eco, dep.spec) > looseness(now.eco, old.spec)
  ) {
    push('loosened', 'medium', line, `version range of "${dep.name}" loosened from "${old.spec}" to "${dep.spec}"`);
  }
}

/** Install-time scripts added or changed, and package registries that are new or not allowed. */
function checkScriptsAndRegistries(
  cfg: Policy['review']['dependencies'],
  now: Manifest,
  before: Manifest | null,
  newText: string,
  push: PushFinding,
): void {
  for (const [name, cmd] of now.scripts) {
    const old = before?.scripts.get(name);
    if (old === cmd) continue;
    push(
      'install-script',
      'high',
      lineOf(newText, now.eco === 'npm' ? `"${name}"` : 'build'),
      `${old === undefined ? 'adds' : 'changes'} ${now.eco === 'cargo' ? 'build script' : `install-time script "${name}"`} (${cmd.slice(0, 120)}): runs on every install`,
    );
  }
  const seen = new Set(before?.registries ?? []);
  for (const r of now.registries) {
    const h = hostOf(r);
    if (seen.has(r)) continue;
    if (!cfg.allowedRegistries.includes(h))
      push(
        'registry',
        'high',
        lineOf(newText, r),
        `resolves packages from ${h} (${r.slice(0, 200)}), which is not an allowed registry (review.dependencies.allowedRegistries)`,
      );
    else if (!seen.has(r) && !now.lock)
      push('registry', 'medium', lineOf(newText, r), `changes the package registry to ${h}`);
  }
}

export function dependenciesCheck(files: ChangedFile[], policy: Policy): Finding[] {
  const cfg = policy.review.dependencies;
  const out: Finding[] = [];
  const deny = cfg.denylist.map((e) => {
    const at = e.lastIndexOf('@');
    return at > 0 ? { name: e.slice(0, at), version: e.slice(at + 1) } : { name: e, version: null };
  });
  for (const file of files) {
    const parse = manifestParser(file.path);
    if (!parse || file.status === 'deleted') continue;
    const push = (rule: string, severity: Severity, line: number, message: string) =>
      out.push({ check: 'dependencies', rule: `dependencies.${rule}`, severity, file: file.path, line, message });
    if (file.newText === null) {
      // binary, or either version over the text cap: not loaded, so not checked (fail closed)
      push(
        'unparseable',
        'high',
        0,
        `this manifest could not be read for review (${file.binary ? 'binary' : 'too large'}); its dependencies could not be checked`,
      );
      continue;
    }
    let now: Manifest;
    let before: Manifest | null = null;
    try {
      now = parse(file.newText);
      if (file.oldText !== null) {
        try {
          before = parse(file.oldText);
        } catch {
          before = null;
        }
      }
    } catch (e) {
      push(
        'unparseable',
        'high',
        0,
        `cannot parse this manifest (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); its dependencies could not be checked`,
      );
      continue;
    }
    const popular = [...POPULAR[now.eco], ...cfg.popular];
    const addedNames: string[] = [];
    for (const [k, dep] of now.deps) {
      const old = before?.deps.get(k);
      if (old && old.spec === dep.spec && old.kind === dep.kind) continue;
      checkDependency({ cfg, deny, popular, now, newText: file.newText, push }, dep, old, addedNames);
    }
    if (addedNames.length)
      push(
        'added',
        'info',
        0,
        `lockfile adds ${addedNames.length} package${addedNames.length === 1 ? '' : 's'}: ${addedNames.slice(0, 500).join(', ')}${addedNames.length > 500 ? ', …' : ''}`,
      );
    checkScriptsAndRegistries(cfg, now, before, file.newText, push);
  }
  return out;
}
