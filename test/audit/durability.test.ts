// "Durable when it returns": an event whose append returned is on disk. Two views:
// a writer killed with SIGKILL mid-burst loses nothing it acknowledged (the child reports
// ids over a pipe only after append returned), and, since SIGKILL alone cannot tell a
// page-cache write from a synced one, every acknowledgement is preceded by an fsync of
// the WAL (observed with strace on the real process): a power cut loses nothing either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, verifyLog } from '../../src/audit/index.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'append-burst.ts');

test('kill -9 during an append burst: every acknowledged event is in the log, and the log verifies', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-durable-'));
  const db = join(home, 'audit.db');
  try {
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [CHILD, db, '1000000'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.setEncoding('utf8');
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      // kill it mid-burst, once it has acknowledged a few hundred events
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 60_000);
        child.stdout.on('data', (d: string) => {
          text += d;
          if (text.length > 300 * 37) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGKILL');
      await exited; // the pipe is drained: every id the child wrote has been read
      const acked = text.split('\n').slice(0, -1); // a last line cut mid-write is not an acknowledgement
      assert.ok(acked.length >= 300, `round ${round}: ${acked.length} acknowledged`);
      const store = new AuditStore(db);
      try {
        const stored = new Set(store.query({ session: 'burst' }).map((e) => e.id));
        const lost = acked.filter((id) => !stored.has(id));
        assert.deepEqual(lost, [], `round ${round}: acknowledged but not in the log`);
      } finally {
        store.close();
      }
      const v = verifyLog(db, { checkpoints: false });
      assert.equal(v.ok, true, JSON.stringify(v));
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('every acknowledged append was preceded by an fsync of the WAL (synchronous=FULL, seen with strace)', () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-durable-'));
  const db = join(home, 'audit.db');
  const trace = join(home, 'trace');
  try {
    const r = spawnSync(
      'strace',
      [
        '-f',
        '-qq',
        '-y',
        '-e',
        'trace=fsync,fdatasync,write',
        '-e',
        'signal=none',
        '-o',
        trace,
        process.execPath,
        CHILD,
        db,
        '60',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const acks = r.stdout.trim().split('\n');
    assert.equal(new Set(acks).size, 60);
    let synced = false;
    let acknowledged = 0;
    const unsynced: string[] = [];
    for (const line of readFileSync(trace, 'utf8').split('\n')) {
      if (/\b(?:fsync|fdatasync)\(\d+<[^>]*audit\.db-wal>\) = 0/.test(line)) synced = true;
      else if (/\bwrite\(1</.test(line)) {
        acknowledged += 1;
        if (!synced) unsynced.push(line.slice(0, 120));
        synced = false;
      }
    }
    assert.ok(acknowledged >= 2, `acknowledgements seen in the trace: ${acknowledged}`);
    assert.deepEqual(unsynced, [], 'acknowledged with no fsync of the WAL since the previous acknowledgement');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
