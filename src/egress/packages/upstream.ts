import { request, type Agent, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { decodeBody } from '../dlp.ts';
import { resolveAndDecide } from '../decide-egress.ts';
import { hostPort } from '../host.ts';
import type { Ctx } from '../context.ts';

// Reading registry answers whole (bounded) so they can be parsed and filtered, and the
// firewall's own look-ups (a packument's publish times for a tarball fetched straight from
// a lockfile) over the intercepted connection's upstream agent.

export interface Fetched {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export class TooLarge extends Error {}

/** The response body, decoded (gzip, deflate, br, zstd), at most `max` bytes either way. */
export function readBody(res: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) {
        reject(new TooLarge(`larger than ${max} bytes`));
        res.destroy();
        return;
      } // reject first: destroy emits 'aborted' at once
      chunks.push(b);
    });
    res.on('end', () => {
      try {
        const body = decodeBody(Buffer.concat(chunks), res.headers['content-encoding'], max);
        if (body.length > max) throw new TooLarge(`larger than ${max} bytes once decoded`);
        resolve(body);
      } catch (e) {
        reject(e);
      }
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('upstream aborted the response')));
  });
}

export interface Upstream {
  get(path: string, accept: string, max: number): Promise<Fetched>;
}

function getWith(send: typeof request, o: RequestOptions, max: number): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = send(o, (res) => {
      readBody(res, max).then((body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }), reject);
    });
    req.on('timeout', () => req.destroy(new Error('upstream timed out')));
    req.on('error', reject);
    req.end();
  });
}

const lookupHeaders = (host: string, accept: string) => ({
  host,
  accept,
  'accept-encoding': 'gzip',
  'user-agent': 'airlock-package-firewall',
});

/** GETs on the same upstream (address already checked, TLS verified by the agent). */
export function upstreamVia(agent: Agent, hostHeader: string, timeoutMs: number): Upstream {
  return {
    get: (path, accept, max) =>
      getWith(
        request,
        { agent, method: 'GET', path, setHost: false, timeout: timeoutMs, headers: lookupHeaders(hostHeader, accept) },
        max,
      ),
  };
}

/**
 * GETs on another registry host (a PyPI index, for a file fetched without its index page):
 * decided by the egress rules like any request, resolved by the gateway, TLS verified
 * against the upstream trust store. Refused (throws) when the rules do not allow it.
 */
export function upstreamAt(ctx: Ctx, host: string, port: number): Upstream {
  return {
    async get(path, accept, max) {
      const d = await resolveAndDecide(
        ctx.rules,
        { host, port, scheme: 'https', method: 'GET', path, intercepted: true },
        ctx.resolver,
      );
      if (d.action !== 'allow' || !d.address || !ctx.tls)
        throw new Error(`look-up on ${hostPort(host, port)} not allowed (${d.rule})`);
      return getWith(
        httpsRequest as typeof request,
        {
          host: d.address,
          port,
          servername: host,
          ca: ctx.tls.upstreamCa,
          rejectUnauthorized: true,
          agent: false,
          method: 'GET',
          path,
          setHost: false,
          timeout: ctx.timeouts.connectMs,
          headers: lookupHeaders(port === 443 ? host : hostPort(host, port), accept),
        } as RequestOptions,
        max,
      );
    },
  };
}
