import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { sinkStatus } from '../../src/audit/sinks/index.ts';

// `airlock sinks serve` as a real process (what deploy/airlock-sinks.service runs): it
// delivers what sessions record, survives nothing but leaves nothing behind when killed
// with SIGKILL (the next deliverer takes the dead lease over at once), and on SIGTERM
// delivers the tail and exits 0. The receiver is a small local webhook.

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'run.ts');

async function until(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

test('sinks serve delivers events as they are recorded; after kill -9 a new serve takes over at once; SIGTERM exits 0', async () => {
  const ids: string[] = [];
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      ids.push(
        ...(JSON.parse(Buffer.concat(chunks).toString()) as { events: { id: string }[] }).events.map((e) => e.id),
      );
      res.end('{}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/hook`;
  const home = mkdtempSync(join(tmpdir(), 'airlock-serve-'));
  const org = join(home, 'org.yaml');
  writeFileSync(
    org,
    `telemetry:\n  sinks:\n    - { type: webhook, name: soc, url: "${url}", secretEnv: AIRLOCK_SINK_HOOK }\n`,
  );
  const store = new AuditStore(join(home, 'audit.db'));
  const children: ChildProcess[] = [];
  const serve = () => {
    const c = spawn(process.execPath, [CLI, 'sinks', 'serve', '--poll', '50'], {
      env: { ...process.env, AIRLOCK_HOME: home, AIRLOCK_ORG_POLICY: org, AIRLOCK_SINK_HOOK: 'k', NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: home,
    });
    let err = '';
    c.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    children.push(c);
    return { c, err: () => err };
  };
  try {
    const first = serve();
    const a = store.appendMany(Array.from({ length: 30 }, () => ({ type: 'process.exec', session: 's' })));
    assert.ok(await until(() => ids.length >= 30), `delivered by serve: ${first.err()}`);
    assert.ok(
      await until(() => sinkStatus(store)[0]?.owner?.endsWith(`:${first.c.pid}`) === true),
      'serve holds the lease',
    );
    first.c.kill('SIGKILL');
    await new Promise((r) => first.c.once('exit', r));
    assert.equal(sinkStatus(store)[0]!.owner, null, 'the killed deliverer is not shown as delivering');
    const b = store.appendMany(Array.from({ length: 20 }, () => ({ type: 'process.exec', session: 's' })));
    const second = serve();
    assert.ok(
      await until(() => new Set(ids).size >= 50),
      `the dead lease (30 s) was taken over at once: ${second.err()}`,
    );
    const exit = new Promise<number | null>((r) => second.c.once('exit', (code) => r(code)));
    second.c.kill('SIGTERM');
    assert.equal(await exit, 0, second.err());
    assert.match(second.err(), /SIGTERM: stopped/);
    assert.deepEqual(
      [...new Set(ids)],
      [...a, ...b].map((e) => e.id),
      'every event, in order',
    );
    assert.equal(sinkStatus(store)[0]!.lag, 0);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    store.close();
    await new Promise((r) => {
      srv.closeAllConnections();
      srv.close(r);
    });
  }
});

test('sinks serve with no sink configured says so and exits 66', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-serve-'));
  const c = spawn(process.execPath, [CLI, 'sinks', 'serve'], {
    env: { ...process.env, AIRLOCK_HOME: home, AIRLOCK_ORG_POLICY: '/nonexistent', NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: home,
  });
  let err = '';
  c.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const code = await new Promise<number | null>((r) => c.once('exit', (x) => r(x)));
  assert.equal(code, 66);
  assert.match(err, /no sinks to deliver to/);
  assert.doesNotMatch(err, /at .*\.ts:\d+/, 'no stack trace');
});
