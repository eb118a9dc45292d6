import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { flushSinks, sinkStatus } from '../../src/audit/sinks/index.ts';
import { sinkSchema, type SinkConfig } from '../../src/policy/schema/telemetry.ts';
import { Rsyslog, freePort, makeTestCa } from './rsyslog.ts';
import { startRelay } from './relay.ts';

// Acknowledged syslog: a real rsyslogd with imrelp (Debian rsyslog-relp). A peer that closes
// cleanly or resets mid-batch (a relay in between) must never make Airlock count an event as
// delivered that the receiver did not acknowledge; every record carries its event id and seq
// so the duplicates of at-least-once delivery can be dropped by the SIEM.

const tmp = () => mkdtempSync(join(tmpdir(), 'airlock-relp-'));
const relpSink = (port: number, extra: Record<string, unknown> = {}): SinkConfig =>
  sinkSchema.parse({ type: 'syslog', name: 'soc', host: '127.0.0.1', port, format: 'json', ...extra });

function seed(dir: string, n: number): { store: AuditStore; events: AuditEvent[] } {
  const store = new AuditStore(join(dir, 'audit.db'));
  const events = store.appendMany(
    Array.from({ length: n }, (_, i) => ({
      type: 'process.exec',
      session: 's',
      data: { pid: i, argv: ['x', String(i)] },
    })),
  );
  return { store, events };
}

/** id and seq of every message rsyslog wrote, read from the RFC 5424 structured data. */
function received(rs: Rsyslog): { id: string; seq: number }[] {
  return rs.lines().map((l) => {
    const m = /\[airlock@32473 id="([^"]+)" seq="(\d+)"/.exec(l);
    assert.ok(m, `record without id/seq: ${l.slice(0, 120)}`);
    return { id: m[1]!, seq: Number(m[2]) };
  });
}

async function rsyslog(dir: string, tls?: ReturnType<typeof makeTestCa>): Promise<Rsyslog> {
  const rs = new Rsyslog(join(dir, 'rsyslog'), await freePort(), tls, 'imrelp');
  await rs.start();
  return rs;
}

test('syslog sinks default to RELP: rsyslog imrelp acknowledges every message and the cursor moves to the head', async () => {
  const dir = tmp();
  const rs = await rsyslog(dir);
  const { store, events } = seed(dir, 1200);
  try {
    const sink = relpSink(rs.port, { batchSize: 500 });
    assert.equal(sink.type === 'syslog' && sink.protocol, 'relp');
    const st = await flushSinks(store, [sink]);
    assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
    assert.equal(st[0]!.ack, 'relp');
    const got = received(rs);
    assert.deepEqual(
      got.map((g) => g.seq),
      events.map((e) => e.seq),
      'every event once, in order',
    );
    assert.deepEqual(
      got.map((g) => g.id),
      events.map((e) => e.id),
    );
  } finally {
    await rs.stop();
    store.close();
  }
});

test('RELP over mutual TLS: the receiver certificate is verified, ours is presented, and delivery is acknowledged', async () => {
  const dir = tmp();
  const ca = makeTestCa(join(dir, 'ca'));
  const rs = await rsyslog(dir, ca);
  const { store } = seed(dir, 20);
  try {
    const other = makeTestCa(join(dir, 'other'));
    const wrong = await flushSinks(store, [
      relpSink(rs.port, { tls: { ca: other.ca, servername: 'localhost', cert: ca.clientCert, key: ca.clientKey } }),
    ]);
    assert.equal(wrong[0]!.lag, 20, 'a receiver whose certificate is not from the configured CA gets nothing');
    assert.match(String(wrong[0]!.lastError), /certificate|self.signed|verify/i);
    const st = await flushSinks(store, [
      relpSink(rs.port, { tls: { ca: ca.ca, servername: 'localhost', cert: ca.clientCert, key: ca.clientKey } }),
    ]);
    assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
    assert.equal(received(rs).length, 20);
  } finally {
    await rs.stop();
    store.close();
  }
});

test('a relay that closes cleanly mid-batch (FIN early) acknowledges nothing it did not pass on: the cursor stops, the rest is re-sent, every event arrives', async () => {
  const dir = tmp();
  const rs = await rsyslog(dir);
  // each connection passes ~40 messages' worth of bytes (after the RELP open), then closes cleanly
  const relay = await startRelay(rs.port, [
    { limit: 9000, then: 'close' },
    { limit: 6000, then: 'swallow' },
    { limit: 12000, then: 'close' },
  ]);
  const { store, events } = seed(dir, 300);
  const sink = relpSink(relay.port, { batchSize: 300 });
  const flush = () => flushSinks(store, [sink], { timeoutMs: 2000 }); // the swallowing connection stalls until this
  try {
    const first = (await flush())[0]!;
    assert.ok(first.cursor < 300, 'a clean close is not an acknowledgement');
    assert.match(String(first.lastError), /closed/);
    assert.ok(
      first.cursor <= received(rs).length,
      `cursor ${first.cursor} never ahead of what the receiver has (${received(rs).length})`,
    );
    let st = first;
    for (let i = 0; i < 10 && st.lag > 0; i++) {
      st = (await flush())[0]!;
      assert.ok(st.cursor <= new Set(received(rs).map((r) => r.id)).size, 'never ahead of the receiver');
    }
    assert.equal(st.lag, 0, String(st.lastError));
    const got = received(rs);
    assert.deepEqual(
      [...new Set(got.map((g) => g.id))].sort(),
      events.map((e) => e.id).sort(),
      'every event delivered',
    );
    // duplicates (if any) carry the same id and seq, so the SIEM drops them
    const bySeq = new Map<number, string>();
    for (const g of got) {
      assert.equal(bySeq.get(g.seq) ?? g.id, g.id);
      bySeq.set(g.seq, g.id);
    }
  } finally {
    await relay.close();
    await rs.stop();
    store.close();
  }
});

test('a receiver path that resets connections mid-batch: re-sent events carry the same id and seq, none is lost', async () => {
  const dir = tmp();
  const rs = await rsyslog(dir);
  const relay = await startRelay(
    rs.port,
    Array.from({ length: 5 }, (_, i) => ({ limit: 5000 + i * 3000, then: 'reset' as const })),
  );
  const { store, events } = seed(dir, 400);
  const sink = relpSink(relay.port, { batchSize: 200 });
  try {
    let st = (await flushSinks(store, [sink]))[0]!;
    for (let i = 0; i < 20 && st.lag > 0; i++) st = (await flushSinks(store, [sink]))[0]!;
    assert.equal(st.lag, 0, String(st.lastError));
    assert.ok(relay.connections >= 5, 'the resets happened');
    const got = received(rs);
    assert.deepEqual(
      [...new Set(got.map((g) => g.seq))].sort((a, b) => a - b),
      events.map((e) => e.seq),
    );
    const ids = new Map(events.map((e) => [e.seq, e.id]));
    for (const g of got) assert.equal(g.id, ids.get(g.seq), 'a duplicate is the same event: same id for the same seq');
  } finally {
    await relay.close();
    await rs.stop();
    store.close();
  }
});

test('plain TCP syslog has no acknowledgement: a relay that swallows the batch and closes cleanly is reported as "sent, unacknowledged", never as delivered', async () => {
  const dir = tmp();
  const port = await freePort();
  const rs = new Rsyslog(join(dir, 'rsyslog'), port);
  await rs.start();
  const relay = await startRelay(port, [{ limit: 100, then: 'swallow' }]);
  const { store } = seed(dir, 50);
  try {
    const sink = relpSink(relay.port, { protocol: 'tcp' });
    const st = (await flushSinks(store, [sink]))[0]!;
    assert.equal(st.ack, 'none', 'the status says this sink has no acknowledgement');
    assert.ok(rs.lines().length < 50, 'the relay lost events, which no TCP client can see');
    assert.equal(sinkStatus(store, [sink])[0]!.ack, 'none');
  } finally {
    await relay.close();
    await rs.stop();
    store.close();
  }
});
