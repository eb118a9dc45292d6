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
