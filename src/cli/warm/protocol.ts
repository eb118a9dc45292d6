// The request a client sends a spare (src/cli/warm/attach.c writes it; `warm off` too):
// "ALWARM1\0", u32 length (little-endian), then NUL-terminated fields:
//   run: "run", umask (decimal), cwd, argc, argv..., environment entries "K=V"...
//   off: "off" (no descriptors)
// with descriptors 0, 1, 2 attached (SCM_RIGHTS) to a run request. The spare answers one
// byte: A (accepted), S (stale code: run in-process), R (refused: run in-process); after A,
// the client sends one byte per signal it received and the spare ends with X + i32 status.
export const MAGIC = 'ALWARM1\0';
export const MAX_REQUEST = 4 << 20;
export const ANSWER = { accepted: 'A', stale: 'S', refused: 'R' } as const;
/** Signals a client may forward, by number (the only ones a spare raises on itself). */
export const FORWARDED_SIGNALS: Record<number, NodeJS.Signals> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  15: 'SIGTERM',
};

export type Request =
  { kind: 'off' } | { kind: 'run'; umask: number; cwd: string; argv: string[]; env: Record<string, string> };

/** Parses a request's payload; throws on anything malformed (the spare then drops the client). */
export function parseRequest(payload: Buffer): Request {
  const fields = payload.toString('utf8').split('\0');
  if (fields.pop() !== '') throw new Error('request not NUL-terminated');
  const [kind, umask, cwd, argc] = fields;
  if (kind === 'off' && fields.length === 1) return { kind: 'off' };
  const count = Number(argc);
  if (kind !== 'run' || !/^\d+$/.test(umask ?? '') || !cwd?.startsWith('/') || !Number.isSafeInteger(count))
    throw new Error('malformed request header');
  const argv = fields.slice(4, 4 + count);
  if (argv.length !== count) throw new Error('request argv shorter than its argc');
  const env: Record<string, string> = {};
  for (const entry of fields.slice(4 + count)) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { kind: 'run', umask: Number(umask) & 0o777, cwd, argv, env };
}

/** A request frame without descriptors (what `airlock warm off` sends). */
export function encodeRequest(fields: string[]): Buffer {
  const payload = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(payload.length, 8);
  return Buffer.concat([head, payload]);
}
