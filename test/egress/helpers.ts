import { execFile, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEventInput } from '../../src/audit/index.ts';
import { policySchema, type PolicyInput } from '../../src/policy/index.ts';
import { startGateway, mapResolver, type Gateway, type GatewayOptions, type Resolver } from '../../src/egress/index.ts';

// Shared by the egress tests: a real gateway on loopback, an event collector, curl run
// asynchronously (the gateway lives in the test process), a test CA, a tiny DNS server.

export interface TestGateway {
  gw: Gateway;
  events: AuditEventInput[];
  port: number;
  host: string;
  url: string;
}

export async function gateway(
  egress: PolicyInput['egress'],
  o: Partial<GatewayOptions> & { map?: Record<string, string | string[]> } = {},
): Promise<TestGateway> {
  const events: AuditEventInput[] = [];
  const resolver: Resolver = o.resolver ?? mapResolver(o.map ?? {});
  const gw = await startGateway({
    session: 'test',
    policy: policySchema.parse({ egress }),
    audit: (e) => events.push(e),
    listen: { host: '127.0.0.1', port: 0 },
    ...o,
    resolver,
  });
  const [host, port] = [
    gw.address.slice(0, gw.address.lastIndexOf(':')),
    Number(gw.address.slice(gw.address.lastIndexOf(':') + 1)),
  ];
  return { gw, events, host, port, url: `http://${gw.address}` };
}

export function requests(events: AuditEventInput[]): AuditEventInput[] {
  return events.filter((e) => e.type === 'egress.request');
}

export async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (let i = 0; i < 10_000; i++) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        encoding: 'utf8',
        timeout: opts.timeout ?? 30_000,
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        maxBuffer: 32 << 20,
      },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** curl -i through the gateway as an HTTP proxy; returns status, headers (lower-case) and body. */
export async function curl(
  args: string[],
): Promise<{ status: number; headers: Record<string, string>; body: string; code: number; stderr: string }> {
  const r = await run('curl', ['-sS', '-i', '--max-time', '20', '--noproxy', '', ...args]);
  // the last response block (after a CONNECT 200 there is a second one)
  const blocks = r.stdout.split(/\r\n\r\n/);
  let status = 0;
  const headers: Record<string, string> = {};
  let body = '';
  for (let i = 0; i < blocks.length; i++) {
    const m = /^HTTP\/[\d.]+ (\d+)/.exec(blocks[i]!);
    if (!m) continue;
    status = Number(m[1]);
    for (const k of Object.keys(headers)) delete headers[k];
    for (const line of blocks[i]!.split('\r\n').slice(1)) {
      const j = line.indexOf(':');
      if (j > 0) headers[line.slice(0, j).toLowerCase()] = line.slice(j + 1).trim();
    }
    body = blocks.slice(i + 1).join('\r\n\r\n');
  }
  return { status, headers, body, code: r.code, stderr: r.stderr };
}

/** Sends raw bytes to the gateway and collects what comes back until it closes (or ms passes). */
export function raw(port: number, data: Buffer | string | (Buffer | string)[], ms = 3000, gapMs = 0): Promise<Buffer> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const t = setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    }, ms);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    });
    const parts = Array.isArray(data) ? data : [data];
    s.on('connect', async () => {
      for (const p of parts) {
        if (s.destroyed) break;
        s.write(p);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** A throwaway CA and a leaf for `names`, made with the openssl CLI. */
export function testCa(names: string[]): { dir: string; ca: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-egress-ca-'));
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=airlock egress test CA',
  ]);
  o([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'leaf.key',
    '-out',
    'leaf.csr',
    '-subj',
    `/CN=${names[0]}`,
  ]);
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
  o([
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'leaf.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  ]);
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    cert: readFileSync(join(dir, 'leaf.pem'), 'utf8'),
    key: readFileSync(join(dir, 'leaf.key'), 'utf8'),
  };
}

/**
 * A minimal authoritative DNS server on loopback (UDP), our own packet code: answers A
 * queries from `zone`, NXDOMAIN otherwise. Used to prove the gateway classifies what a
 * name really resolves to.
 */
export async function dnsServer(
  zone: Record<string, string>,
): Promise<{ address: string; queries: string[]; close(): void }> {
  const sock = createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    let p = 12;
    const labels: string[] = [];
    while (p < msg.length && msg[p]! > 0 && labels.length < 64) {
      labels.push(msg.subarray(p + 1, p + 1 + msg[p]!).toString('latin1'));
      p += 1 + msg[p]!;
    }
    const qEnd = p + 5;
    if (qEnd > msg.length) return;
    const name = labels.join('.').toLowerCase();
    const qtype = msg.readUInt16BE(p + 1);
    queries.push(name);
    const ip = zone[name];
    const answer = ip && qtype === 1;
    const head = Buffer.alloc(12);
    msg.copy(head, 0, 0, 2); // id
    head.writeUInt16BE(0x8400 | (ip ? 0 : 3), 2); // response, authoritative, NXDOMAIN when unknown
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(answer ? 1 : 0, 6);
    const question = msg.subarray(12, qEnd);
    const parts = [head, question];
    if (answer) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((x, i) => rr.writeUInt8(Number(x), 12 + i));
      parts.push(rr);
    }
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${sock.address().port}`, queries, close: () => sock.close() };
}

/** A CONNECT tunnel through the gateway, resolved once the 200 arrived (bytes after it are kept). */
export function connectTunnel(port: number, target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
    );
    s.on('error', reject);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.pause();
      if (!/^HTTP\/1\.1 200/.test(buf.toString('latin1'))) {
        reject(new Error(buf.toString('latin1')));
        return;
      }
      if (buf.length > end + 4) s.unshift(buf.subarray(end + 4));
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** Whether the public npm registry answers from this machine; skips the test (saying why) when not. */
export async function realRegistryReachable(t: { skip(why: string): void }): Promise<boolean> {
  const probe = await run('curl', [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '--max-time',
    '8',
    'https://registry.npmjs.org/is-number',
  ]);
  if (probe.code === 0 && probe.stdout === '200') return true;
  const why = `registry.npmjs.org not reachable from this machine (${probe.stderr.trim() || probe.stdout})`;
  process.stdout.write(`# skipped: ${why}\n`);
  t.skip(why);
  return false;
}
