import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateCa, writeCaBundle, caEnv, CA_KEY_FILE, type GatewayCa } from '../../src/egress/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import type { PolicyInput } from '../../src/policy/index.ts';
import { gateway, curl, requests, run, waitFor } from './helpers.ts';
import { testPki, httpsServer } from './pki.ts';

// Airlock's gateway CA (created on first use, key 0600, refused when readable by others),
// minted leaves, the CA bundle, and interception in the real gateway driven by curl:
// per-request method/path rules, end-to-end tunnels for hosts that are not intercepted,
// and upstream TLS failures (untrusted, wrong name, expired) refused with an event.

function keysDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'airlock-ca-')), 'keys');
}

test('the CA is created on first use with its key at mode 0600, reused after, and a key readable by others is refused', async () => {
  const dir = keysDir();
  const ca = await loadOrCreateCa({ keysDir: dir });
  const keyPath = join(dir, CA_KEY_FILE);
  assert.equal(ca.keyPath, keyPath);
  assert.equal(statSync(keyPath).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.match(readFileSync(keyPath, 'utf8'), /BEGIN PRIVATE KEY/);
  assert.doesNotMatch(ca.certPem, /PRIVATE/);
  const again = await loadOrCreateCa({ keysDir: dir });
  assert.equal(again.fingerprint, ca.fingerprint, 'the same CA is loaded the second time');
  const c = new X509Certificate(ca.certPem);
  assert.ok(c.ca, 'it is a CA certificate');

  chmodSync(keyPath, 0o644);
  await assert.rejects(
    loadOrCreateCa({ keysDir: dir }),
    (e: unknown) =>
      e instanceof AirlockError &&
      e.kind === 'BAD_STATE' &&
      /readable by group or others/.test(e.message) &&
      /chmod 600/.test(e.hint ?? ''),
  );
  chmodSync(keyPath, 0o640);
  await assert.rejects(loadOrCreateCa({ keysDir: dir }), /readable by group or others/);
  chmodSync(keyPath, 0o600);
  // a symlink planted in place of the key is refused, never followed
  const real = readFileSync(keyPath);
  unlinkSync(keyPath);
  const elsewhere = join(dir, '..', 'elsewhere.key');
  writeFileSync(elsewhere, real, { mode: 0o600 });
  symlinkSync(elsewhere, keyPath);
  await assert.rejects(loadOrCreateCa({ keysDir: dir }), /symlink/);
});

test('leaves are minted per host, chain to the CA, carry exactly that name, and are cached on disk (0600)', async () => {
  const dir = keysDir();
  const ca = await loadOrCreateCa({ keysDir: dir });
  const l = await ca.leaf('api.example.com');
  const cert = new X509Certificate(l.certPem);
  const caCert = new X509Certificate(ca.certPem);
  assert.ok(cert.verify(caCert.publicKey), 'signed by the CA');
  assert.ok(cert.checkIssued(caCert));
  assert.equal(cert.checkHost('api.example.com'), 'api.example.com');
  assert.equal(cert.checkHost('evil.example.com'), undefined, 'no other name');
  assert.equal(cert.ca, false);
  assert.equal((await ca.leaf('api.example.com')).certPem, l.certPem, 'memory cache');
  const files = readdirSync(join(dir, 'gateway-leaves'));
  assert.equal(files.length, 1);
  assert.equal(statSync(join(dir, 'gateway-leaves', files[0]!)).mode & 0o777, 0o600);
  const reloaded = await loadOrCreateCa({ keysDir: dir });
  assert.equal((await reloaded.leaf('api.example.com')).certPem, l.certPem, 'disk cache survives a restart');
});

test('the CA bundle holds the system roots and the Airlock CA, never a key; the env points clients at it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'airlock-bundle-'));
  const ca = await loadOrCreateCa({ keysDir: join(root, 'keys') });
  const p = writeCaBundle(ca, join(root, 'tls'));
  const text = readFileSync(p, 'utf8');
  assert.ok(text.includes(ca.certPem.trim()));
  assert.doesNotMatch(text, /PRIVATE KEY/);
  if (existsSync('/etc/ssl/certs/ca-certificates.crt'))
    assert.ok((text.match(/BEGIN CERTIFICATE/g) ?? []).length > 50, 'system roots included');
  assert.equal(statSync(p).mode & 0o777, 0o644);
  const env = caEnv('/etc/ssl/certs/ca-certificates.crt');
  for (const k of [
    'SSL_CERT_FILE',
    'NODE_EXTRA_CA_CERTS',
    'REQUESTS_CA_BUNDLE',
    'GIT_SSL_CAINFO',
    'CURL_CA_BUNDLE',
    'PIP_CERT',
    'npm_config_cafile',
    'DENO_CERT',
    'AWS_CA_BUNDLE',
  ]) {
    assert.equal(env[k], '/etc/ssl/certs/ca-certificates.crt', k);
  }
});

async function setup(
  egress: PolicyInput['egress'],
  names: Record<string, string>,
  ca: GatewayCa,
  upstreamCa: string[],
) {
  return gateway(egress, { map: names, tls: { ca, upstreamCa } });
}

test('an intercepted host: curl sees an Airlock-minted leaf, every request is decided on its own (GET allowed, PUT refused) and recorded', async () => {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['registry.test', 'plain.test']));
  const ca = await loadOrCreateCa({ keysDir: keysDir() });
  const caFile = join(mkdtempSync(join(tmpdir(), 'airlock-cafile-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const port = up.port;
  const g = await setup(
    {
      intercept: ['registry.test'],
      allow: [
        { id: 'registry-read', host: 'registry.test', ports: [port], methods: ['GET', 'HEAD'] },
        { host: 'plain.test', ports: [port] },
      ],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
    },
    { 'registry.test': '127.0.0.1', 'plain.test': '127.0.0.1' },
    ca,
    [pki.caPem],
  );
  try {
    const get = await curl(['-x', g.url, '--cacert', caFile, '-v', `https://registry.test:${port}/pkg/a/../left-pad`]);
    assert.equal(get.status, 200, get.stderr);
    assert.match(get.body, /^GET \/pkg\/left-pad /, 'the upstream got the normalised path');
    assert.match(get.stderr, /issuer: .*Airlock gateway CA/, 'the client saw a leaf minted by Airlock');
    // two requests on one kept-alive connection are each decided
    const two = await curl([
      '-x',
      g.url,
      '--cacert',
      caFile,
      `https://registry.test:${port}/a`,
      '-X',
      'PUT',
      '--data',
      'tarball',
      '--next',
      '-x',
      g.url,
      '--cacert',
      caFile,
      `https://registry.test:${port}/b`,
    ]);
    assert.ok(two.code === 0, two.stderr);
    const put = await curl([
      '-x',
      g.url,
      '--cacert',
      caFile,
      '-X',
      'PUT',
      '--data-binary',
      '{"name":"x"}',
      `https://registry.test:${port}/x`,
    ]);
    assert.equal(put.status, 403);
    assert.equal(put.headers['x-airlock-rule'], 'egress.default-deny');
    assert.match(put.headers['x-airlock-reason'] ?? '', /registry-read allows this host only on methods GET, HEAD/);
    assert.ok(!up.seen.some((s) => s.method === 'PUT'), 'no PUT reached the registry');
    const ev = requests(g.events).filter((e) => (e.data as { protocol: string }).protocol === 'intercepted');
    const gets = ev.filter((e) => (e.data as { method: string }).method === 'GET' && e.decision === 'allow');
    assert.ok(gets.length >= 2);
    assert.equal((gets[0]!.data as { status: number }).status, 200);
    assert.equal((gets[0]!.data as { path: string }).path, '/pkg/left-pad');
    assert.ok((gets[0]!.data as { bytesDown: number }).bytesDown > 0);
    const puts = ev.filter((e) => (e.data as { method: string }).method === 'PUT');
    assert.ok(puts.length >= 2 && puts.every((e) => e.decision === 'deny' && e.rule === 'egress.default-deny'));

    // a host that is not intercepted stays an end-to-end tunnel: curl sees the server's own certificate
    const pkiFile = join(mkdtempSync(join(tmpdir(), 'airlock-upca-')), 'up.pem');
    writeFileSync(pkiFile, pki.caPem);
    const t = await curl(['-x', g.url, '--cacert', pkiFile, '-v', `https://plain.test:${port}/t`]);
    assert.equal(t.status, 200, t.stderr);
    assert.match(t.stderr, /issuer: CN=upstream test CA/);
    await waitFor(
      () =>
        requests(g.events).some(
          (e) =>
            (e.data as { protocol: string; host: string }).protocol === 'connect' &&
            (e.data as { host: string }).host === 'plain.test' &&
            !(e.data as { intercepted?: boolean }).intercepted,
        ),
      'the tunnel event',
    );
  } finally {
    await g.gw.close();
    await up.close();
  }
});

test('a deny rule with methods applies per request on an intercepted host (npm publish refused, install allowed)', async () => {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['registry.test']));
  const ca = await loadOrCreateCa({ keysDir: keysDir() });
  const caFile = join(mkdtempSync(join(tmpdir(), 'airlock-cafile-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const g = await setup(
    {
      intercept: ['registry.test'],
      allow: [{ host: 'registry.test', ports: [up.port] }],
      deny: [{ id: 'no-publish', host: 'registry.test', methods: ['PUT', 'DELETE'], reason: 'no npm publish' }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [up.port] }],
    },
    { 'registry.test': '127.0.0.1' },
    ca,
    [pki.caPem],
  );
  try {
    assert.equal(
      (await curl(['-x', g.url, '--cacert', caFile, `https://registry.test:${up.port}/left-pad`])).status,
      200,
    );
    const pub = await curl([
      '-x',
      g.url,
      '--cacert',
      caFile,
      '-X',
      'PUT',
      '--data',
      '{}',
      `https://registry.test:${up.port}/left-pad`,
    ]);
    assert.equal(pub.status, 403);
    assert.equal(pub.headers['x-airlock-rule'], 'egress.deny.no-publish');
    assert.deepEqual(
      up.seen.map((s) => s.method),
      ['GET'],
    );
  } finally {
    await g.gw.close();
    await up.close();
  }
});

test('upstream TLS failures on an intercepted host (untrusted, wrong name, expired) are refused with builtin.upstream-tls', async () => {
  const trusted = await testPki('trusted CA');
  const rogue = await testPki('rogue CA');
  const DAY = 86_400_000;
  const servers = {
    untrusted: await httpsServer(await rogue.leaf(['api.test'])),
    wrongname: await httpsServer(await trusted.leaf(['other.test'])),
    expired: await httpsServer(
      await trusted.leaf(['api.test'], {
        notBefore: new Date(Date.now() - 3 * DAY),
        notAfter: new Date(Date.now() - DAY),
      }),
    ),
    good: await httpsServer(await trusted.leaf(['api.test'])),
  };
  const ports = Object.values(servers).map((s) => s.port);
  const ca = await loadOrCreateCa({ keysDir: keysDir() });
  const caFile = join(mkdtempSync(join(tmpdir(), 'airlock-cafile-')), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const g = await setup(
    { intercept: ['api.test'], allow: [{ host: 'api.test', ports }], allowCidrs: [{ cidr: '127.0.0.1/32', ports }] },
    { 'api.test': '127.0.0.1' },
    ca,
    [trusted.caPem],
  );
  try {
    for (const [name, s] of Object.entries(servers)) {
      const r = await curl(['-x', g.url, '--cacert', caFile, `https://api.test:${s.port}/${name}`]);
      if (name === 'good') {
        assert.equal(r.status, 200, r.stderr);
        continue;
      }
      assert.equal(r.status, 502, `${name}: ${r.stderr}`);
      assert.equal(r.headers['x-airlock-rule'], 'builtin.upstream-tls', name);
      assert.equal(s.seen.length, 0, `${name}: the request never reached the server`);
      const ev = requests(g.events).find(
        (e) => e.rule === 'builtin.upstream-tls' && (e.data as { path: string }).path === `/${name}`,
      );
      assert.ok(ev && ev.decision === 'deny', `${name}: recorded as a denial`);
    }
    const reasons = requests(g.events)
      .filter((e) => e.rule === 'builtin.upstream-tls')
      .map((e) => String((e.data as { reason: string }).reason));
    assert.ok(
      reasons.some((r) => /ALTNAME|altname/i.test(r)),
      reasons.join('\n'),
    );
    assert.ok(
      reasons.some((r) => /EXPIRED/i.test(r)),
      reasons.join('\n'),
    );
  } finally {
    await g.gw.close();
    for (const s of Object.values(servers)) await s.close();
  }
});

test('a host that must be intercepted is refused when the gateway has no CA (never silently tunnelled)', async () => {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['api.test']));
  const g = await gateway(
    {
      intercept: ['api.test'],
      allow: [{ host: 'api.test', ports: [up.port] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [up.port] }],
    },
    { map: { 'api.test': '127.0.0.1' } },
  );
  try {
    const r = await run('curl', ['-sS', '--max-time', '10', '-x', g.url, '-k', `https://api.test:${up.port}/`]);
    assert.notEqual(r.code, 0);
    assert.equal(up.seen.length, 0);
    assert.ok(requests(g.events).some((e) => e.rule === 'builtin.intercept-unavailable' && e.decision === 'deny'));
  } finally {
    await g.gw.close();
    await up.close();
  }
});
