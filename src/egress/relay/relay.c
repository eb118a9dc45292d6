// Native download relay for the egress gateway: one thread per gateway moves tunnel bytes
// from upstream sockets to client sockets with plain read/write, off Node's event loop.
//
// Why C: on 2 cores the relay competes with the agent and the kernel's loopback work; in
// Node every chunk costs an event-loop turn and a JS callback on the thread that also
// decides requests. Measured (bench/egress.ts, per-round ratios): this thread ~0.85x
// direct, the Node relay ~0.73-0.87x, splice(2) through a pipe ~0.74x (half the gateway
// CPU, but the receiver pays more for the forwarded page fragments) - so: copy, in C.
// Node has no maintained addon that relays between two existing sockets.
//
// Node-API only (ABI-stable), no libuv internals, built by scripts/build-native.sh.
//
// Ownership, so nothing here can touch a socket the gateway has closed: add() dup()s both
// descriptors; the thread reads only the upstream dup and writes only the client dup (the
// gateway keeps the other two directions); the dups are closed by the thread when the
// tunnel ends or stop() arrives, and a tunnel's memory is freed only on stop().
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX (256 * 1024)      // one read per wakeup up to this (the Node relay measured best at 256 KiB too)
#define REPORT_NS 200000000LL      // progress reports at most every 200 ms per tunnel (keeps idle timers fresh)
#define MAX_EVENTS 256

enum { R_PROGRESS = 0, R_END = 1, R_ERROR = 2, R_STOPPED = 3 };
enum { C_ADD = 0, C_STOP = 1 };

typedef struct tunnel {
  uint32_t id;
  int src, dst;
  char *held;           // bytes read but not yet taken by the client (only under backpressure)
  size_t held_off, held_len;
  uint64_t moved, reported;
  int64_t last_report;
  int eof, over;
  struct tunnel *next;
} tunnel;

typedef struct cmd {
  int kind;
  uint32_t id;
  tunnel *t;
  struct cmd *next;
} cmd;

typedef struct report {
  uint32_t id;
  int kind;
  double bytes;
  int err;
  char side;
} report;

typedef struct relay {
  int ep, wake;
  pthread_t thread;
  pthread_mutex_t mu;
  cmd *head, *tail;
  int quit, closed, dead; // dead: the loop itself failed (set by the thread, under mu)
  napi_threadsafe_function tsfn;
  tunnel *live; // thread-owned list
  char *scratch; // the thread's read buffer: a tunnel keeps a copy only of what the client did not take
  uint32_t next_id;
} relay;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void emit(relay *r, tunnel *t, int kind, int err, char side) {
  report *rep = malloc(sizeof *rep);
  if (!rep) return;
  rep->id = t->id;
  rep->kind = kind;
  rep->bytes = (double)(t->moved - t->reported);
  rep->err = err;
  rep->side = side;
  t->reported = t->moved;
  t->last_report = now_ns();
  if (napi_call_threadsafe_function(r->tsfn, rep, napi_tsfn_nonblocking) != napi_ok) free(rep);
}

static void close_fds(relay *r, tunnel *t) {
  if (t->src >= 0) { epoll_ctl(r->ep, EPOLL_CTL_DEL, t->src, NULL); close(t->src); t->src = -1; }
  if (t->dst >= 0) { epoll_ctl(r->ep, EPOLL_CTL_DEL, t->dst, NULL); close(t->dst); t->dst = -1; }
  free(t->held);
  t->held = NULL;
  t->held_len = 0;
}

static void end_tunnel(relay *r, tunnel *t, int kind, int err, char side) {
  t->over = 1;
  close_fds(r, t);
  emit(r, t, kind, err, side);
}

// Writes what the client has not taken yet; 1 when all of it went, 0 on EAGAIN, -1 on error (ended).
static int flush_held(relay *r, tunnel *t) {
  while (t->held_len) {
    ssize_t n = write(t->dst, t->held + t->held_off, t->held_len);
    if (n > 0) { t->held_off += (size_t)n; t->held_len -= (size_t)n; t->moved += (uint64_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    end_tunnel(r, t, R_ERROR, n < 0 ? errno : EIO, 'c');
    return -1;
  }
  free(t->held);
  t->held = NULL;
  return 1;
}

// Edge-triggered: runs until the source has nothing more, the client cannot take more,
// the source ends, or an error.
static void pump(relay *r, tunnel *t) {
  if (t->over) return;
  for (;;) {
    int f = flush_held(r, t);
    if (f < 0) return;
    if (f == 0) break; // wait for EPOLLOUT; nothing more is read meanwhile (bounded memory)
    if (t->eof) { end_tunnel(r, t, R_END, 0, 0); return; }
    ssize_t n = read(t->src, r->scratch, READ_MAX);
    if (n == 0) { t->eof = 1; continue; }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      end_tunnel(r, t, R_ERROR, errno, 'u');
      return;
    }
    ssize_t w = write(t->dst, r->scratch, (size_t)n);
    if (w < 0 && errno != EAGAIN && errno != EINTR) { end_tunnel(r, t, R_ERROR, errno, 'c'); return; }
    if (w < 0) w = 0;
    t->moved += (uint64_t)w;
    if (w < n) {
      t->held = malloc((size_t)(n - w));
      if (!t->held) { end_tunnel(r, t, R_ERROR, ENOMEM, 'r'); return; }
      memcpy(t->held, r->scratch + w, (size_t)(n - w));
      t->held_off = 0;
      t->held_len = (size_t)(n - w);
    }
  }
  if (t->moved != t->reported && now_ns() - t->last_report >= REPORT_NS) emit(r, t, R_PROGRESS, 0, 0);
}

static void run_commands(relay *r) {
  pthread_mutex_lock(&r->mu);
  cmd *c = r->head;
  r->head = r->tail = NULL;
  pthread_mutex_unlock(&r->mu);
  while (c) {
    cmd *next = c->next;
    if (c->kind == C_ADD) {
      tunnel *t = c->t;
      t->next = r->live;
      r->live = t;
      struct epoll_event a = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = t };
      struct epoll_event b = { .events = EPOLLOUT | EPOLLET, .data.ptr = t };
      if (epoll_ctl(r->ep, EPOLL_CTL_ADD, t->src, &a) != 0 || epoll_ctl(r->ep, EPOLL_CTL_ADD, t->dst, &b) != 0) end_tunnel(r, t, R_ERROR, errno, 'r');
      else pump(r, t); // bytes may already be waiting
    } else {
      for (tunnel **pp = &r->live; *pp; pp = &(*pp)->next) {
        tunnel *t = *pp;
        if (t->id != c->id) continue;
        *pp = t->next;
        if (!t->over) { t->over = 1; close_fds(r, t); emit(r, t, R_STOPPED, 0, 0); }
        free(t);
        break;
      }
    }
    free(c);
    c = next;
  }
}

static void *loop(void *arg) {
  relay *r = arg;
  struct epoll_event ev[MAX_EVENTS];
  int died = 0;
  for (;;) {
    int n = epoll_wait(r->ep, ev, MAX_EVENTS, 250);
    if (n < 0 && errno != EINTR) { died = errno; break; }
    int wake = 0;
    for (int i = 0; i < n; i++) {
      if (ev[i].data.ptr == NULL) { uint64_t v; if (read(r->wake, &v, sizeof v) < 0) { /* drained */ } wake = 1; continue; }
      pump(r, ev[i].data.ptr);
    }
    // commands after the batch: a stop frees a tunnel that a later event in this batch may name
    if (wake) run_commands(r);
    if (n == 0) {
      int64_t now = now_ns();
      for (tunnel *t = r->live; t; t = t->next)
        if (!t->over && t->moved != t->reported && now - t->last_report >= REPORT_NS) emit(r, t, R_PROGRESS, 0, 0);
    }
    pthread_mutex_lock(&r->mu);
    int quit = r->quit;
    pthread_mutex_unlock(&r->mu);
    if (quit) break;
  }
  if (died) {
    // the loop cannot go on: refuse new tunnels, and end the live ones as errors so the
    // gateway closes them and writes their records (a silent stop would leave them hanging)
    pthread_mutex_lock(&r->mu);
    r->dead = 1;
    pthread_mutex_unlock(&r->mu);
  }
  run_commands(r);
  while (r->live) {
    tunnel *t = r->live;
    r->live = t->next;
    if (!t->over) { if (died) end_tunnel(r, t, R_ERROR, died, 'r'); else { t->over = 1; close_fds(r, t); emit(r, t, R_STOPPED, 0, 0); } }
    free(t);
  }
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  return NULL;
}

static void post(relay *r, cmd *c) {
  pthread_mutex_lock(&r->mu);
  c->next = NULL;
  if (r->tail) r->tail->next = c; else r->head = c;
  r->tail = c;
  pthread_mutex_unlock(&r->mu);
  uint64_t one = 1;
  if (write(r->wake, &one, sizeof one) < 0) { /* eventfd saturated: the thread is awake anyway */ }
}

// ---- Node-API surface -------------------------------------------------------------

static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  (void)ctx;
  report *rep = data;
  if (env && cb) {
    napi_value argv[4], undef;
    napi_create_uint32(env, rep->id, &argv[0]);
    napi_create_int32(env, rep->kind, &argv[1]);
    napi_create_double(env, rep->bytes, &argv[2]);
    if (rep->kind == R_ERROR) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s%s", rep->side == 'u' ? "upstream: " : rep->side == 'c' ? "client: " : "relay: ", strerror(rep->err));
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &argv[3]);
    } else napi_get_null(env, &argv[3]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 4, argv, NULL);
  }
  free(rep);
}

static relay *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *p = NULL;
  napi_get_cb_info(env, info, argc, argv, &self, NULL);
  if (napi_unwrap(env, self, &p) != napi_ok || !p) { napi_throw_error(env, NULL, "not a relay"); return NULL; }
  return p;
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// relay.add(srcFd, dstFd) -> id. Throws (nothing registered) when the relay is closed or dead or the dups fail.
static napi_value js_add(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  relay *r = unwrap(env, info, &argc, argv);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  int dead = r->dead;
  pthread_mutex_unlock(&r->mu);
  if (r->closed || dead) { napi_throw_error(env, NULL, dead ? "relay thread stopped" : "relay closed"); return NULL; }
  int32_t src, dst;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &src) != napi_ok || napi_get_value_int32(env, argv[1], &dst) != napi_ok || src < 0 || dst < 0) {
    napi_throw_type_error(env, NULL, "add(srcFd, dstFd) takes two descriptors");
    return NULL;
  }
  tunnel *t = calloc(1, sizeof *t);
  cmd *c = calloc(1, sizeof *c);
  if (!t || !c) { free(t); free(c); return throw_errno(env, "relay", ENOMEM); }
  t->src = t->dst = -1;
  if ((t->src = fcntl(src, F_DUPFD_CLOEXEC, 3)) < 0 || (t->dst = fcntl(dst, F_DUPFD_CLOEXEC, 3)) < 0) {
    int e = errno;
    if (t->src >= 0) close(t->src);
    free(t); free(c);
    return throw_errno(env, "relay", e);
  }
  t->id = ++r->next_id;
  t->last_report = now_ns();
  c->kind = C_ADD;
  c->t = t;
  uint32_t id = t->id;
  post(r, c);
  napi_value out;
  napi_create_uint32(env, id, &out);
  return out;
}

// relay.stop(id): ends the tunnel's relaying (if still running) and frees it; a final STOPPED report follows if it was running.
static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay *r = unwrap(env, info, &argc, argv);
  if (!r || r->closed) return NULL;
  uint32_t id;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &id) != napi_ok) { napi_throw_type_error(env, NULL, "stop(id)"); return NULL; }
  cmd *c = calloc(1, sizeof *c);
  if (!c) return throw_errno(env, "relay", ENOMEM);
  c->kind = C_STOP;
  c->id = id;
  post(r, c);
  return NULL;
}

static void shutdown_relay(relay *r) {
  if (r->closed) return;
  r->closed = 1;
  pthread_mutex_lock(&r->mu);
  r->quit = 1;
  pthread_mutex_unlock(&r->mu);
  uint64_t one = 1;
  if (write(r->wake, &one, sizeof one) < 0) { /* the thread sees quit on its next tick */ }
  pthread_join(r->thread, NULL);
  close(r->ep);
  close(r->wake);
}

// relay.close(): stops every tunnel and the thread (joins it).
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay *r = unwrap(env, info, &argc, NULL);
  if (r) shutdown_relay(r);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  relay *r = data;
  shutdown_relay(r);
  pthread_mutex_destroy(&r->mu);
  free(r->scratch);
  free(r);
}

// new Relay(onReport(id, kind, bytes, error))
static napi_value js_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_valuetype ty;
  if (argc < 1 || napi_typeof(env, argv[0], &ty) != napi_ok || ty != napi_function) { napi_throw_type_error(env, NULL, "new Relay(onReport)"); return NULL; }
  relay *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "relay", ENOMEM);
  pthread_mutex_init(&r->mu, NULL);
  r->scratch = malloc(READ_MAX);
  if (!r->scratch) { free(r); return throw_errno(env, "relay", ENOMEM); }
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->ep < 0 || r->wake < 0) { int e = errno; if (r->ep >= 0) close(r->ep); if (r->wake >= 0) close(r->wake); free(r->scratch); free(r); return throw_errno(env, "relay", e); }
  struct epoll_event w = { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl(r->ep, EPOLL_CTL_ADD, r->wake, &w);
  napi_value name;
  napi_create_string_utf8(env, "airlock-tunnel-relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->tsfn) != napi_ok) {
    close(r->ep); close(r->wake); free(r->scratch); free(r);
    napi_throw_error(env, NULL, "relay: cannot create the report channel");
    return NULL;
  }
  // the sockets keep the process alive, not the relay
  napi_unref_threadsafe_function(env, r->tsfn);
  int e = pthread_create(&r->thread, NULL, loop, r); // returns the error, does not set errno
  if (e != 0) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    close(r->ep); close(r->wake); free(r->scratch); free(r);
    return throw_errno(env, "relay thread", e);
  }
  napi_wrap(env, self, r, finalize, NULL, NULL);
  return self;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
    { "add", NULL, js_add, NULL, NULL, NULL, napi_default, NULL },
    { "stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_value cls;
  napi_define_class(env, "Relay", NAPI_AUTO_LENGTH, js_new, NULL, 3, methods, &cls);
  napi_set_named_property(env, exports, "Relay", cls);
  return exports;
}
