// Governed changes: a session's captured result becomes a proposal, checks run on its
// diff, humans approve or reject it (bound to its content hash), and an approved one is
// pushed as a branch with a pull request.
export {
  createProposal,
  sessionResult,
  proposalStatus,
  orgPolicyFile,
  reviewPolicy,
  type SessionResult,
  type ProposalStatus,
  type ProposalState,
  type ProposeOptions,
} from './proposal.ts';
export {
  approveProposal,
  rejectProposal,
  requireProposal,
  localApprovalRelay,
  type ApproveOptions,
} from './review-decisions.ts';
export { applyProposal, type ApplyOptions, type ApplyResult } from './apply.ts';
export { type PullRequestInput, type PullRequestResult } from './providers.ts';
export { listProposals, getProposal, decisionsFor, type Proposal, type ReviewDecision } from './store.ts';
export { loadChange, diffSections } from './diff.ts';
export { runChecks } from './checks/index.ts';
export { toSarif } from './sarif.ts';
export type { Finding, ChangeSet, ChangedFile, CheckId } from './types.ts';
export { readAgentCommits, commitsJson, type AgentCommit } from './commits.ts';
export { proposeAuthoredChange, type AuthoredChange } from './authored.ts';
export { proposeAskedDestination, type AskProposal, type ProposeAskOptions } from './asked-destination.ts';
