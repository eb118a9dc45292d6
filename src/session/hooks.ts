import type { PolicyDecision } from '../policy/index.ts';
import type { CaptureResult, SnapshotSanitizer } from '../workspace/index.ts';
import type { Session, ExecRequest } from './session.ts';

// Extension points the other layers plug into (egress gateway, command rules,
// secrets, telemetry). The session stays the same object whether or not a layer is
// present, and each layer stays testable on its own. Wired in src/session/layers.ts.
export interface SessionHooks {
  /** Start the session's egress gateway; returns the in-sandbox setup and env. */
  network?: (s: Session, env: NodeJS.ProcessEnv) => Promise<{ setup: string; env: Record<string, string>; close: () => Promise<void>; /** public files Airlock provides inside (CA bundle) */ files?: { source: string; target: string }[];
    /** serves the namespace's bridges from this process (`enter`: argv prefix into the sandbox's network namespace); returns their close */
    attach?: (enter: string[]) => Promise<() => Promise<void>> } | null>;
  /** Rewrites the base tree before it becomes the workspace (secret redaction); cached per variant. */
  sanitizer?: (s: Session) => Promise<SnapshotSanitizer | null>;
  afterStart?: (s: Session) => Promise<void>;
  /** Marker → original value per redacted file, to restore what the agent did not change (values never stored). */
  restoreSecrets?: (s: Session) => Promise<Record<string, [string, string][]>>;
  decideCommand?: (s: Session, req: ExecRequest) => Promise<PolicyDecision | null>;
  afterStop?: (s: Session, result: CaptureResult | null) => Promise<void>;
}

export const hooks: SessionHooks = {};
