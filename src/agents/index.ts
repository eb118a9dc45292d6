// Agent profiles: run real agents (Codex CLI, Claude Code, any command) unmodified inside
// the sandbox, set up from data. See docs/modules/agents.md.
export { builtinProfiles, allProfiles, getProfile, type AgentProfile } from './profiles.ts';
export {
  resolveAgent,
  agentArgv,
  refusedMount,
  type ResolvedAgent,
  type ResolveOptions,
  type ProfileCredential,
} from './resolve.ts';
export { applyProfile, prepareAgent, type AppliedProfile, type ApplyOptions } from './apply.ts';
