// The package firewall with the real pip inside a real sandbox session, against a PEP 503/691
// simple index served from files on loopback (wheels built by the test) that pypi.org and
// files.pythonhosted.org resolve to for the session's gateway. Denied versions disappear
// from the index (JSON for pip, HTML for older clients), denied files are a 403 naming the
// rule, and a requirements file pinning a now-denied version fails.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../../src/session/index.ts';
import '../../src/session/layers.ts';
import { mapResolver } from '../../src/egress/index.ts';
import { makeRepo, tmp, cleanup } from '../helpers.ts';
import { testPki } from './pki.ts';
import { buildWheel, simpleIndex, type SimpleIndex, type WheelFile } from './registries.ts';

const DAY = 86_400_000;
let home: string;
let repo: string;
let index: SimpleIndex;
let session: Session;
let indexUrl: string;
let files: string;
let wheels: WheelFile[] = [];

async function pip(
  target: string,
  args: string[],
  files: Record<string, string> = {},
): Promise<{ status: number; out: string }> {
  const setup = Object.entries(files)
    .map(([f, text]) => `printf '%s\\n' '${text}' > /tmp/${f}`)
    .join('; ');
  const r = await session.run([
    'bash',
    '-c',
    `${setup}
python3 -m pip install --disable-pip-version-check --no-cache-dir --retries 0 --timeout 20 --target /tmp/${target} --index-url ${indexUrl} ${args.join(' ')} 2>&1`,
  ]);
  return { status: r.status ?? -1, out: r.stdout + r.stderr };
}

async function installedVersion(target: string, module: string): Promise<string | null> {
  const r = await session.run([
    'bash',
    '-c',
    `cd /tmp && PYTHONPATH=/tmp/${target} python3 -c 'import ${module}; print(${module}.VERSION)' 2>/dev/null || true`,
  ]);
  return r.stdout.trim() || null;
}

describe('package firewall: pip install inside a sandbox against a simple index', () => {
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo();
    const pki = await testPki();
    const dir = mkdtempSync(join(tmpdir(), 'airlock-wheels-'));
    const old = new Date(Date.now() - 30 * DAY);
    wheels = [
      buildWheel(dir, 'safe-py', '1.0', old),
      buildWheel(dir, 'safe-py', '1.1', new Date()),
      buildWheel(dir, 'pinned-py', '2.0.0', old),
      buildWheel(dir, 'pinned-py', '2.0.1', old),
      buildWheel(dir, 'evil-py', '0.1', old),
      buildWheel(dir, 'reqeusts', '2.31.0', old),
      buildWheel(dir, 'direct-py', '1.0', old),
      buildWheel(dir, 'direct-py', '1.1', new Date()),
    ];
    let port = 0;
    index = await simpleIndex(
      await pki.leaf(['pypi.org', 'files.pythonhosted.org']),
      wheels,
      () => `https://files.pythonhosted.org:${port}`,
    );
    port = index.port;
    indexUrl = `https://pypi.org:${port}/simple/`;
    files = `https://files.pythonhosted.org:${port}/packages`;
    const osv = join(home, 'malicious.json');
    writeFileSync(
      osv,
      JSON.stringify([
        {
          id: 'MAL-2026-9',
          summary: 'exfiltrates ~/.aws',
          affected: [{ package: { ecosystem: 'PyPI', name: 'Evil_Py' }, versions: ['0.1'] }],
        },
      ]),
    );
    const org = join(home, 'org.yaml');
    writeFileSync(
      org,
      `egress:
  allow:
    - { id: pypi, host: pypi.org, ports: [${port}] }
    - { id: pypi-files, host: files.pythonhosted.org, ports: [${port}] }
  allowCidrs: [{ id: loopback-index, cidr: 127.0.0.1/32, ports: [${port}] }]
  packages:
    minimumReleaseAgeHours: 48
    malicious: [${osv}]
    deny:
      - { id: pinned-cve, ecosystem: pypi, name: Pinned_Py, versions: "==2.0.1", reason: "CVE-2026-0002 in 2.0.1" }
`,
    );
    session = await Session.open({
      repo,
      home,
      orgPolicy: org,
      egressUpstream: {
        resolver: mapResolver({ 'pypi.org': '127.0.0.1', 'files.pythonhosted.org': '127.0.0.1' }),
        upstreamCa: [pki.caPem],
      },
    });
  });
  after(async () => {
    await session?.stop('test');
    await index?.close();
    cleanup(home, repo);
  });

  const events = (type: string) => session.store.query({ session: session.id, type });

  it('a version younger than the minimum release age disappears from the index: pip installs the older one', async () => {
    const r = await pip('age', ['safe-py']);
    assert.equal(r.status, 0, r.out);
    assert.equal(await installedVersion('age', 'safe_py'), '1.0');
    const exact = await pip('age-exact', ['safe-py==1.1']);
    assert.notEqual(exact.status, 0, exact.out);
    assert.match(exact.out, /from versions: 1\.0\)/, exact.out);
    const ev = events('egress.package').find((e) => (e.data as { package: string }).package === 'safe-py');
    assert.equal(ev?.rule, 'egress.packages.minimumReleaseAgeHours');
    assert.ok(!index.seen.some((s) => s.endsWith('safe_py-1.1-py3-none-any.whl')), 'the young wheel was never fetched');
  });

  it('the HTML form (PEP 503) is filtered the same way', async () => {
    const r = await session.run(['curl', '-sS', '-H', 'Accept: text/html', `${indexUrl}pinned-py/`]);
    assert.match(r.stdout, /pinned_py-2\.0\.0-py3-none-any\.whl/, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /2\.0\.1/, 'the denied version is gone');
    const j = await session.run([
      'curl',
      '-sS',
      '-H',
      'Accept: application/vnd.pypi.simple.v1+json',
      `${indexUrl}pinned-py/`,
    ]);
    const doc = JSON.parse(j.stdout) as { files: { filename: string }[]; versions: string[] };
    assert.deepEqual(
      doc.files.map((f) => f.filename),
      ['pinned_py-2.0.0-py3-none-any.whl'],
    );
    assert.deepEqual(doc.versions, ['2.0.0']);
  });

  it('a known-malicious project (OSV, PyPI name normalised) and a typosquat are refused with the rule', async () => {
    const mal = await pip('mal', ['evil-py']);
    assert.notEqual(mal.status, 0, mal.out);
    assert.equal(await installedVersion('mal', 'evil_py'), null);
    const typo = await pip('typo', ['reqeusts']);
    assert.notEqual(typo.status, 0, typo.out);
    const denied = events('egress.request')
      .filter((e) => e.decision === 'deny')
      .map((e) => `${e.rule} ${(e.data as { reason: string }).reason}`);
    assert.ok(
      denied.some((d) => /^egress\.packages\.malicious .*MAL-2026-9/.test(d)),
      denied.join('\n'),
    );
    assert.ok(
      denied.some((d) => /^egress\.packages\.typosquat .*"requests"/.test(d)),
      denied.join('\n'),
    );
    // the file itself is refused too, with the rule in what pip prints
    const direct = await pip('mal-direct', [`${files}/evil_py-0.1-py3-none-any.whl`]);
    assert.notEqual(direct.status, 0, direct.out);
    assert.match(direct.out, /403/);
    assert.match(direct.out, /egress\.packages\.malicious/, direct.out);
    assert.ok(!index.seen.some((s) => s.includes('evil_py')), 'nothing of the malicious project was fetched');
  });

  it('requirements pinning a now-denied version with its hash fail; the file is refused naming the rule', async () => {
    const w = wheels.find((x) => x.filename === 'pinned_py-2.0.1-py3-none-any.whl')!;
    const viaIndex = await pip('lock', ['--require-hashes', '-r', '/tmp/req.txt'], {
      'req.txt': `pinned-py==2.0.1 --hash=sha256:${w.sha256}`,
    });
    assert.notEqual(viaIndex.status, 0, viaIndex.out);
    assert.match(viaIndex.out, /from versions: 2\.0\.0\)/, viaIndex.out);
    // a lock that records file URLs (pip-compile/uv/pdm style) goes straight to the file
    const viaUrl = await pip('lock-url', ['--require-hashes', '-r', '/tmp/req-url.txt'], {
      'req-url.txt': `pinned-py @ ${files}/${w.filename} --hash=sha256:${w.sha256}`,
    });
    assert.notEqual(viaUrl.status, 0, viaUrl.out);
    assert.match(viaUrl.out, /403/);
    assert.match(viaUrl.out, /egress\.packages\.deny\.pinned-cve/, viaUrl.out);
    assert.equal(await installedVersion('lock-url', 'pinned_py'), null);
    assert.ok(!index.seen.some((s) => s.endsWith(w.filename)), 'the denied file never left the registry');
    const ok = await pip('lock-ok', ['pinned-py==2.0.0']);
    assert.equal(ok.status, 0, ok.out);
    assert.equal(await installedVersion('lock-ok', 'pinned_py'), '2.0.0');
  });

  it('a file fetched by URL without its index page: the gateway reads the upload time from the index itself', async () => {
    const young = await pip('direct-young', [`${files}/direct_py-1.1-py3-none-any.whl`]);
    assert.notEqual(young.status, 0, young.out);
    assert.match(young.out, /egress\.packages\.minimumReleaseAgeHours/, young.out);
    const oldEnough = await pip('direct-old', [`${files}/direct_py-1.0-py3-none-any.whl`]);
    assert.equal(oldEnough.status, 0, oldEnough.out);
    assert.equal(await installedVersion('direct-old', 'direct_py'), '1.0');
    assert.ok(
      index.seen.some((s) => s.startsWith('pypi.org:') && s.endsWith('/simple/direct-py/')),
      'the index page was read by the gateway',
    );
    assert.ok(
      !index.seen.some((s) => s.endsWith('direct_py-1.1-py3-none-any.whl')),
      'the young file never left the registry',
    );
  });
});
