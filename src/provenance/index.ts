// Signed provenance for changes Airlock pushes: an in-toto Statement in a DSSE envelope
// (Ed25519, the organisation's key), carried as a git note, verified offline.
export {
  signEnvelope,
  IN_TOTO_PAYLOAD_TYPE,
  type DsseEnvelope,
  type DsseSignature,
  type EnvelopeCheck,
} from './dsse.ts';
export {
  STATEMENT_TYPE,
  PREDICATE_TYPE,
  NOTES_REF,
  type ProvenanceStatement,
  type ProvenancePredicate,
  type ReviewRequirement,
  type ProvenanceApproval,
  type ProvenanceFinding,
} from './statement.ts';
export { loadProvenanceKey, loadProvenancePublicKey } from './key.ts';
export { verifyChange, type VerifyChangeResult, type ProvenanceCheck } from './verify.ts';
