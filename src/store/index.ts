// The shared PostgreSQL store (issue 18): versioned schema, the shipper that copies each
// host's local log into it, and verification of every host's chain from it alone.
export {
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  EVENTS_CHANNEL,
  migratePg,
  requireCurrentSchema,
  createHostRole,
} from './pg-schema.ts';
export {
  shipOnce,
  startShipper,
  type ShipOptions,
  type ShipResult,
  type Shipper,
  type ShipperOptions,
} from './ship.ts';
export {
  verifySharedStore,
  type SharedVerifyResult,
  type SharedVerifyOptions,
  type HostVerdict,
  type BadSharedEvent,
} from './verify.ts';
export { databaseUrl, sharedStoreUrl, approverTrust, redactedUrl, withSharedStore } from './connect.ts';
export {
  signDecision,
  APPROVER_KEYS_RULE,
  type DecisionStatement,
  type SignedDecision,
  type TrustedApprover,
} from './decisions.ts';
export {
  otherHostsProposals,
  type SharedProposal,
  otherHostsSessionRows,
  pendingSharedAsks,
  parseData,
  answerSharedAsk,
  type SharedAsk,
  type DecisionSigner,
} from './queue.ts';
export { approveSharedProposal, relayApprovals, type RelayedApproval } from './review-queue.ts';
export { relayContext, type RelayContext, ROWS_PER_POLL } from './relay-rows.ts';
export {
  otherHostsEvents,
  sharedSessions,
  sharedSessionEvents,
  MAX_PAGE,
  type SharedEvent,
  type SharedEventFilter,
  type SharedSessionRow,
} from './events-query.ts';
export { listenShared, type SharedListener, type SharedListenerOptions } from './listen.ts';
