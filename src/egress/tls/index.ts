// Airlock's gateway CA and what a sandbox needs to trust it. See docs/modules/broker.md.
export { loadOrCreateCa, CA_KEY_FILE, type GatewayCa, type Leaf, type CaOptions } from './ca.ts';
export { writeCaBundle, caEnv, hostTrustStore, SANDBOX_CA_BUNDLE } from './bundle.ts';
