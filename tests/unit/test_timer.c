/* Timers: ordering, stop/restart from callbacks, repeats, heap integrity,
 * and 100k timers. */
#include <stdint.h>
#include <time.h>

#include "duplex/loop.h"
#include "io/loop_internal.h"
#include "test.h"

typedef struct tt {
  dx_timer t;
  int id;
  int fired;
  struct tt *other; /* a timer the callback acts on */
} tt;

static int order_[64];
static int order_len_;

static void record_cb(dx_timer *t) {
  tt *x = dx_container_of(t, tt, t);
  x->fired++;
  if (order_len_ < 64) order_[order_len_++] = x->id;
}

/* Run turns until `*flag` reaches `want` or `ms` passed. */
static void run_until(dx_loop *loop, const int *flag, int want, int ms) {
  dx_loop_update_time(loop);
  uint64_t end = dx_loop_now(loop) + (uint64_t)ms;
  while (*flag < want && dx_loop_now(loop) < end) dx_loop_run_once(loop, 5);
}

TEST(fire_in_order) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 30}, b = {.id = 10}, c = {.id = 20}, d = {.id = 11}, e = {.id = 0};
  order_len_ = 0;
  tt *all[] = {&a, &b, &c, &d, &e};
  for (int i = 0; i < 5; i++) dx_timer_init(loop, &all[i]->t, record_cb);
  CHECK_EQ_INT(dx_timer_start(&a.t, 30, 0), 0);
  CHECK_EQ_INT(dx_timer_start(&b.t, 10, 0), 0);
  CHECK_EQ_INT(dx_timer_start(&c.t, 20, 0), 0);
  CHECK_EQ_INT(dx_timer_start(&d.t, 10, 0), 0); /* same deadline as b: after b */
  CHECK_EQ_INT(dx_timer_start(&e.t, 0, 0), 0);
  CHECK(dx_timer_active(&a.t));
  run_until(loop, &order_len_, 5, 2000);
  CHECK_EQ_INT(order_len_, 5);
  int want[] = {0, 10, 11, 20, 30};
  for (int i = 0; i < 5; i++) CHECK_EQ_INT(order_[i], want[i]);
  for (int i = 0; i < 5; i++) CHECK(!dx_timer_active(&all[i]->t));
  dx_loop_free(loop);
}

TEST(fires_not_early) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1};
  dx_timer_init(loop, &a.t, record_cb);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  dx_loop_update_time(loop);
  dx_timer_start(&a.t, 50, 0);
  while (!a.fired) dx_loop_run_once(loop, -1); /* -1: sleeps until the timer */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  CHECK(ms >= 49);
  CHECK(ms < 1000);
  dx_loop_free(loop);
}

static void stop_other_cb(dx_timer *t) {
  tt *x = dx_container_of(t, tt, t);
  x->fired++;
  dx_timer_stop(&x->other->t);
}

TEST(stop_other_from_callback) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1}, b = {.id = 2};
  a.other = &b;
  dx_timer_init(loop, &a.t, stop_other_cb);
  dx_timer_init(loop, &b.t, record_cb);
  dx_timer_start(&a.t, 5, 0);
  dx_timer_start(&b.t, 5, 0); /* due together, after a */
  run_until(loop, &a.fired, 1, 1000);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 5);
  CHECK_EQ_INT(a.fired, 1);
  CHECK_EQ_INT(b.fired, 0);
  CHECK(!dx_timer_active(&b.t));
  dx_loop_free(loop);
}

static uint64_t turns_at_[8];

static void restart_self_cb(dx_timer *t) {
  tt *x = dx_container_of(t, tt, t);
  turns_at_[x->fired] = dx__loop_stats(t->loop)->turns;
  x->fired++;
  if (x->fired < 3) dx_timer_start(t, 0, 0); /* 0 ms: must wait a round */
}

TEST(restart_self_zero_timeout_does_not_spin) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1};
  dx_timer_init(loop, &a.t, restart_self_cb);
  dx_timer_start(&a.t, 0, 0);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(a.fired, 1);
  CHECK(dx_timer_active(&a.t));
  run_until(loop, &a.fired, 3, 1000);
  CHECK_EQ_INT(a.fired, 3);
  CHECK(turns_at_[0] < turns_at_[1]);
  CHECK(turns_at_[1] < turns_at_[2]);
  CHECK(!dx_timer_active(&a.t));
  dx_loop_free(loop);
}

static void repeat_cb(dx_timer *t) {
  tt *x = dx_container_of(t, tt, t);
  x->fired++;
  CHECK(dx_timer_active(t)); /* already rescheduled */
  if (x->fired == 4) dx_timer_stop(t);
}

TEST(repeat_and_stop_inside) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1};
  dx_timer_init(loop, &a.t, repeat_cb);
  dx_timer_start(&a.t, 1, 2);
  run_until(loop, &a.fired, 4, 2000);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 3);
  CHECK_EQ_INT(a.fired, 4);
  CHECK(!dx_timer_active(&a.t));
  dx_loop_free(loop);
}

TEST(restart_and_reschedule) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1};
  dx_timer_init(loop, &a.t, record_cb);
  dx_timer_start(&a.t, 10000, 0);
  dx_timer_start(&a.t, 1, 0); /* reschedule sooner */
  run_until(loop, &a.fired, 1, 1000);
  CHECK_EQ_INT(a.fired, 1);

  /* set_repeat on a one-shot turns it into a repeating one from then on. */
  tt b = {.id = 2};
  dx_timer_init(loop, &b.t, repeat_cb);
  dx_timer_start(&b.t, 0, 0);
  dx_timer_set_repeat(&b.t, 1);
  run_until(loop, &b.fired, 4, 2000);
  CHECK_EQ_INT(b.fired, 4);
  CHECK(!dx_timer_active(&b.t));
  dx_loop_free(loop);
}

TEST(far_future_saturates) {
  dx_loop *loop = dx_loop_new(NULL);
  tt a = {.id = 1};
  dx_timer_init(loop, &a.t, record_cb);
  dx_timer_start(&a.t, UINT64_MAX, 0);
  CHECK(dx__timers_next(loop) > 0);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(a.fired, 0);
  dx_timer_stop(&a.t);
  dx_loop_free(loop);
}

/* ---- heap integrity under random start/stop ------------------------- */

static uint64_t rng_ = 88172645463325252ull;
static uint64_t rnd(void) {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return rng_;
}

static bool heap_ok(dx_loop *loop) {
  for (uint32_t i = 0; i < loop->heap_len; i++) {
    if (loop->heap[i]->index != i) return false;
    if (i > 0) {
      dx_timer *p = loop->heap[(i - 1) / 2], *c = loop->heap[i];
      if (c->due < p->due || (c->due == p->due && c->seq < p->seq)) return false;
    }
  }
  return true;
}

TEST(heap_random_ops) {
  dx_loop *loop = dx_loop_new(NULL);
  enum { N = 2000 };
  static tt ts[N];
  for (int i = 0; i < N; i++) {
    ts[i] = (tt){.id = i};
    dx_timer_init(loop, &ts[i].t, record_cb);
  }
  int active = 0;
  for (int op = 0; op < 50000; op++) {
    tt *x = &ts[rnd() % N];
    if (rnd() % 3 == 0) {
      if (dx_timer_active(&x->t)) active--;
      dx_timer_stop(&x->t);
    } else {
      if (!dx_timer_active(&x->t)) active++;
      dx_timer_start(&x->t, 1000 + rnd() % 5000, 0);
    }
    if (op % 997 == 0) CHECK(heap_ok(loop));
  }
  CHECK(heap_ok(loop));
  CHECK_EQ_INT(loop->heap_len, active);
  for (int i = 0; i < N; i++) dx_timer_stop(&ts[i].t);
  CHECK_EQ_INT(loop->heap_len, 0);
  dx_loop_free(loop);
}

/* ---- 100k timers ---------------------------------------------------- */

enum { BIG = 100000 };
static tt *big_;
static uint64_t last_due_;
static int big_fired_, big_bad_order_;

static void big_cb(dx_timer *t) {
  if (t->due < last_due_) big_bad_order_++;
  last_due_ = t->due;
  big_fired_++;
}

TEST(hundred_thousand_timers) {
  dx_loop *loop = dx_loop_new(NULL);
  big_ = calloc(BIG, sizeof *big_);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < BIG; i++) {
    dx_timer_init(loop, &big_[i].t, big_cb);
    CHECK_EQ_INT(dx_timer_start(&big_[i].t, rnd() % 200, 0), 0);
  }
  /* Every third one is cancelled, e.g. connections that closed. */
  int expect = 0;
  for (int i = 0; i < BIG; i++) {
    if (i % 3 == 0)
      dx_timer_stop(&big_[i].t);
    else
      expect++;
  }
  CHECK(heap_ok(loop));
  last_due_ = 0;
  run_until(loop, &big_fired_, expect, 10000);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  CHECK_EQ_INT(big_fired_, expect);
  CHECK_EQ_INT(big_bad_order_, 0);
  CHECK_EQ_INT(loop->heap_len, 0);
  printf("100k timers: start/stop/fire in %ld ms (includes ~200 ms of waiting)\n", ms);
  CHECK(ms < 5000);
  free(big_);
  dx_loop_free(loop);
}

TEST(sizes) {
  printf("sizeof(dx_timer) = %zu\n", sizeof(dx_timer));
  CHECK(sizeof(dx_timer) <= 40);
}

int main(void) {
  RUN(fire_in_order);
  RUN(fires_not_early);
  RUN(stop_other_from_callback);
  RUN(restart_self_zero_timeout_does_not_spin);
  RUN(repeat_and_stop_inside);
  RUN(restart_and_reschedule);
  RUN(far_future_saturates);
  RUN(heap_random_ops);
  RUN(hundred_thousand_timers);
  RUN(sizes);
  return test_report();
}
