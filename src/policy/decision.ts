// Every decision Airlock makes names the rule that made it, so the audit trail can
// explain it. Rule ids are stable strings: `<section>.<name>` for policy rules and
// `builtin.<name>` for protections that no policy can switch off.
export type Action = 'allow' | 'ask' | 'deny';

export interface PolicyDecision {
  action: Action;
  rule: string;
  reason: string;
}

export const allow = (rule: string, reason: string): PolicyDecision => ({ action: 'allow', rule, reason });
export const deny = (rule: string, reason: string): PolicyDecision => ({ action: 'deny', rule, reason });
export const ask = (rule: string, reason: string): PolicyDecision => ({ action: 'ask', rule, reason });

/** Fail closed: a rule that throws becomes a denial naming that rule. */
export function failClosed(rule: string, fn: () => PolicyDecision): PolicyDecision {
  try { return fn(); } catch (e) {
    return deny(rule, `rule failed (${e instanceof Error ? e.message : String(e)}); denied`);
  }
}
