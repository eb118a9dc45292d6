import { ownRules } from './rules.ts';
import { isAllowed } from './allowlist.ts';
import { fingerprint } from './types.ts';

// Synchronous redaction with our own rules only (cloud keys, tokens, private keys, DB
// URLs, JWTs, generic secret assignments), for places that cannot await: every audit
// event passes through it before it is stored. It does not load secretlint, so it is
// cheap to import; the full engine (scanText/redactText) covers more token families.
export function redactTextSync(text: string): string {
  if (text.length < 8) return text;
  const hits = ownRules(text).sort((a, b) => a.start - b.start || b.priority - a.priority);
  let out = '';
  let pos = 0;
  for (const h of hits) {
    if (h.start < pos) continue;
    const value = text.slice(h.start, h.end);
    if (isAllowed(value, undefined)) continue;
    const breaks = value.match(/\r?\n/g) ?? [];
    out += text.slice(pos, h.start) + `«REDACTED:${h.rule}:${fingerprint(value).slice(0, 8)}»` + breaks.join('');
    pos = h.end;
  }
  return pos === 0 ? text : out + text.slice(pos);
}

/** Redacts every string inside a JSON-like value (event data). */
export function redactDeep<T>(v: T, depth = 0): T {
  if (typeof v === 'string') return redactTextSync(v) as T;
  if (depth > 20 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = redactDeep(x, depth + 1);
  return out as T;
}
