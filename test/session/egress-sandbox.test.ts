// The egress gateway wired into a real session: from inside the sandbox (bubblewrap, and
// gVisor, whose in-sandbox bridge reaches the gateway's unix socket), proxy-aware tools
// reach exactly what the policy grants; everything else is refused with the rule, and
// every attempt is in the audit log. Only loopback servers the test starts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/session/index.ts';
import { makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';

let home: string;
let repo: string;
let server: Server;
let port = 0;
let other: Server;
let otherPort = 0;
const hits: string[] = [];
let session: Session;

for (const runtime of ['bwrap', 'gvisor'] as const) {
  describe(
    `egress from inside a sandbox session (${runtime})`,
    { skip: runtime === 'gvisor' && privilegedSkip(!isRoot && 'gVisor (runsc) needs root') },
    () => {
      before(async () => {
        home = tmp('airlock-home-');
        repo = makeRepo();
        server = createServer((req, res) => {
          hits.push(`${req.method} ${req.url}`);
          res.end('hello from the granted host\n');
        });
        other = createServer((req, res) => {
          hits.push(`OTHER ${req.url}`);
          res.end('should never be reached\n');
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
        port = (server.address() as { port: number }).port;
        otherPort = (other.address() as { port: number }).port;
        const pf = join(home, 'policy.yaml');
        writeFileSync(
          pf,
          `sandbox:\n  runtime: ${runtime}\negress:\n  allow:\n    - id: local-dev\n      host: localhost\n      ports: [${port}]\n      schemes: [http]\n  allowCidrs:\n    - id: loopback-dev\n      cidr: 127.0.0.1/32\n      ports: [${port}]\n`,
        );
        session = await Session.open({ repo, home, policyFile: pf });
      });
      after(async () => {
        await session.stop('test');
        server.close();
        other.close();
        cleanup(home, repo);
      });

      it('the network mode is recorded as gateway', () => {
        assert.equal(session.mechanisms.network, 'gateway');
        assert.equal(session.mechanisms.driver, runtime === 'bwrap' ? 'bubblewrap' : 'gvisor');
      });

      it('a granted host is reachable through the proxy', async () => {
        const r = await session.run(['curl', '-sS', '-m', '10', '--noproxy', '', `http://localhost:${port}/granted`]); // NO_PROXY lists localhost: force the proxy
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, 'hello from the granted host\n');
        assert.ok(hits.includes('GET /granted'));
      });

      it('an ungranted port on the same host, a metadata address and a public name are refused with the rule', async () => {
        const r = await session.run([
          'bash',
          '-c',
          `for u in http://localhost:${otherPort}/x http://169.254.169.254/latest/meta-data/ http://example.com/; do curl -s --noproxy '' -o /dev/null -D - -m 10 "$u" | grep -i -E '^(HTTP|x-airlock-rule)'; done`,
        ]);
        const rules = [...r.stdout.matchAll(/x-airlock-rule: (\S+)/gi)].map((m) => m[1]);
        assert.equal(rules.length, 3, r.stdout + r.stderr);
        assert.match(r.stdout, /HTTP\/1\.1 403/);
        assert.ok(!hits.some((h) => h.startsWith('OTHER')), 'ungranted server was reached');
        const ev = session.store.query({ session: session.id, type: 'egress.*' });
        assert.ok(
          ev.some(
            (e) => e.decision === 'deny' && String(e.data.host ?? e.data.target ?? '').includes('169.254.169.254'),
          ),
          'metadata attempt recorded',
        );
        assert.ok(
          ev.some((e) => e.decision === 'allow' && e.rule?.includes('local-dev')),
          'allowed request names its rule',
        );
      });

      it('a program that ignores the proxy gets nothing but the gateway', async () => {
        const r = await session.run([
          'curl',
          '-sS',
          '-m',
          '5',
          '--noproxy',
          '*',
          `http://127.0.0.1:${otherPort}/direct`,
        ]);
        assert.notEqual(r.status, 0);
        assert.ok(!hits.includes('OTHER /direct'));
      });
    },
  );
}
