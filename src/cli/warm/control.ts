import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { AirlockError } from '../../common/index.ts';
import { ADDON, CLIENT, privateDirProblem, warmPaths, type WarmPaths } from './paths.ts';
import { encodeRequest } from './protocol.ts';
import { startSpare, type SpareState } from './spare.ts';

// `airlock warm on|off|status`: the chain of spares (spare.ts) is per user and AIRLOCK_HOME;
// these commands start its first spare, end it, and report it.

const START_WAIT_MS = 20_000;
const END_WAIT_MS = 5_000;
const POLL_MS = 50;
/** Bounds `warm off`'s loop over spares that replace one another while it runs. */
const MAX_OFF_ROUNDS = 20;

export interface WarmStatus {
  on: boolean;
  idleMs: number | null;
  /** the spare waiting for the next `airlock`, if one is alive */
  spare: (SpareState & { since: string }) | null;
  /** requests served by the current chain of spares */
  served: number;
  /** connections refused because they came from another uid (SO_PEERCRED) */
  refused: number;
  /** whether build/airlock-attach and build/warm.node exist (scripts/build-native.sh) */
  built: boolean;
  log: string;
}

export async function warmOn(env: NodeJS.ProcessEnv, idleMs: number): Promise<WarmStatus> {
  if (!existsSync(ADDON) || !existsSync(CLIENT))
    throw new AirlockError(
      'UNAVAILABLE',
      'warm start needs build/airlock-attach and build/warm.node, which are not built',
      'run `bash scripts/build-native.sh` (needs a C compiler); everything works without them, only slower',
    );
  const paths = usablePaths(env);
  const before = warmStatus(env);
  if (before.spare && before.on && before.idleMs === idleMs) return before;
  if (before.spare) await warmOff(env);
  writeFileSync(paths.enabled, JSON.stringify({ idleMs }) + '\n', { mode: 0o600 });
  const pid = startSpare(env, { served: 0, idleMs });
  return waitForSpare(env, paths, pid);
}

/** Turns warm start off: the waiting spare ends now; a spare serving a command finishes it and starts none. */
export async function warmOff(env: NodeJS.ProcessEnv): Promise<WarmStatus> {
  const paths = warmPaths(env);
  rmSync(paths.enabled, { force: true });
  const pids = new Set<number>();
  for (let round = 0; round < MAX_OFF_ROUNDS; round++) {
    const pid = readState(paths)?.pid;
    if (pid) pids.add(pid);
    if (!(await sendOff(paths.socket))) break;
  }
  rmSync(paths.socket, { force: true });
  const deadline = Date.now() + END_WAIT_MS;
  while ([...pids].some(alive) && Date.now() < deadline) await sleep(POLL_MS);
  rmSync(paths.state, { force: true });
  return warmStatus(env);
}

export function warmStatus(env: NodeJS.ProcessEnv): WarmStatus {
  const paths = warmPaths(env);
  const enabled = readJson<{ idleMs?: number }>(paths.enabled);
  const state = readState(paths);
  const spare = state && alive(state.pid) && existsSync(paths.socket) ? state : null;
  return {
    on: enabled !== null,
    idleMs: enabled?.idleMs ?? null,
    spare,
    served: spare?.served ?? 0,
    refused: countLines(paths.log, 'refused a client of uid'),
    built: existsSync(ADDON) && existsSync(CLIENT),
    log: paths.log,
  };
}

function usablePaths(env: NodeJS.ProcessEnv): WarmPaths {
  const paths = warmPaths(env);
  const problem = privateDirProblem(paths.dir);
  if (problem)
    throw new AirlockError(
      'UNAVAILABLE',
      `warm start needs a private directory: ${problem}`,
      'fix the directory (owned by you, mode 700, not a symlink) or set AIRLOCK_HOME to one you own',
    );
  return paths;
}

async function waitForSpare(env: NodeJS.ProcessEnv, paths: WarmPaths, pid: number | undefined): Promise<WarmStatus> {
  const deadline = Date.now() + START_WAIT_MS;
  while (Date.now() < deadline) {
    const status = warmStatus(env);
    if (status.spare?.pid === pid) return status;
    if (pid === undefined || !alive(pid)) break;
    await sleep(POLL_MS);
  }
  throw new AirlockError(
    'INTERNAL',
    `the spare did not start (pid ${pid ?? 'none'})${tail(paths.log)}`,
    `see ${paths.log}; \`airlock warm off\` turns warm start off`,
  );
}

/** Asks the spare at `socket` to end; false when none answers (no socket, or nobody listening). */
function sendOff(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = connect(socket);
    const timer = setTimeout(() => conn.destroy(), END_WAIT_MS);
    let answered = false;
    conn.on('connect', () => conn.end(encodeRequest(['off'])));
    conn.on('data', () => {
      answered = true;
    });
    conn.on('error', () => undefined);
    conn.on('close', () => {
      clearTimeout(timer);
      resolve(answered);
    });
  });
}

function readState(paths: WarmPaths): (SpareState & { since: string }) | null {
  return readJson(paths.state);
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie or a pid reused by something else is not our spare
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('\0__spare\0');
  } catch {
    return false;
  }
}

function countLines(path: string, needle: string): number {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.includes(needle)).length;
  } catch {
    return 0;
  }
}

function tail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    return `: ${lines[lines.length - 1]}`;
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
