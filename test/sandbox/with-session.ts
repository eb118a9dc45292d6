import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/session/index.ts';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

/** Opens a session with the given policy, runs `fn`, stops it, returns its events. */
export async function withSession(policy: string, fn: (s: Session) => Promise<unknown>): Promise<AuditEvent[]> {
  const home = tmp('airlock-home-');
  const repo = makeRepo();
  const pf = join(home, 'p.yaml');
  writeFileSync(pf, policy);
  try {
    // the sandbox's limits alone: dd and friends would wait for a human under the command rules
    const s = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
    try {
      await fn(s);
    } finally {
      await s.stop('test');
    }
    const st = new AuditStore(join(home, 'audit.db'));
    try {
      return st.query({ session: s.id });
    } finally {
      st.close();
    }
  } finally {
    cleanup(home, repo);
  }
}
