import pg from 'pg';
import { AirlockError } from '../common/index.ts';

// Where the shared store is: --database, else AIRLOCK_DATABASE_URL. Without either, SQLite
// (AIRLOCK_HOME/audit.db) is the whole store, as before.

export function databaseUrl(flag?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = flag ?? env.AIRLOCK_DATABASE_URL;
  if (url === undefined || url === '') return undefined;
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new AirlockError('USAGE', 'the shared store URL must start with postgres:// or postgresql://',
      'set AIRLOCK_DATABASE_URL=postgres://USER@HOST/DB (or ?host=/socket/dir), or pass --database');
  }
  return url;
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try { const u = new URL(url); if (u.password) u.password = '***'; return u.toString(); } catch { return 'postgres://…'; }
}

/** A connected client; UNAVAILABLE (exit 69) with the reason when PostgreSQL cannot be reached. */
export async function connectShared(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  c.on('error', () => { /* a dropped connection fails the next query, which reports it */ });
  try {
    await c.connect();
  } catch (e) {
    throw new AirlockError('UNAVAILABLE', `cannot reach the shared store ${redactedUrl(url)}: ${e instanceof Error ? e.message : String(e)}`,
      'check that PostgreSQL runs and AIRLOCK_DATABASE_URL is right; events stay spooled in the local audit.db meanwhile');
  }
  return c;
}
