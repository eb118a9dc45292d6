import type { SecretSeverity } from './types.ts';
import { suppress, type FunctionRule, type RawHit, type RuleRun } from './hits.ts';
import { charClasses, entropy, isUuid, notSecretReason, placeholderReason, referenceReason } from './values.ts';
import { privateKeyRule, dockerConfigRule, dockerConfigJsonRule, k8sSecretDataRule } from './structured.ts';
import { cliPasswordRules } from './cmdline.ts';
import { compilePrefilter, type AnchorHits } from './prefilter.ts';

export type { RawHit, Suppressed } from './hits.ts';

// Our own rules: what secretlint's recommended preset lacks or reports with an imprecise
// range. Each yields the exact span of the secret VALUE (not the key name), so redaction
// removes exactly the value and fingerprints are stable across rules. Every rule names the
// literals it cannot match without (`anchors`); the prefilter finds them in one pass, and
// rules marked `atAnchor` (their match starts with the anchor) run only at those offsets.

/** A validator returns why a candidate is NOT a secret, or undefined to accept it. */
type Validate = (value: string, m: RegExpExecArray, text: string) => string | undefined;

export interface RegexRule {
  id: string;
  severity: SecretSeverity;
  message: string;
  /** Lower-case literals, one of which every match contains (the gate). */
  anchors: readonly string[];
  /** Where a match can start, so the rule runs (sticky) only there; every rule says one:
   * - `atAnchor`: exactly at an anchor;
   * - `lead: [min, max]`: that many characters before an anchor;
   * - `startOf(text, at)`: computed from an anchor at `at` (undefined: no match can use it);
   * - `unanchored`: the format has no literal, so the rule makes one linear pass over every
   *   text (bounded quantifiers, no nested repetition), and says why. */
  atAnchor?: boolean;
  lead?: readonly [number, number];
  startOf?: (text: string, at: number) => number | undefined;
  unanchored?: string;
  /** g and d flags; the value is group `v` when present, else the match. */
  re: RegExp;
  validate?: Validate;
  /** Why a match is a secret, for the finding (never includes the value). */
  why?: (value: string, m: RegExpExecArray, text: string) => string;
  priority?: number;
}

/** For fixed-format tokens: the part after the vendor prefix is neither a placeholder nor
 * too uniform to be random. */
function tokenReason(v: string, prefixLen = 0): string | undefined {
  const body = v.slice(prefixLen);
  const p = placeholderReason(v, body);
  if (p) return p;
  const h = entropy(body);
  return h <= 3 ? `entropy ${h.toFixed(2)} ≤ 3 bits/char: not random enough for this token format` : undefined;
}
const vendorPrefix = (v: string) => /^[A-Za-z0-9]{0,12}[_.-](?:[a-z0-9]{1,8}[_.-])?/.exec(v)?.[0].length ?? 0;

/** A file path rather than base64 that happens to start with a slash. */
function looksLikePath(v: string): boolean {
  if (!/^(?:\.{0,2}|~)\/[A-Za-z0-9_.@/-]*$/.test(v)) return false;
  return v.split('/').every((seg) => seg.length < 16 || /[-_.]/.test(seg) || /^[a-z0-9]+$/.test(seg));
}

function b64urlJson(seg: string): Record<string, unknown> | null {
  try {
    const o = JSON.parse(Buffer.from(seg, 'base64url').toString('utf8')) as unknown;
    return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

// Key names that hold a secret in an assignment. `secret` also covers client_secret etc.
const KEYWORDS = String.raw`(?:api[_.-]?key|apikey|secret|token|passw(?:or)?d|passphrase|pass(?![a-z])|pwd|auth[_.-]?key|access[_.-]?key|private[_.-]?key|credential|creds?(?![a-z])|signing[_.-]?key|encryption[_.-]?key|session[_.-]?key|master[_.-]?key|storage[_.-]?key|account[_.-]?key)`;
const KEYED = ['api', 'auth', 'access', 'private', 'signing', 'encryption', 'session', 'master', 'storage', 'account'];
// Where a KEYWORDS match can start: `<word>key` forms are anchored with their separator, so
// a plain "account" or "session" in code is not an anchor.
const KEYWORD_ANCHORS = [
  'secret',
  'token',
  'pass',
  'pwd',
  'cred',
  'apikey',
  ...KEYED.flatMap((w) => ['key', '_key', '-key', '.key'].map((k) => w + k)),
];
// Key suffixes that name metadata about a secret, not the secret.
const META_SUFFIX =
  /(?:url|uri|path|file|filename|name|type|endpoint|header|env|var|field|length|len|size|count|ttl|expiry|expires|expiration|prefix|suffix|policy|hint|label|format|regex|pattern|min|max|limit|mode|kind|version|provider|source|location|dir|enabled|required|rotation|id_field|id|ids|ref|arn|alias|store|manager|holder|provider|question|reset|confirm|confirmation|placeholder|input|prompt|changed|strength|policy)$/i;
const META_KEY =
  /tokeni[sz]|max[_-]?tokens?|tokens?[_-]?(?:count|used|limit|type|endpoint)|csrf|xsrf|public[_-]?(?:key|token)|pubkey|bypass|passport|passenger|compass|surpass|passthrough|access[_-]?(?:id|level|mode|control|log)|author|credentials?[_-]?id|secret[_-]?name|api[_-]?(?:version|name|id)|key[_-]?vault|jsonwebtoken/i;
const PASSWORD_KEY = /passw|pwd|passphrase|pass(?![a-z])/i;

/** Full identifier that ends at the keyword match (DB_PASSWORD, client_secret, …). */
function keyBefore(text: string, m: RegExpExecArray): { key: string; from: number } {
  let from = m.index;
  while (from > 0 && m.index - from < 40 && /[A-Za-z0-9_.$-]/.test(text[from - 1]!)) from--;
  return { key: (text.slice(from, m.index) + (m.groups?.k ?? '')).replace(/["'\]\s]/g, ''), from };
}

const QUOTES = `"'\``;

function genericValidate(value: string, m: RegExpExecArray, text: string): string | undefined {
  const { key, from } = keyBefore(text, m);
  const op = m.groups?.op ?? '=';
  if (text.slice(Math.max(0, from - 3), from) === '://') return 'URL user info (the url-password rule judges it)';
  if (/«REDACTED:[^»]*$/.test(text.slice(Math.max(0, m.index - 80), m.index))) return 'our own redaction marker';
  // the key is itself inside a reference (arn:aws:secretsmanager:…:secret:name, vault:secret/…)
  let t0 = from;
  while (t0 > 0 && from - t0 < 200 && !/[\s"'\x60=,;()]/.test(text[t0 - 1]!)) t0--;
  const token = text.slice(t0, from);
  const inRef = token && referenceReason(token + text.slice(from, m.indices?.groups?.v?.[1] ?? m.index));
  if (inRef) return inRef;
  if (META_SUFFIX.test(key.replace(/\W+$/, '')) || META_KEY.test(key))
    return `key "${key.slice(0, 40)}" names metadata about a secret, not the secret`;
  const span = m.indices?.groups?.v;
  const vs = span?.[0] ?? 0;
  const end = span?.[1] ?? 0;
  const open = text[vs - 1] ?? '';
  const quoted = QUOTES.includes(open) && text[end] === open;
  if (!quoted && QUOTES.includes(open)) return 'value does not end at its quote';
  const next = text[end] ?? '';
  if (!quoted && (next === '(' || next === '[' || next === '.'))
    return 'a call or index expression: code, not a literal';
  if ((op === ',' || op === '(' || /^[=!]=/.test(op)) && !quoted) return 'compared or passed, but not a string literal';
  if (op === ',' && !/["']/.test(m.groups?.kq ?? '')) return 'a list of names, not a key and its value';
  const not = notSecretReason(value, { password: PASSWORD_KEY.test(key) });
  if (not) return not;
  if (isUuid(value) && /(?:^|[_.-])(?:id|ref|name|key[_-]?id)$|credentials?|Id$/i.test(key))
    return 'a UUID naming a credential, not the credential';
  if (/^\d{1,19}$/.test(value)) return 'a number (an id, port or count)';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || looksLikePath(value)) return 'a URL or a path';
  if (
    !quoted &&
    /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(value) &&
    value.split('.').every((seg) => /^[A-Za-z_$][A-Za-z_$]*\d{0,3}$/.test(seg))
  )
    return 'a dotted reference (code)';
  if (
    !PASSWORD_KEY.test(key) &&
    /^[a-z]+(?:[A-Z][a-z]+)+\d{0,2}$|^(?:[A-Z][a-z]+){2,}\d{0,2}$/.test(value) &&
    value.length < 40
  )
    return 'camelCase words: an identifier';
  if (/^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(value)) return 'an ENV_VAR_NAME reference';
  if (/^[a-z]+(?:[_-][a-z]+)+$/.test(value) && value.length < 40) return 'words joined by _ or -: an identifier';
  if (/^\d{20,}$/.test(value)) return entropy(value) >= 3 ? undefined : 'a long number with low entropy'; // 20+ random digits: a secret
  if (/^(?:sha\d+|md5)[-:]/i.test(value)) return 'an integrity digest';
  const h = entropy(value);
  if (PASSWORD_KEY.test(key)) {
    if (value.length < 8) return 'password shorter than 8 characters';
    if (h < 2.5) return `entropy ${h.toFixed(2)} < 2.5 bits/char`;
    return charClasses(value) < 2 ? 'one character class only' : undefined;
  }
  if (value.length < 12) return 'shorter than 12 characters';
  if (h < 3.0) return `entropy ${h.toFixed(2)} < 3.0 bits/char`;
  return charClasses(value) < 2 ? 'one character class only' : undefined;
}

/** For the comparison and XML forms: the key is known exactly. */
function keyedValueReason(v: string, key: string): string | undefined {
  if (META_SUFFIX.test(key) || META_KEY.test(key)) return `"${key.slice(0, 40)}" names metadata about a secret`;
  const password = PASSWORD_KEY.test(key);
  const not = notSecretReason(v, { password });
  if (not) return not;
  const h = entropy(v);
  if (h < (password ? 2.5 : 3)) return `entropy ${h.toFixed(2)} too low`;
  return charClasses(v) < 2 ? 'one character class only' : undefined;
}

const genericWhy = (_v: string, m: RegExpExecArray, text: string) =>
  `literal assigned to "${keyBefore(text, m).key.slice(0, 60)}"`;

function urlPasswordValidate(value: string, m: RegExpExecArray): string | undefined {
  const user = m.groups?.user ?? '';
  const not = notSecretReason(value, { password: true });
  if (not) return not;
  if (/^(?:pw|pass(?:word)?\d?|user)$/i.test(value)) return 'a placeholder word';
  if (/^[A-Z_]+$/.test(value) && /PASS|PWD|SECRET|TOKEN/.test(value)) return 'USER:PASSWORD template';
  if (/^\d{1,5}$/.test(value) && !user) return 'a port number (host:port@)';
  if (value === user) return 'password equals the user name (dev default)';
  return value.length >= 4 ? undefined : 'shorter than 4 characters';
}

const re = (src: string, flags = 'gd') => new RegExp(src, flags);

// Where a match can start, walked back from an anchor (the sticky regex then decides). Each
// returns a superset of the real starts: it checks only the characters the regex requires.
const WORD_DOT = /[\w.$]/;
const CMP_GAP = /[\s=!]/;
const VALUE_CHAR = /[^"'\s\\]/;
const XML_NAME = /[\w:.-]/;
const HOST_CHAR = /[a-z0-9-]/i;

/** Steps back from `from` over characters matching `cls`, at most `max`; the index of the first one. */
function backOver(text: string, from: number, cls: RegExp, max: number): number {
  let i = from;
  while (i > 0 && from - i < max && cls.test(text[i - 1]!)) i--;
  return i;
}

/** `"value" == key` with the keyword at `at`: back over the name, the operator and
 * spaces to the closing quote, then over the value to its opening quote. */
function comparedLiteralStart(text: string, at: number): number | undefined {
  const name = backOver(text, at, WORD_DOT, 40);
  if (name > 0 && WORD_DOT.test(text[name - 1]!)) return undefined; // a name longer than 40
  const close = backOver(text, name, CMP_GAP, 11) - 1;
  if (close < 0 || (text[close] !== '"' && text[close] !== "'")) return undefined;
  const open = backOver(text, close, VALUE_CHAR, 512) - 1;
  return open >= 0 && (text[open] === '"' || text[open] === "'") ? open : undefined;
}

/** `<…keyword…>` with the keyword at `at`: back over the element name to its `<`. */
function xmlElementStart(text: string, at: number): number | undefined {
  const lt = backOver(text, at, XML_NAME, 40) - 1;
  return lt >= 0 && text[lt] === '<' ? lt : undefined;
}

/** `https://<tenant>.webhook.office.com` with the anchor at `at`. */
function teamsWebhookStart(text: string, at: number): number | undefined {
  if (text[at - 1] !== '.') return undefined;
  const host = backOver(text, at - 1, HOST_CHAR, text.length);
  return host >= 8 && text.slice(host - 8, host).toLowerCase() === 'https://' ? host - 8 : undefined;
}
const WORD_START = String.raw`(?<![A-Za-z0-9_])`; // left boundary without \b's word-char quirks
const WORD_END = String.raw`(?![A-Za-z0-9_-])`;
const fixed = (prefix: string) => (v: string) => tokenReason(v, prefix.length);

// Quoted values may hold any non-space character; bare values stop at punctuation.
const VALUE = String.raw`(?:(?<v>\$\{\{[^}\n]{1,200}\}\}|<[^<>\s]{1,60}>)|"(?<v>[^"\s\\]{4,512})"|'(?<v>[^'\s\\]{4,512})'|\x60(?<v>[^\x60\s\\]{4,512})\x60|(?<v>[^\s"'\x60,;<>(){}\[\]\\]{6,512}))`;
const TYPE_ANNOTATION = String.raw`(?:\s{1,4}(?:string|String|str|\[\]byte)\b|\s{0,4}:\s{0,4}(?:String|string|str)\??(?=\s{0,4}=))?`;
const OPERATOR = String.raw`(?<op>:::=|::=|:=|=>|\?\?=|\|\|=|\?=|\.=|===|!==|==|!=|[:=](?!=)|,|\()`;

export const REGEX_RULES: RegexRule[] = [
  {
    id: 'aws-access-key-id',
    severity: 'critical',
    message: 'AWS access key id',
    atAnchor: true,
    anchors: ['a3t', 'akia', 'asia', 'agpa', 'aida', 'aroa', 'aipa', 'anpa', 'anva', 'abia', 'acca'],
    re: re(
      String.raw`${WORD_START}(?<v>(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z2-7]{16})(?![A-Za-z0-9])`,
    ),
    validate: (v) =>
      /^(?:AKIA|ASIA)[A-Z0-9]*EXAMPLE$/.test(v)
        ? 'AWS documentation example'
        : (tokenReason(v, 4) ?? (entropy(v.slice(4)) > 2.5 ? undefined : 'low entropy')),
    why: () => 'AWS access key id format (4-letter type prefix + 16 base32 characters)',
  },
  {
    id: 'aws-secret-access-key',
    severity: 'critical',
    message: 'AWS secret access key',
    atAnchor: true,
    anchors: ['secret'],
    re: re(
      String.raw`secret[_.-]?(?:access)?[_.-]?key["']?\s{0,4}(?::|=>|=)\s{0,4}["']?(?<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])`,
      'gdi',
    ),
    validate: (v) =>
      /EXAMPLEKEY$/.test(v)
        ? 'AWS documentation example'
        : (placeholderReason(v) ?? (entropy(v) > 3.5 ? undefined : 'low entropy')),
    why: () => '40-character value assigned to a secret access key',
  },
  {
    id: 'gcp-api-key',
    severity: 'high',
    message: 'Google Cloud API key',
    atAnchor: true,
    anchors: ['aiza'],
    re: re(String.raw`${WORD_START}(?<v>AIza[0-9A-Za-z_-]{35})${WORD_END}`),
    validate: fixed('AIza'),
  },
  {
    id: 'gcp-oauth-client-secret',
    severity: 'high',
    message: 'Google OAuth client secret',
    atAnchor: true,
    anchors: ['gocspx-'],
    re: re(String.raw`${WORD_START}(?<v>GOCSPX-[A-Za-z0-9_-]{28})${WORD_END}`),
    validate: fixed('GOCSPX-'),
  },
  {
    id: 'azure-storage-key',
    severity: 'critical',
    message: 'Azure storage/service bus access key',
    atAnchor: true,
    anchors: ['accountkey=', 'accesskey='],
    re: re(String.raw`(?:AccountKey|AccessKey)=(?<v>[A-Za-z0-9+/]{40,100}={0,2})(?![A-Za-z0-9+/=])`),
    validate: (v) => placeholderReason(v) ?? (entropy(v) > 4 ? undefined : 'low entropy'),
  },
  {
    id: 'azure-client-secret',
    severity: 'high',
    message: 'Azure AD (Entra ID) client secret',
    anchors: ['q~'],
    lead: [4, 4],
    re: re(String.raw`(?<![A-Za-z0-9_~.-])(?<v>[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])`),
    validate: (v) => placeholderReason(v) ?? (entropy(v) > 3.5 ? undefined : 'low entropy'),
  },
  {
    id: 'azure-sas-signature',
    severity: 'high',
    message: 'Azure shared access signature',
    atAnchor: true,
    anchors: ['?sv=', '&sv='],
    re: re(String.raw`[?&]sv=\d{4}-\d\d-\d\d[^\s"'<>]{0,400}?[?&]sig=(?<v>[A-Za-z0-9%+/]{40,120}(?:%3D|=){0,2})`),
  },
  {
    id: 'alibaba-access-key-id',
    severity: 'high',
    message: 'Alibaba Cloud access key id',
    atAnchor: true,
    anchors: ['ltai'],
    re: re(String.raw`${WORD_START}(?<v>LTAI[A-Za-z0-9]{12,20})(?![A-Za-z0-9])`),
    validate: fixed('LTAI'),
  },
  {
    id: 'digitalocean-token',
    severity: 'high',
    message: 'DigitalOcean token',
    atAnchor: true,
    anchors: ['dop_v1_', 'doo_v1_', 'dor_v1_'],
    re: re(String.raw`${WORD_START}(?<v>do[opr]_v1_[a-f0-9]{64})(?![a-f0-9])`),
    validate: fixed('dop_v1_'),
  },
  {
    id: 'gitlab-token',
    severity: 'high',
    message: 'GitLab token',
    atAnchor: true,
    anchors: [
      'glpat-',
      'gldt-',
      'glrt-',
      'glptt-',
      'glft-',
      'glsoat-',
      'glcbt-',
      'gloas-',
      'glimt-',
      'glagent-',
      'gr1348941',
    ],
    // Lengths per token type as GitLab generates them (glptt: hex(20), gloas: hex(32), glimt: base36 of 16 bytes).
    re: re(
      String.raw`${WORD_START}(?<v>glpat-[A-Za-z0-9_.-]{20,128}|(?:gldt|glrt|glft|glsoat)-[A-Za-z0-9_-]{20,50}|glcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_-]{20,50}|glptt-[A-Za-z0-9_-]{40}|gloas-[A-Za-z0-9_-]{64}|glimt-[A-Za-z0-9_-]{25}|glagent-[A-Za-z0-9_-]{50,1024}|GR1348941[A-Za-z0-9_-]{20,50})${WORD_END}`,
    ),
    validate: (v) => tokenReason(v, v.indexOf('-') + 1 || 9),
  },
  {
    id: 'github-token',
    severity: 'high',
    message: 'GitHub token',
    atAnchor: true,
    anchors: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_'],
    re: re(String.raw`${WORD_START}(?<v>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82})${WORD_END}`),
    validate: (v) => tokenReason(v, 4),
  },
  {
    id: 'openai-api-key',
    severity: 'high',
    message: 'OpenAI API key',
    atAnchor: true,
    anchors: ['sk-'],
    // Every current key carries "T3BlbkFJ" (base64 of "OpenAI") between two random halves.
    re: re(
      String.raw`${WORD_START}(?<v>sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,100}T3BlbkFJ[A-Za-z0-9_-]{20,100}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})${WORD_END}`,
    ),
    validate: (v) => tokenReason(v, 3) ?? (entropy(v) > 4 ? undefined : 'low entropy'),
  },
  {
    id: 'anthropic-api-key',
    severity: 'high',
    message: 'Anthropic API key',
    atAnchor: true,
    anchors: ['sk-ant-'],
    re: re(String.raw`${WORD_START}(?<v>sk-ant-(?:api|admin|oat|ort|sid)\d{2}-[A-Za-z0-9_-]{80,128})${WORD_END}`),
    validate: (v) => tokenReason(v, 14),
  },
  {
    id: 'stripe-webhook-secret',
    severity: 'high',
    message: 'Stripe webhook signing secret',
    atAnchor: true,
    anchors: ['whsec_'],
    re: re(String.raw`${WORD_START}(?<v>whsec_[A-Za-z0-9+/]{32,80})(?![A-Za-z0-9+/])`),
    validate: fixed('whsec_'),
  },
  {
    id: 'stripe-secret-key',
    severity: 'high',
    message: 'Stripe secret key',
    atAnchor: true,
    anchors: ['sk_live_', 'rk_live_', 'sk_prod_', 'rk_prod_'],
    re: re(String.raw`${WORD_START}(?<v>(?:sk|rk)_(?:live|prod)_[A-Za-z0-9]{20,247})(?![A-Za-z0-9])`),
    validate: fixed('sk_live_'),
  },
  {
    id: 'npm-token',
    severity: 'high',
    message: 'npm access token',
    atAnchor: true,
    anchors: ['npm_'],
    re: re(String.raw`${WORD_START}(?<v>npm_[A-Za-z0-9]{36})(?![A-Za-z0-9_])`),
    validate: fixed('npm_'),
  },
  {
    id: 'npmrc-auth',
    severity: 'high',
    message: 'npm registry credential in .npmrc syntax',
    atAnchor: true,
    anchors: [':_authtoken', ':_auth', ':_password'],
    re: re(String.raw`:_(?:authToken|auth|password)\s{0,4}=\s{0,4}["']?(?<v>[^\s"'$][^\s"']{7,})`),
    validate: (v) => notSecretReason(v),
    why: () => 'value of an .npmrc _authToken/_auth/_password setting',
  },
  {
    id: 'pypi-token',
    severity: 'high',
    message: 'PyPI upload token',
    atAnchor: true,
    anchors: ['pypi-ageichlwas5vcmc', 'pypi-agendgvzdc5wexbplm9yz'],
    re: re(String.raw`${WORD_START}(?<v>pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{70,})${WORD_END}`),
  },
  {
    id: 'slack-webhook',
    severity: 'high',
    message: 'Slack incoming webhook URL',
    atAnchor: true,
    anchors: ['hooks.slack.com'],
    re: re(String.raw`hooks\.slack\.com/(?:services|workflows|triggers)/(?<v>[A-Za-z0-9+/_-]{20,120})`),
    validate: (v) => tokenReason(v.replace(/\//g, '')),
  },
  {
    id: 'discord-webhook',
    severity: 'high',
    message: 'Discord webhook URL',
    anchors: ['/api/webhooks/'],
    lead: [19, 29],
    re: re(
      String.raw`https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{5,30}/(?<v>[A-Za-z0-9_-]{60,100})`,
    ),
  },
  {
    id: 'telegram-bot-token',
    severity: 'high',
    message: 'Telegram bot token',
    anchors: [':a'],
    lead: [8, 10],
    re: re(String.raw`(?<![0-9])(?<v>\d{8,10}:A[0-9A-Za-z_-]{34})${WORD_END}`),
    validate: (v) => tokenReason(v, v.indexOf(':') + 1),
  },
  {
    id: 'sendgrid-key',
    severity: 'high',
    message: 'SendGrid API key',
    atAnchor: true,
    anchors: ['sg.'],
    re: re(String.raw`${WORD_START}(?<v>SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})${WORD_END}`),
    validate: fixed('SG.'),
  },
  {
    id: 'jwt',
    severity: 'medium',
    message: 'JSON Web Token',
    atAnchor: true,
    anchors: ['eyj'],
    re: re(
      String.raw`${WORD_START}(?<v>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]{16,})?)${WORD_END}`,
    ),
    validate: (v) => {
      const [head, payload, sig] = v.split('.');
      const h = b64urlJson(head!);
      if (h && ('alg' in h || 'typ' in h)) return undefined;
      return b64urlJson(payload!) && sig ? undefined : 'neither header nor payload decodes to JWT JSON';
    },
    why: () => 'base64url segments decoding to a JWT header/payload',
    priority: 1,
  },
  {
    id: 'url-password',
    severity: 'high',
    message: 'password in a URL (database, broker or basic-auth URL)',
    atAnchor: true,
    anchors: ['://'],
    re: re(
      String.raw`(?<=[a-zA-Z][a-zA-Z0-9+.-]{0,30}):\/\/(?<user>[^\s:/?#@'"\x60<>\[\]]{0,128}):(?<v>[^\s/?#@'"\x60<>]{1,256})@(?=[A-Za-z0-9\[_-])`,
    ),
    validate: urlPasswordValidate,
    why: () => 'password field of scheme://user:password@host',
    priority: 2,
  },
  {
    id: 'authorization-header',
    severity: 'high',
    message: 'credential in an Authorization header',
    atAnchor: true,
    anchors: ['authorization'],
    re: re(
      String.raw`authorization["']?\s{0,4}[:=]\s{0,4}["']?(?:(?:bearer|basic|token|bot|digest|api-token|apikey|api-key|sso-key|key)\s+)?(?<v>[A-Za-z0-9._~+/-]{8,}=*)`,
      'gdi',
    ),
    validate: (v) => notSecretReason(v) ?? (entropy(v) > 3 && charClasses(v) >= 2 ? undefined : 'low entropy'),
    why: () => 'credential after an Authorization header scheme',
    priority: 1,
  },
  // Vendors without a secretlint rule.
  {
    id: 'terraform-cloud-token',
    severity: 'high',
    message: 'Terraform Cloud / HCP Terraform API token',
    anchors: ['.atlasv1.'],
    lead: [14, 14],
    re: re(String.raw`${WORD_START}(?<v>[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})${WORD_END}`),
    validate: (v) => tokenReason(v.replace('.atlasv1.', '')),
    why: () => 'Terraform Cloud token format (14 chars + ".atlasv1." + 60-70 chars)',
  },
  {
    id: 'doppler-token',
    severity: 'high',
    message: 'Doppler token',
    atAnchor: true,
    anchors: ['dp.pt.', 'dp.st.', 'dp.sa.', 'dp.ct.', 'dp.scim.', 'dp.audit.'],
    re: re(
      String.raw`${WORD_START}(?<v>dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{1,40}\.)?[A-Za-z0-9]{40,44})(?![A-Za-z0-9])`,
    ),
    validate: (v) => tokenReason(v, v.lastIndexOf('.') + 1),
    why: () => 'Doppler token format (dp.<type>. prefix)',
  },
  {
    id: 'age-secret-key',
    severity: 'critical',
    message: 'age encryption secret key',
    atAnchor: true,
    anchors: ['age-secret-key-1'],
    re: re(String.raw`${WORD_START}(?<v>AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})(?![A-Z0-9])`),
    validate: fixed('AGE-SECRET-KEY-1'),
    why: () => 'age secret key format (AGE-SECRET-KEY-1 + 58 bech32 characters)',
  },
  {
    id: 'fernet-key',
    severity: 'high',
    message: 'Fernet key',
    atAnchor: true,
    anchors: ['fernet'],
    re: re(
      String.raw`fernet[\w.]{0,30}["'\]]?\s{0,4}(?:[:=(,]|=>)\s{0,4}(?:b|bytes\()?["']?(?<v>[A-Za-z0-9_-]{43}=)(?![A-Za-z0-9_=-])`,
      'gdi',
    ),
    validate: (v) => (Buffer.from(v, 'base64url').length !== 32 ? 'does not decode to 32 bytes' : tokenReason(v)),
    why: () => '44-character url-safe base64 (32 bytes) given to Fernet',
  },
  {
    id: 'sourcegraph-token',
    severity: 'high',
    message: 'Sourcegraph access token',
    atAnchor: true,
    anchors: ['sgp_'],
    re: re(String.raw`${WORD_START}(?<v>sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40})${WORD_END}`),
    validate: fixed('sgp_'),
  },
  {
    id: 'huggingface-org-token',
    severity: 'high',
    message: 'Hugging Face organization API token',
    atAnchor: true,
    anchors: ['api_org_'],
    re: re(String.raw`${WORD_START}(?<v>api_org_[A-Za-z]{34})${WORD_END}`),
    validate: fixed('api_org_'),
  },
  {
    id: 'harness-token',
    severity: 'high',
    message: 'Harness API key',
    atAnchor: true,
    anchors: ['pat.', 'sat.'],
    re: re(String.raw`${WORD_START}(?<v>(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20})${WORD_END}`),
    validate: fixed('sat.'),
  },
  {
    id: 'dynatrace-token',
    severity: 'high',
    message: 'Dynatrace API token',
    atAnchor: true,
    anchors: ['dt0c01.'],
    re: re(String.raw`${WORD_START}(?<v>dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64})${WORD_END}`),
    validate: fixed('dt0c01.'),
  },
  {
    id: 'authress-key',
    severity: 'high',
    message: 'Authress service client access key',
    anchors: ['.acc_', '.acc-'],
    lead: [13, 46],
    re: re(
      String.raw`${WORD_START}(?<v>(?:sc|ext|scauth|authress)_[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_-][a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120})${WORD_END}`,
      'gdi',
    ),
    validate: (v) => tokenReason(v),
  },
  {
    id: 'airtable-pat',
    severity: 'high',
    message: 'Airtable personal access token',
    atAnchor: true,
    anchors: ['pat'],
    re: re(String.raw`${WORD_START}(?<v>pat[A-Za-z0-9]{14}\.[a-f0-9]{64})${WORD_END}`),
    validate: fixed('pat'),
  },
  {
    id: 'facebook-access-token',
    severity: 'high',
    message: 'Facebook / Meta access token',
    atAnchor: true,
    anchors: ['eaam', 'eaac'],
    re: re(String.raw`${WORD_START}(?<v>EAA[MC][A-Za-z0-9]{100,})${WORD_END}`),
    validate: fixed('EAAM'),
  },
  {
    id: 'easypost-key',
    severity: 'high',
    message: 'EasyPost API key',
    atAnchor: true,
    anchors: ['ezak', 'eztk'],
    re: re(String.raw`${WORD_START}(?<v>EZ[AT]K[A-Za-z0-9]{54})${WORD_END}`),
    validate: fixed('EZAK'),
  },
  {
    id: 'intra42-client-secret',
    severity: 'high',
    message: '42 Intra client secret',
    atAnchor: true,
    anchors: ['s-s4t2'],
    re: re(String.raw`${WORD_START}(?<v>s-s4t2(?:ud|af)-[a-f0-9]{64})${WORD_END}`),
    validate: fixed('s-s4t2ud-'),
  },
  {
    id: 'onepassword-secret-key',
    severity: 'critical',
    message: '1Password account secret key',
    atAnchor: true,
    anchors: ['a3-'],
    re: re(
      String.raw`${WORD_START}(?<v>A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})${WORD_END}`,
    ),
    validate: (v) => tokenReason(v.replace(/-/g, ''), 2),
  },
  {
    id: 'flyio-token',
    severity: 'high',
    message: 'Fly.io access token',
    atAnchor: true,
    anchors: ['fo1_', 'fm1a_', 'fm1r_', 'fm2_'],
    re: re(
      String.raw`${WORD_START}(?<v>fo1_[\w-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})(?![A-Za-z0-9+/=_-])`,
    ),
    validate: (v) => tokenReason(v, 5),
  },
  {
    id: 'flutterwave-key',
    severity: 'high',
    message: 'Flutterwave API key',
    atAnchor: true,
    anchors: ['flwseck', 'flwpubk'],
    re: re(
      String.raw`${WORD_START}(?<v>FLW(?:SECK|PUBK)_TEST-[a-h0-9]{32}-X|FLWSECK_TEST-?[a-h0-9]{12}|FLW(?:SECK|PUBK)-[a-h0-9]{32}-X)${WORD_END}`,
    ),
    validate: (v) => placeholderReason(v, v.slice(13)),
  },
  {
    id: 'twitter-bearer-token',
    severity: 'high',
    message: 'X (Twitter) app bearer token',
    atAnchor: true,
    anchors: ['aaaaaaaaaaaaaaaaaaaaa'],
    re: re(String.raw`${WORD_START}(?<v>A{21,22}[A-Za-z0-9%]{30,})(?![A-Za-z0-9%])`),
    validate: (v) => tokenReason(v.replace(/^A+/, '')),
    why: () => 'app-only bearer token format (a run of A then URL-encoded base64)',
  },
  {
    id: 'mailchimp-api-key',
    severity: 'high',
    message: 'Mailchimp API key',
    anchors: ['-us'],
    lead: [32, 32],
    re: re(String.raw`(?<![A-Za-z0-9])(?<v>[0-9a-f]{32}-us\d{1,2})(?![A-Za-z0-9])`),
    validate: (v) => tokenReason(v.slice(0, 32)),
  },
  {
    id: 'discord-bot-token',
    severity: 'high',
    message: 'Discord bot token',
    anchors: [],
    unanchored: 'no literal in the format (user-id segment . timestamp . HMAC); one pass, bounded quantifiers',
    re: re(
      String.raw`(?<![A-Za-z0-9_-])(?<v>[MNOA][A-Za-z\d_-]{23,25}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,38})(?![A-Za-z0-9_-])`,
    ),
    validate: (v) => tokenReason(v.split('.')[0]!) ?? tokenReason(v.split('.')[2]!),
    why: () => 'Discord bot token shape (user-id segment . timestamp . HMAC)',
  },
  {
    id: 'sidekiq-credential',
    severity: 'high',
    message: 'Sidekiq Enterprise / Pro gem credential',
    atAnchor: true,
    anchors: ['bundle_enterprise__contribsys__com', 'bundle_gems__contribsys__com'],
    re: re(
      String.raw`BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM["']?\s{0,4}[:=]\s{0,4}["']?(?<v>[a-f0-9]{8}:[a-f0-9]{8})(?![a-f0-9])`,
      'gdi',
    ),
    validate: () => undefined,
    why: () => 'bundler credential for the contribsys gem server',
  },
  {
    id: 'xml-key-value-secret',
    severity: 'medium',
    message: 'secret in a key/value XML element (app.config, NuGet.config)',
    atAnchor: true,
    anchors: ['<add'],
    re: re(
      String.raw`<add\s{1,8}key\s{0,2}=\s{0,2}"(?<k>[^"]{0,40}${KEYWORDS}[^"]{0,40})"\s{1,8}value\s{0,2}=\s{0,2}"(?<v>[^"\s]{4,512})"`,
      'gdi',
    ),
    validate: (v, m) => keyedValueReason(v, m.groups!.k!),
    why: (_v, m) => `value of the <add key="${m.groups?.k}"> setting`,
  },
  {
    id: 'facebook-app-token',
    severity: 'high',
    message: 'Facebook app access token (app id|secret)',
    anchors: ['|', '%7c'],
    lead: [15, 16],
    re: re(String.raw`(?<![0-9])(?<v>\d{15,16}(?:\||%7C)[A-Za-z0-9_-]{27})${WORD_END}`, 'gdi'),
    validate: (v) => tokenReason(v.slice(v.search(/\||%7C/i) + 1)),
  },
  {
    id: 'square-token',
    severity: 'high',
    message: 'Square OAuth secret / access token',
    atAnchor: true,
    anchors: ['sq0csp-', 'sq0atp-', 'sq0idp-'],
    re: re(String.raw`${WORD_START}(?<v>sq0(?:csp|atp|idp)-[0-9A-Za-z_-]{22,60})${WORD_END}`),
    validate: fixed('sq0csp-'),
  },
  {
    id: 'openshift-token',
    severity: 'high',
    message: 'OpenShift user token',
    atAnchor: true,
    anchors: ['sha256~'],
    re: re(String.raw`${WORD_START}(?<v>sha256~[\w-]{43})(?![\w-])`),
    validate: fixed('sha256~'),
  },
  {
    id: 'teams-webhook',
    severity: 'high',
    message: 'Microsoft Teams incoming webhook URL',
    anchors: ['webhook.office.com'],
    startOf: teamsWebhookStart,
    re: re(
      String.raw`https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/(?<v>[a-z0-9-]{36}@[a-z0-9-]{36}/IncomingWebhook/[a-z0-9]{32}/[a-z0-9-]{36})`,
      'gdi',
    ),
    validate: () => undefined,
    why: () => 'Teams webhook path (tenant, connector and HMAC ids)',
  },
  {
    id: 'adobe-client-secret',
    severity: 'high',
    message: 'Adobe client secret',
    atAnchor: true,
    anchors: ['p8e-'],
    re: re(String.raw`${WORD_START}(?<v>p8e-[a-z0-9]{32})${WORD_END}`, 'gdi'),
    validate: fixed('p8e-'),
  },
  {
    id: 'heroku-api-key-v2',
    severity: 'high',
    message: 'Heroku API key',
    atAnchor: true,
    anchors: ['hrku-'],
    re: re(String.raw`${WORD_START}(?<v>HRKU-[A-Za-z0-9_-]{58,60})${WORD_END}`),
    validate: fixed('HRKU-'),
  },
  {
    id: 'framework-secret-key',
    severity: 'high',
    message: 'framework secret setting (Django/Flask SECRET_KEY, Rails secret_key_base, Laravel APP_KEY, …)',
    atAnchor: true,
    anchors: [
      'secret_key',
      'app_key',
      'app_secret',
      'nextauth_secret',
      'jwt_secret',
      'session_secret',
      'cookie_secret',
      'secretkey',
    ],
    re: re(
      String.raw`(?<k>secret_key(?:_base)?|secretkey(?:base)?|app_key|app_secret|nextauth_secret|jwt_secret(?:_key)?|session_secret|cookie_secret)["'\]]{0,2}\s{0,4}(?:=|:|=>)\s{0,4}(?:[bru]?(?<q>["'])(?<v>[^"'\n\\]{16,256})\k<q>|(?<v>base64:[A-Za-z0-9+/]{40,}={0,2}))`,
      'gdi',
    ),
    validate: (v) =>
      notSecretReason(v) ?? (entropy(v) < 3 ? `entropy ${entropy(v).toFixed(2)} < 3 bits/char` : undefined),
    why: (_v, m) => `literal assigned to the framework setting ${m.groups?.k}`,
    priority: 0.5,
  },
  {
    id: 'generic-secret-assignment',
    severity: 'medium',
    message: 'high-entropy value assigned to a secret-like name',
    atAnchor: true,
    anchors: KEYWORD_ANCHORS,
    re: re(
      String.raw`(?<k>${KEYWORDS}[A-Za-z0-9_.-]{0,40})(?<kq>["'\]]{0,2})(?:\[\d{0,4}\])?${TYPE_ANNOTATION}[ \t]{0,4}${OPERATOR}[ \t]{0,4}(?:[@bBrRuUfF]{1,2}(?=["'\x60]))?${VALUE}`,
      'gdi',
    ),
    validate: genericValidate,
    why: genericWhy,
    priority: 0,
  },
  {
    id: 'generic-secret-assignment',
    severity: 'medium',
    message: 'high-entropy value compared with a secret-like name',
    anchors: KEYWORD_ANCHORS,
    startOf: comparedLiteralStart,
    re: re(
      String.raw`(?<q>["'])(?<v>[^"'\s\\]{6,512})\k<q>\s{0,4}(?<op>===?|!==?)\s{0,4}[\w.$]{0,40}?(?<k>${KEYWORDS}\w{0,40})`,
      'gdi',
    ),
    validate: (v, m) => keyedValueReason(v, m.groups!.k!),
    why: (_v, m) => `literal compared with "${m.groups?.k}"`,
    priority: 0,
  },
  {
    id: 'generic-secret-assignment',
    severity: 'medium',
    message: 'high-entropy value in a secret-named XML element',
    anchors: KEYWORD_ANCHORS,
    startOf: xmlElementStart,
    re: re(
      String.raw`<(?<k>[\w:.-]{0,40}${KEYWORDS}[\w.-]{0,40})>\s{0,200}(?<v>[^<>\s]{6,512})\s{0,200}</\k<k>>`,
      'gdi',
    ),
    validate: (v, m) => keyedValueReason(v, m.groups!.k!),
    why: (_v, m) => `text of the XML element <${m.groups?.k}>`,
    priority: 0,
  },
];

export const FUNCTION_RULES: FunctionRule[] = [
  privateKeyRule,
  dockerConfigRule,
  dockerConfigJsonRule,
  k8sSecretDataRule,
  ...cliPasswordRules,
];

/** Every anchor of our rules, for the prefilter (secretlint.ts adds its rules' anchors). */
export const OWN_ANCHORS: readonly string[] = [
  ...REGEX_RULES.flatMap((r) => r.anchors),
  ...FUNCTION_RULES.flatMap((r) => [...r.anchors, ...(r.positions ?? [])]),
];

const STICKY = new Map(REGEX_RULES.map((r) => [r, new RegExp(r.re.source, r.re.flags.replace('g', '') + 'y')]));
const MAX_MATCHES = 100_000;

function report(run: RuleRun, r: RegexRule, m: RegExpExecArray, seen: Set<number>): void {
  const span = m.indices?.groups?.v ?? m.indices?.[0];
  if (!span || seen.has(span[0])) return;
  const value = run.text.slice(span[0], span[1]);
  const reject = r.validate ? r.validate(value, m, run.text) : tokenReason(value, vendorPrefix(value));
  if (reject) {
    suppress(run, r.id, span[0], span[1], reject);
    return;
  }
  seen.add(span[0]);
  run.out.push({
    rule: r.id,
    severity: r.severity,
    message: r.message,
    start: span[0],
    end: span[1],
    priority: r.priority ?? 2,
    why: r.why ? r.why(value, m, run.text) : `${r.message} format`,
  });
}

/** The offsets where the rule's match can start, from its anchors' offsets; null to scan the
 * whole text (an unanchored rule, or a text with so many anchors that offsets were not kept). */
function startOffsets(r: RegexRule, run: RuleRun): number[] | null {
  if (r.unanchored !== undefined || !run.anchors.complete) return null;
  const at = r.anchors.flatMap((a) => run.anchors.at.get(a) ?? []);
  if (r.atAnchor) return at;
  const out = new Set<number>();
  if (r.lead) {
    const [min, max] = r.lead;
    for (const a of at) for (let d = min; d <= max && a - d >= 0; d++) out.add(a - d);
  } else {
    for (const a of at) {
      const s = r.startOf!(run.text, a);
      if (s !== undefined) out.add(s);
    }
  }
  return [...out];
}

function runRegexRule(run: RuleRun, r: RegexRule): void {
  const seen = new Set<number>();
  const offsets = startOffsets(r, run);
  if (offsets) {
    const sticky = STICKY.get(r)!;
    for (const at of offsets) {
      sticky.lastIndex = at;
      const m = sticky.exec(run.text);
      if (m) report(run, r, m, seen);
    }
    return;
  }
  r.re.lastIndex = 0;
  let guard = 0;
  for (let m = r.re.exec(run.text); m; m = r.re.exec(run.text)) {
    if (++guard > MAX_MATCHES) break; // bounded: pathological inputs cannot spin forever
    const before = run.out.length;
    report(run, r, m, seen);
    // a rejected match: let a shorter overlapping one be found from the next position
    if (run.out.length === before) r.re.lastIndex = m.index + 1;
    else if (m[0].length === 0) r.re.lastIndex++;
  }
}

/** Every rule declares exactly one way to find where it can start, and an anchored rule
 * has anchors: a rule added without a gate fails at load, not silently slow or blind. */
function checkGates(rules: readonly RegexRule[]): void {
  for (const r of rules) {
    const ways = [r.atAnchor, r.lead, r.startOf, r.unanchored].filter((w) => w !== undefined && w !== false).length;
    if (ways !== 1) throw new Error(`rule ${r.id}: declare exactly one of atAnchor, lead, startOf, unanchored`);
    if ((r.unanchored === undefined) !== r.anchors.length > 0)
      throw new Error(`rule ${r.id}: anchored rules need anchors, unanchored ones none`);
  }
}
checkGates(REGEX_RULES);

/** One regex rule's hits on a text, with the given anchors (the gate tests run each rule
 * with its own anchors only, and with none known). */
export function regexRuleHits(r: RegexRule, text: string, anchors: AnchorHits): RawHit[] {
  const run: RuleRun = { text, anchors, out: [] };
  runRegexRule(run, r);
  return run.out;
}

const OWN_PREFILTER = compilePrefilter(OWN_ANCHORS);

/** Runs our rules over text: only those whose anchors occur, at their anchors where they
 * start there. `anchors` comes from the engine's one prefilter pass (or is computed here).
 * Rejected candidates go to `suppressed` with the reason, when given. */
export function ownRules(
  text: string,
  opts: { anchors?: AnchorHits; suppressed?: RuleRun['suppressed'] } = {},
): RawHit[] {
  const run: RuleRun = {
    text,
    anchors: opts.anchors ?? OWN_PREFILTER.scan(text),
    out: [],
    ...(opts.suppressed ? { suppressed: opts.suppressed } : {}),
  };
  for (const r of FUNCTION_RULES) if (run.anchors.any(r.anchors)) r.run(run);
  for (const r of REGEX_RULES) if (!r.anchors.length || run.anchors.any(r.anchors)) runRegexRule(run, r);
  return run.out;
}
