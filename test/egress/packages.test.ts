// The package firewall's parts on their own (table-driven: rules, OSV ranges, npm paths,
// packument and index filtering) and its fail-closed edges through a real gateway with
// curl: a registry answering something that cannot be parsed, or too much, is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { policySchema, type PolicyInput } from '../../src/policy/index.ts';
import { mergePolicies } from '../../src/policy/merge.ts';
import { loadOrCreateCa, systemResolver } from '../../src/egress/index.ts';
import { PackageRules, loadMaliciousLists } from '../../src/egress/packages/index.ts';
import { classifyNpm, filterPackument } from '../../src/egress/packages/npm.ts';
import { distOfFilename, filterIndex, parseIndex, prefersJson } from '../../src/egress/packages/pypi.ts';
import { AirlockError } from '../../src/common/errors.ts';
import { recordedDecisionsOf, replayDecisions, learnPolicy } from '../../src/policy-replay/index.ts';
import { parse as parseYaml } from 'yaml';
import { curl, gateway, realRegistryReachable, requests, run, waitFor } from './helpers.ts';
import { testPki, httpsServer } from './pki.ts';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const H = 3_600_000;

function rules(
  packages: NonNullable<PolicyInput['egress']>['packages'],
  malicious: ReturnType<typeof loadMaliciousLists> = [],
): PackageRules {
  return new PackageRules(policySchema.parse({ egress: { packages } }).egress.packages, malicious, () => NOW);
}

function osvFile(doc: unknown): string {
  const f = join(mkdtempSync(join(tmpdir(), 'airlock-osv-')), 'osv.json');
  writeFileSync(f, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return f;
}

test('rules: deny by name, scope, glob and range; PyPI names normalised; an unparseable version meets deny ranges', () => {
  const r = rules({
    deny: [
      { id: 'exact', ecosystem: 'npm', name: 'left-pad' },
      { id: 'scope', ecosystem: 'npm', name: '@evil/*' },
      { id: 'glob', ecosystem: 'npm', name: 'eslint-plugin-bad*', versions: '>=2' },
      { id: 'range', ecosystem: 'npm', name: 'axios', versions: '>=1.7.0 <1.7.4', reason: 'CVE' },
      { id: 'py', ecosystem: 'pypi', name: 'Some_Pkg', versions: '~=1.2' },
    ],
  });
  const table: [Parameters<PackageRules['decideVersion']>, string][] = [
    [['npm', 'left-pad', '1.3.0', undefined], 'egress.packages.deny.exact'],
    [['npm', 'LEFT-PAD', '1.3.0', undefined], 'egress.packages.deny.exact'],
    [['npm', '@evil/x', '0.0.1', undefined], 'egress.packages.deny.scope'],
    [['npm', '@evilx/x', '0.0.1', undefined], 'egress.packages.default'],
    [['npm', 'eslint-plugin-badness', '2.1.0', undefined], 'egress.packages.deny.glob'],
    [['npm', 'eslint-plugin-badness', '1.9.0', undefined], 'egress.packages.default'],
    [['npm', 'axios', '1.7.2', undefined], 'egress.packages.deny.range'],
    [['npm', 'axios', '1.7.4', undefined], 'egress.packages.default'],
    [['npm', 'axios', 'not-a-version', undefined], 'egress.packages.deny.range'],
    [['pypi', 'some.pkg', '1.3', undefined], 'egress.packages.deny.py'],
    [['pypi', 'SOME--PKG', '1.2.5', undefined], 'egress.packages.deny.py'],
    [['pypi', 'some-pkg', '2.0', undefined], 'egress.packages.default'],
  ];
  for (const [args, rule] of table) assert.equal(r.decideVersion(...args).rule, rule, JSON.stringify(args));
  assert.equal(
    r.decideName('npm', 'left-pad')?.rule,
    'egress.packages.deny.exact',
    'a rule without range refuses the whole package',
  );
  assert.equal(r.decideName('npm', 'axios'), null, 'a ranged rule does not');
  assert.match(
    r.decideVersion('npm', 'axios', '1.7.2', undefined).reason,
    /"axios"@1\.7\.2 is denied \(>=1\.7\.0 <1\.7\.4\): CVE/,
  );
});

test('rules: allowlist with unlisted: deny, typosquats (and the org ignore list), minimum release age', () => {
  const r = rules({
    unlisted: 'deny',
    minimumReleaseAgeHours: 24,
    allow: [
      { id: 'react', ecosystem: 'npm', name: 'react', versions: '^18' },
      { id: 'lodahs', ecosystem: 'npm', name: 'lodahs' },
    ],
  });
  assert.equal(r.decideVersion('npm', 'react', '18.2.0', NOW - 48 * H).rule, 'egress.packages.allow.react');
  assert.equal(r.decideVersion('npm', 'react', '19.0.0', NOW - 48 * H).rule, 'egress.packages.unlisted');
  assert.equal(r.decideVersion('npm', 'vue', '3.0.0', NOW - 48 * H).rule, 'egress.packages.unlisted');
  assert.equal(
    r.decideVersion('npm', 'lodahs', '1.0.0', NOW - 48 * H).rule,
    'egress.packages.typosquat',
    'an allow rule does not excuse a typosquat',
  );
  assert.equal(r.decideVersion('npm', 'react', '18.2.0', NOW - 2 * H).rule, 'egress.packages.minimumReleaseAgeHours');
  assert.match(
    r.decideVersion('npm', 'react', '18.2.0', null).reason,
    /publish time is unknown/,
    'unknown publish time: fail closed',
  );
  const open = rules({ typosquat: { ignore: ['lodahs'] } });
  assert.equal(open.decideName('npm', 'lodahs'), null);
  for (const [eco, name] of [
    ['npm', 'l0dash'],
    ['npm', 'expresss'],
    ['pypi', 'reqeusts'],
    ['pypi', 'djang0'],
  ] as const) {
    assert.equal(open.decideName(eco, name)?.rule, 'egress.packages.typosquat', name);
  }
  for (const [eco, name] of [
    ['npm', 'lodash'],
    ['npm', 'safe-lib'],
    ['pypi', 'requests'],
    ['pypi', 'Django'],
  ] as const)
    assert.equal(open.decideName(eco, name), null, name);
  assert.equal(rules({ typosquat: { mode: 'off' } }).decideName('npm', 'l0dash'), null);
});

test('OSV list: versions, ranges (introduced/fixed/last_affected), every version, withdrawn; a bad file is a policy error naming it', () => {
  const list = loadMaliciousLists([
    osvFile({
      vulns: [
        { id: 'MAL-1', affected: [{ package: { ecosystem: 'npm', name: 'evil' } }] },
        {
          id: 'GHSA-2',
          affected: [
            {
              package: { ecosystem: 'npm', name: 'lib' },
              ranges: [{ type: 'SEMVER', events: [{ introduced: '1.2.0' }, { fixed: '1.2.5' }] }],
            },
          ],
        },
        {
          id: 'PYSEC-3',
          affected: [
            {
              package: { ecosystem: 'PyPI', name: 'Py_Lib' },
              ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '2.0' }] }],
              versions: ['3.1'],
            },
          ],
        },
        {
          id: 'MAL-4',
          withdrawn: '2026-01-01T00:00:00Z',
          affected: [{ package: { ecosystem: 'npm', name: 'cleared' } }],
        },
      ],
    }),
  ]);
  const r = rules({}, list);
  const d = (eco: 'npm' | 'pypi', n: string, v: string) => r.decideVersion(eco, n, v, undefined).rule;
  assert.equal(r.decideName('npm', 'evil')?.rule, 'egress.packages.malicious');
  assert.equal(d('npm', 'lib', '1.2.0'), 'egress.packages.malicious');
  assert.equal(d('npm', 'lib', '1.2.4'), 'egress.packages.malicious');
  assert.equal(d('npm', 'lib', '1.2.5'), 'egress.packages.default');
  assert.equal(d('npm', 'lib', '1.1.9'), 'egress.packages.default');
  assert.equal(d('pypi', 'py-lib', '2.0'), 'egress.packages.malicious');
  assert.equal(d('pypi', 'py.lib', '2.0.1'), 'egress.packages.default');
  assert.equal(d('pypi', 'py-lib', '3.1'), 'egress.packages.malicious');
  assert.equal(d('npm', 'cleared', '1.0.0'), 'egress.packages.default');
  for (const bad of ['{not json', JSON.stringify([{ id: 'x' }])]) {
    const f = osvFile(bad);
    assert.throws(
      () => loadMaliciousLists([f]),
      (e: unknown) => e instanceof AirlockError && e.kind === 'POLICY_INVALID' && e.message.includes(f),
    );
  }
  assert.throws(
    () => loadMaliciousLists(['/nonexistent/osv.json']),
    (e: unknown) => e instanceof AirlockError && /cannot read \/nonexistent\/osv\.json/.test(e.message),
  );
});

test('npm paths: packuments, scoped names (%2f), manifests, tarballs; anything else is refused, never guessed', () => {
  const table: [string, unknown][] = [
    ['/lodash', { kind: 'packument', name: 'lodash' }],
    ['/@scope%2fpkg', { kind: 'packument', name: '@scope/pkg' }],
    ['/@scope/pkg', { kind: 'packument', name: '@scope/pkg' }],
    ['/lodash/4.17.21', { kind: 'manifest', name: 'lodash', spec: '4.17.21' }],
    ['/lodash/-/lodash-4.17.21.tgz', { kind: 'tarball', name: 'lodash', version: '4.17.21' }],
    ['/@scope/pkg/-/pkg-1.0.0-beta.1.tgz', { kind: 'tarball', name: '@scope/pkg', version: '1.0.0-beta.1' }],
    ['/@scope/pkg/-/@scope/pkg-1.0.0.tgz', { kind: 'tarball', name: '@scope/pkg', version: '1.0.0' }],
    ['/-/v1/search', { kind: 'api' }],
  ];
  for (const [p, want] of table) assert.deepEqual(classifyNpm(p), want, p);
  for (const p of [
    '/lodash/-/other-1.0.0.tgz',
    '/lodash/-/lodash-latest.tgz',
    '/lodash//x',
    '/%zz',
    '/lodash/a/b',
    '/ba d',
    '/lodash/-/lodash-1.0.0.tgz/x',
  ]) {
    assert.equal(classifyNpm(p).kind, 'bad', p);
  }
});

test('packument filtering: denied versions and their times vanish, latest never points at one, corgi stays abbreviated', () => {
  const r = rules({ deny: [{ id: 'd', ecosystem: 'npm', name: 'p', versions: '>=2' }] });
  const doc = {
    name: 'p',
    'dist-tags': { latest: '2.0.0', next: '3.0.0-rc.1', old: '1.0.0' },
    readme: 'x',
    versions: {
      '1.0.0': { name: 'p', version: '1.0.0', dist: {}, readme: 'r' },
      '1.5.0': { name: 'p', version: '1.5.0', dist: {} },
      '2.0.0': { name: 'p', version: '2.0.0', dist: {} },
      '3.0.0-rc.1': { name: 'p', version: '3.0.0-rc.1', dist: {} },
    },
    time: { '1.0.0': '2020-01-01T00:00:00Z', '2.0.0': '2021-01-01T00:00:00Z', modified: '2021-01-01T00:00:00Z' },
  };
  const full = filterPackument(doc, 'p', r, false);
  assert.deepEqual(Object.keys(full.doc.versions as object), ['1.0.0', '1.5.0']);
  assert.deepEqual(full.doc['dist-tags'], { old: '1.0.0', latest: '1.5.0' });
  assert.deepEqual(Object.keys(full.doc.time as object).sort(), ['1.0.0', 'modified']);
  assert.deepEqual(
    full.denied.map((d) => d.version),
    ['2.0.0', '3.0.0-rc.1'],
  );
  const corgi = filterPackument(doc, 'p', r, true);
  assert.equal((corgi.doc.versions as Record<string, Record<string, unknown>>)['1.0.0']!.readme, undefined);
  assert.equal(corgi.doc.readme, undefined);
  const none = filterPackument(
    { ...doc, 'dist-tags': { latest: '2.0.0' }, versions: { '2.0.0': { version: '2.0.0' } } },
    'p',
    r,
    false,
  );
  assert.equal(none.kept, 0);
  assert.deepEqual(none.doc['dist-tags'], {}, 'no latest at all rather than a denied one');
  for (const bad of [
    null,
    [],
    'x',
    { versions: [] },
    { name: 'other', versions: {} },
    { versions: { '1.0.0': 'str' } },
  ]) {
    assert.throws(() => filterPackument(bad, 'p', r, true), JSON.stringify(bad));
  }
});

test('PyPI: file names, JSON and HTML index filtering, client format preference', () => {
  assert.deepEqual(distOfFilename('Foo_Bar-1.0.post1-py3-none-any.whl'), { name: 'Foo_Bar', version: '1.0.post1' });
  assert.deepEqual(distOfFilename('foo-bar-baz-2.0rc1.tar.gz'), { name: 'foo-bar-baz', version: '2.0rc1' });
  assert.deepEqual(distOfFilename('foo-1.0-py3-none-any.whl.metadata'), { name: 'foo', version: '1.0' });
  for (const f of ['foo.tar.gz', 'foo-bar.whl', 'foo-1.0.exe', 'x']) assert.equal(distOfFilename(f), null, f);
  const r = rules({ deny: [{ ecosystem: 'pypi', name: 'foo', versions: '>=2' }] });
  const json = Buffer.from(
    JSON.stringify({
      meta: { 'api-version': '1.1' },
      name: 'foo',
      versions: ['1.0', '2.0'],
      files: [
        { filename: 'foo-1.0.tar.gz', url: 'https://f/foo-1.0.tar.gz', hashes: { sha256: 'aa' } },
        { filename: 'foo-2.0-py3-none-any.whl', url: 'https://f/foo-2.0-py3-none-any.whl', hashes: {} },
        { filename: 'bar-1.0.tar.gz', url: 'https://f/bar-1.0.tar.gz', hashes: {} },
      ],
    }),
  );
  const j = filterIndex(parseIndex(json, 'application/vnd.pypi.simple.v1+json'), 'foo', r, true);
  const doc = JSON.parse(j.body) as { files: { filename: string }[]; versions: string[] };
  assert.deepEqual(
    doc.files.map((f) => f.filename),
    ['foo-1.0.tar.gz'],
  );
  assert.deepEqual(doc.versions, ['1.0']);
  assert.deepEqual(j.denied.map((d) => d.rule).sort(), ['egress.packages.deny[0]', 'egress.packages.unrecognized']);
  const html = Buffer.from(
    '<html><body><a href="https://f/foo-1.0.tar.gz#sha256=aa" data-requires-python="&gt;=3.8">foo-1.0.tar.gz</a><a href="https://f/foo-2.0.tar.gz">foo-2.0.tar.gz</a></body></html>',
  );
  const h = filterIndex(parseIndex(html, 'text/html; charset=utf-8'), 'foo', r, false);
  assert.match(
    h.body,
    /<a href="https:\/\/f\/foo-1\.0\.tar\.gz#sha256=aa" data-requires-python="&gt;=3\.8">foo-1\.0\.tar\.gz<\/a>/,
  );
  assert.doesNotMatch(h.body, /foo-2\.0/);
  assert.throws(() => parseIndex(Buffer.from('{"files": 3}'), 'application/vnd.pypi.simple.v1+json'));
  assert.throws(() => parseIndex(Buffer.from('x'), 'application/octet-stream'));
  assert.equal(
    prefersJson('application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01'),
    true,
  );
  assert.equal(prefersJson('text/html'), false);
  assert.equal(prefersJson(undefined), false);
});

test('policy merge: a repo policy can tighten the package firewall but not loosen it', () => {
  const org = {
    egress: {
      packages: {
        mode: 'enforce',
        minimumReleaseAgeHours: 72,
        deny: [{ ecosystem: 'npm', name: 'a' }],
        unlisted: 'deny',
        allow: [
          { ecosystem: 'npm', name: 'x' },
          { ecosystem: 'npm', name: 'y' },
        ],
        malicious: ['/etc/osv.json'],
        typosquat: { mode: 'deny', ignore: ['lodahs'] },
      },
    },
  };
  const repo = {
    egress: {
      packages: {
        mode: 'off',
        minimumReleaseAgeHours: 1,
        deny: [{ ecosystem: 'npm', name: 'b' }],
        unlisted: 'allow',
        allow: [
          { ecosystem: 'npm', name: 'x' },
          { ecosystem: 'npm', name: 'z' },
        ],
        malicious: ['/tmp/mine.json'],
        typosquat: { mode: 'off', ignore: ['expresss'] },
      },
    },
  };
  const p = mergePolicies([
    { kind: 'org', origin: 'org', raw: org },
    { kind: 'repo', origin: 'repo', raw: repo },
  ]).policy.egress.packages;
  assert.equal(p.mode, 'enforce');
  assert.equal(p.minimumReleaseAgeHours, 72);
  assert.deepEqual(
    p.deny.map((r) => r.name),
    ['a', 'b'],
  );
  assert.equal(p.unlisted, 'deny');
  assert.deepEqual(
    p.allow.map((r) => r.name),
    ['x'],
  );
  assert.deepEqual(p.malicious, ['/etc/osv.json'], 'only the org names host files');
  assert.equal(p.typosquat.mode, 'deny');
  assert.deepEqual(p.typosquat.ignore, ['lodahs']);
  assert.throws(() => policySchema.parse({ egress: { packages: { malicious: ['relative.json'] } } }));
});

async function fixture(
  answer: (res: import('node:http').ServerResponse) => void,
  packages: NonNullable<PolicyInput['egress']>['packages'] = {},
) {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['registry.npmjs.org']), (_s, res) => answer(res));
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pkg-gw-'));
  const ca = await loadOrCreateCa({ keysDir: join(dir, 'keys') });
  const g = await gateway(
    {
      allow: [{ host: 'registry.npmjs.org', ports: [up.port] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [up.port] }],
      packages,
    },
    { map: { 'registry.npmjs.org': '127.0.0.1' }, tls: { ca, upstreamCa: [pki.caPem] } },
  );
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const get = (path: string) => curl(['-x', g.url, '--cacert', caFile, `https://registry.npmjs.org:${up.port}${path}`]);
  return {
    g,
    up,
    get,
    dir,
    close: async () => {
      await g.gw.close();
      await up.close();
    },
  };
}

test('fail closed through the gateway: metadata that is not JSON, too large, or the wrong package is refused with the rule', async () => {
  let body = 'this is not json';
  const f = await fixture(
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    },
    { maxMetadataBytes: 4096 },
  );
  try {
    let r = await f.get('/some-lib');
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-airlock-rule'], 'egress.packages.unparseable');
    assert.match(r.body, /"error":"airlock egress: denied by egress\.packages\.unparseable/);
    body = JSON.stringify({
      name: 'some-lib',
      versions: { '1.0.0': { version: '1.0.0', readme: 'x'.repeat(10_000) } },
    });
    r = await f.get('/some-lib');
    assert.equal(r.headers['x-airlock-rule'], 'egress.packages.maxMetadataBytes', r.headers['x-airlock-reason']);
    body = JSON.stringify({ name: 'other-lib', versions: {} });
    r = await f.get('/some-lib');
    assert.equal(
      r.headers['x-airlock-rule'],
      'egress.packages.unparseable',
      'a packument for another name is not trusted',
    );
    r = await f.get('/some-lib/-/other-1.0.0.tgz');
    assert.equal(r.headers['x-airlock-rule'], 'egress.packages.unrecognized');
    const denied = requests(f.g.events)
      .filter((e) => e.decision === 'deny')
      .map((e) => e.rule);
    assert.deepEqual(denied, [
      'egress.packages.unparseable',
      'egress.packages.maxMetadataBytes',
      'egress.packages.unparseable',
      'egress.packages.unrecognized',
    ]);
    assert.equal(
      f.up.seen.filter((s) => s.url.endsWith('.tgz')).length,
      0,
      'the unrecognised tarball never went upstream',
    );
    assert.ok(
      f.up.seen.every((s) => !s.headers['if-none-match']),
      'no conditional request: a 304 could not be filtered',
    );
  } finally {
    await f.close();
  }
});

test('with mode: off the registry is a plain tunnel again (nothing decided, nothing intercepted)', async () => {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['registry.npmjs.org']), (_s, res) => {
    res.writeHead(200);
    res.end('not json');
  });
  const g = await gateway(
    {
      allow: [{ host: 'registry.npmjs.org', ports: [up.port] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [up.port] }],
      packages: { mode: 'off' },
    },
    { map: { 'registry.npmjs.org': '127.0.0.1' } },
  );
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pkg-off-'));
  writeFileSync(join(dir, 'ca.pem'), pki.caPem);
  try {
    const r = await curl([
      '-x',
      g.url,
      '--cacert',
      join(dir, 'ca.pem'),
      `https://registry.npmjs.org:${up.port}/lodahs`,
    ]);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'not json');
  } finally {
    await g.gw.close();
    await up.close();
  }
});

test('the real npm registry through the firewall, when this machine reaches it: install passes, a denied range is filtered', async (t) => {
  if (!(await realRegistryReachable(t))) return;
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pkg-real-'));
  const ca = await loadOrCreateCa({ keysDir: join(dir, 'keys') });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const g = await gateway(
    {
      presets: ['npm'],
      allowCidrs: [{ id: 'registry-net', cidr: '203.0.113.0/24', ports: [443] }],
      packages: { deny: [{ id: 'no-7', ecosystem: 'npm', name: 'is-number', versions: '>=7' }] },
    },
    { resolver: systemResolver(), tls: { ca } },
  );
  try {
    const proj = join(dir, 'p');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', private: true }));
    const npm = (spec: string) =>
      run(
        'npm',
        [
          'install',
          spec,
          '--registry=https://registry.npmjs.org/',
          `--proxy=${g.url}`,
          `--https-proxy=${g.url}`,
          `--cafile=${join(dir, 'ca.pem')}`,
          '--no-audit',
          '--no-fund',
          '--fetch-retries=0',
          '--cache',
          join(dir, 'cache'),
          '--userconfig',
          join(dir, 'npmrc'),
        ],
        { cwd: proj, timeout: 120_000 },
      );
    const r = await npm('is-number');
    assert.equal(r.code, 0, r.stderr);
    const v = (
      JSON.parse(readFileSync(join(proj, 'node_modules', 'is-number', 'package.json'), 'utf8')) as { version: string }
    ).version;
    assert.match(v, /^6\./, 'latest (7.x) was filtered: the newest allowed version installed');
    const ev = g.events.find((e) => e.type === 'egress.package');
    assert.equal(ev?.rule, 'egress.packages.deny.no-7');
  } finally {
    await g.gw.close();
  }
});

test('a registry path that is not the one decided (dot segments, re-encoded characters) is refused, never forwarded', async () => {
  const f = await fixture(
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'safe-lib', versions: {} }));
    },
    { deny: [{ ecosystem: 'npm', name: 'evil-pkg' }] },
  );
  try {
    for (const p of [
      '/evil-pkg/../safe-lib',
      '/safe-lib/./x/..',
      '/safe-lib/%2e%2e/evil-pkg',
      '/evil-pkg/-/evil-pkg-1.0.0.tgz/../../../safe-lib',
    ]) {
      const r = await curl([
        '-x',
        f.g.url,
        '--path-as-is',
        '--cacert',
        join(f.dir, 'ca.pem'),
        `https://registry.npmjs.org:${f.up.port}${p}`,
      ]);
      assert.equal(r.status, 403, p);
      assert.match(r.headers['x-airlock-rule'] ?? '', /^egress\.packages\.(unrecognized|deny\[0\])$/, p);
    }
    assert.equal(f.up.seen.length, 0, 'nothing reached the registry');
  } finally {
    await f.close();
  }
});

test('modes.packages: record lets an unlisted package through with its would-be verdict, an explicit deny rule still refuses; shadow records the candidate', async () => {
  const pki = await testPki();
  const up = await httpsServer(await pki.leaf(['registry.npmjs.org']), (_s, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end('tarball');
  });
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pkg-modes-'));
  const ca = await loadOrCreateCa({ keysDir: join(dir, 'keys') });
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const egress = (packages: NonNullable<PolicyInput['egress']>['packages']) => ({
    allow: [{ host: 'registry.npmjs.org', ports: [up.port] }],
    allowCidrs: [{ cidr: '127.0.0.1/32', ports: [up.port] }],
    packages,
  });
  const strict = { unlisted: 'deny' as const, deny: [{ id: 'bad', ecosystem: 'npm' as const, name: 'evil' }] };
  const start = (modes: Record<string, string>, candidate?: unknown) =>
    gateway(undefined, {
      map: { 'registry.npmjs.org': '127.0.0.1' },
      tls: { ca, upstreamCa: [pki.caPem] },
      policy: policySchema.parse({ egress: egress(strict), modes }),
      candidate: candidate ? policySchema.parse(candidate) : undefined,
    });
  const rec = await start({ packages: 'record' });
  const sh = await start(
    { packages: 'shadow' },
    { egress: egress({ deny: [{ id: 'no-pad', ecosystem: 'npm', name: 'left-pad' }] }) },
  );
  try {
    const get = (g: typeof rec, path: string) =>
      curl(['-x', g.url, '--cacert', caFile, `https://registry.npmjs.org:${up.port}${path}`]);
    type Pkg = { mode?: string; wouldBe?: { action: string; rule: string; policy: string } };
    const pkgOf = async (g: typeof rec, n: number) =>
      (await waitFor(() => requests(g.events).filter((e) => e.data?.package)[n], 'the package event')).data!
        .package as Pkg;
    let r = await get(rec, '/left-pad/-/left-pad-1.3.0.tgz');
    assert.equal(r.status, 200, r.headers['x-airlock-reason']);
    const lifted = await pkgOf(rec, 0);
    assert.deepEqual(
      [lifted.mode, lifted.wouldBe?.action, lifted.wouldBe?.rule, lifted.wouldBe?.policy],
      ['record', 'deny', 'egress.packages.unlisted', 'effective'],
    );
    r = await get(rec, '/evil/-/evil-1.0.0.tgz');
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-airlock-rule'], 'egress.packages.deny.bad', 'an explicit deny rule holds in record mode');
    r = await get(sh, '/left-pad/-/left-pad-1.3.0.tgz');
    assert.equal(r.status, 403, 'shadow mode enforces the current policy');
    assert.equal(r.headers['x-airlock-rule'], 'egress.packages.unlisted');
    const shadowed = await pkgOf(sh, 0);
    assert.deepEqual(
      [shadowed.mode, shadowed.wouldBe?.rule, shadowed.wouldBe?.policy],
      ['shadow', 'egress.packages.deny.no-pad', 'candidate'],
    );
    // replay: the recorded fetches decided again by the package rules of another policy
    const stored = requests(rec.events).map((e, i) => ({
      ...e,
      seq: i + 1,
      id: `ev-${i}`,
      ts: new Date().toISOString(),
      session: 'test',
      severity: e.severity ?? 'info',
      decision: e.decision ?? null,
      rule: e.rule ?? null,
      data: e.data ?? {},
      prevHash: '',
      hash: '',
    }));
    const rep = replayDecisions(
      stored.flatMap((e) => recordedDecisionsOf(e)),
      policySchema.parse({ egress: egress({}) }),
    );
    assert.deepEqual(
      rep.newlyAllowed.filter((c) => c.layer === 'packages').map((c) => [c.what, c.before.rule, c.after.rule]),
      [
        ['npm left-pad@1.3.0', 'egress.packages.unlisted', 'egress.packages.default'],
        ['npm evil', 'egress.packages.deny.bad', 'egress.packages.default'],
      ],
    );
    // learn: the package the record session fetched becomes an approved exact version; the denied one is not learned
    const learned = learnPolicy(
      stored.flatMap((e) => recordedDecisionsOf(e)),
      { org: [], current: null, sessions: ['test'] },
    );
    assert.deepEqual(learned.packages, ['npm left-pad']);
    const pkgPolicy = policySchema.parse(parseYaml(learned.text)).egress.packages;
    assert.equal(pkgPolicy.unlisted, 'deny');
    assert.deepEqual(
      pkgPolicy.allow.map((r) => [r.ecosystem, r.name, r.versions]),
      [['npm', 'left-pad', '1.3.0']],
    );
    assert.ok(!learned.text.includes('evil'));
  } finally {
    await rec.gw.close();
    await sh.gw.close();
    await up.close();
  }
});

test('policy merge: without an org policy, a repo policy still cannot name host files or excuse typosquats', () => {
  // 'org' merge rules let a repo value apply when no org file exists; these keys say "only the
  // org policy", so a repo's (the agent can propose airlock.yaml edits) value never applies.
  const repo = {
    egress: { packages: { malicious: ['/etc/shadow'], typosquat: { ignore: ['expresss'] } } },
    review: { approvals: { groups: { sec: ['agent@x'] } }, overrideRoles: ['sec'] },
  };
  const merged = mergePolicies([{ kind: 'repo', origin: 'airlock.yaml', raw: repo }]);
  assert.deepEqual(merged.policy.egress.packages.malicious, [], 'a repo names no host file');
  assert.deepEqual(merged.policy.egress.packages.typosquat.ignore, []);
  assert.deepEqual(merged.policy.review.approvals.groups, {});
  assert.deepEqual(merged.policy.review.overrideRoles, []);
  assert.match(merged.provenance['egress.packages.malicious']!, /org policy only/);
});
