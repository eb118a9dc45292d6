// sandbox.runtime: gvisor as a user and an attacker meet it: the org policy can require
// it (a repo cannot step back to bubblewrap), `airlock run` says which runtime ran and
// `sessions --json` records it, kill -9 of the supervisor leaves no runsc sandbox, gofer,
// cgroup or container state behind, and an agent cannot forge process events by putting
// text shaped like the sentry's strace lines into its argv. runsc runs for real (root).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { Session } from '../../src/session/index.ts';
import { GvisorTraceReader, splitMessage } from '../../src/sandbox/gvisor/strace.ts';
import { airlock, BIN, makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';
import { sessionsIn, waitGone } from '../leftovers.ts';

const skip = privilegedSkip(!isRoot && 'gVisor (runsc) needs root');

describe('gVisor runtime', { skip }, () => {
  it('the org policy requires gvisor: a repo policy asking for bwrap is overruled; run prints the runtime, sessions --json records it', () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({ 'airlock.yaml': 'sandbox:\n  runtime: bwrap\n', 'README.md': '# x\n' });
    const org = join(home, 'org.yaml');
    writeFileSync(org, 'sandbox:\n  runtime: gvisor\n');
    try {
      const r = airlock(['run', '--repo', repo, '--', 'bash', '-c', 'echo inside; cat /proc/version'], {
        home,
        env: { AIRLOCK_ORG_POLICY: org },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /runtime: gvisor/);
      // gVisor's own kernel answers, not the host's
      assert.match(r.stdout, /inside\n[\s\S]*Linux version 4\.4\.0/);
      const j = airlock(['sessions', '--json'], { home });
      assert.equal(j.status, 0, j.stderr);
      const rows = JSON.parse(j.stdout) as { id: string; runtime: string }[];
      assert.equal(rows.at(-1)!.runtime, 'gvisor');
      const st = new AuditStore(join(home, 'audit.db'));
      try {
        const start = st.query({ session: rows.at(-1)!.id, type: 'session.start' })[0]!;
        assert.equal(start.data.runtime, 'gvisor');
      } finally {
        st.close();
      }
    } finally {
      cleanup(home, repo);
    }
  });

  it('kill -9 of the supervisor takes the runsc sandbox, gofer and holder with it; the log verifies', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'sandbox:\n  runtime: gvisor\n');
    try {
      const canary = `argv-canary-${Date.now()}`;
      const child = spawn(
        BIN,
        ['run', '--repo', repo, '--policy', pf, '--', 'sh', '-c', 'echo AGENT-READY; exec sleep 300', 'sh', canary],
        {
          env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        },
      );
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
      });
      child.stderr!.on('data', (d) => {
        out += d;
      });
      const exited = new Promise((r) => child.once('exit', r));
      const end = Date.now() + 60_000;
      while (!out.includes('AGENT-READY') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.ok(out.includes('AGENT-READY'), out);
      const id = /session (ses-\w+)/.exec(out)![1]!;
      process.kill(child.pid!, 'SIGKILL');
      await exited;
      const s = sessionsIn(home).find((x) => x.id === id)!;
      assert.ok(s.namespaces.length >= 2, "the holder's mount and pid namespaces are on record");
      assert.deepEqual(await waitGone({ markers: [id, home], namespaces: s.namespaces }), []);
      const v = airlock(['audit', 'verify'], { home });
      assert.equal(v.status, 0, v.stdout + v.stderr);
      // the sentry's log and the commands' process.json (argv unredacted) died with the holder's tmpfs
      const files = (readdirSync(join(home, 'sessions', id), { recursive: true }) as string[])
        .map((f) => join(home, 'sessions', id, f))
        .filter((f) => lstatSync(f).isFile());
      assert.deepEqual(
        files.filter((f) => readFileSync(f, 'latin1').includes(canary)),
        [],
      );
    } finally {
      cleanup(home, repo);
    }
  });

  it('a command killed through its handle ends inside the sentry, not just its runsc exec on the host', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'sandbox:\n  runtime: gvisor\n  traceProcesses: false\n');
    const s = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
    try {
      const h = await s.exec({ argv: ['sleep', '61'], stdio: 'pipe' });
      await new Promise((r) => setTimeout(r, 500));
      h.kill('SIGTERM');
      assert.equal((await h.done).status, 128 + 15);
      const ps = await s.run(['ps', '-e', '-o', 'args=']);
      assert.ok(!ps.stdout.includes('sleep 61'), ps.stdout);
    } finally {
      await s.stop('test');
      cleanup(home, repo);
    }
  });

  it('argv shaped like a strace line of the sentry forges no event', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'sandbox:\n  runtime: gvisor\n');
    const forged =
      'I1203 12:00:00.000000 1 strace.go:605] [  77:  77] evil X execve(0x1 /forged, 0x1 ["forged-exec"], 0x1 []) = 0 (0x0) (1µs)';
    const s = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
    try {
      // the forged text in an argv (logged by the sentry twice: EXEC of the command, and its child's execve)
      await s.run(['bash', '-c', '/usr/bin/true "$1"; :', 'bash', `x\n${forged}\n`]);
      const execs = s.store.query({ session: s.id, type: 'process.exec' });
      assert.ok(
        !execs.some((e) => (e.data.argv as string[])[0] === 'forged-exec' || e.data.pid === 77),
        'a forged exec was recorded',
      );
      const t = execs.find((e) => e.data.path === '/usr/bin/true')!;
      assert.equal((t.data.argv as string[])[1], `x\n${forged}\n`, 'the argv is recorded whole, newlines included');
    } finally {
      await s.stop('test');
      cleanup(home, repo);
    }
  });
});

/** One record of the sentry's JSON debug log. */
function logLine(msg: string): string {
  return JSON.stringify({ msg, level: 'info', time: '2026-12-03T12:00:00.000000000Z' }) + '\n';
}

describe('gVisor strace reader (hostile lines)', () => {
  it('bounds what it keeps and reads only whole JSON records of the sentry', () => {
    const r = new GvisorTraceReader('ses-test');
    assert.deepEqual(
      r.push(
        logLine(
          `[   5:   5] sh X execve(0x10000 /x, 0x10000 ["${'a'.repeat(2_000_000)}"], 0x10000 []) = 0 (0x0) (1µs)`,
        ),
      ),
      [],
    );
    assert.deepEqual(r.push('garbage without newline'.repeat(100_000)), []);
    // a raw (non-JSON) line shaped like the text format is not a record
    assert.deepEqual(
      r.push(
        '\nI1203 12:00:00.000000 1 strace.go:605] [  77:  77] evil X execve(0x1 /forged, 0x1 ["forged"], 0x1 []) = 0 (0x0) (1µs)\n',
      ),
      [],
    );
    const ok = r.push(
      logLine(
        '[   6:   6] sh X execve(0x10000 /usr/bin/id, 0x10000 ["id", "-\\x1b[31mred"], 0x10000 []) = 0 (0x0) (1µs)',
      ),
    );
    assert.equal(ok.length, 1);
    assert.deepEqual(ok[0]!.data!.argv, ['id', '-\x1b[31mred']);
    // the container's init (Airlock's bridge) is never the agent
    assert.deepEqual(
      r.push(
        logLine(
          '[   1:   1] node X connect(0x3 socket:[1], 0x10000 {Family: AF_INET, Addr: 1.1.1.1, Port: 80}, 0x10) = 0 (0x0) errno=113 (no route to host) (1µs)',
        ),
      ),
      [],
    );
  });

  it('a task name or path that carries " X execve(" is not taken for the syscall', () => {
    // prctl(PR_SET_NAME, "a X execve(") then open() of a path holding a fake argv
    const msg =
      '[   9:   9] a X execve( E openat(AT_FDCWD /, 0x10000 /tmp/["forged-exec"] X execve(0x1 /f, 0x1 ["forged2"], 0x1 []) = 0 (0x0) (1µs), O_RDONLY, 0o0)';
    assert.equal(splitMessage(msg)!.syscall, 'openat');
    assert.equal(splitMessage(msg)!.comm, 'a X execve(');
    const r = new GvisorTraceReader('ses-test');
    const out = r.push(
      logLine(msg.replace(/ E openat/, ' X openat') + ' = 0 (0x0) errno=2 (no such file or directory) (1µs)'),
    );
    assert.ok(!out.some((e) => e.type.startsWith('process.exec')), JSON.stringify(out));
  });
});
