import { AirlockError } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';
import { assertOutsideSandbox, humanIdentity } from '../command-rules/index.ts';
import { getProposal, insertDecision, decisionsFor, type Proposal } from './store.ts';
import { proposalStatus, verifyProposal, inGroup, type ProposalStatus } from './proposal.ts';

// Human decisions on a proposal. Each is bound to the proposal's content hash, recorded
// append-only with the identity as given, and an audit event. Approvals are refused from
// inside a sandbox; a blocking finding needs an override from a policy-named role with a
// recorded reason.

export function requireProposal(store: AuditStore, id: number): Proposal {
  const p = getProposal(store, id);
  if (!p) throw new AirlockError('NOT_FOUND', `unknown proposal: ${id}`, 'list proposals with `airlock review list`');
  return p;
}

function refuseFinal(p: Proposal, st: ProposalStatus, what: string): void {
  if (st.state === 'applied')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${p.id} was already applied (branch ${st.applied?.branch})`,
      'nothing to do',
    );
  if (st.state === 'rejected')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${p.id} was rejected by ${st.rejectedBy?.by}: ${st.rejectedBy?.reason}; it cannot be ${what}`,
      `start a new session, or \`airlock propose ${p.session}\` after new work`,
    );
  if (st.state === 'superseded')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${p.id} was superseded by a newer proposal for session ${p.session}`,
      'review the newest one (`airlock review list`)',
    );
}

export interface ApproveOptions {
  as?: string;
  overrideReason?: string;
  env?: NodeJS.ProcessEnv;
  /** the log id of the host the approval was given on, when it came through the shared store */
  via?: string;
}

/** An override of blocking findings: refused (and recorded) without a reason or for someone outside review.overrideRoles. */
function assertMayOverride(store: AuditStore, proposal: Proposal, identity: string, reason: string): void {
  if (!reason)
    throw new AirlockError('USAGE', '--override-reason needs a reason', 'say why the blocking findings are acceptable');
  const roles = proposal.policy.review.overrideRoles;
  if (roles.some((r) => inGroup(proposal.policy, r, identity))) return;
  store.append({
    type: 'review.override_denied',
    session: proposal.session,
    severity: 'high',
    decision: 'deny',
    rule: 'review.overrideRoles',
    data: { proposal: proposal.id, hash: proposal.hash, by: identity },
  });
  throw new AirlockError(
    'DENIED',
    `${identity} may not override blocking findings (review.overrideRoles: ${roles.length ? roles.join(', ') : 'none configured'})`,
    'ask a member of an override role, or fix the findings in a new session',
  );
}

/** A plain approval of a proposal with blocking findings: refused (and recorded) unless an override role already approved this content. */
function refuseUnlessBlockingOverridden(store: AuditStore, proposal: Proposal, identity: string): void {
  const blocking = proposal.findings.filter((f) => f.blocking);
  if (
    !blocking.length ||
    decisionsFor(store, proposal.id).some(
      (d) =>
        d.kind === 'approve' &&
        d.override &&
        d.proposalHash === proposal.hash &&
        proposal.policy.review.overrideRoles.some((r) => inGroup(proposal.policy, r, d.by ?? '')),
    )
  )
    return;
  store.append({
    type: 'review.approval_refused',
    session: proposal.session,
    severity: 'medium',
    decision: 'deny',
    rule: 'review.blockAt',
    data: { proposal: proposal.id, hash: proposal.hash, by: identity, blocking: blocking.length },
  });
  const list = blocking
    .slice(0, 10)
    .map((f) => `  ${f.file || '(change)'}${f.line ? `:${f.line}` : ''} ${f.rule} [${f.severity}]`)
    .join('\n');
  throw new AirlockError(
    'DENIED',
    `proposal ${proposal.id} has ${blocking.length} blocking finding${blocking.length === 1 ? '' : 's'}:\n${list}`,
    proposal.policy.review.overrideRoles.length
      ? `a member of ${proposal.policy.review.overrideRoles.join(', ')} may approve with --override-reason TEXT`
      : 'reject it, or fix the findings in a new session (no override role is configured)',
  );
}

export function approveProposal(
  store: AuditStore,
  id: number,
  opts: ApproveOptions = {},
): { proposal: Proposal; status: ProposalStatus; by: string } {
  assertOutsideSandbox(store, opts.env);
  const proposal = requireProposal(store, id);
  refuseFinal(proposal, proposalStatus(store, proposal), 'approved');
  verifyProposal(store, proposal);
  const who = humanIdentity(opts.as);
  const mine = decisionsFor(store, proposal.id).filter(
    (d) =>
      d.kind === 'approve' && d.proposalHash === proposal.hash && d.by?.toLowerCase() === who.identity.toLowerCase(),
  );
  if (mine.length)
    throw new AirlockError(
      'BAD_STATE',
      `${who.identity} already approved proposal ${proposal.id}`,
      'a second approval must come from another reviewer',
    );
  const reason = opts.overrideReason?.trim() ?? '';
  let override = false;
  if (opts.overrideReason !== undefined) {
    assertMayOverride(store, proposal, who.identity, reason);
    override = true;
  } else refuseUnlessBlockingOverridden(store, proposal, who.identity);
  insertDecision(store, {
    proposalId: proposal.id,
    kind: 'approve',
    by: who.identity,
    bySource: who.source,
    proposalHash: proposal.hash,
    reason: override ? reason : null,
    override,
    data: {},
  });
  const status = proposalStatus(store, proposal);
  store.append({
    type: 'review.approved',
    session: proposal.session,
    severity: override ? 'high' : 'info',
    decision: 'allow',
    rule: override ? 'review.overrideRoles' : 'review.approvals',
    data: {
      proposal: proposal.id,
      hash: proposal.hash,
      by: who.identity,
      source: who.source,
      override,
      reason: override ? reason : null,
      state: status.state,
      missing: status.missing,
      ...(opts.via ? { via: opts.via } : {}),
    },
  });
  return { proposal: proposal, status, by: who.identity };
}

/**
 * The shipper's relay for an approval given on another host: the same rules as one given
 * here (content hash, separation of duties, blocking findings), the outcome recorded either
 * way: review.approved (with `via`), or review.relay_refused naming why.
 */
export function localApprovalRelay(
  store: AuditStore,
): (a: { proposal: number; hash: string; by: string; fromLogId: string }) => void {
  return (a) => {
    const p = getProposal(store, a.proposal);
    try {
      if (!p) throw new AirlockError('NOT_FOUND', `unknown proposal: ${a.proposal}`, '');
      if (p.hash !== a.hash)
        throw new AirlockError(
          'DENIED',
          `approved content ${a.hash.slice(0, 12)} is not the proposal's ${p.hash.slice(0, 12)}`,
          '',
        );
      approveProposal(store, a.proposal, { as: a.by, via: a.fromLogId });
    } catch (e) {
      store.append({
        type: 'review.relay_refused',
        session: p?.session ?? null,
        severity: 'medium',
        decision: 'deny',
        rule: 'review.relay',
        data: {
          proposal: a.proposal,
          hash: a.hash,
          by: a.by,
          via: a.fromLogId,
          reason: e instanceof Error ? e.message : String(e),
        },
      });
    }
  };
}

export function rejectProposal(
  store: AuditStore,
  id: number,
  options: { as?: string; reason: string; env?: NodeJS.ProcessEnv },
): { proposal: Proposal; by: string } {
  if (!options.reason?.trim())
    throw new AirlockError(
      'USAGE',
      'a rejection needs --reason TEXT',
      'say what is wrong so the next session can fix it',
    );
  assertOutsideSandbox(store, options.env);
  const p = requireProposal(store, id);
  refuseFinal(p, proposalStatus(store, p), 'rejected');
  const who = humanIdentity(options.as);
  insertDecision(store, {
    proposalId: p.id,
    kind: 'reject',
    by: who.identity,
    bySource: who.source,
    proposalHash: p.hash,
    reason: options.reason.trim(),
    override: false,
    data: {},
  });
  store.append({
    type: 'review.rejected',
    session: p.session,
    severity: 'info',
    decision: 'deny',
    rule: 'review.human',
    data: { proposal: p.id, hash: p.hash, by: who.identity, source: who.source, reason: options.reason.trim() },
  });
  return { proposal: p, by: who.identity };
}
