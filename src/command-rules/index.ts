// Per-command allow/ask/deny for `airlock exec`, and the human approval queue for "ask".
export { decideCommand, decideCommandInMode, decideShell, commandFacts } from './decide-command.ts';
export { parseArgv, parseShell, type SimpleCommand, type ParsedCommand } from './parse.ts';
export {
  requestApproval,
  answerAsk,
  listAsks,
  getAsk,
  isDestinationAsk,
  localAskRelay,
  type ApprovalRequest,
  type AnswerResult,
  type AnswerScope,
  type CommandAsk,
  type PromptInfo,
  type AskStatus,
} from './asks.ts';
export { humanIdentity, assertOutsideSandbox, type Identity } from './human.ts';
export { parserFor, type Grammar } from './grammar.ts';
