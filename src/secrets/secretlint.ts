import { extname } from 'node:path';
import { lintSource } from '@secretlint/core';
import { rules as presetRules } from '@secretlint/secretlint-rule-preset-recommend';
import type { SecretLintCoreConfig } from '@secretlint/types';
import type { RawHit } from './rules.ts';
import type { SecretSeverity } from './types.ts';

// secretlint's recommended preset as one layer of the engine. Three deliberate changes:
// - the aws rule runs with enableIDScanRule, so bare access key ids are found;
// - the filter-comments rule is left out: `// secretlint-disable-line` is text an agent or
//   a poisoned repo controls, and must not hide a secret from us (a preset cannot disable
//   its own sub-rule, so the rules are registered one by one);
// - maskSecrets is on, and we never use secretlint's messages or formatters (their text
//   and its JSON formatter contain the unmasked value).

const FILTER_COMMENTS = '@secretlint/secretlint-rule-filter-comments';
const AWS = '@secretlint/secretlint-rule-aws';

export const engineConfig: SecretLintCoreConfig = {
  rules: presetRules.filter((r) => r.meta.id !== FILTER_COMMENTS).map((rule) => ({
    id: rule.meta.id, rule, options: rule.meta.id === AWS ? { enableIDScanRule: true } : {},
  })),
};

/** Every literal a preset rule needs before it can report (case-insensitive superset).
 * Text without any of them cannot produce a secretlint finding, so it is not handed to
 * secretlint at all. Kept honest by a test comparing gated and ungated runs on the corpus. */
export const SECRETLINT_ANCHORS = /A3T|AKIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASIA|secret|account|x-oauth-basic|_authToken|npm_|xox[a-z]-|xapp-|hooks\.slack|:\/\/|sk-|gsk_|hf_|lin_api_|ntn_|PRIVATE KEY|SG\.|shp(?:pa|ca|at|ss)_|[sr]k_(?:live|test)_|gh[pousr]_|github_pat_|glpat-|glc_|glsa_|ops_ey|mongodb|mysql|postgres|hv[sbr]\.|vc[piark]_|dapi|dckr_pat_|figd_|cf(?:k|ut|at)_|tskey-/i;

const OUR_MARKER = /^«REDACTED:[a-z0-9-]+(?:\/[a-z0-9-]+\/[A-Za-z0-9_]+)?:[0-9a-f]{8}»$/;
const CRITICAL = new Set(['aws', 'gcp', 'privatekey']);
const TOKEN_CHARS = /[A-Za-z0-9+/=_.~%-]/;

/** secretlint reports some ranges from the start of the whole match with the length of the
 * value (aws secret key, .npmrc _authToken, x-oauth-basic URLs), and URL rules report the
 * whole URL: narrow those to exactly the value, and extend every range to the end of its
 * token so no tail survives. */
function valueSpan(text: string, ruleShort: string, messageId: string, s: number, e: number): [number, number] {
  while (e < text.length && TOKEN_CHARS.test(text[e]!)) e++;
  if (ruleShort === 'gcp') return [s, e]; // whole-file report for service account JSON
  let prefix: RegExpExecArray | null = null;
  const span = text.slice(s, e);
  if (ruleShort === 'aws' && messageId === 'AWSSecretAccessKey') prefix = /^["']?[A-Za-z_]*["']?\s*(?::|=>|=)\s*["']?/.exec(span);
  else if (messageId === 'Npmrc_authToken') prefix = /^_authToken=/.exec(span);
  else if (messageId === 'PackageJSON_xOauthToken') prefix = /^https?:\/\//.exec(span);
  if (prefix && prefix[0].length < span.length) s += prefix[0].length;
  if (ruleShort === 'basicauth' || ruleShort === 'database-connection-string') {
    // The rule reports the whole URL; the secret is its password.
    const u = /^(?:jdbc:)?[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:([^@/\s]+)@/i.exec(text.slice(s, e));
    if (u) { const ps = s + u[0].length - 1 - u[1]!.length; return [ps, ps + u[1]!.length]; }
  }
  return [s, e];
}

export async function secretlintHits(text: string, path: string | undefined, opts: { gate?: boolean } = {}): Promise<RawHit[]> {
  const ext = path ? extname(path) : '';
  if (opts.gate !== false && ext !== '.p12' && !SECRETLINT_ANCHORS.test(text)) return [];
  const result = await lintSource({
    source: { content: text, filePath: path ?? 'input.txt', ext: ext || '.txt', contentType: ext === '.p12' ? 'binary' : 'text' },
    options: { config: engineConfig, maskSecrets: true, noPhysicFilePath: !path },
  });
  const out: RawHit[] = [];
  for (const m of result.messages) {
    if (m.type !== 'message') continue;
    const short = m.ruleId.replace(/^@secretlint\/secretlint-rule-/, '');
    const [start, end] = valueSpan(text, short, m.messageId, m.range[0], m.range[1]);
    const value = text.slice(start, end);
    if (/(.)\1{7}|\.\.\./.test(value)) continue; // ghp_xxxxxxxx… placeholders
    if (OUR_MARKER.test(value)) continue; // a password already replaced by our marker
    const severity: SecretSeverity = CRITICAL.has(short) ? 'critical' : 'high';
    out.push({ rule: `secretlint/${short}/${m.messageId}`, severity, message: `secretlint ${short}: ${m.messageId}`, start, end, priority: 1.5 });
  }
  return out;
}

/** secretlint alone, as its users run it (recommended preset, default options): the
 * baseline the benchmark compares against. Returns ranges only, never messages. */
export async function secretlintBaseline(text: string, path: string, config: SecretLintCoreConfig): Promise<{ rule: string; start: number; end: number }[]> {
  const ext = extname(path);
  const result = await lintSource({
    source: { content: text, filePath: path, ext: ext || '.txt', contentType: 'text' },
    options: { config, maskSecrets: true },
  });
  return result.messages.filter((m) => m.type === 'message').map((m) => ({ rule: m.ruleId, start: m.range[0], end: m.range[1] }));
}
