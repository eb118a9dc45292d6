import { AirlockError } from '../common/index.ts';
import { SANDBOX_WORKSPACE } from '../sandbox/index.ts';
import type { ExecRequest, Session } from '../session/index.ts';

// File operations on a session's workspace, for the MCP server and the SDK. They run as
// small commands INSIDE the sandbox (never host writes into the workspace), so a symlink
// the agent planted can at worst point at something the sandbox itself may touch. Paths
// are confined to /workspace twice: lexically on the host (no "..", no absolute path
// elsewhere) and after symlink resolution inside the sandbox (realpath). The sandbox stays
// the security boundary; the confinement keeps tool calls to the workspace and names the
// rule when it refuses.

export const MAX_READ_BYTES = 4 * 1024 * 1024;
export const MAX_OUTPUT_BYTES = 1024 * 1024;

/** A refusal by a workspace-path rule (mcp.paths.*). */
export class PathDenied extends AirlockError {
  readonly rule: string;
  constructor(rule: string, message: string) {
    super('DENIED', message, 'use a path inside /workspace (relative paths are relative to it)');
    this.rule = rule;
  }
}

/** Lexical check on the host: the absolute in-sandbox path for a user-supplied one. */
export function workspacePath(p: unknown, o: { write?: boolean } = {}): string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 4096 || p.includes('\0'))
    throw new PathDenied('mcp.paths.invalid', `invalid path: ${JSON.stringify(p)}`);
  let rel = p;
  if (p.startsWith('/')) {
    if (p === SANDBOX_WORKSPACE) rel = '.';
    else if (p.startsWith(SANDBOX_WORKSPACE + '/')) rel = p.slice(SANDBOX_WORKSPACE.length + 1);
    else throw new PathDenied('mcp.paths.outside-workspace', `${p} is outside ${SANDBOX_WORKSPACE}`);
  }
  const segs = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) throw new PathDenied('mcp.paths.dotdot', `${p}: ".." is not allowed in workspace paths`);
  if (o.write && segs[0] === '.git')
    throw new PathDenied(
      'mcp.paths.git-dir',
      `${p}: the repository's .git directory is not writable through tools (commits are captured at stop)`,
    );
  if (o.write && segs.length === 0)
    throw new PathDenied('mcp.paths.invalid', `${p}: is the workspace itself, not a file`);
  return segs.length ? `${SANDBOX_WORKSPACE}/${segs.join('/')}` : SANDBOX_WORKSPACE;
}

// In-sandbox scripts (POSIX sh; arguments as $1.., never interpolated). Exit 77 = resolves
// outside the workspace, 78 = resolves into .git, 66 = missing, 65 = wrong kind.
const CONFINE = 'case "$rp" in /workspace|/workspace/*) ;; *) echo "resolves outside /workspace" >&2; exit 77;; esac';
const NOT_GIT = 'case "$rp" in /workspace/.git|/workspace/.git/*) echo "resolves into .git" >&2; exit 78;; esac';
const READ_SCRIPT = `rp=$(realpath -e -- "$1" 2>/dev/null) || { echo "no such file" >&2; exit 66; }; ${CONFINE}; [ -f "$rp" ] || { echo "not a regular file" >&2; exit 65; }; exec head -c "$2" -- "$rp"`;
const WRITE_SCRIPT = `rp=$(realpath -m -- "$1") || exit 65; ${CONFINE}; ${NOT_GIT}; [ -d "$rp" ] && { echo "is a directory" >&2; exit 65; }; mkdir -p -- "$(dirname -- "$rp")" && rd=$(realpath -e -- "$(dirname -- "$rp")") && case "$rd" in /workspace|/workspace/*) ;; *) exit 77;; esac && cat > "$rp"`;
const DELETE_SCRIPT = `rp=$(realpath -m -- "$1") || exit 65; ${CONFINE}; ${NOT_GIT}; [ -e "$rp" ] || [ -L "$rp" ] || { echo "no such file" >&2; exit 66; }; [ -d "$rp" ] && { echo "is a directory" >&2; exit 65; }; rm -f -- "$rp"`;
const LIST_SCRIPT = `rp=$(realpath -e -- "$1" 2>/dev/null) || { echo "no such directory" >&2; exit 66; }; ${CONFINE}; [ -d "$rp" ] || { echo "not a directory" >&2; exit 65; }; cd "$rp" && exec find . -mindepth 1 -maxdepth "$2" -name .git -prune -o -printf '%y %s %P\\n'`;
// (no "| head": a writer killed by SIGPIPE inside the sandbox currently stalls the next exec; output is bounded host-side)

export interface CapturedRun {
  status: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
}

/** Runs argv in the session (policy applies), collecting bounded output. */
export async function runCaptured(
  s: Session,
  argv: string[],
  options: {
    stdin?: string | Buffer;
    cwd?: string;
    via?: ExecRequest['via'];
    timeoutMs?: number;
    maxBytes?: number;
  } = {},
): Promise<CapturedRun> {
  const h = await s.exec({ argv, cwd: options.cwd, via: options.via ?? 'api', stdio: 'pipe' });
  const max = options.maxBytes ?? MAX_OUTPUT_BYTES;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let outN = 0;
  let errN = 0;
  let truncated = false;
  let timedOut = false;
  h.stdout?.on('data', (d: Buffer) => {
    if (outN < max) out.push(d.subarray(0, max - outN));
    else truncated = true;
    outN += d.length;
    if (outN > max) truncated = true;
  });
  h.stderr?.on('data', (d: Buffer) => {
    if (errN < max) err.push(d.subarray(0, max - errN));
    else truncated = true;
    errN += d.length;
  });
  h.stdin?.on('error', () => undefined);
  h.stdin?.end(options.stdin ?? '');
  const timer = setTimeout(() => {
    timedOut = true;
    h.kill('SIGKILL');
  }, options.timeoutMs ?? 600_000);
  const r = await h.done.finally(() => clearTimeout(timer));
  return {
    status: r.status,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    truncated,
    timedOut,
  };
}

function failure(path: string, r: CapturedRun, what: string): never {
  if (r.status === 77)
    throw new PathDenied('mcp.paths.symlink-outside', `${path} resolves outside /workspace (symlink)`);
  if (r.status === 78) throw new PathDenied('mcp.paths.git-dir', `${path} resolves into .git`);
  if (r.status === 66)
    throw new AirlockError(
      'NOT_FOUND',
      `${what}: ${path}: ${r.stderr.trim() || 'not found'}`,
      'list files with list_files',
    );
  throw new AirlockError(
    'FAILURE',
    `${what} ${path} failed (exit ${r.status}): ${r.stderr.trim().slice(0, 300)}`,
    "see the session's audit log",
  );
}

/** Reads a workspace file (at most maxBytes; `truncated` tells). */
export async function readWorkspaceFile(
  s: Session,
  path: string,
  o: { maxBytes?: number; via?: ExecRequest['via'] } = {},
): Promise<{ path: string; content: string; truncated: boolean }> {
  const p = workspacePath(path);
  const max = Math.min(o.maxBytes ?? MAX_READ_BYTES, MAX_READ_BYTES);
  const r = await runCaptured(s, ['/bin/sh', '-c', READ_SCRIPT, 'airlock-read', p, String(max + 1)], {
    via: o.via,
    maxBytes: max + 1,
    timeoutMs: 60_000,
  });
  if (r.status !== 0) failure(path, r, 'read');
  const truncated = Buffer.byteLength(r.stdout) > max || r.truncated;
  return {
    path: p,
    content: truncated ? Buffer.from(r.stdout).subarray(0, max).toString('utf8') : r.stdout,
    truncated,
  };
}

/** Writes (creates or replaces) a workspace file, creating parent directories. */
export async function writeWorkspaceFile(
  s: Session,
  path: string,
  content: string | Buffer,
  o: { via?: ExecRequest['via'] } = {},
): Promise<{ path: string; bytes: number }> {
  const p = workspacePath(path, { write: true });
  const r = await runCaptured(s, ['/bin/sh', '-c', WRITE_SCRIPT, 'airlock-write', p], {
    stdin: content,
    via: o.via,
    timeoutMs: 60_000,
  });
  if (r.status !== 0) failure(path, r, 'write');
  return { path: p, bytes: Buffer.byteLength(content) };
}

export async function deleteWorkspaceFile(
  s: Session,
  path: string,
  o: { via?: ExecRequest['via'] } = {},
): Promise<{ path: string }> {
  const p = workspacePath(path, { write: true });
  const r = await runCaptured(s, ['/bin/sh', '-c', DELETE_SCRIPT, 'airlock-delete', p], {
    via: o.via,
    timeoutMs: 60_000,
  });
  if (r.status !== 0) failure(path, r, 'delete');
  return { path: p };
}

export interface ListEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  path: string;
}

/** Lists a workspace directory (depth-limited, .git skipped). */
export async function listWorkspace(
  s: Session,
  path = '.',
  o: { depth?: number; max?: number; via?: ExecRequest['via'] } = {},
): Promise<{ path: string; entries: ListEntry[]; truncated: boolean }> {
  const p = workspacePath(path);
  const depth = Math.max(1, Math.min(o.depth ?? 3, 32));
  const max = Math.max(1, Math.min(o.max ?? 2000, 20_000));
  const r = await runCaptured(s, ['/bin/sh', '-c', LIST_SCRIPT, 'airlock-list', p, String(depth)], {
    via: o.via,
    timeoutMs: 60_000,
    maxBytes: 4 * 1024 * 1024,
  });
  if (r.status !== 0) failure(path, r, 'list');
  const kinds: Record<string, ListEntry['type']> = { f: 'file', d: 'dir', l: 'symlink' };
  const lines = r.stdout.split('\n').filter(Boolean);
  if (r.truncated) lines.pop(); // a cut last line
  const entries = lines.map((l) => {
    const m = /^(\S) (\d+) (.*)$/.exec(l);
    return m
      ? { type: kinds[m[1]!] ?? 'other', size: Number(m[2]), path: m[3]! }
      : { type: 'other' as const, size: 0, path: l };
  });
  return { path: p, entries: entries.slice(0, max), truncated: entries.length > max || r.truncated };
}
