import { closeSync, constants, lstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SecretsPolicy } from '../policy/index.ts';
import { fingerprint } from './types.ts';

// Decoy credentials planted in the sandbox: random per session, shaped like the real thing
// (GitHub/npm tokens carry a valid CRC32 checksum, the SSH key is a real OpenSSH ed25519
// key), worthless anywhere. Any use of one, or any attempt to send one out, is a critical
// finding: the caller keeps the list and hands it to the gateway and the detector.

export interface Honeytoken {
  kind: string;
  path: string;
  fingerprint: string;
  value: string;
}

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const rand = (alphabet: string, n: number) =>
  Array.from({ length: n }, () => alphabet[randomInt(alphabet.length)]).join('');

function base62(n: number, width: number): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = B62[n % 62] + s;
    n = Math.floor(n / 62);
  }
  return s;
}

/** GitHub/npm token format: prefix + 30 random base62 + base62(crc32(random)), 6 wide. */
export function checksummedToken(prefix: string): string {
  const body = rand(B62, 30);
  return `${prefix}${body}${base62(crc32(body), 6)}`;
}

export function awsKeyPair(): { id: string; secret: string } {
  return { id: `AKIA${rand(B32, 16)}`, secret: rand(B64, 40) };
}

function sshString(b: Buffer | string): Buffer {
  const v = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([len, v]);
}

/** A real ed25519 key in OpenSSH's private key format (what ssh-keygen writes). */
export function opensshEd25519(comment: string): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = Buffer.from(jwk.x!, 'base64url');
  const priv = Buffer.from(jwk.d!, 'base64url');
  const pubBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let sec = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([priv, pub])),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (sec.length + pad.length) % 8 !== 0; i++) pad.push(i);
  sec = Buffer.concat([sec, Buffer.from(pad)]);
  const one = Buffer.alloc(4);
  one.writeUInt32BE(1);
  const blob = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    one,
    sshString(pubBlob),
    sshString(sec),
  ]);
  const b64 = blob
    .toString('base64')
    .match(/.{1,70}/g)!
    .join('\n');
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${pubBlob.toString('base64')} ${comment}\n`,
  };
}

/** Creates dir (and parents below base) unless some component is not a real directory. */
function ensureDir(base: string, ...parts: string[]): string | null {
  let cur = base;
  for (const p of parts) {
    cur = join(cur, p);
    try {
      const st = lstatSync(cur);
      if (!st.isDirectory()) return null; // a symlink or a file: do not write through it
    } catch {
      mkdirSync(cur, { mode: 0o700 });
    }
  }
  return cur;
}

/** Exclusive create, no symlink following; false when something is already there. */
function writeNew(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch {
    return false;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

export function plantHoneytokens(
  homeDir: string,
  workspaceDir: string | null,
  policy: SecretsPolicy,
): { tokens: Honeytoken[] } {
  const tokens: Honeytoken[] = [];
  if (!policy.honeytokens.enabled) return { tokens };
  const add = (kind: string, path: string, value: string) =>
    tokens.push({ kind, path, value, fingerprint: fingerprint(value) });
  const kinds = new Set(policy.honeytokens.kinds);
  if (kinds.has('aws')) {
    const dir = ensureDir(homeDir, '.aws');
    const k = awsKeyPair();
    const path = dir && join(dir, 'credentials');
    if (
      path &&
      writeNew(
        path,
        `[default]\naws_access_key_id = ${k.id}\naws_secret_access_key = ${k.secret}\nregion = us-east-1\n`,
      )
    ) {
      add('aws-access-key-id', path, k.id);
      add('aws-secret-access-key', path, k.secret);
    }
  }
  if (kinds.has('npm')) {
    const t = checksummedToken('npm_');
    const path = join(homeDir, '.npmrc');
    if (writeNew(path, `//registry.npmjs.org/:_authToken=${t}\n`)) add('npm-token', path, t);
  }
  if (kinds.has('github')) {
    const t = checksummedToken('ghp_');
    const user = `dev-${rand(B62, 6).toLowerCase()}`;
    const cred = join(homeDir, '.git-credentials');
    if (writeNew(cred, `https://${user}:${t}@github.com\n`)) add('github-token', cred, t);
    const dir = ensureDir(homeDir, '.config', 'gh');
    const hosts = dir && join(dir, 'hosts.yml');
    if (
      hosts &&
      writeNew(hosts, `github.com:\n    oauth_token: ${t}\n    user: ${user}\n    git_protocol: https\n`) &&
      !tokens.some((x) => x.value === t)
    )
      add('github-token', hosts, t);
  }
  if (kinds.has('ssh')) {
    const dir = ensureDir(homeDir, '.ssh');
    const k = opensshEd25519(`dev@workstation-${rand(B62, 4).toLowerCase()}`);
    const path = dir && join(dir, 'id_ed25519');
    if (path && writeNew(path, k.privateKey)) {
      writeNew(`${path}.pub`, k.publicKey);
      add('ssh-private-key', path, k.privateKey.trim());
    }
  }
  if (kinds.has('env')) {
    const openai = `sk-proj-${rand(B62, 58)}T3BlbkFJ${rand(B62, 58)}`;
    const anthropic = `sk-ant-api03-${rand(B62 + '_-', 93)}AA`;
    const dbPass = rand(B62, 24);
    const stripe = `sk_live_${rand(B62, 99)}`;
    const body = `# local development\nOPENAI_API_KEY=${openai}\nANTHROPIC_API_KEY=${anthropic}\nDATABASE_URL=postgres://app:${dbPass}@db.internal:5432/app\nSTRIPE_SECRET_KEY=${stripe}\n`;
    let path: string | null = null;
    if (workspaceDir && writeNew(join(workspaceDir, '.env'), body)) path = join(workspaceDir, '.env');
    else if (writeNew(join(homeDir, '.env'), body)) path = join(homeDir, '.env');
    if (path) {
      add('openai-api-key', path, openai);
      add('anthropic-api-key', path, anthropic);
      add('database-password', path, dbPass);
      add('stripe-secret-key', path, stripe);
    }
  }
  return { tokens };
}

/** Encoded forms a decoy may travel in: raw, URL-encoded, base64 at each alignment (the
 * stable interior), and for PEM keys each long body line (survives re-wrapping/escaping). */
function needles(value: string): string[] {
  const out = new Set<string>([value, encodeURIComponent(value)]);
  if (value.length >= 12) {
    for (let k = 0; k < 3; k++) {
      const b = Buffer.from('\0'.repeat(k) + value).toString('base64');
      out.add(b.slice(k ? 4 : 0, -4));
    }
  }
  if (value.includes('\n'))
    for (const line of value.split('\n')) if (line.length >= 60 && !line.startsWith('-----')) out.add(line);
  return [...out].filter((n) => n.length >= 12);
}

/** The decoys that appear in text (in any of the forms above). */
export function matchHoneytokens(text: string, tokens: readonly Honeytoken[]): Honeytoken[] {
  return tokens.filter((t) => needles(t.value).some((n) => text.includes(n)));
}

/** Whether a value, or a fingerprint as reported by the engine, is one of the decoys. */
export function isHoneytoken(valueOrFingerprint: string, tokens: readonly Honeytoken[]): boolean {
  return tokens.some(
    (t) =>
      t.value === valueOrFingerprint ||
      t.fingerprint === valueOrFingerprint ||
      fingerprint(valueOrFingerprint) === t.fingerprint,
  );
}
