// A command's start is held for its audit event (issue 16): the launch chain is spawned first
// and waits on a pipe for the supervisor's go, which is sent only once `command.exec` is
// durable (the fsync overlaps the chain's own start). What must hold: a command whose event
// cannot be recorded never runs; the hold leaves nothing the agent can hold (no descriptor);
// a supervisor killed -9 the moment a command runs has already recorded it. Both launch chains
// (the notify tracer as root, the dash chain with tracing off) are held the same way.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Session } from '../../src/session/index.ts';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { AirlockError, cannotRecord } from '../../src/common/index.ts';
import { airlock, makeRepo, tmp, cleanup, BIN, isRoot } from '../helpers.ts';

function eventsOf(home: string, session: string): AuditEvent[] {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return st.query({ session });
  } finally {
    st.close();
  }
}

/** Processes of the tracer started ahead for this session's next command (root sessions only). */
function aheadTracers(sessionId: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0');
      if (cmd.includes('--await-program') && cmd.some((a) => a.includes(`/sessions/${sessionId}/`)))
        pids.push(Number(p));
    } catch {
      /* ended meanwhile */
    }
  }
  return pids;
}

const CHAINS = [
  { name: 'traced (the notify tracer as root)', yaml: 'sandbox:\n  traceProcesses: true\n' },
  { name: 'untraced (the dash chain)', yaml: 'sandbox:\n  traceProcesses: false\n' },
];

for (const chain of CHAINS) {
  describe(`a command held until its event is durable, ${chain.name}`, () => {
    let home: string;
    let repo: string;
    let out: string;
    let session: Session;
    before(async () => {
      home = tmp('airlock-home-');
      repo = makeRepo({ 'README.md': '# x\n' });
      out = tmp('airlock-out-');
      chmodSync(out, 0o777); // the sandbox user writes its marks here
      const pf = join(home, 'p.yaml');
      writeFileSync(pf, `${chain.yaml}  mounts:\n    readWrite: [${JSON.stringify(out)}]\n`);
      session = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
      if (isRoot && chain.yaml.includes('true')) assert.equal(session.mechanisms.tracing, 'seccomp-notify');
    });
    after(async () => {
      await session.stop('test done');
      cleanup(home, repo, out);
    });

    it('never starts a command whose command.exec cannot be recorded, and says why', async () => {
      // The store's refusal of this one event is simulated on the session object: a real full
      // disk also freezes and ends the session at once (test/session/full-disk.test.ts), which
      // would hide whether the spawned chain was let go.
      // as root, the next command's tracer is started ahead after a command: the refused one takes it
      await session.run(['true']);
      if (session.mechanisms.tracing === 'seccomp-notify')
        for (let i = 0; i < 100 && aheadTracers(session.id).length === 0; i++)
          await new Promise((r) => setTimeout(r, 20));
      const record = session.record.bind(session);
      session.record = (e) => {
        if (e.type === 'command.exec') {
          // a failing disk takes its time to say so (the append is synchronous, like this wait)
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
          throw cannotRecord(new Error('simulated refusal'), 'the audit log');
        }
        return record(e);
      };
      try {
        await assert.rejects(
          session.exec({ argv: ['sh', '-c', `touch ${out}/ran`] }),
          (e: unknown) => e instanceof AirlockError && e.kind === 'CANNOT_RECORD',
        );
      } finally {
        session.record = record;
      }
      // the held chain had every chance to run meanwhile: a later command runs to its end after it
      const r = await session.run(['sh', '-c', `sleep 0.5; touch ${out}/control`]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(existsSync(join(out, 'control')), 'the same kind of command runs when its event is recorded');
      assert.ok(!existsSync(join(out, 'ran')), 'the command whose event was refused ran');
      const st = new AuditStore(join(home, 'audit.db'));
      try {
        const ev = st.query({ session: session.id });
        const mentions = ev.filter((e) => JSON.stringify(e.data).includes(`${out}/ran`));
        assert.deepEqual(
          mentions.map((e) => e.type),
          [],
          'nothing of the refused command is recorded as run',
        );
        const exits = ev.filter((e) => e.type === 'command.exit');
        assert.equal(exits.length, 2, 'only the commands that ran have an end');
      } finally {
        st.close();
      }
    });

    it('refuses a NUL byte in an argument or the environment before recording or starting anything', async () => {
      const before = eventsOf(home, session.id).length;
      for (const req of [
        { argv: ['sh', '-c', `touch ${out}/nul`], env: { X: 'a\0--bind\0/\0/host' } },
        { argv: ['sh', '-c', `touch ${out}/nul`, 'a\0b'] },
      ]) {
        await assert.rejects(
          session.exec(req),
          (e: unknown) => e instanceof AirlockError && e.kind === 'USAGE' && /NUL byte/.test(e.message),
        );
      }
      assert.ok(!existsSync(join(out, 'nul')));
      assert.equal(eventsOf(home, session.id).length, before, 'no command.exec for a command that never ran');
    });

    it('goes on recording after the agent signals everything it can (kill -9 -1)', async () => {
      await session.run(['sh', '-c', 'kill -9 -1; sleep 1']);
      const r = await session.run(['sh', '-c', `/bin/echo after-kill; touch ${out}/after`]);
      assert.equal(r.stdout, 'after-kill\n');
      const ev = eventsOf(home, session.id);
      if (session.mechanisms.tracing !== 'off') {
        const echo = ev.filter((e) => e.type === 'process.exec' && (e.data.argv as string[])[1] === 'after-kill');
        assert.equal(echo.length, 1, 'the next command is traced');
      }
      assert.deepEqual(
        ev.filter((e) => e.type === 'sandbox.trace_error'),
        [],
      );
    });

    it('holds no descriptor of the hold: the command sees only its stdin, stdout and stderr', async () => {
      const r = await session.run(['sh', '-c', 'ls /proc/$$/fd']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['0', '1', '2']);
    });

    it('records the end with the last processes, before the result is returned', async () => {
      const r = await session.run(['sh', '-c', 'exit 7']);
      assert.equal(r.status, 7);
      const st = new AuditStore(join(home, 'audit.db'));
      try {
        const ev = st.query({ session: session.id });
        const last = ev.at(-1)!;
        assert.equal(last.type, 'command.exit', 'the end is in the log when run() returns');
        assert.equal(last.data.status, 7);
        if (chain.yaml.includes('true')) {
          // The last process's exit is in the log before the command's end. Usually both ride in
          // one group commit, but a periodic trace drain may commit the exit a moment earlier:
          // one commit is a saving, not a promise, so only the order is asserted.
          const exitAt = ev.findLastIndex((e) => e.type === 'process.exit');
          assert.ok(exitAt >= 0 && exitAt < ev.length - 1, 'the last process exit is recorded before the end');
          assert.equal(ev[exitAt]!.data.exitCode, 7);
        }
      } finally {
        st.close();
      }
    });
  });
}

describe(
  'the tracer started ahead of the next command',
  { skip: isRoot ? false : 'the notify tracer needs root' },
  () => {
    let home: string;
    let repo: string;
    before(() => {
      home = tmp('airlock-home-');
      repo = makeRepo({ 'README.md': '# x\n' });
    });
    after(() => cleanup(home, repo));

    it('killed from the host while it waits: the next command starts its own and is traced', async () => {
      const session = await Session.open({ repo, home, layers: { commands: null } });
      try {
        assert.equal(session.mechanisms.tracing, 'seccomp-notify');
        await session.run(['true']);
        let ahead: number[] = [];
        for (let i = 0; i < 100 && ahead.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 20));
          ahead = aheadTracers(session.id);
        }
        // the tracer is this process's child; its launcher, forked from it, waits too
        const ppid = (p: number) => Number(readFileSync(`/proc/${p}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);
        const tracer = ahead.filter((p) => ppid(p) === process.pid);
        assert.equal(tracer.length, 1, 'one tracer waits for the next command');
        process.kill(tracer[0]!, 'SIGKILL');
        // dead once the kernel says so (a zombie until Node reaps it); one dying in the very
        // moment a command takes it fails that command (137), as any killed chain would
        const dead = () => {
          try {
            return /\) Z/.test(readFileSync(`/proc/${tracer[0]}/stat`, 'latin1'));
          } catch {
            return true;
          }
        };
        for (let i = 0; i < 200 && !dead(); i++) await new Promise((r) => setTimeout(r, 5));
        const r = await session.run(['sh', '-c', '/bin/echo next']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, 'next\n');
        const ev = eventsOf(home, session.id);
        assert.equal(ev.filter((e) => e.type === 'process.exec' && (e.data.argv as string[])[1] === 'next').length, 1);
        assert.deepEqual(
          ev.filter((e) => e.type === 'sandbox.trace_error'),
          [],
        );
      } finally {
        await session.stop('test');
      }
      assert.deepEqual(aheadTracers(session.id), [], 'no tracer waits after the session stopped');
    });
  },
);

describe('a supervisor killed -9 the moment its command runs', () => {
  let home: string;
  let repo: string;
  before(() => {
    home = tmp('airlock-kill-');
    repo = makeRepo({ 'a.txt': 'a\n' });
  });
  after(() => cleanup(home, repo));

  it('has already made the command.exec event durable', async () => {
    const st = airlock(['session', 'start', '--json', '--repo', repo], { home });
    assert.equal(st.status, 0, st.stderr);
    const id = JSON.parse(st.stdout).id as string;
    const store = new AuditStore(join(home, 'audit.db'));
    const supervisor = store.query({ session: id, type: 'session.start' })[0]!.data.supervisorPid as number;
    store.close();
    const marker = 'started-' + id;
    const agent = spawn(BIN, ['exec', id, '--', 'sh', '-c', `echo ${marker}; exec sleep 30`], {
      env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const exited = new Promise((r) => agent.once('exit', r));
    try {
      const started = await new Promise<boolean>((res) => {
        const timer = setTimeout(() => res(false), 60_000);
        let seen = '';
        agent.stdout!.on('data', (d: Buffer) => {
          seen += d.toString();
          if (!seen.includes(marker)) return;
          process.kill(supervisor, 'SIGKILL'); // at once, from the event loop that saw it
          clearTimeout(timer);
          res(true);
        });
      });
      assert.ok(started, 'the command ran');
    } finally {
      if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
      await exited;
    }
    const after = new AuditStore(join(home, 'audit.db'));
    try {
      const execs = after.query({ session: id, type: 'command.exec' });
      assert.ok(
        execs.some((e) => JSON.stringify(e.data.argv).includes(marker)),
        'command.exec of the running command is in the log',
      );
    } finally {
      after.close();
    }
    // the next command finds the killed session and ends its record (and its cgroups, processes)
    const r = airlock(['sessions', '--json'], { home });
    assert.equal(r.status, 0, r.stderr);
  });
});
