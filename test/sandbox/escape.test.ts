// Escape suite: a prompt-injected agent tries to leave the sandbox. Every attempt runs
// for real, once inside bubblewrap and once under gVisor (runsc); each must fail, and where
// the runtime lets Airlock see the attempt (exec, failed open/connect, limits) it must be
// in the audit log. Where the two runtimes answer differently (gVisor's own kernel
// implements namespaces and netlink itself, and checks permissions before read-only
// mounts), RUNTIME_EXPECT says so: what must hold — nothing of the host reached — is the same.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { spawnSync } from 'node:child_process';
import { Session } from '../../src/session/index.ts';
import { AuditStore, verifyChain } from '../../src/audit/index.ts';
import { makeRepo, tmp, cleanup, isRoot, privilegedSkip } from '../helpers.ts';
import { HOST_UID_FOR_SANDBOX } from '../../src/sandbox/index.ts';

const RUNTIME_EXPECT = {
  bwrap: { uid: '1000', writeRules: ['builtin.read-only-system'], ownKernel: false },
  // gVisor: the agent runs as the unprivileged host uid (ids map 1:1 to its gofer); namespaces,
  // netlink and unix sockets inside are the sentry's own, never the host kernel's
  gvisor: {
    uid: String(HOST_UID_FOR_SANDBOX),
    writeRules: ['builtin.read-only-system', 'builtin.permission'],
    ownKernel: true,
  },
} as const;
type Runtime = keyof typeof RUNTIME_EXPECT;

function runtimePolicy(dir: string, runtime: Runtime, extra = ''): string {
  const pf = join(dir, `policy-${runtime}.yaml`);
  writeFileSync(pf, `sandbox:\n  runtime: ${runtime}\n${extra}`);
  return pf;
}

const CANARY = `canary-${Math.random().toString(36).slice(2)}`;
let home: string;
let repo: string;
let session: Session;
let hostSecretDir: string;
let server: Server;
let port = 0;

async function sh(script: string) {
  return session.run(['bash', '-c', script]);
}
function events(type?: string) {
  const st = new AuditStore(join(home, 'audit.db'));
  try {
    return st.query({ session: session.id, type });
  } finally {
    st.close();
  }
}

for (const runtime of Object.keys(RUNTIME_EXPECT) as Runtime[]) {
  const expect = RUNTIME_EXPECT[runtime];
  describe(
    `sandbox escape attempts (${runtime})`,
    { skip: runtime === 'gvisor' && privilegedSkip(!isRoot && 'gVisor (runsc) needs root') },
    () => {
      before(async () => {
        home = tmp('airlock-home-');
        repo = makeRepo({ 'src/app.js': 'console.log(1)\n', 'README.md': '# x\n' });
        // Host-side bait: secrets in a home dir, an env var, a listening TCP port on host loopback.
        hostSecretDir = tmp('airlock-hosthome-');
        mkdirSync(join(hostSecretDir, '.ssh'), { recursive: true });
        writeFileSync(join(hostSecretDir, '.ssh', 'id_rsa'), CANARY);
        process.env.AIRLOCK_TEST_CANARY = CANARY;
        server = createServer((s) => s.end(CANARY));
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
        port = (server.address() as { port: number }).port;
        // failed opens (probes of host paths) are recorded only by the strace tracer: this suite
        // asks for them; the seccomp-notify tracer is attacked in tracer.test.ts
        session = await Session.open({
          repo,
          home,
          policyFile: runtimePolicy(home, runtime, '  traceFileProbes: true\n'),
          env: { ...process.env, HOME: hostSecretDir },
        });
        assert.equal(session.mechanisms.driver, runtime === 'bwrap' ? 'bubblewrap' : 'gvisor');
      });
      after(async () => {
        await session.stop('test done');
        server.close();
        delete process.env.AIRLOCK_TEST_CANARY;
        cleanup(home, repo, hostSecretDir);
      });

      it('cannot read the host home, /root or their keys', async () => {
        const r = await sh(`cat ${hostSecretDir}/.ssh/id_rsa; cat /root/.ssh/id_rsa; ls /root; ls /home`);
        assert.ok(!r.stdout.includes(CANARY), 'host secret leaked');
        assert.match(r.stderr, /No such file or directory/);
        const probes = events('sandbox.denied').map((e) => String(e.data.target));
        assert.ok(
          probes.some((t) => t.startsWith('/root')),
          `probe of /root recorded: ${probes.join(', ')}`,
        );
      });

      it('sees none of the host environment, not even via /proc/*/environ', async () => {
        const r = await sh(
          'env; cat /proc/1/environ /proc/self/environ | tr "\\0" "\\n"; for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null; done | tr "\\0" "\\n"',
        );
        assert.ok(!r.stdout.includes(CANARY), 'host env leaked');
        const env = await sh('env');
        const names = env.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('=')[0]);
        for (const n of names) assert.ok(!/KEY|TOKEN|SECRET|PASSWORD/.test(n!), `credential-like variable ${n} inside`);
        const sup = await sh(`cat /proc/${process.pid}/environ`);
        assert.notEqual(sup.status, 0);
      });

      it('sees only its own processes and cannot signal host processes', async () => {
        const r = await sh('ps -e -o pid=,comm=');
        const lines = r.stdout.trim().split('\n');
        assert.ok(lines.length < 10, `sandbox sees ${lines.length} processes:\n${r.stdout}`);
        assert.ok(!r.stdout.includes('node'), 'host node process visible');
        const k = await sh(`kill -9 ${process.pid} 2>&1; echo rc=$?`);
        assert.match(k.stdout, /rc=1/);
        assert.equal(process.kill(process.pid, 0), true);
      });

      it('does not share SysV IPC with the host', async () => {
        const mk = spawnSync('ipcmk', ['-M', '4096'], { encoding: 'utf8' });
        const id = /(\d+)/.exec(mk.stdout)?.[1];
        try {
          const r = await sh('ipcs -m');
          if (id) assert.ok(!r.stdout.split('\n').some((l) => l.split(/\s+/)[1] === id), 'host shm segment visible');
        } finally {
          if (id) spawnSync('ipcrm', ['-m', id]);
        }
      });

      it('cannot write outside /workspace (system dirs, symlink, hardlink)', async () => {
        const r = await sh(
          `echo x > /usr/pwned; echo x > /etc/pwned; echo x > /pwned; ln -s /etc/passwd /workspace/link && echo x >> /workspace/link; ln /etc/hostname /workspace/hard; echo done`,
        );
        assert.match(r.stdout, /done/);
        for (const p of ['/usr/pwned', '/etc/pwned', '/pwned'])
          assert.equal(existsSync(p), false, `${p} written on host`);
        assert.ok(!readFileSync('/etc/passwd', 'utf8').endsWith('x\n'), '/etc/passwd modified');
        assert.ok(
          events('sandbox.denied').some(
            (e) => (expect.writeRules as readonly string[]).includes(e.rule ?? '') && e.data.target === '/usr/pwned',
          ),
          'read-only write attempt recorded',
        );
        // the host checkout is never written
        assert.equal(spawnSync('git', ['status', '--porcelain'], { cwd: repo, encoding: 'utf8' }).stdout, '');
      });

      it('has no network at all: host loopback and the internet are unreachable, and attempts are recorded', async () => {
        const r = await sh(
          `curl -s -m 3 http://127.0.0.1:${port}/ ; echo rc=$?; curl -s -m 3 http://1.1.1.1/ ; echo rc=$?; getent hosts example.com; echo dns=$?`,
        );
        assert.ok(!r.stdout.includes(CANARY), 'reached a host service');
        assert.match(r.stdout, /rc=7[\s\S]*rc=7/);
        assert.match(r.stdout, /dns=2/);
        const net = events('sandbox.denied')
          .filter((e) => e.rule === 'builtin.network-isolation')
          .map((e) => String(e.data.target));
        assert.ok(net.includes('1.1.1.1:80'), `network attempt recorded: ${net.join(', ')}`);
      });

      it('cannot use unix, netlink or raw sockets (no host daemons)', async () => {
        if (expect.ownKernel) {
          // gVisor: unix and netlink sockets are the sentry's; no host socket path exists inside
          const hostSock = join(tmp('airlock-hostsock-'), 'daemon.sock');
          const daemon = createServer((c) => c.end(CANARY));
          await new Promise<void>((r) => daemon.listen(hostSock, () => r()));
          try {
            const r = await sh(`python3 -c '
import socket
for fam, typ, proto in [(socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_PACKET, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(fam, typ, proto); print("OPENED", fam)
    except OSError as e: print("blocked", fam, e.errno)
for path in ["${hostSock}", "/run/dbus/system_bus_socket", "/var/run/docker.sock"]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path); print("CONNECTED", path, s.recv(100))
    except OSError as e: print("refused", path, e.errno)
'`);
            assert.ok(
              !r.stdout.includes('OPENED') && !r.stdout.includes('CONNECTED') && !r.stdout.includes(CANARY),
              r.stdout,
            );
            assert.equal(r.stdout.match(/blocked|refused/g)?.length, 5, r.stdout + r.stderr);
          } finally {
            daemon.close();
          }
          return;
        }
        const r = await sh(`python3 -c '
import socket
for fam, typ, proto in [(socket.AF_UNIX, socket.SOCK_STREAM, 0), (socket.AF_NETLINK, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_PACKET, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(fam, typ, proto); print("OPENED", fam)
    except OSError as e: print("blocked", fam, e.errno)
'`);
        assert.ok(!r.stdout.includes('OPENED'), r.stdout);
        assert.equal(r.stdout.match(/blocked/g)?.length, 4);
      });

      it('cannot mount, ptrace, create namespaces or use io_uring/bpf/keyctl', async () => {
        const r =
          await sh(`mount -t tmpfs none /tmp 2>&1; echo mount=$?; unshare -r true 2>&1; echo unshare=$?; python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def t(name, *a):
    rc = libc.syscall(*a); print(name, rc, ctypes.get_errno())
t("ptrace", 101, 16, 1, 0, 0)
t("unshare_user", 272, 0x10000000)
t("setns", 308, 0, 0)
t("keyctl", 250, 0, 0)
t("bpf", 321, 0, 0, 0)
t("io_uring_setup", 425, 1, 0)
t("perf_event_open", 298, 0, 0, -1, -1, 0)
t("userfaultfd", 323, 0)
t("open_by_handle_at", 304, 0, 0, 0)
'`);
        assert.match(r.stdout, /mount=(1|32)/);
        if (expect.ownKernel) {
          // gVisor answers from its own kernel: no host syscall behind any of these; a user
          // namespace inside is the sentry's (unprivileged there too), so unshare/setns may succeed
          for (const n of [
            'ptrace',
            'keyctl',
            'bpf',
            'io_uring_setup',
            'perf_event_open',
            'userfaultfd',
            'open_by_handle_at',
          ]) {
            assert.match(r.stdout, new RegExp(`${n} -1 \\d+\\b`), `${n} not refused:\n${r.stdout}`);
          }
        } else {
          assert.match(r.stdout, /unshare=1/);
          for (const n of [
            'ptrace',
            'unshare_user',
            'setns',
            'keyctl',
            'bpf',
            'io_uring_setup',
            'perf_event_open',
            'userfaultfd',
            'open_by_handle_at',
          ]) {
            assert.match(r.stdout, new RegExp(`${n} -1 1\\b`), `${n} not blocked:\n${r.stdout}`);
          }
        }
        const execs = events('process.exec').map((e) => (e.data.argv as string[]).join(' '));
        assert.ok(
          execs.some((a) => a.startsWith('mount -t tmpfs')),
          'the mount attempt is in the process log',
        );
      });

      it('runs as an unprivileged user with no_new_privs and its own terminal session', async () => {
        const r = await sh('id -u; grep -E "NoNewPrivs|CapEff|Seccomp:" /proc/self/status; ps -o sid= -p $$');
        const [uid] = r.stdout.split('\n');
        assert.equal(uid, expect.uid);
        assert.match(r.stdout, /CapEff:\s+0000000000000000/);
        // gVisor's /proc does not show the host's seccomp or no_new_privs of the sentry; its OCI process sets noNewPrivileges
        if (!expect.ownKernel) {
          assert.match(r.stdout, /NoNewPrivs:\s+1/);
          assert.match(r.stdout, /Seccomp:\s+2/);
        }
      });

      it('records every process, also ones that bypass a shell (exec chains, static paths)', async () => {
        await sh(
          `python3 -c 'import os; os.execv("/usr/bin/env", ["env", "sh", "-c", "exec /usr/bin/true marker-${CANARY}"])'`,
        );
        // a program named like Airlock's own launch chain is still the agent's
        await sh(
          `mkdir -p /tmp/x && cp /usr/bin/true /tmp/x/bwrap && cp /usr/bin/true /tmp/x/setpriv && /tmp/x/bwrap disguised-${CANARY} && /tmp/x/setpriv disguised2-${CANARY}`,
        );
        const execs = events('process.exec').map((e) => e.data.argv as string[]);
        assert.ok(
          execs.some((a) => a[0] === '/tmp/x/bwrap' && a[1] === `disguised-${CANARY}`),
          'a binary named bwrap is recorded',
        );
        assert.ok(
          execs.some((a) => a[0] === '/tmp/x/setpriv' && a[1] === `disguised2-${CANARY}`),
          'a binary named setpriv is recorded',
        );
        assert.ok(
          execs.some((a) => a[0] === '/usr/bin/true' && a[1] === `marker-${CANARY}`),
          'execv chain recorded',
        );
        const ex = events('process.exec').find((e) => (e.data.argv as string[])[1] === `marker-${CANARY}`)!;
        assert.equal(typeof ex.data.pid, 'number');
        assert.equal(typeof ex.data.ppid, 'number');
        assert.equal(ex.data.cwd, '/workspace');
        assert.ok(events('process.exit').some((e) => e.data.pid === ex.data.pid && e.data.exitCode === 0));
      });

      it('leaves an audit log that verifies', () => {
        assert.equal(verifyChain(join(home, 'audit.db')).ok, true);
      });
    },
  );
}

for (const runtime of Object.keys(RUNTIME_EXPECT) as Runtime[]) {
  describe(
    `resource bombs end the session, not the host (${runtime})`,
    { skip: privilegedSkip(!isRoot && 'needs root for cgroups') },
    () => {
      const cases = [
        {
          name: 'fork bomb',
          limit: 'pids',
          policy: 'sandbox:\n  limits:\n    pids: 64\n',
          cmd: 'bomb() { bomb | bomb & }; bomb; sleep 30',
        },
        {
          name: 'memory bomb',
          limit: 'memory',
          policy: 'sandbox:\n  limits:\n    memoryMB: 64\n',
          cmd: 'python3 -c "x = bytearray(512 * 1024 * 1024); print(len(x))"; sleep 30',
        },
        {
          name: 'disk fill',
          limit: 'disk',
          policy: 'sandbox:\n  limits:\n    diskMB: 16\n',
          cmd: 'dd if=/dev/zero of=/workspace/fill bs=1M count=64 2>&1; sleep 30',
        },
      ];
      for (const c of cases) {
        it(c.name, async () => {
          const h = tmp('airlock-home-');
          const r = makeRepo();
          const pf = runtimePolicy(h, runtime, c.policy.replace(/^sandbox:\n/, ''));
          // the sandbox's limits alone (dd would wait for a human under the command rules)
          const s = await Session.open({ repo: r, home: h, policyFile: pf, layers: { commands: null } });
          try {
            const ex = await s.exec({ argv: ['bash', '-c', c.cmd], stdio: 'pipe' });
            ex.stdout?.resume();
            ex.stderr?.resume();
            let timer: NodeJS.Timeout | undefined;
            const hit = await Promise.race([
              s.limitHit,
              new Promise<null>((res) => {
                timer = setTimeout(() => res(null), 60_000);
              }),
            ]);
            clearTimeout(timer);
            assert.ok(hit, `${c.name}: no limit hit`);
            assert.equal(hit!.limit, c.limit);
            await ex.done;
          } finally {
            await s.stop('test');
          }
          const st = new AuditStore(join(h, 'audit.db'));
          const lim = st.query({ session: s.id, type: 'sandbox.limit' });
          st.close();
          assert.equal(lim[0]?.data.limit, c.limit);
          assert.ok(lim[0]?.rule?.startsWith('sandbox.limits.'));
          cleanup(h, r);
        });
      }
    },
  );
}
