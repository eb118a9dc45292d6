// A full disk where AIRLOCK_HOME lives. The test makes a small tmpfs for AIRLOCK_HOME inside
// a mount namespace it creates (unshare -m; the mount vanishes with the namespace) and fills
// it: before a session starts, in the middle of one, and under the audit store itself.
// What must hold: no agent runs unrecorded (it is frozen, then ended), the reason is
// recorded and shown by `run` with its own exit code, nothing recorded is lost, and the
// raw trace of what could not be recorded is recovered once there is room again.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { AuditStore, verifyChain } from '../../src/audit/index.ts';
import { BIN, makeRepo, tmp, cleanup } from '../helpers.ts';

let out: string;
let repo: string;
const ITERATIONS = 20000;

/** Runs a shell script in a new mount namespace whose $H is a fresh tmpfs of `sizeMb`. */
function inMountNamespace(sizeMb: number, script: string): { status: number | null; stderr: string } {
  const h = join(out, 'home');
  mkdirSync(h, { recursive: true });
  const full = `set -u\nmount -t tmpfs -o size=${sizeMb}m,mode=0700 tmpfs "$H" || exit 90\n${script}\numount -l "$H"\n`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', full], {
    env: {
      ...process.env,
      H: h,
      OUT: out,
      REPO: repo,
      AIRLOCK: BIN,
      NODE: process.execPath,
      AIRLOCK_HOME: h,
      NO_COLOR: '1',
    },
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, stderr: r.stderr };
}
const read = (f: string) => readFileSync(join(out, f), 'utf8');

describe('a full disk under AIRLOCK_HOME', () => {
  before(() => {
    out = tmp('airlock-fulldisk-');
    repo = makeRepo({ 'a.txt': 'a\n' });
  });
  after(() => {
    if (!process.env.AIRLOCK_KEEP_TEST_DIRS) cleanup(out, repo);
  });

  it('SQLite out of space: append reports the real error (exit 74), not "cannot rollback", and keeps what was recorded', () => {
    const r = inMountNamespace(
      4,
      `"$NODE" ${join(import.meta.dirname, 'fixtures', 'store-full.ts')} "$H" > "$OUT/store.json" 2> "$OUT/store.err"`,
    );
    assert.equal(r.status, 0, r.stderr + read('store.err'));
    const res = JSON.parse(read('store.json')) as {
      threw: boolean;
      kind: string;
      exitCode: number;
      message: string;
      count: number;
    };
    assert.equal(res.threw, true);
    assert.doesNotMatch(res.message, /cannot rollback/);
    assert.equal(res.kind, 'CANNOT_RECORD');
    assert.equal(res.exitCode, 74);
    assert.match(res.message, /full|space/i);
    assert.equal(res.count, 1, 'the event recorded before stays; the refused batch is not half-written');
  });

  it('full before start: a clear error with its own exit code, no stack trace; full mid-session: the agent is frozen and ended, the reason recorded and shown, every exec recorded', () => {
    // a policy that keeps tracing on and the agent's stdout for the test
    const script = `
cd "$REPO"
"$AIRLOCK" run -- true > "$OUT/first.out" 2> "$OUT/first.err"; echo $? > "$OUT/first.code"
dd if=/dev/zero of="$H/filler" bs=64k 2>/dev/null
"$AIRLOCK" run -- true > "$OUT/pre.out" 2> "$OUT/pre.err"; echo $? > "$OUT/pre.code"
rm -f "$H/filler"
"$AIRLOCK" run -- sh -c 'i=0; while [ $i -lt ${ITERATIONS} ]; do /bin/true n$i; echo $i; i=$((i+1)); done' > "$OUT/run.out" 2> "$OUT/run.err" &
P=$!
n=0
while [ $n -lt 600 ]; do
  c=$(cat "$H"/sessions/*/sandbox/trace/*.log 2>/dev/null | grep -c 'execve("/bin/true"')
  [ "\${c:-0}" -ge 300 ] && break
  n=$((n+1)); sleep 0.05
done
dd if=/dev/zero of="$H/filler" bs=64k 2>/dev/null
wait $P; echo $? > "$OUT/run.code"
ls "$H"/sessions/*/sandbox/trace/ > "$OUT/left-traces" 2>&1
rm -f "$H/filler"
"$AIRLOCK" sessions --json > "$OUT/sessions.json" 2> "$OUT/sessions.err"; echo $? > "$OUT/sessions.code"
mkdir -p "$OUT/db" && cp "$H"/audit.db* "$OUT/db/"
`;
    const r = inMountNamespace(48, script);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(read('first.code').trim(), '0', read('first.err'));

    // full before start
    assert.equal(read('pre.code').trim(), '74', read('pre.err'));
    assert.match(read('pre.err'), /cannot record: .*full/);
    assert.match(read('pre.err'), /hint: free space/);
    assert.doesNotMatch(read('pre.err'), /internal error|\n\s+at .*:\d+:\d+/, 'no stack trace');

    // full mid-session
    const lines = read('run.out').trim().split('\n').filter(Boolean).length;
    assert.equal(read('run.code').trim(), '74', `run exits with the recording failure's code: ${read('run.err')}`);
    assert.match(read('run.err'), /could not record, so it froze and ended the agent/);
    assert.ok(lines < ITERATIONS, `the agent was stopped (${lines} of ${ITERATIONS} iterations)`);
    assert.equal(read('sessions.code').trim(), '0', read('sessions.err'));

    const store = new AuditStore(join(out, 'db', 'audit.db'));
    try {
      const sessions = JSON.parse(read('sessions.json')) as { id: string }[];
      const id = sessions.at(-1)!.id;
      const events = store.query({ session: id });
      const failed = events.find((e) => e.type === 'telemetry.recording_failed');
      assert.ok(failed, 'the reason is in the log');
      assert.equal(failed.rule, 'builtin.telemetry-required');
      const stop = events.find((e) => e.type === 'session.stop' || e.type === 'session.aborted');
      assert.ok(stop && stop.seq > failed.seq, 'recorded before the session ended');
      const execs = new Set(
        events
          .filter((e) => e.type === 'process.exec' && (e.data.argv as string[])[0] === '/bin/true')
          .map((e) => (e.data.argv as string[])[1]),
      );
      // every iteration the agent completed (it printed its number after /bin/true ran) is recorded
      for (let i = 0; i < lines; i++) assert.ok(execs.has(`n${i}`), `exec n${i} of ${lines} recorded`);
    } finally {
      store.close();
    }
    assert.equal(verifyChain(join(out, 'db', 'audit.db')).ok, true);
  });
});
