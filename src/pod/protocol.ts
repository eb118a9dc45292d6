import { AirlockError } from '../common/index.ts';

// The protocol between the session's supervisor (on the host) and a session pod.
//
// The channel is the one Kubernetes gives a client with `pods/exec` on the pod: each step
// is one exec into the `agent` container of Airlock's own program, read-only in the image
// (the agent cannot replace it), with one verb:
//
//   airlock pod exec <request>   run one command: request = base64url(JSON {argv, cwd, env});
//                                stdin/stdout/stderr pass through; the exec's exit status
//                                is the command's (128+N for signal N)
//   airlock pod restore          stdin: a tar of the session's snapshot, written into /workspace
//   airlock pod capture          stdout: a tar of /workspace (links stored, never followed)
//   airlock pod kill             SIGKILL to every process of the agent container but its
//                                init (`airlock pod supervise`) and itself
//
// Nothing else crosses. The request travels in argv (not on stdin) so stdin stays the
// command's own; it is decoded and validated in the pod (the host built it). Everything
// the pod sends back (output, exit status, the capture's tar) is agent-controlled: the
// host bounds it (src/pod/tar.ts) and reads it with the same capture as local sessions.

export const POD_AIRLOCK = '/opt/airlock/bin/airlock';
export const POD_WORKSPACE = '/workspace';
export const POD_HOME = '/home/agent';
export const POD_AGENT_CONTAINER = 'agent';
export const POD_GATEWAY_CONTAINER = 'gateway';
/** Where the gateway sidecar listens: the pod's loopback, shared by its containers. */
export const POD_GATEWAY_PORT = 3128;
/** Mounted into the gateway container only (the Secret): one file per brokered credential, named as its env variable. */
export const POD_CREDENTIALS_DIR = '/run/airlock/credentials';
/**
 * Written by the gateway container, mounted read-only into the agent container: what the agent's
 * commands need of the pod's gateway (its brokered placeholders, its CA bundle); public values.
 */
export const POD_SHARED_DIR = '/run/airlock/shared';
/** In POD_SHARED_DIR: the variables `airlock pod exec` sets for every command (JSON object). */
export const POD_SHARED_ENV = 'env.json';
/** In POD_SHARED_DIR: the gateway's CA bundle (system roots + its CA), for TLS interception. */
export const POD_SHARED_CA = 'ca.pem';
/** The session's effective policy (a ConfigMap), mounted into the gateway container. */
export const POD_POLICY_FILE = '/run/airlock/policy/airlock.yaml';

export type PodVerb = 'exec' | 'restore' | 'capture' | 'kill';

export interface PodExecRequest {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

const MAX_REQUEST_CHARS = 256 * 1024;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Checks a JSON environment (names, no NUL): the exec request's and the gateway's shared one. */
export function checkedEnv(env: unknown): Record<string, string> {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new TypeError('env must be an object');
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k) || typeof v !== 'string' || v.includes('\0'))
      throw new TypeError(`bad environment entry ${JSON.stringify(k.slice(0, 80))}`);
  }
  return env as Record<string, string>;
}

/** The argv of one exec into the agent container. */
export function podCommand(verb: PodVerb, request?: PodExecRequest): string[] {
  const argv = [POD_AIRLOCK, 'pod', verb];
  if (verb === 'exec') argv.push(Buffer.from(JSON.stringify(request)).toString('base64url'));
  return argv;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string' && !x.includes('\0'));
}

/** Decodes and checks an exec request (throws a USAGE error naming what is wrong: the host built it). */
export function decodeExecRequest(encoded: string): PodExecRequest {
  try {
    return checkedRequest(encoded);
  } catch (e) {
    throw new AirlockError(
      'USAGE',
      `not an exec request: ${e instanceof Error ? e.message : String(e)}`,
      'the kubernetes driver builds it (src/pod/protocol.ts); a person does not run `airlock pod exec`',
    );
  }
}

function checkedRequest(encoded: string): PodExecRequest {
  if (encoded.length > MAX_REQUEST_CHARS) throw new TypeError('request too large');
  const r = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as Partial<PodExecRequest>;
  if (typeof r !== 'object' || r === null) throw new TypeError('not a JSON object');
  if (!isStringArray(r.argv) || r.argv.length === 0) throw new TypeError('argv must be a non-empty list of strings');
  if (typeof r.cwd !== 'string' || !r.cwd.startsWith('/') || r.cwd.includes('\0'))
    throw new TypeError('cwd must be an absolute path');
  return { argv: r.argv, cwd: r.cwd, env: checkedEnv(r.env ?? {}) };
}

/** Exit status of a process as a shell reports it (128+N for signal N). */
export function exitStatus(
  code: number | null,
  signal: NodeJS.Signals | null,
  signals: Record<string, number>,
): number {
  if (code !== null) return code;
  return 128 + (signal ? (signals[signal] ?? 1) : 1);
}
