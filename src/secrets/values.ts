// Judgments about a candidate value, shared by every rule: how random it is, and whether it
// is a placeholder, a reference to a secret kept elsewhere, or an obvious test dummy rather
// than a secret. Each check returns the reason it rejects a value (shown by `--explain`),
// or undefined.

/** Shannon entropy, bits per character. */
export function entropy(s: string): number {
  if (!s) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  const n = [...s].length;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log2(p);
  }
  return h;
}

export function charClasses(s: string): number {
  return (
    (/[a-z]/.test(s) ? 1 : 0) + (/[A-Z]/.test(s) ? 1 : 0) + (/[0-9]/.test(s) ? 1 : 0) + (/[^A-Za-z0-9]/.test(s) ? 1 : 0)
  );
}

const PLACEHOLDER_WORDS =
  /example|placeholder|changeme|change_me|change-me|your[_-]?(?:api|key|token|secret|pass|own|access|client|auth|app|private)|redacted|dummy|sample|fake|xxxx|\*\*\*|\.\.\.|todo|fixme|insert[_-]?|replace[_-]?me|secret[_-]?here|token[_-]?here|key[_-]?here|password[_-]?here|[_-]here$|notasecret|not[_-]a[_-]secret|not[_-]?real|lorem|ipsum/i;

/** Passwords that test fixtures, tutorials and container defaults use: never live secrets
 * worth blocking a change for, and a reviewer who sees them flagged learns to ignore us. */
const DUMMY_PASSWORDS = new Set([
  'password',
  'passw0rd',
  'p@ssw0rd',
  'p@ssword',
  'pa$$word',
  'pa55word',
  'password1',
  'password12',
  'password123',
  'password1234',
  'mypassword',
  'yourpassword',
  'newpassword',
  'oldpassword',
  'testpassword',
  'testpass',
  'testpass123',
  'test123',
  'test1234',
  'testing',
  'testing123',
  'secret',
  'secret1',
  'secret123',
  's3cr3t',
  's3cret',
  'mysecret',
  'topsecret',
  'supersecret',
  'changeit',
  'changeme',
  'hunter2',
  'letmein',
  'qwerty',
  'qwerty123',
  'admin',
  'admin1',
  'admin123',
  'administrator',
  'root',
  'toor',
  'guest',
  'demo',
  'demo123',
  'foobar',
  'foo',
  'bar',
  'baz',
  'pass',
  'pass123',
  'pass1234',
  'pwd',
  'passwd',
  'default',
  'user',
  'username',
  'token',
  'apikey',
  '123456',
  '1234567',
  '12345678',
  '123456789',
  '1234567890',
  'abc123',
  'abcdef',
  'abcd1234',
  'iloveyou',
  'welcome',
  'welcome1',
  'postgres',
  'mysql',
  'redis',
  'rabbitmq',
  'guest',
  'sa',
  'oracle',
  'tiger',
  'scott',
  'minioadmin',
  'elastic',
  'kibana',
]);

const SEQUENCES = [
  'abcdefghijklmnopqrstuvwxyz',
  '0123456789',
  'zyxwvutsrqponmlkjihgfedcba',
  '9876543210',
  'qwertyuiop',
  'asdfghjkl',
];

/** Longest run of consecutive characters from a known sequence (abcdef…, 012345…, qwerty…). */
function longestSequence(v: string): number {
  const s = v.toLowerCase();
  let best = 0;
  for (let i = 0; i < s.length; i++) {
    for (const seq of SEQUENCES) {
      const k = seq.indexOf(s[i]!);
      if (k < 0) continue;
      let n = 1;
      while (i + n < s.length && seq[k + n] === s[i + n]) n++;
      best = Math.max(best, n);
    }
  }
  return best;
}

/** The shortest unit the value is made of by repetition (abcd1234abcd1234 → 8), or 0. */
function repeatedUnit(v: string): number {
  for (let p = 1; p <= Math.min(16, v.length >> 1); p++) {
    let ok = true;
    for (let i = p; i < v.length && ok; i++) ok = v[i] === v[i - p];
    if (ok) return p;
  }
  return 0;
}

/** Why a candidate secret is a placeholder (angle-bracketed, descriptive, sequential or
 * repeated characters), or undefined. `body` is the part after a fixed vendor prefix. */
export function placeholderReason(full: string, whole = full): string | undefined {
  // Patterns are judged on the first 128 characters: a placeholder shows itself there, and
  // a megabyte of decoys costs the same per candidate as a short one.
  const v = full.length > 128 ? full.slice(0, 128) : full;
  const body = whole.length > 128 ? whole.slice(0, 128) : whole;
  if (/^<[^<>]*>$|^\[[A-Za-z _-]*\]$|^\{[A-Za-z _-]*\}$|^%[A-Za-z_]+%$|^__[A-Z0-9_]+__$/.test(v))
    return 'placeholder: a bracketed name, not a value';
  if (/<[A-Za-z][\w .:-]*>/.test(v)) return 'placeholder: contains an angle-bracketed name';
  const word = PLACEHOLDER_WORDS.exec(v);
  if (word) return `placeholder: contains "${word[0]}"`;
  if (body.length >= 3 && /^(.)\1*$/.test(body)) return 'placeholder: one character repeated';
  if (/(.)\1{7}/.test(body)) return 'placeholder: a run of 8 or more identical characters';
  const unit = repeatedUnit(body);
  if (body.length >= 8 && unit && unit * 2 <= body.length) return `placeholder: a ${unit}-character pattern repeated`;
  const rep = /(.{4,16})\1{2,}/i.exec(body);
  if (rep && rep[0].length * 2 >= body.length) return `placeholder: a ${rep[1]!.length}-character unit repeated`;
  const distinct = new Set(body).size;
  if (body.length >= 16 && distinct <= 4) return `placeholder: only ${distinct} distinct characters`;
  const seq = longestSequence(body);
  if (seq >= 8 || (body.length >= 6 && seq * 2 >= body.length))
    return 'placeholder: sequential characters (abcdef…, 123456…)';
  return undefined;
}

// References name a secret kept elsewhere; the value itself grants nothing.
const REFERENCES: [RegExp, string][] = [
  [/^\$\{\{\s*(?:secrets|vars|env|inputs|needs|steps|github)\./, 'reference: a GitHub Actions expression'],
  [/^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$|^\$\(|^\$\{/, 'reference: a shell or template variable'],
  [/^%\(?[A-Za-z_]+\)?s?%?$|^\{\{.*\}\}$|^\{\{|\}\}$|^@[A-Za-z_]+@$|^#\{.*\}$/, 'reference: a template expression'],
  [/^vault:|^vault\/|^\{\{\s*vault|^!vault|^secret\/data\//i, 'reference: a HashiCorp Vault path'],
  [/^arn:aws[a-z-]*:(?:secretsmanager|ssm|kms):/, 'reference: an AWS Secrets Manager / SSM / KMS ARN'],
  [/^\{\{resolve:(?:secretsmanager|ssm|ssm-secure):/, 'reference: a CloudFormation dynamic reference'],
  [
    /^(?:op|sm|gcpsm|azkv|awssm|ssm|keyvault|secretsmanager|gsm|bws|doppler|infisical|sops|env|file):\/\//i,
    'reference: a secret manager URI',
  ],
  [/^projects\/[^/\s]+\/secrets\/[^/\s]+/, 'reference: a Google Secret Manager resource name'],
  [/^https:\/\/[a-z0-9-]+\.vault\.azure\.net\/secrets\//i, 'reference: an Azure Key Vault secret URI'],
  [/^ENC\[|^AQICAH|^vault:v\d+:/, 'encrypted value (SOPS, KMS or Vault transit), not a plaintext secret'],
  [/^!(?:vault|secret|ref|sub)\b/i, 'reference: a YAML tag'],
];

/** Why a value is a reference to a secret (not the secret), or undefined. */
export function referenceReason(full: string): string | undefined {
  const v = full.length > 256 ? full.slice(0, 256) : full;
  for (const [re, why] of REFERENCES) if (re.test(v)) return why;
  return undefined;
}

/** Why a password-like value is an obvious dummy, or undefined. */
export function dummyReason(v: string): string | undefined {
  const low = v.toLowerCase();
  if (DUMMY_PASSWORDS.has(low)) return 'test dummy: a well-known default or example password';
  if (
    /^(?:test|dummy|fake|mock|sample|example|demo|local|dev)[_-]?(?:pass(?:word)?|pwd|secret|token|key)?[_-]?\d{0,4}$/i.test(
      v,
    )
  )
    return 'test dummy: names itself a test value';
  return undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: string): boolean => UUID.test(v);

/** Everything that makes a value not a secret, checked in order; undefined when it may be one. */
export function notSecretReason(v: string, opts: { body?: string; password?: boolean } = {}): string | undefined {
  return referenceReason(v) ?? placeholderReason(v, opts.body) ?? (opts.password ? dummyReason(v) : undefined);
}

/** Explanations quote key names from the scanned text: keep them printable and short. */
export function printable(s: string, max = 200): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? clean.slice(0, max) + '…' : clean;
}
