import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policySchema } from '../../src/policy/index.ts';
import { compileEgress, decideTarget, normalizeHost, classifyAddress, splitAuthority } from '../../src/egress/index.ts';
import { parseClientHello } from '../../src/egress/sni.ts';

// Table-driven checks of the pure parts: normalisation, classification, rule matching.

const rules = (egress: unknown, grants: string[] = []) => compileEgress(policySchema.parse({ egress }).egress, grants);

test('every spelling of a host normalises to one canonical form', () => {
  const cases: [string, string][] = [
    ['GitHub.COM.', 'github.com'],
    ['git%68ub.com', 'github.com'],
    ['github．com', 'github.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['0x7f.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0xA9.0xFE.0xA9.0xFE', '169.254.169.254'],
    ['[::1]', '::1'],
    ['[0:0:0:0:0:ffff:7f00:1]', '::ffff:7f00:1'],
    ['%31%32%37.0.0.1', '127.0.0.1'],
  ];
  for (const [input, want] of cases) assert.equal(normalizeHost(input).host, want, input);
  for (const bad of [
    'allowed.com@evil.com',
    'a b.com',
    'evil.com/x',
    'x..y',
    '09.1.1.1',
    '1.2.3.4.5',
    '[fe80::1%eth0]',
    'a%00b.com',
    '',
    'evil.com\\@a',
    '%zz.com',
  ]) {
    assert.throws(() => normalizeHost(bad), Error, bad);
  }
});

test('special-purpose addresses and every IPv6 embedding are classified', () => {
  const cases: [string, string][] = [
    ['127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['0.0.0.0', 'unspecified'],
    ['198.18.0.1', 'benchmarking'],
    ['192.0.2.1', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fd00:ec2::254', 'metadata'],
    ['fc00::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['::ffff:127.0.0.1', 'ipv4-mapped'],
    ['::127.0.0.1', 'ipv4-compatible'],
    ['2002:7f00:1::', '6to4'],
    ['64:ff9b::a9fe:a9fe', 'nat64'],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'teredo'],
  ];
  for (const [ip, range] of cases) {
    const c = classifyAddress(ip);
    assert.equal(c.range, range, ip);
    assert.equal(c.special, true, ip);
  }
  assert.equal(classifyAddress('2002:7f00:1::').embedded?.range, 'loopback');
  assert.equal(classifyAddress('64:ff9b::a9fe:a9fe').embedded?.range, 'metadata');
  assert.equal(classifyAddress('2001:0:4136:e378:8000:63bf:80ff:fffe').embedded?.ipv4, '127.0.0.1');
  assert.equal(classifyAddress('93.184.216.34').special, false);
  assert.equal(classifyAddress('2606:4700::1111').special, false);
});

test('lookalikes, ports, schemes, methods and paths never widen a rule', () => {
  const r = rules({
    allow: [
      { host: 'github.com' },
      { id: 'sub', host: '*.example.com', ports: [443], schemes: ['https'] },
      { id: 'ro', host: 'plain.test', schemes: ['http'], methods: ['GET'], paths: ['/pub'] },
    ],
    deny: [{ id: 'nope', host: 'bad.example.com' }],
  });
  const d = (host: string, port: number, extra: object = {}) => decideTarget(r, { host, port, ...extra });
  assert.equal(d('github.com', 443).rule, 'egress.allow[0]');
  assert.equal(d('GITHUB.com.', 443).action, 'allow');
  for (const h of ['github.com.evil.com', 'evilgithub.com', 'github.co', 'xn--github-xyz.com', 'github.com-evil.com']) {
    assert.equal(d(h, 443).action, 'deny', h);
    assert.equal(d(h, 443).rule, 'egress.default-deny', h);
  }
  assert.equal(d('github.com', 22).action, 'deny');
  assert.equal(d('a.example.com', 443).rule, 'egress.allow.sub');
  assert.equal(d('example.com', 443).action, 'deny', 'wildcard does not cover the parent');
  assert.equal(d('a.example.com', 80).action, 'deny');
  assert.equal(d('a.example.com', 443, { scheme: 'tcp' }).action, 'deny');
  assert.equal(d('bad.example.com', 443).rule, 'egress.deny.nope', 'deny beats allow');
  assert.equal(d('plain.test', 80, { scheme: 'http', method: 'GET', path: '/pub/x' }).rule, 'egress.allow.ro');
  assert.equal(d('plain.test', 80, { scheme: 'http', method: 'POST', path: '/pub/x' }).action, 'deny');
  assert.equal(d('plain.test', 80, { scheme: 'http', method: 'GET', path: '/pubx' }).action, 'deny');
  assert.equal(d('plain.test', 80, { scheme: 'http', method: 'GET', path: '/pub%2f..%2fsecret' }).action, 'deny');
  assert.equal(
    d('plain.test', 80, { scheme: 'https' }).action,
    'deny',
    'path rules never match where the path is invisible',
  );
});

test('IP literals need a CIDR grant; special ranges need one even behind a name', () => {
  const r = rules({
    allow: [{ host: 'app.test', ports: [8080] }],
    allowCidrs: [{ id: 'dev', cidr: '127.0.0.1/32', ports: [8080] }],
  });
  assert.equal(decideTarget(r, { host: '93.184.216.34', port: 443 }).rule, 'builtin.ip-literal');
  assert.equal(decideTarget(r, { host: '127.0.0.1', port: 8080 }).rule, 'egress.allowCidrs.dev');
  assert.equal(decideTarget(r, { host: '[::ffff:127.0.0.1]', port: 8080 }).rule, 'egress.allowCidrs.dev');
  assert.equal(decideTarget(r, { host: '127.0.0.1', port: 22 }).rule, 'builtin.private-address');
  assert.equal(decideTarget(r, { host: '169.254.169.254', port: 80 }).rule, 'builtin.private-address');
  assert.equal(decideTarget(r, { host: 'app.test', port: 8080, addresses: ['127.0.0.1'] }).action, 'allow');
  const rebind = decideTarget(r, { host: 'app.test', port: 8080, addresses: ['127.0.0.1', '10.0.0.1'] });
  assert.equal(rebind.rule, 'builtin.private-address', 'every resolved address must pass');
  assert.equal(decideTarget(r, { host: 'app.test', port: 8080, addresses: [] }).rule, 'builtin.resolve-failed');
});

test('no policy allows nothing; presets are https on 443 only; grants are named', () => {
  const none = rules({});
  assert.equal(decideTarget(none, { host: 'registry.npmjs.org', port: 443 }).rule, 'egress.default-deny');
  const p = rules({ presets: ['npm'] }, ['api.example.com:8443', '10.9.8.7']);
  assert.equal(decideTarget(p, { host: 'registry.npmjs.org', port: 443 }).rule, 'egress.preset.npm');
  assert.equal(
    decideTarget(p, { host: 'registry.npmjs.org', port: 80, scheme: 'http', method: 'GET', path: '/' }).action,
    'deny',
  );
  assert.equal(decideTarget(p, { host: 'api.example.com', port: 8443 }).rule, 'egress.grant[0]');
  assert.equal(decideTarget(p, { host: 'api.example.com', port: 443 }).action, 'deny');
  assert.equal(decideTarget(p, { host: '10.9.8.7', port: 443 }).rule, 'egress.grant[1]');
});

test('CONNECT targets: userinfo, paths and missing ports are refused', () => {
  assert.deepEqual(splitAuthority('example.com:443'), { host: 'example.com', port: 443 });
  assert.deepEqual(splitAuthority('[::1]:8080'), { host: '[::1]', port: 8080 });
  for (const bad of [
    'example.com',
    'a@b.com:443',
    'example.com:0',
    'example.com:99999',
    'example.com:443/x',
    '::1:443',
    'example.com: 443',
    ':443',
    'example.com:+443',
  ]) {
    assert.throws(() => splitAuthority(bad), Error, bad);
  }
});

test('ClientHello parser finds the SNI, across split records, and refuses junk', async () => {
  const { connect: tlsConnect } = await import('node:tls');
  const { createServer } = await import('node:net');
  const hello = await new Promise<Buffer>((resolve) => {
    const srv = createServer((s) =>
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        srv.close();
      }),
    );
    srv.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({
        host: '127.0.0.1',
        port: (srv.address() as { port: number }).port,
        servername: 'Registry.npmjs.org',
      });
      c.on('error', () => undefined);
    });
  });
  assert.deepEqual(parseClientHello(hello), { status: 'ok', sni: 'Registry.npmjs.org' });
  assert.equal(parseClientHello(hello.subarray(0, 20)).status, 'more');
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).status, 'not-tls');
  assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])).status, 'bad');
  // the same hello split into two TLS records
  const body = hello.subarray(5);
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  assert.deepEqual(parseClientHello(Buffer.concat([rec(body.subarray(0, 30)), rec(body.subarray(30))])), {
    status: 'ok',
    sni: 'Registry.npmjs.org',
  });
});

test('request paths: one normal form; a trailing slash is kept (it names another resource)', async () => {
  const { requestPath } = await import('../../src/egress/path.ts');
  const cases: [string, string][] = [
    ['/simple/pkg/', '/simple/pkg/'],
    ['/simple/pkg', '/simple/pkg'],
    ['/', '/'],
    ['//', '/'],
    ['/a/./', '/a/'],
    ['/a/b/..', '/a/'],
    ['/a//b/', '/a/b/'],
    ['/%61/b?x=1', '/a/b?x=1'],
  ];
  for (const [raw, forward] of cases) assert.equal(requestPath(raw).forward, forward, raw);
});

test('egress.ask: a matching destination no rule allows is an ask naming its rule; a deny or an allow rule still decides first; other ports and schemes stay denied', () => {
  const r = rules({
    ask: [{ id: 'docs', host: '*.docs.example', ports: [443] }],
    allow: [{ host: 'api.docs.example' }],
    deny: [{ host: 'evil.docs.example' }],
  });
  const d = (host: string, port = 443, scheme?: 'https' | 'http') => decideTarget(r, { host, port, scheme });
  assert.deepEqual([d('www.docs.example').action, d('www.docs.example').rule], ['ask', 'egress.ask.docs']);
  assert.equal(d('api.docs.example').action, 'allow', 'an allow rule needs nobody');
  assert.deepEqual([d('evil.docs.example').action, d('evil.docs.example').rule], ['deny', 'egress.deny[0]']);
  assert.equal(d('www.docs.example', 8443).action, 'deny', 'a port the ask rule does not list');
  assert.equal(d('other.example').action, 'deny');
});
