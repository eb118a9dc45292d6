export type { Sandbox, SandboxDriver, SandboxSpec, ExecHandle, ExecOptions, ExecResult, Mechanisms } from './driver.ts';
export { BwrapDriver, SANDBOX_HOME, SANDBOX_WORKSPACE, SANDBOX_UID, HOST_UID_FOR_SANDBOX, signalNumber } from './bwrap.ts';
export { buildSandboxEnv, looksLikeCredential, BASE_ALLOWED } from './env.ts';
export { BLOCKED_SYSCALLS, FILTERED_ARGUMENTS, buildSeccompProgram } from './seccomp.ts';
export { type Limits, removeSessionCgroups } from './limits.ts';
export { recoverTrace, traceEventKey, MAX_RECOVERED_TRACE_BYTES } from './trace.ts';
export { GvisorDriver } from './gvisor/driver.ts';
export { SANDBOX_RUNTIME_DRIVERS, driverFor, runtimeOfDriver } from './runtime.ts';
