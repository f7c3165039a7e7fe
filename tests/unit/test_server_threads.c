/* dx_server: the loop-thread rule (the memory budget is test_conn_budget).
 *
 * Wrong thread: in a forked child, a second thread calls dx_ws_send /
 * dx_server_route / dx_ws_close while the loop runs on the main thread.
 * With NDEBUG undefined (the sanitizer test build) the library must abort
 * with a message that names the function; the parent checks the child
 * died of SIGABRT and reads its stderr. Release builds must log the same
 * and return DX_EWRONG_THREAD. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "server_helpers.h"
#include "ws/ws_internal.h"

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

int main(void) {
  /* The fork tests first, while this process has a single thread. */
  RUN(wrong_thread_is_caught_naming_the_function);
  return test_report();
}
