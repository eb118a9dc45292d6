// The package firewall with the real npm CLI inside a real sandbox session, against a real
// registry (verdaccio 6.8 on loopback, no uplinks) that registry.npmjs.org resolves to for
// the session's gateway. What an agent sees: denied versions are gone from metadata, a
// denied package or file is a 403 naming the rule, and a lockfile pinning a now-denied
// version fails with that rule; every denial is in the audit log.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/session/index.ts';
import '../../src/session/layers.ts';
import { mapResolver } from '../../src/egress/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';
import { shellQuote } from '../../src/common/index.ts';
import { testPki } from './pki.ts';
import { startVerdaccio, publishNpm, type Verdaccio } from './registries.ts';

const DAY = 86_400_000;
let home: string;
let repo: string;
let reg: Verdaccio;
let session: Session;
let registry: string;

/** npm inside the sandbox, in a fresh project dir; returns status and combined output. */
async function npm(
  project: string,
  args: string[],
  files: Record<string, string> = {},
): Promise<{ status: number; out: string }> {
  const setup = Object.entries(files)
    .map(([f, text]) => `printf '%s' ${shellQuote(text)} > ${f}`)
    .join('; ');
  const script = `set -e; mkdir -p /tmp/${project}; cd /tmp/${project}; printf '{"name":"p","version":"1.0.0","private":true}' > package.json; ${setup}
npm ${args.join(' ')} --registry=${registry} --no-audit --no-fund --no-update-notifier --fetch-retries=0 --loglevel=error 2>&1`;
  const r = await session.run(['bash', '-c', script]);
  return { status: r.status ?? -1, out: r.stdout + r.stderr };
}

async function installed(project: string, name: string): Promise<string | null> {
  const r = await session.run([
    'bash',
    '-c',
    `cat /tmp/${project}/node_modules/${name}/package.json 2>/dev/null || true`,
  ]);
  return r.stdout ? (JSON.parse(r.stdout) as { version: string }).version : null;
}

describe('package firewall: npm install inside a sandbox against verdaccio', () => {
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo();
    const pki = await testPki();
    reg = await startVerdaccio(await pki.leaf(['registry.npmjs.org']));
    registry = `https://registry.npmjs.org:${reg.port}/`;
    const old = new Date(Date.now() - 30 * DAY);
    await publishNpm(reg, pki.caPem, 'safe-lib', '1.0.0', { publishedAt: old });
    await publishNpm(reg, pki.caPem, 'safe-lib', '1.1.0', { publishedAt: old });
    await publishNpm(reg, pki.caPem, 'safe-lib', '1.2.0'); // published now: younger than the minimum age
    await publishNpm(reg, pki.caPem, 'pinned-lib', '1.0.0', { publishedAt: old });
    await publishNpm(reg, pki.caPem, 'pinned-lib', '1.0.1', { publishedAt: old });
    await publishNpm(reg, pki.caPem, 'evil-pkg', '1.0.0', { publishedAt: old });
    await publishNpm(reg, pki.caPem, 'lodahs', '4.17.21', { publishedAt: old });
    await publishNpm(reg, pki.caPem, '@acme/util', '1.0.0', { publishedAt: old });
    await publishNpm(reg, pki.caPem, '@acme/util', '2.0.0', { publishedAt: old });
    const osv = join(home, 'malicious.json');
    writeFileSync(
      osv,
      JSON.stringify({
        vulns: [
          {
            id: 'MAL-2026-7',
            summary: 'steals npm tokens',
            affected: [
              {
                package: { ecosystem: 'npm', name: 'evil-pkg' },
                ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }] }],
              },
            ],
          },
        ],
      }),
    );
    const org = join(home, 'org.yaml');
    writeFileSync(
      org,
      `egress:
  allow: [{ id: registry, host: registry.npmjs.org, ports: [${reg.port}] }]
  allowCidrs: [{ id: loopback-registry, cidr: 127.0.0.1/32, ports: [${reg.port}] }]
  packages:
    minimumReleaseAgeHours: 48
    malicious: [${osv}]
    deny:
      - { id: pinned-cve, ecosystem: npm, name: pinned-lib, versions: "1.0.1", reason: "CVE-2026-0001 in 1.0.1" }
      - { id: acme-old, ecosystem: npm, name: "@acme/*", versions: "<2" }
`,
    );
    session = await Session.open({
      repo,
      home,
      orgPolicy: org,
      egressUpstream: { resolver: mapResolver({ 'registry.npmjs.org': '127.0.0.1' }), upstreamCa: [pki.caPem] },
    });
  });
  after(async () => {
    await session?.stop('test');
    await reg?.close();
    cleanup(home, repo);
  });

  const events = (type: string) => session.store.query({ session: session.id, type });

  it('a version younger than the minimum release age disappears: npm installs the newest old enough one', async () => {
    const r = await npm('age', ['install', 'safe-lib']);
    assert.equal(r.status, 0, r.out);
    assert.equal(
      await installed('age', 'safe-lib'),
      '1.1.0',
      'latest (1.2.0, published now) was filtered and latest re-pointed',
    );
    const exact = await npm('age-exact', ['install', 'safe-lib@1.2.0']);
    assert.notEqual(exact.status, 0, exact.out);
    assert.match(exact.out, /No matching version|ETARGET/, exact.out);
    assert.equal(await installed('age-exact', 'safe-lib'), null);
    const ev = events('egress.package').find((e) => (e.data as { package: string }).package === 'safe-lib');
    assert.equal(ev?.rule, 'egress.packages.minimumReleaseAgeHours');
    assert.deepEqual(
      (ev?.data as { denied: { version: string }[] }).denied.map((d) => d.version),
      ['1.2.0'],
    );
  });

  it('a package on the known-malicious list is refused with a 403 naming the rule and the OSV id', async () => {
    const r = await npm('mal', ['install', 'evil-pkg']);
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /403/);
    assert.match(r.out, /egress\.packages\.malicious/, r.out);
    assert.match(r.out, /MAL-2026-7/);
    assert.equal(await installed('mal', 'evil-pkg'), null);
    const denied = events('egress.request').filter((e) => e.rule === 'egress.packages.malicious');
    assert.ok(denied.length > 0 && denied.every((e) => e.decision === 'deny'));
    assert.equal((denied[0]!.data as { package: { name: string } }).package.name, 'evil-pkg');
    const start = events('egress.gateway.start')[0]?.data as {
      packages: { mode: string; maliciousEntries: number; minimumReleaseAgeHours: number };
    };
    assert.deepEqual(
      [start.packages.mode, start.packages.maliciousEntries, start.packages.minimumReleaseAgeHours],
      ['enforce', 1, 48],
      'the start record says how the firewall is set',
    );
  });

  it('a typosquat of a popular name is refused', async () => {
    const r = await npm('typo', ['install', 'lodahs']);
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /egress\.packages\.typosquat/, r.out);
    assert.match(r.out, /lodash/);
  });

  it('a scope glob with a version range: @acme/util@1 refused, @acme/util@2 installs', async () => {
    const bad = await npm('scope1', ['install', '@acme/util@1.0.0']);
    assert.notEqual(bad.status, 0, bad.out);
    assert.equal(await installed('scope1', '@acme/util'), null);
    const ok = await npm('scope2', ['install', '@acme/util']);
    assert.equal(ok.status, 0, ok.out);
    assert.equal(await installed('scope2', '@acme/util'), '2.0.0');
  });

  it('a lockfile pinning a now-denied version fails on the tarball with the rule named; nothing is installed', async () => {
    // the lockfile a developer committed before 1.0.1 was denied: npm ci fetches the tarball straight from it
    const tarball = `${registry}pinned-lib/-/pinned-lib-1.0.1.tgz`;
    const lock = JSON.stringify({
      name: 'p',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'p', version: '1.0.0', dependencies: { 'pinned-lib': '1.0.1' } },
        'node_modules/pinned-lib': { version: '1.0.1', resolved: tarball },
      },
    });
    const pkg = JSON.stringify({ name: 'p', version: '1.0.0', private: true, dependencies: { 'pinned-lib': '1.0.1' } });
    const r = await npm('lock', ['ci'], { 'package.json': pkg, 'package-lock.json': lock });
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /403/);
    assert.match(r.out, /egress\.packages\.deny\.pinned-cve/, r.out);
    assert.match(r.out, /CVE-2026-0001/);
    assert.equal(await installed('lock', 'pinned-lib'), null);
    const ev = events('egress.request').find(
      (e) => e.rule === 'egress.packages.deny.pinned-cve' && String((e.data as { path: string }).path).endsWith('.tgz'),
    );
    assert.ok(ev, 'the tarball refusal is recorded');
    assert.deepEqual((ev!.data as { package: unknown }).package, {
      ecosystem: 'npm',
      name: 'pinned-lib',
      kind: 'tarball',
      version: '1.0.1',
    });
    // the allowed neighbour still installs from the same lockfile shape
    const okLock = lock.replaceAll('1.0.1', '1.0.0');
    const ok = await npm('lock-ok', ['ci'], {
      'package.json': pkg.replace('1.0.1', '1.0.0'),
      'package-lock.json': okLock,
    });
    assert.equal(ok.status, 0, ok.out);
    assert.equal(await installed('lock-ok', 'pinned-lib'), '1.0.0');
  });
});
