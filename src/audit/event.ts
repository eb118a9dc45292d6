import { createHash, hash, randomUUID } from 'node:crypto';
import { canonicalJson, type Decision, type Severity } from '../common/index.ts';

export type { AuditEventInput, Decision, Severity } from '../common/index.ts';

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

/** The hashed body: everything but the hashes themselves (RFC 8785 canonical JSON). */
export function eventBody(e: Omit<AuditEvent, 'hash' | 'prevHash'>): string {
  return canonicalJson({
    seq: e.seq,
    id: e.id,
    ts: e.ts,
    type: e.type,
    session: e.session,
    severity: e.severity,
    decision: e.decision,
    rule: e.rule,
    data: e.data,
  });
}

/**
 * The same string as eventBody(), built from stored columns without re-parsing `data`:
 * `dataText` must be the canonical JSON of data (the store writes it that way). RFC 8785
 * serializes strings, integers and null exactly as JSON.stringify does, and keys sort as
 * data < decision < id < rule < seq < session < severity < ts < type. Every field but
 * data is JSON-escaped, so no other tuple of columns yields the same string.
 */
export function eventBodyFromParts(
  seq: number,
  id: string,
  ts: string,
  type: string,
  session: string | null,
  severity: string,
  decision: string | null,
  rule: string | null,
  dataText: string,
): string {
  return `{"data":${dataText},"decision":${jsonStr(decision)},"id":${jsonStr(id)},"rule":${jsonStr(rule)},"seq":${seq},"session":${jsonStr(session)},"severity":${jsonStr(severity)},"ts":${jsonStr(ts)},"type":${jsonStr(type)}}`;
}

// Strings with nothing JSON would escape are quoted as they are (2x faster than
// JSON.stringify); anything with a quote, backslash, control char or surrogate goes
// through JSON.stringify, so the result is always identical to it.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
function jsonStr(s: string | null): string {
  if (s === null) return 'null';
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

export function chainHash(prevHash: string, body: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

/** chainHash with the one-shot API (same result, about twice as fast for short bodies). */
export function chainHashFast(prevHash: string, body: string): string {
  return hash('sha256', prevHash + '\n' + body, 'hex');
}

/**
 * UUIDv7 (RFC 9562): 48-bit Unix milliseconds then 74 random bits. Unique like v4, but
 * time-ordered, so the events.id index grows at its end instead of at random pages
 * (about 2.5x faster ingest than v4 on a large log).
 */
export function newEventId(): string {
  // randomUUID (pooled entropy, v4) supplies the random bits and the variant; the first
  // 48 bits become the timestamp and the version nibble becomes 7.
  const u = randomUUID();
  const t = Date.now().toString(16).padStart(12, '0');
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${u.slice(15, 18)}-${u.slice(19)}`;
}
