import type { SQLInputValue } from 'node:sqlite';
import { redactTextSync } from '../secrets/sync.ts';
import type { AuditEventInput } from './event.ts';

// What the store writes is redacted by the store, whoever the caller is: every string of
// an event (keys included, at any depth) and every string bound into another module's
// table passes the synchronous redactor (secrets' own rules: pure functions, no I/O).

// Deeper than this, a subtree is stored as its redacted JSON text: still readable, still
// redacted, and no recursion an attacker can choose the depth of.
const MAX_DEPTH = 32;

function redactValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return redactTextSync(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_DEPTH) return redactTextSync(JSON.stringify(v) ?? '');
  if (Array.isArray(v)) return v.map((x) => redactValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[redactTextSync(k)] = redactValue(x, depth + 1);
  return out;
}

const str = (s: string | null | undefined): string | null | undefined =>
  typeof s === 'string' ? redactTextSync(s) : s;

/** The event as the store may hold it: every string field and all of data redacted. */
export function redactEventInput(e: AuditEventInput): AuditEventInput {
  return {
    ...e,
    type: redactTextSync(e.type),
    session: str(e.session),
    rule: str(e.rule),
    data: e.data === undefined ? undefined : (redactValue(e.data, 0) as Record<string, unknown>),
  };
}

/** A string parameter redacted; JSON text is redacted value by value so it stays JSON. */
function redactParam(p: SQLInputValue): SQLInputValue {
  if (typeof p !== 'string') return p;
  const c = p.trimStart()[0];
  if (c === '{' || c === '[') {
    try {
      const parsed: unknown = JSON.parse(p);
      const redacted = JSON.stringify(redactValue(parsed, 0));
      return redacted === JSON.stringify(parsed) ? p : redacted;
    } catch {
      /* not JSON: redact as text */
    }
  }
  return redactTextSync(p);
}

export function redactSqlParams(params: SQLInputValue[]): SQLInputValue[] {
  return params.map(redactParam);
}
