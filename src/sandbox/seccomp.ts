// The sandbox's seccomp filter, generated here as a classic BPF program and handed to
// bwrap (--seccomp FD). Everything not listed is allowed: the filter removes the kernel
// surfaces a coding agent never needs and that escapes and host attacks rely on.
// x86_64 only (bwrap refuses other arches' programs we don't generate; the driver
// checks process.arch before using it).

/** Syscalls that fail with EPERM, and why. Documented in docs/ARCHITECTURE.md. */
export const BLOCKED_SYSCALLS: Record<string, { nr: number; why: string }> = {
  ptrace: { nr: 101, why: "inspect/modify other processes (also the supervisor's strace)" },
  process_vm_readv: { nr: 310, why: "read another process's memory" },
  process_vm_writev: { nr: 311, why: "write another process's memory" },
  pidfd_getfd: { nr: 438, why: 'steal file descriptors from another process' },
  kcmp: { nr: 312, why: "probe other processes' kernel objects" },
  mount: { nr: 165, why: 'change the filesystem view' },
  umount2: { nr: 166, why: 'uncover what the sandbox mounted over' },
  pivot_root: { nr: 155, why: 'change the root' },
  chroot: { nr: 161, why: 'change the root (classic breakout ingredient)' },
  move_mount: { nr: 429, why: 'new mount API' },
  open_tree: { nr: 428, why: 'new mount API' },
  fsopen: { nr: 430, why: 'new mount API' },
  fsconfig: { nr: 431, why: 'new mount API' },
  fsmount: { nr: 432, why: 'new mount API' },
  fspick: { nr: 433, why: 'new mount API' },
  mount_setattr: { nr: 442, why: 'new mount API' },
  unshare: { nr: 272, why: 'new namespaces (user namespaces expose kernel attack surface)' },
  setns: { nr: 308, why: 'join other namespaces' },
  keyctl: { nr: 250, why: 'kernel keyring is not namespaced: host keys' },
  add_key: { nr: 248, why: 'kernel keyring' },
  request_key: { nr: 249, why: 'kernel keyring' },
  bpf: { nr: 321, why: 'eBPF programs: kernel attack surface, tracing' },
  perf_event_open: { nr: 298, why: 'performance counters: side channels, kernel attack surface' },
  userfaultfd: { nr: 323, why: 'race-condition exploit primitive' },
  io_uring_setup: { nr: 425, why: 'io_uring bypasses seccomp for the operations it performs' },
  io_uring_enter: { nr: 426, why: 'io_uring' },
  io_uring_register: { nr: 427, why: 'io_uring' },
  kexec_load: { nr: 246, why: 'replace the kernel' },
  kexec_file_load: { nr: 320, why: 'replace the kernel' },
  init_module: { nr: 175, why: 'load kernel modules' },
  finit_module: { nr: 313, why: 'load kernel modules' },
  delete_module: { nr: 176, why: 'unload kernel modules' },
  reboot: { nr: 169, why: 'reboot' },
  swapon: { nr: 167, why: 'host swap' },
  swapoff: { nr: 168, why: 'host swap' },
  acct: { nr: 163, why: 'process accounting' },
  quotactl: { nr: 179, why: 'disk quotas' },
  syslog: { nr: 103, why: 'kernel log: host information leak' },
  lookup_dcookie: { nr: 212, why: 'profiling' },
  open_by_handle_at: { nr: 304, why: 'open files by handle, bypassing the mount view (the "shocker" escape)' },
  name_to_handle_at: { nr: 303, why: 'file handles (pairs with open_by_handle_at)' },
  iopl: { nr: 172, why: 'raw I/O ports' },
  ioperm: { nr: 173, why: 'raw I/O ports' },
  settimeofday: { nr: 164, why: 'host clock' },
  clock_settime: { nr: 227, why: 'host clock' },
  clock_adjtime: { nr: 305, why: 'host clock' },
  adjtimex: { nr: 159, why: 'host clock' },
  vhangup: { nr: 153, why: 'terminal hangup' },
  uselib: { nr: 134, why: 'obsolete loader' },
  fanotify_init: { nr: 300, why: 'filesystem-wide monitoring' },
  nfsservctl: { nr: 180, why: 'obsolete' },
};

const NR = { socket: 41, ioctl: 16, clone: 56, clone3: 435 };
/** The only socket families a sandbox gets (an allowlist): IP to the proxy bridge. AF_UNIX (host daemons), AF_NETLINK, AF_PACKET, AF_VSOCK (not confined by the network namespace), AF_ALG… are refused. */
export const ALLOWED_SOCKET_FAMILIES = { AF_INET: 2, AF_INET6: 10 } as const;
const SOCK_RAW = 3;
const SOCK_PACKET = 10;
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
const CLONE_NEW_MASK =
  0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;

// Filtered on their arguments (not in BLOCKED_SYSCALLS):
// - socket(family other than AF_INET | AF_INET6): EAFNOSUPPORT (an allowlist: no host daemons over AF_UNIX, no netlink, packet, vsock or kernel crypto sockets)
// - socket(type SOCK_RAW | SOCK_PACKET): no raw IP (ICMP tunnels, spoofing)
// - ioctl(TIOCSTI | TIOCLINUX): no typing into the controlling terminal
// - clone(CLONE_NEW*): no new namespaces via clone
// - clone3: ENOSYS (its flags are in memory seccomp cannot read; libc falls back to clone)
// - any x32 syscall number and any non-x86_64 architecture: killed

const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const EAFNOSUPPORT = 97;
const ENOSYS = 38;

// BPF opcodes
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const AND_K = 0x54;
const RET_K = 0x06;

type Ins = { code: number; jt: number | string; jf: number | string; k: number } | { label: string };

const off = { nr: 0, arch: 4, argLo: (i: number) => 16 + 8 * i };

/**
 * The sandbox's filter. With `socketFamiliesRefusedBySupervisor` (the seccomp-notify tracer
 * runs), socket() of a family outside the allowlist passes this filter to reach the tracer's,
 * which records the attempt and refuses it with the same EAFNOSUPPORT (an ERRNO here would
 * win over its notification, and the attempt would go unrecorded). Without a listener the
 * kernel fails a notifying call with ENOSYS: still refused.
 */
export function buildSeccompProgram(o: { socketFamiliesRefusedBySupervisor?: boolean } = {}): Buffer {
  const program: Ins[] = [];
  const ins = (code: number, k: number, jt: number | string = 0, jf: number | string = 0) =>
    program.push({ code, jt, jf, k });
  ins(LD_W_ABS, off.arch);
  ins(JEQ_K, AUDIT_ARCH_X86_64, 0, 'kill');
  ins(LD_W_ABS, off.nr);
  ins(JGE_K, X32_SYSCALL_BIT, 'kill', 0);
  for (const { nr } of Object.values(BLOCKED_SYSCALLS)) ins(JEQ_K, nr, 'eperm', 0);
  ins(JEQ_K, NR.socket, 'socket', 0);
  ins(JEQ_K, NR.ioctl, 'ioctl', 0);
  ins(JEQ_K, NR.clone, 'clone', 0);
  ins(JEQ_K, NR.clone3, 'enosys', 0);
  ins(RET_K, RET_ALLOW);
  program.push({ label: 'socket' });
  ins(LD_W_ABS, off.argLo(0));
  ins(JEQ_K, ALLOWED_SOCKET_FAMILIES.AF_INET, 'socket_type', 0);
  ins(
    JEQ_K,
    ALLOWED_SOCKET_FAMILIES.AF_INET6,
    'socket_type',
    o.socketFamiliesRefusedBySupervisor ? 'allow' : 'eafnosupport',
  );
  program.push({ label: 'socket_type' });
  ins(LD_W_ABS, off.argLo(1));
  ins(AND_K, 0xf);
  ins(JEQ_K, SOCK_RAW, 'eperm', 0);
  ins(JEQ_K, SOCK_PACKET, 'eperm', 0);
  ins(RET_K, RET_ALLOW);
  program.push({ label: 'ioctl' });
  ins(LD_W_ABS, off.argLo(1));
  ins(JEQ_K, TIOCSTI, 'eperm', 0);
  ins(JEQ_K, TIOCLINUX, 'eperm', 0);
  ins(RET_K, RET_ALLOW);
  program.push({ label: 'clone' });
  ins(LD_W_ABS, off.argLo(0));
  ins(JSET_K, CLONE_NEW_MASK, 'eperm', 0);
  ins(RET_K, RET_ALLOW);
  program.push({ label: 'allow' });
  ins(RET_K, RET_ALLOW);
  program.push({ label: 'eperm' });
  ins(RET_K, RET_ERRNO | EPERM);
  program.push({ label: 'eafnosupport' });
  ins(RET_K, RET_ERRNO | EAFNOSUPPORT);
  program.push({ label: 'enosys' });
  ins(RET_K, RET_ERRNO | ENOSYS);
  program.push({ label: 'kill' });
  ins(RET_K, RET_KILL_PROCESS);

  // resolve labels into relative jump offsets
  const labels = new Map<string, number>();
  const real: Exclude<Ins, { label: string }>[] = [];
  for (const i of program) {
    if ('label' in i) labels.set(i.label, real.length);
    else real.push(i);
  }
  const buf = Buffer.alloc(real.length * 8);
  real.forEach((i, idx) => {
    const rel = (j: number | string) => {
      if (typeof j === 'number') return j;
      const target = labels.get(j);
      if (target === undefined) throw new Error(`seccomp: unknown label ${j}`);
      const d = target - idx - 1;
      if (d < 0 || d > 255) throw new Error(`seccomp: jump to ${j} out of range (${d})`);
      return d;
    };
    buf.writeUInt16LE(i.code, idx * 8);
    buf.writeUInt8(rel(i.jt), idx * 8 + 2);
    buf.writeUInt8(rel(i.jf), idx * 8 + 3);
    buf.writeUInt32LE(i.k >>> 0, idx * 8 + 4);
  });
  return buf;
}
