export {
  AuditStore,
  type RawEventRow,
  type EventQuery,
  type AppendListener,
  type AuditTables,
  type TableStatement,
  type AuditSync,
} from './store.ts';
export { verifyChain, verifyLog, verifyLogAsync, type VerifyResult, type VerifyOptions } from './verify.ts';
export { type AuditEvent, type AuditEventInput, type Severity, type Decision } from './event.ts';
export {
  checkpoint,
  logId,
  startCheckpointer,
  loadSigningKey,
  readSigningKey,
  keyId,
  type KeyFiles,
  type SigningKey,
  loadPublicKey,
  listCheckpoints,
  checkpointText,
  verifyCheckpointSignature,
  type Checkpoint,
  type CheckpointOptions,
  type CheckpointSchedule,
} from './checkpoint.ts';
export { proveEvent, verifyProof, type InclusionProofDoc, type ProofCheck } from './proof.ts';
export { MerkleFrontier, leafHash } from './merkle.ts';
export { argvOf, summarize } from './summary.ts';
// The formats only: the delivery side (src/audit/sinks/index.ts) is loaded on demand by whoever runs sinks.
export { eventPaths, formatEvent, type EventFormat } from './sinks/formats.ts';
export { type Migration, latestVersion, pendingMigrations } from './schema.ts';
