// Command rules on the tool path: `airlock exec` in a running session meets the
// parsed-command rules. A denied command never starts; an "ask" waits for a human who
// answers from another terminal (`airlock approvals allow N`); everything is recorded.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { AuditStore } from '../../src/audit/index.ts';
import { recordedDecision } from '../../src/policy-replay/index.ts';
import { airlock, BIN, makeRepo, tmp, cleanup } from '../helpers.ts';

let home: string;
let repo: string;
let id: string;

describe('command rules on airlock exec', () => {
  before(() => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'keep/a.txt': 'a\n' });
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'commands:\n  askTimeoutSeconds: 20\n');
    const r = airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home });
    assert.equal(r.status, 0, r.stderr);
    id = JSON.parse(r.stdout).id;
  });
  after(() => {
    airlock(['session', 'stop', id], { home });
    cleanup(home, repo);
  });

  it('denies git push in every spelling, before anything runs', () => {
    for (const argv of [
      ['git', 'push'],
      ['/usr/bin/git', 'push', 'origin'],
      ['env', 'git', 'push'],
      ['bash', '-c', 'git push --force'],
    ]) {
      const r = airlock(['exec', id, '--', ...argv], { home });
      assert.equal(r.status, 77, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /denied by commands\.git-push/);
    }
  });

  it('asks a human for rm -fr; an answer from another terminal lets it run', async () => {
    const child = spawn(BIN, ['exec', id, '--', 'sh', '-c', 'rm -fr keep && echo removed'], {
      env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    let asked: { id: number } | undefined;
    for (let i = 0; i < 100 && !asked; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const l = airlock(['approvals', '--json'], { home });
      asked = (JSON.parse(l.stdout || '[]') as { id: number; status?: string }[])[0];
    }
    assert.ok(asked, 'the ask is listed for humans');
    const ans = airlock(['approvals', 'allow', String(asked!.id)], { home });
    assert.equal(ans.status, 0, ans.stderr);
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, err);
    assert.equal(code, 0);
    assert.match(out, /removed/);
    const st = new AuditStore(join(home, 'audit.db'));
    const types = st.query({ session: id }).map((e) => e.type);
    // the answered ask is recorded as one, so replay compares a new policy with the ask, not the answer
    const ran = st
      .query({ session: id, type: 'command.exec' })
      .find((e) => (e.data.argv as string[]).join(' ').includes('rm -fr keep'))!;
    st.close();
    assert.equal(ran.data.asked, true);
    assert.deepEqual(recordedDecision(ran)?.before, { action: 'ask', rule: 'commands.rm-recursive-force' });
    assert.ok(
      types.some((t) => t.startsWith('approval') || t.startsWith('command.ask')),
      `ask recorded: ${[...new Set(types)].join(',')}`,
    );
    assert.ok(types.includes('command.denied'));
  });
});
