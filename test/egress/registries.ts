import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Real package registries for the package firewall tests, on loopback with certificates
// from the test PKI: verdaccio 6.8 (no uplinks) for npm, packages published into it over
// its publish API from tarballs built here; and a PEP 503/691 simple index served from
// files (wheels built here with Python's zipfile) by a small static HTTPS server.

const VERDACCIO = fileURLToPath(new URL('../../node_modules/verdaccio/build/index.js', import.meta.url));

const RUNNER = `
const { runServer } = await import(process.env.VERDACCIO);
const dir = process.env.VDIR;
const app = await runServer({
  self_path: dir + '/config.yaml', storage: dir + '/storage', uplinks: {},
  packages: { '@*/*': { access: '$all', publish: '$all' }, '**': { access: '$all', publish: '$all' } },
  log: { type: 'stdout', format: 'pretty', level: 'error' }, web: { enable: false },
  listen: 'https://127.0.0.1:0', https: { key: dir + '/key.pem', cert: dir + '/cert.pem' },
});
app.listen(0, '127.0.0.1', () => { process.stdout.write('PORT ' + app.address().port + '\\n'); });
`;

export interface Verdaccio {
  port: number;
  storage: string;
  close(): Promise<void>;
}

export async function startVerdaccio(tls: { cert: string; key: string }): Promise<Verdaccio> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-verdaccio-'));
  writeFileSync(join(dir, 'key.pem'), tls.key);
  writeFileSync(join(dir, 'cert.pem'), tls.cert);
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', RUNNER], {
    env: { ...process.env, VERDACCIO, VDIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`verdaccio did not start: ${out}`));
    }, 60_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    child.on('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`verdaccio exited ${c}: ${out}`));
    });
  });
  return {
    port,
    storage: join(dir, 'storage'),
    close: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null) {
          r();
          return;
        }
        child.once('exit', () => r());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

/** An npm tarball (package/ prefix, gzip) for `pkg` with an index.js. */
export function npmTarball(pkg: Record<string, unknown>): Buffer {
  const d = mkdtempSync(join(tmpdir(), 'airlock-npm-pkg-'));
  mkdirSync(join(d, 'package'));
  writeFileSync(join(d, 'package', 'package.json'), JSON.stringify(pkg, null, 2));
  writeFileSync(
    join(d, 'package', 'index.js'),
    `module.exports = ${JSON.stringify(`${String(pkg.name)}@${String(pkg.version)}`)};\n`,
  );
  execFileSync('tar', ['czf', join(d, 'p.tgz'), '-C', d, 'package']);
  return readFileSync(join(d, 'p.tgz'));
}

/** Publishes one version through verdaccio's publish API (what `npm publish` sends), then sets its publish time. */
export async function publishNpm(
  v: Verdaccio,
  caPem: string,
  name: string,
  version: string,
  o: { publishedAt?: Date; deps?: Record<string, string> } = {},
): Promise<void> {
  const pkg = {
    name,
    version,
    description: `test package ${name}`,
    main: 'index.js',
    ...(o.deps ? { dependencies: o.deps } : {}),
  };
  const tgz = npmTarball(pkg);
  const file = `${name.slice(name.indexOf('/') + 1)}-${version}.tgz`;
  const doc = {
    _id: name,
    name,
    'dist-tags': { latest: version },
    versions: {
      [version]: {
        ...pkg,
        _id: `${name}@${version}`,
        dist: {
          shasum: createHash('sha1').update(tgz).digest('hex'),
          integrity: `sha512-${createHash('sha512').update(tgz).digest('base64')}`,
          tarball: `https://registry.invalid/${name}/-/${file}`,
        },
      },
    },
    _attachments: {
      [file]: { content_type: 'application/octet-stream', data: tgz.toString('base64'), length: tgz.length },
    },
  };
  const status = await httpsPut(v.port, caPem, `/${name.replace('/', '%2f')}`, JSON.stringify(doc));
  if (status !== 201) throw new Error(`publishing ${name}@${version} answered ${status}`);
  if (o.publishedAt) {
    // verdaccio stamps the publish time itself; age the version in its storage (read per request)
    const path = join(v.storage, name, 'package.json');
    const stored = JSON.parse(readFileSync(path, 'utf8')) as { time: Record<string, string> };
    stored.time[version] = o.publishedAt.toISOString();
    writeFileSync(path, JSON.stringify(stored));
  }
}

function httpsPut(port: number, ca: string, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path,
        ca,
        servername: 'registry.npmjs.org',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// ---- PyPI -------------------------------------------------------------------------

const WHEEL_PY = `
import sys, zipfile, hashlib, base64
out, name, version, dist = sys.argv[1:5]
files = {f"{name}/__init__.py": f"VERSION = {version!r}\\n",
         f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
         f"{dist}/WHEEL": "Wheel-Version: 1.0\\nGenerator: airlock-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
record = []
with zipfile.ZipFile(out, "w") as z:
    for p, text in files.items():
        data = text.encode()
        z.writestr(p, data)
        record.append(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    z.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
`;

export interface WheelFile {
  project: string;
  version: string;
  filename: string;
  path: string;
  sha256: string;
  uploaded: Date;
}

/** A pure-Python wheel built with the system Python's zipfile. */
export function buildWheel(dir: string, project: string, version: string, uploaded: Date): WheelFile {
  const mod = project.replace(/[-.]/g, '_').toLowerCase();
  const filename = `${mod}-${version}-py3-none-any.whl`;
  const path = join(dir, filename);
  execFileSync('python3', ['-c', WHEEL_PY, path, mod, version, `${mod}-${version}.dist-info`]);
  return {
    project,
    version,
    filename,
    path,
    sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
    uploaded,
  };
}

export interface SimpleIndex {
  port: number;
  seen: string[];
  close(): Promise<void>;
}

/**
 * /simple/<project>/ in PEP 691 JSON (upload-time included) or PEP 503 HTML by Accept, and
 * /packages/<file>. `fileBase` is the absolute URL prefix files are linked under.
 */
export async function simpleIndex(
  tls: { cert: string; key: string },
  wheels: WheelFile[],
  fileBase: () => string,
): Promise<SimpleIndex> {
  const seen: string[] = [];
  const norm = (n: string) => n.toLowerCase().replace(/[-_.]+/g, '-');
  const server = createServer({ ...tls }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    seen.push(`${req.headers.host} ${url.pathname}`);
    const m = /^\/simple\/([^/]+)\/$/.exec(url.pathname);
    if (m) {
      const files = wheels.filter((w) => norm(w.project) === norm(m[1]!));
      if (!files.length) {
        res.writeHead(404);
        res.end('not found');
        return;
      }
      if (String(req.headers.accept ?? '').includes('application/vnd.pypi.simple.v1+json')) {
        res.writeHead(200, { 'content-type': 'application/vnd.pypi.simple.v1+json' });
        res.end(
          JSON.stringify({
            meta: { 'api-version': '1.1' },
            name: norm(m[1]!),
            versions: [...new Set(files.map((f) => f.version))],
            files: files.map((f) => ({
              filename: f.filename,
              url: `${fileBase()}/packages/${f.filename}`,
              hashes: { sha256: f.sha256 },
              'upload-time': f.uploaded.toISOString(),
              size: readFileSync(f.path).length,
            })),
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!DOCTYPE html><html><body>${files.map((f) => `<a href="${fileBase()}/packages/${f.filename}#sha256=${f.sha256}">${f.filename}</a><br/>`).join('')}</body></html>`,
      );
      return;
    }
    const f = /^\/packages\/([^/]+)$/.exec(url.pathname);
    const w = f && wheels.find((x) => x.filename === f[1]);
    if (w) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(readFileSync(w.path));
      return;
    }
    res.writeHead(404);
    res.end('not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
