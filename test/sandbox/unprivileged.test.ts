// Airlock without root: the same sandbox from an unprivileged user (user namespaces,
// rlimits instead of cgroups, the sandbox user mapped to the invoking user). Run as
// root, the test drops to `nobody` to exercise that path for real.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { BIN, ROOT, cleanup, isRoot, privilegedSkip, track } from '../helpers.ts';

const NOBODY = 65534;
const asNobody = (cmd: string[], env: Record<string, string>, cwd: string) =>
  spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', ...cmd], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });

const reachable =
  isRoot &&
  asNobody(['test', '-x', BIN], {}, '/').status === 0 &&
  asNobody(['test', '-r', join(ROOT, 'package.json')], {}, '/').status === 0;

describe(
  'without root',
  {
    skip:
      privilegedSkip(!isRoot && 'run as root to drop to an unprivileged user') || !reachable
        ? `the checkout (${ROOT}) is not readable by an unprivileged user`
        : false,
  },
  () => {
    it('runs the agent as uid 1000 in its own namespaces, with rlimits, and captures its work', () => {
      const dir = mkdtempSync(join(tmpdir(), 'airlock-unpriv-'));
      chmodSync(dir, 0o755);
      chownSync(dir, NOBODY, NOBODY);
      const env = { HOME: dir, AIRLOCK_HOME: track(join(dir, 'home')), NO_COLOR: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
      const repo = join(dir, 'repo');
      const g = (...a: string[]) => asNobody(['git', ...a], env, dir);
      assert.equal(g('init', '-q', repo).status, 0);
      writeFileSync(join(repo, 'a.txt'), 'a\n');
      chownSync(join(repo, 'a.txt'), NOBODY, NOBODY);
      assert.equal(asNobody(['git', '-C', repo, 'add', '-A'], env, dir).status, 0);
      assert.equal(
        asNobody(['git', '-C', repo, '-c', 'user.name=n', '-c', 'user.email=n@n', 'commit', '-qm', 'init'], env, dir)
          .status,
        0,
      );
      const r = asNobody(
        [BIN, 'run', '--', 'sh', '-c', 'id -u; echo b >> a.txt; cat /etc/shadow 2>&1; ps -e | wc -l; exit 5'],
        env,
        repo,
      );
      assert.equal(r.status, 5, r.stderr);
      assert.match(r.stderr, /session ses-\w+ \(base \w+, runtime: bwrap, rlimit, network: none\)/);
      const [uid, shadow, procs] = r.stdout.trim().split('\n');
      assert.equal(uid, '1000');
      assert.match(shadow!, /Permission denied/);
      assert.ok(Number(procs) < 8, `sees ${procs} processes`);
      assert.match(r.stderr, /1 commit\(s\) incl\. uncommitted work/);
      cleanup(dir);
    });
  },
);
