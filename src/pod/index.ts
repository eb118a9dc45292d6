// The session pod's entrypoint (issue 19): the agent container's side of the host ↔ pod
// protocol and the gateway sidecar. The host side is the kubernetes sandbox driver.
export {
  podCommand,
  POD_AIRLOCK,
  POD_WORKSPACE,
  POD_HOME,
  POD_AGENT_CONTAINER,
  POD_GATEWAY_CONTAINER,
  POD_GATEWAY_PORT,
  POD_CREDENTIALS_DIR,
  POD_POLICY_FILE,
  POD_SHARED_DIR,
  type PodVerb,
  type PodExecRequest,
} from './protocol.ts';
export { extractBounded, packDirectory, type TarBounds, type ExtractResult } from './tar.ts';
export { podSupervise, podExec, podRestore, podCapture, podKill } from './supervise.ts';

/** The gateway sidecar (loads the egress gateway and the audit store only when it runs). */
export async function startPodGateway(o: import('./gateway.ts').PodGatewayOptions) {
  return (await import('./gateway.ts')).startPodGateway(o);
}
export type { PodGatewayOptions, RunningPodGateway } from './gateway.ts';
