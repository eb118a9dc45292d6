import type { SandboxSpec } from './driver.ts';

/**
 * Records that a command's processes could no longer be recorded (the caller has already
 * killed what ran unrecorded: telemetry is required, so the command does not go on). Every
 * driver records it the same way; a failing store is the session's to handle (it freezes and ends).
 */
export function recordTraceFailure(spec: Pick<SandboxSpec, 'record' | 'session'>, error: unknown): void {
  try {
    spec.record({
      type: 'sandbox.trace_error',
      session: spec.session,
      severity: 'high',
      decision: 'deny',
      rule: 'builtin.telemetry-required',
      data: { error: String(error) },
    });
  } catch {
    /* the store itself failed: the session handles that */
  }
}
