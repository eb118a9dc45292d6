export { policySchema, policyJsonSchema, type Policy, type PolicyInput } from './schema/index.ts';
export {
  parsePolicyText, readPolicyFile, resolvePolicy, defaultPolicy, formatIssues, DEFAULT_ORG_POLICY,
  type PolicySource, type LoadedPolicy,
} from './load.ts';
export { mergePolicies, policyLeaves } from './merge.ts';
export { type PolicyDecision, type Action, allow, deny, ask, failClosed } from './decision.ts';
