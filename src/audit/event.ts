import { createHash, randomUUID } from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS exporting the function itself; its typings claim a default export.
const canonicalize = canonicalizeModule as unknown as (v: unknown) => string | undefined;

export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';
export type Decision = 'allow' | 'deny' | 'ask';

/** What a producer hands to the log. */
export interface AuditEventInput {
  type: string; // dotted: session.start, process.exec, egress.request, policy.denied, ...
  session?: string | null;
  severity?: Severity;
  decision?: Decision | null;
  /** Policy rule id that made the decision (every decision names one). */
  rule?: string | null;
  data?: Record<string, unknown>;
}

/** What the log holds: the input plus identity, order, time and the hash chain. */
export interface AuditEvent {
  seq: number;
  id: string;
  ts: string;
  type: string;
  session: string | null;
  severity: Severity;
  decision: Decision | null;
  rule: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalJson(v: unknown): string {
  const s = canonicalize(v);
  if (s === undefined) throw new Error('value cannot be canonicalized');
  return s;
}

/** The hashed body: everything but the hashes themselves (RFC 8785 canonical JSON). */
export function eventBody(e: Omit<AuditEvent, 'hash' | 'prevHash'>): string {
  return canonicalJson({
    seq: e.seq, id: e.id, ts: e.ts, type: e.type, session: e.session, severity: e.severity,
    decision: e.decision, rule: e.rule, data: e.data,
  });
}

export function chainHash(prevHash: string, body: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

export function newEventId(): string {
  return randomUUID();
}
