// The shared core every module may use; it depends on no other module (.dependency-cruiser.cjs).
export {
  ExitCode,
  AirlockError,
  isAirlockError,
  isRecordingFailure,
  cannotRecord,
  type ExitCodeValue,
} from './errors.ts';
export {
  git,
  gitBytes,
  gitEnv,
  hardenedArgs,
  AGENT_DATA_BOUNDS,
  type GitResult,
  type GitBounds,
  type GitOptions,
} from './git.ts';
export { canonicalJson } from './json.ts';
export { cachedResult, type ResultCache } from './result-cache.ts';
export type { AuditEventInput, Decision, Severity } from './event.ts';
export {
  DEFAULT_ORG_POLICY,
  airlockHome,
  homeLayout,
  ensureHome,
  makePrivateFile,
  makePrivateTree,
  type HomeLayout,
} from './paths.ts';
export { POPULAR } from './popular-packages.ts';
export { escapeForTerminal, hasTerminalControls } from './terminal.ts';
export { shellQuote } from './shell.ts';
export { phase, type PhaseMark } from './phase.ts';
export { processRuns, processState } from './process.ts';
export { typosquatOf, normPackageName, type Ecosystem } from './typosquat.ts';
export { chownTreeNoFollow, joinBytes, linkTree, walkBytes, type PathBytes } from './fs.ts';
