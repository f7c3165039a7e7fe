/* The event loop: epoll wait/dispatch, cross-thread posts through an
 * eventfd, deferred callbacks, before-sleep hooks and end-of-turn frees.
 * Timers live in timer.c, signals in signal.c, stream flushing in stream.c.
 */
#include "io/loop_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/bufcache.h"
#include "common/log.h"
#include "io/wqueue.h"

#define DX_DEFAULT_READ_BUF (512u * 1024u)
#define DX_DEFAULT_MAX_EVENTS 256
/* Rounds of "deferred -> hooks -> flush" before sleeping; work left after
 * that is picked up by a non-blocking next turn instead of starving I/O. */
#define DX_BEFORE_SLEEP_ROUNDS 8

/* Each thread's address of this byte identifies it: cheaper than
 * pthread_self() comparisons and needs no atomic pthread_t. initial-exec
 * keeps the access a single fs-relative load even in the shared library. */
_Thread_local char dx__thread_token __attribute__((tls_model("initial-exec")));

/* ---- time ----------------------------------------------------------- */

static uint64_t dx__clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t dx_loop_now(const dx_loop *loop) { return loop->now; }

void dx_loop_update_time(dx_loop *loop) {
  DX__CHECK_THREAD_VOID(loop);
  loop->now = dx__clock_ms();
}

/* ---- threads -------------------------------------------------------- */

bool dx_loop_on_thread(const dx_loop *loop) {
  const void *owner = atomic_load_explicit(&loop->owner, memory_order_relaxed);
  return owner == NULL || owner == &dx__thread_token;
}

int dx__loop_wrong_thread(const dx_loop *loop, const char *func) {
  if (dx_loop_on_thread(loop)) return 0;
#ifndef NDEBUG
  fprintf(stderr, "duplex: %s called from a thread that does not own the loop (use dx_loop_post)\n",
          func);
  abort();
#else
  dx_log_error("%s called from a thread that does not own the loop (use dx_loop_post)", func);
  return DX_EWRONG_THREAD;
#endif
}

/* ---- lists ---------------------------------------------------------- */

void dx_deferred_init(dx_deferred *d) { memset(d, 0, sizeof *d); }

bool dx_deferred_pending(const dx_deferred *d) { return d->next != NULL; }

void dx_loop_defer(dx_loop *loop, dx_deferred *d, dx_deferred_cb cb, void *arg) {
  DX__CHECK_THREAD_VOID(loop);
  d->cb = cb;
  d->arg = arg;
  if (d->next) return;
  d->next = &loop->defer_head;
  d->prev = loop->defer_head.prev;
  loop->defer_head.prev->next = d;
  loop->defer_head.prev = d;
}

void dx_deferred_cancel(dx_deferred *d) {
  if (!d->next) return;
  d->prev->next = d->next;
  d->next->prev = d->prev;
  d->next = d->prev = NULL;
}

void dx__loop_drain_deferred(dx_loop *loop) {
  dx_deferred *head = &loop->defer_head;
  while (head->next != head) {
    dx_deferred *d = head->next;
    dx_deferred_cancel(d);
    d->cb(loop, d->arg);
  }
}

void dx_loop_hook_add(dx_loop *loop, dx_hook *h, dx_hook_cb cb, void *arg) {
  DX__CHECK_THREAD_VOID(loop);
  if (h->next) return;
  h->loop = loop;
  h->cb = cb;
  h->arg = arg;
  h->next = &loop->hook_head;
  h->prev = loop->hook_head.prev;
  loop->hook_head.prev->next = h;
  loop->hook_head.prev = h;
}

void dx_loop_hook_remove(dx_hook *h) {
  if (!h->next) return;
  DX__CHECK_THREAD_VOID(h->loop);
  /* Removing the hook that runs next must not derail the iteration. */
  if (h->loop->hook_iter == h) h->loop->hook_iter = h->next;
  h->prev->next = h->next;
  h->next->prev = h->prev;
  h->next = h->prev = NULL;
}

static void dx__run_hooks(dx_loop *loop) {
  dx_hook *head = &loop->hook_head;
  loop->hook_iter = head->next;
  while (loop->hook_iter != head) {
    dx_hook *h = loop->hook_iter;
    loop->hook_iter = h->next;
    h->cb(loop, h->arg);
    dx__loop_drain_deferred(loop);
  }
  loop->hook_iter = NULL;
}

/* ---- free later ----------------------------------------------------- */

int dx_loop_free_later(dx_loop *loop, void *ptr, void (*free_fn)(void *ptr)) {
  DX__CHECK_THREAD(loop);
  if (loop->free_len == loop->free_cap) {
    size_t cap = loop->free_cap ? loop->free_cap * 2 : 64;
    dx__free_item *n = realloc(loop->free_list, cap * sizeof *n);
    if (!n) return DX_ENOMEM;
    loop->free_list = n;
    loop->free_cap = cap;
  }
  loop->free_list[loop->free_len++] = (dx__free_item){ptr, free_fn};
  return 0;
}

static void dx__release_freed(dx_loop *loop) {
  /* A free_fn may queue more (freeing a parent frees children later):
   * index, don't cache the length. */
  for (size_t i = 0; i < loop->free_len; i++) {
    dx__free_item it = loop->free_list[i];
    it.fn(it.ptr);
  }
  loop->free_len = 0;
}

/* ---- fd watchers ---------------------------------------------------- */

void dx_io_init(dx_loop *loop, dx_io *io, int fd, dx_io_cb cb) {
  memset(io, 0, sizeof *io);
  io->loop = loop;
  io->cb = cb;
  io->fd = fd;
}

int dx_io_start(dx_io *io, unsigned events) {
  dx_loop *loop = io->loop;
  DX__CHECK_THREAD(loop);
  events &= DX_READABLE | DX_WRITABLE;
  if (events == 0) {
    dx_io_stop(io);
    return 0;
  }
  if (io->registered && io->events == events) return 0;
  struct epoll_event ev = {.events = ((events & DX_READABLE) ? EPOLLIN : 0u) |
                                     ((events & DX_WRITABLE) ? EPOLLOUT : 0u),
                           .data.ptr = io};
  int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  loop->stats.epoll_ctl++;
  if (epoll_ctl(loop->epfd, op, io->fd, &ev) != 0) {
    dx_log_error("epoll_ctl(%s, fd %d): %s", op == EPOLL_CTL_ADD ? "ADD" : "MOD", io->fd,
                 strerror(errno));
    return DX_ESYS;
  }
  io->registered = 1;
  io->events = (uint8_t)events;
  return 0;
}

void dx_io_stop(dx_io *io) {
  dx_loop *loop = io->loop;
  DX__CHECK_THREAD_VOID(loop);
  io->events = 0;
  /* Not registered: already stopped, and the batch was scrubbed then. */
  if (!io->registered) return;
  loop->stats.epoll_ctl++;
  /* Fails only if the fd was already closed, which removed it anyway. */
  (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->registered = 0;
  /* The memory may be freed as soon as we return: forget this watcher in
   * the rest of the batch being dispatched. */
  for (int i = loop->ev_pos + 1; i < loop->ev_len; i++) {
    if (loop->events[i].data.ptr == io) loop->events[i].data.ptr = NULL;
  }
}

static void dx__dispatch(dx_loop *loop, int n) {
  loop->ev_len = n;
  for (loop->ev_pos = 0; loop->ev_pos < n; loop->ev_pos++) {
    struct epoll_event *ev = &loop->events[loop->ev_pos];
    dx_io *io = ev->data.ptr;
    if (!io) continue;
    unsigned got = 0;
    if (ev->events & EPOLLIN) got |= DX_READABLE;
    if (ev->events & EPOLLOUT) got |= DX_WRITABLE;
    if (ev->events & (EPOLLERR | EPOLLHUP)) got |= DX_READABLE | DX_WRITABLE;
    got &= io->events;
    if (!got) continue;
    loop->stats.events++;
    io->cb(io, got);
    dx__loop_drain_deferred(loop);
  }
  loop->ev_len = 0;
  loop->ev_pos = 0;
}

/* ---- posts and wake-ups --------------------------------------------- */

static void dx__wake(dx_loop *loop) {
  uint64_t one = 1;
  /* EAGAIN means the counter is already non-zero: the loop will wake. */
  while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

int dx_loop_post(dx_loop *loop, void (*fn)(dx_loop *loop, void *arg), void *arg) {
  pthread_mutex_lock(&loop->post_mu);
  if (loop->posts_len == loop->posts_cap) {
    size_t cap = loop->posts_cap ? loop->posts_cap * 2 : 64;
    dx__post *n = realloc(loop->posts, cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&loop->post_mu);
      return DX_ENOMEM;
    }
    loop->posts = n;
    loop->posts_cap = cap;
  }
  loop->posts[loop->posts_len++] = (dx__post){fn, arg};
  /* Only the first post into an empty queue needs to wake the loop: the
   * loop reads the eventfd before it takes the queue, so a later post is
   * either taken with this one or finds the queue empty and wakes again. */
  bool wake = loop->posts_len == 1;
  pthread_mutex_unlock(&loop->post_mu);
  if (wake) dx__wake(loop);
  return 0;
}

void dx_loop_stop(dx_loop *loop) {
  atomic_store(&loop->stop, true);
  dx__wake(loop);
}

static void dx__on_wake(dx_io *io, unsigned events) {
  dx_loop *loop = dx_container_of(io, dx_loop, wake_io);
  uint64_t v;
  while (read(loop->wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&loop->post_mu);
  dx__post *batch = loop->posts;
  size_t len = loop->posts_len, cap = loop->posts_cap;
  loop->posts = loop->draining;
  loop->posts_cap = loop->draining_cap;
  loop->posts_len = 0;
  pthread_mutex_unlock(&loop->post_mu);
  /* Run outside the lock so posted functions may post again. */
  for (size_t i = 0; i < len; i++) {
    batch[i].fn(loop, batch[i].arg);
    loop->stats.posts_run++;
    dx__loop_drain_deferred(loop);
  }
  loop->draining = batch;
  loop->draining_cap = cap;
}

/* ---- the loop ------------------------------------------------------- */

dx_loop *dx_loop_new(const dx_loop_opts *opts) {
  dx_loop_opts o = opts ? *opts : (dx_loop_opts){0};
  if (o.read_buffer_size == 0) o.read_buffer_size = DX_DEFAULT_READ_BUF;
  if (o.max_events <= 0) o.max_events = DX_DEFAULT_MAX_EVENTS;

  dx_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->epfd = loop->wake_fd = loop->sig_fd = -1;
  loop->defer_head.next = loop->defer_head.prev = &loop->defer_head;
  loop->hook_head.next = loop->hook_head.prev = &loop->hook_head;
  atomic_init(&loop->stop, false);
  atomic_init(&loop->owner, NULL);
  sigemptyset(&loop->sig_mask);
  if (pthread_mutex_init(&loop->post_mu, NULL) != 0) {
    free(loop);
    return NULL;
  }
  loop->max_events = o.max_events;
  loop->read_buf_size = o.read_buffer_size;
  loop->events = calloc((size_t)o.max_events, sizeof *loop->events);
  loop->read_buf = malloc(o.read_buffer_size);
  if (!loop->events || !loop->read_buf) goto fail;

  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0) {
    dx_log_error("epoll_create1: %s", strerror(errno));
    goto fail;
  }
  loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake_fd < 0) {
    dx_log_error("eventfd: %s", strerror(errno));
    goto fail;
  }
  dx_io_init(loop, &loop->wake_io, loop->wake_fd, dx__on_wake);
  if (dx_io_start(&loop->wake_io, DX_READABLE) != 0) goto fail;
  loop->now = dx__clock_ms();
  return loop;

fail:
  dx_loop_free(loop);
  return NULL;
}

void dx_loop_free(dx_loop *loop) {
  if (!loop) return;
  /* Freeing a loop another thread is running is never recoverable. */
  if (!dx_loop_on_thread(loop)) {
    dx__loop_wrong_thread(loop, __func__);
    return;
  }
  dx__release_freed(loop);
  dx__signals_free(loop);
  if (loop->wake_fd >= 0) close(loop->wake_fd);
  if (loop->epfd >= 0) close(loop->epfd);
  pthread_mutex_destroy(&loop->post_mu);
  free(loop->posts);
  free(loop->draining);
  free(loop->free_list);
  free(loop->heap);
  free(loop->events);
  free(loop->read_buf);
  free(loop);
}

/* Everything that must happen before sleeping: deferred work, hooks, and
 * one flush of every stream with queued bytes. Callbacks run here may queue
 * more of each, hence the bounded repetition. */
static void dx__before_sleep(dx_loop *loop) {
  for (int round = 0; round < DX_BEFORE_SLEEP_ROUNDS; round++) {
    dx__loop_drain_deferred(loop);
    dx__run_hooks(loop);
    dx__streams_flush(loop);
    if (loop->defer_head.next == &loop->defer_head && !loop->pending_head) {
      loop->no_sleep = false;
      return;
    }
  }
  loop->no_sleep = true;
}

static int dx__poll_timeout(dx_loop *loop, int timeout_ms) {
  if (loop->no_sleep || atomic_load_explicit(&loop->stop, memory_order_relaxed)) return 0;
  int64_t next = dx__timers_next(loop);
  if (next > INT_MAX) next = INT_MAX;
  if (next < 0) next = timeout_ms; /* no timers */
  if (timeout_ms < 0 || next < timeout_ms) timeout_ms = (int)next;
  /* Cached write-queue blocks are trimmed once a second even when idle. */
  if (loop->wq_cached && (timeout_ms < 0 || timeout_ms > 1000)) timeout_ms = 1000;
  return timeout_ms;
}

/* Wait, dispatch, run timers, then flush what the callbacks queued. The
 * caller runs dx__before_sleep() once before the first turn, so writes
 * queued before the loop runs are not held up by the first wait. */
static int dx__turn(dx_loop *loop, int timeout_ms) {
  int timeout = dx__poll_timeout(loop, timeout_ms);
  int n = epoll_wait(loop->epfd, loop->events, loop->max_events, timeout);
  int err = n < 0 ? errno : 0;
  loop->now = dx__clock_ms();
  loop->stats.turns++;
  if (n < 0) {
    if (err != EINTR) {
      dx_log_error("epoll_wait: %s", strerror(err));
      return DX_ESYS;
    }
    n = 0;
  }
  dx__dispatch(loop, n);
  dx__timers_run(loop);
  dx__before_sleep(loop);
  dx__release_freed(loop);
  loop->wq_cached = dx_wq_cache_tick(loop->now);
  loop->wq_cached |= dx_bufcache_tick(loop->now);
  return 0;
}

static int dx__enter(dx_loop *loop) {
  if (loop->in_callback) return DX_ESTATE;
  const void *expect = NULL;
  if (!atomic_compare_exchange_strong(&loop->owner, &expect, &dx__thread_token) &&
      expect != &dx__thread_token) {
    return dx__loop_assert_thread(loop) ? DX_EWRONG_THREAD : DX_ESTATE;
  }
  loop->in_callback = true;
  loop->now = dx__clock_ms();
  return 0;
}

static void dx__leave(dx_loop *loop) {
  loop->in_callback = false;
  atomic_store(&loop->owner, NULL);
}

int dx_loop_run_once(dx_loop *loop, int timeout_ms) {
  int rc = dx__enter(loop);
  if (rc) return rc;
  dx__before_sleep(loop);
  rc = dx__turn(loop, timeout_ms);
  dx__leave(loop);
  return rc;
}

int dx_loop_run(dx_loop *loop) {
  int rc = dx__enter(loop);
  if (rc) return rc;
  dx__before_sleep(loop);
  for (;;) {
    rc = dx__turn(loop, -1);
    if (rc) break;
    if (atomic_exchange(&loop->stop, false)) break;
  }
  dx__leave(loop);
  return rc;
}
