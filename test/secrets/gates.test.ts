// Issue 22: every regex rule runs only where its gate says a match can start (at an anchor
// literal, a fixed distance before one, or walked back from one). These tables prove each
// gated rule still finds its secret, and that every literal of every gate is one a secret
// of that rule really contains: drop or misspell a literal and its row fails. Token-shaped
// values are built at run time so the repository holds none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanText } from '../../src/secrets/index.ts';
import { REGEX_RULES, OWN_ANCHORS, regexRuleHits, type RegexRule } from '../../src/secrets/rules.ts';
import { compilePrefilter, type AnchorHits } from '../../src/secrets/prefilter.ts';
import { mulberry32 } from '../../bench/secrets-corpus.ts';

const next = mulberry32(0x22ab1e);
const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HEX = '0123456789abcdef';
const LOWER36 = 'abcdefghijklmnopqrstuvwxyz0123456789';
const rand = (n: number, alphabet = B62) =>
  Array.from({ length: n }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
const b64 = (n: number) => rand(n, B62 + '+/');
const j = (...parts: string[]) => parts.join(''); // literals split so no token sits in the source

/** Rule key: the id, plus the form's index where several rules share an id. */
const KEYS = REGEX_RULES.map((r, i) =>
  REGEX_RULES.filter((x) => x.id === r.id).length > 1
    ? `${r.id}#${REGEX_RULES.filter((x, k) => x.id === r.id && k < i).length}`
    : r.id,
);

const KEYWORD_SAMPLES = [
  'secret',
  'token',
  'pass',
  'pwd',
  'cred',
  'apikey',
  'api_key',
  'api-key',
  'api.key',
  ...['auth', 'access', 'private', 'signing', 'encryption', 'session', 'master', 'storage', 'account'].flatMap((w) => [
    w + 'key',
    `${w}_key`,
    `${w}-key`,
    `${w}.key`,
  ]),
];

/** Rule key → texts, each holding one secret the rule must find. */
const SAMPLES: Record<string, string[]> = {
  'aws-access-key-id': ['A3TX', 'AKIA', 'ASIA', 'AGPA', 'AIDA', 'AROA', 'AIPA', 'ANPA', 'ANVA', 'ABIA', 'ACCA'].map(
    (p) => `key = ${p}${rand(p.length === 4 ? 16 : 16, UPPER)}\n`,
  ),
  'aws-secret-access-key': [`aws_secret_access_key = ${rand(40, B62 + '/+')}\n`],
  'gcp-api-key': [`const key = "${j('AI', 'za')}${rand(35, B62 + '_-')}";\n`],
  'gcp-oauth-client-secret': [`client: ${j('GOC', 'SPX-')}${rand(28)}\n`],
  'azure-storage-key': [
    `DefaultEndpointsProtocol=https;AccountName=x;${j('Account', 'Key=')}${b64(86)}==;\n`,
    `Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=r;${j('Access', 'Key=')}${b64(43)}=\n`,
  ],
  'azure-client-secret': [`secret: ${rand(3)}8${j('Q', '~')}${rand(34, B62 + '_~.-')}\n`],
  'azure-sas-signature': ['?', '&'].map(
    (c) => `https://a.blob.core.windows.net/c/b?x=1${c}sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01&sig=${b64(43)}%3D\n`,
  ),
  'alibaba-access-key-id': [`id: ${j('LT', 'AI')}${rand(20)}\n`],
  'digitalocean-token': ['dop', 'doo', 'dor'].map((p) => `t = ${p}${j('_v', '1_')}${rand(64, HEX)}\n`),
  'gitlab-token': [
    `${j('glp', 'at-')}${rand(20)}`,
    `${j('gld', 't-')}${rand(20)}`,
    `${j('glr', 't-')}${rand(20)}`,
    `${j('glpt', 't-')}${rand(40, HEX)}`,
    `${j('glf', 't-')}${rand(20)}`,
    `${j('glso', 'at-')}${rand(20)}`,
    `${j('glc', 'bt-')}${rand(20)}`,
    `${j('glo', 'as-')}${rand(64, HEX)}`,
    `${j('gli', 'mt-')}${rand(25, LOWER36)}`,
    `${j('glag', 'ent-')}${rand(50)}`,
    `${j('GR13', '48941')}${rand(20)}`,
  ].map((t) => `token: ${t}\n`),
  'github-token': [
    ...['p', 'o', 'u', 's', 'r'].map((c) => `${j('gh', c, '_')}${rand(36)}`),
    `${j('github', '_pat_')}${rand(82, B62 + '_')}`,
  ].map((t) => `GH=${t}\n`),
  'openai-api-key': [`OPENAI=${j('sk-', 'proj-')}${rand(40, B62 + '_-')}${j('T3Blbk', 'FJ')}${rand(40, B62 + '_-')}\n`],
  'anthropic-api-key': [`KEY=${j('sk-', 'ant-', 'api03-')}${rand(95, B62 + '_-')}\n`],
  'stripe-webhook-secret': [`WH=${j('wh', 'sec_')}${rand(32)}\n`],
  'stripe-secret-key': ['sk_live_', 'rk_live_', 'sk_prod_', 'rk_prod_'].map(
    (p) => `K=${j(p.slice(0, 3), p.slice(3))}${rand(24)}\n`,
  ),
  'npm-token': [`NPM=${j('np', 'm_')}${rand(36)}\n`],
  'npmrc-auth': [':_authToken', ':_auth', ':_password'].map((p) => `//registry.npmjs.org/${p}=${rand(36)}\n`),
  'pypi-token': [
    `${j('pypi-', 'AgEIcHlwaS5vcmc')}${rand(80, B62 + '_-')}`,
    `${j('pypi-', 'AgENdGVzdC5weXBpLm9yZw')}${rand(80, B62 + '_-')}`,
  ].map((t) => `password = ${t}\n`),
  'slack-webhook': [
    `url: https://${j('hooks.', 'slack.com')}/services/T${rand(10, UPPER)}/B${rand(10, UPPER)}/${rand(24)}\n`,
  ],
  'discord-webhook': ['', 'ptb.', 'canary.'].flatMap((sub) =>
    ['discord', 'discordapp'].map(
      (d) =>
        `hook: https://${sub}${d}.com${j('/api/', 'webhooks/')}${rand(18, '0123456789')}/${rand(68, B62 + '_-')}\n`,
    ),
  ),
  'telegram-bot-token': [8, 9, 10].map((n) => `bot ${rand(n, '123456789')}:${j('A', rand(34, B62 + '_-'))}\n`),
  'sendgrid-key': [`SG_KEY=${j('S', 'G.')}${rand(22)}.${rand(43)}\n`],
  jwt: [
    `token: ${j('ey', 'J')}${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url').slice(3)}.${Buffer.from(`{"sub":"${rand(10)}"}`).toString('base64url')}.${rand(43, B62 + '_-')}\n`,
  ],
  'url-password': [`DATABASE_URL=postgres://app:${rand(16)}@db.internal:5432/app\n`],
  'authorization-header': [`curl -H "Authorization: Bearer ${rand(40)}" https://api.example.net\n`],
  'terraform-cloud-token': [`tfc ${rand(14)}${j('.atlas', 'v1.')}${rand(67, B62 + '_-')}\n`],
  'doppler-token': ['pt', 'st', 'sa', 'ct', 'scim', 'audit'].map((t) => `DOPPLER=${j('dp', '.')}${t}.${rand(43)}\n`),
  'age-secret-key': [`${j('AGE-SECRET', '-KEY-1')}${rand(58, 'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L')}\n`],
  'fernet-key': [`f = Fernet(b"${Buffer.from(rand(32)).toString('base64url').slice(0, 43)}=")\n`],
  'sourcegraph-token': [`SRC=${j('sg', 'p_')}${rand(16, HEX)}_${rand(40, HEX)}\n`],
  'huggingface-org-token': [
    `HF=${j('api', '_org_')}${rand(34, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')}\n`,
  ],
  'harness-token': ['pat', 'sat'].map((p) => `H=${p}.${rand(22)}.${rand(24)}.${rand(20)}\n`),
  'dynatrace-token': [`DT=${j('dt0', 'c01.')}${rand(24, UPPER)}.${rand(64, UPPER)}\n`],
  'authress-key': ['_', '-'].map(
    (sep) =>
      `A=sc_${rand(12, LOWER36)}.${rand(5, LOWER36)}${j('.ac', 'c', sep)}${rand(20, LOWER36)}.${rand(60, LOWER36)}\n`,
  ),
  'airtable-pat': [`AIRTABLE=${j('pa', 't')}${rand(14)}.${rand(64, HEX)}\n`],
  'facebook-access-token': ['EAAM', 'EAAC'].map((p) => `FB=${j(p.slice(0, 2), p.slice(2))}${rand(120)}\n`),
  'easypost-key': ['EZAK', 'EZTK'].map((p) => `EP=${j(p.slice(0, 2), p.slice(2))}${rand(54)}\n`),
  'intra42-client-secret': [`S=${j('s-s4', 't2ud-')}${rand(64, HEX)}\n`],
  'onepassword-secret-key': [
    `OP=${j('A', '3-')}${rand(6, 'ABCDEFGHJKLMNPQRSTVWXYZ23456789')}-${rand(11, 'ABCDEFGHJKLMNPQRSTVWXYZ23456789')}-${rand(5, 'ABCDEFGHJKLMNPQRSTVWXYZ23456789')}-${rand(5, 'ABCDEFGHJKLMNPQRSTVWXYZ23456789')}-${rand(5, 'ABCDEFGHJKLMNPQRSTVWXYZ23456789')}\n`,
  ],
  'flyio-token': [
    `${j('fo', '1_')}${rand(43)}`,
    `${j('fm1', 'a_')}${b64(120)}`,
    `${j('fm1', 'r_')}${b64(120)}`,
    `${j('fm', '2_')}${b64(120)}`,
  ].map((t) => `FLY=${t}\n`),
  'flutterwave-key': ['FLWSECK', 'FLWPUBK'].map(
    (p) => `FW=${j(p.slice(0, 3), p.slice(3))}-${rand(32, 'abcdefgh0123456789')}-X\n`,
  ),
  'twitter-bearer-token': [`BEARER=${'A'.repeat(22)}${rand(80)}\n`],
  'mailchimp-api-key': [`MC=${rand(32, HEX)}${j('-u', 's1')}4\n`],
  'discord-bot-token': [`BOT=M${rand(23)}.${rand(6)}.${rand(27)}\n`],
  'sidekiq-credential': ['BUNDLE_ENTERPRISE__CONTRIBSYS__COM', 'BUNDLE_GEMS__CONTRIBSYS__COM'].map(
    (k) => `${k}: ${rand(8, HEX)}:${rand(8, HEX)}\n`,
  ),
  // spaces around "=": the old gate ("value=") never ran the rule on this
  'xml-key-value-secret': [
    `<add key="DbPassword" value="${rand(20)}" />\n`,
    `<ADD key = "ApiToken"  value = "${rand(20)}"/>\n`,
  ],
  'facebook-app-token': [15, 16].flatMap((n) =>
    ['|', '%7C'].map((sep) => `access_token=${rand(n, '123456789')}${sep}${rand(27, B62 + '_-')}\n`),
  ),
  'square-token': ['sq0csp-', 'sq0atp-', 'sq0idp-'].map(
    (p) => `SQ=${j(p.slice(0, 3), p.slice(3))}${rand(43, B62 + '_-')}\n`,
  ),
  'openshift-token': [`oc login --token=${j('sha256', '~')}${rand(43, B62 + '_-')}\n`],
  'teams-webhook': [
    `url: https://contoso.${j('webhook.', 'office.com')}/webhookb2/${rand(36, HEX)}@${rand(36, HEX)}/IncomingWebhook/${rand(32, HEX)}/${rand(36, HEX)}\n`,
  ],
  'adobe-client-secret': [`ADOBE=${j('p8', 'e-')}${rand(32, LOWER36)}\n`],
  'heroku-api-key-v2': [`HEROKU=${j('HR', 'KU-')}${rand(60, B62 + '_-')}\n`],
  'framework-secret-key': [
    'SECRET_KEY',
    'secret_key_base',
    'APP_KEY',
    'APP_SECRET',
    'NEXTAUTH_SECRET',
    'JWT_SECRET',
    'SESSION_SECRET',
    'COOKIE_SECRET',
    'secretKey',
  ].map((k) => `${k} = "${rand(40)}"\n`),
  'generic-secret-assignment#0': KEYWORD_SAMPLES.map((k) => `my_${k} = "${rand(24)}"\n`),
  'generic-secret-assignment#1': KEYWORD_SAMPLES.map((k) => `if ("${rand(24)}" === config.${k}) {}\n`).concat([
    `if ('${rand(24)}'  !==  user_token_value) {}\n`,
  ]),
  'generic-secret-assignment#2': KEYWORD_SAMPLES.map((k) => `<ns:db.${k}>${rand(24)}</ns:db.${k}>\n`),
};

const PREFILTER = compilePrefilter(OWN_ANCHORS);
/** Anchor hits with only the given anchors' offsets: a gate with just that literal. */
function only(hits: AnchorHits, keep: readonly string[]): AnchorHits {
  const at = new Map([...hits.at].filter(([a]) => keep.includes(a)));
  return { at, complete: true, has: (a) => at.has(a), any: (as) => as.some((a) => at.has(a)) };
}
const UNKNOWN: AnchorHits = { at: new Map(), complete: false, has: () => true, any: () => true };
const spans = (hs: { start: number; end: number }[]) => hs.map((h) => `${h.start}-${h.end}`).sort();

function gatedHits(r: RegexRule, text: string, hits: AnchorHits) {
  return r.anchors.length && !hits.any(r.anchors) ? [] : regexRuleHits(r, text, hits);
}

test('every regex rule finds each of its table secrets through its gate, exactly as without a gate', () => {
  REGEX_RULES.forEach((r, i) => {
    const samples = SAMPLES[KEYS[i]!];
    assert.ok(samples?.length, `no table samples for rule ${KEYS[i]}`);
    for (const text of samples) {
      const gated = gatedHits(r, text, PREFILTER.scan(text));
      assert.equal(gated.length, 1, `${KEYS[i]} did not find its secret through its gate in: ${text.slice(0, 100)}`);
      assert.deepEqual(
        spans(gated),
        spans(regexRuleHits(r, text, UNKNOWN)),
        `${KEYS[i]}: gated and ungated runs differ`,
      );
    }
  });
});

test('every literal of every gate is needed by some secret of its rule (a lost or misspelt literal fails here)', () => {
  REGEX_RULES.forEach((r, i) => {
    for (const anchor of new Set(r.anchors)) {
      const carried = SAMPLES[KEYS[i]!]!.some(
        (text) => gatedHits(r, text, only(PREFILTER.scan(text), [anchor])).length === 1,
      );
      assert.ok(carried, `${KEYS[i]}: no table secret is found through the literal "${anchor}" alone`);
    }
  });
});

test('the whole engine finds and redacts every table secret', async () => {
  for (const [key, samples] of Object.entries(SAMPLES)) {
    for (const text of samples) {
      const found = await scanText(text);
      assert.ok(found.length, `${key}: engine found nothing in: ${text.slice(0, 100)}`);
    }
  }
});

test('a rule with no way to find its starts is refused when the rules load', async () => {
  const src = await import('node:fs').then((fs) =>
    fs.readFileSync(new URL('../../src/secrets/rules.ts', import.meta.url), 'utf8'),
  );
  assert.match(src, /checkGates\(REGEX_RULES\);/);
  for (const r of REGEX_RULES) {
    const ways = [r.atAnchor, r.lead, r.startOf, r.unanchored].filter((w) => w !== undefined && w !== false).length;
    assert.equal(ways, 1, r.id);
  }
  assert.deepEqual(
    REGEX_RULES.filter((r) => r.unanchored !== undefined).map((r) => r.id),
    ['discord-bot-token'],
    'only formats without any literal run over the whole text',
  );
});
