import { request, type Agent, type IncomingMessage } from 'node:http';
import { decodeBody } from '../dlp.ts';

// Reading registry answers whole (bounded) so they can be parsed and filtered, and the
// firewall's own look-ups (a packument's publish times for a tarball fetched straight from
// a lockfile) over the intercepted connection's upstream agent.

export interface Fetched { status: number; headers: IncomingMessage['headers']; body: Buffer }

export class TooLarge extends Error {}

/** The response body, decoded (gzip, deflate, br, zstd), at most `max` bytes either way. */
export function readBody(res: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) { reject(new TooLarge(`larger than ${max} bytes`)); res.destroy(); return; } // reject first: destroy emits 'aborted' at once
      chunks.push(b);
    });
    res.on('end', () => {
      try {
        const body = decodeBody(Buffer.concat(chunks), res.headers['content-encoding'], max);
        if (body.length > max) throw new TooLarge(`larger than ${max} bytes once decoded`);
        resolve(body);
      } catch (e) { reject(e); }
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('upstream aborted the response')));
  });
}

export interface Upstream { get(path: string, accept: string, max: number): Promise<Fetched> }

/** GETs on the same upstream (address already checked, TLS verified by the agent). */
export function upstreamVia(agent: Agent, hostHeader: string, timeoutMs: number): Upstream {
  return {
    get(path, accept, max) {
      return new Promise((resolve, reject) => {
        const req = request({ agent, method: 'GET', path, setHost: false, timeout: timeoutMs, headers: { host: hostHeader, accept, 'accept-encoding': 'gzip', 'user-agent': 'airlock-package-firewall' } }, (res) => {
          readBody(res, max).then((body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }), reject);
        });
        req.on('timeout', () => req.destroy(new Error('upstream timed out')));
        req.on('error', reject);
        req.end();
      });
    },
  };
}
