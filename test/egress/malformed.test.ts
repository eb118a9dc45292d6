import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { gateway, requests, raw, curl, waitFor, type TestGateway } from './helpers.ts';

// Malformed input: the gateway answers (HTTP 4xx, SOCKS failure reply or a prompt close),
// records it, and keeps serving others. Short timeouts make slow clients quick to test.

let up: Server;
let upPort = 0;
let g: TestGateway;

before(async () => {
  up = createServer((_q, s) => s.end('fine'));
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  upPort = (up.address() as { port: number }).port;
  g = await gateway(
    { allow: [{ host: 'up.test', ports: [upPort] }], allowCidrs: [{ cidr: '127.0.0.1/32', ports: [upPort] }] },
    { map: { 'up.test': '127.0.0.1' }, timeouts: { handshakeMs: 400, peekMs: 400 } },
  );
});
after(async () => {
  await g.gw.close();
  up.close();
});

async function stillServes(): Promise<void> {
  const r = await curl(['-x', g.url, `http://up.test:${upPort}/`]);
  assert.equal(r.status, 200, r.stderr);
  assert.equal(r.body, 'fine');
}

test('broken request lines, oversized and duplicated headers, bad CONNECT targets get a 4xx with the rule, and are recorded', async () => {
  const big = 'x'.repeat(20_000);
  const cases: [string, RegExp, string][] = [
    ['GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-request'],
    ['GET\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-request'],
    ['GET / HTTP/1.1\r\nHost: up.test\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-request'],
    ['GET ftp://up.test/ HTTP/1.1\r\nHost: up.test\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-request'],
    [
      `GET http://up.test:${upPort}/ HTTP/1.1\r\nHost: up.test:${upPort}\r\nX-Big: ${big}\r\n\r\n`,
      /^HTTP\/1\.1 431 /,
      'builtin.bad-request',
    ],
    [
      `GET http://up.test:${upPort}/ HTTP/1.1\r\nHost: up.test:${upPort}\r\nHost: up.test:${upPort}\r\n\r\n`,
      /^HTTP\/1\.1 400 /,
      'builtin.bad-request',
    ],
    [
      `POST http://up.test:${upPort}/ HTTP/1.1\r\nHost: up.test:${upPort}\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc`,
      /^HTTP\/1\.1 400 /,
      'builtin.bad-request',
    ],
    [
      `GET http://up.test:${upPort}/ HTTP/1.1\r\n${Array.from({ length: 250 }, (_, i) => `X-H${i}: v\r\n`).join('')}Host: up.test:${upPort}\r\n\r\n`,
      /^HTTP\/1\.1 4(00|31) /,
      'builtin.bad-request',
    ],
    ['CONNECT up.test HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-target'],
    ['CONNECT up.test:99999 HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-target'],
    ['CONNECT [::1 HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-target'],
    ['CONNECT up.test:443/x HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-target'],
    ['CONNECT a b:443 HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /, 'builtin.bad-'],
    ['\x04\x01\x00\x50\x7f\x00\x00\x01\x00', /^\x00\x5b/, 'builtin.bad-request'],
  ];
  for (const [input, want, rule] of cases) {
    const before = requests(g.events).length;
    const out = (await raw(g.port, input)).toString('latin1');
    assert.match(out, want, `${JSON.stringify(input.slice(0, 60))} -> ${JSON.stringify(out.slice(0, 120))}`);
    await waitFor(
      () =>
        requests(g.events)
          .slice(before)
          .some((e) => e.decision === 'deny' && String(e.rule).startsWith(rule)),
      `event for ${JSON.stringify(input.slice(0, 40))}`,
    );
  }
  await stillServes();
});

test('truncated and bad SOCKS5 handshakes get a failure reply or a close, and are recorded', async () => {
  const cases: (Buffer | Buffer[])[] = [
    Buffer.from([5]),
    Buffer.from([5, 2, 0]),
    Buffer.from([5, 0]),
    Buffer.from([5, 1, 2]),
    [Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3, 10, 0x61])],
    [Buffer.from([5, 1, 0]), Buffer.from([4, 1, 0, 1, 1, 2, 3, 4, 0, 80])],
    [Buffer.from([5, 1, 0]), Buffer.from([5, 1, 0, 3, 0, 0, 80])],
  ];
  for (const c of cases) {
    const before = requests(g.events).length;
    const out = await raw(g.port, c, 3000, 20);
    if (out.length) assert.equal(out[0], 5, `reply to ${JSON.stringify(c)}: ${out.toString('hex')}`);
    assert.ok(
      out.length === 0 || out[1] !== 0 || out.length === 2 || out[3] !== 0,
      'never a success reply to a bad request',
    );
    await waitFor(
      () =>
        requests(g.events)
          .slice(before)
          .some((e) => e.decision === 'deny' && e.type === 'egress.request'),
      `event for ${JSON.stringify(c)}`,
    );
  }
  await stillServes();
});

test('slowloris: clients that dribble headers or send nothing are answered 408 / closed and recorded', async () => {
  const before = requests(g.events).length;
  const parts = [
    'GET http://up.test',
    `:${upPort}/ HTTP/1.1\r\n`,
    'Host: up',
    '.test\r\n',
    'X-A: 1\r\n',
    'X-B: 2\r\n',
    'X-C: 3\r\n',
  ];
  const out = (await raw(g.port, parts, 5000, 150)).toString();
  assert.match(out, /^HTTP\/1\.1 408 /);
  await waitFor(
    () =>
      requests(g.events)
        .slice(before)
        .some((e) => e.rule === 'builtin.timeout'),
    'timeout event',
  );
  const silent = await raw(g.port, [], 5000);
  assert.equal(silent.length, 0);
  await waitFor(
    () =>
      requests(g.events)
        .slice(before)
        .filter((e) => e.rule === 'builtin.timeout').length >= 2,
    'silent client recorded',
  );
  await stillServes();
});

test('bounded fuzz loop: random bytes never crash the gateway; every connection ends and it keeps serving', async () => {
  let seed = 0x5eed;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const prefixes = [
    'GET http://up.test/ HTTP/1.1\r\n',
    'CONNECT ',
    '\x05',
    '\x05\x01\x00\x05\x01\x00\x03',
    '\x16\x03\x01',
    'POST http://',
    '',
  ];
  const started = Date.now();
  for (let i = 0; i < 120 && Date.now() - started < 60_000; i++) {
    const len = rnd() % 300;
    const junk = Buffer.from(Array.from({ length: len }, () => rnd() & 0xff));
    const input = Buffer.concat([
      Buffer.from(prefixes[i % prefixes.length]!, 'latin1'),
      junk,
      i % 3 ? Buffer.from('\r\n\r\n') : Buffer.alloc(0),
    ]);
    await raw(g.port, input, 2000);
  }
  await stillServes();
  assert.ok(g.gw.stats().denied > 50, `denials recorded: ${g.gw.stats().denied}`);
});
