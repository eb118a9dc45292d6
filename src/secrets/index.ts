// Secrets: one detection engine used everywhere (workspace scan, diff check, DLP, output
// redaction), workspace sanitization and honeytokens. See docs/modules/secrets.md.
export { type SecretFinding, type SecretSeverity, type ScanOptions, type AllowEntry, type SecretSuppression, type ScanResult, fingerprint } from './types.ts';
export { scanText, scanTextExplained, redactText, applyRedactions, defaultMarker } from './engine.ts';
export { scanPaths, scanPathsDetailed, readNoFollow, type ScanPathsOptions, type ScanPathsResult } from './files.ts';
export { sanitizeTree, sanitizeSnapshot, sanitizeEntries, hideGlobFor, scanVariant, type HiddenFile, type SnapshotReport, type SanitizeEntry } from './sanitize.ts';
export { printableRuns } from './judge.ts';
export { plantHoneytokens, matchHoneytokens, isHoneytoken, type Honeytoken } from './honeytokens.ts';
export { isAllowed, allowedReason, documentedExample } from './allowlist.ts';
export { redactTextSync, redactDeep } from './sync.ts';
