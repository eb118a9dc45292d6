export { Session, type OpenSessionOptions, type ExecRequest, type StopResult, type SessionState } from './session.ts';
export { sessionPolicy, orgPolicyPath, REPO_POLICY_FILE, type PolicyChoice } from './policy.ts';
export { newSessionId, SESSION_ID } from './id.ts';
export { defaultLayers, resolveLayers, LAYER_NAMES, type SessionLayer, type SessionLayers, type LayerName, type NetworkSetup } from './layers.ts';
export { listSessions, sessionFromRow, SESSION_COLUMNS, type SessionSummary } from './list.ts';
export { recoverSessions, type RecoveredSession } from './recover.ts';
export { superviseSession, startDetached, request, type Frame } from './daemon.ts';
