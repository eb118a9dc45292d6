// FakeKubeApiServer: NOT a kube-apiserver (no Kubernetes can run on these machines). A small
// local HTTP server that answers only the calls Airlock's kubernetes driver makes:
// - the SandboxClaim calls (create, read — Ready on the third read, naming `sandboxName` —
//   and delete), recorded for the tests to check;
// - the pod exec endpoint (`/api/v1/namespaces/NS/pods/POD/exec`, WebSocket, channel
//   protocol v5.channel.k8s.io as the real one speaks it): FAKE as well — instead of a
//   kubelet it calls `forward`, which in the tests runs the command in a real runsc pod
//   (`runsc exec`), and relays stdin, stdout, stderr and the exit status as the API server would.
import { createServer, type Server } from 'node:http';
import type { ChildProcess } from 'node:child_process';
import { WebSocketServer, type WebSocket } from 'ws';
import { stringify } from 'yaml';

export interface FakeExec {
  pod: string;
  container: string;
  command: string[];
  auth: string | undefined;
}

const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, status: 3, close: 255 } as const;

function statusOf(code: number | null): Record<string, unknown> {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code ?? 137) }] },
  };
}

function frame(channel: number, data: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from([channel]), Buffer.isBuffer(data) ? data : Buffer.from(data)]);
}

/** Relays one exec between the WebSocket and the forwarded process (what a kubelet's stream does). */
function relayExec(ws: WebSocket, child: ChildProcess, stdin: boolean): void {
  // no stdin asked for: the process reads end of file, as a kubelet gives it
  if (!stdin) child.stdin?.end();
  child.stdout?.on('data', (d: Buffer) => ws.send(frame(CHANNEL.stdout, d)));
  child.stderr?.on('data', (d: Buffer) => ws.send(frame(CHANNEL.stderr, d)));
  child.stdin?.on('error', () => undefined);
  ws.on('message', (raw: Buffer) => {
    if (raw[0] === CHANNEL.stdin) child.stdin?.write(raw.subarray(1));
    else if (raw[0] === CHANNEL.close && raw[1] === CHANNEL.stdin) child.stdin?.end();
  });
  ws.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  child.once('close', (code) => {
    ws.send(frame(CHANNEL.status, JSON.stringify(statusOf(code))), () => ws.close(1000));
  });
}

export class FakeKubeApiServer {
  readonly requests: { method: string; url: string; body: unknown; auth: string | undefined }[] = [];
  readonly execs: FakeExec[] = [];
  claim: Record<string, unknown> | null = null;
  deleted: string[] = [];
  reads = 0;
  forbid = false;
  /** the Sandbox (and pod) name a Ready claim reports */
  sandboxName = 'sbx-1';
  /** runs an exec'd command (the tests: in a runsc pod); absent: the exec endpoint answers 404 */
  forward: ((e: FakeExec) => ChildProcess) | null = null;
  url = '';
  readonly server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => {
      text += d.toString();
    });
    req.on('end', () => {
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', body, auth: req.headers.authorization });
      res.setHeader('content-type', 'application/json');
      const [status, answer] = this.answer(req.method ?? '', req.url ?? '', body);
      res.statusCode = status;
      res.end(JSON.stringify(answer));
    });
  });
  private wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : false),
  });

  private answer(method: string, url: string, body: Record<string, unknown> | null): [number, unknown] {
    const notFound = { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 };
    if (this.forbid) return [403, { kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403 }];
    if (method === 'POST') {
      this.claim = body;
      return [201, body];
    }
    if (method === 'GET' && this.claim) {
      this.reads++;
      const ready = this.reads >= 3;
      const condition = { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'SandboxReady' : 'Pending' };
      const sandbox = ready ? { name: this.sandboxName, podIPs: ['10.0.0.9'] } : {};
      return [200, { ...this.claim, status: { conditions: [{ ...condition, message: '' }], sandbox } }];
    }
    if (method === 'DELETE' && this.claim) {
      this.deleted.push(url);
      this.claim = null;
      return [200, { kind: 'Status', status: 'Success' }];
    }
    return [404, notFound];
  }

  async start(): Promise<void> {
    this.server.on('upgrade', (req, socket, head) => {
      const u = new URL(req.url ?? '/', 'http://fake');
      const m = /^\/api\/v1\/namespaces\/[^/]+\/pods\/([^/]+)\/exec$/.exec(u.pathname);
      if (!m || !this.forward) {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      const exec: FakeExec = {
        pod: m[1]!,
        container: u.searchParams.get('container') ?? '',
        command: u.searchParams.getAll('command'),
        auth: req.headers.authorization,
      };
      this.execs.push(exec);
      const forward = this.forward;
      this.wss.handleUpgrade(req, socket, head, (ws) =>
        relayExec(ws, forward(exec), u.searchParams.get('stdin') === 'true'),
      );
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** A kubeconfig for this fake (plain HTTP on loopback: allowed by the client only with TLS verification off). */
  kubeconfigText(): string {
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'fake',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u' } }],
    });
  }

  close(): void {
    for (const c of this.wss.clients) c.terminate();
    this.server.close();
  }
}
