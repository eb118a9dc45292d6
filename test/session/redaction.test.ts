// What leaves a session is redacted: output returned by `airlock exec` and everything
// stored in the audit log (argv, paths, reasons) carry markers, never secret values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

const TOKEN = 'ghp_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C';
const AWS = 'AKIA' + 'Q3EGRKZ7XHP5WN2B';

describe('redaction of what leaves a session', () => {
  it('exec output and the audit log never hold the secret', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    const id = JSON.parse(airlock(['session', 'start', '--json', '--repo', repo], { home }).stdout).id as string;
    // the secret is assembled inside the sandbox for the output check, and given in argv for the log check
    const r = airlock(
      ['exec', id, '--', 'sh', '-c', `printf 'ghp_%s\\n' Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C; echo key=${AWS}`],
      { home },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.stdout.includes(TOKEN) && !r.stdout.includes(AWS), r.stdout);
    assert.match(r.stdout, /«REDACTED:[^»]+»\nkey=«REDACTED:aws-access-key-id:[0-9a-f]{8}»/);
    airlock(['session', 'stop', id], { home });
    const show = airlock(['audit', 'show', id, '--json'], { home });
    assert.equal(show.status, 0, show.stderr);
    assert.ok(!show.stdout.includes(AWS), 'secret in the audit log');
    assert.match(show.stdout, /REDACTED:aws-access-key-id/);
    for (const f of ['audit.db', 'audit.db-wal']) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(home, f));
      } catch {
        continue;
      }
      assert.ok(!bytes.includes(Buffer.from(AWS)), `secret in ${f}`);
    }
    cleanup(home, repo);
  });

  it('a command held for a human and timed out (command.ask, command.timeout, the ask queue) leaves no secret in the database', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    const pf = join(home, 'p.yaml');
    writeFileSync(
      pf,
      'commands:\n  askTimeoutSeconds: 1\n  rules:\n    - id: curl-ask\n      match: { command: curl }\n      action: ask\n      reason: network tool\n',
    );
    const start = airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home });
    assert.equal(start.status, 0, start.stderr);
    const id = JSON.parse(start.stdout).id as string;
    try {
      const r = airlock(
        ['exec', id, '--', 'curl', '-H', `Authorization: Bearer ${TOKEN}`, 'https://api.github.com/user'],
        { home },
      );
      assert.equal(r.status, 77, r.stderr);
      assert.ok(!r.stderr.includes(TOKEN), r.stderr);
    } finally {
      airlock(['session', 'stop', id], { home });
    }
    const show = airlock(['audit', 'show', id, '--json'], { home });
    const types = (JSON.parse(show.stdout) as { type: string }[]).map((e) => e.type);
    for (const t of ['command.ask', 'command.timeout', 'command.denied'])
      assert.ok(types.includes(t), `${t} recorded: ${types.join(',')}`);
    assert.match(show.stdout, /Bearer «REDACTED:github-token/);
    for (const f of ['audit.db', 'audit.db-wal', 'audit.db-shm']) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(home, f));
      } catch {
        continue;
      }
      assert.ok(!bytes.includes(Buffer.from(TOKEN)), `secret in ${f}`);
    }
    cleanup(home, repo);
  });
});
