// Secrets: one detection engine used everywhere (workspace scan, diff check, DLP, output
// redaction), workspace sanitization and honeytokens. See docs/modules/secrets.md.
export {
  type SecretFinding,
  type SecretSeverity,
  type ScanOptions,
  type AllowEntry,
  type SecretSuppression,
  type ScanResult,
  fingerprint,
} from './types.ts';
export { scanText, scanTextExplained, redactText, defaultMarker, buildScanners } from './engine.ts';
export { scanPathsDetailed, type ScanPathsOptions, type ScanPathsResult } from './files.ts';
export {
  sanitizeTree,
  sanitizeSnapshot,
  type HiddenFile,
  type SnapshotReport,
  type SanitizeEntry,
} from './sanitize.ts';
export { plantHoneytokens, matchHoneytokens, isHoneytoken, type Honeytoken } from './honeytokens.ts';
