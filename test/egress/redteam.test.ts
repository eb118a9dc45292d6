import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { dnsServerResolver } from '../../src/egress/index.ts';
import { gateway, requests, curl, raw, testCa, dnsServer, waitFor, type TestGateway } from './helpers.ts';

// Red team against the real gateway on loopback, its names answered by a DNS server the
// test runs. A plain HTTP target and a TLS target listen on 127.0.0.1; whatever the
// spelling, nothing the policy does not grant may reach them, and every attempt is a
// recorded denial naming its rule.

let target: Server;
let targetPort = 0;
let targetHits = 0;
let tls: HttpsServer;
let tlsPort = 0;
let tlsHandshakes = 0;
let g: TestGateway;
let caFile = '';
let dns: Awaited<ReturnType<typeof dnsServer>>;

before(async () => {
  target = createServer((_q, s) => {
    targetHits++;
    s.end('SECRET');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  targetPort = (target.address() as { port: number }).port;
  const ca = testCa(['tls.test', 'other.test']);
  caFile = ca.ca;
  tls = createHttpsServer({ cert: ca.cert, key: ca.key }, (_q, s) => s.end('tls ok'));
  tls.on('secureConnection', () => tlsHandshakes++);
  await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
  tlsPort = (tls.address() as { port: number }).port;
  dns = await dnsServer({
    'rebind.test': '127.0.0.1',
    'inside.test': '10.0.0.1',
    'meta.test': '169.254.169.254',
    'tls.test': '127.0.0.1',
    'other.test': '127.0.0.1',
  });
  g = await gateway(
    {
      allow: [
        { host: 'rebind.test', ports: [targetPort] },
        { host: 'inside.test', ports: [targetPort] },
        { host: 'meta.test', ports: [80, targetPort] },
        { host: 'tls.test', ports: [tlsPort], schemes: ['https'] },
        { host: 'other.test', ports: [tlsPort], schemes: ['https'] },
      ],
      // the TLS target (and only its port) is reachable; the plain target's port never is
      allowCidrs: [{ id: 'tls-target', cidr: '127.0.0.1/32', ports: [tlsPort] }],
    },
    { resolver: dnsServerResolver(dns.address), timeouts: { peekMs: 2000 } },
  );
});
after(async () => {
  await g.gw.close();
  target.close();
  tls.close();
  dns.close();
});

function lastDenial(rule: string) {
  return requests(g.events)
    .filter((e) => e.rule === rule && e.decision === 'deny')
    .at(-1);
}

test('numeric, IPv6, mapped, metadata and percent-encoded spellings of forbidden addresses are refused over the HTTP proxy', async () => {
  const P = targetPort;
  const cases: [string, string][] = [
    [`http://127.0.0.1:${P}/`, 'builtin.private-address'],
    [`http://2130706433:${P}/`, 'builtin.private-address'],
    [`http://0x7f.1:${P}/`, 'builtin.private-address'],
    [`http://0177.0.0.1:${P}/`, 'builtin.private-address'],
    [`http://127.1:${P}/`, 'builtin.private-address'],
    [`http://0x7f000001:${P}/`, 'builtin.private-address'],
    [`http://[::1]:${P}/`, 'builtin.private-address'],
    [`http://[::ffff:127.0.0.1]:${P}/`, 'builtin.private-address'],
    [`http://[::ffff:7f00:1]:${P}/`, 'builtin.private-address'],
    [`http://[::127.0.0.1]:${P}/`, 'builtin.private-address'],
    [`http://[2002:7f00:1::]:${P}/`, 'builtin.private-address'],
    [`http://[64:ff9b::7f00:1]:${P}/`, 'builtin.private-address'],
    [`http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:${P}/`, 'builtin.private-address'],
    ['http://169.254.169.254/latest/meta-data/', 'builtin.private-address'],
    ['http://[fd00:ec2::254]/latest/', 'builtin.private-address'],
    ['http://0xa9fea9fe/latest/', 'builtin.private-address'],
    ['http://[::ffff:169.254.169.254]/', 'builtin.private-address'],
    [`http://%31%32%37.0.0.1:${P}/`, 'builtin.private-address'],
    ['http://10.0.0.1/', 'builtin.private-address'],
    ['http://93.184.216.34/', 'builtin.ip-literal'],
    ['http://[2606:4700::1111]/', 'builtin.ip-literal'],
    [`http://rebind.test.evil.test:${P}/`, 'egress.default-deny'],
    [`http://evilrebind.test:${P}/`, 'egress.default-deny'],
  ];
  for (const [url, rule] of cases) {
    const before = g.events.length;
    // raw request: curl would normalise some spellings itself; the gateway must do it on its own
    const u = new URL(url);
    const reply = (await raw(g.port, `GET ${url} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`)).toString();
    assert.match(reply, /^HTTP\/1\.1 403 /, url);
    assert.match(
      reply,
      new RegExp(`X-Airlock-Rule: ${rule.replace(/[.[\]]/g, '\\$&')}\\r\\n`, 'i'),
      `${url}: ${reply.split('\r\n\r\n')[0]}`,
    );
    assert.match(reply, /denied by /, url);
    await waitFor(
      () => g.events.slice(before).some((e) => e.type === 'egress.request' && e.decision === 'deny' && e.rule === rule),
      `audit for ${url}`,
    );
  }
  assert.equal(targetHits, 0, 'nothing reached the forbidden target');
});

test('names resolving to loopback, private and metadata addresses are refused (DNS answered by the test server)', async () => {
  for (const [host, range] of [
    ['rebind.test', 'loopback'],
    ['inside.test', 'private'],
    ['meta.test', 'metadata'],
  ] as const) {
    const port = host === 'meta.test' ? 80 : targetPort;
    const r = await curl(['-x', g.url, `http://${host}:${port}/`]);
    assert.equal(r.status, 403, host);
    assert.equal(r.headers['x-airlock-rule'], 'builtin.private-address', host);
    assert.match(r.headers['x-airlock-reason']!, new RegExp(range));
    const ev = lastDenial('builtin.private-address')!;
    assert.equal((ev.data as { range: string }).range, range);
    if (range === 'metadata') assert.equal(ev.severity, 'high');
    // the same through CONNECT and SOCKS5 with a domain name (socks5h)
    assert.equal((await curl(['-p', '-x', g.url, `http://${host}:${port}/`])).status, 403);
    const s = await curl(['--socks5-hostname', `127.0.0.1:${g.port}`, `http://${host}:${port}/`]);
    assert.notEqual(s.code, 0);
    assert.match(s.stderr, /SOCKS5 connection to .*\(2\)/, s.stderr); // reply 2: not allowed by ruleset
  }
  assert.ok(dns.queries.includes('rebind.test'), 'the gateway resolved through the test DNS server');
  assert.equal(targetHits, 0);
});

test('userinfo tricks are refused', async () => {
  const reply = (
    await raw(
      g.port,
      `GET http://tls.test@rebind.test:${targetPort}/ HTTP/1.1\r\nHost: rebind.test:${targetPort}\r\n\r\n`,
    )
  ).toString();
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.match(reply, /X-Airlock-Rule: builtin\.bad-target/i);
  const c = (await raw(g.port, `CONNECT tls.test@rebind.test:${tlsPort} HTTP/1.1\r\n\r\n`)).toString();
  assert.match(c, /^HTTP\/1\.1 400 /);
  assert.match(c, /X-Airlock-Rule: builtin\.bad-target/i);
  // curl moves userinfo into a header: the real destination (evil) decides
  const r = await curl(['-x', g.url, `http://tls.test@evil.test:${targetPort}/`]);
  assert.equal(r.status, 403);
  assert.equal(r.headers['x-airlock-rule'], 'egress.default-deny');
  assert.equal(targetHits, 0);
});

test('a port the rule does not grant is refused, and the refusal says which ports are granted', async () => {
  const r = await curl(['-x', g.url, 'https://tls.test:22/']);
  assert.equal(r.status, 403);
  assert.equal(r.headers['x-airlock-rule'], 'egress.default-deny');
  assert.match(r.headers['x-airlock-reason']!, new RegExp(`ports ${tlsPort}`));
});

test('allowed TLS works, but an SNI that differs from the CONNECT host is cut with a TLS alert', async () => {
  const ok = await curl(['-x', g.url, '--cacert', caFile, `https://tls.test:${tlsPort}/`]);
  assert.equal(ok.status, 200, ok.stderr);
  assert.equal(ok.body, 'tls ok');
  const before = tlsHandshakes;
  const err = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: g.port }, () =>
      s.write(`CONNECT tls.test:${tlsPort} HTTP/1.1\r\nHost: tls.test:${tlsPort}\r\n\r\n`),
    );
    s.once('data', (d) => {
      assert.match(d.toString(), /^HTTP\/1\.1 200 /);
      const t = tlsConnect({ socket: s, servername: 'other.test', rejectUnauthorized: false });
      t.on('secureConnect', () => resolve('connected'));
      t.on('error', (e) => resolve(e.message));
    });
  });
  assert.notEqual(err, 'connected');
  const ev = await waitFor(() => lastDenial('builtin.sni-mismatch'), 'sni-mismatch event');
  assert.match(String((ev.data as { reason: string }).reason), /other\.test differs from the tunnel target tls\.test/);
  assert.equal(tlsHandshakes, before, 'no handshake reached the server');
});

test('an absolute-URI request whose Host header names another host is refused', async () => {
  const reply = (
    await raw(g.port, `GET http://tls.test:${tlsPort}/ HTTP/1.1\r\nHost: rebind.test:${targetPort}\r\n\r\n`)
  ).toString();
  assert.match(reply, /^HTTP\/1\.1 403 /);
  assert.match(reply, /X-Airlock-Rule: builtin\.host-mismatch/i);
  assert.ok(lastDenial('builtin.host-mismatch'));
});

test('SOCKS5: IP literals, forbidden names, BIND/UDP and unknown address types get the matching reply codes', async () => {
  const greet = Buffer.from([5, 1, 0]);
  const req = (cmd: number, atyp: number, addr: Buffer, port: number) =>
    Buffer.concat([Buffer.from([5, cmd, 0, atyp]), addr, Buffer.from([port >> 8, port & 255])]);
  const name = (n: string) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n)]);
  const cases: [Buffer, number, string][] = [
    [req(1, 1, Buffer.from([169, 254, 169, 254]), 80), 0x02, 'builtin.private-address'],
    [req(1, 1, Buffer.from([93, 184, 216, 34]), 443), 0x02, 'builtin.ip-literal'],
    [req(1, 4, Buffer.from('00000000000000000000ffff7f000001', 'hex'), targetPort), 0x02, 'builtin.private-address'],
    [req(1, 3, name('rebind.test'), targetPort), 0x02, 'builtin.private-address'],
    [req(1, 3, name('nowhere.invalid'), 443), 0x02, 'egress.default-deny'],
    [req(2, 3, name('tls.test'), tlsPort), 0x07, 'builtin.socks-command'],
    [req(3, 1, Buffer.from([0, 0, 0, 0]), 53), 0x07, 'builtin.socks-command'],
    [Buffer.concat([Buffer.from([5, 1, 0, 9]), Buffer.from([1, 2, 3, 4, 0, 80])]), 0x08, 'builtin.bad-target'],
  ];
  for (const [r, code, rule] of cases) {
    const out = await raw(g.port, [greet, r], 3000, 20);
    assert.equal(out[0], 5);
    assert.equal(out[1], 0, 'no-auth accepted');
    assert.equal(out[3], code, `${r.toString('hex')}: reply ${out.toString('hex')}`);
    await waitFor(() => lastDenial(rule), rule);
  }
  assert.equal(targetHits, 0);
});

test('DNS as a channel: a name carrying a honeytoken is never resolved; a wildcard grant resolves only so many distinct names; encoded-looking labels are a finding', async () => {
  const token = {
    kind: 'aws-access-key-id',
    path: '/home/agent/.aws/credentials',
    fingerprint: 'fp',
    value: 'AKIAQWERTYUIOPASDFGH',
  };
  const d = await dnsServer({ 'a.wild.test': '127.0.0.1' });
  let w: TestGateway | undefined;
  try {
    const g2 = (w = await gateway(
      { allow: [{ id: 'wild', host: '*.wild.test', ports: [443] }], limits: { maxNamesPerWildcard: 3 } },
      { resolver: dnsServerResolver(d.address), honeytokens: [token] },
    ));
    const connect = async (host: string) =>
      (await raw(g2.port, `CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`, 3000))
        .toString()
        .split('\r\n')[0] ?? '';
    assert.match(await connect(`${token.value.toLowerCase()}.wild.test`), / 403 /);
    assert.match(await connect('akiaqwertyu.iopasdfgh.wild.test'), / 403 /, 'split over labels');
    assert.deepEqual(
      d.queries.filter((q) => q.includes('akia')),
      [],
      'no DNS query carried the honeytoken',
    );
    const honey = requests(g2.events).filter((e) => e.rule === 'secrets.honeytokens');
    assert.equal(honey.length, 2);
    assert.equal(g2.events.filter((e) => e.type === 'detect.finding' && e.rule === 'detect.honeytoken').length, 2);
    // the budget: three distinct names resolve (or fail to), the fourth is refused unresolved
    for (const n of ['b.wild.test', 'c.wild.test', '4f6a9c2e81b35d07e9a1c4f2.wild.test']) await connect(n);
    const before = d.queries.length;
    assert.match(await connect('e.wild.test'), / 403 /);
    assert.equal(d.queries.length, before, 'the name over the budget was not looked up');
    assert.ok(requests(g2.events).some((e) => e.rule === 'egress.limits.maxNamesPerWildcard'));
    const exfil = g2.events.filter((e) => e.type === 'detect.finding' && e.rule === 'detect.dns-exfiltration');
    assert.ok(
      exfil.some((e) => /encoded/i.test(String((e.data as { title: string }).title))),
      'the hex label is a finding',
    );
    assert.ok(exfil.some((e) => /Many distinct names/.test(String((e.data as { title: string }).title))));
  } finally {
    await w?.gw.close();
    d.close();
  }
});
