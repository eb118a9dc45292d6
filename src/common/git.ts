import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { AirlockError, cannotRecord, isRecordingFailure } from './errors.ts';
import { escapeForTerminal } from './terminal.ts';

// Host-side git on anything the agent touched runs through here. Principle: the host
// never runs what the agent wrote. No system/global config, no hooks, no fsmonitor, no
// filters, textconv or external diff from any config we did not write, no credential helpers, no
// prompts; config that could run a program is overridden on the command line (highest
// priority). Callers must point GIT_DIR at a repository whose config Airlock wrote.
const HARDENING = [
  '-c',
  'core.hooksPath=/dev/null',
  '-c',
  'core.fsmonitor=false',
  '-c',
  'core.untrackedCache=false',
  '-c',
  'core.sshCommand=false',
  '-c',
  'core.pager=cat',
  '-c',
  'core.editor=false',
  '-c',
  'core.askPass=false',
  '-c',
  'credential.helper=',
  '-c',
  'protocol.file.allow=user',
  '-c',
  'protocol.ext.allow=never',
  '-c',
  'safe.directory=*',
  '-c',
  'uploadpack.packObjectsHook=',
  '-c',
  'gc.auto=0',
  '-c',
  'maintenance.auto=false',
  '-c',
  'commit.gpgSign=false',
  '-c',
  'tag.gpgSign=false',
  '-c',
  'submodule.recurse=false',
  '-c',
  'init.templateDir=',
];

export function gitEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: '/nonexistent',
    LANG: 'C',
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_NO_REPLACE_OBJECTS: '1',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_ATTR_NOSYSTEM: '1',
  };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface GitResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Bounds for git on agent-made data: it runs as root outside the sandbox's cgroup. */
export interface GitBounds {
  memoryBytes: number;
  cpuSeconds: number;
  timeoutMs: number;
}
export const AGENT_DATA_BOUNDS: GitBounds = { memoryBytes: 3 * 1024 ** 3, cpuSeconds: 600, timeoutMs: 900_000 };
// Keeps git's pack mmaps and caches well inside the address-space limit.
const BOUNDED_CONFIG = [
  '-c',
  'core.packedGitLimit=512m',
  '-c',
  'core.packedGitWindowSize=32m',
  '-c',
  'core.deltaBaseCacheLimit=64m',
  '-c',
  'pack.threads=1',
];

export interface GitOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  allowFail?: boolean;
  maxBuffer?: number;
  /** e.g. nsenter into a sandbox's mount namespace (trusted git, agent data) */ prefix?: string[];
  /** latin1: one character per byte, for binary output split by byte counts */ encoding?: 'utf8' | 'latin1';
  /** rlimits (address space, CPU) and a wall-clock timeout: for git reading what an agent made */ bounds?: GitBounds;
  /** what git works on, named in its failure (e.g. `the repository /src/app`) */ about?: string;
}

function spawnGit(args: string[], opts: GitOptions, encoding: BufferEncoding | 'buffer') {
  const o: SpawnSyncOptions = {
    cwd: opts.cwd ?? '/',
    env: gitEnv(opts.env),
    input: encoding === 'buffer' && typeof opts.input === 'string' ? Buffer.from(opts.input) : opts.input,
    maxBuffer: opts.maxBuffer ?? 512 * 1024 * 1024,
    ...(encoding === 'buffer' ? {} : { encoding }),
    ...(opts.bounds ? { timeout: opts.bounds.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
  };
  const limits = opts.bounds
    ? ['prlimit', `--as=${opts.bounds.memoryBytes}`, `--cpu=${opts.bounds.cpuSeconds}`, '--core=0', '--']
    : [];
  const argv = [
    ...limits,
    ...(opts.prefix ?? []),
    'git',
    ...HARDENING,
    ...(opts.bounds ? BOUNDED_CONFIG : []),
    ...args,
  ];
  const r = spawnSync(argv[0]!, argv.slice(1), o);
  if (r.error) throw spawnError(r.error as NodeJS.ErrnoException, args, opts);
  if (opts.bounds && (r.signal === 'SIGKILL' || r.signal === 'SIGXCPU')) {
    throw new AirlockError(
      'TOO_LARGE',
      `git ${args[0]} on agent-made data hit its ${r.signal === 'SIGXCPU' ? 'CPU' : 'time or memory'} limit`,
      'the change is too large or too deep to process: split the work into smaller sessions',
    );
  }
  if (opts.bounds && r.status !== 0 && /out of memory|cannot allocate|mmap failed/i.test(String(r.stderr ?? ''))) {
    throw new AirlockError(
      'TOO_LARGE',
      `git ${args[0]} on agent-made data ran out of its ${opts.bounds.memoryBytes}-byte memory limit`,
      'the change is too large to process: split the work into smaller sessions',
    );
  }
  return r;
}

function subcommandOf(args: string[]): string {
  return args.find((a) => !a.startsWith('-') && !a.includes('=')) ?? 'git';
}

function spawnError(error: NodeJS.ErrnoException, args: string[], opts: GitOptions): AirlockError {
  const sub = subcommandOf(args);
  if (error.code === 'ENOBUFS')
    return new AirlockError(
      'TOO_LARGE',
      `git ${sub} produced more than ${opts.maxBuffer ?? 512 * 1024 * 1024} bytes of output`,
      'the change is too large to process: split the work into smaller sessions',
    );
  if (error.code === 'E2BIG')
    return new AirlockError(
      'TOO_LARGE',
      `git ${sub}: argument list too long`,
      'the change is too large to process: split the work into smaller sessions',
    );
  if (error.code === 'ETIMEDOUT')
    return new AirlockError(
      'TOO_LARGE',
      `git ${sub} on agent-made data did not finish within ${Math.round((opts.bounds?.timeoutMs ?? 0) / 1000)} s`,
      'the change is too large to process: split the work into smaller sessions',
    );
  if (error.code === 'ENOENT')
    return new AirlockError(
      'UNAVAILABLE',
      `cannot run git: ${error.message}`,
      `install git${opts.bounds ? ' and util-linux (prlimit)' : ''} (apt-get install git util-linux)`,
    );
  return new AirlockError('INTERNAL', `cannot run git ${sub}: ${error.message}`, 'please report this');
}

// git's last words name what is wrong; earlier lines are progress. Bounded: stderr can be long.
const MAX_STDERR_LINES = 12;
const MAX_STDERR_CHARS = 2000;

/**
 * A git command that exited non-zero, as the user's error: which git command, its exit status
 * and git's own message (escaped: it can quote ref and file names the agent chose), never a
 * stack trace. A full disk stays a recording failure.
 */
function gitFailure(args: string[], opts: GitOptions, status: number, stderr: string): AirlockError {
  const sub = `${subcommandOf(args)}${opts.about ? ` on ${opts.about}` : ''}`;
  const said = stderr.trim().split('\n').slice(-MAX_STDERR_LINES).join('\n').slice(-MAX_STDERR_CHARS);
  if (isRecordingFailure({ message: said })) return cannotRecord(new Error(said), `git ${sub}`);
  return new AirlockError(
    'GIT_FAILED',
    `git ${sub} failed (exit ${status}): ${escapeForTerminal(said, { keepNewlines: true }) || 'no message'}`,
    'git could not read a repository: a missing object, a ref that points at nothing, or a damaged pack. Run `git fsck` in the repository and fix or remove what it names',
  );
}

export function git(args: string[], opts: GitOptions = {}): GitResult {
  const r = spawnGit(args, opts, opts.encoding ?? 'utf8');
  const res = { status: r.status ?? 128, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (res.status !== 0 && !opts.allowFail) throw gitFailure(args, opts, res.status, res.stderr);
  return res;
}

/** git with raw bytes out (names and contents the agent chose need not be UTF-8). */
export function gitBytes(
  args: string[],
  opts: Omit<GitOptions, 'encoding'> = {},
): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnGit(args, opts, 'buffer');
  const res = {
    status: r.status ?? 128,
    stdout: (r.stdout as Buffer | null) ?? Buffer.alloc(0),
    stderr: String(r.stderr ?? ''),
  };
  if (res.status !== 0 && !opts.allowFail) throw gitFailure(args, opts, res.status, res.stderr);
  return res;
}

/** The hardened argv (without `git`) for callers that stream from git asynchronously. */
export function hardenedArgs(args: string[], bounds?: GitBounds): string[] {
  return [...HARDENING, ...(bounds ? BOUNDED_CONFIG : []), ...args];
}
