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
  try {
    return fn();
  } catch (e) {
    return deny(rule, `rule failed (${e instanceof Error ? e.message : String(e)}); denied`);
  }
}

/** What a mode other than enforce adds to a decision: the decision the other policy would have made. */
export interface ModeNote {
  mode: 'record' | 'shadow';
  /** record: what this policy would have decided; shadow: what the candidate policy decides. */
  wouldBe: PolicyDecision;
  policy: 'effective' | 'candidate';
}

export interface ModalDecision extends PolicyDecision {
  modeNote?: ModeNote;
  /** The policy asked and a human answered: replay must compare with an ask, not with the answer. */
  asked?: boolean;
}

/**
 * Record mode: `lifted` is the decision of the same function under the policy with its
 * default and asks turned into allows (explicit deny rules and builtin protections kept).
 * Where that allows what the policy would refuse, the answer is an allow by `modes.<layer>`;
 * either way the decision the policy would have made is kept beside it.
 */
export function recordMode(layer: string, wouldBe: PolicyDecision, lifted: PolicyDecision): ModalDecision {
  const modeNote: ModeNote = {
    mode: 'record',
    wouldBe: { action: wouldBe.action, rule: wouldBe.rule, reason: wouldBe.reason },
    policy: 'effective',
  };
  if (wouldBe.action === 'allow' || lifted.action !== 'allow')
    return { ...(wouldBe.action === 'allow' ? wouldBe : lifted), modeNote };
  return {
    ...allow(
      `modes.${layer}`,
      `record mode: let through; the policy would ${wouldBe.action === 'ask' ? 'ask' : 'deny'} (${wouldBe.rule}: ${wouldBe.reason})`,
    ),
    modeNote,
  };
}

/** Shadow mode: the enforced decision, with the candidate's beside it. */
export function shadowMode(enforced: PolicyDecision, candidate: PolicyDecision): ModalDecision {
  return {
    ...enforced,
    modeNote: {
      mode: 'shadow',
      wouldBe: { action: candidate.action, rule: candidate.rule, reason: candidate.reason },
      policy: 'candidate',
    },
  };
}
