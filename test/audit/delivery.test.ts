import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { flushSinks, sinkStatus, startDelivery, toCef, formatObject } from '../../src/audit/sinks/index.ts';
import { sinkSchema, type SinkConfig } from '../../src/policy/schema/telemetry.ts';

// Delivery under a SIEM that stalls, answers 500 after storing, or whose deliverer dies.
// The receivers are small local HTTP servers (no HEC/OTLP/webhook collector can be
// installed here); the client side is the real sink code.

interface Rx {
  url: string;
  got: Record<string, unknown>[];
  requests: number;
  closedEarly: number;
  close(): Promise<void>;
}
type Mode = { mode: 'ok' | 'stall' | 'store-then-500' };

/** A webhook receiver that keeps every event it was sent (also those it then answers 500 to). */
async function webhookReceiver(state: Mode): Promise<Rx> {
  const rx: Rx = { url: '', got: [], requests: 0, closedEarly: 0, close: async () => {} };
  const held = new Set<ServerResponse>();
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      rx.requests++;
      const events = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: Record<string, unknown>[] })
        .events;
      if (state.mode === 'stall') {
        held.add(res);
        res.on('close', () => {
          if (!res.writableEnded) rx.closedEarly++;
          held.delete(res);
        });
        return; // never answers
      }
      rx.got.push(...events);
      if (state.mode === 'store-then-500') {
        state.mode = 'ok';
        res.writeHead(500).end('stored, but the answer is an error');
        return;
      }
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  rx.url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`;
  rx.close = () =>
    new Promise((r) => {
      for (const h of held) h.destroy();
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return rx;
}

const env = { AIRLOCK_SINK_HOOK: 'secret' };
const hook = (url: string, extra: Record<string, unknown> = {}): SinkConfig =>
  sinkSchema.parse({ type: 'webhook', name: 'hook', url, secretEnv: 'AIRLOCK_SINK_HOOK', ...extra });
function seed(n: number): { store: AuditStore; events: AuditEvent[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-delivery-'));
  const store = new AuditStore(join(dir, 'audit.db'));
  const events = store.appendMany(
    Array.from({ length: n }, (_, i) => ({ type: 'process.exec', session: 's', data: { pid: i, argv: ['x'] } })),
  );
  return { store, events, dir };
}
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(() => true),
    new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), ms);
      void p.finally(() => clearTimeout(t));
    }),
  ]);
async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

test('ending delivery never waits on a stalled SIEM: the request in flight is abandoned, the events stay spooled and a later flush delivers them', async () => {
  const state: Mode = { mode: 'stall' };
  const rx = await webhookReceiver(state);
  const { store, events } = seed(5);
  // a 10-minute receiver timeout and backoff: if stop() waited for either, this test would hang
  const d = startDelivery(store, [hook(rx.url)], { env, timeoutMs: 600_000, maxBackoffMs: 600_000, pollMs: 50 });
  try {
    assert.ok(await until(() => rx.requests === 1), 'the batch is in flight');
    assert.ok(await within(d.stop({ flushMs: 300 }), 20_000), 'stop() returned while the SIEM was still stalling');
    assert.ok(await until(() => rx.closedEarly === 1), 'the stalled request was abandoned, not waited for');
    const st = sinkStatus(store, [hook(rx.url)])[0]!;
    assert.equal(st.lag, 5, 'nothing counted as delivered');
    assert.equal(st.owner, null, 'the lease is released');
    state.mode = 'ok';
    const after = (await flushSinks(store, [hook(rx.url)], { env }))[0]!;
    assert.equal(after.lag, 0, String(after.lastError));
    assert.deepEqual(
      rx.got.map((e) => e.id),
      events.map((e) => e.id),
    );
  } finally {
    await rx.close();
    store.close();
  }
});

test('a sink in a long backoff (SIEM refusing connections) ends at once on stop', async () => {
  const { store } = seed(3);
  const d = startDelivery(store, [hook('http://127.0.0.1:1/hook')], { env, maxBackoffMs: 600_000, pollMs: 50 });
  try {
    assert.ok(await until(() => sinkStatus(store)[0]!.failures >= 3), 'failing and backing off');
    assert.ok(await within(d.stop({ flushMs: 200 }), 20_000), 'stop() did not wait for the backoff');
    assert.equal(sinkStatus(store)[0]!.lag, 3);
  } finally {
    store.close();
  }
});

test("the tail recorded just before stop (session.stop, audit.checkpoint) is delivered by stop's bounded flush", async () => {
  const rx = await webhookReceiver({ mode: 'ok' });
  const { store } = seed(2);
  // a poll interval far longer than the test: only stop() can deliver the tail
  const d = startDelivery(store, [hook(rx.url)], { env, pollMs: 600_000 });
  try {
    assert.ok(await until(() => rx.got.length === 2));
    const tail = store.appendMany([
      { type: 'command.exit', session: 's' },
      { type: 'session.result', session: 's' },
      { type: 'session.stop', session: 's' },
      { type: 'audit.checkpoint' },
    ]);
    await d.stop();
    assert.deepEqual(
      rx.got.slice(2).map((e) => e.type),
      tail.map((e) => e.type),
      'the SIEM saw the session end',
    );
    assert.equal(sinkStatus(store)[0]!.lag, 0);
  } finally {
    await rx.close();
    store.close();
  }
});

test('a webhook that stores a batch and then answers 500 gets the same records again, each with its stable id and seq to drop the duplicate', async () => {
  for (const format of ['json', 'ocsf', 'ecs'] as const) {
    const rx = await webhookReceiver({ mode: 'store-then-500' });
    const { store, events } = seed(4);
    const sink = hook(rx.url, { format });
    try {
      assert.equal((await flushSinks(store, [sink], { env }))[0]!.lag, 4, 'a 500 is not an acknowledgement');
      assert.equal((await flushSinks(store, [sink], { env }))[0]!.lag, 0);
      assert.equal(rx.got.length, 8, 'stored twice');
      const keys = rx.got.map((r) => dedupKey(format, r));
      const unique = new Map(keys.map((k) => [k.id, k.seq]));
      assert.deepEqual(
        [...unique.keys()],
        events.map((e) => e.id),
        `${format}: de-duplicated by id, every event once`,
      );
      assert.deepEqual(
        [...unique.values()],
        events.map((e) => e.seq),
        `${format}: and the seq is there to order them`,
      );
    } finally {
      await rx.close();
      store.close();
    }
  }
});

/** The documented de-duplication fields of each format (docs/modules/audit.md, "De-duplication"). */
function dedupKey(format: string, r: Record<string, unknown>): { id: string; seq: number } {
  const o = r as Record<string, Record<string, unknown>>;
  if (format === 'ocsf') return { id: String(o.metadata!.uid), seq: Number(o.metadata!.sequence) };
  if (format === 'ecs') return { id: String(o.event!.id), seq: Number(o.event!.sequence) };
  return { id: String(r.id), seq: Number(r.seq) };
}

test('every format carries the event id and seq in its documented field (OCSF, ECS, CEF, JSON)', () => {
  const { store, events } = seed(3);
  for (const e of events) {
    assert.deepEqual(dedupKey('ocsf', formatObject(e, 'ocsf')), { id: e.id, seq: e.seq });
    assert.deepEqual(dedupKey('ecs', formatObject(e, 'ecs')), { id: e.id, seq: e.seq });
    assert.deepEqual(dedupKey('json', formatObject(e, 'json')), { id: e.id, seq: e.seq });
    const cef = toCef(e);
    assert.equal(/ externalId=([^ ]+)/.exec(cef)?.[1], e.id);
    assert.equal(Number(/ cn1Label=seq cn1=(\d+)/.exec(cef)?.[1]), e.seq);
  }
  store.close();
});

test('sinks status does not list a deliverer killed with SIGKILL as delivering (its lease is still valid)', async () => {
  const rx = await webhookReceiver({ mode: 'stall' });
  const { store, dir } = seed(10);
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'deliver-child.ts')], {
    env: { ...process.env, DB: join(dir, 'audit.db'), URL: rx.url, AIRLOCK_SINK_HOOK: 'k' },
    stdio: 'ignore',
  });
  try {
    assert.ok(
      await until(() => sinkStatus(store)[0]?.owner?.endsWith(`:${child.pid}`) === true),
      'the child holds the lease',
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const row = store.tables.prepare('SELECT owner, lease_until FROM sink_state').get() as {
      owner: string;
      lease_until: number;
    };
    assert.ok(row.lease_until > Date.now(), 'the 60 s lease has not expired');
    assert.equal(sinkStatus(store)[0]!.owner, null, 'a dead process is not "delivering"');
  } finally {
    child.kill('SIGKILL');
    await rx.close();
    store.close();
  }
});
