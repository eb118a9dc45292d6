// The seccomp-notify process tracer (build/airlock-tracer) under attack: an agent that
// execs from a static binary, from python and perl, bombs with forks, hides in huge or
// escape-laden argv, races to rewrite its argv while the kernel reads it, opens socket
// families outside the allowlist, or kills the tracer. Every test runs real sessions in
// bubblewrap as root (the notify tracer needs the proc connector); in CI a session that
// falls back to strace as root is a failure, not a skip.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Session } from '../../src/session/index.ts';
import { recoverTrace } from '../../src/sandbox/index.ts';
import { TRACER_BINARY } from '../../src/sandbox/tracers.ts';
import { AuditStore, type AuditEvent } from '../../src/audit/index.ts';
import { withSession } from './with-session.ts';
import { makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';

const skip = privilegedSkip(isRoot ? false : 'the seccomp-notify tracer needs root (proc connector)');

/** A static binary (no libc, no loader) that execs /bin/echo itself by raw syscall. */
const STATIC_SRC = `#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
  char *argv[] = { "echo", "from-static", 0 };
  char *envp[] = { 0 };
  syscall(SYS_execve, "/bin/echo", argv, envp);
  return 9;
}
`;

function events(home: string, session: string): AuditEvent[] {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return st.query({ session });
  } finally {
    st.close();
  }
}
const execs = (ev: AuditEvent[]) =>
  ev
    .filter((e) => e.type === 'process.exec')
    .map((e) => e.data as { pid: number; ppid: number; argv: string[]; path: string; cwd: string });
const ofType = (ev: AuditEvent[], type: string) => ev.filter((e) => e.type === type);

describe('seccomp-notify tracer', { skip }, () => {
  let home: string;
  let repo: string;
  let tools: string;
  let session: Session;
  before(async () => {
    home = tmp('airlock-home-');
    repo = makeRepo({ 'README.md': '# x\n' });
    tools = tmp('airlock-tools-');
    writeFileSync(join(tools, 'static.c'), STATIC_SRC);
    chmodSync(tools, 0o755); // the sandbox user must reach it
    const cc = spawnSync('cc', ['-static', '-O2', '-o', join(tools, 'static-exec'), join(tools, 'static.c')], {
      encoding: 'utf8',
    });
    assert.equal(cc.status, 0, `cannot build the static test binary: ${cc.stderr}`);
    const pf = join(home, 'p.yaml');
    writeFileSync(pf, `sandbox:\n  mounts:\n    readOnly: [${JSON.stringify(tools)}]\n`);
    session = await Session.open({ repo, home, policyFile: pf, layers: { commands: null } });
  });
  after(async () => {
    await session.stop('test done');
    cleanup(home, repo, tools);
  });

  it('is the tracer a root session gets, named in session.start', () => {
    const start = ofType(events(home, session.id), 'session.start')[0]!;
    const m = (start.data as { mechanisms: { tracing: string; tracingFallback?: string } }).mechanisms;
    assert.equal(m.tracing, 'seccomp-notify', `fell back: ${m.tracingFallback}`);
  });

  it('records the exec of a static binary and the exec it makes by raw syscall, with parent and exit', async () => {
    const r = await session.run(['bash', '-c', `${tools}/static-exec; echo rc=$?`]);
    assert.match(r.stdout, /from-static\nrc=0/);
    const ev = events(home, session.id);
    const x = execs(ev);
    const stat = x.find((e) => e.path === `${tools}/static-exec`);
    assert.ok(stat, `static exec recorded: ${JSON.stringify(x.map((e) => e.argv))}`);
    const echo = x.find((e) => e.argv.join(' ') === 'echo from-static');
    assert.ok(echo, "the static binary's own execve is recorded");
    assert.equal(echo.pid, stat.pid, 'same process: exec replaced the image');
    const bash = x.find((e) => e.argv[0] === 'bash' && e.argv[2]?.includes('static-exec'))!;
    assert.equal(stat.ppid, bash.pid, 'parent is the shell');
    const exit = ofType(ev, 'process.exit').find((e) => (e.data as { pid: number }).pid === echo.pid);
    assert.equal((exit?.data as { exitCode: number }).exitCode, 0);
  });

  it('records execve from python and perl, and exits with status and signal', async () => {
    await session.run([
      'bash',
      '-c',
      `python3 -c 'import os; os.execv("/bin/sh", ["sh", "-c", "exit 7", "from-python"])'; perl -e 'exec { "/bin/sh" } "sh", "-c", "kill -SEGV \\$\\$", "from-perl"'; true`,
    ]);
    const ev = events(home, session.id);
    const py = execs(ev).find((e) => e.argv.at(-1) === 'from-python');
    const pl = execs(ev).find((e) => e.argv.at(-1) === 'from-perl');
    assert.ok(py && pl, 'both language-level execs recorded');
    const exitOf = (pid: number) =>
      ofType(ev, 'process.exit').find((e) => (e.data as { pid: number }).pid === pid)?.data as {
        exitCode: number | null;
        signal: string | null;
      };
    assert.equal(exitOf(py.pid).exitCode, 7);
    assert.equal(exitOf(pl.pid).signal, 'SIGSEGV');
  });

  it('records argv with terminal escapes exactly and bounds a huge argv', async () => {
    const evil = 'x\x1b]0;owned\x07\x1b[2J"\\\n\u00e9';
    await session.run([
      'python3',
      '-c',
      `import os, sys
pid = os.fork()
if pid == 0: os.execv("/bin/true", ["true", sys.argv[1]])
os.waitpid(pid, 0)
pid = os.fork()
if pid == 0: os.execv("/bin/true", ["true-wide"] + ["\x01" * 16000] * 100)
os.waitpid(pid, 0)
os.execv("/bin/true", ["true-huge", "A" * 100000] + ["y"] * 6000)`,
      evil,
    ]);
    const x = execs(events(home, session.id));
    const esc = x.find((e) => e.argv[0] === 'true' && e.argv.length === 2);
    // bytes as the kernel had them (é as its two UTF-8 bytes, each one char): escaping is the printer's job
    assert.equal(esc?.argv[1], Buffer.from(evil, 'utf8').toString('latin1'));
    const huge = x.find((e) => e.argv[0] === 'true-huge');
    assert.ok(huge, 'the huge exec is recorded');
    assert.ok(huge.argv.length <= 4096, `argv bounded: ${huge.argv.length}`);
    assert.ok(huge.argv[1]!.length <= 4097 && huge.argv[1]!.endsWith('…'), 'a long string is cut and marked');
    // 100 strings that escape to 16 KiB each: cut off by size, still an exec that happened
    const ev = events(home, session.id);
    const wide = execs(ev).find((e) => e.argv[0] === 'true-wide');
    assert.ok(wide && wide.argv.length < 101, `a wide argv is recorded as an exec, cut: ${wide?.argv.length}`);
    for (const a of wide.argv.slice(1))
      assert.match(a, /^\x01+…?$/, "each recorded string is one of the agent's, cut cleanly");
    assert.ok(!ofType(ev, 'process.exec_failed').some((e) => (e.data as { argv: string[] }).argv[0] === 'true-wide'));
  });

  it('records argv as it was in memory at the call while another thread rewrites it (one of the two values, never lost)', async () => {
    // Reading happens at the syscall (TOCTOU is inherent to user notification): the record is
    // evidence, not a decision; command rules decide before the command starts.
    await session.run([
      'python3',
      '-c',
      `import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(b"AAAAAAAA", 16)
def flip():
    while True:
        ctypes.memmove(buf, b"BBBBBBBB", 8); ctypes.memmove(buf, b"AAAAAAAA", 8)
threading.Thread(target=flip, daemon=True).start()
argv = (ctypes.c_char_p * 3)(b"race-echo", ctypes.cast(buf, ctypes.c_char_p), None)
libc.execve(b"/bin/echo", argv, None)`,
    ]);
    const race = execs(events(home, session.id)).find((e) => e.argv[0] === 'race-echo');
    assert.ok(race, 'the racing exec is recorded');
    assert.match(race.argv[1]!, /^[AB]{8}$/);
  });

  it('refuses socket families outside the allowlist with EAFNOSUPPORT and records each, naming the rule', async () => {
    const r = await session.run([
      'python3',
      '-c',
      `import socket, errno
for name in ["AF_VSOCK", "AF_PACKET", "AF_NETLINK", "AF_ALG", "AF_UNIX"]:
    try:
        socket.socket(getattr(socket, name), socket.SOCK_SEQPACKET if name == "AF_ALG" else socket.SOCK_DGRAM, 0); print(name, "OPENED")
    except OSError as e: print(name, errno.errorcode.get(e.errno, e.errno))
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); print("AF_INET OPENED")`,
    ]);
    for (const f of ['AF_VSOCK', 'AF_PACKET', 'AF_NETLINK', 'AF_ALG', 'AF_UNIX'])
      assert.match(r.stdout, new RegExp(`^${f} EAFNOSUPPORT$`, 'm'), r.stdout);
    assert.match(r.stdout, /^AF_INET OPENED$/m);
    const denied = ofType(events(home, session.id), 'sandbox.denied')
      .filter((e) => e.rule === 'builtin.socket-families')
      .map((e) => String((e.data as { target: string }).target));
    for (const f of ['AF_VSOCK', 'AF_PACKET', 'AF_NETLINK', 'AF_ALG', 'AF_UNIX'])
      assert.ok(denied.includes(f), `${f} recorded: ${denied.join(', ')}`);
  });

  it('a loop of refused sockets is refused every time but recorded a bounded number of times', async () => {
    const before = ofType(events(home, session.id), 'sandbox.denied').length;
    const r = await session.run([
      'python3',
      '-c',
      `import socket
n = 0
for i in range(3000):
    try: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    except OSError: n += 1
print("refused", n)`,
    ]);
    assert.match(r.stdout, /refused 3000/);
    const ev = events(home, session.id);
    const recorded = ofType(ev, 'sandbox.denied').length - before;
    assert.ok(recorded >= 1000 && recorded <= 1001, `bounded: ${recorded}`);
    assert.ok(
      ofType(ev, 'sandbox.trace_error').some((e) =>
        /later ones were refused/.test(String((e.data as { error: string }).error)),
      ),
      'the bound is recorded',
    );
  });

  it("launches bwrap straight from the tracer (no shell, nsenter, setpriv or choom) and keeps the chain's properties", async () => {
    const h = await session.exec({ argv: ['bash', '-c', 'sleep 300 & sleep 300'] });
    try {
      const sleepers = await waitForSleepers(h.pid);
      const proc = (pid: number, f: string) => readFileSync(`/proc/${pid}/${f}`, 'utf8');
      // the command's own process is the tracer (no shell left in it); what its launcher runs is
      // bwrap itself (the program comes with the go when the tracer was started ahead)
      assert.equal(proc(h.pid, 'comm').trim(), 'airlock-tracer');
      const args = proc(h.pid, 'cmdline').split('\0');
      const launchers = proc(h.pid, `task/${h.pid}/children`).trim().split(/\s+/).map(Number);
      assert.deepEqual(
        launchers.map((pid) => proc(pid, 'comm').trim()),
        ['bwrap'],
        'the launcher execs bwrap',
      );
      for (const link of ['nsenter', 'setpriv', 'choom', 'sh', '/bin/sh'])
        assert.ok(!args.includes(link), `${link} in the chain: ${args.join(' ')}`);
      for (const pid of sleepers) {
        const status = proc(pid, 'status');
        assert.equal(proc(pid, 'oom_score_adj').trim(), '1000', 'the agent goes first to the OOM killer');
        assert.ok(!/^(Uid|Gid):.*\b0\b/m.test(status), `no root ids: ${/^Uid:.*$/m.exec(status)?.[0]}`);
        assert.match(status, /^Groups:\s*$/m, 'supplementary groups cleared');
        assert.match(status, /^NoNewPrivs:\s+1$/m);
        assert.ok(Number(/^Seccomp_filters:\s+(\d+)/m.exec(status)?.[1]) >= 2, "the tracer's filter and the sandbox's");
        assert.notEqual(
          readlinkSync(`/proc/${pid}/ns/net`),
          readlinkSync('/proc/self/ns/net'),
          "in the holder's network namespace, not the host's",
        );
        assert.notEqual(readlinkSync(`/proc/${pid}/ns/user`), readlinkSync('/proc/self/ns/user'));
      }
    } finally {
      h.kill('SIGKILL');
      await h.done;
    }
  });

  it('fails closed: killing the tracer ends the command and every agent process', async () => {
    const h = await session.exec({ argv: ['bash', '-c', 'sleep 300 & sleep 300; echo survived'] });
    const tracer = await waitForTracer(h.pid);
    const sleepers = await waitForSleepers(h.pid);
    process.kill(tracer, 'SIGKILL');
    const timeout = new Promise<'hung'>((r) => {
      setTimeout(() => r('hung'), 20_000).unref();
    });
    const res = await Promise.race([h.done, timeout]);
    assert.notEqual(res, 'hung', 'the command outlived its tracer');
    await new Promise((r) => setTimeout(r, 200));
    const left = sleepers.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x00300\x00';
      } catch {
        return false;
      }
    });
    assert.deepEqual(left, [], 'no agent process outlives the tracer');
  });
});

describe('seccomp-notify tracer with transparent egress', { skip }, () => {
  it('a connect the namespace redirects to the gateway is not a direct connection; any other port is', async () => {
    const ev = await withSession(
      'egress:\n  transparent: auto\n  allow:\n    - host: allowed.example\n      ports: [443]\n',
      (s) =>
        s.run([
          'python3',
          '-c',
          `import socket
for port in (443, 25):
    try: socket.create_connection(("198.51.100.9", port), timeout=3).close()
    except OSError as e: print(port, e)`,
        ]),
    );
    const start = ofType(ev, 'session.start')[0]!.data as { mechanisms: { network: string; tracing: string } };
    assert.equal(start.mechanisms.network, 'gateway');
    assert.equal(start.mechanisms.tracing, 'seccomp-notify');
    const direct = ofType(ev, 'sandbox.denied')
      .filter((e) => e.rule === 'builtin.network-isolation')
      .map((e) => String((e.data as { target: string }).target));
    assert.ok(direct.includes('198.51.100.9:25'), `the unredirected port is recorded: ${direct.join(', ')}`);
    assert.ok(
      !direct.includes('198.51.100.9:443'),
      "the redirected port is the gateway's to record, not a direct connection",
    );
  });
});

describe('seccomp-notify tracer under a fork bomb', { skip }, () => {
  it('keeps recording while the pids limit stops the bomb, and the session ends clean', async () => {
    const ev = await withSession('sandbox:\n  limits:\n    pids: 64\n    wallSeconds: 60\n', (s) =>
      // the bomb's first bash returns at once, its children go on: the command waits (bounded) so
      // the session is still running when they reach the limit (the monitor looks every 200 ms)
      s.run(['bash', '-c', "timeout 5 bash -c 'b() { b | b & }; b' 2>/dev/null; sleep 3; /bin/echo after-bomb"]),
    );
    assert.ok(
      ofType(ev, 'sandbox.limit').some((e) => e.rule === 'sandbox.limits.pids'),
      'the pids limit is recorded',
    );
    assert.ok(
      execs(ev).some((e) => e.argv[0] === 'timeout'),
      'execs before the bomb are recorded',
    );
    assert.ok(ofType(ev, 'process.exit').length > 0, 'exits are recorded');
  });
});

/** The airlock-tracer process below a command's launcher (bounded wait). */
async function waitForTracer(root: number): Promise<number> {
  for (let i = 0; i < 200; i++) {
    for (const pid of treeOf(root)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'airlock-tracer') return pid;
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no airlock-tracer below the command');
}

/** The two `sleep 300` agent processes below a command's launcher, once both run (bounded wait). */
async function waitForSleepers(root: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    const pids = treeOf(root).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x00300\x00';
      } catch {
        return false;
      }
    });
    if (pids.length === 2) return pids;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the agent's sleep processes did not start");
}

function treeOf(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length && out.length < 10_000) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return out;
}

describe('airlock-tracer as the launcher: a step that fails ends it before the program runs', { skip }, () => {
  let dir: string;
  before(() => {
    dir = tmp('airlock-launch-');
  });
  after(() => cleanup(dir));
  const launch = (opts: string[]) =>
    spawnSync(TRACER_BINARY, ['-o', join(dir, 't.log'), ...opts, '--', '/bin/sh', '-c', 'echo RAN'], {
      encoding: 'utf8',
      timeout: 20_000,
    });

  for (const [what, opts] of [
    ['namespaces of a process that does not exist', ['--join-ns', '2147483646']],
    ['a cgroup it cannot join', ['--cgroup', '/nonexistent/cgroup.procs']],
    ['a seccomp program it cannot open', ['--fd9', '/nonexistent/seccomp.bpf']],
  ] as const) {
    it(`exits 125 on ${what}`, () => {
      const r = launch([...opts]);
      assert.equal(r.status, 125, r.stderr);
      assert.doesNotMatch(r.stdout, /RAN/, 'the program never ran');
    });
  }

  it('refuses a malformed launch option with its usage (exit 2), running nothing', () => {
    for (const bad of [
      ['--uid', '-1'],
      ['--oom-score-adj', '5000'],
      ['--rlimit', 'bogus=1'],
      ['--join-ns', '12x'],
    ]) {
      const r = launch(bad);
      assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /RAN/);
    }
  });

  it('started ahead (--await-program), runs only a well-formed program sent with its go', () => {
    // the go message on fd 3: 'g', a 32-bit length (host order), NUL-terminated strings
    const strings = (...a: string[]) => Buffer.from(a.map((x) => x + '\0').join(''));
    const go = (body: Buffer, length = body.length) => {
      const head = Buffer.alloc(5);
      head.write('g');
      head.writeUInt32LE(length, 1);
      return Buffer.concat([head, body]);
    };
    const ahead = (message: Buffer, extra: string[] = []) =>
      spawnSync(
        '/bin/sh',
        [
          '-c',
          'exec "$@" 3<&0 0</dev/null',
          'sh',
          TRACER_BINARY,
          '-o',
          join(dir, 'a.log'),
          '--go-fd',
          '3',
          '--await-program',
          ...extra,
        ],
        { input: message, encoding: 'utf8', timeout: 20_000 },
      );
    // the program's first exec by anything but the launcher waits for one more byte, 'r'
    const run = (program: Buffer) => Buffer.concat([program, Buffer.from('r')]);
    const ok = ahead(run(go(strings('/bin/sh', '-c', '/bin/echo RAN "$0"', 'zero'))));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, 'RAN zero\n');
    const malformed: [string, Buffer][] = [
      ['end of file before the go', Buffer.alloc(0)],
      ['another byte than the go', Buffer.from('x')],
      ['a go without its program', Buffer.from('g')],
      ['a length longer than what follows', go(strings('/bin/sh', '-c', 'echo RAN'), 4096)],
      ['a last string without its NUL', go(Buffer.from('/bin/sh\0-c\0echo RAN'))],
      ['an empty program name', go(Buffer.concat([Buffer.from([0]), strings('/bin/sh', '-c', 'echo RAN')]))],
      ['a length past the bound (8 MiB)', go(strings('/bin/sh'), 64 << 20)],
      // the launcher runs sh (its own exec), but sh's exec of echo is held and refused without the 'r'
      ['a program whose run never comes', go(strings('/bin/sh', '-c', '/bin/echo RAN'))],
      ['another byte than the run', Buffer.concat([go(strings('/bin/sh', '-c', '/bin/echo RAN')), Buffer.from('x')])],
    ];
    for (const [what, message] of malformed) {
      const r = ahead(message);
      assert.equal(r.status, 125, `${what}: ${r.stderr}`);
      assert.doesNotMatch(r.stdout, /RAN/, `${what}: nothing ran`);
    }
    // a program on the command line as well as with the go: usage, nothing runs
    const both = ahead(run(go(strings('/bin/sh', '-c', 'echo RAN'))), ['--', '/bin/sh', '-c', 'echo RAN']);
    assert.equal(both.status, 2, both.stderr);
    assert.doesNotMatch(both.stdout, /RAN/);
  });
});

describe('notify trace lines (the parser both tracers share)', () => {
  it('an exec resolved by the proc connector, a refused family and dropped kernel events all reach the log', () => {
    const dir = tmp('airlock-trace-');
    const file = join(dir, '1.log');
    writeFileSync(
      file,
      [
        '10 1.000001 execve("airlock-tracer-launcher", [], 0x0) = 0',
        '10 1.000002 clone(child_stack=NULL, flags=SIGCHLD) = 11',
        '11 1.000003 chdir("/workspace/sub") = 0',
        '11 1.000004 execve("/bin/sh", ["sh", "-c", "x\\x1b"], 0x0 /* environment not recorded */) <unfinished ...>',
        '11 1.000005 <... execve resumed>) = 0',
        '11 1.000006 socket(AF_VSOCK, 1, 0) = -1 EAFNOSUPPORT (Address family not supported by protocol)',
        '11 1.000007 execve("/nope", ["nope"], 0x0 /* environment not recorded */) <unfinished ...>',
        '11 1.000008 <... execve resumed>) = -1 EFAILED (exec did not happen; errno not observed)',
        '11 1.000009 +++ killed by SIGKILL +++',
        '10 1.000010 airlock_tracer_lost_events() = -1 ENOBUFS (the kernel dropped process events)',
        '',
      ].join('\n'),
    );
    try {
      const { events: ev } = recoverTrace(file, 's');
      const types = ev.map((e) => e.type);
      assert.deepEqual(types, [
        'process.exec',
        'sandbox.denied',
        'process.exec_failed',
        'process.exit',
        'sandbox.trace_error',
      ]);
      assert.deepEqual(
        (ev[0]!.data as { argv: string[]; cwd: string }).argv,
        ['sh', '-c', 'x\x1b'],
        'escapes decoded to the bytes the kernel had',
      );
      assert.equal((ev[0]!.data as { cwd: string }).cwd, '/workspace/sub');
      assert.equal(ev[1]!.rule, 'builtin.socket-families');
      assert.equal((ev[3]!.data as { signal: string }).signal, 'SIGKILL');
    } finally {
      cleanup(dir);
    }
  });
});
