import type { Severity } from '../audit/index.ts';

export const SEVERITY_RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

export type CheckId = 'secrets' | 'injection' | 'dependencies' | 'protectedPaths' | 'unicode' | 'size' | 'review';

/** One problem a check found in the diff. Never carries a secret value. */
export interface Finding {
  check: CheckId;
  /** rule id, `<check>.<rule>` (e.g. `secrets.aws-access-key-id`, `dependencies.typosquat`) */
  rule: string;
  severity: Severity;
  file: string;
  /** 1-based line in the new version of the file; 0 for the whole file */
  line: number;
  column?: number;
  message: string;
  /** set for secrets: first hex digits of the value's SHA-256 */
  fingerprint?: string;
  /** computed against the policy: blocks approval unless overridden */
  blocking?: boolean;
}

export interface AddedLine {
  line: number;
  text: string;
}

export interface ChangedFile {
  /** the name as git stored it, decoded as UTF-8 (invalid bytes as U+FFFD; then pathHex holds the bytes) */
  path: string;
  /** set when the name is not valid UTF-8: its bytes in hex */
  pathHex?: string | null;
  /** differs from path only for… nothing: renames are split into delete + add */
  status: 'added' | 'modified' | 'deleted' | 'typechange';
  oldMode: string;
  newMode: string;
  oldBlob: string;
  newBlob: string;
  binary: boolean;
  /** bytes of the new version (0 when deleted) */
  newSize: number;
  added: AddedLine[];
  deletedCount: number;
  /** full new text (text files only, up to the size cap), else null */
  newText: string | null;
  /** full old text (text files only, up to the size cap), else null */
  oldText: string | null;
  /** a binary too large to load whole: its content is scanned streaming (secrets check) */
  large?: boolean;
  /** printable runs (8+ characters) of a binary file's new version, for the secrets check; null for text files, deletions and binaries over the size cap */
  binaryStrings: string | null;
}

export interface ChangeSet {
  base: string;
  head: string;
  commits: string[];
  files: ChangedFile[];
  /** canonical diff (git diff --full-index -U3, no renames, no textconv) */
  diff: string;
  diffSha256: string;
  addedLines: number;
  deletedLines: number;
  /** the trusted result repo the change was read from (streaming scans of large blobs) */
  repo?: string;
}
