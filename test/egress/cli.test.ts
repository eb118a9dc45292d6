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
writeFileSync(policy, 'egress:\n  presets: [npm]\n  allowCidrs:\n    - { id: registry-net, cidr: 203.0.113.0/24, ports: [443] }\n  deny:\n    - { id: no-gist, host: gist.github.com }\n');
const env = { ...process.env, AIRLOCK_ORG_POLICY: '' };
const check = (args: string[]) => run(process.execPath, [bin, 'egress', 'check', ...args], { env, cwd: dir });

test('all allowed: exit 0, the preset named', async () => {
  const r = await check(['--policy', policy, '--resolve', '*=203.0.113.7', '--json', 'https://registry.npmjs.org/left-pad']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.results[0].rule, 'egress.preset.npm');
  assert.equal(j.results[0].address, '203.0.113.7');
});

test('any denied: exit 77 and each row names its rule', async () => {
  const r = await check(['--policy', policy, '--resolve', '*=203.0.113.7', '--resolve', 'sneaky.example=10.0.0.1', '--allow-host', 'sneaky.example', '--json',
    'https://registry.npmjs.org/', 'http://registry.npmjs.org/', 'gist.github.com:443', 'https://sneaky.example/', '169.254.169.254:80', 'https://registry.npmjs.org.evil.com/']);
  assert.equal(r.code, 77, r.stderr);
  const rules = JSON.parse(r.stdout).results.map((x: { rule: string }) => x.rule);
  assert.deepEqual(rules, ['egress.preset.npm', 'egress.default-deny', 'egress.deny.no-gist', 'builtin.private-address', 'builtin.private-address', 'egress.default-deny']);
});

test('bad input: exit 64 with a hint, no stack trace', async () => {
  for (const args of [['nohostport'], ['--resolve', 'x', 'a.com:443'], ['--allow-host', 'a b', 'a.com:443']]) {
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
