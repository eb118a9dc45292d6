// A session's life as an operator meets it: however it ends (agent exit, Ctrl-C,
// SIGTERM, a second signal, kill -9 of the supervisor, `session stop`), it ends with an
// end time and a state, and nothing of it remains: no process, mount or namespace
// (test/helpers.ts checks that after every test; these tests also check it directly).
// Its egress bridge cannot multiply: a thousand connections from inside are no thousand
// host processes. A command waiting on an "ask" ends with its session.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { listSessions } from '../../src/session/index.ts';
import { airlock, BIN, makeRepo, tmp, cleanup } from '../helpers.ts';
import { leftovers, sessionsIn, waitGone } from '../leftovers.ts';

interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `airlock …` in its own process group, as a terminal would run it in the foreground. */
function start(args: string[], home: string): Running {
  const child = spawn(BIN, args, {
    env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { child, out: () => out, exited };
}

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves with the exit, or kills the process group and fails after a generous bound (hang guard, not a speed test). */
async function exitOf(r: Running, ms = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<null>((res) => {
    timer = setTimeout(() => res(null), ms);
  });
  const e = await Promise.race([r.exited, hung]);
  clearTimeout(timer);
  if (!e) {
    try {
      process.kill(-r.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    assert.fail(`airlock did not exit after the signal:\n${r.out()}`);
  }
  return e;
}

function summary(home: string, id: string) {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return { s: listSessions(st, id)[0]!, events: st.query({ session: id }) };
  } finally {
    st.close();
  }
}

function markersOf(home: string, id: string) {
  const s = sessionsIn(home).find((x) => x.id === id)!;
  return { markers: [id, home], namespaces: s.namespaces };
}

const AGENT = 'echo unsaved-work > notes.txt; echo AGENT-READY; exec sleep 300';

describe('sessions end clean however they end', () => {
  for (const c of [
    { name: 'SIGTERM with a gateway', sig: 'SIGTERM' as const, code: 143, gateway: true },
    {
      name: 'Ctrl-C (SIGINT to the process group) without a gateway',
      sig: 'SIGINT' as const,
      code: 130,
      gateway: false,
    },
  ]) {
    it(`${c.name}: the agent stops, its work is captured, the session is interrupted with an end time, exit ${c.code}`, async () => {
      const home = tmp('airlock-home-');
      const repo = makeRepo();
      try {
        const r = start(
          ['run', '--repo', repo, ...(c.gateway ? ['--allow-host', 'example.com'] : []), '--', 'sh', '-c', AGENT],
          home,
        );
        await until('the agent', () => r.out().includes('AGENT-READY'));
        const id = /session (ses-\w+)/.exec(r.out())![1]!;
        process.kill(-r.child.pid!, c.sig); // a terminal signals the whole foreground group
        const e = await exitOf(r);
        assert.equal(e.code, c.code, r.out());
        const { s, events } = summary(home, id);
        assert.equal(s.state, 'interrupted');
        assert.ok(s.end, 'an end time is recorded');
        assert.equal(s.dirty, true, `the agent's unsaved work was captured: ${events.map((x) => x.type).join(',')}`);
        assert.deepEqual(await waitGone(markersOf(home, id)), []);
      } finally {
        cleanup(home, repo);
      }
    });
  }

  it('a second signal forces the end at once; the end is still recorded', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    try {
      const r = start(['run', '--repo', repo, '--allow-host', 'example.com', '--', 'sh', '-c', AGENT], home);
      await until('the agent', () => r.out().includes('AGENT-READY'));
      const id = /session (ses-\w+)/.exec(r.out())![1]!;
      process.kill(r.child.pid!, 'SIGTERM');
      process.kill(r.child.pid!, 'SIGTERM');
      const e = await exitOf(r);
      assert.equal(e.code, 143, r.out());
      const { s } = summary(home, id);
      assert.equal(s.state, 'interrupted');
      assert.ok(s.end);
      assert.deepEqual(await waitGone(markersOf(home, id)), []);
    } finally {
      cleanup(home, repo);
    }
  });

  it('kill -9 of the supervisor leaves no process, mount or namespace, and a log that verifies', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    try {
      const r = start(['run', '--repo', repo, '--allow-host', 'example.com', '--', 'sh', '-c', AGENT], home);
      await until('the agent', () => r.out().includes('AGENT-READY'));
      const id = /session (ses-\w+)/.exec(r.out())![1]!;
      process.kill(r.child.pid!, 'SIGKILL');
      await exitOf(r);
      assert.deepEqual(await waitGone(markersOf(home, id)), []);
      const v = airlock(['audit', 'verify'], { home });
      assert.equal(v.status, 0, v.stdout + v.stderr);
      assert.equal(summary(home, id).s.state, 'aborted');
    } finally {
      cleanup(home, repo);
    }
  });
});

describe('the egress bridge cannot multiply', () => {
  let server: Server;
  it('300 connections held open from inside the sandbox make no host processes; session stop leaves none', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo();
    server = createServer((_q, s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const pf = join(home, 'p.yaml');
    writeFileSync(
      pf,
      `egress:\n  allowCidrs:\n    - cidr: 127.0.0.1/32\n      ports: [${port}]\n  limits:\n    maxConnections: 1000\n`,
    );
    try {
      const st = airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home });
      assert.equal(st.status, 0, st.stderr);
      const id = JSON.parse(st.stdout).id as string;
      const hold = `import socket, time
s = []
for i in range(300):
    c = socket.create_connection(("127.0.0.1", 3128)); s.append(c)
print("HELD", len(s), flush=True)
time.sleep(120)`;
      const ex = spawn(BIN, ['exec', id, '--', 'python3', '-c', hold], {
        env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      ex.stdout.on('data', (d) => {
        out += d;
      });
      ex.stderr.on('data', (d) => {
        out += d;
      });
      await until('300 connections', () => out.includes('HELD 300') || out.includes('Error'));
      assert.match(out, /HELD 300/);
      const during = leftovers(markersOf(home, id));
      // the holder, the command's launch chain and the agent: a handful, not one per connection
      assert.ok(
        during.length < 30,
        `host processes of the session while 300 connections are open: ${during.length}\n${during.slice(0, 10).join('\n')}`,
      );
      const stop = airlock(['session', 'stop', id], { home });
      assert.equal(stop.status, 0, stop.stderr);
      await new Promise((r) => ex.once('close', r));
      assert.deepEqual(await waitGone(markersOf(home, id)), []);
    } finally {
      server.close();
      cleanup(home, repo);
    }
  });
});

describe('a command waiting on an ask ends with its session', () => {
  it('the ask is closed as expired, the exec gets a clear error, nothing says the database is closed', async () => {
    const home = tmp('airlock-home-');
    const repo = makeRepo({ 'keep/a.txt': 'a\n' });
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, 'commands:\n  askTimeoutSeconds: 300\n');
    try {
      const st = airlock(['session', 'start', '--json', '--repo', repo, '--policy', pf], { home });
      assert.equal(st.status, 0, st.stderr);
      const id = JSON.parse(st.stdout).id as string;
      const ex = spawn(BIN, ['exec', id, '--', 'sh', '-c', 'rm -fr keep'], {
        env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      ex.stdout.on('data', (d) => {
        out += d;
      });
      ex.stderr.on('data', (d) => {
        out += d;
      });
      const exCode = new Promise<number | null>((r) => ex.once('close', r));
      await until(
        'the ask',
        () => (JSON.parse(airlock(['approvals', '--json'], { home }).stdout || '[]') as unknown[]).length > 0,
      );
      const stop = airlock(['session', 'stop', id], { home });
      assert.equal(stop.status, 0, stop.stderr);
      const code = await exCode;
      assert.notEqual(code, 0);
      assert.doesNotMatch(out, /database is not open/);
      assert.match(out, /session .* ended/);
      const all = JSON.parse(airlock(['approvals', '--all', '--json'], { home }).stdout) as {
        status: string;
        answerReason: string;
      }[];
      assert.equal(all.length, 1);
      assert.equal(all[0]!.status, 'timeout');
      assert.match(all[0]!.answerReason, /session ended/);
      const { events } = summary(home, id);
      assert.ok(events.some((e) => e.type === 'command.timeout' && e.data.cause === 'session-ended'));
    } finally {
      cleanup(home, repo);
    }
  });
});
