/* Timers: a binary min-heap of pointers ordered by (due, seq). Each timer
 * stores its heap slot, so stop and restart are O(log n) with no search;
 * 100k timers cost 800 KB of heap array and nothing per idle timer. */
#include "io/loop_internal.h"

#include <stdlib.h>

#define DX_TIMER_IDLE UINT32_MAX

static inline bool dx__timer_before(const dx_timer *a, const dx_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static inline void dx__heap_set(dx_timer **heap, uint32_t i, dx_timer *t) {
  heap[i] = t;
  t->index = i;
}

static void dx__heap_up(dx_timer **heap, uint32_t i) {
  dx_timer *t = heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!dx__timer_before(t, heap[parent])) break;
    dx__heap_set(heap, i, heap[parent]);
    i = parent;
  }
  dx__heap_set(heap, i, t);
}

static void dx__heap_down(dx_timer **heap, uint32_t len, uint32_t i) {
  dx_timer *t = heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= len) break;
    if (child + 1 < len && dx__timer_before(heap[child + 1], heap[child])) child++;
    if (!dx__timer_before(heap[child], t)) break;
    dx__heap_set(heap, i, heap[child]);
    i = child;
  }
  dx__heap_set(heap, i, t);
}

static void dx__heap_remove(dx_loop *loop, dx_timer *t) {
  uint32_t i = t->index;
  uint32_t last = --loop->heap_len;
  t->index = DX_TIMER_IDLE;
  if (i == last) return;
  dx_timer *moved = loop->heap[last];
  dx__heap_set(loop->heap, i, moved);
  /* The replacement may belong above or below the hole. */
  if (i > 0 && dx__timer_before(moved, loop->heap[(i - 1) / 2]))
    dx__heap_up(loop->heap, i);
  else
    dx__heap_down(loop->heap, loop->heap_len, i);
}

static int dx__heap_insert(dx_loop *loop, dx_timer *t) {
  if (loop->heap_len == loop->heap_cap) {
    if (loop->heap_cap >= DX_TIMER_IDLE / 2) return DX_ENOMEM;
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    dx_timer **n = realloc(loop->heap, (size_t)cap * sizeof *n);
    if (!n) return DX_ENOMEM;
    loop->heap = n;
    loop->heap_cap = cap;
  }
  uint32_t i = loop->heap_len++;
  dx__heap_set(loop->heap, i, t);
  dx__heap_up(loop->heap, i);
  return 0;
}

void dx_timer_init(dx_loop *loop, dx_timer *t, dx_timer_cb cb) {
  t->loop = loop;
  t->cb = cb;
  t->due = 0;
  t->seq = 0;
  t->repeat = 0;
  t->index = DX_TIMER_IDLE;
}

bool dx_timer_active(const dx_timer *t) { return t->index != DX_TIMER_IDLE; }

void dx_timer_set_repeat(dx_timer *t, uint32_t repeat_ms) {
  DX__CHECK_THREAD_VOID(t->loop);
  t->repeat = repeat_ms;
}

static int dx__timer_schedule(dx_loop *loop, dx_timer *t, uint64_t timeout_ms) {
  uint64_t due = loop->now + timeout_ms;
  t->due = due < loop->now ? UINT64_MAX : due; /* saturate "never" */
  t->seq = loop->timer_seq++;
  return dx__heap_insert(loop, t);
}

int dx_timer_start(dx_timer *t, uint64_t timeout_ms, uint32_t repeat_ms) {
  dx_loop *loop = t->loop;
  DX__CHECK_THREAD(loop);
  if (t->index != DX_TIMER_IDLE) dx__heap_remove(loop, t);
  t->repeat = repeat_ms;
  return dx__timer_schedule(loop, t, timeout_ms);
}

void dx_timer_stop(dx_timer *t) {
  dx_loop *loop = t->loop;
  DX__CHECK_THREAD_VOID(loop);
  if (t->index != DX_TIMER_IDLE) dx__heap_remove(loop, t);
}

int64_t dx__timers_next(const dx_loop *loop) {
  if (loop->heap_len == 0) return -1;
  uint64_t due = loop->heap[0]->due;
  if (due <= loop->now) return 0;
  uint64_t d = due - loop->now;
  return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

void dx__timers_run(dx_loop *loop) {
  /* Timers (re)started from now on carry seq >= limit and wait for the next
   * round, so a 0 ms restart (or a 0 ms repeat) cannot spin here. Among
   * timers due by now, older starts sort first, so stopping at the first
   * young one skips no old one. */
  uint64_t limit = loop->timer_seq;
  while (loop->heap_len > 0) {
    dx_timer *t = loop->heap[0];
    if (t->due > loop->now || t->seq >= limit) break;
    dx__heap_remove(loop, t);
    /* Reschedule before the call so the callback can stop or restart it.
     * The heap has room: t's slot was just freed. */
    if (t->repeat) (void)dx__timer_schedule(loop, t, t->repeat);
    loop->stats.timers_fired++;
    t->cb(t);
    dx__loop_drain_deferred(loop);
  }
}
