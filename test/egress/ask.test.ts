// egress.ask at the gateway (issue 17), without a sandbox: what happens to a held
// connection when nobody can answer, when the queue fails, when a human allows for the
// session (asked once however many connections wait), allows once (this connection only,
// a tunnel's second decision included; the next connection asks again) and denies.
// The asker here is a function the test controls; the session wires the real queue
// (test/console/egress-ask.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { EgressAskRequest, EgressAnswer } from '../../src/egress/index.ts';
import { gateway, curl, waitFor } from './helpers.ts';

let upstream: Server;
let port = 0;
const hits: string[] = [];

before(async () => {
  upstream = createServer((req, res) => {
    hits.push(req.url ?? '');
    res.end('upstream\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  port = (upstream.address() as { port: number }).port;
});
after(() => {
  upstream.close();
});

const policy = () => ({
  ask: [{ id: 'dev', host: 'dev.example', ports: [port], schemes: ['http' as const] }],
  allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
});
const through = (g: { url: string }, path: string) => curl(['-x', g.url, `http://dev.example:${port}${path}`]);

test('without an approval queue, or when the queue fails, an ask is a deny naming the ask rule (fail closed)', async () => {
  for (const ask of [
    undefined,
    async (): Promise<EgressAnswer> => {
      throw new Error('queue down');
    },
  ]) {
    const g = await gateway(policy(), { map: { 'dev.example': '127.0.0.1' }, ask });
    try {
      const r = await through(g, '/x');
      assert.equal(r.status, 403);
      assert.equal(r.headers['x-airlock-rule'], 'egress.ask.dev');
      assert.match(r.headers['x-airlock-reason'] ?? '', ask ? /approval queue failed/ : /nobody can answer/);
    } finally {
      await g.gw.close();
    }
  }
  assert.deepEqual(hits, []);
});

test('an allow for the session is asked once for concurrent connections, granted for the session, and recorded; a deny refuses', async () => {
  const asked: EgressAskRequest[] = [];
  let answer!: (a: EgressAnswer) => void;
  const g = await gateway(policy(), {
    map: { 'dev.example': '127.0.0.1' },
    ask: (r) => {
      asked.push(r);
      return new Promise((res) => {
        answer = res;
      });
    },
  });
  try {
    const both = Promise.all([through(g, '/a'), through(g, '/b')]);
    await waitFor(() => asked.length === 1 && answer, 'the question');
    assert.equal(hits.length, 0, 'held, not forwarded');
    answer({ decision: 'allow', by: 'rita@example.com', reason: 'ok', scope: 'session' });
    const rs = await both;
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 200],
    );
    assert.equal(asked.length, 1, 'one question for both connections');
    assert.equal((await through(g, '/c')).status, 200);
    assert.equal(asked.length, 1, 'granted for the session');
    assert.ok(g.events.some((e) => e.type === 'egress.ask_answered' && e.data?.by === 'rita@example.com'));
    assert.ok(g.events.some((e) => e.type === 'egress.request' && e.rule === 'egress.ask.dev.answered'));
  } finally {
    await g.gw.close();
  }

  const g2 = await gateway(policy(), {
    map: { 'dev.example': '127.0.0.1' },
    ask: async () => ({ decision: 'deny', by: 'sec@example.com', reason: 'no' }),
  });
  try {
    const before = hits.length;
    const r = await through(g2, '/denied');
    assert.equal(r.status, 403);
    assert.match(r.headers['x-airlock-reason'] ?? '', /denied by sec@example\.com/);
    assert.equal(hits.length, before);
  } finally {
    await g2.gw.close();
  }
});

test('an allow once lets exactly one connection through: the next connection asks again, and so does a second waiter', async () => {
  const asked: EgressAskRequest[] = [];
  const answers: ((a: EgressAnswer) => void)[] = [];
  const g = await gateway(policy(), {
    map: { 'dev.example': '127.0.0.1' },
    ask: (r) => {
      asked.push(r);
      return new Promise((res) => {
        answers.push(res);
      });
    },
  });
  const once: EgressAnswer = { decision: 'allow', by: 'rita@example.com', reason: 'just this one', scope: 'once' };
  try {
    const before = hits.length;
    const first = through(g, '/once-1');
    await waitFor(() => answers.length === 1, 'the first question');
    answers[0]!(once);
    assert.equal((await first).status, 200);
    const second = through(g, '/once-2');
    await waitFor(() => answers.length === 2, 'the second connection asks again');
    answers[1]!({ decision: 'deny', by: 'rita@example.com', reason: 'not again' });
    assert.equal((await second).status, 403, 'once is not for the session');
    assert.deepEqual(hits.slice(before), ['/once-1']);

    // two connections wait on one question; a once answer lets only one of them through, the other asks anew
    const both = Promise.all([through(g, '/w-1'), through(g, '/w-2')]);
    await waitFor(() => answers.length === 3, 'one question for both waiters');
    answers[2]!(once);
    await waitFor(() => answers.length === 4, 'the waiter left without the grant asks again');
    answers[3]!({ decision: 'deny', by: 'rita@example.com', reason: 'no' });
    assert.deepEqual((await both).map((r) => r.status).sort(), [200, 403]);
    assert.equal(hits.length - before, 2, 'exactly one of the two waiters reached the upstream');
    const granted = g.events.filter((e) => e.type === 'egress.ask_answered');
    assert.equal(granted.length, 2);
    assert.ok(granted.every((e) => e.data?.scope === 'once' && e.data?.by === 'rita@example.com'));
    assert.equal(g.events.filter((e) => e.type === 'egress.request' && e.rule === 'egress.ask.dev.once').length, 2);
  } finally {
    await g.gw.close();
  }
});

test('a tunnel allowed once is decided twice (CONNECT, then what it carries) on the one grant; a second tunnel asks again', async () => {
  const asked: EgressAskRequest[] = [];
  const g = await gateway(policy(), {
    map: { 'dev.example': '127.0.0.1' },
    ask: async (r) => {
      asked.push(r);
      return { decision: 'allow', by: 'rita@example.com', reason: 'ok', scope: 'once' };
    },
  });
  try {
    const tunnelled = (path: string) => curl(['-p', '-x', g.url, `http://dev.example:${port}${path}`]);
    const r = await tunnelled('/t-1');
    assert.equal(r.status, 200, r.stderr);
    assert.equal(asked.length, 1, 'one question for the tunnel and the request inside it');
    assert.equal((await tunnelled('/t-2')).status, 200);
    assert.equal(asked.length, 2, 'the second tunnel asked again');
  } finally {
    await g.gw.close();
  }
});
