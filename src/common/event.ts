// What every layer hands to the audit log. It lives in the core, not in `audit`: the
// sandbox, gateway, secrets and session layers produce events without depending on the
// store that keeps them (audit/event.ts adds what the log itself assigns: seq, id, time,
// hash chain).

export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export type Decision = 'allow' | 'deny' | 'ask';

/** What a producer hands to the log. */
export interface AuditEventInput {
  type: string; // dotted: session.start, process.exec, egress.request, policy.denied, ...
  session?: string | null;
  severity?: Severity;
  decision?: Decision | null;
  /** Policy rule id that made the decision (every decision names one). */
  rule?: string | null;
  data?: Record<string, unknown>;
}
