import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  openSession,
  readWorkspaceFile,
  writeWorkspaceFile,
  listProposals,
  AuditStore,
  type AuditEvent,
} from '../../src/index.ts';
import { cleanup, makeRepo, tmp } from '../helpers.ts';
import { join } from 'node:path';

// The SDK flow from docs/sdk.md, through the package's public exports only: open, exec
// with streaming output, write/read files, stop, fetch the proposal and its findings,
// and watch the session's events as they happen.

test(
  'SDK: open a session, stream a command, edit files, stop, get the proposal with findings',
  { timeout: 120_000 },
  async () => {
    const repo = makeRepo({ 'README.md': '# demo\n' });
    const home = tmp('airlock-sdk-home-');
    const seen: AuditEvent[] = [];
    try {
      const s = await openSession({ repo, home, onEvent: (e) => seen.push(e) });
      const h = await s.exec({ argv: ['sh', '-c', 'echo one; echo two >&2; echo three'] });
      h.stdin?.end();
      const chunks: string[] = [];
      h.stdout!.on('data', (d: Buffer) => chunks.push(d.toString()));
      assert.equal((await h.done).status, 0);
      assert.equal(chunks.join(''), 'one\nthree\n');
      await writeWorkspaceFile(
        s,
        'src/config.js',
        'const password = "hunter2-" + "x";\nexport const token = "ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";\n',
      );
      assert.match((await readWorkspaceFile(s, 'src/config.js')).content, /export const token/);
      const stop = await s.stop('sdk test done');
      assert.equal(stop.result?.dirty, true);
      const store = new AuditStore(join(home, 'audit.db'));
      try {
        const p = listProposals(store).find((x) => x.session === s.id);
        assert.ok(p, 'the stopped session became a proposal');
        assert.ok(
          p.findings.some((f) => f.check === 'secrets'),
          `the token is a finding: ${JSON.stringify(p.findings.map((f) => f.rule))}`,
        );
      } finally {
        store.close();
      }
      for (const t of ['session.start', 'command.exec', 'command.exit', 'session.result', 'session.stop'])
        assert.ok(
          seen.some((e) => e.type === t),
          `onEvent saw ${t}`,
        );
    } finally {
      cleanup(repo, home);
    }
  },
);
