// Credential broker / TLS interception benchmark: the latency an intercepted request adds
// over a tunnelled one, through the same gateway, same upstream, interleaved in one run.
// Two measures per path: a request on a new connection (CONNECT + TLS handshake(s) + GET),
// and a request on a kept-alive connection. The intercepted path also swaps a brokered
// credential's placeholder for the real value. Gateway in its own process.
//   node bench/broker.ts [--n N] [--no-write]
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSection, median, percentile } from './report.ts';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

if (process.argv[2] === '--serve-gateway') {
  const { startGateway, mapResolver, loadOrCreateCa, Broker } = await import('../src/egress/index.ts');
  const { policySchema } = await import('../src/policy/index.ts');
  const [port, home, upCaFile] = [Number(process.argv[3]), process.argv[4]!, process.argv[5]!];
  const policy = policySchema.parse({
    egress: {
      allow: [
        { host: 'tun.test', ports: [port] },
        { host: 'icp.test', ports: [port] },
      ],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
      intercept: ['icp.test'],
      limits: { maxConnections: 10_000, requestsPerMinute: 1_000_000, maxUploadBytes: 2 ** 40 },
    },
    credentials: {
      brokered: [{ name: 'TOKEN', source: { env: 'REAL_TOKEN' }, destinations: [{ host: 'icp.test', port }] }],
    },
  });
  const broker = new Broker(
    policy.credentials.brokered,
    { REAL_TOKEN: 'real-token-value-0123456789' },
    { session: 'bench' },
  );
  const ca = await loadOrCreateCa({ keysDir: join(home, 'keys') });
  const gw = await startGateway({
    session: 'bench',
    audit: () => undefined,
    listen: { host: '127.0.0.1', port: 0 },
    resolver: mapResolver({ 'tun.test': '127.0.0.1', 'icp.test': '127.0.0.1' }),
    policy,
    broker,
    tls: { ca, upstreamCa: [readFileSync(upCaFile, 'utf8')] },
  });
  process.stdout.write(
    JSON.stringify({ address: gw.address, ca: ca.certPem, placeholder: broker.credentials[0]!.placeholder }) + '\n',
  );
  process.stdin.resume();
  process.stdin.on('end', () => {
    void gw.close().then(() => process.exit(0));
  });
} else {
  const N = arg('--n', 300);
  const { testPki, httpsServer } = await import('../test/egress/pki.ts');
  const pki = await testPki('bench upstream CA');
  const up = await httpsServer(await pki.leaf(['tun.test', 'icp.test']), (_s, res) => {
    res.writeHead(200, { 'content-length': '2' });
    res.end('ok');
  });
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-broker-'));
  writeFileSync(join(dir, 'up-ca.pem'), pki.caPem);
  const child = spawn(
    process.execPath,
    [import.meta.filename, '--serve-gateway', String(up.port), dir, join(dir, 'up-ca.pem')],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const info = JSON.parse(
    await new Promise<string>((r) => {
      let b = '';
      child.stdout!.on('data', (d) => {
        b += d;
        if (b.includes('\n')) r(b);
      });
    }),
  ) as { address: string; ca: string; placeholder: string };
  const gwPort = Number(info.address.split(':')[1]);
  const ca = [pki.caPem, info.ca];

  type Path = 'tunnel' | 'intercepted';
  const host = (p: Path) => (p === 'tunnel' ? 'tun.test' : 'icp.test');
  function open(p: Path): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port: gwPort, noDelay: true }, () =>
        s.write(`CONNECT ${host(p)}:${up.port} HTTP/1.1\r\nHost: ${host(p)}:${up.port}\r\n\r\n`),
      );
      s.on('error', reject);
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('latin1');
        if (!buf.includes('\r\n\r\n')) return;
        s.off('data', onData);
        if (!/^HTTP\/1\.1 200/.test(buf)) {
          reject(new Error(buf.split('\r\n')[0]));
          return;
        }
        const t = tlsConnect({ socket: s, servername: host(p), ca, ALPNProtocols: ['http/1.1'] }, () => resolve(t));
        t.on('error', reject);
      };
      s.on('data', onData);
    });
  }
  function get(t: TLSSocket, p: Path): Promise<void> {
    return new Promise((resolve, reject) => {
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n') && (buf.endsWith('\r\n\r\nok') || buf.endsWith('ok\r\n0\r\n\r\n'))) {
          t.off('data', onData);
          resolve();
        }
      };
      t.on('data', onData);
      if (t.listenerCount('error') < 2) t.once('error', reject);
      t.write(
        `GET /x HTTP/1.1\r\nHost: ${host(p)}:${up.port}\r\nAuthorization: Bearer ${info.placeholder}\r\nConnection: keep-alive\r\n\r\n`,
      );
    });
  }
  const fresh: Record<Path, number[]> = { tunnel: [], intercepted: [] };
  const kept: Record<Path, number[]> = { tunnel: [], intercepted: [] };
  const conns: Record<Path, TLSSocket> = { tunnel: await open('tunnel'), intercepted: await open('intercepted') };
  const paths: Path[] = ['tunnel', 'intercepted'];
  for (let i = 0; i < 30; i++)
    for (const p of paths) {
      const t = await open(p);
      await get(t, p);
      t.destroy();
      await get(conns[p], p);
    } // warm-up
  for (let i = 0; i < N; i++) {
    for (const p of i % 2 ? paths : [...paths].reverse()) {
      let t0 = process.hrtime.bigint();
      const t = await open(p);
      await get(t, p);
      fresh[p].push(Number(process.hrtime.bigint() - t0) / 1e6);
      t.destroy();
      t0 = process.hrtime.bigint();
      await get(conns[p], p);
      kept[p].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  for (const p of paths) conns[p].destroy();
  child.stdin!.end();
  await up.close();
  const f = (x: number) => x.toFixed(2);
  const row = (what: string, r: Record<Path, number[]>) => {
    const [mt, mi] = [median(r.tunnel), median(r.intercepted)];
    const [pt, pi] = [percentile(r.tunnel, 95), percentile(r.intercepted, 95)];
    return `| ${what} | ${f(mt)} | ${f(mi)} | +${f(mi - mt)} | ${f(pt)} | ${f(pi)} | +${f(pi - pt)} |`;
  };
  const md = `## Credential broker: intercepted vs tunnelled request latency

\`node bench/broker.ts --n ${N}\` — one gateway process, one local HTTPS upstream, ${N} samples per path, interleaved.
"Intercepted" terminates TLS with a leaf minted by Airlock's CA, parses the request, decides it
(method/path rules), swaps the brokered placeholder for the real value, and forwards it over a
verified TLS connection; "tunnelled" is the end-to-end CONNECT tunnel. Times in ms.

| request | tunnel median | intercepted median | added | tunnel p95 | intercepted p95 | added p95 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${row('new connection (CONNECT + TLS + GET)', fresh)}
${row('kept-alive connection (GET)', kept)}
`;
  console.log(md);
  if (!process.argv.includes('--no-write')) writeSection('broker', md);
  process.exit(0);
}
