/* duplex — loop internals shared by the io/ layer (and by tests).
 *
 * Other layers may use dx__loop_assert_thread() and dx__loop_stats(); the
 * struct layout is for io/ files only.
 */
#ifndef DX_IO_LOOP_INTERNAL_H
#define DX_IO_LOOP_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "duplex/loop.h"

#define DX__GATHER_IOV 64
#define DX__GATHER_BYTES 1024

struct dx_stream;

/* Counters for tests and benchmarks; only ever incremented. Read on the
 * loop thread. */
typedef struct dx_loop_stats {
  uint64_t turns;         /* dx_loop_run_once calls that waited */
  uint64_t events;        /* fd events dispatched */
  uint64_t timers_fired;  /* timer callbacks run */
  uint64_t posts_run;     /* dx_loop_post functions run */
  uint64_t read_calls;    /* transport read calls made by streams */
  uint64_t writev_calls;  /* transport writev calls made by streams */
  uint64_t writev_bytes;  /* bytes those calls wrote */
  uint64_t epoll_ctl;     /* epoll_ctl calls */
  uint64_t accept_pauses; /* times a listener stopped accepting on EMFILE & co */
} dx_loop_stats;

typedef struct dx__post {
  void (*fn)(dx_loop *loop, void *arg);
  void *arg;
} dx__post;

typedef struct dx__free_item {
  void *ptr;
  void (*fn)(void *ptr);
} dx__free_item;

typedef struct dx__sig_entry {
  int signo;
  dx_signal_cb cb;
  void *arg;
} dx__sig_entry;

struct dx_loop {
  int epfd;
  bool in_callback; /* inside dx_loop_run_once: guards against re-entry */
  bool no_sleep;    /* before-sleep work was left over: poll, don't wait */
  bool wq_cached;   /* this thread caches write-queue blocks or buffers: trim within 1 s */
  uint64_t now;

  /* Timers: binary min-heap on (due, seq). */
  dx_timer **heap;
  uint32_t heap_len, heap_cap;
  uint64_t timer_seq;

  dx_deferred defer_head; /* circular list sentinel */
  dx_hook hook_head;      /* circular list sentinel */
  dx_hook *hook_iter;     /* next hook to run, so a hook may remove it */

  /* The batch being dispatched; dx_io_stop erases later entries for the
   * stopped watcher. */
  struct epoll_event *events;
  int max_events, ev_len, ev_pos;

  /* Cross-thread: posts and stop. */
  int wake_fd;
  dx_io wake_io;
  pthread_mutex_t post_mu;
  dx__post *posts; /* guarded by post_mu */
  size_t posts_len, posts_cap;
  dx__post *draining; /* loop thread only: swapped with posts */
  size_t draining_cap;
  atomic_bool stop;
  _Atomic(const void *) owner; /* token of the running thread, or NULL */

  /* Signals. */
  int sig_fd;
  dx_io sig_io;
  sigset_t sig_mask;
  dx__sig_entry *sigs;
  size_t sigs_len;

  dx__free_item *free_list;
  size_t free_len, free_cap;

  /* Streams: the shared read buffer and the list of streams to flush (or
   * to finish) before sleeping, FIFO. */
  uint8_t *read_buf;
  size_t read_buf_size;
  struct dx_stream *pending_head, *pending_tail;

  /* Large direct writes made by the stream whose on_read is running, sent
   * together in one writev when it returns (stream.c): pieces in read_buf
   * by reference, small ones (frame headers) copied into gather_bytes. */
  struct dx_stream *gather_s;
  int gather_cnt;
  size_t gather_total, gather_used;
  struct iovec gather_iov[DX__GATHER_IOV];
  uint8_t gather_bytes[DX__GATHER_BYTES];

  dx_loop_stats stats;
};

/* Counters of `loop`. */
static inline dx_loop_stats *dx__loop_stats(dx_loop *loop) { return &loop->stats; }

/* Thread check for functions that must run on the loop thread. Returns 0
 * on the right thread. Otherwise: in debug builds (NDEBUG not defined)
 * prints "duplex: <func> called from a thread that does not own the loop"
 * and aborts; in release builds logs that line and returns
 * DX_EWRONG_THREAD, which the caller returns. */
int dx__loop_wrong_thread(const dx_loop *loop, const char *func);

/* A per-thread address: the loop's owner field holds the running thread's. */
extern _Thread_local char dx__thread_token __attribute__((tls_model("initial-exec")));

/* Inline: every send checks the thread, so the common case is two loads
 * and a compare, and only a mismatch calls out. */
static inline int dx__loop_check_thread(const dx_loop *loop, const char *func) {
  const void *owner = atomic_load_explicit(&loop->owner, memory_order_relaxed);
  if (owner == NULL || owner == &dx__thread_token) return 0;
  return dx__loop_wrong_thread(loop, func);
}

#define dx__loop_assert_thread(loop) dx__loop_check_thread((loop), __func__)

/* Early-return forms for the top of a function. */
#define DX__CHECK_THREAD(loop)                                                                     \
  do {                                                                                             \
    int dx__rc_ = dx__loop_assert_thread(loop);                                                    \
    if (dx__rc_) return dx__rc_;                                                                   \
  } while (0)
#define DX__CHECK_THREAD_VOID(loop)                                                                \
  do {                                                                                             \
    if (dx__loop_assert_thread(loop)) return;                                                      \
  } while (0)

/* The stream layer's before-sleep step: flush or finish every pending
 * stream (stream.c). */
void dx__streams_flush(dx_loop *loop);

/* Run deferred callbacks until the queue is empty (loop.c). */
void dx__loop_drain_deferred(dx_loop *loop);

/* Timer internals (timer.c). */
void dx__timers_run(dx_loop *loop);
/* Milliseconds until the next timer is due (0 if overdue), or -1. */
int64_t dx__timers_next(const dx_loop *loop);

/* Signal internals (signal.c). */
void dx__signals_free(dx_loop *loop);

#endif /* DX_IO_LOOP_INTERNAL_H */
