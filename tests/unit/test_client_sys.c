/* dx_connect where the system calls behave in ways a loopback test cannot
 * provoke: this executable defines its own connect() and getaddrinfo()
 * (which the library's calls reach, the executable's symbols coming
 * first), passing through to libc's unless a test asks otherwise:
 *
 *   - connect() that completes at once (returns 0, as it may for a local
 *     peer) instead of EINPROGRESS;
 *   - a lookup failing with EAI_SYSTEM and errno set on the resolver
 *     thread;
 *   - a slow lookup ("slow.test", 800 ms, then 127.0.0.1), during which
 *     the loop must keep running (timers fire on time).
 *
 * No network access: every name here is answered by the fake. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "duplex/client.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "test.h"

/* ---- the fakes ---- */

static atomic_bool connect_at_once;
static atomic_int connects_at_once; /* how many connect() calls we completed */

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "connect");
  int rc = real(fd, sa, len);
  if (rc < 0 && errno == EINPROGRESS && atomic_load(&connect_at_once)) {
    /* Finish it here, as if the kernel had done so within the call. */
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 2000) != 1) return -1;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      errno = err;
      return -1;
    }
    atomic_fetch_add(&connects_at_once, 1);
    return 0;
  }
  return rc;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
  bool numeric_only = hints && (hints->ai_flags & AI_NUMERICHOST);
  if (node && (!strcmp(node, "eai-system.test") || !strcmp(node, "slow.test"))) {
    if (numeric_only) return EAI_NONAME; /* the library's first, numeric try */
    if (!strcmp(node, "eai-system.test")) {
      errno = EMFILE;
      return EAI_SYSTEM;
    }
    usleep(800 * 1000);
    return real("127.0.0.1", service, hints, res);
  }
  return real(node, service, hints, res);
}

/* ---- helpers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define RUN_UNTIL(loop, cond, ms)                                                                  \
  do {                                                                                             \
    uint64_t deadline_ = now_ms() + (uint64_t)(ms);                                                \
    bool last_ = false;                                                                            \
    while (!(cond) && !last_) {                                                                    \
      last_ = now_ms() >= deadline_;                                                               \
      dx_loop_run_once((loop), 10);                                                                \
    }                                                                                              \
  } while (0)

typedef struct cl {
  int opens, errors, closes, dones;
  int last_err;
  char errmsg[512];
} cl;

static void c_open(dx_ws *ws, void *user) {
  (void)ws;
  ((cl *)user)->opens++;
}

static void c_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  cl *s = user;
  s->errors++;
  s->last_err = err;
  snprintf(s->errmsg, sizeof s->errmsg, "%s", msg ? msg : "");
}

static void c_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                    void *user) {
  (void)ws;
  (void)code;
  (void)reason;
  (void)reason_len;
  (void)clean;
  ((cl *)user)->closes++;
}

static void c_done(dx_client *c, void *user) {
  (void)c;
  ((cl *)user)->dones++;
}

static const dx_ws_handlers handlers = {
    .on_open = c_open, .on_error = c_error, .on_close = c_close};

static dx_client *start(dx_loop *loop, const char *url, cl *s) {
  memset(s, 0, sizeof *s);
  const char *why = NULL;
  dx_client *c = dx_connect(loop, url, &(dx_client_opts){.on_done = c_done}, &handlers, s, &why);
  if (!c) fprintf(stderr, "dx_connect(%s): %s\n", url, why ? why : "?");
  CHECK(c != NULL);
  return c;
}

static dx_server *echo_server(dx_loop *loop, int *port) {
  dx_server *srv = dx_server_new(loop, &(dx_server_opts){.host = "127.0.0.1", .port = -1});
  CHECK(srv != NULL);
  CHECK_EQ_INT(dx_server_route(srv, "*", &(dx_ws_handlers){0}, NULL), 0);
  CHECK_EQ_INT(dx_server_listen(srv), 0);
  *port = dx_server_port(srv);
  return srv;
}

static void finish(dx_loop *loop, dx_server *srv, dx_client *c) {
  dx_client_free(c);
  if (srv) dx_server_free(srv);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 10);
  dx_loop_free(loop);
}

/* ---- tests ---- */

TEST(connect_completes_at_once) {
  /* Regression: connected() stopped a watcher that had never been set up
   * (NULL loop) when connect() returned 0 on the first attempt. */
  dx_loop *loop = dx_loop_new(NULL);
  int port = 0;
  dx_server *srv = echo_server(loop, &port);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  atomic_store(&connect_at_once, true);
  cl s;
  dx_client *c = start(loop, url, &s);
  RUN_UNTIL(loop, s.opens == 1 || s.closes == 1, 5000);
  atomic_store(&connect_at_once, false);
  CHECK(atomic_load(&connects_at_once) >= 1);
  CHECK_EQ_INT(s.opens, 1);
  CHECK_EQ_INT(s.errors, 0);
  finish(loop, srv, c);
}

TEST(eai_system_names_the_lookup_errno) {
  /* EAI_SYSTEM: the reason is the resolver thread's errno, not whatever
   * errno the loop thread happens to hold. */
  dx_loop *loop = dx_loop_new(NULL);
  cl s;
  dx_client *c = start(loop, "ws://eai-system.test:9/", &s);
  RUN_UNTIL(loop, s.dones == 1, 5000);
  CHECK_EQ_INT(s.errors, 1);
  CHECK_EQ_INT(s.last_err, DX_ERESOLVE);
  if (!strstr(s.errmsg, strerror(EMFILE))) fprintf(stderr, "got: %s\n", s.errmsg);
  CHECK(strstr(s.errmsg, "eai-system.test") != NULL);
  CHECK(strstr(s.errmsg, strerror(EMFILE)) != NULL);
  finish(loop, NULL, c);
}

typedef struct ticker {
  dx_timer t;
  int ticks;
  uint64_t last, max_gap;
} ticker;

static void tick(dx_timer *t) {
  ticker *k = dx_container_of(t, ticker, t);
  uint64_t now = now_ms();
  if (k->ticks && now - k->last > k->max_gap) k->max_gap = now - k->last;
  k->last = now;
  k->ticks++;
}

TEST(slow_lookup_does_not_block_the_loop) {
  /* A lookup that takes 800 ms runs off the loop thread: a 20 ms timer
   * keeps firing meanwhile, then the connection opens. */
  dx_loop *loop = dx_loop_new(NULL);
  int port = 0;
  dx_server *srv = echo_server(loop, &port);
  ticker k = {0};
  dx_timer_init(loop, &k.t, tick);
  dx_timer_start(&k.t, 20, 20);
  char url[64];
  snprintf(url, sizeof url, "ws://slow.test:%d/", port);
  cl s;
  uint64_t t0 = now_ms();
  dx_client *c = start(loop, url, &s);
  RUN_UNTIL(loop, s.opens == 1 || s.closes == 1, 5000);
  uint64_t took = now_ms() - t0;
  dx_timer_stop(&k.t);
  CHECK_EQ_INT(s.opens, 1);
  CHECK(took >= 750);
  if (k.ticks < 20 || k.max_gap > 300)
    fprintf(stderr, "%d ticks in %llu ms, longest gap %llu ms\n", k.ticks, (unsigned long long)took,
            (unsigned long long)k.max_gap);
  CHECK(k.ticks >= 20);
  CHECK(k.max_gap <= 300);
  finish(loop, srv, c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(connect_completes_at_once);
  RUN(eai_system_names_the_lookup_errno);
  RUN(slow_lookup_does_not_block_the_loop);
  return test_report();
}
