import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import { webcrypto, createPrivateKey } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';

// Test-only PKI (the upstream servers' CA and leaves, including broken ones: expired,
// wrong name, untrusted), made with the same maintained library as the gateway CA.

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface TestPki {
  caPem: string;
  leaf(names: string[], o?: { notBefore?: Date; notAfter?: Date }): Promise<{ cert: string; key: string }>;
}

export async function testPki(cn = 'upstream test CA'): Promise<TestPki> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 2 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return {
    caPem: ca.toString('pem'),
    async leaf(names, o = {}) {
      const lk = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: Math.floor(Math.random() * 1e9)
          .toString(16)
          .padStart(8, '1'),
        subject: `CN=${names[0]}`,
        issuer: ca.subject,
        notBefore: o.notBefore ?? new Date(Date.now() - DAY),
        notAfter: o.notAfter ?? new Date(Date.now() + DAY),
        signingAlgorithm: ALG,
        publicKey: lk.publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: 'dns' as const, value: n }))),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        ],
      });
      const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', lk.privateKey));
      return {
        cert: cert.toString('pem'),
        key: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
          format: 'pem',
          type: 'pkcs8',
        }) as string,
      };
    },
  };
}

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** An HTTPS server on 127.0.0.1 that records every request and answers with `answer` (default: echo of method, url, authorization). */
export async function httpsServer(
  tls: { cert: string; key: string },
  answer?: (s: Seen, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer({ ...tls }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(s);
      if (answer) {
        answer(s, res);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'x-echo-auth': String(req.headers.authorization ?? '') });
      res.end(`${s.method} ${s.url} auth=${req.headers.authorization ?? ''}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as { port: number }).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
