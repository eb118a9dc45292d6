import { extname } from 'node:path';
import { lintSource } from '@secretlint/core';
import { rules as presetRules } from '@secretlint/secretlint-rule-preset-recommend';
import type { SecretLintCoreConfig } from '@secretlint/types';
import { MAX_SUPPRESSED, type RawHit, type Suppressed } from './hits.ts';
import { notSecretReason } from './values.ts';
import { compilePrefilter, type AnchorHits } from './prefilter.ts';
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
  rules: presetRules
    .filter((r) => r.meta.id !== FILTER_COMMENTS)
    .map((rule) => ({
      id: rule.meta.id,
      rule,
      options: rule.meta.id === AWS ? { enableIDScanRule: true } : {},
    })),
};

type Confirm = (text: string, anchors: AnchorHits) => boolean;

/** A confirm that holds when `re` (sticky, a superset of what the rule matches there)
 * matches at an offset of one of `anchors`; always when offsets were not all kept. */
function stickyAt(anchors: readonly string[], re: RegExp): Confirm {
  const y = new RegExp(re.source, re.flags.replace('g', '') + 'y');
  return (text, hits) =>
    !hits.complete ||
    anchors.some((a) =>
      (hits.at.get(a) ?? []).some((at) => {
        y.lastIndex = at;
        return y.test(text);
      }),
    );
}

const AWS_ID_ANCHORS = ['a3t', 'akia', 'agpa', 'aida', 'aroa', 'aipa', 'anpa', 'anva', 'asia'];
// secretlint's aws rule: key ids (the prefixes), `secret_?access_?key <sep> 40 chars`, and
// `account_?(id)? <sep> 12 digits`; its regexes run over the whole text, so the gate checks
// the last form where its anchor is (a bare "account" is everywhere in code).
const AWS_ACCOUNT = /account_?(?:id)?["']?\s*(?::|=>|=)\s*["']?\d{4}-?\d{4}-?\d{4}/i;
const awsAccountAt = stickyAt(['account'], AWS_ACCOUNT);

/** Per preset rule: the literals (case-insensitive) it cannot report without, and for the
 * rules that look for structure rather than a prefix, a cheap check that must also hold.
 * Only the rules whose gate passes are handed to secretlint, so most text never reaches
 * it. Kept honest by a test comparing gated and ungated runs on every corpus. */
export const SECRETLINT_GATES: Record<string, { anchors: readonly string[]; confirm?: Confirm }> = {
  aws: {
    anchors: [...AWS_ID_ANCHORS, 'secretaccess', 'secret_access', 'account'],
    confirm: (t, a) => a.any(AWS_ID_ANCHORS) || a.any(['secretaccess', 'secret_access']) || awsAccountAt(t, a),
  },
  gcp: { anchors: ['private_key_id'] },
  npm: { anchors: ['_authtoken', 'npm_', 'x-oauth-basic'] },
  slack: { anchors: ['xoxb-', 'xoxp-', 'xapp-', 'xoxa-', 'xoxo-', 'xoxr-', 'hooks.slack.com'] },
  basicauth: { anchors: ['://'], confirm: stickyAt(['://'], /:\/\/[-\w]{1,256}:[-\w]{1,256}@/) },
  openai: { anchors: ['sk-'] },
  anthropic: { anchors: ['sk-ant-'] },
  groq: { anchors: ['gsk_'] },
  huggingface: { anchors: ['hf_'] },
  linear: { anchors: ['lin_api_'] },
  notion: { anchors: ['ntn_'] },
  privatekey: { anchors: ['private key'] },
  sendgrid: { anchors: ['sg.'] },
  shopify: { anchors: ['shppa_', 'shpca_', 'shpat_', 'shpss_'] },
  stripe: { anchors: ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_'] },
  github: { anchors: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_'] },
  gitlab: { anchors: ['glpat-'] },
  grafana: { anchors: ['glc_', 'glsa_'] },
  '1password': { anchors: ['ops_ey'] },
  'database-connection-string': { anchors: ['mongodb', 'mysql', 'postgres'], confirm: (_t, a) => a.has('://') },
  'hashicorp-vault': { anchors: ['hvs.', 'hvb.', 'hvr.'] },
  vercel: { anchors: ['vcp_', 'vci_', 'vca_', 'vcr_', 'vck_'] },
  databricks: { anchors: ['dapi'] },
  docker: { anchors: ['dckr_pat_'] },
  figma: { anchors: ['figd_'] },
  cloudflare: { anchors: ['cfk_', 'cfut_', 'cfat_'] },
  tailscale: { anchors: ['tskey-'] },
};

const shortId = (id: string) => id.replace(/^@secretlint\/secretlint-rule-/, '');
export const SECRETLINT_ANCHORS: readonly string[] = Object.values(SECRETLINT_GATES).flatMap((g) => g.anchors);

/** The preset rules whose gates pass on this text (all of them for a .p12 file). A rule
 * without a gate (one a newer preset added) always runs: unknown means scan. */
function gatedRules(text: string, ext: string, anchors: AnchorHits): SecretLintCoreConfig['rules'] {
  if (ext === '.p12') return engineConfig.rules;
  return engineConfig.rules.filter((r) => {
    const g = SECRETLINT_GATES[shortId(r.id)];
    return !g || (anchors.any(g.anchors) && (!g.confirm || g.confirm(text, anchors)));
  });
}

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
  if (ruleShort === 'aws' && messageId === 'AWSSecretAccessKey')
    prefix = /^["']?[A-Za-z_]*["']?\s*(?::|=>|=)\s*["']?/.exec(span);
  else if (messageId === 'Npmrc_authToken') prefix = /^_authToken=/.exec(span);
  else if (messageId === 'PackageJSON_xOauthToken') prefix = /^https?:\/\//.exec(span);
  if (prefix && prefix[0].length < span.length) s += prefix[0].length;
  if (ruleShort === 'basicauth' || ruleShort === 'database-connection-string') {
    // The rule reports the whole URL; the secret is its password.
    const u = /^(?:jdbc:)?[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:([^@/\s]+)@/i.exec(text.slice(s, e));
    if (u) {
      const ps = s + u[0].length - 1 - u[1]!.length;
      return [ps, ps + u[1]!.length];
    }
  }
  return [s, e];
}

const GATE_PREFILTER = compilePrefilter(SECRETLINT_ANCHORS);

/** Real Slack tokens carry long numeric ids and a long random tail; `xoxb-12345-abcd`,
 * `xoxp-1-initial` or `xoxo-indieweb-1.jpg` match secretlint's pattern but are not tokens. */
function slackShapeReason(v: string): string | undefined {
  const parts = v.split('-');
  if (!parts.some((p) => /^\d{8,}$/.test(p))) return 'Slack token without a numeric team/user id';
  return (parts.at(-1) ?? '').length < 10 ? 'Slack token without a random tail of 10+ characters' : undefined;
}

export async function secretlintHits(
  text: string,
  path: string | undefined,
  opts: { gate?: boolean; anchors?: AnchorHits; suppressed?: Suppressed[] } = {},
): Promise<RawHit[]> {
  const ext = path ? extname(path) : '';
  const rules =
    opts.gate === false ? engineConfig.rules : gatedRules(text, ext, opts.anchors ?? GATE_PREFILTER.scan(text));
  if (!rules.length) return [];
  const result = await lintSource({
    source: {
      content: text,
      filePath: path ?? 'input.txt',
      ext: ext || '.txt',
      contentType: ext === '.p12' ? 'binary' : 'text',
    },
    options: { config: { rules }, maskSecrets: true, noPhysicFilePath: !path },
  });
  const out: RawHit[] = [];
  for (const message of result.messages) {
    if (message.type !== 'message') continue;
    const short = message.ruleId.replace(/^@secretlint\/secretlint-rule-/, '');
    const [start, end] = valueSpan(text, short, message.messageId, message.range[0], message.range[1]);
    const value = text.slice(start, end);
    const rule = `secretlint/${short}/${message.messageId}`;
    if (OUR_MARKER.test(value)) continue; // a password already replaced by our marker
    // ghp_xxxxxxxx…, sk_live_AAAA…: the part after the vendor prefix is a placeholder
    const body =
      short === 'privatekey' || short === 'gcp'
        ? ''
        : value.slice(/^[A-Za-z0-9]{1,12}[_.-](?:[a-z]{1,8}[_.-])?/.exec(value)?.[0].length ?? 0);
    const not =
      (body ? notSecretReason(value, { body }) : undefined) ??
      (short === 'slack' && message.messageId !== 'IncomingWebhook' ? slackShapeReason(value) : undefined);
    if (not) {
      if (opts.suppressed && opts.suppressed.length < MAX_SUPPRESSED)
        opts.suppressed.push({ rule, start, end, reason: not });
      continue;
    }
    const severity: SecretSeverity = CRITICAL.has(short) ? 'critical' : 'high';
    out.push({
      rule,
      severity,
      message: `secretlint ${short}: ${message.messageId}`,
      start,
      end,
      priority: 1.5,
      why: `secretlint preset rule ${short} (${message.messageId})`,
    });
  }
  return out;
}

/** secretlint alone, as its users run it (recommended preset, default options): the
 * baseline the benchmark compares against. Returns ranges only, never messages. */
export async function secretlintBaseline(
  text: string,
  path: string,
  config: SecretLintCoreConfig,
): Promise<{ rule: string; start: number; end: number }[]> {
  const ext = extname(path);
  const result = await lintSource({
    source: { content: text, filePath: path, ext: ext || '.txt', contentType: 'text' },
    options: { config, maskSecrets: true },
  });
  return result.messages
    .filter((m) => m.type === 'message')
    .map((m) => ({ rule: m.ruleId, start: m.range[0], end: m.range[1] }));
}
