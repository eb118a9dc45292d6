// The events of a session's start (session.start, what the layers set up: honeytokens,
// sanitizer report, disabled layers) share one commit (issue 16). What must still hold:
// they are durable before open() returns, i.e. before the agent's first command can run;
// an event a layer records itself during the start comes after them in the log, never
// before; and a start that fails loses none of them before its session.failed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Session, type SessionLayer } from '../../src/session/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

let home: string;
let repo: string;

/** The session's events as another process would read them from the log right now (committed only). */
function committed(session: string): { seq: number; type: string }[] {
  const db = new DatabaseSync(join(home, 'audit.db'), { readOnly: true });
  try {
    return db.prepare('SELECT seq, type FROM events WHERE session = ? ORDER BY seq').all(session) as {
      seq: number;
      type: string;
    }[];
  } finally {
    db.close();
  }
}

describe("a session's start is one commit, made before the agent can run", () => {
  before(() => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'README.md': '# demo\n' });
  });
  after(() => cleanup(home, repo));

  it('session.start and the layers’ start events are in the log when open() returns', async () => {
    const s = await Session.open({ repo, home });
    try {
      const types = committed(s.id).map((e) => e.type);
      assert.equal(types[0], 'session.start', types.join(','));
      // the honeytokens layer's event is the last of the start: nothing after it would have flushed it
      assert.ok(types.includes('secrets.honeytokens'), types.join(','));
    } finally {
      await s.stop('test done');
    }
  });

  it("a layer's own event during the start follows the start's events, in the log's order", async () => {
    const mine: SessionLayer = {
      afterStart: async (s) => {
        s.record({ type: 'test.layer-started', data: {} });
      },
    };
    const s = await Session.open({ repo, home, layers: { review: mine } });
    try {
      const ev = committed(s.id);
      const at = (t: string) => ev.find((e) => e.type === t)?.seq ?? -1;
      assert.ok(at('session.start') >= 0 && at('test.layer-started') >= 0, JSON.stringify(ev));
      assert.ok(at('session.start') < at('test.layer-started'), JSON.stringify(ev));
      assert.ok(at('secrets.honeytokens') < at('test.layer-started'), JSON.stringify(ev));
    } finally {
      await s.stop('test done');
    }
  });

  it('a start that fails after session.start was recorded keeps it, before session.failed', async () => {
    let id = '';
    const failing: SessionLayer = {
      afterStart: async (s) => {
        id = s.id;
        throw new Error('layer refused to start');
      },
    };
    await assert.rejects(Session.open({ repo, home, layers: { review: failing } }), /layer refused to start/);
    const types = committed(id).map((e) => e.type);
    assert.deepEqual(
      types.filter((t) => ['session.start', 'secrets.honeytokens', 'session.failed'].includes(t)),
      ['session.start', 'secrets.honeytokens', 'session.failed'],
    );
  });
});
