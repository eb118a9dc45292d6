import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { flushSinks, startDelivery, sinkStatus } from '../../src/audit/sinks/index.ts';
import { sinkSchema, type SinkConfig } from '../../src/policy/schema/telemetry.ts';
import { Rsyslog, freePort, makeTestCa } from './rsyslog.ts';

// Real rsyslogd (Debian rsyslog + rsyslog-gnutls) started by the test on loopback with its
// own config and work dir. We read back what rsyslog wrote to check framing and payloads.

const tmp = () => mkdtempSync(join(tmpdir(), 'airlock-syslog-'));
// plain RFC 6587/5425 syslog (imtcp): no acknowledgement; RELP is tested in relp.test.ts
const syslogSink = (port: number, extra: Record<string, unknown> = {}): SinkConfig =>
  sinkSchema.parse({ type: 'syslog', name: 'soc', host: '127.0.0.1', port, protocol: 'tcp', ...extra });

async function until(cond: () => boolean, ms = 60_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/** Independent CEF parser: header split on unescaped |, extension on unescaped = (key is the word before). */
function parseCef(s: string): { header: string[]; ext: Record<string, string> } {
  const header: string[] = [];
  let cur = '';
  let i = 0;
  for (; i < s.length && header.length < 6; i++) {
    if (s[i] === '\\' && (s[i + 1] === '|' || s[i + 1] === '\\')) {
      cur += s[i + 1];
      i++;
    } else if (s[i] === '|') {
      header.push(cur);
      cur = '';
    } else cur += s[i];
  }
  const rest = s.slice(i);
  const ext: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z0-9_]+)=((?:\\.|[^\\=])*?)(?=\s[A-Za-z0-9_]+=|$)/g;
  for (const m of rest.matchAll(re))
    ext[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  return { header, ext };
}

const tricky = {
  host: 'evil|host.example',
  port: 443,
  method: 'POST',
  path: '/a=b\\c|d\nline2',
  bytesUp: 12,
  bytesDown: 3,
};

for (const mode of ['tcp', 'tls'] as const) {
  test(`rsyslog over ${mode.toUpperCase()}: RFC 5424 + octet counting, CEF escaping and JSON payloads arrive intact`, async () => {
    const dir = tmp();
    const ca = mode === 'tls' ? makeTestCa(join(dir, 'ca')) : undefined;
    const port = await freePort();
    const rs = new Rsyslog(join(dir, 'rsyslog'), port, ca);
    await rs.start();
    try {
      const store = new AuditStore(join(dir, 'audit.db'));
      const ev = store.append({
        type: 'egress.request',
        session: 'sess"1]',
        decision: 'deny',
        rule: 'egress.default',
        severity: 'high',
        data: tricky,
      });
      const ev2 = store.append({
        type: 'process.exec',
        session: 'sess"1]',
        data: { pid: 7, ppid: 1, argv: ['nc', '-l', 'x=y'] },
      });
      const tls = ca ? { ca: ca.ca, servername: 'localhost' } : undefined;
      let st = await flushSinks(store, [syslogSink(port, { tls, format: 'cef' })]);
      assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
      // Same events again as JSON through a second sink (own cursor).
      st = await flushSinks(store, [{ ...syslogSink(port, { tls, format: 'json' }), name: 'soc-json' }]);
      assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
      const raw = await rs.waitFor(4);
      assert.equal(raw.length, 4, 'octet-counted frames sent back to back are 4 messages, not one');
      const parsed = rs.lines('parsed').map((l) => l.split('\t'));

      // RFC 5424 header: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG; PRI 13*8+3 for high.
      assert.match(
        raw[0]!,
        new RegExp(
          `^<107>1 ${ev.ts.replace(/\./g, '\\.')} \\S+ airlock \\d+ egress\\.request \\[airlock@32473 id="${ev.id}" seq="1" type="egress\\.request" session="sess\\\\"1\\\\]" rule="egress\\.default"\\] CEF:0\\|`,
        ),
      );
      assert.equal(parsed[0]![0], 'egress.request');
      assert.equal(parsed[0]![1], 'airlock');
      assert.equal(parsed[0]![2], '3');

      const cef = parseCef(parsed[0]![4]!.replace(/^CEF:0\|/, ''));
      assert.deepEqual(cef.header.slice(0, 4), ['Airlock', 'Airlock', '0.1.0', 'egress.request']);
      assert.match(cef.header[4]!, /^POST evil\|host\.example:443\/a=b\\c\|d line2/);
      assert.equal(cef.header[5], '8');
      assert.equal(cef.ext.externalId, ev.id);
      assert.equal(cef.ext.dhost, 'evil|host.example');
      assert.equal(cef.ext.act, 'deny');
      assert.equal(cef.ext.cs1, 'sess"1]');
      assert.deepEqual(JSON.parse(cef.ext.msg!), tricky, 'escaped extension value round-trips exactly');
      const cef2 = parseCef(parsed[1]![4]!.replace(/^CEF:0\|/, ''));
      assert.deepEqual(JSON.parse(cef2.ext.cs4!), ['nc', '-l', 'x=y']);

      const j = JSON.parse(parsed[2]![4]!);
      assert.equal(j.id, ev.id);
      assert.equal(j.seq, 1);
      assert.equal(j.hash, ev.hash);
      assert.deepEqual(j.data, tricky);
      assert.equal(JSON.parse(parsed[3]![4]!).id, ev2.id);
      store.close();
    } finally {
      await rs.stop();
    }
  });
}

test('TLS: a receiver whose certificate is not from the configured CA gets nothing', async () => {
  const dir = tmp();
  const ca = makeTestCa(join(dir, 'ca'));
  const other = makeTestCa(join(dir, 'other'));
  const port = await freePort();
  const rs = new Rsyslog(join(dir, 'rsyslog'), port, ca);
  await rs.start();
  try {
    const store = new AuditStore(join(dir, 'audit.db'));
    store.append({ type: 'session.start', session: 's' });
    const st = await flushSinks(store, [syslogSink(port, { tls: { ca: other.ca, servername: 'localhost' } })]);
    assert.equal(st[0]!.lag, 1);
    assert.match(String(st[0]!.lastError), /certificate|self.signed|verify/i);
    assert.equal(rs.lines().length, 0);
    store.close();
  } finally {
    await rs.stop();
  }
});

test('outage: receiver stopped mid-stream, 10,000 events produced, restarted: all delivered in order, none lost or duplicated', async () => {
  const dir = tmp();
  const port = await freePort();
  const rs = new Rsyslog(join(dir, 'rsyslog'), port);
  await rs.start();
  const store = new AuditStore(join(dir, 'audit.db'));
  const d = startDelivery(store, [syslogSink(port, { format: 'json', batchSize: 1000 })], {
    pollMs: 50,
    maxBackoffMs: 300,
  });
  try {
    for (let i = 0; i < 100; i++) store.append({ type: 'process.exec', session: 'before', data: { i } });
    assert.ok(await until(() => d.status()[0]!.cursor === 100), 'first 100 delivered');
    await rs.stop();
    for (let b = 0; b < 10; b++)
      store.appendMany(
        Array.from({ length: 1000 }, (_, i) => ({
          type: 'egress.request',
          session: 'during',
          data: { i: b * 1000 + i, host: 'h' },
        })),
      );
    assert.ok(await until(() => d.status()[0]!.failures > 0), 'delivery fails while the receiver is down');
    const down = d.status()[0]!;
    assert.equal(down.cursor, 100, 'nothing is acknowledged while the receiver is down');
    assert.equal(down.lag, 10_000);
    assert.match(String(down.lastError), /ECONNREFUSED/);
    await rs.start();
    assert.ok(await until(() => d.status()[0]!.lag === 0, 120_000), `caught up: ${JSON.stringify(d.status())}`);
    const lines = await rs.waitFor(10_100);
    const seqs = lines.map((l) => Number(/ seq="(\d+)"/.exec(l)![1]));
    assert.equal(seqs.length, 10_100);
    assert.deepEqual(
      seqs,
      Array.from({ length: 10_100 }, (_, i) => i + 1),
      'every seq once, in order',
    );
    const ids = new Set(lines.map((l) => /\[airlock@32473 id="([^"]+)"/.exec(l)![1]));
    assert.equal(ids.size, 10_100);
  } finally {
    await d.stop();
    await rs.stop();
    store.close();
  }
});

test('sink status shows lag and the last error of a sink nobody listens to', async () => {
  const dir = tmp();
  const store = new AuditStore(join(dir, 'audit.db'));
  store.append({ type: 'session.start', session: 's' });
  const port = await freePort();
  await flushSinks(store, [syslogSink(port)]);
  const st = sinkStatus(store, [syslogSink(port)]);
  assert.equal(st[0]!.lag, 1);
  assert.equal(st[0]!.cursor, 0);
  assert.match(String(st[0]!.lastError), /ECONNREFUSED/);
  store.close();
});
