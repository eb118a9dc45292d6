export type { Sandbox, SandboxDriver, SandboxSpec, ExecHandle, ExecOptions, ExecResult, Mechanisms } from './driver.ts';
export { SANDBOX_HOME, SANDBOX_WORKSPACE, HOST_UID_FOR_SANDBOX } from './bwrap.ts';
export { buildSandboxEnv, looksLikeCredential } from './env.ts';
export { type Limits, removeSessionCgroups } from './limits.ts';
export { recoverTrace, traceEventKey } from './trace.ts';
export { driverFor, runtimeOfDriver, type KubernetesSettings, type RuntimeSettings } from './runtime.ts';
