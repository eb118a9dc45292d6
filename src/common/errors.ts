// One error type for everything a user can cause. The CLI prints `message` and `hint`
// (never a stack) and exits with `exitCode`, so scripts can tell failures apart.

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 64,
  POLICY_INVALID: 65,
  NOT_FOUND: 66,
  NOT_A_REPO: 67,
  BAD_REF: 68,
  UNAVAILABLE: 69,
  INTERNAL: 70,
  /** git failed on a repository (a missing object, a dangling ref, a damaged pack): git's message says which */
  GIT_FAILED: 71,
  /** Airlock cannot record (its data directory is full or unwritable): nothing runs unrecorded. */
  CANNOT_RECORD: 74,
  BAD_STATE: 75,
  DENIED: 77,
  TAMPERED: 78,
  /** a change or agent-made git data over Airlock's hard bounds: refused, never truncated */
  TOO_LARGE: 79,
  COMMAND_NOT_FOUND: 127,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class AirlockError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  readonly kind: keyof typeof ExitCode;
  constructor(kind: keyof typeof ExitCode, message: string, hint?: string) {
    super(message);
    this.name = 'AirlockError';
    this.kind = kind;
    this.exitCode = ExitCode[kind];
    this.hint = hint;
  }
}

export function isAirlockError(e: unknown): e is AirlockError {
  return e instanceof AirlockError;
}

/**
 * True for errors that mean "the disk cannot take what Airlock must record": ENOSPC/EDQUOT
 * from the file system, SQLITE_FULL (13) or an SQLite I/O error (10, extended codes included)
 * from the audit store.
 */
export function isRecordingFailure(e: unknown): boolean {
  const x = e as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  if (!x || typeof x !== 'object') return false;
  if (x.code === 'ENOSPC' || x.code === 'EDQUOT' || x.code === 'EROFS') return true;
  if (typeof x.errcode === 'number' && [10, 13].includes(x.errcode & 0xff)) return true;
  return typeof x.message === 'string' && /database or disk is full|No space left on device/i.test(x.message);
}

/** The user-facing error for a recording failure, naming what could not be written. */
export function cannotRecord(e: unknown, what: string): AirlockError {
  const detail = e instanceof Error ? e.message : String(e);
  return new AirlockError(
    'CANNOT_RECORD',
    `cannot record: ${what}: ${detail}`,
    'free space on the file system that holds AIRLOCK_HOME (df -h "$AIRLOCK_HOME"), or point AIRLOCK_HOME at a larger one; Airlock runs no agent it cannot record',
  );
}
