export {
  sandboxTemplate,
  sandboxWarmPool,
  sandboxClaim,
  AGENT_SANDBOX_GROUP,
  type TemplateOptions,
  type KubernetesRuntimeClass,
} from './manifests.ts';
export { SandboxClaims, type ClaimStatus, type ClaimTarget } from './claims.ts';
export { KubernetesDriver, type KubernetesDriverOptions } from './driver.ts';
