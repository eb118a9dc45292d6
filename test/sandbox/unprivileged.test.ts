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

    // The tracer is chosen while the holder starts (issue 16): a refusal then must end the
    // holder at once, not leave it to the supervisor's death (an SDK process lives on).
    it('AIRLOCK_TRACER=seccomp-notify without root refuses the session and leaves no holder behind', () => {
      const dir = mkdtempSync(join(tmpdir(), 'airlock-unpriv-'));
      chmodSync(dir, 0o755);
      chownSync(dir, NOBODY, NOBODY);
      const env = {
        HOME: dir,
        AIRLOCK_HOME: track(join(dir, 'home')),
        AIRLOCK_TRACER: 'seccomp-notify',
        GIT_CONFIG_GLOBAL: '/dev/null',
      };
      const repo = join(dir, 'repo');
      assert.equal(asNobody(['git', 'init', '-q', repo], env, dir).status, 0);
      const commit = ['-c', 'user.name=n', '-c', 'user.email=n@n', 'commit', '-q', '--allow-empty', '-m', 'init'];
      assert.equal(asNobody(['git', '-C', repo, ...commit], env, dir).status, 0);
      // in the same process after open() failed: its children that belong to a session
      const script = `
        import { readdirSync, readFileSync } from 'node:fs';
        import { Session } from ${JSON.stringify(join(ROOT, 'src', 'session', 'index.ts'))};
        let error = '';
        try { await Session.open({ repo: process.argv[1] }); } catch (e) { error = e.message; }
        const holders = readdirSync('/proc').filter((p) => {
          try {
            const stat = readFileSync('/proc/' + p + '/stat', 'latin1');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            return ppid === process.pid && readFileSync('/proc/' + p + '/environ', 'latin1').includes('AIRLOCK_SESSION=');
          } catch { return false; }
        });
        console.log(JSON.stringify({ error, holders }));`;
      const r = asNobody([process.execPath, '--input-type=module', '-e', script, repo], env, repo);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { error: string; holders: string[] };
      assert.match(out.error, /AIRLOCK_TRACER=seccomp-notify, but the seccomp-notify tracer needs root/);
      assert.deepEqual(out.holders, []);
      cleanup(dir);
    });
  },
);
