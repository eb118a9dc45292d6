import { closeSync, constants, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { GatewayCa } from './ca.ts';

// What a sandbox needs to trust the gateway CA: one PEM bundle (the host's system roots
// plus Airlock's CA, public material only) and the variables that make common clients use
// it. The bundle is written on the host; the session mounts it read-only at
// SANDBOX_CA_BUNDLE, over the distribution's own bundle, so clients that ignore the
// variables trust it too.

export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** Where the bundle appears inside the sandbox. */
export const SANDBOX_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
export const BUNDLE_FILE = 'airlock-ca-bundle.pem';

/** The host's trust store as PEM (system bundle; Node's bundled roots when there is none). */
export function systemRoots(path = SYSTEM_CA_BUNDLE): string {
  try {
    const t = readFileSync(path, 'utf8');
    if (t.includes('-----BEGIN CERTIFICATE-----')) return t.endsWith('\n') ? t : t + '\n';
  } catch {
    /* no system bundle */
  }
  return rootCertificates.join('\n') + '\n';
}

/** Upstream trust for the gateway: the host's system roots as a list of PEM certificates. */
export function hostTrustStore(path = SYSTEM_CA_BUNDLE): string[] {
  return (
    systemRoots(path).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [...rootCertificates]
  );
}

/** Writes `<dir>/airlock-ca-bundle.pem` (0644, atomically) and returns its host path. */
export function writeCaBundle(ca: GatewayCa, dir: string, systemBundle = SYSTEM_CA_BUNDLE): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, BUNDLE_FILE);
  const text = `${systemRoots(systemBundle)}\n# Airlock gateway CA (sha256 ${ca.fingerprint})\n${ca.certPem}`;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return path;
}

/** Variables that point common TLS clients at the bundle (path as seen inside the sandbox). */
export function caEnv(bundleInSandbox = SANDBOX_CA_BUNDLE): Record<string, string> {
  const p = bundleInSandbox;
  return {
    SSL_CERT_FILE: p, // OpenSSL, Python ssl, Go, Rust native-tls/openssl
    NODE_EXTRA_CA_CERTS: p,
    REQUESTS_CA_BUNDLE: p,
    CURL_CA_BUNDLE: p,
    GIT_SSL_CAINFO: p,
    PIP_CERT: p,
    npm_config_cafile: p,
    DENO_CERT: p,
    AWS_CA_BUNDLE: p,
    CARGO_HTTP_CAINFO: p,
    YARN_CA_FILE_PATH: p,
    GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: p,
    AIRLOCK_CA_BUNDLE: p,
  };
}
