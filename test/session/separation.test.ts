// Separation of duties across names: the person who started the agent cannot be the
// only approver, whether they approve as their OS user or as their git identity.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

describe('separation of duties', () => {
  it('the starter approving under their git email does not satisfy review; another person does', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({ 'a.txt': 'a\n' });
    const gitconfig = join(home, 'gitconfig');
    writeFileSync(gitconfig, '[user]\n\temail = alice@example.com\n\tname = Alice\n');
    const env = { GIT_CONFIG_GLOBAL: gitconfig };
    const r = airlock(['run', '--', 'sh', '-c', 'echo b >> a.txt'], { cwd: repo, home, env });
    assert.equal(r.status, 0, r.stderr);
    const list = JSON.parse(airlock(['review', 'list', '--json'], { home, env }).stdout) as { id: number }[];
    const id = String(list[0]!.id);
    assert.equal(airlock(['review', 'approve', id, '--as', 'alice@example.com'], { home, env }).status, 0);
    const show = JSON.parse(airlock(['review', 'show', id, '--json'], { home, env }).stdout) as {
      state: string;
      missing: string[];
    };
    assert.equal(show.state, 'pending');
    assert.match(show.missing.join('\n'), /separation of duties/);
    // and under their git name (both keys are read from the starter's git config)
    assert.equal(airlock(['review', 'approve', id, '--as', 'Alice'], { home, env }).status, 0);
    const asName = JSON.parse(airlock(['review', 'show', id, '--json'], { home, env }).stdout) as { state: string };
    assert.equal(asName.state, 'pending');
    assert.equal(airlock(['review', 'approve', id, '--as', 'bob@example.com'], { home, env }).status, 0);
    const after = JSON.parse(airlock(['review', 'show', id, '--json'], { home, env }).stdout) as { state: string };
    assert.equal(after.state, 'approved');
    cleanup(home, repo);
  });
});
