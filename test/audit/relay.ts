import { createServer, connect, type Server, type Socket } from 'node:net';

// A misbehaving TCP relay between a sink and a real receiver (rsyslog), on loopback. Per
// connection it forwards at most `limit` bytes from the client to the receiver, then either
// closes both sides cleanly (FIN: the peer "sends FIN early") or resets the client (RST),
// after giving the receiver's answers to what it forwarded a moment to flow back. Connections
// beyond the plan are forwarded untouched.

export type Misbehaviour = { limit: number; then: 'close' | 'reset' | 'swallow' };

export interface Relay {
  port: number;
  connections: number;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number, plan: Misbehaviour[]): Promise<Relay> {
  const sockets = new Set<Socket>();
  const relay: Relay = { port: 0, connections: 0, close: async () => {} };
  const server: Server = createServer((client) => {
    const step = plan[relay.connections++];
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    upstream.on('data', (b) => {
      if (!client.destroyed) client.write(b);
    });
    upstream.on('end', () => client.end());
    client.on('end', () => {
      if (!step) upstream.end();
    });
    let forwarded = 0;
    let tripped = false;
    client.on('data', (b: Buffer) => {
      if (!step) {
        upstream.write(b);
        return;
      }
      if (tripped) return; // swallowed: read, never forwarded
      const room = step.limit - forwarded;
      if (room > 0) {
        upstream.write(b.subarray(0, room));
        forwarded += Math.min(room, b.length);
      }
      if (forwarded < step.limit) return;
      tripped = true;
      if (step.then === 'swallow') return; // keeps reading, forwards nothing more, closes when the client does
      setTimeout(() => {
        if (step.then === 'reset') client.resetAndDestroy();
        else client.end();
        upstream.end();
      }, 300).unref();
    });
    client.on('end', () => {
      if (step?.then === 'swallow') {
        client.end();
        upstream.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  relay.port = (server.address() as { port: number }).port;
  relay.close = () =>
    new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return relay;
}
