/* dx_server: the loop-thread rule and the per-connection memory budget.
 *
 * Wrong thread: in a forked child, a second thread calls dx_ws_send /
 * dx_server_route / dx_ws_close while the loop runs on the main thread.
 * With NDEBUG undefined (the sanitizer test build) the library must abort
 * with a message that names the function; the parent checks the child
 * died of SIGABRT and reads its stderr. Release builds must log the same
 * and return DX_EWRONG_THREAD.
 *
 * Memory: the connection object (dx_ws + dx_proto, one allocation) must
 * stay within 512 bytes, and an idle upgraded connection must cost the
 * server no more than that plus its small path string and timer slot,
 * measured with the allocator's own counters over 2,000 connections. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "server_helpers.h"
#include "ws/ws_internal.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DX_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DX_TEST_ASAN 1
#endif
#ifdef DX_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

/* ------------------------------------------------------------------ */
/* Wrong thread                                                        */

typedef struct child_ctx {
  dx_loop *loop;
  dx_server *srv;
  dx_ws *ws;
  atomic_int ready;
  int which; /* 0: dx_ws_send, 1: dx_server_route, 2: dx_ws_close */
} child_ctx;

static child_ctx cx;

static void child_on_open(dx_ws *ws, void *user) {
  (void)user;
  cx.ws = ws;
  atomic_store(&cx.ready, 1);
}

static void child_tick(dx_timer *t) {
  (void)t;
  atomic_store(&cx.ready, 1);
}

static void *intruder(void *arg) {
  (void)arg;
  for (int i = 0; i < 5000 && !atomic_load(&cx.ready); i++) usleep(1000);
  if (!atomic_load(&cx.ready)) {
    fprintf(stderr, "child: the loop never got ready\n");
    _exit(5);
  }
  usleep(20000); /* let the loop thread go back to sleep in epoll_wait */
  int rc = 0;
  if (cx.which == 0) {
    rc = dx_ws_send(cx.ws, DX_OP_TEXT, "from the wrong thread", 21);
  } else if (cx.which == 1) {
    dx_ws_handlers h = {0};
    rc = dx_server_route(cx.srv, "/late", &h, NULL);
  } else {
    rc = dx_ws_close(cx.ws, 1000, NULL);
  }
  fprintf(stderr, "child: the call returned %d instead of aborting\n", rc);
  _exit(4);
}

static void run_child(int which) {
  alarm(20); /* never hang the parent */
  cx.which = which;
  cx.loop = dx_loop_new(NULL);
  cx.srv = make_server(cx.loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_open = child_on_open};
  dx_server_route(cx.srv, "/", &h, NULL);
  int port = start_listening(cx.srv);
  dx_timer tick;
  dx_client *c = NULL;
  if (which == 1) {
    dx_timer_init(cx.loop, &tick, child_tick);
    dx_timer_start(&tick, 10, 0);
  } else {
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    c = dx_connect(cx.loop, url, NULL, &(dx_ws_handlers){0}, NULL, NULL);
  }
  pthread_t t;
  pthread_create(&t, NULL, intruder, NULL);
  dx_loop_run(cx.loop); /* the loop thread owns the loop from here */
  (void)c;
  _exit(3);
}

/* Fork, run the child scenario with stderr into a pipe; return its wait
 * status and what it wrote. */
static int fork_child(int which, char *out, size_t cap) {
  int p[2];
  if (pipe(p) != 0) exit(2);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 2);
    close(p[1]);
    run_child(which);
    _exit(6);
  }
  close(p[1]);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(p[0], out + n, cap - 1 - n);
    if (r > 0 && n + (size_t)r < cap - 1) {
      n += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) n += (size_t)r;
    break;
  }
  out[n] = 0;
  close(p[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

/* Debug builds: the child dies of SIGABRT after a message naming the
 * function. Release builds: the call logs the same and returns
 * DX_EWRONG_THREAD (the intruder then exits with status 4). */
static void check_wrong_thread(int which, const char *func) {
  char out[8192];
  int st = fork_child(which, out, sizeof out);
#ifndef NDEBUG
  bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
#else
  bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 4;
  CHECK_CONTAINS(out, "returned -9"); /* DX_EWRONG_THREAD */
#endif
  if (!ok) {
    fprintf(stderr, "child for %s: %s %d; stderr:\n%s\n", func, WIFSIGNALED(st) ? "signal" : "exit",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
  }
  CHECK(ok);
  char needle[128];
  snprintf(needle, sizeof needle, "%s called from a thread", func);
  CHECK_CONTAINS(out, needle);
  CHECK_CONTAINS(out, "dx_loop_post"); /* and says what to do instead */
}

TEST(wrong_thread_is_caught_naming_the_function) {
  check_wrong_thread(0, "dx_ws_send");
  check_wrong_thread(1, "dx_server_route");
  check_wrong_thread(2, "dx_ws_close");
}

/* ------------------------------------------------------------------ */
/* Memory per idle connection                                          */

TEST(connection_object_fits_the_budget) {
  size_t one = dx__ws_alloc_size(0);
  printf("per-connection allocation: %zu bytes (dx_ws %zu: stream %zu, timer %zu; dx_proto %zu)\n",
         one, sizeof(dx_ws), sizeof(dx_stream), sizeof(dx_timer), dx_proto_size());
  CHECK(one <= 512);
  /* 240 + the 152-byte proto rounded to 160: 400 (it had grown to 416). */
  CHECK(sizeof(dx_ws) <= 240);
  CHECK(one <= 400);
  /* User data goes inline, after the proto, suitably aligned. */
  CHECK_EQ_INT(dx__ws_alloc_size(40), one + 40);
  CHECK_EQ_INT(one % _Alignof(max_align_t), 0);
}

static size_t heap_in_use(void) {
#ifdef DX_TEST_ASAN
  return __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return mallinfo2().uordblks;
#else
  return 0;
#endif
}

static int opened;
static void count_open(dx_ws *ws, void *user) {
  (void)ws, (void)user;
  opened++;
}

TEST(idle_connections_cost_a_few_hundred_bytes) {
  if (heap_in_use() == 0) {
    printf("no allocator statistics here; skipped\n");
    return;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 8192 && rl.rlim_max > rl.rlim_cur) {
    rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  int n = 2000;
  if ((rlim_t)(2 * n + 64) > rl.rlim_cur) n = (int)(rl.rlim_cur - 64) / 2;
  if (n < 100) {
    printf("only %d file descriptors; skipped\n", (int)rl.rlim_cur);
    return;
  }
  const int warm = 32;
  int *fds = calloc((size_t)(n + warm), sizeof *fds);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_open = count_open};
  dx_server_route(srv, "/", &h, NULL);
  int port = start_listening(srv);
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  char sink[4096];
  size_t base = 0;
  uint64_t t0 = now_ms();
  for (int i = 0; i < n + warm; i++) {
    if (i == warm) {
      /* Warm-up done (the loop's read buffer, the timer heap's first
       * block, the free-later queue exist): the baseline. */
      RUN_UNTIL(loop, opened == warm, 5000);
      for (int k = 0; k < 5; k++) dx_loop_run_once(loop, 0);
      base = heap_in_use();
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      perror("connect");
      CHECK(!"connect failed");
      n = i > warm ? i - warm : 0;
      if (fd >= 0) close(fd);
      break;
    }
    fds[i] = fd;
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) CHECK(!"short write");
    if (i % 16 == 15) dx_loop_run_once(loop, 0); /* keep the backlog short */
  }
  RUN_UNTIL(loop, opened == n + warm, 20000);
  CHECK_EQ_INT(opened, n + warm);
  for (int k = 0; k < 5; k++) dx_loop_run_once(loop, 0); /* flush the 101s, free later */
  size_t after = heap_in_use();
  double per = after > base ? (double)(after - base) / n : 0;
  printf("%d idle connections: %zu bytes of heap, %.1f bytes each (object %zu) in %llu ms\n", n,
         after - base, per, dx__ws_alloc_size(0), (unsigned long long)(now_ms() - t0));
  /* The object, the "path\0query\0protocol\0" string and a timer-heap
   * slot (amortised doubling), nothing else: no handshake buffer, no
   * write queue, no read buffer per connection. */
  CHECK(per >= (double)dx__ws_alloc_size(0));
#ifdef DX_TEST_ASAN
  CHECK(per <= (double)dx__ws_alloc_size(0) + 64); /* requested bytes */
#else
  CHECK(per <= (double)dx__ws_alloc_size(0) + 96); /* glibc chunks: + headers, rounding */
#endif
  CHECK_EQ_INT(dx_server_connections(srv), n + warm);

  /* Every client got its 101. */
  int ok = 0;
  for (int i = 0; i < n + warm; i++) {
    ssize_t r = recv(fds[i], sink, sizeof sink, MSG_DONTWAIT);
    if (r > 12 && memcmp(sink, "HTTP/1.1 101", 12) == 0) ok++;
    close(fds[i]);
  }
  CHECK_EQ_INT(ok, n + warm);
  free(fds);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 10000);
  CHECK_EQ_INT(dx_server_connections(srv), 0);
  teardown(loop, srv);
}

int main(void) {
  /* The fork tests first, while this process has a single thread. */
  RUN(wrong_thread_is_caught_naming_the_function);
  RUN(connection_object_fits_the_budget);
  RUN(idle_connections_cost_a_few_hundred_bytes);
  return test_report();
}
