import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { gateway, requests, curl, waitFor } from './helpers.ts';

// Per-session limits from the policy are enforced and recorded.

async function upstream(): Promise<{ s: Server; port: number }> {
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { s, port: (s.address() as { port: number }).port };
}
const policyFor = (port: number, limits: object) => ({
  allow: [{ host: 'up.test', ports: [port] }],
  allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
  limits,
});

test('requests per minute: the request over the limit gets 429 naming the limit', async () => {
  const u = await upstream();
  const g = await gateway(policyFor(u.port, { requestsPerMinute: 3 }), { map: { 'up.test': '127.0.0.1' } });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await curl(['-x', g.url, `http://up.test:${u.port}/`])).status, 200);
    const r = await curl(['-x', g.url, `http://up.test:${u.port}/`]);
    assert.equal(r.status, 429);
    assert.equal(r.headers['x-airlock-rule'], 'egress.limits.requestsPerMinute');
    assert.ok(requests(g.events).some((e) => e.rule === 'egress.limits.requestsPerMinute' && e.decision === 'deny'));
  } finally {
    await g.gw.close();
    u.s.close();
  }
});

test('upload bytes: crossing the session total cuts the request, records a high-severity event and refuses what follows', async () => {
  const u = await upstream();
  const g = await gateway(policyFor(u.port, { maxUploadBytes: 4096 }), { map: { 'up.test': '127.0.0.1' } });
  try {
    assert.equal((await curl(['-x', g.url, '--data', 'small', `http://up.test:${u.port}/`])).status, 200);
    const big = await curl(['-x', g.url, '--data-binary', 'A'.repeat(20_000), `http://up.test:${u.port}/`]);
    assert.notEqual(big.status, 200);
    const ev = await waitFor(
      () => requests(g.events).find((e) => e.rule === 'egress.limits.maxUploadBytes'),
      'upload limit event',
    );
    assert.equal(ev.severity, 'high');
    const after = await curl(['-x', g.url, `http://up.test:${u.port}/`]);
    assert.equal(after.status, 403);
    assert.equal(after.headers['x-airlock-rule'], 'egress.limits.maxUploadBytes');
  } finally {
    await g.gw.close();
    u.s.close();
  }
});

test('concurrent connections: a tunnel over the limit is refused while the others stay open', async () => {
  const u = await upstream();
  const g = await gateway(policyFor(u.port, { maxConnections: 2 }), {
    map: { 'up.test': '127.0.0.1' },
    timeouts: { peekMs: 60_000 },
  });
  const held: Socket[] = [];
  try {
    const open = () =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: g.port }, () =>
          s.write(`CONNECT up.test:${u.port} HTTP/1.1\r\nHost: up.test:${u.port}\r\n\r\n`),
        );
        held.push(s);
        s.once('data', (d) => resolve(d.toString()));
        s.on('error', () => resolve('error'));
      });
    assert.match(await open(), /^HTTP\/1\.1 200 /);
    assert.match(await open(), /^HTTP\/1\.1 200 /);
    const third = await open();
    assert.match(third, /^HTTP\/1\.1 403 /);
    assert.match(third, /X-Airlock-Rule: egress\.limits\.maxConnections/i);
    assert.ok(requests(g.events).some((e) => e.rule === 'egress.limits.maxConnections'));
    for (const s of held) s.destroy();
    await waitFor(() => g.gw.stats().active === 0, 'tunnels released');
    assert.match(await open(), /^HTTP\/1\.1 200 /, 'capacity comes back when tunnels close');
  } finally {
    for (const s of held) s.destroy();
    await g.gw.close();
    u.s.close();
  }
});
