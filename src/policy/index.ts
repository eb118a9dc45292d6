export { policySchema, policyJsonSchema, type Policy, type PolicyInput } from './schema/index.ts';
export {
  parsePolicyText,
  readPolicyFile,
  parsedSource,
  resolvePolicy,
  defaultPolicy,
  formatIssues,
  DEFAULT_ORG_POLICY,
  type LoadedPolicy,
} from './load.ts';
export { mergePolicies, policyLeaves, type PolicySource } from './merge.ts';
export { explainPolicy, type ExplainedValue } from './explain.ts';
export {
  type PolicyDecision,
  type Action,
  type ModeNote,
  type ModalDecision,
  allow,
  deny,
  ask,
  failClosed,
  recordMode,
  shadowMode,
} from './decision.ts';
export {
  isPublicSuffixWildcard,
  type EGRESS_PRESETS,
  type EgressPolicy,
  type EgressHostRule,
  type EgressCidrRule,
} from './schema/egress.ts';
export { type PackagesPolicy, type PackageRule } from './schema/packages.ts';
export { type BrokeredCredential } from './schema/credentials.ts';
export { type SecretsPolicy, type SecretsAllowEntry } from './schema/secrets.ts';
export { sinkSchema, type SinkConfig, type DetectionRule } from './schema/telemetry.ts';
export { agentProfileSchema, PROFILE_NAME, type AgentProfileSpec } from './schema/agents.ts';
export { INIT_TEMPLATE } from './template.ts';
export { POLICY_MODES, MODE_LAYERS, type PolicyMode, type ModeLayer, type ModesPolicy } from './schema/modes.ts';
export { allowedModes, layerMode } from './modes.ts';
export { locateKey, type PolicyIssue } from './locate.ts';
