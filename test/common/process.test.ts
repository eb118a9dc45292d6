// processRuns: one reading of /proc/PID/stat for every "is that process still there" check
// (session supervisors, sink lease holders, the spare tracer, warm spares).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { processRuns, processState } from '../../src/common/index.ts';
import { tmp, cleanup } from '../helpers.ts';

test('a running process runs; a zombie, a missing pid and a name that fakes a state do not fool it', async () => {
  assert.equal(processRuns(process.pid), true);
  assert.equal(processState(2 ** 22 + 1), null, 'above pid_max: no such process');
  assert.equal(processRuns(2 ** 22 + 1), false);
  // `sleep 0` ends at once and its parent (exec'd into sleep) never reaps it
  const dir = tmp('airlock-proc-');
  const faked = join(dir, 'x) Z 1 ');
  copyFileSync('/bin/sleep', faked);
  const holder = spawn('sh', ['-c', `sleep 0 & exec '${faked}' 30`], { stdio: 'ignore' });
  try {
    let zombie: number | undefined;
    for (let i = 0; i < 200 && zombie === undefined; i++) {
      await new Promise((r) => setTimeout(r, 25));
      zombie = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .map(Number)
        .find((p) => {
          try {
            return readFileSync(`/proc/${p}/stat`, 'latin1').includes(`) Z ${holder.pid} `);
          } catch {
            return false;
          }
        });
    }
    assert.ok(zombie, 'the zombie exists');
    assert.equal(processState(zombie), 'Z');
    assert.equal(processRuns(zombie), false, 'a zombie has ended');
    // its parent's name holds ") Z ": the state is read after the last ')'
    assert.match(readFileSync(`/proc/${holder.pid}/stat`, 'latin1'), /\(x\) Z 1 \) S /);
    assert.equal(processRuns(holder.pid!), true);
  } finally {
    holder.kill('SIGKILL');
    cleanup(dir);
  }
});
