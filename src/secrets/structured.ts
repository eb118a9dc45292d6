import { suppress, type FunctionRule, type RuleRun } from './hits.ts';
import { entropy, notSecretReason } from './values.ts';

// Rules over structured secrets: PEM private keys (also JSON-escaped, as in cloud
// service-account files), docker registry credentials (config.json auths.*.auth, also
// inside a base64 Kubernetes dockerconfigjson), and Kubernetes Secret data values.

const PEM_BEGIN = /-----BEGIN (?<kind>[A-Z0-9]+(?: [A-Z0-9]+){0,3} )?PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----/g;
// Line breaks as they appear raw, JSON-escaped once or twice, or in a \r\n pair.
const BREAK = /\r?\n|(?:\\{1,3}r)?\\{1,3}n/;
// JSON escapes some encoders apply inside a base64 body: \/ (PHP, Jackson), \u002b (.NET).
const unescapeBody = (s: string) =>
  s
    .replace(/\\{1,3}\//g, '/')
    .replace(/\\{1,3}u002[bB]/g, '+')
    .replace(/\\{1,3}u003[dD]/g, '=');

/** Every END line, found once: each BEGIN then looks its END up by binary search, so a
 * text of many BEGIN lines without END lines stays linear. */
function pemEnds(text: string): { at: number; len: number }[] {
  const out: { at: number; len: number }[] = [];
  PEM_END.lastIndex = 0;
  for (let e = PEM_END.exec(text); e && out.length < 100_000; e = PEM_END.exec(text))
    out.push({ at: e.index, len: e[0].length });
  return out;
}

function pemBody(text: string, bodyStart: number, ends: { at: number; len: number }[]): { end: number; body: string } {
  let a = 0;
  let b = ends.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (ends[m]!.at < bodyStart) a = m + 1;
    else b = m;
  }
  const e = ends[a];
  if (e && e.at - bodyStart <= 65536) return { end: e.at + e.len, body: text.slice(bodyStart, e.at) };
  // No END line (truncated): the key runs as far as base64, whitespace and escapes go.
  const run = /^(?:[A-Za-z0-9+/=]|\s|\\{1,3}[nr/]|\\{1,3}u00(?:2[bB]|3[dD]))+/.exec(
    text.slice(bodyStart, bodyStart + 65536),
  );
  const body = run ? run[0] : '';
  return { end: bodyStart + body.replace(/(?:\s|\\{1,3}[nr])+$/, '').length, body };
}

/** PEM private key blocks of every kind (RSA, EC incl. bodies starting "MH", DSA, OpenSSH,
 * PKCS#8, encrypted, PGP), raw or JSON-escaped, with or without an END line. */
export const privateKeyRule: FunctionRule = {
  id: 'private-key',
  anchors: ['private key'],
  run(ruleRun: RuleRun): void {
    const { text } = ruleRun;
    const ends = pemEnds(text);
    PEM_BEGIN.lastIndex = 0;
    for (let m = PEM_BEGIN.exec(text); m; m = PEM_BEGIN.exec(text)) {
      const start = m.index;
      const bodyStart = start + m[0].length;
      const { end, body } = pemBody(text, bodyStart, ends);
      const escaped = /\\{1,3}n/.test(body);
      const lines = unescapeBody(body)
        .split(BREAK)
        .filter((l) => !/^[A-Za-z-]+:/.test(l.trim())); // Proc-Type:, DEK-Info:, Comment:
      const b64 = lines.join('').replace(/\s+/g, '').replace(/^=+/, '');
      const kind = (m.groups?.kind ?? '').trim() || 'PKCS#8';
      const reject =
        b64.length < 32
          ? 'key body shorter than 32 base64 characters'
          : !/^[A-Za-z0-9+/=]+$/.test(b64)
            ? 'key body is not base64'
            : /x{8}|\.\.\.|<|example|placeholder|redacted/i.test(b64)
              ? 'placeholder key body'
              : /^[\x20-\x7e\s]*$/.test(Buffer.from(b64, 'base64').toString('latin1'))
                ? 'key body decodes to plain text, not a DER key'
                : entropy(b64) < 4
                  ? `key body entropy ${entropy(b64).toFixed(2)} < 4 bits/char`
                  : undefined;
      if (reject) {
        suppress(ruleRun, 'private-key', start, end, reject);
        PEM_BEGIN.lastIndex = Math.max(PEM_BEGIN.lastIndex, bodyStart);
        continue;
      }
      ruleRun.out.push({
        rule: 'private-key',
        severity: 'critical',
        message: `${kind} private key block`,
        start,
        end,
        priority: 3,
        why: `PEM "BEGIN ${kind === 'PKCS#8' ? '' : kind + ' '}PRIVATE KEY" block with a ${b64.length}-character base64 body${escaped ? ' (JSON-escaped newlines, as in a service-account file)' : ''}`,
      });
      PEM_BEGIN.lastIndex = end;
    }
  },
};

function decodeBase64(v: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v) || v.length % 4 === 1) return null;
  return Buffer.from(v, 'base64');
}

/** Why a decoded docker `auth` (user:password) is not a credential, or undefined. */
function basicAuthReason(decoded: string): string | undefined {
  if (!/^[\x20-\x7e]+$/.test(decoded)) return 'does not decode to printable user:password';
  const i = decoded.indexOf(':');
  if (i < 0) return 'decodes to no user:password pair';
  const pass = decoded.slice(i + 1);
  if (!pass) return 'empty password';
  const why =
    notSecretReason(pass, { password: true }) ??
    (pass === decoded.slice(0, i) ? 'password equals the user name' : undefined);
  return why ? `password ${why}` : undefined;
}

const DOCKER_AUTH = /"auth"\s*:\s*"(?<v>[A-Za-z0-9+/]{6,}={0,2})"/g;

function dockerAuths(r: RuleRun, text: string, report: (start: number, end: number, why: string) => void): number {
  let n = 0;
  DOCKER_AUTH.lastIndex = 0;
  for (let m = DOCKER_AUTH.exec(text); m; m = DOCKER_AUTH.exec(text)) {
    const v = m.groups!.v!;
    const start = m.index + m[0].indexOf(v);
    const raw = decodeBase64(v);
    const why = raw ? basicAuthReason(raw.toString('latin1')) : 'not base64';
    if (why) {
      suppress(r, 'docker-config-auth', start, start + v.length, why);
      continue;
    }
    report(start, start + v.length, 'docker config.json auths.*.auth: base64 of user:password');
    n++;
  }
  return n;
}

/** docker/podman config.json `auths.<registry>.auth` (base64 of user:password). */
export const dockerConfigRule: FunctionRule = {
  id: 'docker-config-auth',
  anchors: ['"auth"'],
  run(r: RuleRun): void {
    dockerAuths(r, r.text, (start, end, why) =>
      r.out.push({
        rule: 'docker-config-auth',
        severity: 'high',
        message: 'container registry credential (docker config.json auth)',
        start,
        end,
        priority: 2,
        why,
      }),
    );
  },
};

const DOCKERCONFIGJSON =
  /\.docker(?:configjson|cfg)["']?[ \t]*:[ \t]*(?:[|>][-+]?[ \t]*\r?\n[ \t]*)?["']?(?<v>[A-Za-z0-9+/]{16,}={0,2})/g;

/** A Kubernetes `kubernetes.io/dockerconfigjson` Secret: the whole base64 value is the
 * credential when the decoded config holds a registry auth or password. */
export const dockerConfigJsonRule: FunctionRule = {
  id: 'k8s-dockerconfigjson',
  anchors: ['.dockerconfigjson', '.dockercfg'],
  run(r: RuleRun): void {
    DOCKERCONFIGJSON.lastIndex = 0;
    for (let m = DOCKERCONFIGJSON.exec(r.text); m; m = DOCKERCONFIGJSON.exec(r.text)) {
      const v = m.groups!.v!;
      const start = m.index + m[0].lastIndexOf(v);
      const decoded = decodeBase64(v)?.toString('utf8') ?? '';
      const inner: RuleRun = { text: decoded, anchors: r.anchors, out: [] };
      // any non-empty auth counts here: the Secret exists to hold it, whatever its shape
      const found =
        dockerAuths(inner, decoded, () => undefined) +
        (/"(?:auth|password|identitytoken|registrytoken)"\s*:\s*"[^"]{4,}"/.test(decoded) ? 1 : 0);
      if (!found) {
        suppress(
          r,
          'k8s-dockerconfigjson',
          start,
          start + v.length,
          'decoded docker config holds no registry credential',
        );
        continue;
      }
      r.out.push({
        rule: 'k8s-dockerconfigjson',
        severity: 'high',
        message: 'container registry credential (Kubernetes dockerconfigjson, base64)',
        start,
        end: start + v.length,
        priority: 2.5,
        why: 'base64 .dockerconfigjson whose decoded auths hold a registry user:password',
      });
    }
  },
};

const K8S_SECRET_KIND = /^[ \t]*kind:[ \t]*["']?secret["']?[ \t]*$/im;

/** Values under `data:` in a Kubernetes `kind: Secret` manifest: base64 of the secret. */
export const k8sSecretDataRule: FunctionRule = {
  id: 'k8s-secret-data',
  anchors: ['kind: secret', 'kind: "secret"', "kind: 'secret'", 'kind:secret'],
  run(ruleRun: RuleRun): void {
    for (const doc of yamlDocuments(ruleRun.text)) {
      if (!K8S_SECRET_KIND.test(doc.text)) continue;
      const data = /^([ \t]*)data:[ \t]*\r?$/m.exec(doc.text);
      if (!data) continue;
      const indent = data[1]!.length;
      let pos = data.index + data[0].length + 1;
      for (const line of doc.text.slice(pos).split('\n')) {
        const lineStart = doc.start + pos;
        pos += line.length + 1;
        if (!line.trim() || /^\s*#/.test(line)) continue;
        const lead = /^[ \t]*/.exec(line)![0].length;
        if (lead <= indent) break;
        const kv = /^[ \t]*([\w.-]+):[ \t]*["']?([A-Za-z0-9+/]+={0,2})["']?[ \t]*\r?$/.exec(line);
        if (!kv) continue;
        const v = kv[2]!;
        const start = lineStart + line.lastIndexOf(v);
        const raw = decodeBase64(v);
        const plain = raw?.toString('utf8') ?? '';
        const why =
          !raw || plain.trim().length < 4
            ? 'decodes to fewer than 4 characters'
            : /^[\x20-\x7e]*$/.test(plain)
              ? notSecretReason(plain, { password: true })
              : undefined;
        if (why) {
          suppress(ruleRun, 'k8s-secret-data', start, start + v.length, `decoded value: ${why}`);
          continue;
        }
        ruleRun.out.push({
          rule: 'k8s-secret-data',
          severity: 'high',
          message: `Kubernetes Secret data value (${kv[1]}, base64)`,
          start,
          end: start + v.length,
          priority: 1.5,
          why: `base64 value under data: in a kind: Secret manifest (key "${kv[1]}")`,
        });
      }
    }
  },
};

function yamlDocuments(text: string): { start: number; text: string }[] {
  const out: { start: number; text: string }[] = [];
  let start = 0;
  const sep = /^---[ \t]*\r?$/gm;
  for (let m = sep.exec(text); m; m = sep.exec(text)) {
    out.push({ start, text: text.slice(start, m.index) });
    start = m.index + m[0].length;
  }
  out.push({ start, text: text.slice(start) });
  return out;
}
