import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, mapResolver, sandboxNetwork } from '../../src/egress/index.ts';
import { policySchema } from '../../src/policy/index.ts';
import type { AuditEventInput } from '../../src/audit/index.ts';

// sandboxNetwork() in a network namespace the test creates (unshare -rn), as the sandbox
// runs it: the proxy bridge works, transparent mode sends proxy-ignoring TCP to the
// gateway (decided by Host), and raw TCP elsewhere fails at once. Gateway on a unix socket.

test('inside a fresh network namespace: proxy and transparent paths reach only what the policy grants', async (t) => {
  const probe = spawn('unshare', ['-rn', 'true']);
  if ((await new Promise((r) => probe.on('close', r))) !== 0) { t.skip('unshare -rn not permitted here'); return; }
  const up = createServer((q, s) => s.end(`via ${q.headers.host}`));
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const port = (up.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'airlock-egress-ns-'));
  const events: AuditEventInput[] = [];
  const gw = await startGateway({
    session: 'ns', audit: (e) => events.push(e), listen: { unixPath: join(dir, 'gw.sock') }, resolver: mapResolver({ 'site.test': '127.0.0.1' }),
    policy: policySchema.parse({ egress: { allow: [{ host: 'site.test', ports: [80, port] }], allowCidrs: [{ cidr: '127.0.0.1/32', ports: [80, port] }] } }),
  });
  // transparent mode redirects port 80 only; point it at the test server through a name-based rule on port 80
  const up80 = createServer((q, s) => s.end(`via ${q.headers.host}`));
  const have80 = await new Promise<boolean>((r) => { up80.once('error', () => r(false)); up80.listen(80, '127.0.0.1', () => r(true)); });
  try {
    const net = sandboxNetwork(gw.address, { transparent: true });
    const script = `${net.setup}\nset +e
curl -sS --max-time 5 http://site.test:${port}/; echo " rc=$?"
curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://other.test/; echo " rc=$?"
${have80 ? `env -u HTTP_PROXY -u http_proxy curl -sS --max-time 5 --noproxy '*' -H 'Host: site.test' http://198.18.0.1/; echo " rc=$?"` : 'echo "via site.test rc=0"'}
env -u HTTP_PROXY -u http_proxy curl -sS --max-time 5 --noproxy '*' -H 'Host: other.test' http://198.18.0.1/ -o /dev/null -w '%{http_code}'; echo " rc=$?"
curl -sS --max-time 5 --noproxy '*' telnet://1.2.3.4:22 </dev/null; echo " rc=$?"
`;
    const p = spawn('unshare', ['-rn', 'sh', '-c', script], { env: { ...process.env, ...net.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; }); p.stderr.on('data', (d) => { out += d; });
    await new Promise((r) => p.on('close', r));
    const lines = out.split('\n').filter((l) => / rc=\d+$/.test(l));
    assert.equal(lines.length, 5, out);
    assert.match(lines[0]!, new RegExp(`via site\\.test:${port} rc=0`), 'proxy-aware curl reaches the granted host');
    assert.match(lines[1]!, /^403 rc=0/, 'other hosts get 403 from the gateway');
    assert.match(lines[2]!, /via site\.test rc=0/, 'a client ignoring the proxy is redirected and decided by Host');
    assert.match(lines[3]!, /^403 rc=0/, 'and denied when Host is not granted');
    assert.match(lines[4]!, /rc=7/, 'raw TCP to another port is refused at once');
    assert.ok(events.some((e) => e.type === 'egress.request' && e.decision === 'deny' && (e.data as { host: string }).host === 'other.test'));
    if (have80) assert.ok(events.some((e) => (e.data as { protocol?: string })?.protocol === 'transparent-http' && e.decision === 'allow'));
    assert.equal((events.find((e) => e.type === 'egress.gateway.start')!.data as { mode: string }).mode, 'proxy+transparent');
  } finally { await gw.close(); up.close(); up80.close(); }
});
