import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { ADDON, RUN_TS, codeFingerprint, privateDirProblem, warmPaths, type WarmPaths } from './paths.ts';
import { rebindStdio } from './stdio.ts';
import { ANSWER, FORWARDED_SIGNALS, MAX_REQUEST, parseRequest, type Request } from './protocol.ts';
import { processRuns } from '../../common/index.ts';

// A spare (issue 16): an `airlock` process that has started Node and loaded the CLI, the run
// command and the session core, then serves exactly ONE invocation handed over by
// build/airlock-attach and exits. One-shot, so nothing of one run carries to the next. The
// spare that takes a request first starts its successor, so the next `airlock` finds one.

interface Native {
  listen(path: string): number;
  accept(fd: number, timeoutMs: number): { fd: number; uid: number; pid: number } | null;
  receive(fd: number, maxBytes: number): { data: Buffer; fds: number[] };
  dup2(from: number, to: number): number;
  dup(fd: number): number;
  close(fd: number): void;
}

/** Loads what a request should find loaded (the CLI, the run command, the session core); returns the CLI's main. */
export type Load = () => Promise<(argv: string[]) => Promise<number>>;

export interface SpareOptions {
  /** requests this chain of spares has served before this one */
  served: number;
  /** how long a spare waits for a request before the chain ends */
  idleMs: number;
  /** the spare that started this one: its command runs now, so this one loads after it (or on a request) */
  after?: number;
}

/** How often a waiting spare looks whether warm start was turned off or its socket taken over. */
const CHECK_MS = 1000;
/** A successor loads at the latest this long after it started, however long its predecessor's command runs. */
const DEFER_MAX_MS = 10_000;
const DEFER_POLL_MS = 25;
const LOG_MAX = 1 << 20;

interface Listening {
  fd: number;
  ino: number;
}

/** The spare's whole life: listen, wait for one request, serve it (or end idle/off/replaced). */
export async function serveAsSpare(args: string[], load: Load): Promise<void> {
  const opts = parseSpareArgs(args);
  const ownEnv = { ...process.env };
  const paths = warmPaths(ownEnv);
  let taken: Taken | null;
  try {
    taken = await takeRequest(paths, opts, load);
  } catch (e) {
    // its stdio is /dev/null: the log is where `warm on` and `warm status` find why
    return void logLine(paths, `failed: ${(e as Error).message}`);
  }
  if (!taken) return;
  const { native, conn, req, fds, fingerprint, main } = taken;
  const refusal = refusalOf(req, fds, fingerprint);
  const served = opts.served + (refusal ? 0 : 1);
  if (existsSync(paths.enabled)) startSpare(ownEnv, { served, idleMs: opts.idleMs, after: process.pid });
  if (refusal) {
    for (const fd of fds) native.close(fd);
    answer(conn.fd, refusal.answer);
    return void logLine(paths, refusal.why);
  }
  takeOver(native, req, fds);
  logLine(paths, `serving pid ${conn.pid} (request ${served})`);
  answer(conn.fd, ANSWER.accepted);
  relayClient(native, conn.fd, paths);
  process.exitCode = await main(req.argv);
}

interface Taken {
  native: Native;
  conn: { fd: number; uid: number; pid: number };
  req: Request & { kind: 'run' };
  fds: number[];
  fingerprint: string;
  main: (argv: string[]) => Promise<number>;
}

/**
 * Listens, loads and waits; the run request this spare is to serve, or null (ended, off, or a bad
 * client). It listens before it loads, and a successor loads only once the command of the spare
 * that started it has ended (or a request comes first, or after DEFER_MAX_MS): its loading would
 * otherwise compete for the CPU with that command.
 */
async function takeRequest(paths: WarmPaths, opts: SpareOptions, load: Load): Promise<Taken | null> {
  const problem = privateDirProblem(paths.dir);
  if (problem) throw new Error(`not started: ${problem}`);
  const native = createRequire(import.meta.url)(ADDON) as Native;
  const fingerprint = codeFingerprint();
  const listening = listenAt(native, paths);
  if (!existsSync(paths.enabled)) return endWaiting(native, paths, listening, 'warm start is off');
  writeState(paths, { pid: process.pid, served: opts.served, idleMs: opts.idleMs, loaded: false, loadCpuMs: 0 });
  const early = opts.after ? deferLoading(native, paths, listening, opts.after) : null;
  if (opts.after) logLine(paths, `loading: ${early ? 'a request came first' : loadingReason(opts.after)}`);
  const main = await load();
  writeState(paths, { pid: process.pid, served: opts.served, idleMs: opts.idleMs, loaded: true, loadCpuMs: cpuMs() });
  const conn = early ?? waitForClient(native, paths, listening, opts.idleMs);
  if (typeof conn === 'string') return endWaiting(native, paths, listening, conn);
  native.close(listening.fd);
  removeIfOurs(paths.socket, listening.ino);
  let fds: number[] = [];
  try {
    const got = native.receive(conn.fd, MAX_REQUEST);
    fds = got.fds;
    const req = parseRequest(got.data);
    if (req.kind === 'run') return { native, conn, req, fds, fingerprint, main };
    rmSync(paths.enabled, { force: true });
    answer(conn.fd, ANSWER.accepted);
    logLine(paths, `turned off by pid ${conn.pid}`);
  } catch (e) {
    for (const fd of fds) native.close(fd);
    logLine(paths, `dropped a client (pid ${conn.pid}): ${(e as Error).message}`);
    // a garbage request does not end the chain
    if (existsSync(paths.enabled)) startSpare({ ...process.env }, opts);
  }
  return null;
}

function parseSpareArgs(args: string[]): SpareOptions {
  const num = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    const n = i >= 0 ? Number(args[i + 1]) : NaN;
    return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
  };
  return { served: num('--served', 0), idleMs: num('--idle-ms', 30 * 60_000), after: num('--after', 0) || undefined };
}

/** Starts a spare (detached, stdio /dev/null, cwd /) with the environment a spare was started with. */
export function startSpare(env: NodeJS.ProcessEnv, o: SpareOptions): number | undefined {
  const child = spawn(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      RUN_TS,
      '__spare',
      '--served',
      String(o.served),
      '--idle-ms',
      String(o.idleMs),
      ...(o.after ? ['--after', String(o.after)] : []),
    ],
    { detached: true, stdio: 'ignore', env, cwd: '/' },
  );
  child.unref();
  return child.pid;
}

/** Binds a temporary name and renames it onto the socket path: a client never sees a half-made socket. */
function listenAt(native: Native, paths: WarmPaths): Listening {
  const tmp = `${paths.socket}.${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = native.listen(tmp);
  chmodSync(tmp, 0o600);
  renameSync(tmp, paths.socket);
  return { fd, ino: lstatSync(paths.socket).ino };
}

type Conn = { fd: number; uid: number; pid: number };

/** A client of this user within timeoutMs, or null; another uid's connection is closed and logged. */
function acceptOwn(native: Native, paths: WarmPaths, listening: Listening, timeoutMs: number): Conn | null {
  const conn = native.accept(listening.fd, timeoutMs);
  if (!conn || conn.uid === process.geteuid?.()) return conn;
  native.close(conn.fd);
  logLine(paths, `refused a client of uid ${conn.uid} (pid ${conn.pid}): not this user`);
  return null;
}

/**
 * Waits while the predecessor's command runs (bounded); a request that comes meanwhile is returned.
 * An ended predecessor whose parent is gone is a zombie until init reaps it (here up to ~1 s): ended.
 */
function deferLoading(native: Native, paths: WarmPaths, listening: Listening, predecessor: number): Conn | null {
  const deadline = Date.now() + DEFER_MAX_MS;
  while (Date.now() < deadline && processRuns(predecessor)) {
    const conn = acceptOwn(native, paths, listening, DEFER_POLL_MS);
    if (conn) return conn;
  }
  return null;
}

const loadingReason = (predecessor: number) =>
  processRuns(predecessor)
    ? `the spare before (pid ${predecessor}) still runs after ${DEFER_MAX_MS} ms`
    : `the spare before (pid ${predecessor}) has ended`;

/** The first client of this user, or why waiting ended (idle, off, replaced). */
function waitForClient(native: Native, paths: WarmPaths, listening: Listening, idleMs: number): Conn | string {
  const deadline = Date.now() + idleMs;
  for (let left = idleMs; left > 0; left = deadline - Date.now()) {
    const conn = acceptOwn(native, paths, listening, Math.min(CHECK_MS, left));
    if (conn) return conn;
    if (!isOurs(paths.socket, listening.ino)) return 'replaced by a newer spare';
    if (!existsSync(paths.enabled)) return 'warm start is off';
  }
  return 'idle';
}

function endWaiting(native: Native, paths: WarmPaths, listening: Listening, why: string): null {
  native.close(listening.fd);
  const ours = removeIfOurs(paths.socket, listening.ino);
  // idle ends the chain: no spare waits, and warm start is off until `airlock warm on`
  if (why === 'idle' && ours) rmSync(paths.enabled, { force: true });
  if (ours) rmSync(paths.state, { force: true });
  logLine(paths, `ended without a request: ${why}`);
  return null;
}

/** Why this request is not served here (the client then runs it in-process), or null. */
function refusalOf(req: Request & { kind: 'run' }, fds: number[], fingerprint: string) {
  if (codeFingerprint() !== fingerprint)
    return { answer: ANSWER.stale, why: 'stale: the code on disk changed since this spare loaded it' };
  if (fds.length !== 3) return { answer: ANSWER.refused, why: `refused: ${fds.length} descriptors, not 3` };
  // internal entry points (__supervise, __spare) are never started through a spare, and
  // `warm` manages the spares themselves (its status would find this one serving it)
  if (req.argv[0]?.startsWith('__') || req.argv[0] === 'warm')
    return { answer: ANSWER.refused, why: `refused: ${req.argv[0]} runs in-process` };
  try {
    process.chdir(req.cwd);
  } catch (e) {
    return { answer: ANSWER.refused, why: `refused: cannot enter the caller's cwd (${(e as Error).message})` };
  }
  return null;
}

/**
 * Becomes the caller: its environment (on the real process.env, so native getenv sees it too),
 * umask, argv, and its descriptors on 0/1/2 with process.stdin/stdout/stderr made anew for them
 * (stdio.ts: a terminal is then seen as a terminal).
 */
function takeOver(native: Native, req: Request & { kind: 'run' }, fds: number[]): void {
  for (const key of Object.keys(process.env)) if (!(key in req.env)) delete process.env[key];
  Object.assign(process.env, req.env);
  process.umask(req.umask);
  process.argv = [process.argv[0]!, RUN_TS, ...req.argv];
  fds.forEach((fd, i) => {
    native.dup2(fd, i);
    native.close(fd);
  });
  rebindStdio();
  process.exitCode = undefined;
}

/**
 * While the command runs: a signal byte from the client is raised here, as if the terminal had
 * sent it; the client going away is a hangup (SIGHUP, as when a terminal closes), with 0/1/2
 * moved to /dev/null so the rest of the run cannot fail writing to a reader that is gone.
 * The status goes back at exit, whichever way the process ends (process.exit included).
 */
function relayClient(native: Native, connFd: number, paths: WarmPaths): void {
  const watch = new Socket({ fd: native.dup(connFd), readable: true, writable: false });
  let gone = false;
  const hangup = () => {
    if (gone) return;
    gone = true;
    const devnull = openSync('/dev/null', 'r+');
    for (const fd of [0, 1, 2]) native.dup2(devnull, fd);
    native.close(devnull);
    process.kill(process.pid, 'SIGHUP');
  };
  watch.on('data', (bytes: Buffer) => {
    for (const b of bytes) {
      const sig = FORWARDED_SIGNALS[b];
      if (sig) process.kill(process.pid, sig);
    }
  });
  watch.on('end', hangup);
  watch.on('error', hangup);
  watch.unref();
  process.on('exit', (code) => {
    logLine(paths, `done: status ${code}, cpu ${Math.round(cpuMs())} ms (with children)`);
    if (gone) return;
    const frame = Buffer.alloc(5);
    frame.write('X', 0, 'latin1');
    frame.writeInt32LE(code, 1);
    try {
      writeSync(connFd, frame);
    } catch {
      // the client is gone: nothing to tell
    }
  });
}

function answer(fd: number, what: string): void {
  try {
    writeSync(fd, what, null, 'latin1');
  } catch {
    // the client left; it falls back or has ended
  }
}

function isOurs(path: string, ino: number): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.ino === ino;
}

/** Removes the socket path if it is still this spare's (a successor may have renamed its own onto it). */
function removeIfOurs(path: string, ino: number): boolean {
  if (!isOurs(path, ino)) return false;
  rmSync(path, { force: true });
  return true;
}

export interface SpareState {
  pid: number;
  served: number;
  idleMs: number;
  /** whether it has loaded the CLI (it listens before: a request that comes first waits for the load) */
  loaded: boolean;
  /** CPU the spare spent loading (what every warm run pays in the background) */
  loadCpuMs: number;
}

function writeState(paths: WarmPaths, state: SpareState): void {
  const tmp = `${paths.state}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ ...state, since: new Date().toISOString() }) + '\n', { mode: 0o600 });
  renameSync(tmp, paths.state);
}

/** This process's CPU time and that of the children it waited for, in ms (/proc/self/stat). */
export function cpuMs(): number {
  const own = process.cpuUsage();
  let children = 0;
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    children = ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // cutime, cstime at USER_HZ 100
  } catch {
    // not Linux: own time only
  }
  return (own.user + own.system) / 1000 + children;
}

export function logLine(paths: WarmPaths, line: string): void {
  try {
    if ((statSync(paths.log, { throwIfNoEntry: false })?.size ?? 0) > LOG_MAX) rmSync(paths.log, { force: true });
    appendFileSync(paths.log, `${new Date().toISOString()} spare ${process.pid}: ${line}\n`, { mode: 0o600 });
  } catch {
    // a log that cannot be written never stops a run
  }
}
