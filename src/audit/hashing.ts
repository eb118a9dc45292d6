// A second public entry of the audit module, kept light: what a verifier of a hash chain needs
// (the chain's rows, the RFC 6962 tree, checkpoint signatures) and nothing of the store, the sinks
// or the summaries. The shared store's verify workers load it instead of index.ts: a worker's
// start is paid on every `airlock audit verify` with parallel hosts (issue 18).
export { EventFrontier, MerkleFrontier } from './merkle.ts';
export { checkEventRow, type RowArr as RawEventRow } from './verify-range.ts';
export { GENESIS_HASH } from './event.ts';
export { keyId, verifyCheckpointSignature, type Checkpoint } from './checkpoint.ts';
