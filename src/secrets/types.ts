import { createHash } from 'node:crypto';
import type { SecretsPolicy, SecretsAllowEntry } from '../policy/index.ts';

export type SecretSeverity = 'critical' | 'high' | 'medium';

/** One detected secret. Never carries the value: only where it is and its fingerprint. */
export interface SecretFinding {
  /** Rule id: ours (`aws-access-key-id`, `private-key`, …) or `secretlint/<rule>/<messageId>`. */
  rule: string;
  file?: string;
  /** 1-based line and column of the first character; endLine/endColumn point just past the last. */
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** First 32 hex digits of SHA-256 of the value (see fingerprint()). */
  fingerprint: string;
  message: string;
  severity: SecretSeverity;
  /** Offsets (UTF-16 code units) of the span to redact: every overlapping detection merged. */
  start: number;
  end: number;
  /** Why this is a secret: the context the rule saw (format, key name, command flag…). */
  why?: string;
  /** Shannon entropy of the value, bits per character (2 decimals). */
  entropy?: number;
  /** Other rules that flagged an overlapping span (merged into this finding). */
  alsoMatched?: string[];
}

/** A candidate a rule matched and then judged not to be a secret, with the reason. Like a
 * finding, it never carries the value. */
export interface SecretSuppression {
  rule: string;
  file?: string;
  line: number;
  column: number;
  fingerprint: string;
  /** e.g. "placeholder: contains \"your-api-key\"", "reference: a GitHub Actions expression". */
  reason: string;
}

export type AllowEntry = SecretsAllowEntry;
export type SecretsPolicyT = SecretsPolicy;

export interface ScanOptions {
  /** Path (for rules that look at the extension, and for the finding's `file`). */
  path?: string;
  /** Extra allowed values (the org policy's secrets.workspace.allowlist). */
  allowlist?: readonly AllowEntry[];
}

export interface ScanResult {
  findings: SecretFinding[];
  /** What rules matched and rejected, and why (bounded; `--explain`). */
  suppressed: SecretSuppression[];
}

export const FINGERPRINT_HEX = 32;

/** SHA-256 of the UTF-8 value, hex, first 32 digits. Stable across machines, so an org can
 * allowlist by fingerprint and the gateway can recognise a known host secret. */
export function fingerprint(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, FINGERPRINT_HEX);
}
