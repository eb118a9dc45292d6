import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultPolicy } from '../../src/policy/index.ts';
import { plantHoneytokens, matchHoneytokens, isHoneytoken, scanText, fingerprint } from '../../src/secrets/index.ts';
import { generateCorpus } from '../../bench/secrets-corpus.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('honeytokens: planted 0600, random per session, realistic enough that the engine flags each one by its fingerprint', async () => {
  const dirs = [mkdtempSync(join(tmpdir(), 'airlock-home-')), mkdtempSync(join(tmpdir(), 'airlock-home-'))];
  const ws = mkdtempSync(join(tmpdir(), 'airlock-ws-'));
  try {
    const p = defaultPolicy().secrets;
    const pol = { ...p, honeytokens: { enabled: true, kinds: [...p.honeytokens.kinds, 'env' as const] } };
    const a = plantHoneytokens(dirs[0]!, ws, pol).tokens;
    const b = plantHoneytokens(dirs[1]!, null, pol).tokens;
    assert.deepEqual([...new Set(a.map((t) => t.kind))].sort(), [
      'anthropic-api-key',
      'aws-access-key-id',
      'aws-secret-access-key',
      'database-password',
      'github-token',
      'npm-token',
      'openai-api-key',
      'ssh-private-key',
      'stripe-secret-key',
    ]);
    assert.ok(existsSync(join(ws, '.env')));
    for (const t of a) {
      assert.equal(statSync(t.path).mode & 0o777, 0o600, t.path);
      assert.equal(t.fingerprint, fingerprint(t.value));
      const findings = await scanText(readFileSync(t.path, 'utf8'), { path: t.path });
      assert.ok(
        findings.some((f) => f.fingerprint === t.fingerprint),
        `${t.kind} not recognised as a secret`,
      );
      assert.ok(isHoneytoken(t.fingerprint, a) && isHoneytoken(t.value, a));
    }
    // fresh values per session
    for (const t of a) assert.ok(!b.some((u) => u.value === t.value), `${t.kind} repeated across sessions`);
    assert.ok(!isHoneytoken(b[0]!.value, a));
  } finally {
    for (const d of [...dirs, ws]) rmSync(d, { recursive: true, force: true });
  }
});

test('honeytokens: any use is recognised, raw, URL-encoded, base64 (basic auth) or re-wrapped key', () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-home-'));
  try {
    const { tokens } = plantHoneytokens(home, null, defaultPolicy().secrets);
    const npm = tokens.find((t) => t.kind === 'npm-token')!;
    const aws = tokens.find((t) => t.kind === 'aws-access-key-id')!;
    const ssh = tokens.find((t) => t.kind === 'ssh-private-key')!;
    assert.deepEqual(
      matchHoneytokens(`Authorization: Basic ${Buffer.from(`u:${npm.value}`).toString('base64')}`, tokens).map(
        (t) => t.kind,
      ),
      ['npm-token'],
    );
    assert.deepEqual(
      matchHoneytokens(`Credential=${aws.value}/20261102/us-east-1/s3/aws4_request`, tokens).map((t) => t.kind),
      ['aws-access-key-id'],
    );
    assert.deepEqual(
      matchHoneytokens(`q=${encodeURIComponent('x ' + npm.value)}`, tokens).map((t) => t.kind),
      ['npm-token'],
    );
    assert.deepEqual(
      matchHoneytokens(JSON.stringify({ content: ssh.value }), tokens).map((t) => t.kind),
      ['ssh-private-key'],
    );
    assert.deepEqual(matchHoneytokens('nothing to see here', tokens), []);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('honeytokens: never written through a symlink, never overwrite, nothing when disabled', () => {
  const root = mkdtempSync(join(tmpdir(), 'airlock-home-'));
  try {
    const home = join(root, 'home');
    const target = join(root, 'host-aws');
    mkdirSync(home);
    mkdirSync(target);
    symlinkSync(target, join(home, '.aws'));
    writeFileSync(join(home, '.npmrc'), 'save-exact=true\n');
    symlinkSync(join(root, 'victim'), join(home, '.git-credentials'));
    const { tokens } = plantHoneytokens(home, null, defaultPolicy().secrets);
    assert.deepEqual(readdirSync(target), []);
    assert.ok(!existsSync(join(root, 'victim')));
    assert.equal(readFileSync(join(home, '.npmrc'), 'utf8'), 'save-exact=true\n');
    assert.ok(!tokens.some((t) => t.kind.startsWith('aws') || t.kind === 'npm-token'));
    const off = defaultPolicy().secrets;
    assert.deepEqual(
      plantHoneytokens(mkdtempSync(join(root, 'h2-')), null, {
        ...off,
        honeytokens: { enabled: false, kinds: off.honeytokens.kinds },
      }).tokens,
      [],
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'src', 'cli', 'run.ts'), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
}

test('airlock secrets scan: exit 1 with file/line/column/rule/fingerprint and no value; --json; exit 0 when clean; 66 for a missing path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-scan-'));
  try {
    const files = generateCorpus()
      .filter((f) => f.secrets[0]?.family === 'stripe-secret-key')
      .slice(0, 2);
    const values: string[] = [];
    files.forEach((f, i) => {
      writeFileSync(join(dir, `f${i}.txt`), f.content);
      values.push(f.content.slice(f.secrets[0]!.start, f.secrets[0]!.end));
    });
    mkdirSync(join(dir, 'clean'));
    writeFileSync(join(dir, 'clean', 'a.ts'), 'export const a = 1;\n');
    symlinkSync('/etc/passwd', join(dir, 'clean', 'pw'));

    const human = cli(['secrets', 'scan', dir]);
    assert.equal(human.status, 1, human.stderr);
    assert.match(human.stdout, /f0\.txt:\d+:\d+\s+\S+\s+high\s+[0-9a-f]{32}/);
    assert.match(human.stderr, /skipped .*pw \(symlink\)/);
    for (const v of values) assert.ok(!human.stdout.includes(v) && !human.stderr.includes(v));

    const js = cli(['secrets', 'scan', '--json', dir]);
    assert.equal(js.status, 1);
    const out = JSON.parse(js.stdout) as {
      findings: { file: string; line: number; column: number; rule: string; fingerprint: string }[];
      skipped: unknown[];
    };
    assert.equal(out.findings.length, 2);
    for (const f of out.findings) {
      assert.ok(f.file.startsWith(dir) && f.line > 0 && f.column > 0 && f.rule && /^[0-9a-f]{32}$/.test(f.fingerprint));
    }
    for (const v of values) assert.ok(!js.stdout.includes(v));

    const clean = cli(['secrets', 'scan', join(dir, 'clean', 'a.ts')]);
    assert.equal(clean.status, 0);
    assert.match(clean.stdout, /no secrets found/);

    const missing = cli(['secrets', 'scan', join(dir, 'nope')]);
    assert.equal(missing.status, 66);
    assert.match(missing.stderr, /no such file or directory: .*nope/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);

    const bad = cli(['secrets', 'scan', '--max-file-kb', 'lots', dir]);
    assert.equal(bad.status, 64);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
