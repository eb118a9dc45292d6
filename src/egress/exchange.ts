import type { Readable } from 'node:stream';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Tracked, Ctx } from './context.ts';
import type { Credential, Hit, NeedleScanner } from './broker.ts';
import { decodeBody } from './dlp.ts';
import { ReflectionScrubber } from './reflect.ts';
import { recordFinding, recordHit } from './guard.ts';

// What the plain-HTTP proxy (http.ts) and intercepted TLS (intercept.ts) do alike with one
// HTTP exchange: refusals, header hygiene, reading an encoded body whole to scan it, and
// relaying the response — scrubbed of any brokered value the request carried, decoded
// first when the upstream ignored `Accept-Encoding: identity`.

export const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Header-safe text (printable ASCII, bounded). */
export function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

/** Refuses one HTTP exchange: status, X-Airlock-Rule/-Reason and a one-line body; records the denial unless `already`. */
export function refuse(
  res: ServerResponse,
  t: Tracked,
  status: number,
  rule: string,
  reason: string,
  severity?: Parameters<Tracked['deny']>[2],
  already = false,
): void {
  if (!already) t.deny(rule, reason, severity);
  t.status = status;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `airlock egress: denied by ${rule}: ${reason}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-airlock-rule': headerSafe(rule),
    'x-airlock-reason': headerSafe(reason),
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/** The first header of `single` that appears twice (smuggling), or null. */
export function duplicatedHeader(raw: string[], single: readonly string[]): string | null {
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (single.includes(k)) {
      if (seen.has(k)) return k;
      seen.add(k);
    }
  }
  return null;
}

function listedInConnection(h: IncomingHttpHeaders): Set<string> {
  return new Set(
    String(h.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** End-to-end headers only (hop-by-hop and those named in Connection dropped), values mapped by `map`. */
export function forwardHeaders(
  h: IncomingHttpHeaders,
  map: (v: string) => string = (v) => v,
): Record<string, string | string[]> {
  const listed = listedInConnection(h);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed.has(k)) continue;
    out[k] = Array.isArray(v) ? v.map(map) : map(v);
  }
  return out;
}

/** Header pairs (name, value) as a header object, hop-by-hop dropped. */
export function headerObject(
  pairs: [string, string][],
  connection: string | string[] | undefined,
): Record<string, string | string[]> {
  const listed = listedInConnection({ connection: Array.isArray(connection) ? connection.join(',') : connection });
  const out: Record<string, string | string[]> = {};
  for (const [k0, v] of pairs) {
    const k = k0.toLowerCase();
    if (HOP_BY_HOP.has(k) || listed.has(k)) continue;
    const cur = out[k];
    out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return out;
}

/** A Content-Encoding other than identity. */
export function isEncoded(encoding: string | undefined): boolean {
  return (
    encoding !== undefined && encoding.split(',').some((e) => e.trim() !== '' && e.trim().toLowerCase() !== 'identity')
  );
}

/** Reads a whole body, at most `max` bytes kept; `count` may refuse each chunk (upload budget). */
export function readWhole(
  req: Readable & { complete?: boolean },
  max: number,
  count: (n: number) => boolean,
): Promise<{ ok: true; body: Buffer; over: boolean } | { ok: false }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (b: Buffer) => {
      if (!count(b.length)) {
        resolve({ ok: false });
        return;
      }
      n += b.length;
      if (n > max) over = true;
      else chunks.push(b);
    });
    req.on('end', () => resolve({ ok: true, body: Buffer.concat(chunks), over }));
    req.on('error', () => resolve({ ok: false }));
    req.on('close', () => {
      if (!req.complete) resolve({ ok: false });
    });
  });
}

export type BodyVerdict =
  | { ok: true; plain: Buffer }
  | { ok: false; status: number; rule: string; reason: string; severity?: 'medium'; hit?: Hit };

/** Refuses a request that carries a placeholder or honeytoken where it must not go, and records the finding. */
export function refuseHit(ctx: Ctx, res: ServerResponse, tracked: Tracked, hit: Hit): void {
  const found = recordHit(ctx, tracked, hit);
  refuse(res, tracked, 403, found.rule, found.reason, undefined, true);
}

/** Refuses the request unless the body's verdict is clean (the same refusal on every HTTP path); true when it may go on. */
export function refuseUnlessClean(ctx: Ctx, res: ServerResponse, tracked: Tracked, verdict: BodyVerdict): boolean {
  if (verdict.ok) return true;
  if (verdict.hit) refuseHit(ctx, res, tracked, verdict.hit);
  else refuse(res, tracked, verdict.status, verdict.rule, verdict.reason, verdict.severity);
  return false;
}

/** Scans a whole (possibly encoded) body for placeholders and honeytokens, decoded. */
export function scanWholeBody(
  body: Buffer,
  encoding: string | undefined,
  scanner: NeedleScanner<Hit> | null,
  max: number,
  uninspectable: string,
): BodyVerdict {
  let plain = body;
  if (isEncoded(encoding)) {
    try {
      plain = decodeBody(body, encoding, max);
    } catch (e) {
      return {
        ok: false,
        status: 415,
        rule: uninspectable,
        reason: `request body cannot be decoded for inspection (${e instanceof Error ? e.message : e})`,
        severity: 'medium',
      };
    }
    if (plain.length > max)
      return {
        ok: false,
        status: 413,
        rule: uninspectable,
        reason: `decoded request body larger than ${max} bytes cannot be inspected`,
        severity: 'medium',
      };
  }
  const hit = scanner?.push(plain) ?? null;
  if (hit) return { ok: false, status: 403, rule: '', reason: '', hit };
  return { ok: true, plain };
}

export interface ResponseHooks {
  /** The response ended (every byte written). */
  end(status: number | undefined): void;
  error(e: NodeJS.ErrnoException): void;
}

function noteReflections(ctx: Ctx, t: Tracked, s: ReflectionScrubber): void {
  if (!s.found.size) return;
  t.extra.reflected = [...s.found];
  t.severity = 'high';
  for (const name of s.found) {
    const reason = `the upstream ${t.info.host ?? '?'}:${t.info.port ?? '?'} sent the real value of brokered credential ${name} back in its response (raw or encoded); it was replaced by the placeholder`;
    recordFinding(ctx, t, 'high', 'detect.credential-reflected', {
      title: 'credential reflected',
      explanation: reason,
      kind: 'credential-reflected',
      credential: name,
    });
  }
}

/**
 * Relays an upstream response to the client. When the request carried real credential
 * values, every form of them is replaced by the placeholder in headers and body; an
 * encoded body is read whole (bounded), decoded and scrubbed (sent without
 * Content-Encoding), or refused when it cannot be decoded.
 */
/** An upstream response, or a body the gateway made itself (a filtered registry document). */
export type UpstreamAnswer = Readable & { statusCode?: number; headers: IncomingMessage['headers'] };

export function relayResponse(
  ctx: Ctx,
  tracked: Tracked,
  method: string,
  ur: UpstreamAnswer,
  res: ServerResponse,
  injected: readonly Credential[],
  hooks: ResponseHooks,
): void {
  const scrub = injected.length ? new ReflectionScrubber(injected) : null;
  const rh = forwardHeaders(ur.headers, scrub ? (v) => scrub.text(v) : undefined);
  const noBody = method === 'HEAD' || ur.statusCode === 204 || ur.statusCode === 304;
  tracked.status = ur.statusCode;
  const out = (b: Buffer) => {
    if (!b.length) return;
    tracked.bytesDown += b.length;
    ctx.stats.bytesDown += b.length;
    if (!res.write(b)) ur.pause();
  };
  res.on('drain', () => ur.resume());
  ur.on('error', (e) => hooks.error(e as NodeJS.ErrnoException));
  if (scrub && !noBody && isEncoded(ur.headers['content-encoding'])) {
    // the upstream ignored Accept-Encoding: identity: decode the whole body, then scrub it
    const first = injected[0]!;
    void readWhole(ur, ctx.dlp.maxBytes, () => true).then((r) => {
      const refuseWith = (why: string) => {
        ur.destroy();
        refuse(
          res,
          tracked,
          502,
          `credentials.brokered.${first.name}`,
          `${why}; refused so the real value cannot reach the sandbox`,
          'high',
        );
        hooks.end(502);
      };
      if (!r.ok) {
        hooks.error(Object.assign(new Error('upstream response aborted'), { code: 'ECONNRESET' }));
        return;
      }
      if (r.over)
        return refuseWith(
          `encoded response larger than ${ctx.dlp.maxBytes} bytes cannot be checked for the credential`,
        );
      let plain: Buffer;
      try {
        plain = decodeBody(r.body, ur.headers['content-encoding'], ctx.dlp.maxBytes);
      } catch (e) {
        return refuseWith(`response body cannot be decoded (${e instanceof Error ? e.message : e})`);
      }
      if (plain.length > ctx.dlp.maxBytes)
        return refuseWith(`decoded response larger than ${ctx.dlp.maxBytes} bytes cannot be checked`);
      const clean = scrub.all(plain);
      delete rh['content-encoding'];
      rh['content-length'] = String(clean.length);
      noteReflections(ctx, tracked, scrub);
      res.writeHead(ur.statusCode ?? 502, rh);
      out(clean);
      res.end();
      hooks.end(ur.statusCode);
    });
    return;
  }
  if (scrub && !noBody) delete rh['content-length']; // replaced bytes change the length: send chunked
  res.writeHead(ur.statusCode ?? 502, rh);
  ur.on('data', (b: Buffer) => out(scrub ? scrub.push(b) : b));
  ur.on('end', () => {
    if (scrub) {
      out(scrub.end());
      noteReflections(ctx, tracked, scrub);
    }
    res.end();
    hooks.end(ur.statusCode);
  });
}
