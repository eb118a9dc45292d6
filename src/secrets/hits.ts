import type { SecretSeverity } from './types.ts';
import type { AnchorHits } from './prefilter.ts';

/** One detection by one rule, before overlapping detections are merged. */
export interface RawHit {
  rule: string;
  severity: SecretSeverity;
  message: string;
  start: number;
  end: number;
  /** Higher wins when overlapping detections are merged into one finding. */
  priority: number;
  /** Why this is a secret: the context that made the rule fire (never the value). */
  why: string;
}

/** A candidate a rule matched and then rejected, with the reason (never the value). */
export interface Suppressed {
  rule: string;
  start: number;
  end: number;
  reason: string;
}

/** What every rule gets: the text, where the anchors are, and where its hits and (when
 * the caller asked for explanations) its suppressions go. */
export interface RuleRun {
  text: string;
  anchors: AnchorHits;
  out: RawHit[];
  suppressed?: Suppressed[];
}

export const MAX_SUPPRESSED = 1000;

export function suppress(run: RuleRun, rule: string, start: number, end: number, reason: string): void {
  if (run.suppressed && run.suppressed.length < MAX_SUPPRESSED) run.suppressed.push({ rule, start, end, reason });
}

/** A rule that is code rather than one regex (structured formats, command lines). */
export interface FunctionRule {
  id: string;
  /** Lower-case literals: the rule runs only when one occurs in the text. */
  anchors: readonly string[];
  /** More literals whose offsets the rule reads (found in the same prefilter pass). */
  positions?: readonly string[];
  run(r: RuleRun): void;
}
