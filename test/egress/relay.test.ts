import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { gateway, requests, waitFor, connectTunnel } from './helpers.ts';

// The tunnel copy path (tunnel.ts relay: one reused read buffer per upstream, one write in
// flight): bytes arrive intact and in order under client backpressure, a banner the server
// sends before the client speaks is delivered, and the audit counts are exact.

test('a tunnel relays a server-first banner and 8 MiB intact to a slow reader; bytes recorded exactly', async () => {
  const payload = randomBytes(8 << 20);
  const banner = Buffer.from('HELLO airlock\r\n');
  const up = createServer((s) => {
    s.on('error', () => undefined);
    s.write(banner);
    s.once('data', () => s.end(payload));
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const upPort = (up.address() as { port: number }).port;
  const g = await gateway(
    {
      allow: [{ host: 'up.test', ports: [upPort], schemes: ['tcp'] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [upPort] }],
    },
    { map: { 'up.test': '127.0.0.1' }, timeouts: { peekMs: 150 } },
  );
  try {
    const s = await connectTunnel(g.port, `up.test:${upPort}`);
    const hash = createHash('sha256');
    let got = 0;
    let sentGo = false;
    let reads = 0;
    await new Promise<void>((resolve, reject) => {
      s.on('error', reject);
      s.on('end', () => resolve());
      s.on('data', (d: Buffer) => {
        hash.update(d);
        got += d.length;
        if (!sentGo && got >= banner.length) {
          sentGo = true;
          s.write('go\n');
        }
        // a slow reader: every few chunks stop for a moment so the gateway's writes queue
        if (++reads % 4 === 0) {
          s.pause();
          setTimeout(() => s.resume(), 5);
        }
      });
      s.resume();
    });
    s.destroy();
    assert.equal(got, banner.length + payload.length);
    assert.equal(
      hash.digest('hex'),
      createHash('sha256').update(banner).update(payload).digest('hex'),
      'bytes arrive intact and in order',
    );
    const ev = await waitFor(() => requests(g.events).find((e) => e.decision === 'allow'), 'the tunnel record');
    const data = ev.data as { bytesUp: number; bytesDown: number; scheme: string };
    assert.equal(data.scheme, 'tcp');
    assert.equal(data.bytesDown, banner.length + payload.length, 'bytes down counted exactly');
    assert.equal(data.bytesUp, 3, 'bytes up counted exactly');
  } finally {
    await g.gw.close();
    up.close();
  }
});

test('the upload limit still cuts a relayed tunnel at the byte budget', async () => {
  const up = createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', () => undefined);
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const upPort = (up.address() as { port: number }).port;
  const g = await gateway(
    {
      allow: [{ host: 'up.test', ports: [upPort], schemes: ['tcp'] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [upPort] }],
      limits: { maxUploadBytes: 1 << 20 },
    },
    { map: { 'up.test': '127.0.0.1' }, timeouts: { peekMs: 150 } },
  );
  try {
    const s = await connectTunnel(g.port, `up.test:${upPort}`);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    await new Promise<void>((resolve) => {
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
      let n = 0;
      const pump = () => {
        while (n < 64 && !s.destroyed) {
          n++;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    const ev = await waitFor(
      () => requests(g.events).find((e) => e.rule === 'egress.limits.maxUploadBytes'),
      'the limit record',
    );
    assert.equal(ev.decision, 'deny');
    assert.ok((ev.data as { bytesUp: number }).bytesUp > 1 << 20);
    assert.ok(g.gw.stats().bytesUp <= (1 << 20) + chunk.length, 'cut within one chunk of the limit');
  } finally {
    await g.gw.close();
    up.close();
  }
});
