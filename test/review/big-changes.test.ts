import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProposal } from '../../src/review/index.ts';
import { TEXT_CAP } from '../../src/review/diff.ts';
import { checksummedToken } from '../../src/secrets/honeytokens.ts';
import { setup, agentHistory, runCli } from './fixture.ts';

// Red team (issue 11, point 7): big changes fail clearly, and size is no way around the
// secrets check.

test('a secret deep inside a binary too large to load whole is found by the streaming scan (blocking)', async () => {
  const env = setup('review:\n  limits:\n    allowBinary: true\n');
  try {
    const token = checksummedToken('ghp_');
    const filler = Buffer.alloc(TEXT_CAP + 2 * 1024 * 1024, 0);
    for (let i = 0; i < filler.length; i += 4096) filler.write('some printable filler text ', i, 'latin1');
    const blob = Buffer.concat([filler, Buffer.from(`\0token=${token}\0`), Buffer.alloc(1024, 0)]);
    agentHistory(env, 's-bigbin', [{ message: 'add asset', files: [['assets/model.bin', blob]] }]);
    const p = (await createProposal(env.store, 's-bigbin', { orgPolicy: env.orgPolicy, home: env.home })).proposal;
    const hit = p.findings.find(
      (f) => f.check === 'secrets' && f.file === 'assets/model.bin' && f.rule !== 'secrets.unscanned-binary',
    );
    assert.ok(hit, p.findings.map((f) => `${f.rule}:${f.severity}`).join(', '));
    assert.equal(hit.blocking, true);
    assert.ok(!JSON.stringify(p.findings).includes(token));
  } finally {
    env.done();
  }
});

test('100k changed files: a clear refusal with its own exit code (79), recorded; never "install git"', async () => {
  const env = setup('');
  try {
    const files = Array.from(
      { length: 100_000 },
      (_, i) => [`vendor/pkg/generated-file-${String(i).padStart(6, '0')}.txt`, 'x\n'] as [string, string],
    );
    agentHistory(env, 's-huge', [{ message: 'vendor everything', files }]);
    const r = await runCli(['propose', 's-huge'], { AIRLOCK_HOME: env.home, AIRLOCK_ORG_POLICY: env.orgPolicy });
    assert.equal(r.code, 79, r.stderr);
    assert.match(r.stderr, /too large/);
    assert.doesNotMatch(r.stderr, /install git|\n\s+at /);
    assert.equal(env.store.query({ session: 's-huge', type: 'review.refused' }).length, 1);
  } finally {
    env.done();
  }
});
