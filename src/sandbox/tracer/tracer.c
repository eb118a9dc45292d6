// airlock-tracer: process telemetry without ptrace (seccomp user notification + proc connector).
//
//   airlock-tracer [--die-with-parent] -o TRACE_FILE [--redirected-ports 80,443] [LAUNCH OPTIONS] -- PROGRAM ARGS...
//
// Launch options (the per-command chain of Airlock's bwrap driver, done here instead of in
// dash → nsenter → setpriv → choom → setpriv: four execs less per command):
//   before the fork (the tracer is bound by them too, as it was under the shell):
//     --rlimit RES=N     soft and hard limit; RES: cpu (s), fsize (bytes), core, nofile, nproc, as (bytes)
//     --cgroup FILE      write our pid into a cgroup.procs file (repeatable)
//   in the launcher, after the filter is installed, in this order:
//     --fd9 FILE         open FILE read-only on fd 9 (bwrap --seccomp 9 reads the sandbox's filter)
//     --join-ns PID      join the user, mount and network namespaces of PID (the holder)
//     --oom-score-adj N  the agent's side goes first to the OOM killer
//     --gid N --uid N    drop to these ids, supplementary groups cleared
//   then PR_SET_PDEATHSIG (after the last credential change, which clears it) and exec PROGRAM.
// Any step that fails ends the tracer with 125 before PROGRAM runs (fail closed).
//   --go-fd FD   hold PROGRAM until one byte 'g' arrives on FD (the supervisor makes the
//                command's audit event durable meanwhile: the start overlaps the fsync).
//                End of file or anything else: the launcher is killed, 125, nothing ran.
//                FD is close-on-exec from the start: no process below ever holds it.
//   --await-program  (with --go-fd; no PROGRAM on the command line) the go carries the
//                program: 'g', a 32-bit length in host order, then that many bytes of
//                NUL-terminated strings (PROGRAM ARGS...; at most MAX_PROGRAM_BYTES and
//                MAX_PROGRAM_ARGS). The supervisor starts the tracer ahead of the command
//                (its fork, filter and cgroup joins off the command's path) and sends the
//                command when it has one. Anything malformed: 125, nothing ran.
//                The chain then starts (setns, ids, bwrap's namespaces and mounts) while the
//                supervisor makes the command's event durable: the first exec of anything but
//                the launcher (bwrap's exec of the command) is held at its notification until
//                one more byte 'r' arrives on FD. End of file or anything else: that exec is
//                refused, the chain killed, 125: the command never ran.
//
// The tracer forks. The child installs a seccomp filter (SECCOMP_FILTER_FLAG_NEW_LISTENER)
// that turns execve/execveat, socket() of a family outside the sandbox's allowlist, and
// connect/sendto-with-address into user notifications, passes the listener fd to the parent
// over SCM_RIGHTS, waits for the parent's go, then execs PROGRAM (the rest of the launch
// chain: nsenter → setpriv → bwrap). Every process below inherits the filter; none can
// remove it. The parent services the notifications in one loop: it reads the call's
// arguments from /proc/PID/mem, checks the notification is still valid after reading
// (seccomp_unotify(2)), writes one strace-format line, and answers CONTINUE (or, for a
// refused socket family, EAFNOSUPPORT). Forks, exec outcomes and exit statuses come from
// the proc connector (netlink, needs CAP_NET_ADMIN: root), so no process ever stops for
// fork, open or exit. It writes strace's line format so Airlock's one parser serves both
// tracers (src/sandbox/trace.ts) and a raw trace left by a killed supervisor is recovered
// the same way. It exits with PROGRAM's status (killed by a signal: the same signal).
//
// What it reads is the agent's: argv is recorded as it was in memory when the kernel
// stopped the call (another thread may change it afterwards; nothing enforces on it), every
// string and array is bounded, and every byte outside printable ASCII is escaped.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 4096          /* argv entries recorded per exec */
#define MAX_STR 4096           /* bytes recorded per string */
#define MAX_LINE (1 << 20)     /* one exec line, escapes included */
#define MAX_PROCS 65536        /* processes tracked at once */
#define MAX_REFUSALS 1000      /* refused socket() calls recorded per command (a loop must not flood the log) */
#define PREALLOC_BYTES (4 << 20) /* trace file space reserved up front */
#define DRAIN_MS 300           /* after the chain ends: how long exit events may still arrive */
#define MAX_PROGRAM_BYTES (8 << 20) /* --await-program: the program's strings, NULs included */
#define MAX_PROGRAM_ARGS 65536

/* ---------- output ---------- */

static int out_fd = -1;
static char *line;
static size_t line_len;

static void put(const char *s, size_t n) {
  if (line_len + n > MAX_LINE - 64) n = line_len < MAX_LINE - 64 ? MAX_LINE - 64 - line_len : 0;
  memcpy(line + line_len, s, n);
  line_len += n;
}
static void puts_(const char *s) { put(s, strlen(s)); }
static void putf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void putf(const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  if (n > 0) put(b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}
/* A C string literal as strace prints it: printable ASCII as is, everything else escaped. */
static void put_quoted(const unsigned char *s, size_t n, int truncated) {
  put("\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; put(e, 2); }
    else if (c >= 0x20 && c < 0x7f) put((const char *)&c, 1);
    else { char e[5]; snprintf(e, sizeof e, "\\x%02x", c); put(e, 4); }
  }
  put("\"", 1);
  if (truncated) put("...", 3);
}
static void line_start(int pid) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  line_len = 0;
  putf("%d %lld.%06ld ", pid, (long long)ts.tv_sec, ts.tv_nsec / 1000);
}
/* One write per line (O_APPEND): a reader never sees half of someone else's line. */
static void line_end(void) {
  line[line_len++] = '\n'; /* put() keeps 64 bytes free: the newline always fits */
  size_t off = 0;
  while (off < line_len) {
    ssize_t w = write(out_fd, line + off, line_len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { /* cannot record: fail closed, the chain dies with us */
      dprintf(2, "airlock-tracer: cannot write the trace: %s\n", strerror(errno));
      _exit(125);
    }
    off += (size_t)w;
  }
}

/* ---------- tracked processes (from the proc connector) ---------- */

/* cwd_hash: the cwd last written for this process (the parser carries it across forks, as we do) */
/* agent: exec'd a program (not the launch chain) or descends from one that did: its exit is awaited */
struct proc { int pid; int ppid; int exec_pending; int agent; uint64_t cwd_hash; };
static struct proc procs[MAX_PROCS];
static int nprocs;
static int live_agents;

static struct proc *find(int pid) {
  for (int i = 0; i < nprocs; i++) if (procs[i].pid == pid) return &procs[i];
  return NULL;
}
static struct proc *add(int pid, int ppid) {
  struct proc *p = find(pid);
  if (p) return p;
  if (nprocs >= MAX_PROCS) return NULL;
  p = &procs[nprocs++];
  p->pid = pid; p->ppid = ppid; p->exec_pending = 0; p->agent = 0; p->cwd_hash = 0;
  return p;
}
static void drop(int pid) {
  for (int i = 0; i < nprocs; i++) if (procs[i].pid == pid) { live_agents -= procs[i].agent; procs[i] = procs[--nprocs]; return; }
}

/* ---------- reading the caller's memory ---------- */

static int mem_open(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  return open(path, O_RDONLY | O_CLOEXEC);
}
/* Reads a NUL-terminated string at addr, at most MAX_STR bytes; *trunc set when longer. */
static ssize_t read_str(int mem, uint64_t addr, unsigned char *buf, int *trunc) {
  size_t got = 0;
  *trunc = 0;
  while (got < MAX_STR) {
    size_t want = MAX_STR - got;
    /* stay inside one page per read: the next one may be unmapped */
    size_t page_left = 4096 - ((addr + got) & 4095);
    if (want > page_left) want = page_left;
    ssize_t n = pread(mem, buf + got, want, (off_t)(addr + got));
    if (n <= 0) return got ? (ssize_t)got : -1;
    void *z = memchr(buf + got, 0, (size_t)n);
    if (z) return (unsigned char *)z - buf;
    got += (size_t)n;
  }
  *trunc = 1;
  return MAX_STR;
}

static int notif_valid(int listener, uint64_t id) {
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static void reply(int listener, uint64_t id, int error) {
  struct seccomp_notif_resp r = {0};
  r.id = id;
  if (error) r.error = -error;
  else r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  /* ENOENT: the caller died meanwhile; nothing to answer */
  (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

static unsigned char strbuf[MAX_STR + 1];

/* Appends path and argv of an exec call; returns 0 when the memory could not be read. */
static int put_exec_args(int mem, uint64_t path_addr, uint64_t argv_addr) {
  int trunc;
  ssize_t n = read_str(mem, path_addr, strbuf, &trunc);
  if (n < 0) return 0;
  put_quoted(strbuf, (size_t)n, trunc);
  puts_(", [");
  for (int i = 0; argv_addr; i++) {
    /* bounded in count and in bytes, so the line always ends with its outcome */
    if (i == MAX_ARGS || line_len > MAX_LINE / 2) { puts_(", ..."); break; }
    uint64_t p;
    if (pread(mem, &p, sizeof p, (off_t)(argv_addr + 8 * (uint64_t)i)) != (ssize_t)sizeof p || !p) break;
    n = read_str(mem, p, strbuf, &trunc);
    if (n < 0) break;
    if (i) puts_(", ");
    put_quoted(strbuf, (size_t)n, trunc);
  }
  puts_("], 0x0 /* environment not recorded */");
  return 1;
}

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ULL; }
  return h | 1;
}

/* The cwd of pid as it sees it (the path inside its own mount namespace), when it changed. */
static void put_chdir_line(int pid) {
  char p[64], cwd[4096];
  snprintf(p, sizeof p, "/proc/%d/cwd", pid);
  ssize_t n = readlink(p, cwd, sizeof cwd - 1);
  if (n <= 0 || cwd[0] != '/') return;
  struct proc *pr = find(pid);
  uint64_t h = fnv1a(cwd, (size_t)n);
  if (pr) { if (pr->cwd_hash == h) return; pr->cwd_hash = h; }
  line_start(pid);
  puts_("chdir(");
  put_quoted((unsigned char *)cwd, (size_t)n, 0);
  puts_(") = 0");
  line_end();
}

static const char *family_name(int f) {
  switch (f) {
    case AF_UNIX: return "AF_UNIX"; case AF_NETLINK: return "AF_NETLINK"; case AF_PACKET: return "AF_PACKET";
    case AF_VSOCK: return "AF_VSOCK"; case AF_ALG: return "AF_ALG"; case AF_BLUETOOTH: return "AF_BLUETOOTH";
    case AF_KEY: return "AF_KEY"; case AF_XDP: return "AF_XDP"; case AF_TIPC: return "AF_TIPC"; case AF_RDS: return "AF_RDS";
    default: return NULL;
  }
}

/* TCP ports the sandbox's namespace redirects to the gateway from any address (transparent egress). */
#define MAX_REDIRECTED 64
static unsigned redirected[MAX_REDIRECTED];
static int nredirected;
static int is_redirected(unsigned port) {
  for (int i = 0; i < nredirected; i++) if (redirected[i] == port) return 1;
  return 0;
}
static int parse_ports(const char *s) {
  while (*s) {
    char *end;
    unsigned long p = strtoul(s, &end, 10);
    if (end == s || p == 0 || p > 65535 || nredirected == MAX_REDIRECTED) return -1;
    redirected[nredirected++] = (unsigned)p;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') return -1;
  }
  return 0;
}

/*
 * A sockaddr as strace prints it; returns 0 when it is not a direct attempt to leave:
 * loopback (the proxy, the agent's own servers), a connect the namespace redirects to the
 * gateway (which records it), or unreadable memory.
 */
static int put_sockaddr(int mem, uint64_t addr, uint64_t len, int is_connect) {
  struct sockaddr_storage sa;
  memset(&sa, 0, sizeof sa);
  if (!addr || len < sizeof(sa_family_t)) return 0;
  if (len > sizeof sa) len = sizeof sa;
  if (pread(mem, &sa, len, (off_t)addr) != (ssize_t)len) return 0;
  char ip[INET6_ADDRSTRLEN];
  if (sa.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in *a = (struct sockaddr_in *)&sa;
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127 || (is_connect && is_redirected(ntohs(a->sin_port)))) return 0;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    putf("{sa_family=AF_INET, sin_port=htons(%u), sin_addr=inet_addr(\"%s\")}, %u", ntohs(a->sin_port), ip, (unsigned)len);
    return 1;
  }
  if (sa.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127)) return 0;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    putf("{sa_family=AF_INET6, sin6_port=htons(%u), inet_pton(AF_INET6, \"%s\", &sin6_addr)}, %u", ntohs(a->sin6_port), ip, (unsigned)len);
    return 1;
  }
  return 0;
}

static int root_pid;
/* --await-program: the go fd, until the command's first exec is let run (-1: nothing held) */
static int hold_fd = -1;

static int read_full(int fd, void *buf, size_t n);

/* The supervisor's 'r' for the held exec; without it the command never runs. */
static void release_held_exec(int listener, uint64_t id, int pid) {
  char b = 0;
  int ok = read_full(hold_fd, &b, 1) && b == 'r';
  close(hold_fd);
  hold_fd = -1;
  if (ok) return;
  reply(listener, id, EPERM);
  kill(pid, SIGKILL);
  kill(root_pid, SIGKILL);
  _exit(125);
}

static void handle_notification(int listener, struct seccomp_notif *n) {
  int pid = (int)n->pid;
  const __u64 *a = n->data.args;
  if (n->data.nr == __NR_socket) {
    /* Airlock's own chain (nsenter, bwrap) is not the agent; every other caller is refused */
    if (pid == root_pid) { reply(listener, n->id, 0); return; }
    static int refusals;
    if (++refusals > MAX_REFUSALS) {
      reply(listener, n->id, EAFNOSUPPORT);
      if (refusals == MAX_REFUSALS + 1) {
        line_start(pid);
        putf("airlock_tracer_suppressed() = -1 EDQUOT (more than %d refused socket calls: later ones refused unrecorded)", MAX_REFUSALS);
        line_end();
      }
      return;
    }
    const char *name = family_name((int)a[0]);
    line_start(pid);
    if (name) putf("socket(%s, %d, %d) = -1 EAFNOSUPPORT (Address family not supported by protocol)", name, (int)a[1], (int)a[2]);
    else putf("socket(%d, %d, %d) = -1 EAFNOSUPPORT (Address family not supported by protocol)", (int)a[0], (int)a[1], (int)a[2]);
    reply(listener, n->id, EAFNOSUPPORT);
    line_end();
    return;
  }
  /* the launch chain's own execs (nsenter → setpriv → choom → bwrap) are Airlock's, never recorded */
  if (pid == root_pid) { reply(listener, n->id, 0); return; }
  int is_exec = n->data.nr == __NR_execve || n->data.nr == __NR_execveat;
  if (is_exec && hold_fd >= 0) release_held_exec(listener, n->id, pid);
  int mem = mem_open(pid);
  if (mem < 0 && !is_exec) { reply(listener, n->id, 0); return; }
  if (is_exec) put_chdir_line(pid);
  line_start(pid);
  int ok = 0;
  if (n->data.nr == __NR_execve) { puts_("execve("); ok = mem >= 0 && put_exec_args(mem, a[0], a[1]); }
  else if (n->data.nr == __NR_execveat) { putf("execveat(%d, ", (int)a[0]); ok = mem >= 0 && put_exec_args(mem, a[1], a[2]); }
  else if (n->data.nr == __NR_connect) { putf("connect(%d, ", (int)a[0]); ok = put_sockaddr(mem, a[1], a[2], 1); }
  else { putf("sendto(%d, \"\", %llu, %d, ", (int)a[0], (unsigned long long)a[2], (int)a[3]); ok = put_sockaddr(mem, a[4], a[5], 0); }
  if (mem >= 0) close(mem);
  /* the memory read belongs to this call only if the notification is still live (seccomp_unotify(2)) */
  if (!notif_valid(listener, n->id)) return;
  if (!ok && is_exec) {
    /* an exec is recorded even when its arguments cannot be read (the kernel will likely refuse it: EFAULT) */
    line_start(pid);
    puts_("execve(\"\", [], 0x0 /* arguments unreadable */");
  } else if (!ok) { reply(listener, n->id, 0); return; }
  if (is_exec) {
    /* the outcome arrives from the proc connector (PROC_EVENT_EXEC) or never (failed) */
    puts_(") <unfinished ...>");
    struct proc *p = find(pid);
    if (p) p->exec_pending = 1;
  } else {
    /* the outcome of a network call is not observed: the sandbox's namespace has no route but lo */
    puts_(") = -1 ENETUNREACH (attempt seen at the call; outcome not observed)");
  }
  line_end();
  reply(listener, n->id, 0);
}

/* An exec notified earlier has no PROC_EVENT_EXEC: it failed (errno unseen). */
static void exec_failed(struct proc *p) {
  if (!p->exec_pending) return;
  p->exec_pending = 0;
  line_start(p->pid);
  puts_("<... execve resumed>) = -1 EFAILED (exec did not happen; errno not observed)");
  line_end();
}

/* ---------- proc connector ---------- */

static int connector_open(void) {
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (s < 0) return -1;
  int sz = 16 << 20;
  (void)setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = 0 };
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) { close(s); return -1; }
  struct __attribute__((aligned(NLMSG_ALIGNTO))) {
    struct nlmsghdr nl;
    struct __attribute__((packed)) { struct cn_msg cn; enum proc_cn_mcast_op op; } body;
  } req;
  memset(&req, 0, sizeof req);
  req.nl.nlmsg_len = sizeof req;
  req.nl.nlmsg_type = NLMSG_DONE;
  req.body.cn.id.idx = CN_IDX_PROC;
  req.body.cn.id.val = CN_VAL_PROC;
  req.body.cn.len = sizeof(enum proc_cn_mcast_op);
  req.body.op = PROC_CN_MCAST_LISTEN;
  if (send(s, &req, sizeof req, 0) != (ssize_t)sizeof req) { close(s); return -1; }
  return s;
}

static const char *signal_name(int sig) {
  static char b[16];
  const char *n = sigabbrev_np(sig);
  if (!n) { snprintf(b, sizeof b, "SIG%d", sig); return b; }
  snprintf(b, sizeof b, "SIG%s", n);
  return b;
}

static int lost_events;

static void handle_proc_event(struct proc_event *ev) {
  switch (ev->what) {
    case PROC_EVENT_FORK: {
      const struct fork_proc_event *f = &ev->event_data.fork;
      if (f->child_pid != f->child_tgid) return; /* a thread */
      if (!find(f->parent_tgid)) return;         /* not one of ours */
      struct proc *c = add(f->child_tgid, f->parent_tgid);
      if (!c) { lost_events = 1; return; }
      struct proc *parent = find(f->parent_tgid);
      if (parent) { c->cwd_hash = parent->cwd_hash; c->agent = parent->agent; live_agents += c->agent; }
      line_start(f->parent_tgid);
      putf("clone(child_stack=NULL, flags=SIGCHLD) = %d", f->child_tgid);
      line_end();
      return;
    }
    case PROC_EVENT_EXEC: {
      struct proc *p = find(ev->event_data.exec.process_tgid);
      if (!p || !p->exec_pending) return;
      p->exec_pending = 0;
      if (!p->agent && p->pid != root_pid) { p->agent = 1; live_agents++; }
      line_start(p->pid);
      puts_("<... execve resumed>) = 0");
      line_end();
      return;
    }
    case PROC_EVENT_EXIT: {
      const struct exit_proc_event *x = &ev->event_data.exit;
      if (x->process_pid != x->process_tgid) return;
      struct proc *p = find(x->process_tgid);
      if (!p) return;
      exec_failed(p);
      line_start(p->pid);
      unsigned code = x->exit_code;
      if (code & 0x7f) putf("+++ killed by %s%s +++", signal_name((int)(code & 0x7f)), (code & 0x80) ? " (core dumped)" : "");
      else putf("+++ exited with %u +++", (code >> 8) & 0xff);
      line_end();
      drop(p->pid);
      return;
    }
    default: return;
  }
}

static char nlbuf[1 << 16];

/* Reads every event the connector has queued (non-blocking). */
static void drain_connector(int s) {
  for (;;) {
    ssize_t n = recv(s, nlbuf, sizeof nlbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) { lost_events = 1; continue; }
      return;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)nlbuf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_NOOP) continue;
      struct cn_msg *cn = NLMSG_DATA(h);
      if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC) continue;
      handle_proc_event((struct proc_event *)cn->data);
    }
  }
}

/* ---------- the filter ---------- */

#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)

/* Installs the notifying filter on this process; returns the listener fd. */
static int install_filter(void) {
  struct sock_filter f[] = {
    /* 0 */ LD(offsetof(struct seccomp_data, arch)),
    /* 1 */ JEQ(AUDIT_ARCH_X86_64, 1, 0),
    /* 2 */ RET(SECCOMP_RET_ALLOW), /* other arches: the sandbox's own filter kills them */
    /* 3 */ LD(offsetof(struct seccomp_data, nr)),
    /* 4 */ JEQ(__NR_execve, 13, 0),
    /* 5 */ JEQ(__NR_execveat, 12, 0),
    /* 6 */ JEQ(__NR_connect, 11, 0),
    /* 7 */ JEQ(__NR_socket, 2, 0),
    /* 8 */ JEQ(__NR_sendto, 5, 0),
    /* 9 */ RET(SECCOMP_RET_ALLOW),
    /* 10 socket: only the families outside the allowlist are notified (and refused) */
    /* 10 */ LD(ARG_LO(0)),
    /* 11 */ JEQ(AF_INET, 7, 0),
    /* 12 */ JEQ(AF_INET6, 6, 0),
    /* 13 */ RET(SECCOMP_RET_USER_NOTIF),
    /* 14 sendto with a destination address (send() on a connected socket passes NULL) */
    /* 14 */ LD(ARG_LO(4)),
    /* 15 */ JEQ(0, 0, 2),
    /* 16 */ LD(ARG_HI(4)),
    /* 17 */ JEQ(0, 1, 0),
    /* 18 */ RET(SECCOMP_RET_USER_NOTIF),
    /* 19 */ RET(SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

/* ---------- launcher side: filter, hand over the listener, exec ---------- */

static void send_fd(int sock, int fd) {
  char dummy = 'L';
  struct iovec iov = { .iov_base = &dummy, .iov_len = 1 };
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(sock, &msg, 0) != 1) _exit(125);
}

static int recv_fd(int sock) {
  char dummy;
  struct iovec iov = { .iov_base = &dummy, .iov_len = 1 };
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/* ---------- launch options ---------- */

#define MAX_CGROUPS 8
#define MAX_RLIMITS 8
struct launch {
  const char *fd9, *cgroups[MAX_CGROUPS];
  int ncgroups, join_pid, oom_adj, has_oom, uid, gid; /* uid/gid -1: keep */
  int go_fd;                                           /* -1: start at once */
  int await_program;                                   /* the go carries PROGRAM ARGS... */
  struct { int res; rlim_t v; } rl[MAX_RLIMITS];
  int nrl;
};

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
  char *end;
  errno = 0;
  if (!*s || *s == '-') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

static int parse_rlimit(struct launch *l, const char *s) {
  static const struct { const char *name; int res; } names[] = {
    { "cpu", RLIMIT_CPU }, { "fsize", RLIMIT_FSIZE }, { "core", RLIMIT_CORE },
    { "nofile", RLIMIT_NOFILE }, { "nproc", RLIMIT_NPROC }, { "as", RLIMIT_AS },
  };
  const char *eq = strchr(s, '=');
  unsigned long long v;
  if (!eq || l->nrl >= MAX_RLIMITS || parse_uint(eq + 1, ~0ULL, &v) < 0) return -1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strlen(names[i].name) == (size_t)(eq - s) && strncmp(names[i].name, s, (size_t)(eq - s)) == 0) {
      l->rl[l->nrl].res = names[i].res; l->rl[l->nrl].v = (rlim_t)v; l->nrl++;
      return 0;
    }
  }
  return -1;
}

/* rlimits and cgroups: applied to the tracer before it forks, inherited by the whole chain */
static int apply_process_limits(const struct launch *l) {
  for (int i = 0; i < l->nrl; i++) {
    struct rlimit r = { l->rl[i].v, l->rl[i].v };
    if (setrlimit(l->rl[i].res, &r) < 0) { dprintf(2, "airlock-tracer: setrlimit: %s\n", strerror(errno)); return -1; }
  }
  for (int i = 0; i < l->ncgroups; i++) {
    int fd = open(l->cgroups[i], O_WRONLY | O_CLOEXEC);
    char pid[16];
    int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (fd < 0 || write(fd, pid, (size_t)n) != n) { dprintf(2, "airlock-tracer: cannot join cgroup %s: %s\n", l->cgroups[i], strerror(errno)); if (fd >= 0) close(fd); return -1; }
    close(fd);
  }
  return 0;
}

/* the holder's namespaces, opened before joining any (the mount namespace changes what /proc is) */
static int join_namespaces(int pid) {
  static const char *const ns[] = { "user", "mnt", "net" };
  int fds[3];
  for (int i = 0; i < 3; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, ns[i]);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) { dprintf(2, "airlock-tracer: %s: %s\n", path, strerror(errno)); return -1; }
  }
  for (int i = 0; i < 3; i++) {
    if (setns(fds[i], 0) < 0) { dprintf(2, "airlock-tracer: setns %s: %s\n", ns[i], strerror(errno)); return -1; }
    close(fds[i]);
  }
  return 0;
}

static int drop_ids(const struct launch *l) {
  if (l->gid >= 0 && (setgroups(0, NULL) < 0 || setresgid((gid_t)l->gid, (gid_t)l->gid, (gid_t)l->gid) < 0)) return -1;
  if (l->uid >= 0 && setresuid((uid_t)l->uid, (uid_t)l->uid, (uid_t)l->uid) < 0) return -1;
  return 0;
}

/* the launcher's part of the chain, after the filter: every failure is fatal before exec */
static void launch_steps(const struct launch *l, pid_t tracer) {
  if (l->fd9) {
    int fd = open(l->fd9, O_RDONLY);
    if (fd < 0 || (fd != 9 && (dup2(fd, 9) < 0 || close(fd) < 0))) { dprintf(2, "airlock-tracer: %s: %s\n", l->fd9, strerror(errno)); _exit(125); }
  }
  if (l->join_pid > 0 && join_namespaces(l->join_pid) < 0) _exit(125);
  if (l->has_oom) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    char v[16];
    int n = snprintf(v, sizeof v, "%d", l->oom_adj);
    if (fd < 0 || write(fd, v, (size_t)n) != n) { dprintf(2, "airlock-tracer: oom_score_adj: %s\n", strerror(errno)); _exit(125); }
    close(fd);
  }
  if (drop_ids(l) < 0) { dprintf(2, "airlock-tracer: dropping to uid %d gid %d: %s\n", l->uid, l->gid, strerror(errno)); _exit(125); }
  /* after the last credential change (which clears it); a tracer already gone: never run */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != tracer) _exit(125);
}

static char **read_program(int fd);

static void launcher(int sock, char **argv, const struct launch *l, pid_t tracer) {
  int listener = install_filter();
  if (listener < 0) { dprintf(2, "airlock-tracer: seccomp user notification unavailable: %s\n", strerror(errno)); _exit(125); }
  send_fd(sock, listener);
  close(listener);
  char go;
  /* the parent answers once it listens on both sources: no event of ours precedes it */
  if (read(sock, &go, 1) != 1) _exit(125);
  /* the program, checked by the parent, follows its go */
  if (l->await_program && !(argv = read_program(sock))) _exit(125);
  close(sock);
  launch_steps(l, tracer);
  execvp(argv[0], argv);
  dprintf(2, "airlock-tracer: exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* ---------- supervisor side ---------- */

/* Reads exactly n bytes (0: end of file or an error first). */
static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  return 1;
}

/* A program message (32-bit length, then NUL-terminated strings) as an argv; NULL when malformed. */
static char **read_program(int fd) {
  uint32_t len;
  if (!read_full(fd, &len, sizeof len) || len < 2 || len > MAX_PROGRAM_BYTES) return NULL;
  char *buf = malloc(len);
  if (!buf || !read_full(fd, buf, len) || buf[len - 1] != 0 || buf[0] == 0) return NULL;
  size_t count = 0;
  for (uint32_t k = 0; k < len; k++) if (buf[k] == 0) count++;
  if (count > MAX_PROGRAM_ARGS) return NULL;
  char **args = calloc(count + 1, sizeof *args);
  if (!args) return NULL;
  size_t n = 0;
  for (uint32_t k = 0; k < len; k += (uint32_t)strlen(buf + k) + 1) args[n++] = buf + k;
  return args;
}

/* The same message to the launcher: 'g', the length, the strings. */
static int pass_program(int sock, char **args) {
  uint32_t len = 0;
  for (char **a = args; *a; a++) len += (uint32_t)strlen(*a) + 1;
  /* MSG_NOSIGNAL: a launcher gone meanwhile is an error here, not a SIGPIPE (whose SIG_IGN the agent would inherit) */
  if (send(sock, "g", 1, MSG_NOSIGNAL) != 1 || send(sock, &len, sizeof len, MSG_NOSIGNAL) != (ssize_t)sizeof len) return 0;
  for (char **a = args; *a; a++) {
    size_t n = strlen(*a) + 1, off = 0;
    while (off < n) {
      ssize_t w = send(sock, *a + off, n - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return 0;
      off += (size_t)w;
    }
  }
  return 1;
}

/*
 * The supervisor's go (--go-fd): exactly 'g' (end of file is not waited for), with the
 * program when it is awaited (*program set). 0: do not start.
 */
static int supervisor_go(const struct launch *l, char ***program) {
  if (l->go_fd < 0) return 1;
  char b = 0;
  int ok = read_full(l->go_fd, &b, 1) && b == 'g';
  if (ok && l->await_program) ok = (*program = read_program(l->go_fd)) != NULL;
  /* awaited: the fd stays open for the 'r' that lets the command's first exec run */
  if (ok && l->await_program) hold_fd = l->go_fd;
  else close(l->go_fd);
  return ok;
}

static int usage(void) {
  dprintf(2, "usage: airlock-tracer [--die-with-parent] -o TRACE_FILE [--redirected-ports P,P...]\n"
             "         [--rlimit RES=N]... [--cgroup FILE]... [--fd9 FILE] [--join-ns PID] [--oom-score-adj N] [--gid N] [--uid N]\n"
             "         [--go-fd FD [--await-program]]\n"
             "         -- PROGRAM [ARGS...]   (none with --await-program)\n"
             "       airlock-tracer --check   (exit 0 when this kernel and these privileges support it)\n");
  return 2;
}

static int serve(int listener, int conn, int child_pidfd, int child) {
  struct seccomp_notif_sizes sizes;
  if (syscall(__NR_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -1;
  struct seccomp_notif *n = calloc(1, sizes.seccomp_notif > sizeof *n ? sizes.seccomp_notif : sizeof *n);
  if (!n) return -1;
  int status = 0, ended = 0, listener_gone = 0;
  struct timespec end_at = {0};
  for (;;) {
    /* a listener no filtered task holds any more hangs up for good: stop polling it (it would spin) */
    struct pollfd p[3] = { { listener_gone ? -1 : listener, POLLIN, 0 }, { conn, POLLIN, 0 }, { child_pidfd, POLLIN, 0 } };
    int timeout = -1;
    /* the chain has ended and no filtered task is left: done once every tracked exit is in */
    if (ended && listener_gone && live_agents == 0) break;
    if (ended) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long ms = (end_at.tv_sec - now.tv_sec) * 1000 + (end_at.tv_nsec - now.tv_nsec) / 1000000;
      if (ms <= 0) break;
      timeout = (int)ms;
    }
    int r = poll(p, ended ? 2 : 3, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    /* connector first: a fork or exec outcome precedes any later call of that process */
    if (p[1].revents & POLLIN) drain_connector(conn);
    if (p[0].revents & (POLLHUP | POLLERR)) listener_gone = 1;
    else if (p[0].revents & POLLIN) {
      memset(n, 0, sizes.seccomp_notif);
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, n) == 0) {
        drain_connector(conn);
        struct proc *pr = find((int)n->pid);
        if (pr) exec_failed(pr); /* a later call of the same process: an earlier exec did not happen */
        handle_notification(listener, n);
      }
    }
    if (!ended && (p[2].revents & POLLIN)) {
      if (waitpid(child, &status, 0) == child) {
        ended = 1;
        clock_gettime(CLOCK_MONOTONIC, &end_at);
        end_at.tv_nsec += DRAIN_MS * 1000000L;
        if (end_at.tv_nsec >= 1000000000L) { end_at.tv_sec++; end_at.tv_nsec -= 1000000000L; }
      }
    }
  }
  drain_connector(conn);
  if (lost_events) {
    line_start(child);
    puts_("airlock_tracer_lost_events() = -1 ENOBUFS (the kernel dropped process events)");
    line_end();
  }
  return status;
}

/* 0: NAME VALUE was a launch option and is stored; -1: not one (or a bad value: usage) */
static int parse_launch_option(struct launch *l, const char *name, const char *value) {
  unsigned long long v;
  if (strcmp(name, "--rlimit") == 0) return parse_rlimit(l, value);
  if (strcmp(name, "--cgroup") == 0) { if (l->ncgroups >= MAX_CGROUPS) return -1; l->cgroups[l->ncgroups++] = value; return 0; }
  if (strcmp(name, "--fd9") == 0) { l->fd9 = value; return 0; }
  if (strcmp(name, "--go-fd") == 0) {
    /* 3 and up: never the command's stdio; close-on-exec at once, so no exec'd link inherits it */
    if (parse_uint(value, 1023, &v) < 0 || v < 3 || fcntl((int)v, F_SETFD, FD_CLOEXEC) < 0) return -1;
    l->go_fd = (int)v; return 0;
  }
  if (strcmp(name, "--join-ns") == 0) { if (parse_uint(value, 0x7fffffff, &v) < 0 || v == 0) return -1; l->join_pid = (int)v; return 0; }
  if (strcmp(name, "--uid") == 0) { if (parse_uint(value, 0x7fffffff, &v) < 0) return -1; l->uid = (int)v; return 0; }
  if (strcmp(name, "--gid") == 0) { if (parse_uint(value, 0x7fffffff, &v) < 0) return -1; l->gid = (int)v; return 0; }
  if (strcmp(name, "--oom-score-adj") == 0) {
    char *end;
    long a = strtol(value, &end, 10);
    if (!*value || *end || a < -1000 || a > 1000) return -1;
    l->oom_adj = (int)a; l->has_oom = 1; return 0;
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *out = NULL;
  struct launch l = { .uid = -1, .gid = -1, .go_fd = -1 };
  int i = 1;
  if (argc == 2 && strcmp(argv[1], "--check") == 0) {
    int c = connector_open();
    if (c < 0) { dprintf(2, "airlock-tracer: proc connector unavailable: %s\n", strerror(errno)); return 1; }
    close(c);
    return 0;
  }
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) out = argv[++i];
    else if (strcmp(argv[i], "--die-with-parent") == 0) {
      /* bound to the supervisor like every link of the chain (one exec of setpriv less) */
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return 125;
    }
    else if (strcmp(argv[i], "--redirected-ports") == 0 && i + 1 < argc) { if (parse_ports(argv[++i]) < 0) return usage(); }
    else if (strcmp(argv[i], "--await-program") == 0) l.await_program = 1;
    else if (i + 1 < argc && parse_launch_option(&l, argv[i], argv[i + 1]) == 0) i++;
    else if (strcmp(argv[i], "--") == 0) { i++; break; }
    else return usage();
  }
  /* a program comes on the command line, or with the go: never both, never neither */
  if (!out || (l.await_program ? (i < argc || l.go_fd < 0) : i >= argc)) return usage();
  if (apply_process_limits(&l) < 0) return 125;
  line = malloc(MAX_LINE);
  if (!line) return 125;
  out_fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out_fd < 0) { dprintf(2, "airlock-tracer: %s: %s\n", out, strerror(errno)); return 125; }
  /* room kept for the trace: when AIRLOCK_HOME fills, the session is frozen and ended while
     this file can still take the agent's last execs (src/session/recording.ts) */
  (void)fallocate(out_fd, FALLOC_FL_KEEP_SIZE, 0, PREALLOC_BYTES);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 125;
  /* the launcher's pid is the trace's first: Airlock's own chain, never the agent */
  pid_t self = getpid();
  pid_t child = fork();
  if (child < 0) return 125;
  if (child == 0) { close(sv[0]); launcher(sv[1], argv + i, &l, self); }
  close(sv[1]);
  root_pid = child;
  add(child, getpid());
  int listener = recv_fd(sv[0]);
  int child_pidfd = (int)syscall(__NR_pidfd_open, child, 0);
  if (listener < 0 || child_pidfd < 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); return 125; }
  line_start(child);
  puts_("execve(\"airlock-tracer-launcher\", [], 0x0) = 0");
  line_end();
  char **program = NULL;
  if (!supervisor_go(&l, &program)) { kill(child, SIGKILL); waitpid(child, NULL, 0); return 125; }
  /* subscribed once the command is known (a tracer started ahead queues no host-wide events meanwhile),
     before the launcher's go: no event of the command precedes it */
  int conn = connector_open();
  if (conn < 0) {
    dprintf(2, "airlock-tracer: proc connector unavailable (needs root): %s\n", strerror(errno));
    kill(child, SIGKILL); waitpid(child, NULL, 0); return 125;
  }
  if (!(program ? pass_program(sv[0], program) : send(sv[0], "g", 1, MSG_NOSIGNAL) == 1)) { kill(child, SIGKILL); waitpid(child, NULL, 0); return 125; }
  close(sv[0]);
  int status = serve(listener, conn, child_pidfd, child);
  if (status < 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); return 125; }
  if (WIFSIGNALED(status)) {
    /* end as the chain ended, as strace does: the caller sees the same signal */
    signal(WTERMSIG(status), SIG_DFL);
    prctl(PR_SET_DUMPABLE, 0);
    kill(getpid(), WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}
