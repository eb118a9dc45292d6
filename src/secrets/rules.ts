import type { SecretSeverity } from './types.ts';

// Our own rules: what secretlint's recommended preset lacks or reports with an imprecise
// range. Each yields the exact span of the secret VALUE (not the key name), so redaction
// removes exactly the value and fingerprints are stable across rules.

export interface RawHit {
  rule: string;
  severity: SecretSeverity;
  message: string;
  start: number;
  end: number;
  /** Higher wins when overlapping detections are merged into one finding. */
  priority: number;
}

interface RegexRule {
  id: string;
  severity: SecretSeverity;
  message: string;
  /** Must have the g and d flags; the value is group `v` when present, else the match. */
  re: RegExp;
  validate?: (value: string, m: RegExpExecArray, text: string) => boolean;
  priority?: number;
}

/** Shannon entropy, bits per character. */
export function entropy(s: string): number {
  if (!s) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  const n = [...s].length;
  for (const c of counts.values()) { const p = c / n; h -= p * Math.log2(p); }
  return h;
}

/** For fixed-format tokens: not a placeholder (ghp_xxxx…, sk_live_...) and random enough. */
export function plausibleToken(v: string): boolean {
  return !/(.)\1{7}/.test(v) && !PLACEHOLDER_WORDS.test(v) && entropy(v) > 3;
}

function charClasses(s: string): number {
  return (/[a-z]/.test(s) ? 1 : 0) + (/[A-Z]/.test(s) ? 1 : 0) + (/[0-9]/.test(s) ? 1 : 0) + (/[^A-Za-z0-9]/.test(s) ? 1 : 0);
}

const PLACEHOLDER_WORDS = /example|placeholder|changeme|change_me|change-me|your[_-]?(?:api|key|token|secret|pass|own)|<[^>]*>|redacted|dummy|sample|fake|xxxx|\*\*\*|\.\.\.|todo|fixme|insert[_-]?|replace[_-]?me|secret[_-]?here|token[_-]?here|key[_-]?here|notasecret|not[_-]a[_-]secret/i;

/** Obvious placeholders, templates and references rather than literal secrets. */
export function looksPlaceholder(v: string): boolean {
  if (/^(.)\1*$/.test(v)) return true; // xxxxx, *****, 00000
  if (/^[$%@#&!]|^\{\{|\}\}$|^\$\{/.test(v)) return true; // ${VAR}, %(x)s, @token@, !vault, {{ x }}
  if (PLACEHOLDER_WORDS.test(v)) return true;
  if (/^(?:true|false|null|none|nil|undefined|string|number|bool|boolean|required|optional|secret|password|passwd|token)$/i.test(v)) return true;
  return false;
}

/** A file path rather than base64 that happens to start with a slash. */
function looksLikePath(v: string): boolean {
  if (!/^(?:\.{0,2}|~)\/[A-Za-z0-9_.@/-]*$/.test(v)) return false;
  return v.split('/').every((seg) => seg.length < 16 || /[-_.]/.test(seg) || /^[a-z0-9]+$/.test(seg));
}

function b64urlJson(seg: string): Record<string, unknown> | null {
  try {
    const o = JSON.parse(Buffer.from(seg, 'base64url').toString('utf8')) as unknown;
    return o && typeof o === 'object' && !Array.isArray(o) ? o as Record<string, unknown> : null;
  } catch { return null; }
}

// Key names that hold a secret in an assignment. `secret` also covers client_secret etc.
const KEYWORDS = String.raw`(?:api[_.-]?key|apikey|secret|token|passw(?:or)?d|passphrase|pwd|auth[_.-]?key|access[_.-]?key|private[_.-]?key|credential|signing[_.-]?key|encryption[_.-]?key|session[_.-]?key|master[_.-]?key|storage[_.-]?key|account[_.-]?key)`;
// Key suffixes that name metadata about a secret, not the secret.
const META_SUFFIX = /(?:url|uri|path|file|filename|name|type|endpoint|header|env|var|field|length|len|size|count|ttl|expiry|expires|expiration|prefix|suffix|policy|hint|label|format|regex|pattern|min|max|limit|mode|kind|version|provider|source|location|dir|enabled|required|rotation|id_field)$/i;
const PASSWORD_KEY = /passw|pwd|passphrase/i;

function genericValidate(value: string, m: RegExpExecArray, text: string): boolean {
  let from = m.index;
  while (from > 0 && m.index - from < 40 && /[A-Za-z0-9_.-]/.test(text[from - 1]!)) from--;
  const key = (text.slice(from, m.index) + (m.groups?.k ?? '')).toLowerCase();
  if (text.slice(Math.max(0, from - 3), from) === '://') return false; // URL userinfo: see url-password
  const before = text.slice(Math.max(0, from - 12), from);
  if (before.endsWith('«REDACTED:') || /«REDACTED:[^»]*$/.test(text.slice(Math.max(0, m.index - 80), m.index))) return false; // our own marker
  if (META_SUFFIX.test(key.replace(/["']/g, ''))) return false;
  if (/tokeni[sz]|max[_-]?tokens?|tokens?[_-]?(?:count|used|limit)|csrf|xsrf/i.test(key)) return false;
  const end = (m.indices?.groups?.v?.[1]) ?? 0;
  const next = text[end] ?? '';
  const quoted = Boolean(m.groups?.q);
  if (!quoted && (next === '(' || next === '[' || next === '.')) return false; // a call or index: code
  if (quoted && m.groups?.q && next !== m.groups.q) return false; // value did not end at its quote
  if (looksPlaceholder(value)) return false;
  if (/^\d+$/.test(value)) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || looksLikePath(value)) return false; // URL (see url-password) or path
  if (!quoted && /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(value)) return false; // dotted reference
  if (/^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(value)) return false; // ENV_VAR_NAME reference
  if (/^(?:sha\d+|md5)[-:]/i.test(value)) return false; // integrity/digest strings
  const h = entropy(value);
  if (PASSWORD_KEY.test(key)) return value.length >= 8 && h >= 2.5 && charClasses(value) >= 2;
  return value.length >= 16 && h >= 3.0 && charClasses(value) >= 2;
}

function urlPasswordValidate(value: string, m: RegExpExecArray): boolean {
  const user = m.groups?.user ?? '';
  if (looksPlaceholder(value)) return false;
  if (/^(?:pass|pw|passwd|password|secret|pwd|pass(?:word)?\d?|p@ssw0rd|test|user)$/i.test(value)) return false;
  if (/^[A-Z_]+$/.test(value) && /PASS|PWD|SECRET|TOKEN/.test(value)) return false; // USER:PASSWORD template
  if (/^\d{1,5}$/.test(value) && /^[\w.-]*$/.test(user) && !user) return false;
  if (value === user) return false; // postgres:postgres@localhost style dev default
  return value.length >= 3;
}

const re = (src: string, flags = 'gd') => new RegExp(src, flags);
const B = String.raw`(?<![A-Za-z0-9_])`; // left boundary without \b's word-char quirks
const E = String.raw`(?![A-Za-z0-9_-])`;

export const REGEX_RULES: RegexRule[] = [
  { id: 'aws-access-key-id', severity: 'critical', message: 'AWS access key id',
    re: re(String.raw`${B}(?<v>(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z2-7]{16})(?![A-Za-z0-9])`),
    validate: (v) => !/^(?:AKIA|ASIA)[A-Z0-9]*EXAMPLE$/.test(v) && entropy(v.slice(4)) > 2.5 },
  { id: 'aws-secret-access-key', severity: 'critical', message: 'AWS secret access key',
    re: re(String.raw`(?:aws)?[_.-]?secret[_.-]?(?:access)?[_.-]?key["']?\s{0,4}(?::|=>|=)\s{0,4}["']?(?<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])`, 'gdi'),
    validate: (v) => !/EXAMPLEKEY$/.test(v) && entropy(v) > 3.5 },
  { id: 'gcp-api-key', severity: 'high', message: 'Google Cloud API key',
    re: re(String.raw`${B}(?<v>AIza[0-9A-Za-z_-]{35})${E}`) },
  { id: 'gcp-oauth-client-secret', severity: 'high', message: 'Google OAuth client secret',
    re: re(String.raw`${B}(?<v>GOCSPX-[A-Za-z0-9_-]{28})${E}`) },
  { id: 'azure-storage-key', severity: 'critical', message: 'Azure storage/service bus access key',
    re: re(String.raw`(?:AccountKey|SharedAccessKey|AccessKey)=(?<v>[A-Za-z0-9+/]{40,100}={0,2})(?![A-Za-z0-9+/=])`),
    validate: (v) => entropy(v) > 4 },
  { id: 'azure-client-secret', severity: 'high', message: 'Azure AD (Entra ID) client secret',
    re: re(String.raw`(?<![A-Za-z0-9_~.-])(?<v>[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])`),
    validate: (v) => entropy(v) > 3.5 },
  { id: 'azure-sas-signature', severity: 'high', message: 'Azure shared access signature',
    re: re(String.raw`[?&]sv=\d{4}-\d\d-\d\d[^\s"'<>]{0,400}?[?&]sig=(?<v>[A-Za-z0-9%+/]{40,120}(?:%3D|=){0,2})`) },
  { id: 'alibaba-access-key-id', severity: 'high', message: 'Alibaba Cloud access key id',
    re: re(String.raw`${B}(?<v>LTAI[A-Za-z0-9]{12,20})(?![A-Za-z0-9])`), validate: (v) => entropy(v) > 3 },
  { id: 'digitalocean-token', severity: 'high', message: 'DigitalOcean token',
    re: re(String.raw`${B}(?<v>do[opr]_v1_[a-f0-9]{64})(?![a-f0-9])`) },
  { id: 'gitlab-token', severity: 'high', message: 'GitLab token',
    re: re(String.raw`${B}(?<v>(?:glpat|gldt|glrt|glptt|glft|glsoat|glcbt|gloas|glimt|glagent)-[A-Za-z0-9_-]{20,128}|GR1348941[A-Za-z0-9_-]{20,})${E}`) },
  { id: 'github-token', severity: 'high', message: 'GitHub token',
    re: re(String.raw`${B}(?<v>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82})${E}`) },
  { id: 'openai-api-key', severity: 'high', message: 'OpenAI API key',
    re: re(String.raw`${B}(?<v>sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{40,200}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})${E}`),
    validate: (v) => entropy(v) > 4 },
  { id: 'anthropic-api-key', severity: 'high', message: 'Anthropic API key',
    re: re(String.raw`${B}(?<v>sk-ant-(?:api|admin|oat|ort|sid)\d{2}-[A-Za-z0-9_-]{80,128})${E}`) },
  { id: 'stripe-webhook-secret', severity: 'high', message: 'Stripe webhook signing secret',
    re: re(String.raw`${B}(?<v>whsec_[A-Za-z0-9+/]{32,80})(?![A-Za-z0-9+/])`) },
  { id: 'stripe-secret-key', severity: 'high', message: 'Stripe secret key',
    re: re(String.raw`${B}(?<v>(?:sk|rk)_live_[A-Za-z0-9]{20,247})(?![A-Za-z0-9])`) },
  { id: 'npm-token', severity: 'high', message: 'npm access token',
    re: re(String.raw`${B}(?<v>npm_[A-Za-z0-9]{36})(?![A-Za-z0-9_])`) },
  { id: 'npmrc-auth', severity: 'high', message: 'npm registry credential in .npmrc syntax',
    re: re(String.raw`:_(?:authToken|auth|password)\s{0,4}=\s{0,4}["']?(?<v>[^\s"'$][^\s"']{7,})`) ,
    validate: (v) => !looksPlaceholder(v) },
  { id: 'pypi-token', severity: 'high', message: 'PyPI upload token',
    re: re(String.raw`${B}(?<v>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})${E}`) },
  { id: 'slack-webhook', severity: 'high', message: 'Slack incoming webhook URL',
    re: re(String.raw`https://hooks\.slack\.com/(?:services|workflows|triggers)/(?<v>[A-Za-z0-9+/_-]{20,120})`) },
  { id: 'discord-webhook', severity: 'high', message: 'Discord webhook URL',
    re: re(String.raw`https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{5,30}/(?<v>[A-Za-z0-9_-]{60,100})`) },
  { id: 'telegram-bot-token', severity: 'high', message: 'Telegram bot token',
    re: re(String.raw`(?<![0-9])(?<v>\d{8,10}:AA[0-9A-Za-z_-]{33})${E}`) },
  { id: 'sendgrid-key', severity: 'high', message: 'SendGrid API key',
    re: re(String.raw`${B}(?<v>SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})${E}`) },
  { id: 'jwt', severity: 'medium', message: 'JSON Web Token',
    re: re(String.raw`${B}(?<v>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})${E}`),
    validate: (v) => { const h = b64urlJson(v.split('.')[0]!); return Boolean(h && ('alg' in h || 'typ' in h)); },
    priority: 1 },
  { id: 'url-password', severity: 'high', message: 'password in a URL (database, broker or basic-auth URL)',
    re: re(String.raw`${B}(?<scheme>[a-zA-Z][a-zA-Z0-9+.-]{1,30})://(?<user>[^\s:/?#@'"\x60<>\[\]]{0,128}):(?<v>[^\s/?#@'"\x60<>]{1,256})@(?=[A-Za-z0-9\[_-])`),
    validate: urlPasswordValidate, priority: 2 },
  { id: 'authorization-header', severity: 'high', message: 'credential in an Authorization header',
    re: re(String.raw`authorization["']?\s{0,4}[:=]\s{0,4}["']?(?:bearer|basic|token|bot|digest)\s+(?<v>[A-Za-z0-9._~+/-]{12,}=*)`, 'gdi'),
    validate: (v) => !looksPlaceholder(v) && entropy(v) > 3 && charClasses(v) >= 2, priority: 1 },
  { id: 'generic-secret-assignment', severity: 'medium', message: 'high-entropy value assigned to a secret-like name',
    re: re(String.raw`(?<k>${KEYWORDS}[A-Za-z0-9_.-]{0,40})["']?\s{0,4}(?::=|=>|\|\|=|[:=](?!=))\s{0,4}(?<q>["'\x60]?)(?<v>[^\s"'\x60,;<>(){}\[\]\\]{6,512})`, 'gdi'),
    validate: genericValidate, priority: 0 },
];

const PEM_BEGIN = /-----BEGIN (?<kind>[A-Z0-9]+(?: [A-Z0-9]+){0,3} )?PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/g;

/** PEM private key blocks of every kind (RSA, EC incl. bodies starting "MH", DSA, OpenSSH,
 * PKCS#8, encrypted, PGP), also JSON-escaped (\n) and without an END line (truncated). */
function privateKeys(text: string, out: RawHit[]): void {
  PEM_BEGIN.lastIndex = 0;
  for (let m = PEM_BEGIN.exec(text); m; m = PEM_BEGIN.exec(text)) {
    const start = m.index;
    const bodyStart = start + m[0].length;
    PEM_END.lastIndex = bodyStart;
    const e = PEM_END.exec(text);
    let end: number;
    let body: string;
    if (e && e.index - bodyStart <= 65536) {
      end = e.index + e[0].length;
      body = text.slice(bodyStart, e.index);
    } else {
      // No END line: the key runs as far as base64, whitespace and escaped newlines go.
      const run = /^(?:[A-Za-z0-9+/=]|\s|\\[nr])+/.exec(text.slice(bodyStart, bodyStart + 65536));
      body = run ? run[0] : '';
      end = bodyStart + body.replace(/(?:\s|\\[nr])+$/, '').length;
    }
    const lines = body.split(/\r?\n|\\r?\\n/).filter((l) => !/^[A-Za-z-]+:/.test(l.trim())); // Proc-Type:, DEK-Info:, Comment:
    const b64 = lines.join('').replace(/\s+/g, '');
    if (b64.length < 32 || !/^[A-Za-z0-9+/=]+$/.test(b64) || looksPlaceholder(b64) || entropy(b64) < 4) {
      PEM_BEGIN.lastIndex = Math.max(PEM_BEGIN.lastIndex, bodyStart);
      continue;
    }
    out.push({ rule: 'private-key', severity: 'critical', message: `${(m.groups?.kind ?? '').trim() || 'PKCS#8'} private key block`.trim(), start, end, priority: 3 });
    PEM_BEGIN.lastIndex = end;
  }
}

/** Runs all of our rules over text. Cheap literal prechecks skip rules that cannot match. */
export function ownRules(text: string): RawHit[] {
  const out: RawHit[] = [];
  if (text.includes('PRIVATE KEY')) privateKeys(text, out);
  for (const r of REGEX_RULES) {
    r.re.lastIndex = 0;
    let guard = 0;
    for (let m = r.re.exec(text); m; m = r.re.exec(text)) {
      if (++guard > 100_000) break; // bounded: pathological inputs cannot spin forever
      const span = m.indices?.groups?.v ?? m.indices?.[0];
      if (!span) continue;
      const value = text.slice(span[0], span[1]);
      if (r.validate ? !r.validate(value, m, text) : !plausibleToken(value)) {
        // Let a shorter overlapping match be found from the next position.
        r.re.lastIndex = m.index + 1;
        continue;
      }
      out.push({ rule: r.id, severity: r.severity, message: r.message, start: span[0], end: span[1], priority: r.priority ?? 2 });
      if (m[0].length === 0) r.re.lastIndex++;
    }
  }
  return out;
}
