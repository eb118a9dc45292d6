import type pg from 'pg';
import { type AuditStore, logId } from '../audit/index.ts';
import { AirlockError } from '../common/index.ts';
import { checkDecision } from './decisions.ts';
import {
  type DecisionSigner,
  otherHostsProposals,
  parseSharedRef,
  recordRefusedDecision,
  type RelayContext,
  type SharedProposal,
} from './queue.ts';

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
  opts: { reason?: string; expectHash?: string; sign: DecisionSigner },
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
  const r = await client.query(
    `INSERT INTO airlock.review_approvals (log_id, proposal_id, hash, by, from_log_id, reason, statement, key_id, signature)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
    [
      proposal.logId,
      proposal.id,
      proposal.hash,
      by,
      fromLogId,
      reason,
      signed.statement,
      signed.keyId,
      signed.signature,
    ],
  );
  if (r.rowCount !== 1)
    throw new AirlockError(
      'BAD_STATE',
      `${by} already approved proposal ${ref}`,
      'a second approval must come from another reviewer',
    );
  return proposal;
}

interface ApprovalRow {
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

// rows of this host not yet settled by one of its shipped review events for that (proposal, hash, by)
const UNSETTLED = `SELECT a.proposal_id, a.hash, a.by, a.from_log_id, a.reason, a.statement, a.key_id, a.signature FROM airlock.review_approvals a WHERE a.log_id = $1
  AND NOT EXISTS (SELECT 1 FROM airlock.events e WHERE e.log_id = a.log_id AND e.type IN ('review.approved', 'review.relay_refused')
    AND (airlock.try_jsonb(e.data) ->> 'proposal') = a.proposal_id::text AND (airlock.try_jsonb(e.data) ->> 'hash') = a.hash
    AND lower(airlock.try_jsonb(e.data) ->> 'by') = lower(a.by))
  ORDER BY a.ts LIMIT 200`;

/**
 * Applies approvals given on other hosts to this host's proposals (run by its shipper), each
 * only when signed by a key the org trusts over exactly this proposal and content hash; a
 * refused row is recorded as review.relay_refused (which settles it) and approves nothing.
 * `apply` is the review module's relay (it records the outcome either way).
 */
export async function relayApprovals(
  local: AuditStore,
  c: pg.ClientBase,
  apply: (a: RelayedApproval) => void,
  ctx: RelayContext,
): Promise<number> {
  const log = logId(local);
  const rows = (await c.query<ApprovalRow>(UNSETTLED, [log])).rows;
  let applied = 0;
  for (const r of rows) {
    const key = `approval\n${r.proposal_id}\n${r.hash}\n${r.by.toLowerCase()}`;
    if (ctx.seen.has(key)) continue;
    ctx.seen.add(key);
    const check = checkDecision({ statement: r.statement, keyId: r.key_id, signature: r.signature }, ctx.trust, {
      kind: 'review-approval',
      logId: log,
      item: Number(r.proposal_id),
      hash: r.hash,
      by: r.by,
      decision: 'approve',
    });
    if (!check.ok) {
      recordRefusedDecision(local, 'review.relay_refused', check.why, {
        proposal: Number(r.proposal_id),
        hash: r.hash,
        by: r.by,
        via: r.from_log_id,
        keyId: check.keyId,
      });
      continue;
    }
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
