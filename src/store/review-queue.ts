import type pg from 'pg';
import { type AuditStore, logId } from '../audit/index.ts';
import { AirlockError } from '../common/index.ts';
import { APPROVER_KEYS_RULE, checkDecision } from './decisions.ts';
import { approverTrust } from './connect.ts';
import { type DecisionSigner, otherHostsProposals, parseSharedRef, type SharedProposal } from './queue.ts';
import {
  claimsTrustedKey,
  insertUnlessDecided,
  judged,
  recordFlood,
  recordRefusal,
  type RelayContext,
  relayContext,
  rowsInOrder,
  type SlotRows,
  trustedRows,
} from './relay-rows.ts';

// Review approvals across hosts. A reviewer on host B approves host A's proposal as it was
// shipped (its content hash); the row waits in airlock.review_approvals until A's shipper
// applies it through A's own review rules. A's verdict (review.approved, or
// review.relay_refused naming why) is an event of A's chain: once shipped, the row is done.

/** Queues an approval of another host's proposal, bound to the hash it has in the shared store. */
export async function approveSharedProposal(
  client: pg.ClientBase,
  ref: string,
  by: string,
  fromLogId: string,
  opts: {
    reason?: string;
    expectHash?: string;
    sign: DecisionSigner;
    /** keys whose approvals count (default: the org policy's approverKeys) */
    trust?: RelayContext['trust'];
  },
): Promise<SharedProposal> {
  const parsed = parseSharedRef(ref);
  if (!parsed)
    throw new AirlockError(
      'USAGE',
      `${JSON.stringify(ref)} is not a proposal on another host`,
      'use the id shown by `airlock review list`, such as 3@1a2b3c4d',
    );
  const proposal = (await otherHostsProposals(client, fromLogId)).find(
    (x) => x.id === parsed.askId && x.logId.startsWith(parsed.host),
  );
  if (!proposal)
    throw new AirlockError(
      'NOT_FOUND',
      `no proposal ${ref} in the shared store`,
      'list them with `airlock review list`',
    );
  if (proposal.state !== 'pending' && proposal.state !== 'approved')
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${ref} is ${proposal.state}; it cannot be approved`,
      'review the newest one (`airlock review list`)',
    );
  if (!proposal.hash)
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${ref} has no content hash in the shared store`,
      'approve it on its own host',
    );
  if (opts.expectHash !== undefined && opts.expectHash !== proposal.hash) {
    throw new AirlockError(
      'BAD_STATE',
      `proposal ${ref} is not the change the reviewer saw (hash sha256:${proposal.hash.slice(0, 12)})`,
      'reload the proposal and review it again',
    );
  }
  const reason = opts.reason?.trim() || null;
  const signed = opts.sign({
    kind: 'review-approval',
    logId: proposal.logId,
    item: proposal.id,
    hash: proposal.hash,
    decision: 'approve',
    by,
    reason,
    ts: new Date().toISOString(),
    from: fromLogId,
  });
  const row = [proposal.logId, proposal.id, proposal.hash, by, fromLogId, reason];
  const trust = opts.trust ?? approverTrust();
  // approvers serialize per proposal; a reviewer who already holds a valid approval is refused
  await insertUnlessDecided(client, {
    lock: ['airlock.approval', proposal.logId, proposal.id],
    decided: () => validApprovalExists(client, proposal, by, trust),
    refusal: new AirlockError(
      'BAD_STATE',
      `${by} already approved proposal ${ref}`,
      'a second approval must come from another reviewer',
    ),
    insert: `INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, reason, statement, key_id, signature)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    params: [...row, signed.statement, signed.keyId, signed.signature],
  });
  return proposal;
}

interface ApprovalRow {
  id: string;
  written_by: string;
  proposal_id: string;
  hash: string;
  by: string;
  from_log_id: string;
  reason: string | null;
  statement: string | null;
  key_id: string | null;
  signature: string | null;
}

export interface RelayedApproval {
  proposal: number;
  hash: string;
  by: string;
  fromLogId: string;
  reason: string | null;
}

const APPROVAL_COLUMNS =
  'a.id, a.written_by, a.proposal_id, a.hash, a.by, a.from_log_id, a.reason, a.statement, a.key_id, a.signature';
// a row is settled by this host's shipped verdict on its (proposal, hash, approver) — review.approved,
// or review.relay_refused by the review rules — or by a refusal of this very row (its signature):
// a forged row's refusal never settles the real approval of the same reviewer
const UNSETTLED = `NOT EXISTS (SELECT 1 FROM airlock.events e WHERE e.log_id = a.log_id AND e.type IN ('review.approved', 'review.relay_refused')
    AND (airlock.try_jsonb(e.data) ->> 'proposal') = a.proposal_id::text AND (airlock.try_jsonb(e.data) ->> 'hash') = a.hash
    AND lower(airlock.try_jsonb(e.data) ->> 'by') = lower(a.by)
    AND (e.rule IS DISTINCT FROM '${APPROVER_KEYS_RULE}' OR (airlock.try_jsonb(e.data) ->> 'row') = a.id::text))`;
// this host's unsettled rows, along the index review_approvals_by_writer (trusted scan) or
// review_approvals_in_order (refusal scan)
const approvalsOf = (log: string): SlotRows => ({
  table: 'review_approvals',
  columns: APPROVAL_COLUMNS,
  where: 'a.log_id = $1',
  params: [log],
  filter: { sql: () => UNSETTLED, params: [] },
});
// one reviewer's rows for one proposal and hash (is there a valid one already?)
const reviewerApprovals = (p: SharedProposal, by: string): SlotRows => ({
  table: 'review_approvals',
  columns: APPROVAL_COLUMNS,
  where: 'a.log_id = $1',
  params: [p.logId],
  filter: {
    sql: (i) => `a.proposal_id = $${i} AND a.hash = $${i + 1} AND lower(a.by) = lower($${i + 2})`,
    params: [p.id, p.hash, by],
  },
});

const checkApproval = (r: ApprovalRow, log: string, trust: RelayContext['trust']) =>
  checkDecision({ statement: r.statement, keyId: r.key_id, signature: r.signature }, trust, {
    kind: 'review-approval',
    logId: log,
    item: Number(r.proposal_id),
    hash: r.hash,
    by: r.by,
    decision: 'approve',
  });

const SLOT = 'approvals';
const reviewerSlot = (r: ApprovalRow) => `${r.proposal_id}\n${r.hash}\n${r.by.toLowerCase()}`;

function refuseApproval(local: AuditStore, ctx: RelayContext, r: ApprovalRow, why: string, keyId: string | null) {
  recordRefusal(local, ctx, `approval\n${r.proposal_id}`, 'review.relay_refused', why, {
    proposal: Number(r.proposal_id),
    hash: r.hash,
    by: r.by,
    via: r.from_log_id,
    keyId,
    row: Number(r.id),
  });
}

/**
 * Applies approvals given on other hosts to this host's proposals (run by its shipper): per
 * reviewer, proposal and hash, the first row signed by a key the org trusts over exactly this
 * proposal and content hash. A refused row is recorded as review.relay_refused naming the row
 * (which settles that row only) and approves nothing; bounded per poll (relay-rows.ts).
 * `apply` is the review module's relay (it records the outcome either way).
 */
export async function relayApprovals(
  local: AuditStore,
  c: pg.ClientBase,
  apply: (a: RelayedApproval) => void,
  ctx: RelayContext,
): Promise<number> {
  const log = logId(local);
  await refuseUntrustedApprovals(local, c, log, ctx);
  const { rows, flooding } = await trustedRows<ApprovalRow>(c, ctx, SLOT, approvalsOf(log));
  await recordFlood(local, c, ctx, SLOT, { type: 'review.approval_flood', flooding, data: {} });
  const done = new Set<string>();
  let applied = 0;
  for (const r of rows) {
    judged(ctx, SLOT, r);
    if (done.has(reviewerSlot(r))) continue; // this reviewer's first valid row was applied this poll
    const check = checkApproval(r, log, ctx.trust);
    if (!check.ok) {
      refuseApproval(local, ctx, r, check.why, check.keyId);
      continue;
    }
    done.add(reviewerSlot(r));
    apply({
      proposal: check.statement.item,
      hash: r.hash,
      by: check.statement.by,
      fromLogId: check.statement.from,
      reason: check.statement.reason,
    });
    applied += 1;
  }
  return applied;
}

/** Records (bounded) the refusal of rows claiming no trusted key: unsigned, or signed by a key the org does not list. */
async function refuseUntrustedApprovals(local: AuditStore, c: pg.ClientBase, log: string, ctx: RelayContext) {
  const { rows, flooding } = await rowsInOrder<ApprovalRow>(c, ctx, SLOT, approvalsOf(log));
  await recordFlood(local, c, ctx, SLOT, { type: 'review.approval_flood', flooding, data: {} });
  for (const r of rows) {
    judged(ctx, SLOT, r, '*');
    if (claimsTrustedKey(ctx, r)) continue; // judged, signature and all, by the trusted scan
    const check = checkApproval(r, log, ctx.trust);
    if (!check.ok) refuseApproval(local, ctx, r, check.why, check.keyId);
  }
}

/** Whether `by` already holds a valid (trusted, verifying) approval of this proposal and hash. */
async function validApprovalExists(c: pg.ClientBase, p: SharedProposal, by: string, trust: RelayContext['trust']) {
  const { rows } = await trustedRows<ApprovalRow>(c, relayContext(trust), '', reviewerApprovals(p, by));
  return rows.some((r) => checkApproval(r, p.logId, trust).ok);
}
