import { existsSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';
import { AirlockError, homeLayout, airlockHome } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';
import {
  parsePolicyText,
  readPolicyFile,
  resolvePolicy,
  DEFAULT_ORG_POLICY,
  type PolicySource,
  type LoadedPolicy,
} from '../policy/index.ts';
import { loadChange, rgit } from './diff.ts';
import { runChecks } from './checks/index.ts';
import {
  insertProposal,
  proposalHash,
  latestProposalId,
  decisionsFor,
  type Proposal,
  type ReviewDecision,
} from './store.ts';
import { SEVERITY_RANK, type ChangeSet, type Finding } from './types.ts';
import { commitFindings, readAgentCommits, type AgentCommit } from './commits.ts';
import { extraApproverRequired } from '../detect/index.ts';
import { policyReplayFindings } from './policy-replay.ts';

// A session's captured result becomes a proposal: the commits base..head of the TRUSTED
// result repo Airlock wrote, the canonical diff, the findings of every check under the
// policy the session ran under (org file + the BASE commit's airlock.yaml, never the
// agent's edited copy), and a content hash every approval is bound to.

export interface SessionResult {
  session: string;
  resultRepo: string;
  baseCommit: string;
  headCommit: string;
  commits: string[];
  repo: string | null;
  baseRef: string | null;
  startedBy: string | null;
  policyHash: string | null;
  /** what capture refused to read (a .git symlink or gitfile, alternates, nested repositories…), as findings */
  refusals: Finding[];
}

const SHA = /^[0-9a-f]{40}$/;

export function sessionResult(store: AuditStore, session: string, home = airlockHome()): SessionResult {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(session))
    throw new AirlockError(
      'USAGE',
      `invalid session id: ${JSON.stringify(session)}`,
      'list sessions with `airlock sessions`',
    );
  const results = store.query({ session, type: 'session.result' });
  if (!results.length) {
    const any = store.query({ session, limit: 1 }).length > 0;
    throw new AirlockError(
      'NOT_FOUND',
      any
        ? `session ${session} has no captured result (still running, or capture failed)`
        : `unknown session: ${session}`,
      any
        ? 'stop the session first; a capture failure is in `airlock audit` for the session'
        : 'list sessions with `airlock sessions`',
    );
  }
  const last = results[results.length - 1]!.data as {
    resultRepo?: string;
    baseCommit?: string;
    headCommit?: string;
    commits?: string[];
    refusals?: { rule?: string; path?: string; message?: string }[];
  };
  const start = store.query({ session, type: 'session.start' })[0]?.data as
    { repo?: string; baseRef?: string; startedBy?: string; policyHash?: string } | undefined;
  if (
    typeof last.resultRepo !== 'string' ||
    !SHA.test(last.baseCommit ?? '') ||
    !SHA.test(last.headCommit ?? '') ||
    !Array.isArray(last.commits)
  ) {
    throw new AirlockError(
      'BAD_STATE',
      `session ${session}: malformed session.result event`,
      'capture the session again',
    );
  }
  // The result repo must be the one Airlock wrote for this session, inside its home.
  const expected = join(homeLayout(home).sessions, session, 'result.git');
  let real: string;
  try {
    real = realpathSync(last.resultRepo);
  } catch {
    throw new AirlockError(
      'NOT_FOUND',
      `result repo of session ${session} is gone: ${last.resultRepo}`,
      'the session directory was removed; nothing to review',
    );
  }
  const expReal = existsSync(expected) ? realpathSync(expected) : expected;
  if (real !== expReal && !real.startsWith(realpathSync(homeLayout(home).sessions) + sep)) {
    throw new AirlockError(
      'TAMPERED',
      `result repo ${last.resultRepo} is not inside Airlock's sessions directory`,
      'refusing to review content from outside AIRLOCK_HOME',
    );
  }
  return {
    session,
    resultRepo: real,
    baseCommit: last.baseCommit!,
    headCommit: last.headCommit!,
    commits: last.commits.map(String),
    repo: start?.repo ?? null,
    baseRef: start?.baseRef ?? null,
    startedBy: start?.startedBy ?? null,
    policyHash: start?.policyHash ?? null,
    refusals: (Array.isArray(last.refusals) ? last.refusals : []).map((x) => ({
      check: 'review' as const,
      rule: `capture.${String(x.rule ?? 'refused').replace(/^capture\./, '')}`,
      severity: 'high' as const,
      file: '',
      line: 0,
      message: `capture refused ${JSON.stringify(String(x.path ?? ''))}: ${String(x.message ?? '')}`,
    })),
  };
}

/** Org policy path: explicit, AIRLOCK_ORG_POLICY, or /etc/airlock/policy.yaml when present. */
export function orgPolicyFile(explicit?: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (explicit) return explicit;
  if (env.AIRLOCK_ORG_POLICY) return env.AIRLOCK_ORG_POLICY;
  return existsSync(DEFAULT_ORG_POLICY) ? DEFAULT_ORG_POLICY : null;
}

/** The policy a review runs under: org file + airlock.yaml at the base commit, read from the trusted result repo. */
export function reviewPolicy(
  resultRepo: string,
  baseCommit: string,
  orgPolicy?: string,
): { loaded: LoadedPolicy; problems: Finding[] } {
  const sources: PolicySource[] = [];
  const problems: Finding[] = [];
  const org = orgPolicyFile(orgPolicy);
  if (org) sources.push(readPolicyFile(org, 'org'));
  const r = (() => {
    try {
      return rgit(resultRepo, ['cat-file', 'blob', `${baseCommit}:airlock.yaml`]);
    } catch {
      return null;
    }
  })();
  if (r !== null) {
    const origin = `airlock.yaml@${baseCommit.slice(0, 12)}`;
    try {
      sources.push({ kind: 'repo', origin, raw: parsePolicyText(r, origin), text: r });
    } catch (e) {
      problems.push({
        check: 'review',
        rule: 'review.policy-invalid',
        severity: 'high',
        file: 'airlock.yaml',
        line: 0,
        message: `the base commit's airlock.yaml is invalid (${e instanceof Error ? e.message.split('\n').slice(0, 3).join('; ') : String(e)}); org policy and defaults apply`,
      });
    }
  }
  return { loaded: resolvePolicy(sources), problems };
}

/** Reads the current state of the result repo for a proposal's refs. */
export function currentContent(resultRepo: string): { base: string; head: string; commits: string[] } {
  const ref = (name: string) => rgit(resultRepo, ['rev-parse', '--verify', '--quiet', `${name}^{commit}`]).trim();
  const base = ref('refs/airlock/base');
  const head = ref('refs/airlock/head');
  const commits = rgit(resultRepo, ['rev-list', '--reverse', `${base}..${head}`])
    .split('\n')
    .filter(Boolean);
  return { base, head, commits };
}

export interface ProposeOptions {
  orgPolicy?: string;
  home?: string;
}

type Content = { base: string; head: string; commits: string[] };

/** The result repo's content, refused (and recorded) when it no longer matches what was captured. */
function verifiedContent(store: AuditStore, session: string, res: SessionResult): Content {
  let cur: { base: string; head: string; commits: string[] };
  try {
    cur = currentContent(res.resultRepo);
  } catch (e) {
    throw new AirlockError(
      'BAD_STATE',
      `cannot read the result repo of session ${session}: ${e instanceof Error ? e.message : String(e)}`,
      'the capture is damaged; start a new session',
    );
  }
  if (cur.base !== res.baseCommit || cur.head !== res.headCommit || cur.commits.join() !== res.commits.join()) {
    store.append({
      type: 'review.tampered',
      session,
      severity: 'critical',
      decision: 'deny',
      rule: 'builtin.review.integrity',
      data: {
        recorded: { base: res.baseCommit, head: res.headCommit, commits: res.commits.length },
        found: { base: cur.base, head: cur.head, commits: cur.commits.length },
      },
    });
    throw new AirlockError(
      'TAMPERED',
      `the result repo of session ${session} no longer matches what was captured (head ${cur.head.slice(0, 12)}, recorded ${res.headCommit.slice(0, 12)})`,
      'do not review it; investigate with `airlock audit verify`',
    );
  }
  return cur;
}

/** The change and the agent's commits, a capture too large to review recorded as refused. */
function loadReviewedChange(
  store: AuditStore,
  session: string,
  res: SessionResult,
  cur: Content,
): { change: ChangeSet; agentCommits: AgentCommit[] } {
  let change: ChangeSet;
  let agentCommits: AgentCommit[];
  try {
    change = loadChange(res.resultRepo, cur.base, cur.head, cur.commits);
    agentCommits = readAgentCommits(res.resultRepo, cur.commits);
  } catch (e) {
    if (e instanceof AirlockError && e.kind === 'TOO_LARGE') {
      store.append({
        type: 'review.refused',
        session,
        severity: 'high',
        decision: 'deny',
        rule: 'builtin.review.bounds',
        data: { reason: e.message, head: cur.head },
      });
    }
    throw e;
  }
  return { change, agentCommits };
}

/** The new proposal and each of its findings, as audit events. */
function recordProposed(
  store: AuditStore,
  session: string,
  proposal: Proposal,
  findings: Finding[],
  policyHashes: { review: string; session: SessionResult['policyHash'] },
): void {
  const hash = proposal.hash;
  const bySeverity: Record<string, number> = {};
  for (const f of findings) bySeverity[f.severity] = (bySeverity[f.severity] ?? 0) + 1;
  store.appendMany([
    {
      type: 'review.proposed',
      session,
      severity: findings.some((f) => f.blocking) ? 'high' : 'info',
      rule: 'review.checks',
      data: {
        proposal: proposal.id,
        hash,
        base: proposal.base,
        head: proposal.head,
        commits: proposal.commits,
        stats: proposal.stats,
        policyHash: policyHashes.review,
        sessionPolicyHash: policyHashes.session,
        findings: findings.length,
        bySeverity,
        blocking: findings.filter((f) => f.blocking).length,
      },
    },
    ...findings.map((f) => ({
      type: 'review.finding',
      session,
      severity: f.severity,
      rule: f.rule,
      data: {
        proposal: proposal.id,
        hash,
        check: f.check,
        file: f.file,
        line: f.line,
        column: f.column ?? null,
        message: f.message,
        fingerprint: f.fingerprint ?? null,
        blocking: !!f.blocking,
      },
    })),
  ]);
}

export async function createProposal(
  store: AuditStore,
  session: string,
  opts: ProposeOptions = {},
): Promise<{ proposal: Proposal; created: boolean }> {
  const res = sessionResult(store, session, opts.home);
  const cur = verifiedContent(store, session, res);
  const { change, agentCommits } = loadReviewedChange(store, session, res, cur);
  const { loaded, problems } = reviewPolicy(res.resultRepo, cur.base, opts.orgPolicy);
  problems.push(...res.refusals, ...commitFindings(agentCommits, loaded.policy, res.startedBy));
  problems.push(
    ...policyReplayFindings(
      store,
      change,
      loaded.sources.filter((s) => s.kind === 'org'),
    ),
  );
  const findings = [...problems, ...(await runChecks(change, loaded.policy))];
  for (const f of problems) f.blocking = SEVERITY_RANK[f.severity] >= SEVERITY_RANK[loaded.policy.review.blockAt];
  const hash = proposalHash({
    session,
    base: cur.base,
    head: cur.head,
    commits: cur.commits,
    diffSha256: change.diffSha256,
  });
  const out = insertProposal(store, {
    session,
    hash,
    resultRepo: res.resultRepo,
    base: cur.base,
    head: cur.head,
    commits: cur.commits,
    diffSha256: change.diffSha256,
    repo: res.repo,
    baseRef: res.baseRef,
    startedBy: res.startedBy,
    policyHash: loaded.hash,
    policy: loaded.policy,
    findings,
    stats: {
      files: change.files.length,
      added: change.addedLines,
      deleted: change.deletedLines,
      commits: cur.commits.length,
    },
  });
  if (out.created)
    recordProposed(store, session, out.proposal, findings, { review: loaded.hash, session: res.policyHash });
  return out;
}

// ---- status -------------------------------------------------------------------------

export type ProposalState = 'pending' | 'approved' | 'rejected' | 'applied' | 'superseded';

export interface ProposalStatus {
  state: ProposalState;
  approvers: string[];
  overrides: { by: string; reason: string }[];
  required: number;
  group: string | null;
  escalated: boolean;
  missing: string[];
  blocking: Finding[];
  rejectedBy: { by: string; reason: string } | null;
  applied: { branch: string; commit: string; url: string | null; by: string | null } | null;
  lastApplyError: string | null;
}

const norm = (s: string) => s.trim().toLowerCase();

export function inGroup(policy: Proposal['policy'], group: string, who: string): boolean {
  return (policy.review.approvals.groups[group] ?? []).some((m) => norm(m) === norm(who));
}

export function proposalStatus(
  store: AuditStore,
  proposal: Proposal,
  decisions: ReviewDecision[] = decisionsFor(store, proposal.id),
): ProposalStatus {
  const pol = proposal.policy.review;
  const valid = decisions.filter((d) => d.proposalHash === proposal.hash); // any change to the proposal voids earlier decisions
  const approvals = valid.filter((d) => d.kind === 'approve');
  const approvers = [...new Map(approvals.map((d) => [norm(d.by ?? ''), d.by ?? ''])).values()];
  const overrides = approvals.filter((d) => d.override).map((d) => ({ by: d.by ?? '', reason: d.reason ?? '' }));
  const blocking = proposal.findings.filter((f) => f.blocking);
  const escalated =
    proposal.findings.some((f) => SEVERITY_RANK[f.severity] >= SEVERITY_RANK[pol.approvals.escalateOn]) ||
    (pol.approvals.escalateOnProtectedPaths && proposal.findings.some((f) => f.rule === 'protectedPaths.protected'));
  let required = pol.approvals.required;
  let group: string | null = null;
  if (escalated) {
    required = Math.max(required, pol.approvals.escalated.required);
    group = pol.approvals.escalated.group || null;
  }
  const missing: string[] = [];
  // anomaly detection can demand one more approver for this session's change
  const extra = extraApproverRequired(store, proposal.session);
  if (extra.required) required += 1;
  if (pol.approvals.separationOfDuties) {
    if (proposal.startedBy === null) required = Math.max(required, 2);
    else {
      // the starter may appear as their OS user, git email or git name: all count as them
      const start = store.query({ session: proposal.session, type: 'session.start' })[0]?.data as
        { startedByIdentities?: string[] } | undefined;
      const starter = new Set(
        [proposal.startedBy, ...(start?.startedByIdentities ?? [])].filter(Boolean).map((x) => norm(x!)),
      );
      if (approvers.length > 0 && approvers.every((a) => starter.has(norm(a))))
        missing.push(`an approver other than ${proposal.startedBy}, who started the agent (separation of duties)`);
    }
  }
  if (approvers.length < required)
    missing.push(
      `${required - approvers.length} more approval${required - approvers.length === 1 ? '' : 's'} (${required} required${escalated ? ', escalated' : ''}${extra.required ? ', +1 for anomaly findings' : ''})`,
    );
  if (group) {
    if (!pol.approvals.groups[group])
      missing.push(`an approver from group "${group}", which the org policy does not define`);
    else if (!approvers.some((a) => inGroup(proposal.policy, group!, a)))
      missing.push(`an approver from group "${group}"`);
  }
  if (
    blocking.length &&
    !approvals.some((d) => d.override && pol.overrideRoles.some((r) => inGroup(proposal.policy, r, d.by ?? '')))
  ) {
    missing.push(
      `an override of ${blocking.length} blocking finding${blocking.length === 1 ? '' : 's'} by a member of ${pol.overrideRoles.length ? pol.overrideRoles.join(', ') : '(no override role is configured)'}`,
    );
  }
  const rej = valid.find((d) => d.kind === 'reject') ?? decisions.find((d) => d.kind === 'reject');
  const app = [...valid].reverse().find((d) => d.kind === 'apply');
  const fail = [...decisions].reverse().find((d) => d.kind === 'apply_failed');
  let state: ProposalState = missing.length ? 'pending' : 'approved';
  if (app) state = 'applied';
  else if (rej) state = 'rejected';
  else if ((latestProposalId(store, proposal.session) ?? proposal.id) > proposal.id) state = 'superseded';
  return {
    state,
    approvers,
    overrides,
    required,
    group,
    escalated,
    missing,
    blocking,
    rejectedBy: rej ? { by: rej.by ?? '', reason: rej.reason ?? '' } : null,
    applied: app
      ? {
          branch: String(app.data.branch ?? ''),
          commit: String(app.data.commit ?? ''),
          url: (app.data.url as string | null) ?? null,
          by: app.by,
        }
      : null,
    lastApplyError: fail && (!app || fail.seq > app.seq) ? String(fail.reason ?? '') : null,
  };
}

/** Refuses a proposal whose stored record or result repo changed since it was made. */
export function verifyProposal(store: AuditStore, proposal: Proposal): void {
  const fail = (why: string) => {
    store.append({
      type: 'review.tampered',
      session: proposal.session,
      severity: 'critical',
      decision: 'deny',
      rule: 'builtin.review.integrity',
      data: { proposal: proposal.id, hash: proposal.hash, why },
    });
    throw new AirlockError(
      'TAMPERED',
      `proposal ${proposal.id} changed after it was made (${why}); earlier approvals do not apply`,
      `run \`airlock propose ${proposal.session}\` to make a new proposal and review it again`,
    );
  };
  if (proposalHash(proposal) !== proposal.hash) fail('stored record does not match its hash');
  let cur: { base: string; head: string; commits: string[] };
  try {
    cur = currentContent(proposal.resultRepo);
  } catch {
    return fail('result repo unreadable');
  }
  if (cur.base !== proposal.base || cur.head !== proposal.head || cur.commits.join() !== proposal.commits.join())
    fail(`result repo now at ${cur.head.slice(0, 12)}`);
  const diff = loadChange(proposal.resultRepo, proposal.base, proposal.head, proposal.commits);
  if (diff.diffSha256 !== proposal.diffSha256) fail('diff differs');
}
