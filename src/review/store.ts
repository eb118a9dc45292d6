import { createHash } from 'node:crypto';
import type { AuditStore } from '../audit/index.ts';
import { canonicalJson } from '../common/index.ts';
import type { Policy } from '../policy/index.ts';
import type { Finding } from './types.ts';

// Proposals and the decisions on them live in the audit database, in tables of their own
// (created by the audit schema's migrations, src/audit/schema.ts) that refuse UPDATE and DELETE (append-only, like the event log). Status is derived
// from the decisions, never stored, so there is no state to tamper with but the log.

export interface ProposalStats {
  files: number;
  added: number;
  deleted: number;
  commits: number;
}

export interface Proposal {
  id: number;
  session: string;
  hash: string;
  created: string;
  resultRepo: string;
  base: string;
  head: string;
  commits: string[];
  diffSha256: string;
  repo: string | null;
  baseRef: string | null;
  startedBy: string | null;
  policyHash: string;
  policy: Policy;
  findings: Finding[];
  stats: ProposalStats;
}

export type DecisionKind = 'approve' | 'reject' | 'apply' | 'apply_failed';
export interface ReviewDecision {
  seq: number;
  proposalId: number;
  kind: DecisionKind;
  by: string | null;
  bySource: string | null;
  proposalHash: string;
  reason: string | null;
  override: boolean;
  data: Record<string, unknown>;
  ts: string;
}

/** The content hash a proposal (and every approval of it) is bound to. */
export function proposalHash(p: {
  session: string;
  base: string;
  head: string;
  commits: string[];
  diffSha256: string;
}): string {
  return createHash('sha256')
    .update(
      canonicalJson({ v: 1, session: p.session, base: p.base, head: p.head, commits: p.commits, diff: p.diffSha256 }),
    )
    .digest('hex');
}

interface PRow {
  id: number;
  session: string;
  hash: string;
  created: string;
  result_repo: string;
  base: string;
  head: string;
  commits: string;
  diff_sha256: string;
  repo: string | null;
  base_ref: string | null;
  started_by: string | null;
  policy_hash: string;
  policy: string;
  findings: string;
  stats: string;
}

function toProposal(r: PRow): Proposal {
  return {
    id: r.id,
    session: r.session,
    hash: r.hash,
    created: r.created,
    resultRepo: r.result_repo,
    base: r.base,
    head: r.head,
    commits: JSON.parse(r.commits) as string[],
    diffSha256: r.diff_sha256,
    repo: r.repo,
    baseRef: r.base_ref,
    startedBy: r.started_by,
    policyHash: r.policy_hash,
    policy: JSON.parse(r.policy) as Policy,
    findings: JSON.parse(r.findings) as Finding[],
    stats: JSON.parse(r.stats) as ProposalStats,
  };
}

export function insertProposal(
  store: AuditStore,
  proposal: Omit<Proposal, 'id' | 'created'>,
): { proposal: Proposal; created: boolean } {
  const existing = store.tables
    .prepare('SELECT * FROM review_proposals WHERE session = ? AND hash = ?')
    .get(proposal.session, proposal.hash) as PRow | undefined;
  if (existing) return { proposal: toProposal(existing), created: false };
  const r = store.tables
    .prepare(
      `INSERT INTO review_proposals (session, hash, created, result_repo, base, head, commits, diff_sha256, repo, base_ref, started_by, policy_hash, policy, findings, stats)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      proposal.session,
      proposal.hash,
      new Date().toISOString(),
      proposal.resultRepo,
      proposal.base,
      proposal.head,
      JSON.stringify(proposal.commits),
      proposal.diffSha256,
      proposal.repo,
      proposal.baseRef,
      proposal.startedBy,
      proposal.policyHash,
      JSON.stringify(proposal.policy),
      JSON.stringify(proposal.findings),
      JSON.stringify(proposal.stats),
    );
  return { proposal: getProposal(store, Number(r.lastInsertRowid))!, created: true };
}

export function getProposal(store: AuditStore, id: number): Proposal | null {
  const r = store.tables.prepare('SELECT * FROM review_proposals WHERE id = ?').get(id) as PRow | undefined;
  return r ? toProposal(r) : null;
}

export function listProposals(store: AuditStore, limit = 500): Proposal[] {
  return (
    store.tables.prepare('SELECT * FROM review_proposals ORDER BY id DESC LIMIT ?').all(limit) as unknown as PRow[]
  )
    .map(toProposal)
    .reverse();
}

export function latestProposalId(store: AuditStore, session: string): number | null {
  const r = store.tables.prepare('SELECT MAX(id) AS id FROM review_proposals WHERE session = ?').get(session) as {
    id: number | null;
  };
  return r.id;
}

interface DRow {
  seq: number;
  proposal_id: number;
  kind: string;
  by: string | null;
  by_source: string | null;
  proposal_hash: string;
  reason: string | null;
  override: number;
  data: string;
  ts: string;
}

export function decisionsFor(store: AuditStore, proposalId: number): ReviewDecision[] {
  return (
    store.tables
      .prepare('SELECT * FROM review_decisions WHERE proposal_id = ? ORDER BY seq')
      .all(proposalId) as unknown as DRow[]
  ).map((r) => ({
    seq: r.seq,
    proposalId: r.proposal_id,
    kind: r.kind as DecisionKind,
    by: r.by,
    bySource: r.by_source,
    proposalHash: r.proposal_hash,
    reason: r.reason,
    override: r.override === 1,
    data: JSON.parse(r.data) as Record<string, unknown>,
    ts: r.ts,
  }));
}

export function insertDecision(store: AuditStore, d: Omit<ReviewDecision, 'seq' | 'ts'>): void {
  store.tables
    .prepare(
      'INSERT INTO review_decisions (proposal_id, kind, by, by_source, proposal_hash, reason, override, data, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    .run(
      d.proposalId,
      d.kind,
      d.by,
      d.bySource,
      d.proposalHash,
      d.reason,
      d.override ? 1 : 0,
      JSON.stringify(d.data),
      new Date().toISOString(),
    );
}
