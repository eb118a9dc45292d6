import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { AuditStore } from '../../src/audit/index.ts';
import { registrations } from '../../src/cli/commands/index.ts';
import { airlock, tmp, cleanup, makeRepo, ROOT } from '../helpers.ts';

// Issue 16: the CLI's start is paid by every command (and ~70 times by this suite).
// `--version` and `--help` load no command module, a command loads only the file that
// defines it. Evidence: a module loader hook (node:module registerHooks) in the real
// `bin/airlock` process writes down every file it loaded.

const HOOK = `import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(process.env.AIRLOCK_TEST_LOADED, loaded.join('\\n')));
`;

/** The project files (relative to the repo root: src/…, node_modules/…) that `airlock ARGS` loaded, and its result. */
function loadedBy(
  args: string[],
  cwd?: string,
  home?: string,
): { files: string[]; status: number | null; stdout: string; stderr: string } {
  const dir = tmp('airlock-lazy-');
  const hook = join(dir, 'hook.mjs');
  const out = join(dir, 'loaded.txt');
  writeFileSync(hook, HOOK);
  try {
    const r = airlock(args, {
      cwd,
      home: home ?? join(dir, 'home'),
      env: { NODE_OPTIONS: `--import=${hook}`, AIRLOCK_TEST_LOADED: out },
    });
    const files = readFileSync(out, 'utf8')
      .split('\n')
      .filter((u) => u.startsWith('file:'))
      .map((u) => relative(ROOT, fileURLToPath(u)))
      .filter((p) => !p.startsWith('..'));
    return { files, status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    cleanup(dir);
  }
}

const sources = (files: string[]) => files.filter((f) => f.startsWith('src/'));
const commandModules = (files: string[]) =>
  files.filter((f) => f.startsWith('src/cli/commands/') && f !== 'src/cli/commands/index.ts');
const outsideCliAndCommon = (files: string[]) => sources(files).filter((f) => !/^src\/(cli|common)\//.test(f));

test('--version, -V, --help, help, no command and an unknown command load no command module and no other layer', () => {
  for (const args of [['--version'], ['-V'], ['--help'], ['help'], [], ['rnu']]) {
    const r = loadedBy(args);
    assert.ok(r.files.includes('src/cli/main.ts'), `the hook saw the CLI start for ${JSON.stringify(args)}`);
    assert.deepEqual(commandModules(r.files), [], `airlock ${args.join(' ')} loaded command modules`);
    assert.deepEqual(outsideCliAndCommon(r.files), [], `airlock ${args.join(' ')} loaded other modules`);
  }
  const v = loadedBy(['--version']);
  assert.equal(v.status, 0);
  assert.equal(v.stdout.trim(), '0.1.0');
});

test('--help still lists every command, a typo still gets a suggestion and the usage exit code', () => {
  const h = loadedBy(['--help']);
  assert.equal(h.status, 0);
  for (const r of registrations)
    for (const term of Object.keys(r.commands))
      assert.match(h.stdout, new RegExp(`^  ${term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `, 'm'));
  const typo = loadedBy(['rnu']);
  assert.equal(typo.status, 64);
  assert.match(typo.stderr, /unknown command 'rnu'/);
  assert.match(typo.stderr, /Did you mean run\?/);
});

test('a command loads only the file that defines it (and what that file imports)', () => {
  const run = loadedBy(['run', '--help']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(commandModules(run.files), ['src/cli/commands/session.ts']);
  for (const [args, file] of [
    [['help', 'review'], 'review.ts'],
    [['policy', '--help'], 'policy.ts'],
    [['agents', '--help'], 'agents.ts'],
  ] as const) {
    const r = loadedBy([...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(commandModules(r.files).includes(`src/cli/commands/${file}`), `airlock ${args.join(' ')}`);
    for (const other of ['session.ts', 'mcp.ts', 'egress.ts', 'secrets.ts'])
      assert.ok(!r.files.includes(`src/cli/commands/${other}`), `airlock ${args.join(' ')} loaded ${other}`);
  }
});

test('the lazy table names exactly the top-level commands (with their arguments) each file defines', async () => {
  for (const r of registrations) {
    const program = new Command('airlock');
    (await r.load())(program);
    const defined = program.commands.map((c) =>
      [
        c.name(),
        ...c.registeredArguments.map((a) => {
          const n = a.name() + (a.variadic ? '...' : '');
          return a.required ? `<${n}>` : `[${n}]`;
        }),
      ].join(' '),
    );
    assert.deepEqual(defined.sort(), Object.keys(r.commands).sort());
  }
});

test('a later airlock run -- true on a commit loads neither secretlint nor the full detection engine (it scans nothing)', () => {
  const repo = makeRepo();
  const home = tmp('airlock-lazy-home-');
  try {
    // the commit's first session scans the base tree for secrets (and caches the result)
    assert.equal(airlock(['run', '--', 'true'], { cwd: repo, home }).status, 0);
    const r = loadedBy(['run', '--', 'true'], repo, home);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.files.includes('src/session/session.ts'), 'the hook saw the session');
    assert.deepEqual(
      r.files.filter(
        (f) => f.includes('@secretlint/') || f === 'src/secrets/index.ts' || f === 'src/secrets/engine.ts',
      ),
      [],
    );
  } finally {
    cleanup(repo, home);
  }
});

test('the commands that reach a running session or read the record load neither the session core nor the policy engine', () => {
  for (const args of [
    ['sessions', '--json'],
    ['exec', 'ses-none', '--', 'true'],
    ['session', 'stop', 'ses-none'],
  ]) {
    const r = loadedBy(args);
    assert.ok(r.files.includes('src/session/client.ts'), `airlock ${args.join(' ')} went through the client entry`);
    assert.deepEqual(
      r.files.filter(
        (f) =>
          f.startsWith('node_modules/zod/') ||
          f.startsWith('node_modules/yaml/') ||
          f.startsWith('src/policy/') ||
          f === 'src/session/session.ts',
      ),
      [],
      `airlock ${args.join(' ')}`,
    );
  }
  assert.match(loadedBy(['exec', 'ses-none', '--', 'true']).stderr, /no such session: ses-none/);
});

/** The policy engine and the agent profiles' parsers: what a cached resolution spares `airlock run`. */
const policyEngine = (files: string[]) =>
  files.filter(
    (f) =>
      f.startsWith('node_modules/zod/') ||
      f.startsWith('node_modules/yaml/') ||
      f === 'src/agents/profiles.ts' ||
      (f.startsWith('src/policy/') && f !== 'src/policy/source.ts' && f !== 'src/policy/schema/mode-layers.ts'),
  );

test('a later airlock run with the same policy files loads neither zod, yaml nor the policy engine; a changed airlock.yaml is parsed and in force', () => {
  const repo = makeRepo();
  const home = tmp('airlock-lazy-home-');
  const git = (...a: string[]) =>
    execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.com', ...a], { cwd: repo });
  try {
    const first = loadedBy(['run', '--', 'true'], repo, home);
    assert.equal(first.status, 0, first.stderr);
    assert.ok(first.files.includes('node_modules/zod/index.js'), 'the first run resolves the policy');
    const again = loadedBy(['run', '--', 'true'], repo, home);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(again.files.includes('src/session/session.ts'), 'the hook saw the session');
    assert.deepEqual(policyEngine(again.files), []);
    // the next base commit tightens a limit: other text, another key, parsed again and applied
    writeFileSync(join(repo, 'airlock.yaml'), 'version: 1\nsandbox:\n  limits:\n    pids: 77\n');
    git('add', 'airlock.yaml');
    git('commit', '-qm', 'tighter');
    const changed = loadedBy(['run', '--', 'true'], repo, home);
    assert.equal(changed.status, 0, changed.stderr);
    assert.ok(changed.files.includes('node_modules/zod/index.js'), 'a changed policy file is parsed');
    const store = new AuditStore(join(home, 'audit.db'));
    const limits = (
      store.tables.prepare("SELECT data FROM events WHERE type = 'session.start' ORDER BY seq").all() as {
        data: string;
      }[]
    ).map((r) => (JSON.parse(r.data) as { limits: { pids: number } }).limits.pids);
    store.close();
    assert.equal(limits.length, 3);
    assert.notEqual(limits[1], 77);
    assert.equal(limits[2], 77);
  } finally {
    cleanup(repo, home);
  }
});
