import { test } from 'node:test';
import assert from 'node:assert/strict';
import { creator as presetCreator } from '@secretlint/secretlint-rule-preset-recommend';
import { generateCorpus, FAMILIES } from '../../bench/secrets-corpus.ts';
import { scanText, redactText, fingerprint } from '../../src/secrets/index.ts';
import { secretlintBaseline, secretlintHits } from '../../src/secrets/secretlint.ts';

const corpus = generateCorpus();
const overlaps = (a: { start: number; end: number }, b: { start: number; end: number }) =>
  a.start < b.end && a.end > b.start;
const baselineConfig = {
  rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: presetCreator }],
} as Parameters<typeof secretlintBaseline>[2];

test('every rule family in the corpus is detected in every context', async () => {
  const missed: string[] = [];
  const families = new Set<string>();
  for (const f of corpus) {
    for (const s of f.secrets) {
      if (s.family.startsWith('hard-')) continue;
      families.add(s.family);
      const found = await scanText(f.content, { path: f.path });
      if (!found.some((x) => overlaps(x, s))) missed.push(f.path);
    }
  }
  assert.deepEqual(missed, []);
  // the corpus covers what the engine promises
  for (const fam of [
    'aws-access-key-id',
    'gcp-api-key',
    'azure-storage-key',
    'github-token',
    'gitlab-token',
    'slack-token',
    'stripe-secret-key',
    'npm-token',
    'openai-api-key',
    'anthropic-api-key',
    'private-key-ec',
    'private-key-rsa',
    'private-key-openssh',
    'database-url-password',
    'jwt',
    'generic-assignment',
  ]) {
    assert.ok(families.has(fam), fam);
  }
  assert.ok(FAMILIES.length >= 25);
});

test('look-alike non-secrets (UUIDs, SHAs, integrity hashes, base64 images, documented examples, placeholders) are not flagged', async () => {
  const flagged: string[] = [];
  for (const f of corpus.filter((x) => x.lookalikes.length)) {
    const found = await scanText(f.content, { path: f.path });
    for (const x of found) flagged.push(`${f.path}:${x.line} ${x.rule}`);
  }
  assert.deepEqual(flagged, []);
});

test('EC private key whose body starts "MH" is found (secretlint alone misses it)', async () => {
  const f = corpus.find((x) => x.secrets[0]?.family === 'private-key-ec')!;
  assert.match(f.content, /BEGIN EC PRIVATE KEY-----\nMH/);
  const sl = await secretlintBaseline(f.content, f.path, baselineConfig);
  assert.equal(sl.length, 0, 'baseline should miss it (if this fails, secretlint fixed it)');
  const ours = await scanText(f.content, { path: f.path });
  assert.equal(ours.length, 1);
  assert.equal(ours[0]!.rule, 'private-key');
  assert.equal(ours[0]!.severity, 'critical');
});

test('a secretlint-disable comment in the text does not hide a secret', async () => {
  const key = 'AK' + 'IA' + 'Q3EGRKZ7XHP5WN2B';
  const text = `// secretlint-disable\nconst id = "${key}"; // secretlint-disable-line\n`;
  const found = await scanText(text);
  assert.ok(found.some((f) => text.slice(f.start, f.end).includes(key)));
  assert.ok((await secretlintHits(text, undefined)).length > 0, 'secretlint layer itself must not honour the comment');
});

test('findings carry a fingerprint and position, never the value', async () => {
  const tok = 'gh' + 'p_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C';
  const text = `line one\n  token: "${tok}"\n`;
  const [f, ...rest] = await scanText(text, { path: 'a.yml' });
  assert.equal(rest.length, 0);
  assert.equal(f!.line, 2);
  assert.equal(f!.column, 11);
  assert.equal(f!.endLine, 2);
  assert.equal(f!.endColumn, 11 + tok.length);
  assert.equal(f!.file, 'a.yml');
  assert.equal(f!.fingerprint, fingerprint(tok));
  assert.match(f!.fingerprint, /^[0-9a-f]{32}$/);
  assert.ok(!JSON.stringify(f).includes(tok.slice(4, 20)));
});

test('redaction removes every value, keeps line structure, and is stable on re-scan', async () => {
  for (const f of corpus.filter((x) => x.secrets.length && !x.secrets[0]!.family.startsWith('hard-'))) {
    const value = f.content.slice(f.secrets[0]!.start, f.secrets[0]!.end);
    const r = await redactText(f.content, { path: f.path });
    assert.ok(!r.text.includes(value), `${f.path}: value survived`);
    // no 12-char piece of the value survives either (no partial redaction)
    for (let i = 0; i + 12 <= value.length; i += 6)
      assert.ok(!r.text.includes(value.slice(i, i + 12)), `${f.path}: part of value survived`);
    assert.equal(r.text.split('\n').length, f.content.split('\n').length, `${f.path}: line count changed`);
    assert.match(r.text, /«REDACTED:[^:»]+(?::[^:»]+)*:[0-9a-f]{8}»/);
    assert.deepEqual(await scanText(r.text, { path: f.path }), [], `${f.path}: redacted text still has findings`);
  }
});

test('AWS secret key is redacted whole although secretlint reports a shifted range', async () => {
  const secret = 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7d';
  const text = `[default]\naws_secret_access_key = "${secret}"\nregion = x\n`;
  const r = await redactText(text);
  assert.equal(
    r.text,
    `[default]\naws_secret_access_key = "«REDACTED:aws-secret-access-key:${fingerprint(secret).slice(0, 8)}»"\nregion = x\n`,
  );
});

test('custom marker and multi-line private key keep the remaining lines in place', async () => {
  const f = corpus.find((x) => x.secrets[0]?.family === 'private-key-rsa' && x.path.endsWith('.ts'))!;
  const r = await redactText(f.content + 'after\n', { marker: (x) => `[${x.rule}]` });
  const before = f.content.split('\n');
  const after = r.text.split('\n');
  assert.equal(after.length, before.length + 1);
  assert.equal(after[after.length - 2], 'after');
  assert.ok(r.text.includes('[private-key]'));
});

test('allowlist by fingerprint or pattern suppresses exactly that value', async () => {
  const a = 'api_key = "a8f3k2m9x7q1w5e4r6t8y0u2i4o6p8"\n';
  const b = 'api_key = "Zq81mWc0Lr52Hk7Tn4Vb9Xs3Dp6Fy2Jg"\n';
  const [fa] = await scanText(a);
  assert.ok(fa);
  assert.deepEqual(
    await scanText(a, { allowlist: [{ fingerprint: fa.fingerprint.slice(0, 16), reason: 'fixture' }] }),
    [],
  );
  assert.equal((await scanText(b, { allowlist: [{ fingerprint: fa.fingerprint, reason: 'fixture' }] })).length, 1);
  assert.deepEqual(await scanText(a, { allowlist: [{ pattern: 'a8f3[a-z0-9]+', reason: 'fixture' }] }), []);
  assert.equal((await scanText(b, { allowlist: [{ pattern: 'a8f3[a-z0-9]+', reason: 'fixture' }] })).length, 1);
});

test('the cheap prefilter never changes what secretlint reports on the corpus', async () => {
  for (const f of corpus) {
    const gated = await secretlintHits(f.content, f.path);
    const full = await secretlintHits(f.content, f.path, { gate: false });
    assert.deepEqual(gated, full, f.path);
  }
});
