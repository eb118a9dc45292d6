import { compileEgress, decideTarget, packageJudge, type EgressRules } from '../egress/index.ts';
import { decideCommand } from '../command-rules/index.ts';
import type { Policy, PolicyDecision } from '../policy/index.ts';
import type { RecordedDecision, ReplayLayer } from './events.ts';

// Re-decides recorded decisions under another policy with the very functions that decided
// them live (decideTarget, decideCommand): no second implementation to drift. A decision a
// protection made that no policy changes (an SNI mismatch, DLP, a limit, a honeytoken) is
// not re-decided: it would be made again whatever the policy says.

export interface ReplayChange {
  seq: number;
  id: string;
  ts: string;
  session: string | null;
  layer: ReplayLayer;
  /** Destination host or program name: what the summary groups by. */
  target: string;
  /** The request or command line, as recorded (agent text: escape before printing). */
  what: string;
  before: Pick<PolicyDecision, 'action' | 'rule'>;
  after: PolicyDecision;
}

export interface ReplayGroup {
  layer: ReplayLayer;
  target: string;
  count: number;
}

export interface ReplayReport {
  /** Recorded decisions in scope. */
  decisions: number;
  /** Decided again (the rest were made by protections no policy changes). */
  replayed: number;
  unchanged: number;
  newlyAllowed: ReplayChange[];
  /** Allowed before, denied (or asked) now. */
  newlyDenied: ReplayChange[];
  /** Deny became ask or the reverse. */
  otherChanges: ReplayChange[];
  allowedBy: ReplayGroup[];
  deniedBy: ReplayGroup[];
}

/** Rules decideTarget itself produces: only those decisions depend on the egress policy. */
const TARGET_RULE =
  /^(egress\.(allow|preset|grant|allowCidrs|deny|denyCidrs)[.[]|egress\.default-deny$|modes\.egress$|builtin\.(private-address|ip-literal|public-address|bad-target|resolve-failed)$)/;

function describe(d: RecordedDecision): { target: string; what: string } {
  if (d.egress) {
    const q = d.egress.query;
    const hp = q.host.includes(':') ? `[${q.host}]:${q.port}` : `${q.host}:${q.port}`;
    return { target: q.host, what: [q.scheme, q.method, `${hp}${q.path ?? ''}`].filter(Boolean).join(' ') };
  }
  if (d.package)
    return {
      target: d.package.name,
      what: `${d.package.ecosystem} ${d.package.name}${d.package.version ? `@${d.package.version}` : ''}`,
    };
  const argv = d.command ?? [];
  return { target: (argv[0] ?? '').split('/').pop() ?? '', what: argv.join(' ') };
}

function groups(changes: ReplayChange[]): ReplayGroup[] {
  const m = new Map<string, ReplayGroup>();
  for (const c of changes) {
    const k = `${c.layer}\0${c.target}`;
    const g = m.get(k) ?? { layer: c.layer, target: c.target, count: 0 };
    g.count++;
    m.set(k, g);
  }
  return [...m.values()].sort((a, b) => b.count - a.count || a.target.localeCompare(b.target));
}

/** A decider for one policy: compiled egress rules are cached per set of per-run grants. */
export function decider(policy: Policy): (d: RecordedDecision) => PolicyDecision | null {
  const compiled = new Map<string, EgressRules>();
  const rulesFor = (grants: string[]) => {
    const k = grants.join('\n');
    let r = compiled.get(k);
    if (!r) {
      r = compileEgress(policy.egress, grants);
      compiled.set(k, r);
    }
    return r;
  };
  let judge: ReturnType<typeof packageJudge> | undefined;
  return (d) => {
    if (d.package) {
      judge ??= packageJudge(policy.egress.packages);
      return judge
        ? judge(d.package)
        : { action: 'allow', rule: 'egress.packages.mode', reason: 'the package firewall is off' };
    }
    if (d.egress)
      return TARGET_RULE.test(d.before.rule) ? decideTarget(rulesFor(d.egress.grants), d.egress.query) : null;
    if (d.command) return decideCommand(d.command, policy);
    return null;
  };
}

export function replayDecisions(decisions: RecordedDecision[], policy: Policy): ReplayReport {
  const decide = decider(policy);
  const report: ReplayReport = {
    decisions: decisions.length,
    replayed: 0,
    unchanged: 0,
    newlyAllowed: [],
    newlyDenied: [],
    otherChanges: [],
    allowedBy: [],
    deniedBy: [],
  };
  for (const d of decisions) {
    const after = decide(d);
    if (!after) continue;
    report.replayed++;
    if (after.action === d.before.action) {
      report.unchanged++;
      continue;
    }
    const change: ReplayChange = {
      ...d.event,
      layer: d.layer,
      ...describe(d),
      before: d.before,
      after: { action: after.action, rule: after.rule, reason: after.reason },
    };
    if (after.action === 'allow') report.newlyAllowed.push(change);
    else if (d.before.action === 'allow') report.newlyDenied.push(change);
    else report.otherChanges.push(change);
  }
  report.allowedBy = groups(report.newlyAllowed);
  report.deniedBy = groups(report.newlyDenied);
  return report;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** One line per destination or program: "would have allowed 12 requests to gist.github.com". */
export function replaySentences(r: ReplayReport, period: string): string[] {
  const noun = (g: ReplayGroup) =>
    g.layer === 'egress'
      ? `${plural(g.count, 'request')} to ${g.target}`
      : g.layer === 'packages'
        ? `${plural(g.count, 'fetch', 'fetches')} of the package ${g.target}`
        : `${plural(g.count, 'command')} running ${g.target}`;
  return [
    ...r.allowedBy.map((g) => `this change would have allowed ${noun(g)} ${period}`),
    ...r.deniedBy.map((g) => `this change would have denied ${noun(g)} ${period}`),
  ];
}
