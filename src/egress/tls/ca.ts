import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import {
  constants,
  closeSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { join } from 'node:path';
import { AirlockError } from '../../common/index.ts';

// Airlock's own certificate authority for the gateway's opt-in TLS interception. Created on
// first use with a maintained X.509 library (@peculiar/x509 over WebCrypto, ECDSA P-256):
// the private key lives in <AIRLOCK_HOME>/keys/gateway-ca.key (mode 0600, with the CA
// certificate after it), a directory no sandbox ever sees. A key file that group or others
// can read, that is a symlink, or that another user owns is refused. Per-host leaf
// certificates are minted on demand, cached in memory and on disk (keys/gateway-leaves/).

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const CA_KEY_FILE = 'gateway-ca.key';
const LEAF_DIR = 'gateway-leaves';
const CA_YEARS = 10;
const LEAF_DAYS = 30;
/** A cached leaf with less than this left is re-minted. */
const LEAF_RENEW_MS = 3 * 86_400_000;

export interface Leaf {
  host: string;
  certPem: string;
  keyPem: string;
  notAfter: Date;
  context: SecureContext;
}

export interface GatewayCa {
  /** PEM of the CA certificate (public). */
  certPem: string;
  /** Where the key lives on the host (never mounted into a sandbox). */
  keyPath: string;
  /** SHA-256 fingerprint of the CA certificate (hex), for audit events. */
  fingerprint: string;
  /** A TLS server context for host (DNS name or IP literal), minted or from the cache. */
  leaf(host: string): Promise<Leaf>;
}

function pem(label: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10; // positive, no leading zero byte
  return b.toString('hex');
}

function assertPrivate(
  path: string,
  st: { mode: number; uid: number; isFile(): boolean; isSymbolicLink?(): boolean },
  what: string,
): void {
  if (st.isSymbolicLink?.() || !st.isFile()) {
    throw new AirlockError(
      'BAD_STATE',
      `${what} ${path} is not a regular file`,
      `remove it (${path}); Airlock creates a new one`,
    );
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new AirlockError(
      'BAD_STATE',
      `${what} ${path} belongs to uid ${st.uid}, not to this user (${uid})`,
      `remove it or run Airlock as its owner`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new AirlockError(
      'BAD_STATE',
      `${what} ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`,
      `run: chmod 600 ${path} (and delete it so a new CA is made if others may have read it)`,
    );
  }
}

/** Reads a private file with O_NOFOLLOW and checks owner and mode on the open descriptor. */
function readPrivate(path: string, what: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP')
      throw new AirlockError(
        'BAD_STATE',
        `${what} ${path} is a symlink`,
        `remove it (${path}); Airlock creates a new one`,
      );
    throw e;
  }
  try {
    assertPrivate(path, fstatSync(fd), what);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Writes a new private file atomically: temp file (0600, O_EXCL) then link(); false when one exists already. */
function publishPrivate(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
  }
}

function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw new AirlockError('BAD_STATE', `${dir} is not a directory`, `remove it; Airlock recreates it`);
  if ((st.mode & 0o022) !== 0)
    throw new AirlockError(
      'BAD_STATE',
      `${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
      `run: chmod 700 ${dir}`,
    );
}

async function importKey(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

function splitPem(text: string, path: string): { keyPem: string; certPem: string } {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(text)?.[0];
  if (!key || !cert)
    throw new AirlockError(
      'BAD_STATE',
      `${path} does not hold a private key and a certificate`,
      `remove it; Airlock creates a new CA (sandboxes pick it up at their next start)`,
    );
  return { keyPem: key.endsWith('\n') ? key : key + '\n', certPem: cert.endsWith('\n') ? cert : cert + '\n' };
}

async function createCaText(): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const host = (process.env.HOSTNAME ?? '').replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Airlock gateway CA${host ? ` ${host}` : ''} ${new Date(now).toISOString().slice(0, 10)}, O=Airlock`,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + CA_YEARS * 365 * 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return pem('PRIVATE KEY', pkcs8) + cert.toString('pem') + '\n';
}

export interface CaOptions {
  /** The keys directory (<AIRLOCK_HOME>/keys). */
  keysDir: string;
}

/** The CA that signs leaves, and where their cache files go. */
interface Issuer {
  key: CryptoKey;
  cert: x509.X509Certificate;
  certPem: string;
  fingerprint: string;
  leafDir: string;
}

/** A host's leaf: from its cache file when that is still valid and signed by this CA, else a new one (cached). */
async function mintLeaf(issuer: Issuer, host: string): Promise<Leaf> {
  const file = join(issuer.leafDir, `${issuer.fingerprint.slice(0, 16)}-${host.replace(/[^a-z0-9.-]/g, '_')}.pem`);
  const cached = await cachedLeaf(issuer, host, file);
  if (cached) return cached;
  const caCert = issuer.cert;
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const notAfter = new Date(Math.min(now + LEAF_DAYS * 86_400_000, caCert.notAfter.getTime()));
  const ip = isIP(host) !== 0;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${ip ? host : host.slice(0, 64)}`,
    issuer: caCert.subject,
    notBefore: new Date(Math.min(now - 3_600_000, notAfter.getTime() - 3_600_000)),
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: issuer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: ip ? 'ip' : 'dns', value: host }]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const leafPem = cert.toString('pem') + '\n';
  writeLeafCache(file, keyPem + leafPem);
  return {
    host,
    keyPem,
    certPem: leafPem,
    notAfter,
    context: createSecureContext({ key: keyPem, cert: leafPem + issuer.certPem }),
  };
}

/** The cached leaf in `file` if it is far from expiry and signed by this CA; null otherwise. */
async function cachedLeaf(issuer: Issuer, host: string, file: string): Promise<Leaf | null> {
  const cached = readPrivate(file, 'gateway leaf key');
  if (cached === null) return null;
  try {
    const p = splitPem(cached, file);
    const c = new x509.X509Certificate(p.certPem);
    if (
      c.notAfter.getTime() - Date.now() > LEAF_RENEW_MS &&
      c.issuer === issuer.cert.subject &&
      (await c.verify({ publicKey: issuer.cert.publicKey, signatureOnly: true }))
    ) {
      return {
        host,
        ...p,
        notAfter: c.notAfter,
        context: createSecureContext({ key: p.keyPem, cert: p.certPem + issuer.certPem }),
      };
    }
  } catch {
    /* unusable: mint a new one */
  }
  return null;
}

/** Replaces the cache file atomically (rename over an old one; never write through a link); best effort. */
function writeLeafCache(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      /* not there */
    }
  }
}

/** Loads the gateway CA from keysDir, creating it on first use. */
export async function loadOrCreateCa(options: CaOptions): Promise<GatewayCa> {
  ensurePrivateDir(options.keysDir);
  const keyPath = join(options.keysDir, CA_KEY_FILE);
  let text = readPrivate(keyPath, 'gateway CA key');
  if (text === null) {
    publishPrivate(keyPath, await createCaText()); // false: another process won the race; use its CA
    text = readPrivate(keyPath, 'gateway CA key');
    if (text === null)
      throw new AirlockError('INTERNAL', `gateway CA key ${keyPath} vanished while being created`, 'retry');
  }
  const { keyPem, certPem } = splitPem(text, keyPath);
  let caKey: CryptoKey;
  let caCert: x509.X509Certificate;
  try {
    caKey = await importKey(keyPem);
    caCert = new x509.X509Certificate(certPem);
  } catch {
    throw new AirlockError(
      'BAD_STATE',
      `${keyPath} does not hold a usable ECDSA P-256 key and certificate`,
      `remove it; Airlock creates a new CA`,
    );
  }
  if (caCert.notAfter.getTime() < Date.now() + 86_400_000) {
    throw new AirlockError(
      'BAD_STATE',
      `the gateway CA in ${keyPath} expires ${caCert.notAfter.toISOString()}`,
      `remove ${keyPath} (and ${join(options.keysDir, LEAF_DIR)}); Airlock creates a new CA`,
    );
  }
  const fingerprint = Buffer.from(await caCert.getThumbprint('SHA-256')).toString('hex');
  const leafDir = join(options.keysDir, LEAF_DIR);
  ensurePrivateDir(leafDir);
  const cache = new Map<string, Promise<Leaf>>();

  const issuer: Issuer = { key: caKey, cert: caCert, certPem, fingerprint, leafDir };
  const mint = (host: string): Promise<Leaf> => mintLeaf(issuer, host);

  const leaf = (host: string): Promise<Leaf> => {
    const hit = cache.get(host);
    if (hit) {
      return hit.then((l) => {
        if (l.notAfter.getTime() - Date.now() > LEAF_RENEW_MS) return l;
        if (cache.get(host) === hit) cache.delete(host);
        return mintCached(host);
      });
    }
    return mintCached(host);
  };
  const mintCached = (host: string): Promise<Leaf> => {
    const p = mint(host);
    cache.set(host, p);
    p.catch(() => cache.delete(host));
    if (cache.size > 4096) cache.delete(cache.keys().next().value!); // bounded
    return p;
  };
  return { certPem, keyPath, fingerprint, leaf };
}
