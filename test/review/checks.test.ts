import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChecks, createProposal } from '../../src/review/index.ts';
import { resolvePolicy, defaultPolicy, type Policy } from '../../src/policy/index.ts';
import type { ChangeSet, ChangedFile } from '../../src/review/types.ts';
import { setup, agentSession, BASE_FILES } from './fixture.ts';
import { TEXT_CAP } from '../../src/review/diff.ts';
import { checksummedToken } from '../../src/secrets/honeytokens.ts';

// Table tests per check on hand-built change sets (what an attacker's diff would add),
// plus diffs through git for what only git can show (attributes, binaries, symlinks).

function file(
  path: string,
  newText: string | null,
  opts: Partial<ChangedFile> & { oldText?: string | null; addedLines?: number[] } = {},
): ChangedFile {
  const lines = (newText ?? '').split('\n');
  const added = (opts.addedLines ?? lines.map((_, i) => i + 1)).map((n) => ({ line: n, text: lines[n - 1] ?? '' }));
  return {
    path,
    status: opts.oldText != null ? 'modified' : 'added',
    oldMode: '100644',
    newMode: '100644',
    oldBlob: '0'.repeat(40),
    newBlob: '1'.repeat(40),
    binary: false,
    newSize: (newText ?? '').length,
    added,
    deletedCount: 0,
    newText,
    oldText: null,
    binaryStrings: null,
    ...opts,
  };
}

function change(files: ChangedFile[]): ChangeSet {
  const added = files.reduce((n, f) => n + f.added.length, 0);
  return {
    base: 'b'.repeat(40),
    head: 'h'.repeat(40),
    commits: [],
    files,
    diff: '',
    diffSha256: '',
    addedLines: added,
    deletedLines: 0,
  };
}

async function rulesOf(files: ChangedFile[], policy: Policy = defaultPolicy()): Promise<string[]> {
  return (await runChecks(change(files), policy)).map((f) => `${f.rule}@${f.file}:${f.line}`);
}

test('injection: SQL and shell built from variables, in JS, TS and Python (parsed, not grepped)', async () => {
  const js = [
    'const id = req.params.id;',
    'db.query(`SELECT * FROM t WHERE id = ${id}`);', // 2 sql
    "db.query('SELECT * FROM t WHERE id = ?', [id]);", // bound: fine
    "const q = 'DELETE FROM t WHERE name = \\'' + req.body.name + \"'\";",
    'pool.execute(q);', // 5 sql via variable
    'child_process.exec(`tar czf ${req.query.f}`);', // 6 shell
    "execFile('tar', ['czf', req.query.f]);", // argv: fine
    'spawn(cmd, { shell: true });', // 8 shell
    "exec('ls -la');", // constant: fine
    "const s = 'SELECT ' + 'a FROM b'; db.query(s);", // literal concat: fine
  ].join('\n');
  const ts =
    "import { execSync } from 'node:child_process';\nexport function f(dir: string): string {\n  return execSync('du -sh ' + dir).toString();\n}\n";
  const py = [
    'import os, subprocess',
    'def h(cur, name, path):',
    '    cur.execute("SELECT * FROM users WHERE name = \'%s\'" % name)', // 3 sql
    '    cur.execute("SELECT * FROM users WHERE name = {}".format(name))', // 4 sql
    '    cur.execute("SELECT * FROM users WHERE name = %s", (name,))', // fine
    '    os.system("rm -rf " + path)', // 6 shell
    '    subprocess.run(f"ls {path}", shell=True)', // 7 shell
    '    subprocess.run(["ls", path])', // fine
    '    subprocess.run(path, shell=False)', // fine
  ].join('\n');
  assert.deepEqual(
    (await rulesOf([file('a.js', js), file('b.ts', ts), file('c.py', py)])).sort(),
    [
      'injection.shell@a.js:6',
      'injection.shell@a.js:8',
      'injection.shell@b.ts:3',
      'injection.shell@c.py:6',
      'injection.shell@c.py:7',
      'injection.sql@a.js:2',
      'injection.sql@a.js:5',
      'injection.sql@c.py:3',
      'injection.sql@c.py:4',
    ].sort(),
  );
  // only ADDED code is judged: the same call on an unchanged line is not a finding of this change
  assert.deepEqual(await rulesOf([file('a.js', js, { oldText: js, addedLines: [3] })]), []);
});

test('dependencies: sources, scripts, ranges, registries, denylist and typosquats across ecosystems', async () => {
  const pkgOld = JSON.stringify(
    { dependencies: { express: '4.19.2', chalk: '~5.3.0' }, scripts: { test: 'node --test' } },
    null,
    2,
  );
  const pkgNew = JSON.stringify(
    {
      dependencies: {
        express: '^4.19.2',
        chalk: '*',
        '1odash': '4.17.21',
        helper: 'github:someone/helper',
        'event-stream': '3.3.6',
      },
      scripts: { test: 'node --test', postinstall: 'node ./x.js' },
      publishConfig: { registry: 'https://npm.evil.example/' },
    },
    null,
    2,
  );
  const found = await rulesOf([
    file('package.json', pkgNew, { oldText: pkgOld }),
    file(
      'requirements.txt',
      'reqeusts==2.31.0\n--extra-index-url https://pypi.evil.example/simple\ngit+https://example.com/x.git#egg=x\n',
    ),
    file(
      'pyproject.toml',
      '[tool.poetry.dependencies]\npython = "^3.11"\nmylib = { git = "https://example.com/mylib.git" }\n',
    ),
    file(
      'go.mod',
      'module x\n\ngo 1.22\n\nrequire github.com/sirupsen/logrus v1.9.3\nreplace github.com/sirupsen/logrus => ../logrus\n',
    ),
    file(
      'Cargo.toml',
      '[package]\nname = "x"\nbuild = "build.rs"\n\n[dependencies]\nserde = "1"\nsecret = { git = "https://example.com/s.git" }\n',
    ),
    file(
      'package-lock.json',
      JSON.stringify({
        lockfileVersion: 3,
        packages: {
          '': {},
          'node_modules/leftpad': {
            version: '1.0.0',
            resolved: 'https://registry.evil.example/leftpad/-/leftpad-1.0.0.tgz',
          },
        },
      }),
    ),
  ]);
  const has = (r: string, f: string) =>
    assert.ok(
      found.some((x) => x.startsWith(`${r}@${f}`)),
      `${r} in ${f}: ${found.join(', ')}`,
    );
  has('dependencies.loosened', 'package.json'); // ~5.3.0 → *, 4.19.2 → ^4.19.2
  assert.equal(found.filter((x) => x.startsWith('dependencies.loosened@package.json')).length, 2);
  has('dependencies.typosquat', 'package.json'); // 1odash ~ lodash (confusable)
  has('dependencies.source', 'package.json'); // github:someone/helper
  has('dependencies.denylisted', 'package.json'); // event-stream@3.3.6
  has('dependencies.install-script', 'package.json');
  has('dependencies.registry', 'package.json');
  has('dependencies.typosquat', 'requirements.txt'); // reqeusts ~ requests
  has('dependencies.registry', 'requirements.txt');
  has('dependencies.source', 'requirements.txt');
  has('dependencies.source', 'pyproject.toml');
  has('dependencies.source', 'go.mod');
  has('dependencies.source', 'Cargo.toml');
  has('dependencies.install-script', 'Cargo.toml');
  has('dependencies.registry', 'package-lock.json');
  has('dependencies.added', 'package-lock.json');
  // popular names themselves and ordinary new packages are not typosquats
  const benign = await rulesOf([
    file(
      'package.json',
      JSON.stringify({ dependencies: { lodash: '4.17.21', 'my-internal-thing': '1.0.0', ms: '2.1.3' } }),
    ),
  ]);
  assert.deepEqual(
    benign.filter((r) => !r.startsWith('dependencies.added')),
    [],
  );
});

test('dependencies: npm specs read as npm reads them (a bare tarball path is a file, not a registry package); ranges by semver', async () => {
  const pkg = JSON.stringify({
    dependencies: {
      a: 'evil.tgz',
      b: 'git+ssh://git@example.com/x.git',
      c: 'npm:@evil/pkg@1.0.0',
      d: 'link:../d',
      e: 'weird:thing',
      f: '1.2.3',
    },
  });
  const found = await rulesOf([file('package.json', pkg)]);
  const sources = found.filter((x) => x.startsWith('dependencies.source@package.json')).length;
  assert.equal(sources, 4, `a, b, d, e are not from the registry: ${found.join(', ')}`);
  const old = JSON.stringify({ dependencies: { x: '~1.2.3', y: '^1.2.3', z: '1.2.3' } });
  const wider = JSON.stringify({ dependencies: { x: '>=1.2.3 <1.3.0', y: '>=1.2.3', z: '1.2.3 || 1.2.4' } });
  const loosened = (await rulesOf([file('package.json', wider, { oldText: old })])).filter((x) =>
    x.startsWith('dependencies.loosened'),
  );
  assert.equal(
    loosened.length,
    2,
    `y (^ → open-ended) and z (pinned → two versions) loosened, x is the same range: ${loosened.join(', ')}`,
  );
});

test('Trojan Source: invisible and confusable characters; ordinary non-Latin text is fine', async () => {
  const found = await rulesOf([
    file(
      'x.js',
      [
        'const ok = "Привет, мир";', // Cyrillic text in a string: fine
        'const isAdmin\u200B = false;', // zero-width space in an identifier
        'if (\u0430dmin) { grant(); }', // Cyrillic а in a Latin identifier
        'const x = 1;\u0007', // BEL control character
        'const y = "\u2067";', // bidi isolate
      ].join('\n'),
    ),
  ]);
  assert.deepEqual(
    found.sort(),
    ['unicode.bidi@x.js:5', 'unicode.confusable@x.js:3', 'unicode.control@x.js:4', 'unicode.invisible@x.js:2'].sort(),
  );
});

test('size and paths: binaries, oversized files, huge diffs, symlinks out of the repo, submodules; dotfiles are never skipped', async () => {
  const policy = resolvePolicy([
    { kind: 'org', origin: 't', raw: { review: { limits: { maxFileBytes: 100, maxDiffLines: 5 } } } },
  ]).policy;
  const found = await rulesOf(
    [
      file('tool', null, { binary: true, newMode: '100755', newSize: 50, added: [] }),
      file('big.txt', 'x'.repeat(200) + '\na\nb\nc\nd\ne'),
      file('link', '../../../../etc/passwd', { newMode: '120000', added: [] }),
      file('vendor/lib', null, { newMode: '160000', added: [] }),
      file('.env', `AWS_ACCESS_KEY_ID=${'AKIA' + 'Z7QH3KXW2M4PL9TB'}`),
    ],
    policy,
  );
  for (const r of [
    'size.binary@tool',
    'size.file@big.txt',
    'size.diff@:0',
    'protectedPaths.symlink@link',
    'protectedPaths.submodule@vendor/lib',
    'secrets.secretlint/aws/AWSAccessKeyID@.env:1',
  ]) {
    assert.ok(
      found.some((x) => x.startsWith(r)),
      `${r} in ${found.join(', ')}`,
    );
  }
});

test('checks are configurable: off, severity, paths; org settings win', async () => {
  const js = 'db.query("SELECT * FROM t WHERE a = " + a);\n';
  const off = resolvePolicy([
    { kind: 'repo', origin: 'r', raw: { review: { checks: { injection: { enabled: false } } } } },
  ]).policy;
  assert.deepEqual(await rulesOf([file('a.js', js)], off), []);
  const orgOn = resolvePolicy([
    { kind: 'org', origin: 'o', raw: { review: { checks: { injection: { enabled: true, severity: 'critical' } } } } },
    { kind: 'repo', origin: 'r', raw: { review: { checks: { injection: { enabled: false, severity: 'low' } } } } },
  ]).policy;
  const f = await runChecks(change([file('a.js', js)]), orgOn);
  assert.deepEqual(
    f.map((x) => [x.rule, x.severity, x.blocking]),
    [['injection.sql', 'critical', true]],
    'a repo cannot switch off or soften an org check',
  );
  const scoped = resolvePolicy([
    { kind: 'repo', origin: 'r', raw: { review: { checks: { injection: { paths: ['src/**'] } } } } },
  ]).policy;
  assert.deepEqual(await rulesOf([file('test/a.js', js)], scoped), []);
});

test("an agent-written .gitattributes cannot hide a file from the diff; the policy is the base commit's, not the agent's", async () => {
  const env = setup('');
  try {
    agentSession(env, 's-attr', {
      '.gitattributes': '*.js -diff\n*.js binary\n',
      'src/q.js': 'module.exports = (db, id) => db.query("SELECT * FROM t WHERE id = " + id);\n',
      'airlock.yaml': 'review:\n  checks:\n    injection:\n      enabled: false\n',
    });
    const p = (await createProposal(env.store, 's-attr', { home: env.home, orgPolicy: undefined })).proposal;
    const rules = p.findings.map((f) => `${f.rule}@${f.file}`).sort();
    assert.ok(rules.includes('injection.sql@src/q.js'), rules.join(', '));
    assert.ok(rules.includes('protectedPaths.protected@.gitattributes'));
    assert.ok(rules.includes('protectedPaths.protected@airlock.yaml'));
    assert.ok(!rules.some((r) => r.startsWith('size.binary')), 'the JS file is still text to the review');
  } finally {
    env.done();
  }
});

test('a manifest the review could not load (its old version over the text cap) is a blocking finding, not a silent pass', async () => {
  // The agent shrinks a huge package.json to one that pulls code from a git repository:
  // whole texts are only loaded when both versions fit TEXT_CAP, so the new text is absent.
  const big = JSON.stringify({ name: 'x', description: 'a'.repeat(TEXT_CAP + 1024), dependencies: {} });
  const env = setup('', { ...BASE_FILES, 'package.json': big });
  try {
    agentSession(env, 's-bigmanifest', {
      'package.json': JSON.stringify({ name: 'x', dependencies: { helper: 'github:someone/helper' } }, null, 2),
    });
    const p = (await createProposal(env.store, 's-bigmanifest', { home: env.home, orgPolicy: undefined })).proposal;
    const f = p.findings.find((x) => x.rule === 'dependencies.unparseable' && x.file === 'package.json');
    assert.ok(f, p.findings.map((x) => x.rule).join(', '));
    assert.equal(f.blocking, true);
  } finally {
    env.done();
  }
  // same for a manifest git sees as binary
  const found = await runChecks(change([file('package.json', null, { binary: true, added: [] })]), defaultPolicy());
  assert.ok(
    found.some((x) => x.rule === 'dependencies.unparseable' && x.blocking),
    found.map((x) => x.rule).join(', '),
  );
});

test('a secret inside a binary file is found even where the policy allows binaries; a binary too large to scan is named', async () => {
  const env = setup('version: 1\nreview:\n  limits:\n    allowBinary: true\n');
  try {
    const token = checksummedToken('ghp_');
    agentSession(env, 's-binsecret', {
      'assets/blank.bin': '\u0000\u0001\u0002\u0003\u0000\u0004', // no printable run at all: scanned, nothing found
      'assets/logo.bin': `\u0000\u0001PNGish\u0000\u0002${token}\u0000\u00ff\u0000tail`,
    });
    const p = (await createProposal(env.store, 's-binsecret', { home: env.home, orgPolicy: env.orgPolicy })).proposal;
    const rules = p.findings.map((f) => `${f.rule}@${f.file}`);
    assert.ok(
      !rules.some((r) => r.startsWith('size.binary')),
      `binaries are allowed by this policy: ${rules.join(', ')}`,
    );
    const hit = p.findings.find((f) => f.check === 'secrets' && f.file === 'assets/logo.bin');
    assert.ok(hit, `the token inside the binary is found: ${rules.join(', ')}`);
    assert.match(hit.message, /inside a binary file/);
    assert.ok(!JSON.stringify(p.findings).includes(token), 'the finding names a fingerprint, not the value');
    assert.ok(
      !rules.some((r) => r.startsWith('secrets.unscanned-binary')),
      `both binaries were scanned: ${rules.join(', ')}`,
    );
    assert.ok(
      !rules.some((r) => r.endsWith('@assets/blank.bin') && r.startsWith('secrets.')),
      'a binary without secrets has no secrets finding',
    );
  } finally {
    env.done();
  }
  const over = await runChecks(
    change([file('blob.bin', null, { binary: true, added: [], newSize: TEXT_CAP + 1 })]),
    defaultPolicy(),
  );
  assert.ok(over.some((f) => f.rule === 'secrets.unscanned-binary' && f.file === 'blob.bin'));
});

test('a source file the injection check could not load is named, not silently skipped', async () => {
  const big = file('src/huge.js', null, {
    added: [{ line: 1, text: 'db.query("SELECT " + x)' }],
    newSize: TEXT_CAP + 1,
  });
  const rules = await rulesOf([big]);
  assert.ok(rules.includes('injection.unchecked@src/huge.js:0'), rules.join(', '));
  // a loaded file with nothing wrong gets no such finding
  assert.ok(
    !(await rulesOf([file('src/ok.js', "db.query('SELECT 1');")])).some((r) => r.startsWith('injection.unchecked')),
  );
});
