import { createHash } from 'node:crypto';
import type { SecretsPolicy, SecretsAllowEntry } from '../policy/schema/secrets.ts';

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
}

export type AllowEntry = SecretsAllowEntry;
export type SecretsPolicyT = SecretsPolicy;

export interface ScanOptions {
  /** Path (for rules that look at the extension, and for the finding's `file`). */
  path?: string;
  /** Extra allowed values (the org policy's secrets.workspace.allowlist). */
  allowlist?: readonly AllowEntry[];
}

export const FINGERPRINT_HEX = 32;

/** SHA-256 of the UTF-8 value, hex, first 32 digits. Stable across machines, so an org can
 * allowlist by fingerprint and the gateway can recognise a known host secret. */
export function fingerprint(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, FINGERPRINT_HEX);
}
