import { parseDocument } from 'yaml';
import { compileEgress, decideTarget, classifyAddress, type TargetQuery } from '../egress/index.ts';
import {
  defaultPolicy,
  parsePolicyText,
  resolvePolicy,
  MODE_LAYERS,
  type Policy,
  type PolicySource,
} from '../policy/index.ts';
import type { RecordedDecision } from './events.ts';
import { decider } from './replay.ts';
import { parseArgv, commandFacts } from '../command-rules/index.ts';

// `airlock policy learn`: the narrowest policy that would have allowed what the sessions did
// (what the session let happen; in record mode that includes what the policy would have
// refused). Hosts with the ports, schemes and, where the gateway saw them, methods and path
// prefixes used; addresses in special ranges as /32 grants; the programs run through the
// command rules as an allowlist (default deny). Never wider than the org policy: what the
// org denies is left out, and the result is checked by deciding every learned event again
// under org ⊕ learned with the live decision functions. Everything learned is agent-made
// text, so only plain names and paths are taken; the rest is left out and said why.

export interface LeftOut {
  what: string;
  why: string;
}
export interface LearnResult {
  /** The proposed airlock.yaml. */
  text: string;
  hosts: string[];
  programs: string[];
  packages: string[];
  leftOut: LeftOut[];
  /** Learned decisions the proposed policy (with the org's) allows, of all learned. */
  covered: number;
  total: number;
}

const MAX_ENTRIES = 200;
const MAX_PATHS = 20;
const PLAIN_HOST = /^[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*$/;
const PLAIN_PROGRAM = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const PLAIN_SEGMENT = /^[A-Za-z0-9._~-]{1,64}$/;
const IP_HOST = /^[0-9.]+$|:/;

/** A path prefix one level above the request (/v1/items/42 → /v1/items), at most three segments, plain characters only. */
export function pathPrefix(path: string): string | null {
  const segs = path.split('?')[0]!.split('/').filter(Boolean);
  const keep: string[] = [];
  for (const s of segs.slice(0, Math.min(3, Math.max(1, segs.length - 1)))) {
    if (!PLAIN_SEGMENT.test(s)) break;
    keep.push(s);
  }
  return keep.length ? `/${keep.join('/')}` : null;
}

function narrowestPrefixes(paths: Set<string>): string[] {
  const sorted = [...paths].sort((a, b) => a.length - b.length || a.localeCompare(b));
  return sorted.filter((p, i) => !sorted.slice(0, i).some((q) => p.startsWith(`${q}/`)));
}

interface HostUse {
  ports: Set<number>;
  schemes: Set<string>;
  methods: Set<string>;
  paths: Set<string>;
  opaque: boolean;
}

function hostRule(host: string, u: HostUse): Record<string, unknown> {
  const rule: Record<string, unknown> = {
    id: `learned-${host.replace(/[^a-z0-9-]/g, '-').slice(0, 60)}`,
    host,
    ports: [...u.ports].sort((a, b) => a - b),
  };
  const schemes = [...u.schemes].sort();
  if (schemes.length) rule.schemes = schemes;
  // methods and paths only where every use showed them (an opaque tunnel never matches a rule with methods)
  if (!u.opaque && u.methods.size) {
    rule.methods = [...u.methods].sort();
    const prefixes = narrowestPrefixes(u.paths);
    if (prefixes.length && prefixes.length <= MAX_PATHS && !u.paths.has('/')) rule.paths = prefixes;
  }
  rule.reason = 'learned from recorded sessions (airlock policy learn)';
  return rule;
}

/** The org's own verdict on a target: anything but the default deny means the org rules speak to it. */
function orgRefusal(org: Policy, q: TargetQuery): string | null {
  const rules = compileEgress(org.egress);
  const name = decideTarget(rules, { ...q, addresses: undefined });
  if (
    name.action === 'deny' &&
    name.rule !== 'egress.default-deny' &&
    name.rule !== 'builtin.ip-literal' &&
    name.rule !== 'builtin.private-address'
  )
    return name.rule;
  for (const ip of q.addresses ?? (IP_HOST.test(q.host) ? [q.host] : [])) {
    const a = decideTarget(rules, { host: ip, port: q.port });
    if (a.rule.startsWith('egress.denyCidrs')) return a.rule;
  }
  return null;
}

interface Learned {
  hosts: Map<string, HostUse>;
  cidrs: Map<string, Set<number>>;
  programs: Set<string>;
  leftOut: LeftOut[];
  used: RecordedDecision[];
  /** Entries of the org's own allow lists, taken verbatim (a repo list only applies where it repeats an org entry). */
  orgAllow: Map<number, unknown>;
  orgCidrs: Map<number, unknown>;
  /** Package files fetched, by ecosystem and name: their exact versions become egress.packages.allow. */
  packages: Map<string, { ecosystem: 'npm' | 'pypi'; name: string; versions: Set<string> }>;
}

const PLAIN_PACKAGE = /^(@[a-z0-9][a-z0-9._-]{0,100}\/)?[A-Za-z0-9][A-Za-z0-9._-]{0,213}$/;
const PLAIN_VERSION = /^[0-9][0-9A-Za-z.+-]{0,63}$/;

/**
 * A package the session fetched becomes an approved exact version (the allowlist, with
 * unlisted: deny, is the narrowest package policy). A fetch the policy would have refused for
 * another reason than the allowlist (typosquat, release age, a deny rule) is not learned:
 * those are protections, not missing grants.
 */
function learnPackage(d: RecordedDecision, org: Policy, l: Learned): void {
  const p = d.package!;
  const what = `${p.ecosystem} ${p.name}${p.version ? `@${p.version}` : ''}`;
  if (d.before.action !== 'allow' && d.before.rule !== 'egress.packages.unlisted') {
    l.leftOut.push({ what, why: `the policy refuses it (${d.before.rule}); learning lifts no protection` });
    return;
  }
  if (!p.version) return; // a name-level decision: the files fetched name the versions
  if (!PLAIN_PACKAGE.test(p.name) || !PLAIN_VERSION.test(p.version)) {
    l.leftOut.push({ what: JSON.stringify(what.slice(0, 120)), why: 'not a plain package name and version' });
    return;
  }
  if (org.egress.packages.allow.length) {
    l.leftOut.push({ what, why: "the organisation policy's egress.packages.allow is the ceiling: approve it there" });
    return;
  }
  const k = `${p.ecosystem}\0${p.name}`;
  if (!l.packages.has(k) && l.packages.size >= MAX_ENTRIES) {
    l.leftOut.push({ what, why: `more than ${MAX_ENTRIES} packages` });
    return;
  }
  const e = l.packages.get(k) ?? { ecosystem: p.ecosystem, name: p.name, versions: new Set<string>() };
  e.versions.add(p.version);
  l.packages.set(k, e);
  l.used.push(d);
}

function packageRules(l: Learned): Record<string, unknown>[] {
  const reason = 'learned from recorded sessions';
  // npm ranges take "a || b"; PEP 440 specifiers cannot say "or", so one rule per PyPI version
  return [...l.packages.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((p) =>
      p.ecosystem === 'npm'
        ? [{ ecosystem: p.ecosystem, name: p.name, versions: [...p.versions].sort().join(' || '), reason }]
        : [...p.versions].sort().map((v) => ({ ecosystem: p.ecosystem, name: p.name, versions: `==${v}`, reason })),
    );
}

const orgEntryIndex = (section: string, list: { id?: string }[], rule: string) =>
  list.findIndex((r, i) => rule === (r.id ? `egress.${section}.${r.id}` : `egress.${section}[${i}]`));

/**
 * Under an org allow list (the ceiling), only the org's own entries can apply: the org entry
 * that grants the target is reused verbatim, a target no org entry grants is left out.
 * Returns true when the org list decided (the caller learns nothing more for the name).
 */
function withinOrgAllowList(org: Policy, q: TargetQuery, what: string, l: Learned): boolean {
  if (!org.egress.allow.length) return false;
  const d = decideTarget(compileEgress(org.egress), { ...q, addresses: undefined });
  const i = d.action === 'allow' ? orgEntryIndex('allow', org.egress.allow, d.rule) : -1;
  if (i >= 0) l.orgAllow.set(i, org.egress.allow[i]);
  else l.leftOut.push({ what, why: `no entry of the organisation policy's egress.allow grants it (${d.rule})` });
  return true;
}

function learnEgress(recorded: RecordedDecision, org: Policy, learned: Learned): void {
  const query = recorded.egress!.query;
  const what = `${query.host}:${query.port}`;
  const refusal = orgRefusal(org, query);
  if (refusal) {
    learned.leftOut.push({ what, why: `the organisation policy denies it (${refusal})` });
    return;
  }
  const special = (query.addresses ?? []).filter((ip) => classifyAddress(ip).special);
  if (IP_HOST.test(query.host)) special.push(query.host);
  else if (!PLAIN_HOST.test(query.host)) {
    learned.leftOut.push({ what: JSON.stringify(query.host.slice(0, 80)), why: 'not a plain host name' });
    return;
  }
  if (!IP_HOST.test(query.host) && withinOrgAllowList(org, query, what, learned)) {
    /* the org's entry, or nothing */
  } else if (!IP_HOST.test(query.host)) {
    if (!learned.hosts.has(query.host) && learned.hosts.size >= MAX_ENTRIES) {
      learned.leftOut.push({ what, why: `more than ${MAX_ENTRIES} hosts` });
      return;
    }
    const u = learned.hosts.get(query.host) ?? {
      ports: new Set(),
      schemes: new Set(),
      methods: new Set(),
      paths: new Set(),
      opaque: false,
    };
    u.ports.add(query.port);
    if (query.scheme) u.schemes.add(query.scheme);
    if (query.method) u.methods.add(query.method);
    else if (!(query.tunnel && query.intercepted)) u.opaque = true;
    if (query.method && query.path) {
      const p = pathPrefix(query.path);
      if (p) u.paths.add(p);
      else u.paths.add('/');
    }
    learned.hosts.set(query.host, u);
  }
  for (const ip of special) {
    if (org.egress.allowCidrs.length) {
      const a = decideTarget(compileEgress(org.egress), { host: ip, port: query.port });
      const i = a.action === 'allow' ? orgEntryIndex('allowCidrs', org.egress.allowCidrs, a.rule) : -1;
      if (i >= 0) learned.orgCidrs.set(i, org.egress.allowCidrs[i]);
      else
        learned.leftOut.push({
          what: `${ip}:${query.port}`,
          why: `no entry of the organisation policy's egress.allowCidrs grants it (${a.rule})`,
        });
      continue;
    }
    const cidr = `${ip}/${ip.includes(':') ? 128 : 32}`;
    const ports = learned.cidrs.get(cidr) ?? new Set<number>();
    ports.add(query.port);
    learned.cidrs.set(cidr, ports);
  }
  learned.used.push(recorded);
}

/** Every program the command line runs (sh -c scripts, env/sudo wrappers unwrapped by the same parser the rules use). */
function learnCommand(d: RecordedDecision, l: Learned): void {
  const parsed = parseArgv(d.command!);
  if (parsed.error) {
    l.leftOut.push({
      what: JSON.stringify(d.command!.join(' ').slice(0, 80)),
      why: `cannot be analysed (${parsed.error})`,
    });
    return;
  }
  for (const c of parsed.commands) {
    const name = commandFacts(c).name;
    const program = name === null ? '' : (name.split('/').pop() ?? '');
    if (!PLAIN_PROGRAM.test(program)) {
      l.leftOut.push({
        what: JSON.stringify(program.slice(0, 80)),
        why: name === null ? 'program known only at run time' : 'not a plain program name',
      });
      continue;
    }
    if (!l.programs.has(program) && l.programs.size >= MAX_ENTRIES) {
      l.leftOut.push({ what: program, why: `more than ${MAX_ENTRIES} programs` });
      continue;
    }
    l.programs.add(program);
  }
  l.used.push(d);
}

function proposedText(current: string | null, found: Learned, currentPolicy: Policy, sessions: string[]): string {
  const doc = parseDocument(current ?? 'version: 1\n');
  doc.commentBefore = ` Learned by \`airlock policy learn\` from ${sessions.join(', ')}: the narrowest grants that\n would have allowed what those sessions did. Review it like any change.${doc.commentBefore ? `\n${doc.commentBefore}` : ''}`;
  if (doc.hasIn(['egress', 'presets'])) doc.deleteIn(['egress', 'presets']);
  doc.setIn(
    ['egress', 'allow'],
    [
      ...found.orgAllow.values(),
      ...[...found.hosts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([h, u]) => hostRule(h, u)),
    ],
  );
  doc.setIn(
    ['egress', 'allowCidrs'],
    [
      ...found.orgCidrs.values(),
      ...[...found.cidrs.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([cidr, ports], i) => ({ id: `learned-cidr-${i + 1}`, cidr, ports: [...ports].sort((a, b) => a - b) })),
    ],
  );
  if (found.packages.size) {
    doc.setIn(['egress', 'packages', 'unlisted'], 'deny');
    doc.setIn(['egress', 'packages', 'allow'], packageRules(found));
  }
  if (found.programs.size) {
    const kept = currentPolicy.commands.rules.filter((r) => r.action !== 'allow');
    const learned = [...found.programs].sort().map((p) => ({
      id: `learned-${p.replace(/[^A-Za-z0-9_.-]/g, '-')}`,
      match: { command: p },
      action: 'allow',
      reason: 'learned from recorded sessions',
    }));
    doc.setIn(['commands', 'default'], 'deny');
    doc.setIn(['commands', 'rules'], [...kept, ...learned]);
  }
  // the learned policy is meant to be enforced
  for (const layer of MODE_LAYERS) if (doc.hasIn(['modes', layer])) doc.deleteIn(['modes', layer]);
  const modes = doc.getIn(['modes']) as { items?: unknown[] } | undefined;
  if (modes && Array.isArray(modes.items) && modes.items.length === 0) doc.deleteIn(['modes']);
  return doc.toString();
}

/** The narrowest repo policy that would have allowed the given recorded decisions, within the org policy. */
export function learnPolicy(
  decisions: RecordedDecision[],
  options: { org: PolicySource[]; current: string | null; sessions: string[] },
): LearnResult {
  const org = options.org.length ? resolvePolicy(options.org).policy : defaultPolicy();
  const currentPolicy = resolvePolicy([
    ...options.org,
    ...(options.current
      ? [
          {
            kind: 'repo',
            origin: 'airlock.yaml',
            raw: parsePolicyText(options.current, 'airlock.yaml'),
            text: options.current,
          },
        ]
      : []),
  ]).policy;
  const learned: Learned = {
    hosts: new Map(),
    cidrs: new Map(),
    programs: new Set(),
    leftOut: [],
    used: [],
    orgAllow: new Map(),
    orgCidrs: new Map(),
    packages: new Map(),
  };
  for (const d of decisions) {
    if (d.enforced.action !== 'allow') continue;
    if (d.egress) learnEgress(d, org, learned);
    else if (d.command) learnCommand(d, learned);
    else if (d.package) learnPackage(d, org, learned);
  }
  const text = proposedText(options.current, learned, currentPolicy, options.sessions);
  const proposed = resolvePolicy([
    ...options.org,
    { kind: 'repo', origin: 'learned airlock.yaml', raw: parsePolicyText(text, 'learned airlock.yaml'), text },
  ]).policy;
  const decide = decider(proposed);
  let covered = 0;
  for (const d of learned.used) {
    const after = decide(d);
    if (!after || after.action === 'allow') {
      covered++;
      continue;
    }
    const what = d.egress ? `${d.egress.query.host}:${d.egress.query.port}` : (d.command ?? []).join(' ').slice(0, 120);
    learned.leftOut.push({
      what,
      why: `still ${after.action} under the org policy and the learned one (${after.rule})`,
    });
  }
  return {
    text,
    hosts: [...learned.hosts.keys()].sort(),
    programs: [...learned.programs].sort(),
    packages: [...learned.packages.values()].map((p) => `${p.ecosystem} ${p.name}`).sort(),
    leftOut: dedupe(learned.leftOut),
    covered,
    total: learned.used.length,
  };
}

function dedupe(xs: LeftOut[]): LeftOut[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = `${x.what}\0${x.why}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
