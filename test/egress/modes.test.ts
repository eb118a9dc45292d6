// Egress in record and shadow mode (issue 20), with a real gateway and curl. Record mode lets
// through what only the default deny would refuse and records the would-be decision, but an
// explicit deny rule, a metadata address and an IP literal stay refused; shadow mode enforces
// and records the candidate's decision. Every request event carries the query it was decided
// on, so replay can decide it again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { policySchema } from '../../src/policy/index.ts';
import { gateway, requests, curl, waitFor, type TestGateway } from './helpers.ts';

let upstream: Server;
let port = 0;
const gateways: TestGateway[] = [];

before(async () => {
  upstream = createServer((_q, s) => s.end('upstream says hi'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  port = (upstream.address() as { port: number }).port;
});
after(async () => {
  for (const g of gateways) await g.gw.close();
  await new Promise((r) => upstream.close(r));
});

// names resolve to the loopback upstream, which a CIDR rule grants: only the name rules differ
const egress = () => ({
  allow: [{ id: 'api', host: 'api.test', ports: [port] }],
  allowCidrs: [{ id: 'local', cidr: '127.0.0.1/32', ports: [port] }],
  deny: [{ id: 'no-gist', host: 'gist.test' }],
});
const map = {
  'api.test': '127.0.0.1',
  'new.test': '127.0.0.1',
  'gist.test': '127.0.0.1',
  'meta.test': '169.254.169.254',
};

async function start(modes: Record<string, string>, candidate?: unknown): Promise<TestGateway> {
  const g = await gateway(undefined, {
    map,
    policy: policySchema.parse({ egress: egress(), modes }),
    candidate: candidate ? policySchema.parse(candidate) : undefined,
  });
  gateways.push(g);
  return g;
}

async function fetchVia(g: TestGateway, url: string) {
  const before = requests(g.events).length;
  const r = await curl(['-x', g.url, url]);
  const e = await waitFor(() => requests(g.events)[before], `event for ${url}`);
  return { r, e, data: e.data as Record<string, unknown> };
}

test('record mode: a destination no rule grants goes through, recorded with the would-be denial and rule', async () => {
  const g = await start({ egress: 'record' });
  const { r, e, data } = await fetchVia(g, `http://new.test:${port}/v1/items`);
  assert.equal(r.status, 200, r.stderr);
  assert.equal(r.body, 'upstream says hi');
  assert.deepEqual([e.decision, e.rule, data.mode], ['allow', 'modes.egress', 'record']);
  assert.deepEqual(data.wouldBe, {
    action: 'deny',
    rule: 'egress.default-deny',
    reason: (data.wouldBe as { reason: string }).reason,
    policy: 'effective',
  });
  assert.deepEqual(data.query, {
    host: 'new.test',
    port,
    scheme: 'http',
    method: 'GET',
    path: '/v1/items',
    intercepted: false,
    tunnel: false,
  });
  const granted = await fetchVia(g, `http://api.test:${port}/`);
  assert.deepEqual(
    [granted.e.rule, (granted.data.wouldBe as { action: string }).action],
    ['egress.allow.api', 'allow'],
  );
});

test('record mode is not enforcement-free: explicit deny rules, metadata addresses and IP literals stay refused', async () => {
  const g = await start({ egress: 'record' });
  const gist = await fetchVia(g, `http://gist.test:${port}/upload`);
  assert.equal(gist.r.status, 403);
  assert.deepEqual([gist.e.decision, gist.e.rule], ['deny', 'egress.deny.no-gist']);
  const meta = await fetchVia(g, `http://meta.test/latest/meta-data/`);
  assert.deepEqual([meta.e.decision, meta.e.rule], ['deny', 'builtin.private-address']);
  const literal = await fetchVia(g, `http://8.8.8.8:${port}/`);
  assert.deepEqual([literal.e.decision, literal.e.rule], ['deny', 'builtin.ip-literal']);
  const tunnel = await fetchVia(g, `https://169.254.169.254/`);
  assert.equal(tunnel.e.decision, 'deny');
});

test('shadow mode enforces the policy and records what the candidate would decide', async () => {
  const g = await start(
    { egress: 'shadow' },
    { egress: { ...egress(), allow: [{ id: 'next', host: 'new.test', ports: [port] }] } },
  );
  const denied = await fetchVia(g, `http://new.test:${port}/`);
  assert.equal(denied.r.status, 403, 'the current policy is enforced');
  assert.deepEqual([denied.e.decision, denied.e.rule, denied.data.mode], ['deny', 'egress.default-deny', 'shadow']);
  assert.deepEqual(
    [
      (denied.data.wouldBe as { action: string; rule: string; policy: string }).action,
      (denied.data.wouldBe as { rule: string }).rule,
      (denied.data.wouldBe as { policy: string }).policy,
    ],
    ['allow', 'egress.allow.next', 'candidate'],
  );
  const api = await fetchVia(g, `http://api.test:${port}/`);
  assert.deepEqual([api.e.decision, (api.data.wouldBe as { action: string }).action], ['allow', 'deny']);
});

test('enforce mode records the query but no mode or would-be decision', async () => {
  const g = await start({});
  const { e, data } = await fetchVia(g, `http://new.test:${port}/`);
  assert.deepEqual(
    [e.decision, e.rule, data.mode, data.wouldBe],
    ['deny', 'egress.default-deny', undefined, undefined],
  );
  assert.equal((data.query as { host: string }).host, 'new.test');
});
