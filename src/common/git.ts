import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { AirlockError } from './errors.ts';

// Host-side git on anything the agent touched runs through here. Principle: the host
// never runs what the agent wrote. No system/global config, no hooks, no fsmonitor, no
// filters, textconv or external diff from any config we did not write, no credential helpers, no
// prompts; config that could run a program is overridden on the command line (highest
// priority). Callers must point GIT_DIR at a repository whose config Airlock wrote.
const HARDENING = [
  '-c', 'core.hooksPath=/dev/null',
  '-c', 'core.fsmonitor=false',
  '-c', 'core.untrackedCache=false',
  '-c', 'core.sshCommand=false',
  '-c', 'core.pager=cat',
  '-c', 'core.editor=false',
  '-c', 'core.askPass=false',
  '-c', 'credential.helper=',
  '-c', 'protocol.file.allow=user',
  '-c', 'protocol.ext.allow=never',
  '-c', 'safe.directory=*',
  '-c', 'uploadpack.packObjectsHook=',
  '-c', 'gc.auto=0',
  '-c', 'maintenance.auto=false',
  '-c', 'commit.gpgSign=false',
  '-c', 'tag.gpgSign=false',
  '-c', 'submodule.recurse=false',
  '-c', 'init.templateDir=',
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

export interface GitResult { status: number; stdout: string; stderr: string }

export function git(args: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; input?: string | Buffer; allowFail?: boolean; maxBuffer?: number; /** e.g. nsenter into a sandbox's mount namespace (trusted git, agent data) */ prefix?: string[]; /** latin1: one character per byte, for binary output split by byte counts */ encoding?: 'utf8' | 'latin1' } = {}): GitResult {
  const o: SpawnSyncOptions = {
    cwd: opts.cwd ?? '/',
    env: gitEnv(opts.env),
    input: opts.input,
    maxBuffer: opts.maxBuffer ?? 512 * 1024 * 1024,
    encoding: opts.encoding ?? 'utf8',
  };
  const argv = [...(opts.prefix ?? []), 'git', ...HARDENING, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), o);
  if (r.error) throw new AirlockError('UNAVAILABLE', `cannot run git: ${r.error.message}`, 'install git (apt-get install git)');
  const res = { status: r.status ?? 128, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if (res.status !== 0 && !opts.allowFail) {
    throw new Error(`git ${args.join(' ')} failed (${res.status}): ${res.stderr.trim()}`);
  }
  return res;
}
