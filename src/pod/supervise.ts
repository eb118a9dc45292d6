import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  checkedEnv,
  decodeExecRequest,
  exitStatus,
  POD_SHARED_DIR,
  POD_SHARED_ENV,
  POD_WORKSPACE,
} from './protocol.ts';
import { extractBounded, packDirectory } from './tar.ts';

// The agent container's side of the protocol (src/pod/protocol.ts). `supervise` is the
// container's init: it holds the pod (and the workspace volume) until the session ends.
// The other verbs are single steps the host starts over Kubernetes exec. Each returns the
// exit status the exec reports.

/** What the snapshot restore accepts (the host made it; bounded all the same). */
const RESTORE_BOUNDS = { maxEntries: 2_000_000, maxBytes: 64 * 1024 ** 3, maxDepth: 256 };

/** `airlock pod supervise`: idle until SIGTERM (the pod's end); the agent's commands come through `pod exec`. */
export function podSupervise(): Promise<number> {
  return new Promise((resolve) => {
    const keep = setInterval(() => undefined, 1 << 30);
    const end = () => {
      clearInterval(keep);
      resolve(0);
    };
    process.once('SIGTERM', end);
    process.once('SIGINT', end);
  });
}

/** The container's own proxy settings (the template's, pointing at the gateway sidecar): they win over the request's. */
const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];

const MAX_SHARED_ENV_BYTES = 256 * 1024;

/**
 * The variables the pod's gateway published for the agent's commands (its placeholders, its CA
 * bundle): {} when it has not (an older template, or no gateway yet). Only a small regular file.
 */
export function gatewayEnv(dir: string): Record<string, string> {
  let fd: number;
  try {
    fd = openSync(join(dir, POD_SHARED_ENV), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch {
    return {};
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_SHARED_ENV_BYTES) return {};
    return checkedEnv(JSON.parse(readFileSync(fd, 'utf8')));
  } catch {
    return {};
  } finally {
    closeSync(fd);
  }
}

/** `airlock pod exec REQUEST`: the command, its stdio passed through; its status is ours. */
export async function podExec(encoded: string): Promise<number> {
  const req = decodeExecRequest(encoded);
  const proxy = Object.fromEntries(PROXY_VARS.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])));
  // the pod gateway's placeholders win over the host's (which that gateway does not know)
  const env = { ...req.env, ...gatewayEnv(POD_SHARED_DIR), ...proxy };
  const child = spawn(req.argv[0]!, req.argv.slice(1), { cwd: req.cwd, env, stdio: 'inherit' });
  return new Promise((resolve) => {
    child.once('error', (e) => {
      process.stderr.write(`airlock pod exec: ${(e as NodeJS.ErrnoException).code ?? 'error'}: ${req.argv[0]}\n`);
      resolve((e as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126);
    });
    child.once('exit', (code, signal) => resolve(exitStatus(code, signal, constants.signals)));
  });
}

/** `airlock pod restore`: the snapshot's tar on stdin into the workspace. */
export async function podRestore(): Promise<number> {
  const r = await extractBounded(process.stdin, POD_WORKSPACE, RESTORE_BOUNDS);
  return r.skipped.length ? 1 : 0;
}

/** `airlock pod capture`: the workspace as a tar on stdout. */
export async function podCapture(): Promise<number> {
  await pipeline(packDirectory(POD_WORKSPACE), process.stdout);
  return 0;
}

/** `airlock pod kill`: every process of the container but its init and this one (kill(-1) semantics). */
export function podKill(): number {
  try {
    process.kill(-1, 'SIGKILL');
  } catch (e) {
    // ESRCH: no process left to kill, which is the goal
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
  return 0;
}
