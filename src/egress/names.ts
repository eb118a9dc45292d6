import { deny } from '../policy/index.ts';
import { resolveAndDecide, type TargetDecision, type TargetQuery } from './decide-egress.ts';
import { hostMatches, type HostRule } from './rules.ts';
import { nameHit, recordFinding, recordHit } from './guard.ts';
import {
  connectionRules,
  type Ctx,
  type EgressAnswer,
  type EgressAsker,
  type PendingAsk,
  type Tracked,
} from './context.ts';

// DNS is a channel too: every name the gateway resolves is a query that leaves the host.
// A name that carries a placeholder or a honeytoken is refused before any lookup (and is a
// finding); under a wildcard grant (*.example.com) a session may resolve only so many
// distinct names, and a label that looks like encoded data is a finding.

/** Shannon entropy in bits per character. */
function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Labels that look like encoded data (hex, base32/64 chunks) rather than a name someone chose. */
export function looksEncoded(labels: string): boolean {
  const s = labels.replace(/[.-]/g, '');
  if (s.length < 16) return false;
  return /[0-9a-f]{24,}/.test(s) || /[a-z0-9]{40,}/.test(s) || (entropy(s) >= 3.6 && /\d/.test(s));
}

function wildcardBudget(ctx: Ctx, t: Tracked, first: TargetDecision): TargetDecision | null {
  const rule = ctx.rules.allow.find((r) => r.id === first.rule && r.wildcard && hostMatches(r, first.host));
  if (!rule) return null;
  let seen = ctx.wildcardNames.get(rule.id);
  if (!seen) {
    seen = new Set();
    ctx.wildcardNames.set(rule.id, seen);
  }
  if (seen.has(first.host)) return null;
  const max = ctx.rules.limits.maxNamesPerWildcard;
  // record mode's catch-all counts as one wildcard over every name: its DNS queries are budgeted too
  const labels = rule.any ? first.host : first.host.slice(0, -(rule.host.length + 1));
  if (seen.size >= max) {
    const reason = `${rule.id} (*.${rule.host}) already resolved ${max} distinct names this session; ${first.host} is not looked up (DNS names can carry data out)`;
    recordFinding(ctx, t, 'medium', 'detect.dns-exfiltration', {
      title: 'Many distinct names under one wildcard',
      explanation: reason,
      kind: 'dns-exfiltration',
      wildcard: `*.${rule.host}`,
      names: seen.size,
    });
    return { ...deny('egress.limits.maxNamesPerWildcard', reason), host: first.host, kind: 'name', port: first.port };
  }
  seen.add(first.host);
  if (looksEncoded(labels)) {
    recordFinding(ctx, t, 'medium', 'detect.dns-exfiltration', {
      title: 'Encoded-looking name under a wildcard grant',
      kind: 'dns-exfiltration',
      wildcard: `*.${rule.host}`,
      explanation: `${first.host}: the labels under *.${rule.host} look like encoded data (a DNS exfiltration pattern)`,
    });
  }
  return null;
}

/** The gateway's decision for a target, with the name checks above; never throws. */
export async function decideAndResolve(ctx: Ctx, t: Tracked, q: TargetQuery): Promise<TargetDecision> {
  t.decided = q;
  const hit = nameHit(ctx, q.host);
  if (hit) {
    const h = recordHit(ctx, t, hit);
    return { ...deny(h.rule, `${h.reason}; the name was not resolved`), host: q.host, kind: 'name', port: q.port };
  }
  const d = await resolveAndDecide(connectionRules(ctx, t), q, ctx.resolver, (first) => wildcardBudget(ctx, t, first));
  return d.action === 'ask' ? askHuman(ctx, t, q, d) : d;
}

/** A grant for exactly host:port under `id`, whatever the scheme (the ask rule already matched the request). */
function exactGrant(id: string, d: TargetDecision, reason: string): HostRule {
  return {
    id,
    host: d.host,
    wildcard: false,
    ports: [d.port],
    schemes: ['http', 'https', 'tcp'],
    methods: null,
    paths: null,
    pathFold: false,
    explicitPorts: true,
    reason,
  };
}

/** The question concurrent connections to host:port share; asked anew once answered. */
function pendingAsk(ctx: Ctx, ask: EgressAsker, d: TargetDecision): PendingAsk {
  const key = `${d.host}:${d.port}`;
  let pending = ctx.pendingAsks.get(key);
  if (!pending) {
    const answer = ask({ host: d.host, port: d.port, rule: d.rule, reason: d.reason })
      .catch((e: unknown): EgressAnswer => ({
        decision: 'deny',
        by: null,
        reason: `the approval queue failed (${e instanceof Error ? e.message : String(e)})`,
      }))
      .finally(() => {
        if (ctx.pendingAsks.get(key) === pending) ctx.pendingAsks.delete(key);
      });
    pending = { answer, onceTaken: false };
    ctx.pendingAsks.set(key, pending);
  }
  return pending;
}

/** How many times a connection asks again when another waiting connection took a 'once' allow. */
const MAX_ASK_ROUNDS = 3;

/**
 * An `egress.ask` destination: the connection is held while a human answers (bounded by
 * egress.askTimeoutSeconds, enforced by the asker). Allowed for the session, the exact
 * host:port is granted for the rest of the session; allowed once, this connection alone
 * gets it (the first of the waiting ones; the others ask again). Either way the target is
 * decided again (address checks still apply). Denied, unanswered or failing: deny, naming
 * the ask rule.
 */
async function askHuman(ctx: Ctx, t: Tracked, q: TargetQuery, d: TargetDecision): Promise<TargetDecision> {
  const refuse = (why: string): TargetDecision => ({
    ...deny(d.rule, `${d.reason}; ${why}`),
    host: d.host,
    kind: d.kind,
    port: d.port,
  });
  if (!ctx.ask) return refuse('nobody can answer here (no approval queue), denied');
  for (let round = 0; round < MAX_ASK_ROUNDS; round++) {
    const pending = pendingAsk(ctx, ctx.ask, d);
    const a = await pending.answer;
    if (a.decision !== 'allow') return refuse(a.by ? `denied by ${a.by}` : a.reason || 'no answer in time, denied');
    if (a.scope === 'session') return grantForSession(ctx, t, q, d, a);
    if (!pending.onceTaken) {
      pending.onceTaken = true;
      t.onceGrant = exactGrant(
        `${d.rule}.once`,
        d,
        `${d.host}:${d.port} allowed for this connection by ${a.by ?? 'a human'}`,
      );
      recordGrant(ctx, d, a, 'once');
      return resolveAndDecide(connectionRules(ctx, t), q, ctx.resolver);
    }
  }
  return refuse(`allowed once for another connection; this one asked ${MAX_ASK_ROUNDS} times, denied`);
}

function recordGrant(ctx: Ctx, d: TargetDecision, a: EgressAnswer, scope: 'once' | 'session'): void {
  ctx.record({
    type: 'egress.ask_answered',
    session: ctx.session,
    severity: 'medium',
    decision: 'allow',
    rule: d.rule,
    data: { host: d.host, port: d.port, by: a.by, scope },
  });
}

function grantForSession(
  ctx: Ctx,
  t: Tracked,
  q: TargetQuery,
  d: TargetDecision,
  a: EgressAnswer,
): Promise<TargetDecision> {
  const id = `${d.rule}.answered`;
  if (!ctx.rules.allow.some((r) => r.id === id && r.host === d.host && r.ports?.includes(d.port))) {
    ctx.rules.allow.push(exactGrant(id, d, `${d.host}:${d.port} allowed for this session by ${a.by ?? 'a human'}`));
    recordGrant(ctx, d, a, 'session');
  }
  return resolveAndDecide(connectionRules(ctx, t), q, ctx.resolver);
}
