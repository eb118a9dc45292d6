import { brotliDecompressSync, gunzipSync, inflateSync, zstdDecompressSync } from 'node:zlib';
import {
  scanText,
  fingerprint,
  matchHoneytokens,
  type Honeytoken,
  type AllowEntry,
  type SecretFinding,
} from '../secrets/index.ts';
import { needlesOf } from './broker.ts';

// Outbound DLP on intercepted model-API hosts: a request body is decoded
// (Content-Encoding), scanned with the one secrets engine plus the host secrets Airlock
// knows (brokered credentials' real values, extra values and fingerprints), and — per
// secrets.dlp.mode — forwarded unchanged (off: recorded only), redacted in flight, or
// refused. JSON bodies are redacted inside their decoded strings and re-serialised, so
// escapes cannot hide a secret and the result stays valid JSON. Anything that cannot be
// inspected (unknown encoding, too large, engine failure, a secret in a form that cannot be
// cut out cleanly) is refused unless the mode is off. Findings carry rule and fingerprint only.

export type DlpMode = 'redact' | 'block' | 'off';

export interface KnownSecret {
  label: string;
  value: string;
}

export interface DlpConfig {
  mode: DlpMode;
  /** Values never treated as secrets (secrets.workspace.allowlist). */
  allowlist?: readonly AllowEntry[];
  /** Host secrets known by value (brokered credentials' real values, ...). */
  known: readonly KnownSecret[];
  /** Host secrets known only by fingerprint (as printed by `airlock secrets scan`). */
  fingerprints: ReadonlySet<string>;
  /** Largest body inspected (bytes, after decoding); larger is refused unless mode is off. */
  maxBytes: number;
}

export interface DlpFinding {
  rule: string;
  fingerprint: string;
  severity: string;
  source: 'engine' | 'known-secret' | 'known-fingerprint' | 'honeytoken';
}

export interface DlpResult {
  action: 'pass' | 'redacted' | 'blocked';
  /** The body to forward (decoded when it was redacted). */
  body: Buffer;
  /** True when `body` is the decoded form (the caller drops Content-Encoding). */
  decoded: boolean;
  findings: DlpFinding[];
  reason: string;
  honeytoken: Honeytoken | null;
}

export const DEFAULT_DLP_MAX_BYTES = 16 * 1024 * 1024;

/** Undoes Content-Encoding (gzip, deflate, br, zstd; stacked), output capped at max + 1 bytes. Throws on anything else. */
export function decodeBody(body: Buffer, encoding: string | undefined, max: number): Buffer {
  const encs = (encoding ?? '')
    .toLowerCase()
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'identity');
  let out = body;
  for (const e of encs.reverse()) {
    const o = { maxOutputLength: max + 1 };
    if (e === 'gzip' || e === 'x-gzip') out = gunzipSync(out, o);
    else if (e === 'deflate') out = inflateSync(out, o);
    else if (e === 'br') out = brotliDecompressSync(out, o);
    else if (e === 'zstd') out = zstdDecompressSync(out, o);
    else throw new Error(`unsupported Content-Encoding ${e}`);
  }
  return out;
}

interface Span {
  start: number;
  end: number;
  rule: string;
  fingerprint: string;
}

/** Strings of a JSON value in walk order: object keys as well as values (a secret used as a key is still a secret). */
function collectStrings(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      collectStrings(x, out);
    }
}

/** Rebuilds a JSON value with each string (keys included, same walk order) replaced by next(). */
function replaceStrings(v: unknown, next: () => string): unknown {
  if (typeof v === 'string') return next();
  if (Array.isArray(v)) return v.map((x) => replaceStrings(x, next));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([, x]) => [next(), replaceStrings(x, next)]));
  return v;
}

const marker = (s: Span) => `«REDACTED:${s.rule}:${s.fingerprint.slice(0, 8)}»`;

/** Replaces merged spans in text (spans in text offsets). */
function cut(text: string, spans: Span[]): string {
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  let out = '';
  let pos = 0;
  for (let i = 0; i < sorted.length;) {
    const first = sorted[i]!;
    let end = first.end;
    let j = i + 1;
    while (j < sorted.length && sorted[j]!.start < end) {
      end = Math.max(end, sorted[j]!.end);
      j++;
    }
    out += text.slice(pos, Math.max(pos, first.start)) + marker(first);
    pos = Math.max(pos, end);
    i = j;
  }
  return out + text.slice(pos);
}

const TOKEN = /[A-Za-z0-9+/=_\-.~:@!$*]{12,512}/g;

/** Inspects request text that cannot be redacted in place (URL, headers): findings only, as if the mode were block. */
export function inspectText(text: string, cfg: DlpConfig, honeytokens: readonly Honeytoken[] = []): Promise<DlpResult> {
  return inspectBody(
    Buffer.from(text, 'utf8'),
    'text/plain',
    undefined,
    { ...cfg, mode: 'block', maxBytes: Math.max(cfg.maxBytes, text.length * 4) },
    honeytokens,
  );
}

/** Inspects one request body. Never throws: an inspection failure is a refusal (unless mode is off). */
export async function inspectBody(
  body: Buffer,
  contentType: string | undefined,
  contentEncoding: string | undefined,
  cfg: DlpConfig,
  honeytokens: readonly Honeytoken[] = [],
): Promise<DlpResult> {
  const refuse = (reason: string, findings: DlpFinding[] = [], honeytoken: Honeytoken | null = null): DlpResult => ({
    action: cfg.mode === 'off' && !honeytoken ? 'pass' : 'blocked',
    body,
    decoded: false,
    findings,
    reason,
    honeytoken,
  });
  if (body.length === 0)
    return { action: 'pass', body, decoded: false, findings: [], reason: 'empty body', honeytoken: null };
  let plain: Buffer;
  try {
    plain = decodeBody(body, contentEncoding, cfg.maxBytes);
  } catch (e) {
    return refuse(`body cannot be decoded for inspection (${e instanceof Error ? e.message : e})`);
  }
  if (plain.length > cfg.maxBytes) return refuse(`body larger than ${cfg.maxBytes} bytes cannot be inspected`);
  const text = plain.toString('utf8');
  const honeyHits = honeytokens.length ? matchHoneytokens(text, honeytokens) : [];
  if (honeyHits.length) {
    const h = honeyHits[0]!;
    return refuse(
      `honeytoken (${h.kind}) in the request body`,
      [{ rule: `honeytoken/${h.kind}`, fingerprint: h.fingerprint, severity: 'critical', source: 'honeytoken' }],
      h,
    );
  }

  const input = scanInput(text, contentType);
  const hits: Hits = { spans: [], findings: [], unredactable: '' };
  let engine: SecretFinding[];
  try {
    engine = await scanText(input.joined, { allowlist: cfg.allowlist });
  } catch (e) {
    return refuse(`secret scan failed (${e instanceof Error ? e.name : 'error'}); cannot tell`);
  }
  addEngineFindings(engine, cfg, hits);
  addKnownSecrets(input.joined, cfg, hits);
  if (cfg.fingerprints.size) addKnownFingerprints(input.joined, cfg, hits);
  return verdict(body, cfg, input, hits);
}

/** What a body's scan works on: decoded JSON string values (or the whole text), joined, with each one's offset. */
interface ScanInput {
  json: unknown;
  isJson: boolean;
  strings: string[];
  joined: string;
  starts: number[];
}

/** Where secrets were found (spans in the joined text), what they were, and why the body cannot be redacted. */
interface Hits {
  spans: Span[];
  findings: DlpFinding[];
  unredactable: string;
}

const SEP = '\n\n';

function scanInput(text: string, contentType: string | undefined): ScanInput {
  let json: unknown;
  let isJson = false;
  if (/json/i.test(contentType ?? '') || /^\s*[[{]/.test(text.slice(0, 64))) {
    try {
      json = JSON.parse(text);
      isJson = true;
    } catch {
      /* scanned as text */
    }
  }
  const strings: string[] = [];
  if (isJson) collectStrings(json, strings);
  else strings.push(text);
  const starts: number[] = [];
  let off = 0;
  for (const s of strings) {
    starts.push(off);
    off += s.length + SEP.length;
  }
  return { json, isJson, strings, joined: strings.join(SEP), starts };
}

function addEngineFindings(engine: SecretFinding[], cfg: DlpConfig, hits: Hits): void {
  for (const f of engine) {
    const known = cfg.fingerprints.has(f.fingerprint) || cfg.known.some((k) => fingerprint(k.value) === f.fingerprint);
    hits.findings.push({
      rule: f.rule,
      fingerprint: f.fingerprint,
      severity: known ? 'critical' : f.severity,
      source: known ? 'known-secret' : 'engine',
    });
    hits.spans.push({ start: f.start, end: f.end, rule: f.rule, fingerprint: f.fingerprint });
  }
}

function addKnownSecrets(joined: string, cfg: DlpConfig, hits: Hits): void {
  for (const k of cfg.known) {
    const fp = fingerprint(k.value);
    const forms = needlesOf(k.value);
    let seen = false;
    for (const [n, form] of forms.map((x, i) => [x, i] as const)) {
      // raw and URL-encoded forms are cut out; base64 forms cannot be cut cleanly: refuse
      for (
        let i = joined.indexOf(n), guard = 0;
        i >= 0 && guard < 10_000;
        i = joined.indexOf(n, i + n.length), guard++
      ) {
        seen = true;
        if (form <= 1)
          hits.spans.push({ start: i, end: i + n.length, rule: `known-secret/${k.label}`, fingerprint: fp });
        else hits.unredactable = `host secret ${k.label} (base64-encoded)`;
      }
    }
    if (seen)
      hits.findings.push({
        rule: `known-secret/${k.label}`,
        fingerprint: fp,
        severity: 'critical',
        source: 'known-secret',
      });
  }
}

function addKnownFingerprints(joined: string, cfg: DlpConfig, hits: Hits): void {
  const reported = new Set(hits.findings.map((f) => f.fingerprint));
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(joined), guard = 0; m && guard < 200_000; m = TOKEN.exec(joined), guard++) {
    // a token and its stripped forms (trailing punctuation, key=value)
    const cands = new Set([
      m[0],
      m[0].replace(/[=.:!@$*]+$/, ''),
      m[0].slice(m[0].lastIndexOf('=') + 1),
      m[0].slice(m[0].lastIndexOf(':') + 1),
    ]);
    for (const c of cands) {
      if (c.length < 8) continue;
      const fp = fingerprint(c);
      if (!cfg.fingerprints.has(fp)) continue;
      const at = m.index + m[0].indexOf(c);
      hits.spans.push({ start: at, end: at + c.length, rule: 'known-fingerprint', fingerprint: fp });
      if (!reported.has(fp)) {
        reported.add(fp);
        hits.findings.push({
          rule: 'known-fingerprint',
          fingerprint: fp,
          severity: 'critical',
          source: 'known-fingerprint',
        });
      }
    }
  }
}

/** The body once every secret is found: passed, blocked, or redacted (as the mode says). */
function verdict(body: Buffer, cfg: DlpConfig, input: ScanInput, hits: Hits): DlpResult {
  const { findings } = hits;
  const unchanged = (action: 'pass' | 'blocked', reason: string): DlpResult => ({
    action,
    body,
    decoded: false,
    findings,
    reason,
    honeytoken: null,
  });
  if (!findings.length) return unchanged('pass', 'no secrets found');
  const summary = `${findings.length} secret${findings.length > 1 ? 's' : ''} (${[...new Set(findings.map((f) => f.rule))].slice(0, 5).join(', ')})`;
  if (cfg.mode === 'off') return unchanged('pass', `${summary} recorded only (secrets.dlp.mode off)`);
  if (cfg.mode === 'block') return unchanged('blocked', `${summary} in a request to a model API`);
  if (hits.unredactable) return unchanged('blocked', `${hits.unredactable} cannot be redacted in flight`);
  const out = redactedText(input, hits.spans);
  // the redacted body must be clean of every known value (fail closed otherwise)
  if (cfg.known.some((k) => out.includes(k.value)))
    return unchanged('blocked', 'redaction left a host secret in place');
  return {
    action: 'redacted',
    body: Buffer.from(out, 'utf8'),
    decoded: true,
    findings,
    reason: `${summary} redacted in flight`,
    honeytoken: null,
  };
}

/** The scanned text with every span cut out, as JSON again when it was JSON. */
function redactedText(input: ScanInput, spans: Span[]): string {
  const { strings, starts } = input;
  // spans per string (a span never crosses the separator: secrets hold no blank line; clip anyway)
  const per: Span[][] = strings.map(() => []);
  for (const s of spans) {
    for (let i = 0; i < strings.length; i++) {
      const a = starts[i]!;
      const b = a + strings[i]!.length;
      if (s.end <= a || s.start >= b) continue;
      per[i]!.push({ ...s, start: Math.max(s.start, a) - a, end: Math.min(s.end, b) - a });
    }
  }
  const redacted = strings.map((s, i) => (per[i]!.length ? cut(s, per[i]!) : s));
  if (!input.isJson) return redacted[0]!;
  let k = 0;
  return JSON.stringify(replaceStrings(input.json, () => redacted[k++]!));
}
