// Policy replay and learning (issue 20): recorded decisions decided again under another
// policy, and the narrowest policy that would have allowed what sessions did.
export {
  recordedDecisions,
  recordedDecision,
  recordedDecisionsOf,
  sinceTime,
  type RecordedDecision,
  type ReplayScope,
  type ReplayLayer,
} from './events.ts';
export { replayDecisions, replaySentences, type ReplayReport, type ReplayChange, type ReplayGroup } from './replay.ts';
export { learnPolicy, type LearnResult, type LeftOut } from './learn.ts';
