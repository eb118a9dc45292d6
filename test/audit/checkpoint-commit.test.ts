// A signed checkpoint and its `audit.checkpoint` event are one commit (issue 16: one fsync
// at every session's end instead of two). What that must keep: there is never a signed
// checkpoint row without its event, and the event sits right after the events it covers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditStore, checkpoint, verifyLog } from '../../src/audit/index.ts';

test('a checkpoint whose event cannot be written leaves no signed row behind; one that can sits right after what it covers', () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-cp-commit-'));
  const db = join(home, 'audit.db');
  const keyDir = join(home, 'keys');
  const store = new AuditStore(db);
  try {
    for (let i = 0; i < 5; i++) store.append({ type: 'test.event', data: { i } });
    // the event's write fails (as on a full disk, here by a trigger another connection adds)
    const other = new DatabaseSync(db);
    other.exec(
      "CREATE TRIGGER refuse_checkpoint BEFORE INSERT ON events WHEN NEW.type = 'audit.checkpoint' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    assert.throws(() => checkpoint(store, 'refused', { keyDir }), /refused/);
    const rows = () => (other.prepare('SELECT COUNT(*) AS n FROM audit_checkpoints').get() as { n: number }).n;
    assert.equal(rows(), 0, 'a signed checkpoint row without its audit.checkpoint event');
    other.exec('DROP TRIGGER refuse_checkpoint');
    other.close();

    const made = checkpoint(store, 'accepted', { keyDir });
    assert.equal(made.size, 5);
    const ev = store.query({ type: 'audit.checkpoint' });
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.seq, made.size + 1);
    assert.equal(ev[0]!.data.checkpointId, made.id);
    // nothing new since: the same checkpoint, no second row or event
    assert.equal(checkpoint(store, 'again', { keyDir }).id, made.id);
    assert.equal(store.query({ type: 'audit.checkpoint' }).length, 1);
  } finally {
    store.close();
  }
  assert.ok(verifyLog(db).ok);
  rmSync(home, { recursive: true, force: true });
});
