// kill -9 of a session's supervisor: the raw trace (argv unredacted) holds the agent's last
// processes, which the live reader (every 200 ms) never got to. The next `airlock sessions`
// (or run, or audit verify) records them, redacted, exactly once, deletes the trace, records
// that the session ended without a stop, and removes the session's cgroup directories.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { AuditStore, verifyChain } from '../../src/audit/index.ts';
import { airlock, makeRepo, tmp, cleanup, BIN, isRoot } from '../helpers.ts';

let home: string;
let repo: string;
const SECRET = 'ghp_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C'; // caught by the synchronous redactor (a sequential one reads as a placeholder)

function traceFiles(id: string): string[] {
  const d = join(home, 'sessions', id, 'sandbox', 'trace');
  return existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [];
}
const cgroupDirs = (id: string) =>
  ['', 'memory', 'pids', 'cpu', 'freezer']
    .map((c) => join('/sys/fs/cgroup', c, 'airlock', id))
    .filter((d) => existsSync(d));
const allFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));

describe('crash recovery of a killed supervisor', () => {
  before(() => {
    home = tmp('airlock-crash-');
    repo = makeRepo({ 'a.txt': 'a\n' });
  });
  after(() => cleanup(home, repo));

  it('records the execs only the raw trace held, redacted and once each, then deletes the trace and the cgroups', async () => {
    const st = airlock(['session', 'start', '--json', '--repo', repo], { home });
    assert.equal(st.status, 0, st.stderr);
    const id = JSON.parse(st.stdout).id as string;
    // an agent that execs as fast as it can, each argv carrying a secret and its number
    const loop = `i=0; while [ $i -lt 100000 ]; do /bin/true ${SECRET} n$i; i=$((i+1)); done`;
    const agent = spawn(BIN, ['exec', id, '--', 'sh', '-c', loop], {
      env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
      stdio: 'ignore',
    });
    try {
      let seen = 0;
      for (let i = 0; i < 400 && seen < 300; i++) {
        await new Promise((r) => setTimeout(r, 50));
        seen = traceFiles(id).reduce(
          (n, f) => n + (readFileSync(f, 'latin1').match(/execve\("\/bin\/true"/g)?.length ?? 0),
          0,
        );
      }
      assert.ok(seen >= 300, `the agent ran (${seen} execs traced)`);
      const s = new AuditStore(join(home, 'audit.db'));
      const pid = s.query({ session: id, type: 'session.start' })[0]!.data.supervisorPid as number;
      s.close();
      process.kill(pid, 'SIGKILL');
    } finally {
      await new Promise((r) => {
        if (agent.exitCode !== null || agent.signalCode !== null) r(null);
        else agent.once('exit', r);
      });
    }
    // what the raw trace holds, read by the test itself
    const files = traceFiles(id);
    assert.ok(files.length > 0, 'kill -9 left the raw trace');
    if (isRoot) assert.ok(cgroupDirs(id).length > 0, "kill -9 left the session's cgroup directories");
    const traced = new Set<string>();
    for (const f of files)
      for (const m of readFileSync(f, 'latin1').matchAll(
        /execve\("\/bin\/true", \["\/bin\/true", "[^"]*", "(n\d+)"\]/g,
      ))
        traced.add(m[1]!);

    if (process.env.I21_DEBUG) for (const f of files) spawnSync('cp', [f, '/tmp/i21-trace-' + f.split('/').pop()]);
    const r = airlock(['sessions', '--json'], { home });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`session ${id} ended without finishing its record: .*recovered`));
    assert.equal((JSON.parse(r.stdout) as { id: string; state: string }[]).find((x) => x.id === id)?.state, 'aborted');

    const store = new AuditStore(join(home, 'audit.db'));
    try {
      const execs = store
        .query({ session: id, type: 'process.exec' })
        .filter((e) => (e.data.argv as string[])[0] === '/bin/true');
      const numbers = execs.map((e) => (e.data.argv as string[])[2]!);
      assert.ok(
        execs.some((e) => e.data.recovered === true),
        'the recovered events are marked',
      );
      for (const n of traced) assert.ok(numbers.includes(n), `exec ${n} from the raw trace is in the log`);
      assert.equal(new Set(numbers).size, numbers.length, 'no exec recorded twice');
      assert.ok(
        execs.every((e) => !JSON.stringify(e.data).includes(SECRET)),
        'argv redacted in the log',
      );
      assert.equal(store.query({ session: id, type: 'session.aborted' }).length, 1);
      assert.equal(store.query({ session: id, type: 'sandbox.trace_recovered' }).length, files.length);
    } finally {
      store.close();
    }
    assert.deepEqual(traceFiles(id), [], 'the raw trace is deleted');
    for (const f of allFiles(join(home, 'sessions', id)))
      assert.ok(!readFileSync(f, 'latin1').includes(SECRET), `raw secret left in ${f}`);
    assert.deepEqual(cgroupDirs(id), [], 'the cgroup directories are removed');
    // a second pass finds nothing more to do
    const again = airlock(['sessions'], { home });
    assert.doesNotMatch(again.stderr, /ended without finishing/);
    assert.equal(verifyChain(join(home, 'audit.db')).ok, true);
    assert.equal(spawnSync('pgrep', ['-f', SECRET]).status, 1, 'no agent process left');
  });
});
