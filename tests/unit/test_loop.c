/* The loop: time, deferred calls, hooks, cross-thread posts, stop, thread
 * checks, signals, fd watchers and end-of-turn frees (the log: test_log.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "duplex/loop.h"
#include "io/loop_internal.h"
#include "test.h"

TEST(new_free_and_time) {
  dx_loop *loop = dx_loop_new(NULL);
  CHECK(loop != NULL);
  CHECK(dx_loop_on_thread(loop));
  uint64_t a = dx_loop_now(loop);
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL);
  CHECK_EQ_INT(dx_loop_now(loop), a); /* cached */
  dx_loop_update_time(loop);
  CHECK(dx_loop_now(loop) >= a + 19);
  dx_loop_free(loop);
  dx_loop_free(NULL);

  dx_loop *l2 = dx_loop_new(&(dx_loop_opts){.read_buffer_size = 4096, .max_events = 8});
  CHECK(l2 != NULL);
  CHECK_EQ_INT(l2->read_buf_size, 4096);
  CHECK_EQ_INT(dx_loop_run_once(l2, 0), 0);
  dx_loop_free(l2);
}

/* ---- deferred ------------------------------------------------------- */

static char trace_[64];
static size_t trace_len_;
static void trace(char c) {
  if (trace_len_ < sizeof trace_ - 1) trace_[trace_len_++] = c;
  trace_[trace_len_] = 0;
}

typedef struct dctx {
  dx_deferred a, b, c, d;
  dx_timer t;
} dctx;

static void def_cb(dx_loop *loop, void *arg) {
  const char *name = arg;
  trace(name[0]);
}

static dctx *dx_;
static void def_a(dx_loop *loop, void *arg) {
  trace('A');
  dx_loop_defer(loop, &dx_->d, def_cb, "D"); /* queued during the drain: runs in it */
}

static void timer_defers(dx_timer *t) {
  dctx *x = dx_container_of(t, dctx, t);
  dx_loop *loop = t->loop;
  dx_loop_defer(loop, &x->a, def_a, NULL);
  dx_loop_defer(loop, &x->b, def_cb, "b");
  dx_loop_defer(loop, &x->b, def_cb, "B"); /* re-queue: updates, no second run */
  dx_loop_defer(loop, &x->c, def_cb, "C");
  CHECK(dx_deferred_pending(&x->c));
  trace('T');
}

TEST(defer_ordering) {
  dx_loop *loop = dx_loop_new(NULL);
  dctx x;
  memset(&x, 0, sizeof x);
  dx_ = &x;
  trace_len_ = 0;
  dx_timer_init(loop, &x.t, timer_defers);
  dx_timer_start(&x.t, 0, 0);
  dx_loop_run_once(loop, 0);
  CHECK_STR(trace_, "TABCD");
  CHECK(!dx_deferred_pending(&x.a));

  /* Cancel before it runs. */
  trace_len_ = 0;
  trace_[0] = 0;
  dx_deferred_init(&x.a);
  dx_loop_defer(loop, &x.a, def_cb, "X");
  dx_loop_defer(loop, &x.b, def_cb, "Y");
  dx_deferred_cancel(&x.a);
  dx_deferred_cancel(&x.a); /* idempotent */
  dx_loop_run_once(loop, 0);
  CHECK_STR(trace_, "Y");
  dx_loop_free(loop);
}

/* ---- hooks ---------------------------------------------------------- */

static int hook_runs_[3];
static dx_hook hooks_[3];
static void hook_cb(dx_loop *loop, void *arg) {
  int i = (int)(intptr_t)arg;
  hook_runs_[i]++;
  if (i == 0 && hook_runs_[0] == 2) dx_loop_hook_remove(&hooks_[1]); /* the next one */
  if (i == 2 && hook_runs_[2] == 3) dx_loop_hook_remove(&hooks_[2]); /* itself */
}

TEST(before_sleep_hooks) {
  dx_loop *loop = dx_loop_new(NULL);
  memset(hooks_, 0, sizeof hooks_);
  for (int i = 0; i < 3; i++) dx_loop_hook_add(loop, &hooks_[i], hook_cb, (void *)(intptr_t)i);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  CHECK(hook_runs_[0] >= 5);
  CHECK_EQ_INT(hook_runs_[1], 1);
  CHECK_EQ_INT(hook_runs_[2], 3);
  dx_loop_hook_remove(&hooks_[0]);
  dx_loop_hook_remove(&hooks_[1]); /* not registered: no-op */
  dx_loop_free(loop);
}

/* ---- posts ---------------------------------------------------------- */

enum { POSTERS = 4, POSTS = 10000 };
static int post_next_[POSTERS];
static int post_errors_, post_total_;

static void post_fn(dx_loop *loop, void *arg) {
  uintptr_t v = (uintptr_t)arg;
  int thread = (int)(v >> 20), seq = (int)(v & 0xfffff);
  if (!dx_loop_on_thread(loop)) post_errors_++;
  if (seq != post_next_[thread]) post_errors_++;
  post_next_[thread] = seq + 1;
  if (++post_total_ == POSTERS * POSTS) dx_loop_stop(loop);
}

typedef struct poster {
  dx_loop *loop;
  int id;
  int failed;
} poster;

static void *poster_main(void *arg) {
  poster *p = arg;
  for (int i = 0; i < POSTS; i++) {
    if (dx_loop_post(p->loop, post_fn, (void *)(((uintptr_t)p->id << 20) | (uintptr_t)i)) != 0)
      p->failed++;
    if (i % 1000 == 0) sched_yield();
  }
  return NULL;
}

TEST(post_from_four_threads) {
  dx_loop *loop = dx_loop_new(NULL);
  pthread_t th[POSTERS];
  poster ps[POSTERS];
  for (int i = 0; i < POSTERS; i++) {
    ps[i] = (poster){loop, i, 0};
    pthread_create(&th[i], NULL, poster_main, &ps[i]);
  }
  CHECK_EQ_INT(dx_loop_run(loop), 0);
  for (int i = 0; i < POSTERS; i++) {
    pthread_join(th[i], NULL);
    CHECK_EQ_INT(ps[i].failed, 0);
    CHECK_EQ_INT(post_next_[i], POSTS);
  }
  CHECK_EQ_INT(post_errors_, 0);
  CHECK_EQ_INT(post_total_, POSTERS * POSTS);
  CHECK_EQ_INT(dx__loop_stats(loop)->posts_run, POSTERS * POSTS);
  /* Nothing more runs afterwards: each exactly once. */
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(post_total_, POSTERS * POSTS);
  dx_loop_free(loop);
}

static void self_post(dx_loop *loop, void *arg) {
  int *n = arg;
  if (++*n < 3) dx_loop_post(loop, self_post, arg); /* next turn, no spin */
}

TEST(post_from_loop_thread) {
  dx_loop *loop = dx_loop_new(NULL);
  int n = 0;
  dx_loop_post(loop, self_post, &n);
  dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(n, 1);
  dx_loop_run_once(loop, 100);
  dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(n, 3);
  dx_loop_free(loop);
}

/* ---- stop and thread ownership -------------------------------------- */

typedef struct stopper {
  dx_loop *loop;
  int on_thread_seen; /* dx_loop_on_thread from the other thread */
} stopper;

static void *stopper_main(void *arg) {
  stopper *s = arg;
  struct timespec ts = {0, 30 * 1000000};
  nanosleep(&ts, NULL);
  s->on_thread_seen = dx_loop_on_thread(s->loop);
  dx_loop_stop(s->loop);
  return NULL;
}

TEST(stop_from_other_thread) {
  dx_loop *loop = dx_loop_new(NULL);
  stopper s = {loop, -1};
  pthread_t th;
  pthread_create(&th, NULL, stopper_main, &s);
  CHECK_EQ_INT(dx_loop_run(loop), 0); /* nothing active: returns only on stop */
  pthread_join(th, NULL);
  CHECK_EQ_INT(s.on_thread_seen, 0);
  CHECK(dx_loop_on_thread(loop)); /* not running any more */

  /* A stop requested before run is kept: run does one turn and returns. */
  dx_loop_stop(loop);
  CHECK_EQ_INT(dx_loop_run(loop), 0);
  dx_loop_free(loop);
}

static void reenter_cb(dx_timer *t) {
  CHECK_EQ_INT(dx_loop_run_once(t->loop, 0), DX_ESTATE);
  CHECK_EQ_INT(dx_loop_run(t->loop), DX_ESTATE);
  CHECK(dx_loop_on_thread(t->loop));
}

TEST(no_reentry) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_timer t;
  dx_timer_init(loop, &t, reenter_cb);
  dx_timer_start(&t, 0, 0);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

static void *run_loop_main(void *arg) {
  dx_loop_run(arg);
  return NULL;
}
static void noop_timer(dx_timer *t) {}

/* A loop-thread function called from another thread: debug builds abort
 * with a message, release builds return DX_EWRONG_THREAD. Runs in a child
 * process so the abort is observable. */
TEST(wrong_thread_is_caught) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* the expected complaint */
    dx_loop *loop = dx_loop_new(NULL);
    pthread_t th;
    pthread_create(&th, NULL, run_loop_main, loop);
    while (dx_loop_on_thread(loop)) sched_yield(); /* until it runs */
    dx_timer t;
    dx_timer_init(loop, &t, noop_timer);
    int rc = dx_timer_start(&t, 10, 0);
    dx_loop_stop(loop);
    pthread_join(th, NULL);
    _exit(rc == DX_EWRONG_THREAD ? 42 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
#ifdef NDEBUG
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
#else
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
  /* Either way dx__loop_assert_thread is 0 on the right thread. */
  dx_loop *loop = dx_loop_new(NULL);
  CHECK_EQ_INT(dx__loop_assert_thread(loop), 0);
  dx_loop_free(loop);
}

/* ---- signals -------------------------------------------------------- */

static int sig_got_, sig_count_;
static void on_sig(dx_loop *loop, int signo, void *arg) {
  sig_got_ = signo;
  sig_count_++;
  *(int *)arg += 1;
}

TEST(signal_delivery) {
  dx_loop *loop = dx_loop_new(NULL);
  int n = 0;
  CHECK_EQ_INT(dx_loop_signal(loop, SIGUSR1, on_sig, &n), 0);
  CHECK_EQ_INT(dx_loop_signal(loop, SIGUSR2, on_sig, &n), 0);
  CHECK_EQ_INT(dx_loop_signal(loop, SIGKILL, on_sig, &n), DX_EINVAL);
  CHECK_EQ_INT(dx_loop_signal(loop, 0, on_sig, &n), DX_EINVAL);
  raise(SIGUSR1);
  for (int i = 0; i < 10 && !sig_count_; i++) dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(sig_got_, SIGUSR1);
  CHECK_EQ_INT(n, 1);

  raise(SIGUSR2);
  for (int i = 0; i < 10 && sig_count_ < 2; i++) dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(sig_got_, SIGUSR2);

  /* Unregistered: still blocked, read and dropped, the process lives. */
  CHECK_EQ_INT(dx_loop_signal(loop, SIGUSR2, NULL, NULL), 0);
  raise(SIGUSR2);
  for (int i = 0; i < 3; i++) dx_loop_run_once(loop, 20);
  CHECK_EQ_INT(sig_count_, 2);
  dx_loop_free(loop);
}

/* ---- fd watchers ---------------------------------------------------- */

typedef struct pw {
  dx_io io;
  int fds[2];
  int calls;
  struct pw *victim; /* freed by this one's callback */
} pw;

static void pw_cb(dx_io *io, unsigned events) {
  pw *p = dx_container_of(io, pw, io);
  p->calls++;
  CHECK(events & DX_READABLE);
  char buf[16];
  (void)!read(p->fds[0], buf, sizeof buf);
  if (p->victim) {
    /* The victim is ready in this same batch: after stop + free, the loop
     * must not call it (ASan would catch the use after free). */
    dx_io_stop(&p->victim->io);
    close(p->victim->fds[0]);
    close(p->victim->fds[1]);
    free(p->victim);
    p->victim = NULL;
  }
}

TEST(io_watch_and_stop_in_batch) {
  dx_loop *loop = dx_loop_new(NULL);
  pw *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  CHECK_EQ_INT(pipe2(a->fds, O_NONBLOCK | O_CLOEXEC), 0);
  CHECK_EQ_INT(pipe2(b->fds, O_NONBLOCK | O_CLOEXEC), 0);
  dx_io_init(loop, &a->io, a->fds[0], pw_cb);
  dx_io_init(loop, &b->io, b->fds[0], pw_cb);
  CHECK_EQ_INT(dx_io_start(&a->io, DX_READABLE), 0);
  CHECK_EQ_INT(dx_io_start(&b->io, DX_READABLE), 0);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(a->calls + b->calls, 0);

  (void)!write(a->fds[1], "x", 1);
  (void)!write(b->fds[1], "y", 1);
  /* Whichever is dispatched first frees the other. */
  a->victim = b;
  b->victim = a;
  dx_loop_run_once(loop, 100);
  pw *survivor = a->victim ? b : a;
  CHECK_EQ_INT(survivor->calls, 1);
  CHECK(survivor->victim == NULL);

  /* Level-triggered: unread data reports again; stop silences it. */
  (void)!write(survivor->fds[1], "zz", 2);
  dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(survivor->calls, 2);
  dx_io_stop(&survivor->io);
  (void)!write(survivor->fds[1], "w", 1);
  dx_loop_run_once(loop, 20);
  CHECK_EQ_INT(survivor->calls, 2);
  close(survivor->fds[0]);
  close(survivor->fds[1]);
  free(survivor);
  dx_loop_free(loop);
}

/* ---- free later ----------------------------------------------------- */

static int freed_;
static void count_free(void *p) {
  freed_++;
  free(p);
}

static void free_later_timer(dx_timer *t) {
  void *p = malloc(32);
  CHECK_EQ_INT(dx_loop_free_later(t->loop, p, count_free), 0);
  memset(p, 1, 32); /* still ours until the turn ends */
  CHECK_EQ_INT(freed_, 0);
}

TEST(free_later_end_of_turn) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_timer t;
  dx_timer_init(loop, &t, free_later_timer);
  dx_timer_start(&t, 0, 0);
  freed_ = 0;
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(freed_, 1);
  /* Released by dx_loop_free too. */
  dx_loop_free_later(loop, malloc(8), count_free);
  dx_loop_free(loop);
  CHECK_EQ_INT(freed_, 2);
}

int main(void) {
  RUN(new_free_and_time);
  RUN(defer_ordering);
  RUN(before_sleep_hooks);
  RUN(post_from_four_threads);
  RUN(post_from_loop_thread);
  RUN(stop_from_other_thread);
  RUN(no_reentry);
  RUN(wrong_thread_is_caught);
  RUN(signal_delivery);
  RUN(io_watch_and_stop_in_batch);
  RUN(free_later_end_of_turn);
  return test_report();
}
