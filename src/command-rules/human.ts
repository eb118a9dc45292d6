import { readlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { userInfo } from 'node:os';
import { AirlockError } from '../common/index.ts';
import type { AuditStore } from '../audit/index.ts';

// Who is answering (a human approving a proposal or a command), and proof-ish that they
// are not the agent: approvals are refused from inside a sandbox. The real guarantee is
// that no sandbox can see Airlock's store; these checks are the second layer and fail
// closed when they cannot tell.

export interface Identity {
  identity: string;
  source: 'flag' | 'git-config' | 'os-user';
}

function cleanIdentity(s: string, what: string): string {
  const v = s.trim();
  if (!v || v.length > 200 || /[\u0000-\u001f\u007f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/.test(v)) {
    throw new AirlockError(
      'USAGE',
      `invalid reviewer identity from ${what}`,
      'pass --as NAME with printable text (an e-mail or user name, at most 200 characters)',
    );
  }
  return v;
}

/** Identity from the flag, else the host user's own git config user.email, else the OS user. Recorded as given. */
export function humanIdentity(flag?: string): Identity {
  if (flag !== undefined) return { identity: cleanIdentity(flag, '--as'), source: 'flag' };
  // The human's own global git config (not the agent's): read-only query, no program runs.
  const r = spawnSync('git', ['config', '--global', '--get', 'user.email'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '', GIT_CONFIG_NOSYSTEM: '1' },
    timeout: 5000,
  });
  if (r.status === 0 && r.stdout.trim())
    return { identity: cleanIdentity(r.stdout, 'git config user.email'), source: 'git-config' };
  return { identity: cleanIdentity(userInfo().username, 'the OS user'), source: 'os-user' };
}

function ns(kind: 'user' | 'pid', pid: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return null;
  }
}

const NS_KEY = 'airlock.host.namespaces';

/**
 * Refuses (DENIED) when this process looks like it runs inside an Airlock sandbox: the
 * sandbox marker variable, namespaces that differ from those recorded for this store by
 * the first host-side Airlock process, or namespaces that cannot be read at all.
 */
export function assertOutsideSandbox(store: AuditStore, env: NodeJS.ProcessEnv = process.env): void {
  const refuse = (why: string) => {
    throw new AirlockError(
      'DENIED',
      `approvals cannot be given from inside a sandbox (${why})`,
      'run this command on the host, in a terminal outside any Airlock session',
    );
  };
  if (env.AIRLOCK_SANDBOX && env.AIRLOCK_SANDBOX !== '0') refuse('AIRLOCK_SANDBOX is set');
  const mine = { user: ns('user', 'self'), pid: ns('pid', 'self') };
  if (!mine.user || !mine.pid) refuse("cannot read this process's namespaces");
  // When pid 1 of our pid namespace is readable and lives in another user namespace, we
  // are in a child user namespace (bubblewrap without a new pid namespace).
  const initUser = ns('user', '1');
  if (initUser && initUser !== mine.user) refuse("user namespace differs from pid 1's");
  const current = JSON.stringify({ user: mine.user, pid: mine.pid });
  const recorded = store.getKv(NS_KEY);
  if (recorded === undefined) {
    store.setKv(NS_KEY, current);
    return;
  }
  if (recorded !== current) refuse('namespaces differ from the host that owns this store');
}
