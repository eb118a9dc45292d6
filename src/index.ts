// Airlock's public TypeScript API (the package's exports): everything the CLI and the MCP
// server are built on. See docs/sdk.md for the whole flow with examples.
//
//   import { openSession, readWorkspaceFile, createProposal } from 'airlock';
//
// Every session opened through this API runs all security layers (egress gateway,
// command rules, secrets sanitization, detection, proposals, checkpoints and sinks)
// unless the caller leaves one out explicitly (`layers: { name: null }`, recorded).

// Sessions: open on a repo with a policy, exec (streaming), stop and capture.
export {
  Session,
  listSessions,
  sessionPolicy,
  orgPolicyPath,
  REPO_POLICY_FILE,
  defaultLayers,
  LAYER_NAMES,
  type OpenSessionOptions,
  type ExecRequest,
  type StopResult,
  type SessionState,
  type SessionLayer,
  type SessionLayers,
  type LayerName,
  type SessionSummary,
  type PolicyChoice,
} from './session/index.ts';
export type { ExecHandle, ExecResult, Mechanisms } from './sandbox/index.ts';
export { SANDBOX_WORKSPACE, SANDBOX_HOME } from './sandbox/index.ts';
export type { CaptureResult } from './workspace/index.ts';

// Policy: schema, loading, merging, decisions.
export {
  policySchema,
  policyJsonSchema,
  parsePolicyText,
  readPolicyFile,
  resolvePolicy,
  defaultPolicy,
  mergePolicies,
  type Policy,
  type PolicyInput,
  type PolicySource,
  type LoadedPolicy,
  type PolicyDecision,
  type Action,
} from './policy/index.ts';

// Audit: the hash-chained store, queries, live subscription, verification.
export {
  AuditStore,
  verifyChain,
  verifyLog,
  type EventQuery,
  type AppendListener,
  type VerifyResult,
} from './audit/index.ts';
export type { AuditEvent, AuditEventInput } from './audit/event.ts';

// Review: proposals from a session's captured result, their findings and decisions.
export {
  createProposal,
  sessionResult,
  proposalStatus,
  getProposal,
  listProposals,
  approveProposal,
  rejectProposal,
  applyProposal,
  loadChange,
  runChecks,
  type Proposal,
  type ProposalStatus,
  type Finding,
  type SessionResult,
} from './review/index.ts';

// Every host's work through one interface: this host's SQLite and, with a shared store
// (AIRLOCK_DATABASE_URL or the org policy's telemetry.sharedStore), every other host's.
export {
  workView,
  type WorkView,
  type WorkViewOptions,
  type HostOf,
  type HostSession,
  type HostProposal,
  type HostAsk,
  type HostEvent,
  type HostEventFilter,
} from './hosts/index.ts';

// Secrets: detection and redaction (the engine used for tool output and audit data).
export { scanText, redactText, type SecretFinding } from './secrets/index.ts';

// Agents: profiles as data, resolved into sandbox options.
export {
  allProfiles,
  getProfile,
  builtinProfiles,
  resolveAgent,
  agentArgv,
  applyProfile,
  prepareAgent,
  type AgentProfile,
  type ResolvedAgent,
  type AppliedProfile,
  type ProfileCredential,
} from './agents/index.ts';

// Workspace files and the MCP server.
export {
  readWorkspaceFile,
  writeWorkspaceFile,
  deleteWorkspaceFile,
  listWorkspace,
  applyWorkspacePatch,
  runCaptured,
  workspacePath,
  PathDenied,
  createAirlockMcpServer,
  MCP_TOOLS,
  type AirlockMcp,
  type AirlockMcpOptions,
  type ListEntry,
  type CapturedRun,
  type PatchResult,
} from './mcp/index.ts';

// Errors: one type with distinct exit codes.
export { AirlockError, ExitCode, isAirlockError } from './common/errors.ts';

import { Session, type OpenSessionOptions } from './session/index.ts';
/** Opens a sandboxed session (shorthand for `Session.open`). */
export function openSession(o: OpenSessionOptions = {}): Promise<Session> {
  return Session.open(o);
}
