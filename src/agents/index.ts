// Agent profiles: run real agents (Codex CLI, Claude Code, any command) unmodified inside
// the sandbox, set up from data. See docs/modules/agents.md.
export { builtinProfiles, allProfiles, getProfile, BUILTIN_PROFILES_FILE, type AgentProfile } from './profiles.ts';
export {
  resolveAgent, agentArgv, packageClosure, nodeRuntime, refusedMount, newPlaceholder, AIRLOCK_ROOT,
  type ResolvedAgent, type ResolveOptions, type ProfileCredential,
} from './resolve.ts';
export { applyProfile, prepareAgent, writeHomeFile, type AppliedProfile, type ApplyOptions } from './apply.ts';
