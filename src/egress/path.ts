// One normal form of a request path, for deciding and for forwarding. Path rules are
// decided on `match` and the upstream receives `forward`, so what was decided is what the
// server sees: every spelling the server could read as another path (double encoding,
// `..;/`) is refused as ambiguous instead of guessed at.
//
//   forward: unreserved %XX decoded (RFC 3986 §6.2.2.2), other escapes in upper case,
//            duplicate slashes collapsed, dot segments removed; matrix parameters kept.
//   match:   forward with matrix parameters (`;x=1`) cut from every segment and every
//            escape decoded except %2F and %5C (kept: an encoded separator never matches an
//            allow prefix and never escapes a deny rule).

export class AmbiguousPath extends Error {}

export interface RequestPath {
  /** Path + query as sent upstream. */
  forward: string;
  /** The path rules are decided on. */
  match: string;
  /** The query string (without '?'), as received. */
  query: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Decodes escapes of unreserved characters, upper-cases the others; throws on a bad escape. */
function normaliseEscapes(s: string): string {
  return s.replace(/%(..)?/g, (m, hex: string | undefined) => {
    if (!hex || !/^[0-9A-Fa-f]{2}$/.test(hex))
      throw new AmbiguousPath(`bad percent-escape ${JSON.stringify(m.slice(0, 3))}`);
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : `%${hex.toUpperCase()}`;
  });
}

function decodeExceptSeparators(s: string): string {
  const bytes: number[] = [];
  const out: string[] = [];
  const flush = () => {
    if (bytes.length) {
      out.push(Buffer.from(bytes).toString('utf8'));
      bytes.length = 0;
    }
  };
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && !/^%(2F|5C)/.test(s.slice(i, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
      continue;
    }
    flush();
    out.push(s[i]!);
  }
  flush();
  return out.join('');
}

/** Normal forms of an origin-form request target (`/path?query`). Throws AmbiguousPath. */
export function requestPath(target: string): RequestPath {
  const hash = target.indexOf('#');
  const noFrag = hash >= 0 ? target.slice(0, hash) : target;
  const queryAt = noFrag.indexOf('?');
  const rawPath = queryAt >= 0 ? noFrag.slice(0, queryAt) : noFrag;
  const query = queryAt >= 0 ? noFrag.slice(queryAt + 1) : '';
  if (!rawPath.startsWith('/')) throw new AmbiguousPath('the path does not start with /');
  const path = normaliseEscapes(rawPath);
  // a %25 that still reads as an escape is a second encoding layer: decoded once more by
  // some servers and not by others, so no single decision covers it
  if (/%25[0-9A-F]{2}/.test(path)) throw new AmbiguousPath('double percent-encoding in the path');
  const segs: string[] = [];
  const raw = path.split('/').slice(1);
  raw.forEach((seg, i) => {
    const bare = seg.split(';')[0]!;
    if ((bare === '.' || bare === '..') && bare !== seg)
      throw new AmbiguousPath(`dot segment with parameters ${JSON.stringify(seg.slice(0, 40))}`);
    if (seg === '' && i < raw.length - 1) return; // duplicate slash
    if (bare === '.') return;
    if (bare === '..') {
      segs.pop();
      return;
    }
    segs.push(seg);
  });
  const last = raw[raw.length - 1];
  const named = segs.filter((s) => s !== '');
  // a trailing slash is part of the path (/simple/pkg/ is not /simple/pkg)
  const trailing = (last === '' || last === '.' || last === '..') && named.length > 0;
  const forwardPath = '/' + named.join('/') + (trailing ? '/' : '');
  const match = '/' + named.map((s) => decodeExceptSeparators(s.split(';')[0]!)).join('/') + (trailing ? '/' : '');
  return { forward: forwardPath + (queryAt >= 0 ? `?${query}` : ''), match, query };
}
