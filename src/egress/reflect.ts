import { StreamReplacer, type Credential } from './broker.ts';

// A brokered credential's real value must never come back into the sandbox. An upstream
// that echoes it (an error page quoting the Authorization header, httpbin-style
// reflection, a debug endpoint) may encode it: every common form is searched and replaced
// by the placeholder the sandbox already holds. Base64/hex forms cannot be put back in
// place meaningfully; replacing them breaks the echo, which is the point.

function percentAll(v: string, lower: boolean): string {
  const hex = Buffer.from(v, 'utf8').toString('hex');
  const out = hex.replace(/(..)/g, '%$1');
  return lower ? out : out.toUpperCase();
}

function jsonEscapedForms(v: string): string[] {
  const std = JSON.stringify(v).slice(1, -1);
  const slash = std.split('/').join('\\/');
  const unicode = [...v]
    .map((c) => (/[A-Za-z0-9]/.test(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
    .join('');
  const unicodeAll = [...v].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  return [std, slash, unicode, unicodeAll, unicodeAll.toUpperCase().split('\\U').join('\\u')];
}

/** base64 of the value at each of the three byte alignments (the stable interior), standard and url-safe. */
function base64Forms(v: string): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const b = Buffer.from('\0'.repeat(k) + v, 'utf8').toString('base64');
    const interior = b.slice(k ? 4 : 0, -4); // the first/last group depends on neighbouring bytes
    out.push(interior, interior.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

/** Every form of a value an echoing upstream may send back: raw, %-encoded, JSON-escaped, base64, base64url, hex. */
export function reflectionForms(value: string): string[] {
  const hex = Buffer.from(value, 'utf8').toString('hex');
  const forms = new Set<string>([
    value,
    encodeURIComponent(value),
    encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    percentAll(value, false),
    percentAll(value, true),
    ...jsonEscapedForms(value),
    ...base64Forms(value),
    hex,
    hex.toUpperCase(),
  ]);
  // longest first, so a form that contains another is replaced whole
  return [...forms].filter((f) => f.length >= 8).sort((a, b) => b.length - a.length);
}

/** Header values and streamed bodies of one response, scrubbed of the credentials the request carried. */
export class ReflectionScrubber {
  readonly credentials: readonly Credential[];
  private readonly body: StreamReplacer;
  private readonly pairs: [string, string][];
  /** Names of credentials found in the response (a `credential reflected` finding each). */
  readonly found = new Set<string>();
  constructor(credentials: readonly Credential[]) {
    this.credentials = credentials;
    this.pairs = credentials.flatMap((c) => reflectionForms(c.value).map((f): [string, string] => [f, c.placeholder]));
    this.body = new StreamReplacer(this.pairs, (to) => this.note(to));
  }
  private note(placeholder: string): void {
    const c = this.credentials.find((x) => x.placeholder === placeholder);
    if (c) this.found.add(c.name);
  }
  text(v: string): string {
    let out = v;
    for (const [a, b] of this.pairs)
      if (out.includes(a)) {
        out = out.split(a).join(b);
        this.note(b);
      }
    return out;
  }
  push(chunk: Buffer): Buffer {
    return this.body.push(chunk);
  }
  end(): Buffer {
    return this.body.end();
  }
  /** Whole body at once (decoded responses). */
  all(b: Buffer): Buffer {
    return Buffer.concat([this.body.push(b), this.body.end()]);
  }
}
