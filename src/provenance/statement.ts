import type { Checkpoint, InclusionProofDoc, Severity } from '../audit/index.ts';

// The in-toto Statement (v1) Airlock signs for every change it pushes: the subject is the
// pushed commit and its tree (git object ids), the predicate says how it was approved.

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'https://airlock.dev/provenance/v1';
/** Where the envelope travels with the commit; pushed with the branch. */
export const NOTES_REF = 'refs/notes/airlock-provenance';

/** The review policy in force when the change was applied, as Airlock computed it (escalations included). */
export interface ReviewRequirement {
  required: number;
  separationOfDuties: boolean;
  /** who started the agent and every identity that counts as them */
  startedBy: string | null;
  startedByIdentities: string[];
  /** an approver must come from this group (escalation), with these members */
  group: string | null;
  groupMembers: string[];
  /** blocking findings need an approval with override by a member of these */
  blockingFindings: number;
  overrideMembers: string[];
}

export interface ProvenanceApproval {
  by: string;
  time: string;
  proposalHash: string;
  override: boolean;
  eventId: string;
}
export interface ProvenanceFinding {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  blocking: boolean;
}

export interface ProvenancePredicate {
  session: string;
  agent: { name: string | null; version: string | null };
  proposal: { id: number; hash: string; base: string; head: string; tree: string };
  baseCommit: string;
  policy: { hash: string; review: ReviewRequirement };
  findings: ProvenanceFinding[];
  approvals: ProvenanceApproval[];
  appliedBy: string;
  audit: {
    /** the signed checkpoint the approval events are proven under */
    checkpoint: Checkpoint;
    /** the audit log's checkpoint public key (SPKI PEM), vouched for by this statement's signer */
    publicKey: string;
    approvalProofs: InclusionProofDoc[];
  };
}

export interface ProvenanceStatement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { gitCommit?: string; gitTree?: string } }[];
  predicateType: typeof PREDICATE_TYPE;
  predicate: ProvenancePredicate;
}
