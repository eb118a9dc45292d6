// Native part of the warm spare (src/cli/warm/spare.ts), built to build/warm.node by
// scripts/build-native.sh. Node cannot receive descriptors over a unix socket (SCM_RIGHTS),
// read the peer's credentials (SO_PEERCRED) or dup2 onto 0/1/2; these few calls can.
// A separate addon rather than part of build/relay.node: the spare is the CLI's, the relay the
// gateway's, and neither should load the other's code. Node-API only (ABI-stable).
//
// Every call is blocking and bounded: the spare does nothing else while it waits for its one
// client, and a client that stalls mid-request is dropped after RECV_TIMEOUT_S.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define RECV_TIMEOUT_S 5
#define MAX_FDS 8

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[160];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

static napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

// listen(path): a listening unix socket bound at path (close-on-exec); returns its fd.
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof(addr.sun_path), &len) != napi_ok ||
      len >= sizeof(addr.sun_path) - 1) {
    napi_throw_error(env, NULL, "listen: socket path missing or too long");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket");
  if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 8) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return throw_errno(env, "bind/listen");
  }
  return make_int(env, fd);
}

// accept(fd, timeoutMs): null when no client came in time, else {fd, uid, pid} of the peer.
static napi_value js_accept(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, timeout;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &timeout)) {
    napi_throw_type_error(env, NULL, "accept(fd, timeoutMs)");
    return NULL;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout);
  napi_value result;
  if (r < 0 && errno != EINTR) return throw_errno(env, "poll");
  if (r <= 0) {
    napi_get_null(env, &result);
    return result;
  }
  int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, "accept");
  }
  struct ucred cred;
  socklen_t clen = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
    close(conn);
    return throw_errno(env, "SO_PEERCRED");
  }
  struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "fd", make_int(env, conn));
  napi_set_named_property(env, result, "uid", make_int(env, cred.uid));
  napi_set_named_property(env, result, "pid", make_int(env, cred.pid));
  return result;
}

// Reads up to want bytes into buf; descriptors that come along are kept (up to MAX_FDS) or closed.
static ssize_t recv_some(int fd, char *buf, size_t want, int *fds, int *nfds) {
  char ctl[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {.iov_base = buf, .iov_len = want};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *got = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      if (*nfds < MAX_FDS) fds[(*nfds)++] = got[i];
      else close(got[i]);
    }
  }
  return n;
}

static int recv_all(int fd, char *buf, size_t want, int *fds, int *nfds) {
  for (size_t off = 0; off < want;) {
    ssize_t n = recv_some(fd, buf + off, want - off, fds, nfds);
    if (n <= 0) return 0;
    off += (size_t)n;
  }
  return 1;
}

// receive(fd, maxBytes): {data: Buffer, fds: number[]} of one request (magic, u32 length,
// payload); throws when the peer sends garbage, too much, or stalls.
static napi_value js_receive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, max;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &max) || max <= 0) {
    napi_throw_type_error(env, NULL, "receive(fd, maxBytes)");
    return NULL;
  }
  int fds[MAX_FDS], nfds = 0;
  char head[12];
  uint32_t len = 0;
  char *body = NULL;
  int ok = recv_all(fd, head, sizeof(head), fds, &nfds) && memcmp(head, "ALWARM1", 8) == 0;
  if (ok) memcpy(&len, head + 8, 4);
  ok = ok && len <= (uint32_t)max && (body = malloc(len ? len : 1)) != NULL && recv_all(fd, body, len, fds, &nfds);
  if (!ok) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    free(body);
    napi_throw_error(env, NULL, "malformed, oversized or stalled request");
    return NULL;
  }
  napi_value result, data, list;
  napi_create_object(env, &result);
  napi_create_buffer_copy(env, len, body, NULL, &data);
  free(body);
  napi_create_array_with_length(env, (size_t)nfds, &list);
  for (int i = 0; i < nfds; i++) napi_set_element(env, list, (uint32_t)i, make_int(env, fds[i]));
  napi_set_named_property(env, result, "data", data);
  napi_set_named_property(env, result, "fds", list);
  return result;
}

// dup2(from, to): to becomes from (inheritable, as 0/1/2 must be); dup(fd): a close-on-exec copy.
static napi_value js_dup2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t from, to;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !arg_int(env, argv[0], &from) || !arg_int(env, argv[1], &to)) {
    napi_throw_type_error(env, NULL, "dup2(from, to)");
    return NULL;
  }
  int r;
  do r = dup2(from, to);
  while (r < 0 && errno == EBUSY);
  if (r < 0) return throw_errno(env, "dup2");
  return make_int(env, r);
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !arg_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "dup(fd)");
    return NULL;
  }
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) return throw_errno(env, "dup");
  return make_int(env, r);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && arg_int(env, argv[0], &fd) && fd > 2) close(fd);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"accept", NULL, js_accept, NULL, NULL, NULL, napi_default, NULL},
      {"receive", NULL, js_receive, NULL, NULL, NULL, napi_default, NULL},
      {"dup2", NULL, js_dup2, NULL, NULL, NULL, napi_default, NULL},
      {"dup", NULL, js_dup, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
