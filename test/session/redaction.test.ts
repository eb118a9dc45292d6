// What leaves a session is redacted: output returned by `airlock exec` and everything
// stored in the audit log (argv, paths, reasons) carry markers, never secret values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

const TOKEN = 'ghp_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C';
const AWS = 'AKIA' + 'Q3EGRKZ7XHP5WN2B';

describe('redaction of what leaves a session', () => {
  it('exec output and the audit log never hold the secret', () => {
    const home = tmp('airlock-home-'); const repo = makeRepo();
    const id = JSON.parse(airlock(['session', 'start', '--json', '--repo', repo], { home }).stdout).id as string;
    // the secret is assembled inside the sandbox for the output check, and given in argv for the log check
    const r = airlock(['exec', id, '--', 'sh', '-c', `printf 'ghp_%s\\n' Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C; echo key=${AWS}`], { home });
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
      try { bytes = readFileSync(join(home, f)); } catch { continue; }
      assert.ok(!bytes.includes(Buffer.from(AWS)), `secret in ${f}`);
    }
    cleanup(home, repo);
  });
});
