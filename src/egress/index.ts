// Egress gateway: the only way out of a sandbox. Public surface.
export { startGateway, type Gateway, type GatewayOptions } from './server.ts';
export {
  decideTarget,
  resolveAndDecide,
  queryOfEvent,
  type TargetQuery,
  type TargetDecision,
  type RecordedQuery,
} from './decide-egress.ts';
export { compileEgress, type EgressRules, type Scheme } from './rules.ts';
export {
  sandboxNetwork,
  startBridge,
  synthesizeAnswer,
  type Bridge,
  type BridgePlan,
  transparentSocketPath,
  PROXY_PORT,
  SYNTHETIC_ADDRESS,
} from './network.ts';
export { systemResolver, mapResolver, dnsServerResolver, type Resolver } from './resolver.ts';
export { normalizeHost, splitAuthority } from './host.ts';
export { requestPath, AmbiguousPath, type RequestPath } from './path.ts';
export { classifyAddress, type AddressClass } from './ip.ts';
export { PRESETS } from './presets.ts';
export type { Timeouts, EgressAsker, EgressAskRequest, EgressAnswer } from './context.ts';
export { prepareCredentials, Broker, type PreparedCredentials, type Credential } from './broker.ts';
export { inspectBody, type DlpConfig, type DlpResult, type KnownSecret } from './dlp.ts';
export {
  loadOrCreateCa,
  writeCaBundle,
  caEnv,
  hostTrustStore,
  SANDBOX_CA_BUNDLE,
  CA_KEY_FILE,
  type GatewayCa,
} from './tls/index.ts';
export { relayMode, type RelayMode } from './relay/index.ts';
export { packageJudge } from './packages/index.ts';
