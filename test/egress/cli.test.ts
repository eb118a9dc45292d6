import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './helpers.ts';

// `airlock egress check` as a user runs it: decisions per target, distinct exit codes.

const bin = join(import.meta.dirname, '..', '..', 'src', 'cli', 'run.ts');
const dir = mkdtempSync(join(tmpdir(), 'airlock-egress-cli-'));
const policy = join(dir, 'airlock.yaml');
writeFileSync(
  policy,
  'egress:\n  presets: [npm]\n  allowCidrs:\n    - { id: registry-net, cidr: 203.0.113.0/24, ports: [443] }\n  deny:\n    - { id: no-gist, host: gist.github.com }\n',
);
const env = { ...process.env, AIRLOCK_ORG_POLICY: '' };
const check = (args: string[]) => run(process.execPath, [bin, 'egress', 'check', ...args], { env, cwd: dir });

test('all allowed: exit 0, the preset named', async () => {
  const r = await check([
    '--policy',
    policy,
    '--resolve',
    '*=203.0.113.7',
    '--json',
    'https://registry.npmjs.org/left-pad',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.results[0].rule, 'egress.preset.npm');
  assert.equal(j.results[0].address, '203.0.113.7');
});

test('any denied: exit 77 and each row names its rule', async () => {
  const r = await check([
    '--policy',
    policy,
    '--resolve',
    '*=203.0.113.7',
    '--resolve',
    'sneaky.example=10.0.0.1',
    '--allow-host',
    'sneaky.example',
    '--json',
    'https://registry.npmjs.org/',
    'http://registry.npmjs.org/',
    'gist.github.com:443',
    'https://sneaky.example/',
    '169.254.169.254:80',
    'https://registry.npmjs.org.evil.com/',
  ]);
  assert.equal(r.code, 77, r.stderr);
  const rules = JSON.parse(r.stdout).results.map((x: { rule: string }) => x.rule);
  assert.deepEqual(rules, [
    'egress.preset.npm',
    'egress.default-deny',
    'egress.deny.no-gist',
    'builtin.private-address',
    'builtin.private-address',
    'egress.default-deny',
  ]);
});

test('every target gets a decision: unparseable ones are denied with builtin.bad-target, as the live gateway does (text and --json)', async () => {
  const targets = [
    'github.com:443@evil.example:443',
    'http://0o177.0.0.1/',
    '::1:443',
    'nohostport',
    'ftp://example.com/',
    'http://registry.npmjs.org/%2561dmin',
  ];
  const r = await check(['--policy', policy, '--resolve', '*=203.0.113.7', '--json', ...targets]);
  assert.equal(r.code, 77, r.stderr);
  const rows = JSON.parse(r.stdout).results as { target: string; decision: string; rule: string }[];
  assert.deepEqual(
    rows.map((x) => [x.target, x.decision, x.rule]),
    targets.map((t, i) => [t, 'deny', i === 5 ? 'builtin.ambiguous-path' : 'builtin.bad-target']),
  );
  const text = await check(['--policy', policy, '--resolve', '*=203.0.113.7', ...targets]);
  assert.equal(text.code, 77, text.stderr);
  for (const t of targets)
    assert.match(
      text.stdout,
      new RegExp(`${t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s+deny\\s+builtin\\.(bad-target|ambiguous-path)`),
    );
});

test('userinfo is not the destination: https://user:tok@host/ is decided as the CONNECT to host:443 the client sends; ssh:// is a tcp tunnel to port 22', async () => {
  const r = await check([
    '--policy',
    policy,
    '--resolve',
    '*=203.0.113.7',
    '--json',
    'https://user:tok@registry.npmjs.org/',
    'https://registry.npmjs.org@evil.example/',
    'ssh://git@registry.npmjs.org/x',
  ]);
  const rows = JSON.parse(r.stdout).results as { decision: string; rule: string; host: string; port: number }[];
  assert.deepEqual(
    rows.map((x) => [x.decision, x.rule, x.host, x.port]),
    [
      ['allow', 'egress.preset.npm', 'registry.npmjs.org', 443],
      ['deny', 'egress.default-deny', 'evil.example', 443],
      ['deny', 'egress.default-deny', 'registry.npmjs.org', 22],
    ],
  );
});

test('a tunnel to port 80 (CONNECT host:80, https://host:80/) needs a rule naming port 80 for tcp', async () => {
  const p2 = join(dir, 'port80.yaml');
  writeFileSync(
    p2,
    'egress:\n  allow:\n    - { id: web, host: web.example }\n    - { id: raw80, host: raw.example, ports: [80], schemes: [tcp] }\n',
  );
  const r = await check([
    '--policy',
    p2,
    '--resolve',
    '*=93.184.216.34',
    '--json',
    'http://web.example/',
    'web.example:80',
    'https://web.example:80/',
    'raw.example:80',
  ]);
  const rows = JSON.parse(r.stdout).results as { decision: string; rule: string }[];
  assert.deepEqual(
    rows.map((x) => `${x.decision} ${x.rule}`),
    ['allow egress.allow.web', 'deny egress.default-deny', 'deny egress.default-deny', 'allow egress.allow.raw80'],
  );
});

test('bad options: exit 64 with a hint, no stack trace', async () => {
  for (const args of [
    ['--resolve', 'x', 'a.com:443'],
    ['--allow-host', 'a b', 'a.com:443'],
  ]) {
    const r = await check(args);
    assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /hint:/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('--allow-host over a public suffix is a usage error naming why', async () => {
  for (const host of ['*.com', '*.co.uk', '*.github.io']) {
    const r = await check(['--allow-host', host, 'a.com:443']);
    assert.equal(r.code, 64, `${host}: ${r.stderr}`);
    assert.match(r.stderr, /public suffix/);
  }
});
