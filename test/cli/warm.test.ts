// Warm start (issue 16): `airlock warm on` keeps a pre-loaded spare process; bin/airlock hands
// each invocation to it through build/airlock-attach. What a user sees must be what the
// in-process path gives (output, input, status, a terminal, Ctrl-C), the spare must serve no
// one but its user and only the code on disk, and nothing may outlive `warm off` or idle.
// Real processes throughout: the launcher, the C client, the spare, bubblewrap sessions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { AuditStore } from '../../src/audit/index.ts';
import { listSessions } from '../../src/session/index.ts';
import { airlock, BIN, cleanup, makeRepo, ROOT, tmp } from '../helpers.ts';
import { sessionsIn, waitGone } from '../leftovers.ts';

const NODE = process.execPath;
const RUN_TS = join(ROOT, 'src', 'cli', 'run.ts');
const AGENT = 'echo unsaved-work > notes.txt; echo AGENT-READY; exec sleep 300';

interface Status {
  on: boolean;
  spare: { pid: number } | null;
  served: number;
  refused: number;
}

interface SpareState {
  pid?: number;
  loaded?: boolean;
}

const status = (home: string): Status => JSON.parse(airlock(['warm', 'status', '--json'], { home }).stdout) as Status;

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The spare waiting for the next command (a new one starts after every command). */
const readySpare = (home: string) => until('a waiting spare', () => status(home).spare && status(home));

/** Every spare process of this AIRLOCK_HOME (found by its command line and environment). */
function sparesOf(home: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('\0__spare\0')) continue;
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`AIRLOCK_HOME=${home}`)) pids.push(+pid);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const isAlive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(safeRead(`/proc/${pid}/status`));

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The in-process path, as bin/airlock runs it without a spare. */
function inProcess(args: string[], o: { cwd: string; home: string; input?: string }) {
  return spawnSync(NODE, ['--disable-warning=ExperimentalWarning', RUN_TS, ...args], {
    cwd: o.cwd,
    encoding: 'utf8',
    input: o.input ?? '',
    timeout: 120_000,
    env: { ...process.env, AIRLOCK_HOME: o.home, NO_COLOR: '1' },
  });
}

/** Output of a shell command on a pseudo-terminal (script) whose input stays open; bounded. */
async function onTerminal(cmd: string, home: string, cwd: string): Promise<string> {
  const child = spawn('script', ['-qec', cmd, '/dev/null'], {
    cwd,
    env: { ...process.env, AIRLOCK_HOME: home },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 30_000);
  await new Promise((r) => child.once('close', r));
  clearTimeout(timer);
  child.stdin!.destroy();
  return out;
}

const withoutIds = (s: string) => s.replace(/ses-\w+/g, 'SES');

interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `airlock …` in its own process group, as a terminal runs it in the foreground. */
function start(args: string[], home: string, cwd: string): Running {
  const child = spawn(BIN, args, {
    cwd,
    env: { ...process.env, AIRLOCK_HOME: home, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return { child, out: () => out, exited };
}

async function exitOf(r: Running, ms = 60_000) {
  let timer: NodeJS.Timeout | undefined;
  const e = await Promise.race([r.exited, new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)))]);
  clearTimeout(timer);
  if (e) return e;
  process.kill(-r.child.pid!, 'SIGKILL');
  assert.fail(`airlock did not exit:\n${r.out()}`);
}

function sessionOf(home: string, id: string) {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return listSessions(st, id)[0]!;
  } finally {
    st.close();
  }
}

/** What a session may leave (its id, its namespaces); not the home, which the waiting spare names. */
function markersOf(home: string, id: string) {
  const s = sessionsIn(home).find((x) => x.id === id)!;
  return { markers: [id], namespaces: s.namespaces };
}

/** Turns warm start off and checks that no spare of `home` is left. */
async function warmOffClean(home: string): Promise<void> {
  const off = airlock(['warm', 'off'], { home });
  assert.equal(off.status, 0, off.stderr);
  assert.deepEqual(await until('no spare left', () => sparesOf(home).length === 0 || null, 10_000), true);
}

describe('airlock through a warm spare', () => {
  const home = tmp('airlock-warm-home-');
  const repo = makeRepo();
  before(async () => {
    const on = airlock(['warm', 'on', '--idle', '10m'], { home });
    assert.equal(on.status, 0, on.stdout + on.stderr);
    await readySpare(home);
  });
  after(async () => {
    await warmOffClean(home);
    cleanup(home, repo);
  });

  it('gives the output, input and exit status of the in-process path, and really went through the spare', async () => {
    const before = await readySpare(home);
    const args = ['run', '--', 'sh', '-c', 'cat; echo err >&2; exit 3'];
    const warm = airlock(args, { home, cwd: repo, input: 'typed input\n' });
    assert.equal(warm.status, 3, warm.stderr);
    assert.equal(warm.stdout, 'typed input\n');
    const after = await readySpare(home);
    assert.equal(after.served, before.served + 1, 'the spare served the run');
    assert.notEqual(after.spare!.pid, before.spare!.pid, 'the serving spare ended; its successor waits');
    const cold = inProcess(args, { home, cwd: repo, input: 'typed input\n' });
    assert.equal(cold.status, warm.status);
    assert.equal(cold.stdout, warm.stdout);
    assert.equal(withoutIds(cold.stderr), withoutIds(warm.stderr));
  });

  it('`session start` through a spare starts its detached supervisor (__supervise); exec and stop reach it', async () => {
    const before = await readySpare(home);
    const st = airlock(['session', 'start', '--json'], { home, cwd: repo });
    assert.equal(st.status, 0, st.stderr);
    const id = (JSON.parse(st.stdout) as { id: string }).id;
    try {
      await readySpare(home);
      const ex = airlock(['exec', id, '--', 'sh', '-c', 'echo in-session; exit 5'], { home, cwd: repo });
      assert.equal(ex.status, 5, ex.stderr);
      assert.equal(ex.stdout, 'in-session\n');
      await readySpare(home);
      // exec hands a piped stdin to the command through process.stdin: the spare's new stream for fd 0
      const piped = airlock(['exec', id, '--', 'cat'], { home, cwd: repo, input: 'through process.stdin\n' });
      assert.equal(piped.status, 0, piped.stderr);
      assert.equal(piped.stdout, 'through process.stdin\n');
      await readySpare(home);
      // on a terminal, exec leaves stdin to the terminal (process.stdin.isTTY) and does not read it:
      // with the terminal kept open (script's input never ends), `cat` must still end at once
      const onTty = await onTerminal(`${BIN} exec ${id} -- cat; echo EXEC-DONE`, home, repo);
      assert.match(onTty, /EXEC-DONE/, onTty);
      await readySpare(home);
      const stop = airlock(['session', 'stop', id], { home, cwd: repo });
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal((await readySpare(home)).served, before.served + 5, 'all five went through spares');
    } finally {
      airlock(['session', 'stop', id], { home, cwd: repo }); // a failed step leaves no session behind
    }
    assert.equal(sessionOf(home, id).state, 'stopped');
    assert.deepEqual(await waitGone(markersOf(home, id)), []);
  });

  it('keeps a terminal a terminal: the sandbox sees a tty on 0 and 1, and the CLI colours its output', async () => {
    const before = await readySpare(home);
    const cmd = `${BIN} run -- sh -c 'test -t 0 && echo IN-TTY; test -t 1 && echo OUT-TTY'; echo "status=$?"`;
    const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_HOME: home };
    // colours on a terminal as a user's shell has it: Node's colour depth is 1 bit under CI=true or TERM=dumb
    delete env.NO_COLOR;
    delete env.CI;
    env.TERM = 'xterm-256color';
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: repo, encoding: 'utf8', env, timeout: 120_000 });
    assert.match(r.stdout, /IN-TTY/);
    assert.match(r.stdout, /OUT-TTY/);
    assert.match(r.stdout, /status=0/);
    assert.match(r.stdout, /\x1b\[2mairlock:/, 'stderr is a terminal to the CLI: dim "airlock:"');
    assert.equal((await readySpare(home)).served, before.served + 1, 'the spare served it');
  });

  it('Ctrl-C reaches the session through the client: exit 130, the session interrupted with its work captured', async () => {
    const before = await readySpare(home);
    const r = start(['run', '--', 'sh', '-c', AGENT], home, repo);
    await until('the agent', () => r.out().includes('AGENT-READY'), 60_000);
    const id = /session (ses-\w+)/.exec(r.out())![1]!;
    process.kill(-r.child.pid!, 'SIGINT');
    const e = await exitOf(r);
    assert.equal(e.code, 130, r.out());
    const s = sessionOf(home, id);
    assert.equal(s.state, 'interrupted');
    assert.ok(s.end, 'an end time is recorded');
    assert.equal(s.dirty, true, "the agent's unsaved work was captured");
    assert.deepEqual(await waitGone(markersOf(home, id)), []);
    assert.equal((await readySpare(home)).served, before.served + 1);
  });

  it('kill -9 of the client mid-run is a hangup: the session ends interrupted and the spare leaves nothing', async () => {
    const serving = (await readySpare(home)).spare!.pid;
    const r = start(['run', '--', 'sh', '-c', AGENT], home, repo);
    await until('the agent', () => r.out().includes('AGENT-READY'), 60_000);
    const id = /session (ses-\w+)/.exec(r.out())![1]!;
    process.kill(r.child.pid!, 'SIGKILL');
    await exitOf(r);
    await until('the serving spare to end', () => !isAlive(serving) || null, 60_000);
    const s = sessionOf(home, id);
    assert.equal(s.state, 'interrupted', 'ended as for SIGHUP');
    assert.ok(s.end);
    assert.deepEqual(await waitGone(markersOf(home, id)), []);
  });

  it('a spare that dies mid-run: the client says so in one line and exits 70; the session leaves nothing', async () => {
    const serving = (await readySpare(home)).spare!.pid;
    const r = start(['run', '--', 'sh', '-c', AGENT], home, repo);
    await until('the agent', () => r.out().includes('AGENT-READY'), 60_000);
    const id = /session (ses-\w+)/.exec(r.out())![1]!;
    process.kill(serving, 'SIGKILL');
    const e = await exitOf(r);
    assert.equal(e.code, 70, r.out());
    assert.match(r.out(), /the warm spare serving this command ended without an exit status/);
    assert.deepEqual(await waitGone(markersOf(home, id)), []);
  });

  it('a malformed request is dropped without running anything, and a successor still waits', async () => {
    const before = await readySpare(home);
    const junk = `const c = require('net').connect(${JSON.stringify(join(home, 'run', 'warm', 'spare.sock'))});
c.on('connect', () => c.end('GET / HTTP/1.1\\r\\n\\r\\n')); c.on('data', (d) => console.log('ANSWER', d)); c.on('error', () => {}); c.on('close', () => console.log('CLOSED'));`;
    const r = spawnSync(NODE, ['-e', junk], { encoding: 'utf8', timeout: 30_000 });
    assert.match(r.stdout, /^CLOSED$/m, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /ANSWER/, 'no answer to garbage');
    const after = await readySpare(home);
    assert.notEqual(after.spare!.pid, before.spare!.pid);
    assert.equal(after.served, before.served, 'nothing was served');
    assert.match(readFileSync(join(home, 'run', 'warm', 'spare.log'), 'utf8'), /dropped a client .*malformed/);
  });

  it('a spare whose code changed on disk is refused as stale; the run still succeeds, in-process', async () => {
    const stalePid = (await readySpare(home)).spare!.pid;
    const file = join(ROOT, 'src', 'cli', 'warm', 'protocol.ts');
    const st = statSync(file);
    utimesSync(file, st.atime, new Date(st.mtimeMs + 1000));
    try {
      const r = airlock(['run', '--', 'sh', '-c', 'echo ran; exit 4'], { home, cwd: repo });
      assert.equal(r.status, 4, r.stderr);
      assert.equal(r.stdout, 'ran\n');
      assert.match(readFileSync(join(home, 'run', 'warm', 'spare.log'), 'utf8'), new RegExp(`${stalePid}: stale`));
    } finally {
      utimesSync(file, st.atime, st.mtime);
    }
  });
});

describe('a spare serves no one but its user', () => {
  const home = tmp('airlock-warm-uid-');
  const warmDir = join(home, 'run', 'warm');
  const socket = join(warmDir, 'spare.sock');
  const asNobody = (argv: string[]) =>
    spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', ...argv], {
      encoding: 'utf8',
      cwd: '/',
      timeout: 60_000,
      env: { PATH: process.env.PATH!, AIRLOCK_HOME: home },
    });
  const connectScript = `const c = require('net').connect(${JSON.stringify(socket)});
c.on('connect', () => console.log('CONNECTED')); c.on('error', (e) => console.log(e.code)); c.on('close', () => console.log('CLOSED'));`;
  before(async () => {
    assert.equal(airlock(['warm', 'on'], { home }).status, 0);
    await readySpare(home);
  });
  after(async () => {
    await warmOffClean(home);
    cleanup(home);
  });

  it('another uid cannot even reach the socket (its directory is 0700)', async () => {
    const spare = (await readySpare(home)).spare!.pid;
    assert.equal(statSync(warmDir).mode & 0o777, 0o700);
    const r = asNobody([NODE, '-e', connectScript]);
    assert.match(r.stdout, /EACCES/, r.stdout + r.stderr);
    assert.equal((await readySpare(home)).spare!.pid, spare, 'the spare still waits');
  });

  it('another uid that gets to the socket is refused by SO_PEERCRED, and the refusal is recorded', async () => {
    const spare = (await readySpare(home)).spare!.pid;
    const dirs = [home, join(home, 'run'), warmDir];
    for (const d of dirs) chmodSync(d, 0o711);
    chmodSync(socket, 0o666); // an attacker's best case: the directory and socket opened up
    try {
      const r = asNobody([NODE, '-e', connectScript]);
      assert.match(r.stdout, /CONNECTED[\s\S]*CLOSED/, r.stdout + r.stderr);
      const s = await until('the refusal', () => status(home).refused >= 1 && status(home));
      assert.equal(s.spare!.pid, spare, 'the spare refused and still waits for its user');
      // and the client as that uid will not hand its terminal to a spare of another user
      const attach = asNobody([join(ROOT, 'build', 'airlock-attach'), socket, NODE, RUN_TS, '--version']);
      assert.equal(attach.status, 0, attach.stderr);
      assert.match(attach.stderr, /runs as uid 0, not you; ignoring it/);
      assert.equal(attach.stdout.trim(), '0.1.0', 'it ran in-process instead');
      assert.equal(status(home).served, 0, 'nothing was served');
    } finally {
      for (const d of dirs) chmodSync(d, 0o700);
    }
  });
});

describe('nothing outlives warm start', () => {
  it('`warm off` ends the waiting spare and leaves no process', async () => {
    const home = tmp('airlock-warm-off-');
    try {
      assert.equal(airlock(['warm', 'on'], { home }).status, 0);
      const pid = (await readySpare(home)).spare!.pid;
      assert.ok(isAlive(pid));
      await warmOffClean(home);
      const s = status(home);
      assert.equal(s.on, false);
      assert.equal(s.spare, null);
      assert.equal(existsSync(join(home, 'run', 'warm', 'spare.sock')), false, 'bin/airlock finds no socket');
    } finally {
      cleanup(home);
    }
  });

  it('a spare whose socket a newer spare took over exits; the newer one serves', async () => {
    const home = tmp('airlock-warm-replaced-');
    try {
      assert.equal(airlock(['warm', 'on'], { home }).status, 0);
      const first = (await readySpare(home)).spare!.pid;
      const second = spawn(NODE, ['--disable-warning=ExperimentalWarning', RUN_TS, '__spare', '--idle-ms', '600000'], {
        env: { ...process.env, AIRLOCK_HOME: home },
        stdio: 'ignore',
        detached: true,
        cwd: '/',
      });
      second.unref();
      await until('the newer spare', () => status(home).spare?.pid === second.pid || null);
      await until('the older spare to exit', () => !isAlive(first) || null, 10_000);
      assert.deepEqual(sparesOf(home), [second.pid]);
      await warmOffClean(home);
    } finally {
      cleanup(home);
    }
  });

  it('a successor loads once the spare before it has ended, even while that one is a zombie not yet reaped', async () => {
    const home = tmp('airlock-warm-zombie-');
    // `sleep 0` exits at once and its parent (exec'd into `sleep 60`) never reaps it: a zombie,
    // as an ended spare is until init reaps it (Node's own children are reaped by Node)
    const holder = spawn('sh', ['-c', 'sleep 0 & exec sleep 60'], { stdio: 'ignore' });
    try {
      assert.equal(airlock(['warm', 'on'], { home }).status, 0);
      await readySpare(home);
      const zombie = await until('the zombie', () =>
        readdirSync('/proc')
          .filter((p) => /^\d+$/.test(p))
          .map(Number)
          .find((p) => safeRead(`/proc/${p}/stat`).includes(`) Z ${holder.pid} `)),
      );
      assert.equal(airlock(['warm', 'off'], { home }).status, 0);
      await until('no spare', () => sparesOf(home).length === 0 || null);
      assert.equal(airlock(['warm', 'on'], { home }).status, 0);
      const first = (await readySpare(home)).spare!.pid;
      const successor = spawn(
        NODE,
        ['--disable-warning=ExperimentalWarning', RUN_TS, '__spare', '--idle-ms', '600000', '--after', String(zombie)],
        { env: { ...process.env, AIRLOCK_HOME: home }, stdio: 'ignore', detached: true, cwd: '/' },
      );
      successor.unref();
      const state = () => JSON.parse(safeRead(join(home, 'run', 'warm', 'state.json')) || '{}') as SpareState;
      await until('the successor loaded', () => (state().pid === successor.pid && state().loaded) || null);
      await until('the older spare to exit', () => !isAlive(first) || null, 10_000);
      assert.match(
        readFileSync(join(home, 'run', 'warm', 'spare.log'), 'utf8'),
        new RegExp(`loading: the spare before \\(pid ${zombie}\\) has ended`),
      );
      await warmOffClean(home);
    } finally {
      holder.kill('SIGKILL');
      cleanup(home);
    }
  });

  it('the idle timeout ends the chain: no spare, warm start off, and the next airlock runs in-process', async () => {
    const home = tmp('airlock-warm-idle-');
    try {
      assert.equal(airlock(['warm', 'on', '--idle', '2s'], { home }).status, 0);
      await readySpare(home);
      await until('the idle end', () => sparesOf(home).length === 0 || null, 30_000);
      const s = status(home);
      assert.equal(s.on, false);
      assert.equal(s.spare, null);
      assert.equal(airlock(['--version'], { home }).stdout.trim(), '0.1.0');
      assert.deepEqual(sparesOf(home), []);
    } finally {
      cleanup(home);
    }
  });
});
