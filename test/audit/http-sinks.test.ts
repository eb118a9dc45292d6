import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { flushSinks, sinkStatus } from '../../src/audit/sinks/index.ts';
import { sinkSchema } from '../../src/policy/schema/telemetry.ts';

// Splunk HEC, Elasticsearch and OTLP collectors are not installable here (not in Debian or
// npm), so these receivers are small local HTTP servers written for the test. Each checks
// the protocol as the real server would (path, method, headers, auth, body shape) and
// answers like it; the client side is the real sink code (and the real OTel exporter).

interface Req {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
async function receiver(
  handle: (r: Req, res: ServerResponse) => void,
): Promise<{ url: string; reqs: Req[]; close(): Promise<void> }> {
  const reqs: Req[] = [];
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      const r = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      reqs.push(r);
      handle(r, res);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    reqs,
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}
const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function seed(n: number): { store: AuditStore; events: AuditEvent[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-http-'));
  const store = new AuditStore(join(dir, 'audit.db'));
  const events: AuditEvent[] = [];
  for (let i = 0; i < n; i++) {
    events.push(
      store.append(
        i % 2
          ? {
              type: 'egress.request',
              session: 's1',
              decision: 'deny',
              rule: 'egress.default',
              severity: 'medium',
              data: {
                host: 'x.example',
                port: 443,
                method: 'PUT',
                path: '/u',
                bytesUp: 100 + i,
                bytesDown: 5,
                durationMs: 3,
              },
            }
          : {
              type: 'process.exec',
              session: 's1',
              data: { pid: 100 + i, ppid: 1, argv: ['git', 'status'], cwd: '/workspace' },
            },
      ),
    );
  }
  return { store, events, dir };
}
const env = {
  AIRLOCK_SINK_TOKEN: 'hec-token-1',
  AIRLOCK_SINK_KEY: 'api-key-1',
  AIRLOCK_SINK_HOOK: 'hook-secret',
  AIRLOCK_SINK_OTLP: 'Bearer otlp-1',
};

test('Splunk HEC: token auth, channel header, one JSON event object per event; a 503 is retried later without moving the cursor', async () => {
  let fail = true;
  const rx = await receiver((r, res) => {
    if (r.method !== 'POST' || r.url !== '/services/collector/event')
      return json(res, 404, { text: 'not found', code: 404 });
    if (r.headers.authorization !== 'Splunk hec-token-1') return json(res, 401, { text: 'Invalid token', code: 4 });
    if (!r.headers['x-splunk-request-channel']) return json(res, 400, { text: 'Data channel is missing', code: 10 });
    if (fail) {
      fail = false;
      return json(res, 503, { text: 'Server is busy', code: 9 });
    }
    json(res, 200, { text: 'Success', code: 0 });
  });
  const { store, events } = seed(5);
  const sink = sinkSchema.parse({
    type: 'splunk-hec',
    name: 'splunk',
    url: rx.url,
    tokenEnv: 'AIRLOCK_SINK_TOKEN',
    index: 'sec',
  });
  try {
    let st = await flushSinks(store, [sink], { env });
    assert.equal(st[0]!.cursor, 0);
    assert.match(String(st[0]!.lastError), /503/);
    st = await flushSinks(store, [sink], { env });
    assert.equal(st[0]!.cursor, 5);
    const body = rx.reqs.at(-1)!.body;
    const objs = body.split('\n').map((l) => JSON.parse(l));
    assert.equal(objs.length, 5);
    for (const [i, o] of objs.entries()) {
      assert.equal(o.index, 'sec');
      assert.equal(o.sourcetype, 'airlock:audit');
      assert.equal(typeof o.time, 'number');
      assert.equal(o.fields.airlock_id, events[i]!.id, 'de-duplication field (docs/modules/audit.md)');
      assert.equal(o.fields.airlock_seq, events[i]!.seq);
      assert.equal(o.event.metadata.uid, events[i]!.id, 'OCSF event by default');
    }
    assert.equal(objs[0].event.class_uid, 1007);
    assert.equal(objs[1].event.class_uid, 4002);
    assert.equal(objs[1].event.activity_id, 7, 'PUT');
    assert.equal(objs[1].event.traffic.bytes_out, 101);
    assert.equal(objs[1].event.unmapped.airlock.seq, 2);
    // Bad token: refused, recorded, not acknowledged.
    store.append({ type: 'session.stop', session: 's1' });
    const bad = await flushSinks(store, [sink], { env: { AIRLOCK_SINK_TOKEN: 'wrong' } });
    assert.equal(bad[0]!.lag, 1);
    assert.match(String(bad[0]!.lastError), /401 .*Invalid token/);
  } finally {
    await rx.close();
    store.close();
  }
});

test('Elastic _bulk: ApiKey auth, NDJSON create actions with the event id as _id, ECS documents; a re-sent batch answered 409 is accepted', async () => {
  const seen = new Set<string>();
  const rx = await receiver((r, res) => {
    if (r.url !== '/_bulk' || r.method !== 'POST') return json(res, 404, {});
    if (r.headers.authorization !== 'ApiKey api-key-1') return json(res, 401, { error: 'unauthorized' });
    if (!String(r.headers['content-type']).startsWith('application/x-ndjson')) return json(res, 406, {});
    const lines = r.body.trimEnd().split('\n');
    const items = [];
    for (let i = 0; i < lines.length; i += 2) {
      const action = JSON.parse(lines[i]!).create;
      JSON.parse(lines[i + 1]!);
      items.push({
        create: seen.has(action._id)
          ? { _id: action._id, status: 409, error: { type: 'version_conflict_engine_exception' } }
          : { _id: action._id, status: 201 },
      });
      seen.add(action._id);
    }
    json(res, 200, { took: 1, errors: items.some((x) => x.create.status >= 300), items });
  });
  const { store, events } = seed(4);
  const sink = sinkSchema.parse({ type: 'elastic', name: 'es', url: rx.url, apiKeyEnv: 'AIRLOCK_SINK_KEY' });
  try {
    const st = await flushSinks(store, [sink], { env });
    assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
    const lines = rx.reqs[0]!.body.trimEnd().split('\n');
    assert.equal(lines.length, 8);
    assert.deepEqual(JSON.parse(lines[0]!), { create: { _index: 'airlock-audit', _id: events[0]!.id } });
    const doc = JSON.parse(lines[3]!);
    assert.equal(doc['@timestamp'], events[1]!.ts);
    assert.equal(doc.event.id, events[1]!.id);
    assert.deepEqual(doc.event.category, ['network', 'web']);
    assert.ok(doc.event.type.includes('denied'));
    assert.equal(doc.event.outcome, 'failure');
    assert.equal(doc.destination.domain, 'x.example');
    assert.equal(doc.http.request.method, 'PUT');
    assert.equal(doc.rule.id, 'egress.default');
    assert.equal(JSON.parse(lines[1]!).process.args.join(' '), 'git status');
    // The same batch again (as after a crash before the cursor moved): 409s are success.
    store.tables.exec("UPDATE sink_state SET cursor = 0 WHERE name = 'es'");
    const again = await flushSinks(store, [sink], { env });
    assert.equal(again[0]!.lag, 0, String(again[0]!.lastError));
    assert.equal(seen.size, 4);
  } finally {
    await rx.close();
    store.close();
  }
});

test('webhook: HMAC-SHA256 over "<timestamp>.<body>" verifies with the shared secret; a refused request is not acknowledged', async () => {
  let refuse = true;
  const rx = await receiver((r, res) => {
    const ts = String(r.headers['x-airlock-timestamp']);
    const expect = 'sha256=' + createHmac('sha256', 'hook-secret').update(`${ts}.${r.body}`).digest('hex');
    if (r.headers['x-airlock-signature'] !== expect) return json(res, 401, { error: 'bad signature' });
    if (refuse) {
      refuse = false;
      return json(res, 500, {});
    }
    json(res, 204, {});
  });
  const { store, events } = seed(3);
  const sink = sinkSchema.parse({ type: 'webhook', name: 'hook', url: rx.url + '/in', secretEnv: 'AIRLOCK_SINK_HOOK' });
  try {
    assert.equal((await flushSinks(store, [sink], { env }))[0]!.cursor, 0);
    assert.equal((await flushSinks(store, [sink], { env }))[0]!.cursor, 3);
    const body = JSON.parse(rx.reqs.at(-1)!.body);
    assert.deepEqual(
      body.events.map((e: AuditEvent) => e.id),
      events.map((e) => e.id),
    );
    assert.equal(rx.reqs.at(-1)!.headers['idempotency-key'], `${events[0]!.id}..${events[2]!.id}`);
    const wrong = await flushSinks(store, [{ ...sink, name: 'hook2' }], {
      env: { AIRLOCK_SINK_HOOK: 'not-the-secret' },
    });
    assert.match(String(wrong[0]!.lastError), /401/);
  } finally {
    await rx.close();
    store.close();
  }
});

test('OTLP/HTTP logs with the OpenTelemetry exporter: JSON resourceLogs with one record per event, severity and ids as attributes', async () => {
  const rx = await receiver((r, res) => {
    if (r.url !== '/v1/logs' || r.method !== 'POST') return json(res, 404, {});
    if (r.headers.authorization !== 'Bearer otlp-1') return json(res, 401, {});
    if (!String(r.headers['content-type']).startsWith('application/json')) return json(res, 415, {});
    json(res, 200, { partialSuccess: {} });
  });
  const { store, events } = seed(6);
  const sink = sinkSchema.parse({
    type: 'otlp',
    name: 'otel',
    url: rx.url + '/v1/logs',
    headersEnv: { authorization: 'AIRLOCK_SINK_OTLP' },
  });
  try {
    const st = await flushSinks(store, [sink], { env });
    assert.equal(st[0]!.lag, 0, String(st[0]!.lastError));
    const body = JSON.parse(rx.reqs[0]!.body);
    const rl = body.resourceLogs[0];
    assert.ok(
      rl.resource.attributes.some(
        (a: { key: string; value: { stringValue?: string } }) =>
          a.key === 'service.name' && a.value.stringValue === 'airlock',
      ),
    );
    const recs = rl.scopeLogs.flatMap((s: { logRecords: unknown[] }) => s.logRecords) as {
      attributes: { key: string; value: { stringValue?: string } }[];
      severityNumber: number;
      timeUnixNano: string;
      body: { stringValue: string };
    }[];
    assert.equal(recs.length, 6);
    const attr = (r: (typeof recs)[0], k: string) => r.attributes.find((a) => a.key === k)?.value;
    assert.equal(
      attr(recs[1]!, 'event.id')!.stringValue,
      events[1]!.id,
      'de-duplication field (docs/modules/audit.md)',
    );
    assert.equal(Number((attr(recs[1]!, 'airlock.seq') as { intValue?: string | number })!.intValue), events[1]!.seq);
    assert.equal(recs[1]!.severityNumber, 13, 'medium -> WARN');
    assert.equal(BigInt(recs[0]!.timeUnixNano) / 1_000_000n, BigInt(Date.parse(events[0]!.ts)));
    assert.deepEqual(JSON.parse(recs[0]!.body.stringValue), events[0]!.data);
  } finally {
    await rx.close();
    store.close();
  }
});

test('JSONL file sink rotates by size and keeps every event once, in order, across the files', async () => {
  const { store, events, dir } = seed(60);
  const path = join(dir, 'out', 'audit.jsonl');
  const sink = sinkSchema.parse({ type: 'file', name: 'file', path, maxBytes: 4096, keep: 50, batchSize: 7 });
  try {
    assert.equal((await flushSinks(store, [sink]))[0]!.lag, 0);
    const files: string[] = [];
    for (let i = 50; i >= 1; i--) if (existsSync(`${path}.${i}`)) files.push(`${path}.${i}`);
    files.push(path);
    assert.ok(files.length > 2, 'rotated');
    const all = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    );
    assert.deepEqual(
      all,
      events.map((e) => e.id),
    );
  } finally {
    store.close();
  }
});

test('a delivery process killed with SIGKILL mid-delivery resumes from its cursor after restart', async () => {
  const { store, events, dir } = seed(1000);
  const db = join(dir, 'audit.db');
  const batches: string[][] = [];
  let hold: (() => void) | undefined;
  let held = false;
  const rx = await receiver((r, res) => {
    const ids = (JSON.parse(r.body).events as AuditEvent[]).map((e) => e.id);
    batches.push(ids);
    if (batches.length === 4 && !held) {
      held = true;
      hold = () => json(res, 200, {});
      return;
    } // 4th batch: never answered before the kill
    json(res, 200, {});
  });
  const child = (n: string) =>
    spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'deliver-child.ts')], {
      env: { ...process.env, DB: db, URL: rx.url, AIRLOCK_SINK_HOOK: 'k', N: n },
      stdio: 'ignore',
    });
  const waitFor = async (cond: () => boolean) => {
    for (let i = 0; i < 600 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
    return cond();
  };
  try {
    const first = child('1');
    assert.ok(await waitFor(() => held), 'fourth batch in flight');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    hold?.();
    assert.equal(sinkStatus(store)[0]!.cursor, 300, 'three acknowledged batches');
    const second = child('2');
    try {
      assert.ok(await waitFor(() => sinkStatus(store)[0]!.cursor === 1000), 'second process finished');
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
    assert.deepEqual(
      batches[4]![0],
      events[300]!.id,
      'the restarted process starts at the cursor, not at the beginning',
    );
    const flat = batches.flat();
    assert.equal(flat.length, 1100, 'exactly the one unacknowledged batch was sent twice');
    assert.deepEqual(
      [...new Set(flat)],
      events.map((e) => e.id),
      'all events, in order',
    );
  } finally {
    await rx.close();
    store.close();
  }
});
