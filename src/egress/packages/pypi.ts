import { Parser } from 'htmlparser2';
import { normPackageName } from '../../common/index.ts';
import { validVersion } from './versions.ts';
import type { PackageRules } from './policy.ts';
import type { DeniedVersion } from './npm.ts';

// The PyPI simple repository API as the firewall sees it: /simple/<project>/ answers in
// PEP 691 JSON (application/vnd.pypi.simple.v1+json, with PEP 700 upload-time) or PEP 503
// HTML (anchors whose text is the file name); files are decided by their name (wheel:
// name-version-..., sdist: name-version.tar.gz|.zip), also when fetched from a file host.

export const PYPI_JSON = 'application/vnd.pypi.simple.v1+json';
export const PYPI_HTML = 'application/vnd.pypi.simple.v1+html';
/** What the gateway asks the index for: JSON first (it carries upload times), HTML as a fallback. */
export const UPSTREAM_ACCEPT = `${PYPI_JSON}, ${PYPI_HTML};q=0.2, text/html;q=0.1`;

const PROJECT = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,200}[A-Za-z0-9])?$/;
const SDIST = /\.(tar\.gz|zip|tar\.bz2|tar\.xz|tgz|tar)$/i;

export type PypiRequest = { kind: 'index'; name: string } | { kind: 'api' } | { kind: 'bad'; reason: string };

export function classifyIndex(pathname: string): PypiRequest {
  const m = /^\/simple\/([^/]+)\/?$/.exec(pathname);
  if (!m) return { kind: 'api' }; // /simple/ itself (the project list), /pypi/... and the rest are not package files
  let name: string;
  try {
    name = decodeURIComponent(m[1]!);
  } catch {
    return { kind: 'bad', reason: 'unrecognised index path' };
  }
  if (!PROJECT.test(name))
    return { kind: 'bad', reason: `${JSON.stringify(name.slice(0, 100))} is not a PyPI project name` };
  return { kind: 'index', name };
}

/** Project name and version from a distribution file name (PEP 427 wheels, PEP 625 and legacy sdists). */
export function distOfFilename(filename: string): { name: string; version: string } | null {
  const f = filename.replace(/\.metadata$/, '');
  if (f.endsWith('.whl')) {
    const parts = f.slice(0, -4).split('-');
    if (parts.length < 5 || parts.length > 6) return null;
    return validVersion('pypi', parts[1]!) ? { name: parts[0]!, version: parts[1]! } : null;
  }
  const m = SDIST.exec(f);
  if (!m) return null;
  const stem = f.slice(0, -m[0].length);
  // legacy sdists may have dashes in the name: the version is the part after the last dash that parses
  for (let i = stem.lastIndexOf('-'); i > 0; i = stem.lastIndexOf('-', i - 1)) {
    const version = stem.slice(i + 1);
    if (validVersion('pypi', version)) return { name: stem.slice(0, i), version };
  }
  return null;
}

export interface IndexFile {
  filename: string;
  url: string;
  attrs: Record<string, string>;
  json?: Record<string, unknown>;
}
export interface ParsedIndex {
  format: 'json' | 'html';
  json?: Record<string, unknown>;
  files: IndexFile[];
}

export function parseIndex(body: Buffer, contentType: string): ParsedIndex {
  const ct = contentType.split(';')[0]!.trim().toLowerCase();
  if (ct === PYPI_JSON || ct === 'application/json') {
    const doc = JSON.parse(body.toString('utf8')) as unknown;
    if (!doc || typeof doc !== 'object' || !Array.isArray((doc as { files?: unknown }).files))
      throw new Error('PEP 691 response without a "files" list');
    const files = (doc as { files: unknown[] }).files.map((f, i) => {
      const o = f as Record<string, unknown>;
      if (!o || typeof o.filename !== 'string' || typeof o.url !== 'string')
        throw new Error(`file ${i} has no filename or url`);
      return { filename: o.filename, url: o.url, attrs: {}, json: o };
    });
    return { format: 'json', json: doc as Record<string, unknown>, files };
  }
  if (ct === PYPI_HTML || ct === 'text/html') return { format: 'html', files: anchors(body.toString('utf8')) };
  throw new Error(`unexpected index content type ${JSON.stringify(ct.slice(0, 100))}`);
}

function anchors(html: string): IndexFile[] {
  const out: IndexFile[] = [];
  let cur: IndexFile | null = null;
  const p = new Parser(
    {
      onopentag(tag, attrs) {
        if (tag === 'a') cur = { filename: '', url: attrs.href ?? '', attrs };
      },
      ontext(t) {
        if (cur) cur.filename += t;
      },
      onclosetag(tag) {
        if (tag === 'a' && cur) {
          cur.filename = cur.filename.trim();
          out.push(cur);
          cur = null;
        }
      },
    },
    { decodeEntities: true, lowerCaseAttributeNames: true },
  );
  p.write(html);
  p.end();
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** PEP 503 HTML for a project (from either format), attributes kept. */
export function renderHtml(project: string, files: IndexFile[]): string {
  const lines = files.map((f) => {
    const attrs: Record<string, string> = f.json ? jsonToAttrs(f) : { ...f.attrs, href: f.url };
    const a = Object.entries(attrs)
      .map(([k, v]) => (v === '' && k !== 'href' ? ` ${esc(k)}` : ` ${esc(k)}="${esc(v)}"`))
      .join('');
    return `    <a${a}>${esc(f.filename)}</a><br/>`;
  });
  return `<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.1"><title>Links for ${esc(project)}</title></head>\n  <body>\n    <h1>Links for ${esc(project)}</h1>\n${lines.join('\n')}\n  </body>\n</html>\n`;
}

function jsonToAttrs(f: IndexFile): Record<string, string> {
  const j = f.json!;
  const hashes = (j.hashes ?? {}) as Record<string, string>;
  const h = Object.entries(hashes).find(([k]) => k === 'sha256') ?? Object.entries(hashes)[0];
  const out: Record<string, string> = { href: h ? `${f.url}#${h[0]}=${h[1]}` : f.url };
  if (typeof j['requires-python'] === 'string') out['data-requires-python'] = j['requires-python'];
  if (j.yanked) out['data-yanked'] = typeof j.yanked === 'string' ? j.yanked : '';
  const meta = j['core-metadata'] ?? j['dist-info-metadata'];
  if (meta && typeof meta === 'object') {
    const [k, v] = Object.entries(meta as Record<string, string>)[0] ?? [];
    if (k) out['data-core-metadata'] = `${k}=${v}`;
  } else if (meta === true) out['data-core-metadata'] = 'true';
  return out;
}

export interface Upload {
  name: string;
  version: string;
  uploaded: number | null;
}

/** Every file of the project on an index page with its version and upload time (PEP 700; null when absent). */
export function uploadsOf(parsed: ParsedIndex, project: string): Map<string, Upload> {
  const out = new Map<string, Upload>();
  for (const f of parsed.files) {
    const dist = distOfFilename(f.filename);
    if (!dist || normPackageName('pypi', dist.name) !== normPackageName('pypi', project)) continue;
    const t = typeof f.json?.['upload-time'] === 'string' ? Date.parse(f.json['upload-time'] as string) : NaN;
    out.set(f.filename, { name: project, version: dist.version, uploaded: Number.isFinite(t) ? t : null });
  }
  return out;
}

export interface PypiFiltered {
  body: string;
  contentType: string;
  denied: DeniedVersion[];
  kept: number;
  uploads: Map<string, Upload>;
}

/**
 * Removes the files of denied versions from an index page and answers in the format the
 * client prefers. A file whose name does not parse is removed (its version is unknown).
 */
export function filterIndex(
  parsed: ParsedIndex,
  project: string,
  rules: PackageRules,
  wantJson: boolean,
): PypiFiltered {
  const denied = new Map<string, DeniedVersion>();
  const kept: IndexFile[] = [];
  const all = uploadsOf(parsed, project);
  const uploads = new Map<string, Upload>();
  const ageMatters = rules.minimumAgeHours > 0;
  for (const f of parsed.files) {
    const u = all.get(f.filename);
    if (!u) {
      denied.set(f.filename, {
        version: f.filename,
        rule: 'egress.packages.unrecognized',
        reason: `file ${JSON.stringify(f.filename.slice(0, 100))} does not name a version of ${project}`,
      });
      continue;
    }
    const d = rules.decideVersion('pypi', project, u.version, ageMatters ? u.uploaded : undefined);
    if (d.action === 'deny') {
      if (!denied.has(u.version)) denied.set(u.version, { version: u.version, rule: d.rule, reason: d.reason });
      continue;
    }
    kept.push(f);
    uploads.set(f.filename, u);
  }
  let body: string;
  if (wantJson) {
    const base = parsed.json ?? { meta: { 'api-version': '1.0' }, name: normPackageName('pypi', project) };
    const keptVersions = new Set([...uploads.values()].map((u) => u.version));
    const doc: Record<string, unknown> = { ...base, files: kept.map((f) => f.json ?? htmlToJson(f)) };
    if (Array.isArray(base.versions))
      doc.versions = (base.versions as unknown[]).filter((v) => typeof v === 'string' && keptVersions.has(v));
    body = JSON.stringify(doc);
  } else {
    body = renderHtml(project, kept);
  }
  return {
    body,
    contentType: wantJson ? PYPI_JSON : `${PYPI_HTML}; charset=utf-8`,
    denied: [...denied.values()],
    kept: kept.length,
    uploads,
  };
}

function htmlToJson(f: IndexFile): Record<string, unknown> {
  const [url, frag] = f.url.split('#', 2) as [string, string | undefined];
  const hashes: Record<string, string> = {};
  if (frag && /^[a-z0-9]+=[0-9a-f]+$/i.test(frag)) {
    const [k, v] = frag.split('=');
    hashes[k!] = v!;
  }
  const out: Record<string, unknown> = { filename: f.filename, url, hashes };
  if (f.attrs['data-requires-python'] !== undefined) out['requires-python'] = f.attrs['data-requires-python'];
  if (f.attrs['data-yanked'] !== undefined) out.yanked = f.attrs['data-yanked'] || true;
  return out;
}

/** Does the client's Accept prefer PEP 691 JSON? (pip asks for JSON first; a browser or old client gets HTML.) */
export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  let best: { type: string; q: number } | null = null;
  for (const part of accept.split(',')) {
    const [type, ...params] = part
      .trim()
      .split(';')
      .map((s) => s.trim());
    const q = Number(params.find((x) => x.startsWith('q='))?.slice(2) ?? '1');
    if (!type || !Number.isFinite(q)) continue;
    const known = type === PYPI_JSON || type === PYPI_HTML || type === 'text/html';
    if (known && (!best || q > best.q)) best = { type, q };
  }
  return best?.type === PYPI_JSON;
}
