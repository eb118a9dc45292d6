import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AirlockError } from '../common/index.ts';

// Which process tracer a session gets. Both write strace's line format into the session's
// raw trace file, read by one parser (trace.ts):
//  - seccomp-notify (build/airlock-tracer, src/sandbox/tracer/tracer.c): seccomp user
//    notification on exec/socket/connect plus the proc connector for fork and exit. No
//    process ever stops for a fork, an open or an exit. Needs root (the proc connector is
//    CAP_NET_ADMIN in the initial namespaces) and a C compiler at setup.
//  - strace-seccomp-bpf: ptrace, stopped only at the traced calls; the fallback (no root,
//    no compiler, a kernel without user notification). It also records failed opens.
// AIRLOCK_TRACER=strace forces the fallback; AIRLOCK_TRACER=seccomp-notify makes a session
// that cannot have it fail to start (CI as root: the fast tracer must not silently go).

export type TracerKind = 'seccomp-notify' | 'strace-seccomp-bpf' | 'off';
export interface TracerChoice {
  kind: TracerKind;
  binary: string;
  /** why the notify tracer was not used, when tracing is on */ fallbackReason: string | null;
}

export const TRACER_BINARY = fileURLToPath(new URL('../../build/airlock-tracer', import.meta.url));

/**
 * Why the notify tracer cannot run here, or null when it can. Asynchronous: the sandbox
 * asks while its holder starts (issue 16: the check is a process of its own).
 */
async function notifyUnavailable(root: boolean, binary: string): Promise<string | null> {
  if (!root)
    return 'the seccomp-notify tracer needs root (the proc connector reports forks and exits to CAP_NET_ADMIN only)';
  if (!existsSync(binary)) return 'build/airlock-tracer is not built (bash scripts/build-native.sh needs a C compiler)';
  return new Promise((resolve) => {
    execFile(binary, ['--check'], { encoding: 'utf8', timeout: 5000 }, (err, _stdout, stderr) => {
      if (!err) return resolve(null);
      const why = stderr || (err.signal ? String(err.signal) : err.message);
      resolve(`airlock-tracer --check failed: ${why.trim().slice(0, 300)}`);
    });
  });
}

export async function chooseTracer(o: {
  wanted: boolean;
  fileProbes?: boolean;
  root: boolean;
  env?: NodeJS.ProcessEnv;
  binary?: string;
}): Promise<TracerChoice> {
  const binary = o.binary ?? TRACER_BINARY;
  if (!o.wanted) return { kind: 'off', binary, fallbackReason: null };
  const forced = (o.env ?? process.env).AIRLOCK_TRACER;
  if (forced === 'strace') return { kind: 'strace-seccomp-bpf', binary, fallbackReason: 'AIRLOCK_TRACER=strace' };
  // a failed open's outcome is seen only by ptrace: the notify tracer sees calls, not results
  if (o.fileProbes)
    return {
      kind: 'strace-seccomp-bpf',
      binary,
      fallbackReason: 'sandbox.traceFileProbes: true (failed opens are seen by strace only)',
    };
  const why = await notifyUnavailable(o.root, binary);
  if (why === null) return { kind: 'seccomp-notify', binary, fallbackReason: null };
  if (forced === 'seccomp-notify')
    throw new AirlockError(
      'UNAVAILABLE',
      `AIRLOCK_TRACER=seccomp-notify, but ${why}`,
      'run as root after bash scripts/setup.sh, or unset AIRLOCK_TRACER to fall back to strace',
    );
  return { kind: 'strace-seccomp-bpf', binary, fallbackReason: why };
}

/** The launch-chain links that run the rest of the chain under the notify tracer (bound to the supervisor by a death signal). */
export function notifyTracerChain(
  binary: string,
  traceFile: string,
  redirectedPorts: readonly number[] = [],
  launchOptions: readonly string[] = [],
): string[] {
  const ports = redirectedPorts.length ? ['--redirected-ports', redirectedPorts.join(',')] : [];
  return [binary, '--die-with-parent', '-o', traceFile, ...ports, ...launchOptions, '--'];
}
