import { homedir } from 'node:os';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { AirlockError, cannotRecord, isRecordingFailure } from './errors.ts';

// Airlock's data dir holds the audit store, keys and caches. It is never mounted into a
// sandbox; the sandbox driver also refuses to run when the workspace lies inside it.
export function airlockHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AIRLOCK_HOME) return env.AIRLOCK_HOME;
  const xdg = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'airlock');
}

export interface HomeLayout {
  root: string;
  auditDb: string;
  keys: string;
  cache: string;
  sessions: string;
  run: string;
}

export function homeLayout(root = airlockHome()): HomeLayout {
  return {
    root,
    auditDb: join(root, 'audit.db'),
    keys: join(root, 'keys'),
    cache: join(root, 'cache'),
    sessions: join(root, 'sessions'),
    run: join(root, 'run'),
  };
}

export function ensureHome(root = airlockHome()): HomeLayout {
  const l = homeLayout(root);
  for (const d of [l.root, l.keys, l.cache, l.sessions, l.run]) {
    try { mkdirSync(d, { recursive: true, mode: 0o700 }); } catch (e) {
      if (isRecordingFailure(e)) throw cannotRecord(e, `creating Airlock's data directory ${d}`);
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new AirlockError('UNAVAILABLE', `cannot create Airlock's data directory ${d} (${code})`,
        'set AIRLOCK_HOME to a directory you can write, e.g. export AIRLOCK_HOME=$HOME/.local/share/airlock');
    }
  }
  return l;
}
