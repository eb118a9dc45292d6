export { AuditStore, type EventQuery, type AppendListener } from './store.ts';
export { verifyChain, type VerifyResult } from './verify.ts';
export {
  type AuditEvent, type AuditEventInput, type Severity, type Decision, canonicalJson, GENESIS_HASH,
} from './event.ts';
