import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemResolver } from '../../src/egress/index.ts';
import { gateway, requests, curl, run, testCa, waitFor, realRegistryReachable, type TestGateway } from './helpers.ts';

// Allowed traffic really flows through the gateway, end to end, with real clients:
// curl over TLS to a server with the test's own CA reached by name, git clone from
// git http-backend, npm install from a registry-like server; and from the real npm
// registry when this machine reaches it.

const servers: Server[] = [];
let g: TestGateway;
let httpsPort = 0;
let gitPort = 0;
let regPort = 0;
let ca: ReturnType<typeof testCa>;
const work = mkdtempSync(join(tmpdir(), 'airlock-egress-flow-'));

async function listen(s: Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

function gitBackend(root: string): Server {
  return createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.slice(1),
        REQUEST_METHOD: req.method,
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_ADDR: '127.0.0.1',
        GIT_HTTP_MAX_REQUEST_BUFFER: '10M',
      },
    });
    req.pipe(cgi.stdin);
    const chunks: Buffer[] = [];
    cgi.stdout.on('data', (d) => chunks.push(d));
    cgi.on('close', () => {
      const out = Buffer.concat(chunks);
      const sep = out.indexOf('\r\n\r\n') >= 0 ? out.indexOf('\r\n\r\n') : out.indexOf('\n\n');
      const headText = out.subarray(0, sep).toString();
      const body = out.subarray(sep + (out[sep] === 0x0d ? 4 : 2));
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of headText.split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = parseInt(v, 10);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.end(body);
    });
  });
}

before(async () => {
  ca = testCa(['secure.test']);
  httpsPort = await listen(
    createHttpsServer({ cert: ca.cert, key: ca.key }, (_q, s) => s.end('hello over tls')) as unknown as Server,
  );
  // a bare repository with one commit
  const src = join(work, 'src');
  mkdirSync(src);
  const git = (args: string[], cwd: string) =>
    execFileSync('git', args, { cwd, stdio: 'pipe', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: work } });
  git(['init', '-q', '-b', 'main'], src);
  writeFileSync(join(src, 'README'), 'cloned through the gateway\n');
  git(['add', 'README'], src);
  git(['-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-qm', 'one'], src);
  mkdirSync(join(work, 'git'));
  git(['clone', '-q', '--bare', src, join(work, 'git', 'repo.git')], work);
  gitPort = await listen(gitBackend(join(work, 'git')));
  // a registry-like server with one package
  const pkg = join(work, 'pkg', 'package');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: 'airlock-demo', version: '1.0.0', main: 'index.js' }),
  );
  writeFileSync(join(pkg, 'index.js'), 'module.exports = "installed through the gateway";\n');
  execFileSync('tar', ['czf', join(work, 'demo.tgz'), '-C', join(work, 'pkg'), 'package']);
  const tgz = readFileSync(join(work, 'demo.tgz'));
  regPort = await listen(
    createServer((req, res) => {
      if (req.url === '/airlock-demo') {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            name: 'airlock-demo',
            'dist-tags': { latest: '1.0.0' },
            versions: {
              '1.0.0': {
                name: 'airlock-demo',
                version: '1.0.0',
                dist: {
                  tarball: `http://registry.test:${regPort}/airlock-demo/-/airlock-demo-1.0.0.tgz`,
                  shasum: createHash('sha1').update(tgz).digest('hex'),
                  integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}`,
                },
              },
            },
          }),
        );
      } else if (req.url === '/airlock-demo/-/airlock-demo-1.0.0.tgz') res.end(tgz);
      else {
        res.statusCode = 404;
        res.end('{}');
      }
    }),
  );
  g = await gateway(
    {
      allow: [
        { host: 'secure.test', ports: [httpsPort], schemes: ['https'] },
        { host: 'git.test', ports: [gitPort], schemes: ['http'] },
        { host: 'registry.test', ports: [regPort], schemes: ['http'], methods: ['GET'] },
      ],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [httpsPort, gitPort, regPort] }],
    },
    { map: { 'secure.test': '127.0.0.1', 'git.test': '127.0.0.1', 'registry.test': '127.0.0.1' } },
  );
});
after(async () => {
  await g.gw.close();
  for (const s of servers) s.close();
});

test('curl reaches a local HTTPS server by name through CONNECT, verified by the test CA; bytes are recorded', async () => {
  const r = await curl(['-x', g.url, '--cacert', ca.ca, `https://secure.test:${httpsPort}/`]);
  assert.equal(r.status, 200, r.stderr);
  assert.equal(r.body, 'hello over tls');
  const ev = await waitFor(
    () => requests(g.events).find((e) => (e.data as { host: string }).host === 'secure.test' && e.decision === 'allow'),
    'tunnel event',
  );
  assert.ok(ev, 'allowed request recorded');
  const d = ev.data as Record<string, unknown>;
  assert.equal(d.scheme, 'https');
  assert.equal(d.address, '127.0.0.1');
  assert.equal(d.port, httpsPort);
  assert.equal(d.protocol, 'connect');
  assert.equal(d.relay, 'native');
  assert.ok((d.bytesUp as number) > 100 && (d.bytesDown as number) > 100);
  assert.equal(typeof d.durationMs, 'number');
  // the same through SOCKS5 (socks5h: the gateway resolves the name)
  const s = await curl([
    '--socks5-hostname',
    `127.0.0.1:${g.port}`,
    '--cacert',
    ca.ca,
    `https://secure.test:${httpsPort}/`,
  ]);
  assert.equal(s.body, 'hello over tls', s.stderr);
});

test('git clone over HTTP from git http-backend works through the proxy', async () => {
  const dest = join(work, 'clone');
  const r = await run(
    'git',
    ['-c', `http.proxy=${g.url}`, 'clone', '-q', `http://git.test:${gitPort}/repo.git`, dest],
    { env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: work } },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(dest, 'README'), 'utf8'), 'cloned through the gateway\n');
  await waitFor(
    () =>
      requests(g.events)
        .filter((e) => (e.data as { host: string }).host === 'git.test')
        .some(
          (e) =>
            (e.data as { method: string }).method === 'POST' &&
            String((e.data as { path: string }).path).endsWith('git-upload-pack'),
        ),
    'git upload-pack request recorded',
  );
});

test('npm install from a local registry works through the proxy; a method the rule does not grant is refused', async () => {
  const proj = join(work, 'proj');
  mkdirSync(proj);
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', private: true }));
  const r = await run(
    'npm',
    [
      'install',
      'airlock-demo',
      `--registry=http://registry.test:${regPort}/`,
      `--proxy=${g.url}`,
      `--https-proxy=${g.url}`,
      '--no-audit',
      '--no-fund',
      '--cache',
      join(work, 'npm-cache'),
      '--userconfig',
      join(work, 'npmrc'),
    ],
    { cwd: proj, timeout: 120_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(proj, 'node_modules', 'airlock-demo', 'index.js')));
  const put = await curl(['-x', g.url, '-X', 'PUT', '--data', 'x', `http://registry.test:${regPort}/airlock-demo`]);
  assert.equal(put.status, 403);
  assert.equal(put.headers['x-airlock-rule'], 'egress.default-deny');
});

test('npm install from the real registry (granted 203.0.113.0/24 explicitly), when this machine reaches it', async (t) => {
  if (!(await realRegistryReachable(t))) return;
  // the plain tunnel path (no CA here): the package firewall, which intercepts registries, has its own tests
  const real = await gateway(
    {
      presets: ['npm'],
      allowCidrs: [{ id: 'registry-net', cidr: '203.0.113.0/24', ports: [443] }],
      packages: { mode: 'off' },
    },
    { resolver: systemResolver() },
  );
  try {
    const proj = join(work, 'real');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', private: true }));
    const r = await run(
      'npm',
      [
        'install',
        'is-number@7.0.0',
        '--registry=https://registry.npmjs.org/',
        `--proxy=${real.url}`,
        `--https-proxy=${real.url}`,
        '--no-audit',
        '--no-fund',
        '--cache',
        join(work, 'npm-cache-real'),
        '--userconfig',
        join(work, 'npmrc'),
      ],
      { cwd: proj, timeout: 120_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(proj, 'node_modules', 'is-number', 'package.json')));
    await waitFor(
      () =>
        requests(real.events).some(
          (e) =>
            e.decision === 'allow' &&
            e.rule === 'egress.preset.npm' &&
            (e.data as { range: string }).range === 'documentation',
        ),
      'recorded registry tunnel',
    );
  } finally {
    await real.gw.close();
  }
});
