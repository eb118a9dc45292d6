import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AirlockError } from '../common/index.ts';

// What every driver's exec checks before it starts anything: the sandbox still runs, there is a
// command, and the command names a file the sandbox can see (looked up on the sandbox's PATH,
// through the driver's view of the sandbox's filesystem from the host).

export interface ExecCommandQuery {
  stopped: boolean;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** The host path of a sandbox path; null when the sandbox cannot see it. */
  hostView: (sandboxPath: string) => string | null;
}

/** The command's path inside the sandbox; throws the error the user sees when it cannot run. */
export function resolveExecCommand(q: ExecCommandQuery): string {
  if (q.stopped) throw new AirlockError('BAD_STATE', 'the sandbox has stopped', 'start a new session');
  if (q.argv.length === 0) throw new AirlockError('USAGE', 'no command given', 'pass the command after --');
  const path = findCommand(q.argv[0]!, q);
  if (!path) {
    throw new AirlockError(
      'COMMAND_NOT_FOUND',
      `command not found in the sandbox: ${q.argv[0]}`,
      "check the name; the sandbox sees the host's /usr, /bin, /opt and the workspace (add tool paths with sandbox.mounts.readOnly)",
    );
  }
  return path;
}

function findCommand(cmd: string, q: ExecCommandQuery): string | null {
  const isFile = (p: string) => {
    const h = q.hostView(p);
    try {
      return !!h && statSync(h).isFile();
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) {
    const p = cmd.startsWith('/') ? cmd : resolve(q.cwd, cmd);
    return isFile(p) ? p : null;
  }
  for (const d of (q.env.PATH ?? '/usr/bin:/bin').split(':')) if (d && isFile(join(d, cmd))) return join(d, cmd);
  return null;
}
