import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { defaultPolicy } from '../../src/policy/index.ts';
import { sanitizeTree, fingerprint } from '../../src/secrets/index.ts';
import type { SecretsPolicy } from '../../src/policy/schema/secrets.ts';

const GH = 'gh' + 'p_' + 'Ab3De5Gh7Jk9Lm1Np3Qr5St7Uv9Wx1Yz3Ab5C';
const AWS_ID = 'AK' + 'IA' + 'Q3EGRKZ7XHP5WN2B';
const DB_PW = 'Xq7Lr92Kd0Pz5Tw4';
const NPM = 'np' + 'm_' + 'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5';
const EC_KEY =
  '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oQ0JgWqPbNnloAoGCCqGSM49\nAwEHoUQDQgAEQYs6yQ6vXjG8ZRbWhZpJ0Lg0kxIxkJlG1KFKvJeFJx+Pw2vXq3xQ\nrM4nYJGkV7hG1JvH0c8nG3hGqQ==\n-----END EC PRIVATE KEY-----\n';

function policy(over: Partial<SecretsPolicy['workspace']> = {}): SecretsPolicy {
  const p = defaultPolicy().secrets;
  return { ...p, workspace: { ...p.workspace, ...over } };
}

function tree(): { root: string; ws: string; outside: string } {
  const root = mkdtempSync(join(tmpdir(), 'airlock-sanitize-'));
  const ws = join(root, 'ws');
  const outside = join(root, 'outside');
  mkdirSync(join(ws, 'src'), { recursive: true });
  mkdirSync(join(ws, 'config'), { recursive: true });
  mkdirSync(join(ws, '.git'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(ws, '.env'), `GITHUB_TOKEN=${GH}\n`);
  writeFileSync(join(ws, '.env.example'), `GITHUB_TOKEN=your_token_here\nAWS_ACCESS_KEY_ID=${AWS_ID}\n`);
  writeFileSync(join(ws, 'id_rsa'), 'not even a key\n');
  writeFileSync(
    join(ws, 'config', 'app.yaml'),
    `name: billing\ndatabase: postgres://app:${DB_PW}@db.internal:5432/app\nreplicas: 3\naws_key: ${AWS_ID}\n`,
    { mode: 0o640 },
  );
  writeFileSync(join(ws, 'src', 'index.ts'), 'export const x = 1;\n');
  writeFileSync(join(ws, 'src', 'signing.txt'), EC_KEY);
  writeFileSync(join(ws, '.npmrc'), `//registry.npmjs.org/:_authToken=${NPM}\n`);
  mkdirSync(join(ws, 'pkg'));
  writeFileSync(join(ws, 'pkg', '.npmrc'), 'save-exact=true\n');
  writeFileSync(
    join(ws, '.git', 'config'),
    `[remote "origin"]\n\turl = https://x-access-token:${GH}@github.com/acme/app.git\n`,
  );
  writeFileSync(join(ws, 'blob.bin'), Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from(`key=${AWS_ID}`)]));
  // symlink tricks: a link to /etc/passwd, a link to a secret outside, a link named like a key file
  writeFileSync(join(outside, 'secret.txt'), `token: ${GH}\n`);
  symlinkSync('/etc/passwd', join(ws, 'passwd.txt'));
  symlinkSync(join(outside, 'secret.txt'), join(ws, 'src', 'linked.txt'));
  symlinkSync(outside, join(ws, 'outside-dir'));
  symlinkSync(join(outside, 'secret.txt'), join(ws, 'server.pem'));
  return { root, ws, outside };
}

test('sanitizeTree hides key files, redacts secrets in place, and records without the value', async () => {
  const { root, ws, outside } = tree();
  const dbPath = join(root, 'audit.db');
  const store = new AuditStore(dbPath);
  try {
    const passwdBefore = readFileSync('/etc/passwd');
    const res = await sanitizeTree(ws, policy(), (e) => store.append({ ...e, session: 's1' }));

    // hidden: glob matches, credential config, private-key-only file, binary with a secret
    for (const f of ['.env', 'id_rsa', '.npmrc', 'src/signing.txt', 'blob.bin', 'server.pem']) {
      assert.ok(res.hidden.includes(f), `${f} should be hidden`);
      assert.ok(!existsSync(join(ws, f)) && !isLink(join(ws, f)), `${f} still present`);
    }
    // a package .npmrc without credentials and a template .env are kept
    assert.equal(readFileSync(join(ws, 'pkg', '.npmrc'), 'utf8'), 'save-exact=true\n');
    const example = readFileSync(join(ws, '.env.example'), 'utf8');
    assert.ok(example.includes('your_token_here') && !example.includes(AWS_ID));

    // redacted in place: values gone, lines kept, mode kept
    const yaml = readFileSync(join(ws, 'config', 'app.yaml'), 'utf8');
    assert.ok(!yaml.includes(DB_PW) && !yaml.includes(AWS_ID));
    assert.equal(yaml.split('\n').length, 5);
    assert.match(yaml, /^name: billing\n/);
    assert.match(yaml, /replicas: 3\n/);
    assert.equal(statSync(join(ws, 'config', 'app.yaml')).mode & 0o777, 0o640);
    const gitcfg = readFileSync(join(ws, '.git', 'config'), 'utf8');
    assert.ok(!gitcfg.includes(GH) && gitcfg.includes('@github.com/acme/app.git'));
    assert.equal(readFileSync(join(ws, 'src', 'index.ts'), 'utf8'), 'export const x = 1;\n');

    // symlinks never followed: targets untouched, links (not named like key files) kept
    assert.deepEqual(readFileSync('/etc/passwd'), passwdBefore);
    assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), `token: ${GH}\n`);
    assert.equal(readlinkSync(join(ws, 'passwd.txt')), '/etc/passwd');
    assert.ok(isLink(join(ws, 'src', 'linked.txt')) && isLink(join(ws, 'outside-dir')));
    assert.deepEqual(readdirSync(outside), ['secret.txt']);
    assert.ok(!res.redacted.some((f) => f.file?.includes('linked') || f.file?.includes('passwd')));

    // audit: one event per redaction with file/line/rule/fingerprint, the value nowhere
    const events = store.query({ type: 'secrets.*' });
    const red = events.filter((e) => e.type === 'secrets.redacted');
    assert.equal(red.length, res.redacted.length);
    const yamlEvents = red.filter((e) => e.data.file === 'config/app.yaml');
    assert.deepEqual(yamlEvents.map((e) => e.data.line).sort(), [2, 4]);
    assert.ok(yamlEvents.some((e) => e.data.fingerprint === fingerprint(AWS_ID)));
    for (const e of red)
      assert.deepEqual(Object.keys(e.data).sort(), ['column', 'file', 'fingerprint', 'line', 'rule']);
    assert.ok(
      events.some((e) => e.type === 'secrets.hidden' && e.data.file === '.env' && e.rule === 'secrets.workspace.hide'),
    );
    assert.ok(events.some((e) => e.type === 'secrets.sanitize'));
    store.close();
    const bytes = Buffer.concat(
      ['', '-wal', '-shm'].filter((s) => existsSync(dbPath + s)).map((s) => readFileSync(dbPath + s)),
    );
    for (const v of [GH, AWS_ID, DB_PW, NPM, 'MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5']) {
      assert.equal(bytes.indexOf(Buffer.from(v)), -1, `value ${v.slice(0, 4)}… found in the audit db`);
    }
  } finally {
    try {
      store.close();
    } catch {
      /* closed */
    }
    rmSync(root, { recursive: true, force: true });
  }
});

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

test('hide mode removes every file with a secret; off mode changes nothing', async () => {
  const a = tree();
  try {
    const events: unknown[] = [];
    const res = await sanitizeTree(a.ws, policy({ mode: 'hide' }), (e) => events.push(e));
    assert.ok(res.hidden.includes('config/app.yaml'));
    assert.ok(!existsSync(join(a.ws, 'config', 'app.yaml')));
    assert.equal(res.redacted.length, 0);
    assert.ok(!JSON.stringify(events).includes(DB_PW));
  } finally {
    rmSync(a.root, { recursive: true, force: true });
  }
  const b = tree();
  try {
    const res = await sanitizeTree(b.ws, policy({ mode: 'off' }), () => {});
    assert.deepEqual(res, { hidden: [], redacted: [] });
    assert.ok(readFileSync(join(b.ws, 'config', 'app.yaml'), 'utf8').includes(DB_PW));
    assert.ok(existsSync(join(b.ws, '.env')));
  } finally {
    rmSync(b.root, { recursive: true, force: true });
  }
});

test('a file too large to scan is hidden (fail closed) and recorded', async () => {
  const root = mkdtempSync(join(tmpdir(), 'airlock-sanitize-big-'));
  try {
    writeFileSync(join(root, 'dump.sql'), 'x'.repeat(3 * 1024) + `\n-- ${GH}\n`);
    writeFileSync(join(root, 'small.txt'), 'hello\n');
    const events: { type: string; rule?: string | null; data?: Record<string, unknown> }[] = [];
    const res = await sanitizeTree(root, policy({ maxFileKB: 2 }), (e) => events.push(e));
    assert.deepEqual(res.hidden, ['dump.sql']);
    assert.ok(existsSync(join(root, 'small.txt')));
    assert.ok(
      events.some(
        (e) =>
          e.type === 'secrets.hidden' && e.rule === 'secrets.workspace.maxFileKB' && e.data?.reason === 'too-large',
      ),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('repo policy hide globs add to the defaults', async () => {
  const root = mkdtempSync(join(tmpdir(), 'airlock-sanitize-glob-'));
  try {
    mkdirSync(join(root, 'vault'));
    writeFileSync(join(root, 'vault', 'notes.txt'), 'nothing secret\n');
    writeFileSync(join(root, 'keep.txt'), 'nothing secret\n');
    const p = policy();
    const res = await sanitizeTree(
      root,
      { ...p, workspace: { ...p.workspace, hide: [...p.workspace.hide, 'vault/*'] } },
      () => {},
    );
    assert.deepEqual(res.hidden, ['vault/notes.txt']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('hide and binaryPaths globs, compiled once per run, decide exactly as path.matchesGlob did', async () => {
  const { compileGlob } = await import('../../src/secrets/sanitize.ts');
  const { matchesGlob, basename } = await import('node:path');
  const before = (rel: string, glob: string) => {
    // the per-file check this replaced
    const g = glob.toLowerCase();
    if (g.includes('/')) return matchesGlob(rel.toLowerCase(), g) || matchesGlob(rel.toLowerCase(), `**/${g}`);
    const name = basename(rel).toLowerCase();
    return matchesGlob(name, g) || (name.startsWith('.') && matchesGlob(name.slice(1), g));
  };
  const globs = [
    ...policy().workspace.hide,
    'vendor/**/*.node',
    'build/Release/*',
    '*.{pem,key}',
    '[!a]*.bin',
    'a?c.txt',
    '**/secrets/**',
    '#x',
    '!neg',
  ];
  const paths = [
    '.env',
    '.ENV',
    'config/.env.local',
    'id_rsa',
    'deep/dir/id_ed25519',
    'server.PEM',
    'a/b/c.key',
    'vendor/x/y/addon.node',
    'build/Release/a.node',
    'x/build/Release/b.node',
    'z.bin',
    'a.bin',
    'abc.txt',
    'a/b/secrets/c',
    'secrets',
    '#x',
    '!neg',
    'neg',
    '.npmrc',
    'credentials.json',
    'src/main.ts',
    'é/ü.pem',
    '.ssh/id_rsa',
  ];
  for (const g of globs) {
    const c = compileGlob(g);
    for (const p of paths) assert.equal(c.test(p), before(p, g), `${g} vs ${p}`);
  }
});

test('scan verdicts cached by blob id are dropped when any engine source changes (values.ts, command-line rules, prefilter…)', async () => {
  const { engineTag } = await import('../../src/secrets/scan-cache.ts');
  const { cpSync } = await import('node:fs');
  const src = new URL('../../src/secrets/', import.meta.url).pathname;
  const copy = mkdtempSync(join(tmpdir(), 'airlock-engine-'));
  try {
    cpSync(src, copy, { recursive: true });
    const before = engineTag(copy);
    assert.equal(before, engineTag(src), 'the tag is a function of the sources');
    for (const f of ['values.ts', 'cmdline.ts', 'structured.ts', 'prefilter.ts', 'hits.ts']) {
      const text = readFileSync(join(copy, f), 'utf8');
      writeFileSync(join(copy, f), text + '\n// a new rule\n');
      assert.notEqual(engineTag(copy), before, `a change to ${f} must start a new verdict cache`);
      writeFileSync(join(copy, f), text);
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});

test('printable runs of a binary, found by looking ahead, are exactly the runs the regex finds', async () => {
  const { printableRunsOf, printableRuns } = await import('../../src/secrets/judge.ts');
  const { mulberry32 } = await import('../../bench/secrets-corpus.ts');
  const next = mulberry32(0x22b1);
  const bytes = [0, 0xff, 0x1f, 0x7f, 9, 10, 13, 0x20, 0x7e, 0x41, 0x80];
  for (let k = 0; k < 3000; k++) {
    const n = Math.floor(next() * 300);
    const printable = next(); // from mostly binary to mostly text
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++)
      b[i] = next() < printable ? 0x21 + Math.floor(next() * 94) : bytes[Math.floor(next() * bytes.length)]!;
    assert.equal(
      printableRunsOf(b),
      printableRuns(b.toString('latin1')),
      `buffer ${k}: ${b.toString('hex').slice(0, 80)}`,
    );
  }
});
