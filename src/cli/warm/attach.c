// airlock-attach: the warm-start client (issue 16). bin/airlock execs it when this user's spare
// socket exists; it hands the invocation to the spare (a pre-loaded `airlock` process, see
// src/cli/warm/spare.ts) and exits with the status the spare sends back.
//
//   airlock-attach SOCKET NODE RUN_TS [ARGS...]
//
// Sent: argv, cwd, the whole environment, umask, and fds 0, 1, 2 (SCM_RIGHTS, so a terminal
// stays a terminal). Then SIGINT/SIGTERM/SIGHUP/SIGQUIT received here are forwarded as one byte
// each. A spare that cannot be reached, is not this user's (SO_PEERCRED), is stale or refuses
// is never an error: this process execs the in-process path (NODE RUN_TS ARGS) itself.
// In C because the point is to skip Node's start; bounded, no allocation after the request.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAGIC "ALWARM1"          // 8 bytes with its NUL; the spare checks it
#define MAX_REQUEST (4u << 20)    // the spare refuses more; an environment this large falls back
#define EXIT_LOST 70              // README: internal error (the spare ended without a status)

extern char **environ;
static volatile sig_atomic_t pending[65];

static void fall_back(int argc, char **argv) {
  // NODE --disable-warning=ExperimentalWarning RUN_TS ARGS..., as bin/airlock would have run it
  char **nargv = calloc((size_t)argc + 1, sizeof(char *));
  if (!nargv) _exit(EXIT_LOST);
  nargv[0] = argv[2];
  nargv[1] = "--disable-warning=ExperimentalWarning";
  nargv[2] = argv[3];
  for (int i = 4; i < argc; i++) nargv[i - 1] = argv[i];
  execv(argv[2], nargv);
  if (errno == ENOENT && strchr(argv[2], '/') == NULL) execvp(argv[2], nargv);
  fprintf(stderr, "airlock: cannot start %s: %s\n", argv[2], strerror(errno));
  _exit(127);
}

static int connect_spare(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path)) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  // the listener must be this user: a socket someone else bound never gets our terminal
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid()) {
    if (len == sizeof(cred))
      fprintf(stderr, "airlock: warm start: the spare at %s runs as uid %u, not you; ignoring it\n", path,
              (unsigned)cred.uid);
    close(fd);
    return -1;
  }
  return fd;
}

// Appends s with its NUL; 0 when it does not fit.
static int put(char *buf, size_t *off, const char *s) {
  size_t n = strlen(s) + 1;
  if (*off + n > MAX_REQUEST) return 0;
  memcpy(buf + *off, s, n);
  *off += n;
  return 1;
}

// The request: MAGIC, u32 length, then NUL-terminated fields: "run", umask, cwd, argc, argv..., env...
static char *build_request(int argc, char **argv, size_t *size) {
  char *buf = malloc(MAX_REQUEST + 12);
  char cwd[4096], num[32];
  if (!buf || !getcwd(cwd, sizeof(cwd))) return NULL;
  mode_t mask = umask(0);
  umask(mask);
  size_t off = 12;
  int ok = put(buf, &off, "run");
  snprintf(num, sizeof(num), "%u", (unsigned)mask);
  ok = ok && put(buf, &off, num) && put(buf, &off, cwd);
  snprintf(num, sizeof(num), "%d", argc - 4);
  ok = ok && put(buf, &off, num);
  for (int i = 4; ok && i < argc; i++) ok = put(buf, &off, argv[i]);
  for (char **e = environ; ok && *e; e++) ok = put(buf, &off, *e);
  if (!ok) return NULL;
  memcpy(buf, MAGIC, 8);
  uint32_t len = (uint32_t)(off - 12);
  memcpy(buf + 8, &len, 4);
  *size = off;
  return buf;
}

static int send_request(int sock, const char *buf, size_t size) {
  int fds[3] = {0, 1, 2};
  char ctl[CMSG_SPACE(sizeof(fds))];
  memset(ctl, 0, sizeof(ctl));
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = size};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(fds));
  memcpy(CMSG_DATA(c), fds, sizeof(fds));
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  for (size_t off = (size_t)n; off < size; off += (size_t)n) {
    do n = send(sock, buf + off, size - off, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return 0;
  }
  return 1;
}

static void on_signal(int sig) { pending[sig] = 1; }

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NFORWARDED (sizeof(FORWARDED) / sizeof(FORWARDED[0]))

// Sends each signal received since the last call; returns the last one sent (0: none).
static int forward_pending(int sock, int last) {
  for (size_t i = 0; i < NFORWARDED; i++) {
    int sig = FORWARDED[i];
    if (!pending[sig]) continue;
    pending[sig] = 0;
    unsigned char b = (unsigned char)sig;
    if (send(sock, &b, 1, MSG_NOSIGNAL) == 1) last = sig;
  }
  return last;
}

// After the spare accepted: forward signals, wait for 'X' + i32 status.
static int wait_for_status(int sock) {
  // blocked except inside ppoll: a signal arriving between forwarding and waiting is not missed
  struct sigaction sa = {.sa_handler = on_signal};
  sigset_t blocked, waiting;
  sigemptyset(&sa.sa_mask);
  sigemptyset(&blocked);
  for (size_t i = 0; i < NFORWARDED; i++) {
    sigaction(FORWARDED[i], &sa, NULL);
    sigaddset(&blocked, FORWARDED[i]);
  }
  sigprocmask(SIG_BLOCK, &blocked, &waiting);
  unsigned char got[5];
  size_t have = 0;
  int last = 0;
  while (have < sizeof(got)) {
    last = forward_pending(sock, last);
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (ppoll(&p, 1, NULL, &waiting) < 0) continue; // EINTR: a signal to forward
    ssize_t n = read(sock, got + have, sizeof(got) - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    if (got[0] != 'X') break;
  }
  if (have == sizeof(got)) {
    int32_t status;
    memcpy(&status, got + 1, 4);
    return status & 0xff;
  }
  if (last) {
    // the spare died of the signal it was sent, as the in-process airlock would have: die of it too
    signal(last, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &blocked, NULL);
    raise(last);
  }
  fprintf(stderr, "airlock: the warm spare serving this command ended without an exit status "
                  "(its log: AIRLOCK_HOME/run/warm/spare.log); the session it ran is recovered by the next airlock "
                  "run\n");
  return EXIT_LOST;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: airlock-attach SOCKET NODE RUN_TS [ARGS...] (started by bin/airlock)\n");
    return 64;
  }
  int sock = connect_spare(argv[1]);
  if (sock < 0) fall_back(argc, argv);
  size_t size = 0;
  char *req = build_request(argc, argv, &size);
  if (!req || !send_request(sock, req, size)) {
    close(sock);
    fall_back(argc, argv);
  }
  free(req);
  unsigned char answer = 0;
  ssize_t n;
  do n = read(sock, &answer, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1 || answer != 'A') {
    // stale, refused or gone before it started anything: the in-process path, only slower
    close(sock);
    fall_back(argc, argv);
  }
  return wait_for_status(sock);
}
