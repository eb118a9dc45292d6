export { sandboxTemplate, sandboxWarmPool, sandboxClaim, AGENT_SANDBOX_GROUP, AGENT_SANDBOX_VERSION, KUBERNETES_RUNTIME_CLASSES, type TemplateOptions, type KubernetesRuntimeClass } from './manifests.ts';
export { SandboxClaims, type ClaimStatus, type ClaimTarget } from './claims.ts';
