import { spawn } from 'node:child_process';
import { createServer } from 'node:http';

// A bare-repo git remote over HTTP: git's own http-backend (CGI) behind a tiny node
// server on 127.0.0.1. Runs as its own process because Airlock's git calls are
// synchronous. Prints {"port":N} first, then one JSON line per request.

const root = process.argv[2]!;
const server = createServer((req, res) => {
  const u = new URL(req.url ?? '/', 'http://127.0.0.1');
  process.stdout.write(
    JSON.stringify({ method: req.method, path: u.pathname, auth: req.headers.authorization ?? null }) + '\n',
  );
  const cgi = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: u.pathname,
      QUERY_STRING: u.search.slice(1),
      REQUEST_METHOD: req.method,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: 'tester',
      REMOTE_ADDR: '127.0.0.1',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      HOME: root,
    },
  });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let sent = false;
  cgi.stdout.on('data', (d: Buffer) => {
    if (sent) {
      res.write(d);
      return;
    }
    head = Buffer.concat([head, d]);
    const i = head.indexOf('\r\n\r\n');
    if (i < 0) return;
    let status = 200;
    for (const line of head.subarray(0, i).toString().split('\r\n')) {
      const c = line.indexOf(':');
      const k = line.slice(0, c).trim();
      const v = line.slice(c + 1).trim();
      if (k.toLowerCase() === 'status') status = parseInt(v, 10);
      else if (k) res.setHeader(k, v);
    }
    res.statusCode = status;
    sent = true;
    res.write(head.subarray(i + 4));
  });
  cgi.on('close', () => res.end());
  cgi.on('error', () => {
    res.statusCode = 500;
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as { port: number }).port }) + '\n');
});
process.stdin.on('end', () => process.exit(0)); // exits when the test closes our stdin
process.stdin.resume();
