// Files under AIRLOCK_HOME are private to their owner (0700 directories, 0600 files):
// the audit log and its WAL, keys, caches of base trees, session results. Also when the
// data dir already existed with looser modes (created by hand, by an older version, or
// under a permissive umask).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { airlock, makeRepo, tmp, cleanup } from '../helpers.ts';

/** Every entry below `root` (and root itself) that group or others can use, as "mode path". */
function notPrivate(root: string): string[] {
  const out: string[] = [];
  const stack = [root];
  for (let n = 0; stack.length && n < 100_000; n++) {
    const p = stack.pop()!;
    const st = lstatSync(p);
    if (st.isSymbolicLink()) continue;
    if ((st.mode & 0o077) !== 0) out.push(`${(st.mode & 0o777).toString(8)} ${relative(root, p) || '.'}`);
    if (st.isDirectory()) for (const e of readdirSync(p)) stack.push(join(p, e));
  }
  return out;
}

test('a session leaves AIRLOCK_HOME private even when it existed 0755 with a 0644 audit.db', () => {
  const home = tmp('airlock-home-');
  const repo = makeRepo({
    'README.md': '# demo\n',
    '.env': 'GITHUB_TOKEN=ghp_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C\n',
  });
  try {
    chmodSync(home, 0o755);
    for (const d of ['keys', 'cache', 'sessions']) mkdirSync(join(home, d), { mode: 0o755 });
    chmodSync(join(home, 'keys'), 0o755);
    writeFileSync(join(home, 'audit.db'), '', { mode: 0o644 }); // an empty file is a valid new SQLite database
    chmodSync(join(home, 'audit.db'), 0o644);
    const r = airlock(['run', '--', 'sh', '-c', 'echo change > new.txt && git add new.txt && git commit -qm change'], {
      home,
      cwd: repo,
    });
    assert.equal(r.status, 0, r.stderr);
    const v = airlock(['audit', 'verify'], { home });
    assert.equal(v.status, 0, v.stdout + v.stderr);
    const seen = readdirSync(home);
    for (const f of ['audit.db', 'keys', 'cache', 'sessions']) assert.ok(seen.includes(f), `${f} in ${seen.join(',')}`);
    assert.deepEqual(notPrivate(home), []);
  } finally {
    cleanup(home, repo);
  }
});
