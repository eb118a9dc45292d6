import { execFileSync } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { AirlockError, homeLayout } from '../common/index.ts';
import { fingerprint, type Honeytoken } from '../secrets/index.ts';
import type { BrokeredCredential, Policy } from '../policy/index.ts';
import { hostMatches, pathMatches, hostPatternOf, type HostPattern } from './rules.ts';
import { textViews } from './views.ts';
import { loadOrCreateCa, type GatewayCa } from './tls/ca.ts';
import { writeCaBundle, caEnv, SANDBOX_CA_BUNDLE } from './tls/bundle.ts';

// The credential broker. Per session, each declared credential gets a random placeholder
// (the only thing the sandbox sees, in the named variable). The real value is read on the
// host when the session starts and lives only in this process. On an intercepted request
// to a bound destination the gateway swaps the placeholder for the value (or injects it per
// policy); a placeholder seen going anywhere else is refused and raises a finding. The real
// value is never written to an audit event: only its fingerprint.

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const MAX_VALUE_BYTES = 64 * 1024;

export interface Destination {
  pattern: HostPattern;
  port: number;
  paths: string[] | null;
  methods: string[] | null;
}

export interface Credential {
  name: string;
  placeholder: string;
  /** The real value: kept in memory only. */
  value: string;
  /** Fingerprint of the real value (what audit events carry). */
  fingerprint: string;
  destinations: Destination[];
  inject: BrokeredCredential['inject'];
  index: number;
}

export type Misuse = { credential: Credential; where: string };

/** A thing the gateway must never let out: a placeholder (wrong place) or a honeytoken (anywhere). */
export type Hit =
  | { kind: 'placeholder'; credential: Credential; where: string }
  | { kind: 'honeytoken'; token: Honeytoken; where: string };

function placeholderFor(name: string): string {
  let r = '';
  for (let i = 0; i < 32; i++) r += B62[randomInt(62)];
  return `airlock-ph-${name}-${r}`;
}

function expandHome(p: string, env: NodeJS.ProcessEnv): string {
  if (p === '~' || p.startsWith('~/')) return join(env.HOME || homedir(), p.slice(1));
  return p;
}

function readValueFile(path: string, where: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (e) {
    throw new AirlockError(
      'NOT_FOUND',
      `${where}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      'create the file or fix credentials.brokered[].source.file',
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new AirlockError(
        'POLICY_INVALID',
        `${where}: ${path} is not a regular file`,
        'point source.file at the file holding the value',
      );
    if ((st.mode & 0o022) !== 0)
      throw new AirlockError(
        'BAD_STATE',
        `${where}: ${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`,
        `run: chmod go-w ${path}`,
      );
    if (st.size > MAX_VALUE_BYTES)
      throw new AirlockError(
        'POLICY_INVALID',
        `${where}: ${path} is larger than ${MAX_VALUE_BYTES} bytes`,
        'point source.file at a file holding only the value',
      );
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < st.size) {
      const k = readSync(fd, buf, n, st.size - n, null);
      if (k <= 0) break;
      n += k;
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Reads one credential's real value on the host. Throws AirlockError naming the credential. */
export function readCredentialValue(c: BrokeredCredential, hostEnv: NodeJS.ProcessEnv, where: string): string {
  let raw: string;
  const source = c.source;
  if ('env' in source) {
    const v = hostEnv[source.env];
    if (v === undefined || v === '')
      throw new AirlockError(
        'NOT_FOUND',
        `${where}: host environment variable ${source.env} is not set`,
        `export ${source.env} before starting Airlock, or remove the credential from the policy`,
      );
    raw = v;
  } else if ('file' in source) {
    const p = expandHome(source.file, hostEnv);
    if (!isAbsolute(p))
      throw new AirlockError(
        'POLICY_INVALID',
        `${where}: source.file ${source.file} is not an absolute path`,
        'use an absolute path or ~/...',
      );
    raw = readValueFile(p, where);
  } else {
    try {
      raw = execFileSync(source.command[0]!, source.command.slice(1), {
        encoding: 'utf8',
        timeout: 10_000,
        maxBuffer: MAX_VALUE_BYTES,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: hostEnv as NodeJS.ProcessEnv,
        shell: false,
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { status?: number; signal?: string };
      const why =
        err.code === 'ENOENT'
          ? 'command not found'
          : err.signal
            ? `killed by ${err.signal} (timeout 10 s?)`
            : `exit status ${err.status ?? '?'}`;
      throw new AirlockError(
        'UNAVAILABLE',
        `${where}: source.command ${source.command[0]} failed: ${why}`,
        'run the command yourself to check it prints the value, or fix credentials.brokered[].source.command',
      );
    }
  }
  const v = raw.trim();
  if (!v)
    throw new AirlockError(
      'NOT_FOUND',
      `${where}: the source gave an empty value`,
      'check the source holds the credential',
    );
  if (/[\x00-\x1f\x7f]/.test(v))
    throw new AirlockError(
      'POLICY_INVALID',
      `${where}: the value contains control characters or several lines`,
      'a brokered credential is one line (a token or key)',
    );
  if (v.length < 8)
    throw new AirlockError(
      'POLICY_INVALID',
      `${where}: the value is shorter than 8 characters`,
      'a brokered credential must be long enough to be told apart from ordinary text',
    );
  return v;
}

/** Forms a value may travel in: raw, URL-encoded, base64 at each alignment (stable interior). */
export function needlesOf(value: string): string[] {
  const out = new Set<string>([value, encodeURIComponent(value)]);
  for (let k = 0; k < 3; k++) {
    const b = Buffer.from('\0'.repeat(k) + value).toString('base64');
    out.add(b.slice(k ? 4 : 0, -4));
  }
  return [...out].filter((n) => n.length >= 12);
}

/** Streaming search for several needles across chunk boundaries (keeps a tail of the longest - 1 bytes). */
export class NeedleScanner<T> {
  private readonly needles: { bytes: Buffer; tag: T }[];
  private readonly keep: number;
  private tail = Buffer.alloc(0);
  constructor(needles: { text: string; tag: T }[]) {
    this.needles = needles.map((n) => ({ bytes: Buffer.from(n.text, 'utf8'), tag: n.tag }));
    this.keep = Math.max(0, ...this.needles.map((n) => n.bytes.length - 1));
  }
  get empty(): boolean {
    return this.needles.length === 0;
  }
  /** The first needle found in tail+chunk, or null. */
  push(chunk: Buffer): T | null {
    if (!this.needles.length) return null;
    const hay = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    for (const n of this.needles) if (hay.indexOf(n.bytes) >= 0) return n.tag;
    this.tail = Buffer.from(hay.subarray(Math.max(0, hay.length - this.keep)));
    return null;
  }
}

export interface BrokerOptions {
  /** Session id (placeholders are random per broker, i.e. per session). */
  session: string;
}

export interface RequestView {
  host: string;
  port: number;
  method: string;
  /** Normalised path (dot segments removed) used for matching. */
  path: string;
  /** Raw header pairs as received (name, value, name, value...). */
  rawHeaders: string[];
  /** Origin-form URL as it will be sent (path + query). */
  url: string;
}

export interface Rewritten {
  /** Header pairs to send (placeholders replaced, credential injected). */
  headers: [string, string][];
  url: string;
  /** Credentials whose real value this request carries. */
  injected: Credential[];
}

export class Broker {
  readonly credentials: Credential[];
  private readonly session: string;

  constructor(list: readonly BrokeredCredential[], hostEnv: NodeJS.ProcessEnv, o: BrokerOptions) {
    this.session = o.session;
    this.credentials = list.map((c, i) => {
      const where = `credentials.brokered[${i}] (${c.name})`;
      const value = readCredentialValue(c, hostEnv, where);
      return {
        name: c.name,
        index: i,
        value,
        fingerprint: fingerprint(value),
        placeholder: placeholderFor(c.name),
        inject: c.inject,
        destinations: c.destinations.map((d, j) => ({
          pattern: hostPatternOf(d.host, `${where}.destinations[${j}]`, { allowIp: true }),
          port: d.port,
          paths: d.paths?.map((x) => (x.length > 1 && x.endsWith('/') ? x.slice(0, -1) : x)) ?? null,
          methods: d.methods ?? null,
        })),
      };
    });
  }

  /** Placeholder per variable name: the sandbox environment. */
  sandboxEnv(): Record<string, string> {
    return Object.fromEntries(this.credentials.map((c) => [c.name, c.placeholder]));
  }

  /** Host patterns the gateway must intercept (every destination of every credential). */
  interceptPatterns(): HostPattern[] {
    return this.credentials.flatMap((c) => c.destinations.map((d) => d.pattern));
  }

  /** Audit-safe description (names, fingerprints, destinations; never values or placeholders). */
  describe(): Record<string, unknown>[] {
    return this.credentials.map((c) => ({
      name: c.name,
      fingerprint: c.fingerprint,
      placeholderFingerprint: fingerprint(c.placeholder),
      inject:
        'header' in c.inject ? `header ${c.inject.header}` : 'basic' in c.inject ? 'basic' : `query ${c.inject.query}`,
      destinations: c.destinations.map(
        (d) =>
          `${d.pattern.wildcard ? '*.' : ''}${d.pattern.host}:${d.port}${d.paths ? ` ${d.paths.join(',')}` : ''}${d.methods ? ` ${d.methods.join(',')}` : ''}`,
      ),
    }));
  }

  bound(c: Credential, r: { host: string; port: number; method: string; path: string }): boolean {
    return c.destinations.some(
      (d) =>
        hostMatches(d.pattern, r.host) &&
        d.port === r.port &&
        (!d.methods || d.methods.includes(r.method)) &&
        (!d.paths || pathMatches(d.paths, r.path)),
    );
  }

  /** Needles for scanning bytes that leave: every placeholder (all forms) and every honeytoken. */
  needles(tokens: readonly Honeytoken[] = []): { text: string; tag: Hit }[] {
    const out: { text: string; tag: Hit }[] = [];
    for (const c of this.credentials)
      for (const n of needlesOf(c.placeholder))
        out.push({ text: n, tag: { kind: 'placeholder', credential: c, where: 'body' } });
    for (const t of tokens)
      for (const n of honeyNeedles(t.value))
        out.push({ text: n, tag: { kind: 'honeytoken', token: t, where: 'body' } });
    return out;
  }

  /** Which placeholder appears in text (any form), if any. */
  placeholderIn(text: string): Credential | null {
    for (const c of this.credentials) if (needlesOf(c.placeholder).some((n) => text.includes(n))) return c;
    return null;
  }

  /**
   * Rewrites an intercepted request: placeholders in the URL and header values are replaced
   * by the real value where the credential is bound to this destination, and bound
   * credentials are injected per policy when the request does not carry them. Returns the
   * misuse when a placeholder appears where its credential is not bound.
   */
  rewrite(request: RequestView): Rewritten | { misuse: Misuse } {
    const headers: [string, string][] = [];
    for (let i = 0; i + 1 < request.rawHeaders.length; i += 2)
      headers.push([request.rawHeaders[i]!, request.rawHeaders[i + 1]!]);
    let url = request.url;
    const used = new Set<Credential>();
    for (const credential of this.credentials) {
      const isBound = this.bound(credential, request);
      const forms = needlesOf(credential.placeholder);
      // URL (raw and every percent-decoded reading)
      const urlViews = textViews(url);
      if (forms.some((n) => urlViews.some((v) => v.includes(n)))) {
        if (!isBound) return { misuse: { credential: credential, where: 'url' } };
        if (!url.includes(credential.placeholder) && !url.includes(encodeURIComponent(credential.placeholder)))
          return { misuse: { credential: credential, where: 'url (encoded)' } };
        url = url
          .split(credential.placeholder)
          .join(encodeURIComponent(credential.value))
          .split(encodeURIComponent(credential.placeholder))
          .join(encodeURIComponent(credential.value));
        used.add(credential);
      }
      for (const h of headers) {
        // a header name is never rewritten: a placeholder there only carries it somewhere
        if (forms.some((n) => textViews(h[0]).some((v) => v.includes(n))))
          return { misuse: { credential: credential, where: 'header name' } };
        const hv = textViews(h[1]);
        const basic = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h[1]);
        const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
        const inPlain = forms.some((n) => hv.some((v) => v.includes(n)));
        const inBasic = decoded.includes(credential.placeholder);
        if (!inPlain && !inBasic) continue;
        if (!isBound) return { misuse: { credential: credential, where: `header ${h[0].toLowerCase()}` } };
        if (inBasic)
          h[1] = `Basic ${Buffer.from(decoded.split(credential.placeholder).join(credential.value)).toString('base64')}`;
        else if (h[1].includes(credential.placeholder))
          h[1] = h[1].split(credential.placeholder).join(credential.value);
        else return { misuse: { credential: credential, where: `header ${h[0].toLowerCase()} (encoded)` } };
        used.add(credential);
      }
    }
    // inject bound credentials the request does not carry
    for (const c of this.credentials) {
      if (used.has(c) || !this.bound(c, request)) continue;
      const inj = c.inject;
      if ('query' in inj) {
        const q = url.indexOf('?');
        const params = new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');
        if (params.has(inj.query)) continue;
        url += `${q >= 0 ? '&' : '?'}${encodeURIComponent(inj.query)}=${encodeURIComponent(c.value)}`;
      } else {
        const name = 'header' in inj ? inj.header : 'Authorization';
        if (headers.some((h) => h[0].toLowerCase() === name.toLowerCase())) continue;
        headers.push([
          name,
          'header' in inj
            ? inj.template.split('{value}').join(c.value)
            : `Basic ${Buffer.from(`${inj.basic.username}:${c.value}`).toString('base64')}`,
        ]);
      }
      used.add(c);
    }
    return { headers, url, injected: [...used] };
  }

  toString(): string {
    return `Broker(${this.session}, ${this.credentials.length} credentials)`;
  }
}

/** Honeytoken needles (same forms as the secrets module's matcher, PEM body lines included). */
function honeyNeedles(value: string): string[] {
  const out = new Set(needlesOf(value));
  if (value.includes('\n'))
    for (const line of value.split('\n')) if (line.length >= 60 && !line.startsWith('-----')) out.add(line);
  return [...out];
}

/** Streaming replace (for responses): every `from` becomes `to`, across chunk boundaries. */
export class StreamReplacer {
  private readonly pairs: [Buffer, Buffer][];
  private readonly keep: number;
  private tail = Buffer.alloc(0);
  private readonly onReplace: (to: string) => void;
  constructor(pairs: [string, string][], onReplace: (to: string) => void = () => undefined) {
    this.onReplace = onReplace;
    this.pairs = pairs.filter(([a]) => a.length > 0).map(([a, b]) => [Buffer.from(a), Buffer.from(b)]);
    this.keep = Math.max(0, ...this.pairs.map(([a]) => a.length - 1));
  }
  private replaceAll(buf: Buffer): Buffer {
    let out = buf;
    for (const [a, b] of this.pairs) {
      if (out.indexOf(a) < 0) continue;
      this.onReplace(b.toString());
      const parts: Buffer[] = [];
      let pos = 0;
      for (let i = out.indexOf(a); i >= 0; i = out.indexOf(a, pos)) {
        parts.push(out.subarray(pos, i), b);
        pos = i + a.length;
      }
      parts.push(out.subarray(pos));
      out = Buffer.concat(parts);
    }
    return out;
  }
  /** Returns the bytes safe to emit now; holds back a tail that could start a match. */
  push(chunk: Buffer): Buffer {
    const all = this.replaceAll(this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk);
    const cut = Math.max(0, all.length - this.keep);
    this.tail = Buffer.from(all.subarray(cut));
    return all.subarray(0, cut);
  }
  end(): Buffer {
    const t = this.tail;
    this.tail = Buffer.alloc(0);
    return t;
  }
}

export interface PreparedCredentials {
  /** Variables the sandbox gets (Airlock-controlled, win over everything): each credential's placeholder and the CA variables. */
  sandboxEnv: Record<string, string>;
  /** Host path of the CA bundle (system roots + Airlock's CA; public). Mount it read-only at `caBundleSandboxPath`. */
  caBundlePath: string;
  /** Where the bundle must appear inside the sandbox (over the distribution's bundle). */
  caBundleSandboxPath: string;
  /** The session's broker (null when the policy declares no credential). */
  broker: Broker | null;
  /** Spread into startGateway's options: `startGateway({ ...prepared.gateway, session, policy, ... })`. */
  gateway: { tls: { ca: GatewayCa }; broker?: Broker };
}

/**
 * Everything a session needs for brokered credentials and TLS interception: loads (or creates)
 * the gateway CA under `<home>/keys`, writes the CA bundle under `<home>/tls`, reads the real
 * values on the host and makes the per-session placeholders. Throws AirlockError when a
 * credential cannot be read (the session must not start).
 */
export async function prepareCredentials(
  policy: Policy,
  hostEnv: NodeJS.ProcessEnv,
  sessionId: string,
  home: string,
): Promise<PreparedCredentials> {
  const layout = homeLayout(home);
  const ca = await loadOrCreateCa({ keysDir: layout.keys });
  const caBundlePath = writeCaBundle(ca, join(layout.root, 'tls'));
  const list = policy.credentials.brokered;
  const broker = list.length ? new Broker(list, hostEnv, { session: sessionId }) : null;
  return {
    sandboxEnv: { ...caEnv(SANDBOX_CA_BUNDLE), ...(broker?.sandboxEnv() ?? {}) },
    caBundlePath,
    caBundleSandboxPath: SANDBOX_CA_BUNDLE,
    broker,
    gateway: broker ? { tls: { ca }, broker } : { tls: { ca } },
  };
}
