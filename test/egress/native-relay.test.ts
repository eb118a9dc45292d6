import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { relayMode } from '../../src/egress/index.ts';
import { gateway, requests, waitFor, connectTunnel, type TestGateway } from './helpers.ts';

// The native download relay (src/egress/relay/relay.c, its own thread): the build is in
// place on Linux, both relays (native and Node) deliver the same bytes and counts, and the
// native one ends cleanly whichever side goes away, without leaking descriptors.

async function upstream(onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

async function gw(port: number, native: boolean, timeouts: Record<string, number> = {}): Promise<TestGateway> {
  return gateway(
    {
      allow: [{ host: 'up.test', ports: [port], schemes: ['tcp'] }],
      allowCidrs: [{ cidr: '127.0.0.1/32', ports: [port] }],
    },
    { map: { 'up.test': '127.0.0.1' }, timeouts: { peekMs: 100, ...timeouts }, nativeRelay: native },
  );
}

const openFds = () => readdirSync('/proc/self/fd').length;

test('on Linux the native relay is built and the gateway records that it uses it', async () => {
  const m = relayMode();
  assert.equal(m.mode, 'native', `build/relay.node missing or unusable (${m.why}); scripts/setup.sh builds it`);
  const { server, port } = await upstream(() => undefined);
  const g = await gw(port, true);
  try {
    const start = g.events.find((e) => e.type === 'egress.gateway.start');
    assert.deepEqual((start?.data as { relay: unknown }).relay, { mode: 'native' });
  } finally {
    await g.gw.close();
    server.close();
  }
});

for (const native of [true, false]) {
  test(`${native ? 'native' : 'Node'} relay: 16 MiB in random-sized writes arrive intact; bytes and relay recorded exactly`, async () => {
    const payload = randomBytes(16 << 20);
    const { server, port } = await upstream((s) =>
      s.once('data', () => {
        let off = 0;
        const pump = () => {
          while (off < payload.length) {
            const n = Math.min(payload.length - off, 1 + Math.floor(Math.random() * 300_000));
            const ok = s.write(payload.subarray(off, off + n));
            off += n;
            if (!ok) {
              s.once('drain', pump);
              return;
            }
          }
          s.end();
        };
        pump();
      }),
    );
    const g = await gw(port, native);
    try {
      const s = await connectTunnel(g.port, `up.test:${port}`);
      const hash = createHash('sha256');
      let got = 0;
      await new Promise<void>((resolve, reject) => {
        s.on('error', reject);
        s.on('data', (d: Buffer) => {
          hash.update(d);
          got += d.length;
        });
        s.on('end', () => resolve());
        s.write('go');
        s.resume();
      });
      s.destroy();
      assert.equal(got, payload.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
      const ev = await waitFor(() => requests(g.events).find((e) => e.decision === 'allow'), 'the tunnel record');
      const d = ev.data as { bytesDown: number; bytesUp: number; relay: string };
      assert.equal(d.relay, native ? 'native' : 'node');
      assert.equal(d.bytesDown, payload.length, 'every byte counted');
      assert.equal(d.bytesUp, 2);
    } finally {
      await g.gw.close();
      server.close();
    }
  });
}

test('native relay: a download that trickles for longer than the idle timeout is not cut (progress keeps the tunnel alive)', async () => {
  const { server, port } = await upstream((s) =>
    s.once('data', () => {
      let n = 0;
      const t = setInterval(() => {
        s.write(Buffer.alloc(1000, 0x62));
        if (++n === 12) {
          clearInterval(t);
          s.end();
        }
      }, 100);
      s.on('close', () => clearInterval(t));
    }),
  );
  const g = await gw(port, true, { idleMs: 450 });
  try {
    const s = await connectTunnel(g.port, `up.test:${port}`);
    let got = 0;
    await new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        got += d.length;
      });
      s.on('end', () => resolve());
      s.on('close', () => resolve());
      s.write('go');
      s.resume();
    });
    s.destroy();
    assert.equal(got, 12_000, 'all of the slow download arrived');
    const ev = await waitFor(() => requests(g.events).find((e) => e.decision === 'allow'), 'the tunnel record');
    assert.equal((ev.data as { error?: string }).error, undefined);
    assert.equal((ev.data as { bytesDown: number }).bytesDown, 12_000);
  } finally {
    await g.gw.close();
    server.close();
  }
});

test('native relay: a client that leaves mid-download and an upstream that resets both end the tunnel, are recorded, and leak no descriptor', async () => {
  const big = Buffer.alloc(64 << 20, 0x63);
  const { server, port } = await upstream((s) =>
    s.once('data', (d) => {
      if (d.toString() === 'reset') {
        s.write(Buffer.alloc(256 * 1024));
        setTimeout(() => s.resetAndDestroy(), 50);
        return;
      }
      s.end(big);
    }),
  );
  const atStart = openFds();
  const g = await gw(port, true);
  try {
    const before = openFds() + 2; // + the relay thread's epoll and eventfd, made on first use
    // 1. the client reads 1 MiB of 64 MiB, then goes
    const a = await connectTunnel(g.port, `up.test:${port}`);
    await new Promise<void>((resolve) => {
      let n = 0;
      a.on('data', (d: Buffer) => {
        n += d.length;
        if (n >= 1 << 20) {
          a.destroy();
          resolve();
        }
      });
      a.write('go');
      a.resume();
    });
    // 2. the upstream sends a little, then resets
    const b = await connectTunnel(g.port, `up.test:${port}`);
    await new Promise<void>((resolve) => {
      b.on('close', () => resolve());
      b.on('error', () => undefined);
      b.write('reset');
      b.resume();
    });
    const evs = await waitFor(() => {
      const r = requests(g.events).filter((e) => e.decision === 'allow');
      return r.length === 2 && r;
    }, 'both tunnel records');
    const byUp = evs.map((e) => e.data as { bytesUp: number; bytesDown: number; error?: string; relay: string });
    const left = byUp.find((d) => d.bytesUp === 2)!;
    const reset = byUp.find((d) => d.bytesUp === 5)!;
    assert.equal(left.relay, 'native');
    assert.ok(left.bytesDown >= 1 << 20 && left.bytesDown < big.length, `partial download counted (${left.bytesDown})`);
    assert.match(reset.error ?? '', /reset|ECONNRESET/i, 'the reset is named');
    assert.equal(reset.bytesDown, 256 * 1024);
    await waitFor(() => openFds() <= before, `descriptors back to ${before} (now ${openFds()})`);
  } finally {
    await g.gw.close();
    server.close();
  }
  await waitFor(() => openFds() <= atStart, `descriptors after close back to ${atStart} (now ${openFds()})`);
});

test('without the native relay the gateway records the real reason (here AIRLOCK_RELAY=node), not the option', () => {
  const script = `
    const { startGateway, mapResolver } = await import(${JSON.stringify(new URL('../../src/egress/index.ts', import.meta.url).href)});
    const { policySchema } = await import(${JSON.stringify(new URL('../../src/policy/index.ts', import.meta.url).href)});
    const events = [];
    const gw = await startGateway({ session: 't', policy: policySchema.parse({}), audit: (e) => events.push(e), listen: { host: '127.0.0.1', port: 0 }, resolver: mapResolver({}) });
    await gw.close();
    process.stdout.write(JSON.stringify(events.find((e) => e.type === 'egress.gateway.start').data.relay));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, AIRLOCK_RELAY: 'node' },
    encoding: 'utf8',
  });
  assert.deepEqual(JSON.parse(out), { mode: 'node', why: 'AIRLOCK_RELAY=node' });
});
