export { Session, type OpenSessionOptions, type ExecRequest, type StopResult, type SessionState } from './session.ts';
export {
  sessionPolicy,
  orgPolicyPath,
  readSessionOrigin,
  policyAt,
  resultCache,
  REPO_POLICY_FILE,
  type PolicyChoice,
  type SessionOrigin,
  type PolicyResolution,
} from './policy.ts';
export { newSessionId, SESSION_ID } from './id.ts';
export {
  defaultLayers,
  resolveLayers,
  LAYER_NAMES,
  type SessionLayer,
  type SessionLayers,
  type LayerName,
  type NetworkSetup,
} from './layers.ts';
export { listSessions, sessionFromRow, SESSION_COLUMNS, type SessionSummary } from './list.ts';
export { recoverSessions, type RecoveredSession } from './recover.ts';
export { superviseSession } from './daemon.ts';
export { startDetached, request, type Frame } from './client.ts';
