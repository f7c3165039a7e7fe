/* duplex — the event loop (Linux: epoll, eventfd, signalfd).
 *
 *   dx_loop *loop = dx_loop_new(NULL);
 *   ... create servers, timers, watchers ...
 *   dx_loop_run(loop);            // until dx_loop_stop()
 *   ... close everything, then one dx_loop_run_once(loop, 0) to deliver
 *   ... the last close callbacks ...
 *   dx_loop_free(loop);
 *
 * One loop turn:
 *
 *   1. wait in epoll_wait until an fd is ready, the next timer is due, or a
 *      dx_loop_post/dx_loop_stop wakes it
 *   2. update the cached time, dispatch ready fds (posted functions and
 *      signals arrive through fds too), then run due timers; deferred
 *      callbacks run after each of those callbacks returns
 *   3. before sleep: run deferred callbacks, then the before-sleep hooks,
 *      then flush every stream with queued bytes (one writev each) and
 *      deliver stream close callbacks; repeat while that produced more such
 *      work (bounded; leftovers make the next wait non-blocking)
 *   4. release what dx_loop_free_later() queued during the turn
 *
 * dx_loop_run and dx_loop_run_once do step 3 once before their first wait
 * too, so writes queued during setup go out without waiting.
 *
 * Handles (dx_timer, dx_io, dx_deferred, dx_hook) are structs you embed in
 * your own objects: the loop never allocates for them and never frees them.
 * Get from a handle back to your object with dx_container_of(). A handle is
 * linked into the loop while active: stop it before freeing its memory.
 *
 * Threads: a loop belongs to the thread running it. Every function here must
 * be called on that thread (or, before the loop first runs, on any one
 * thread at a time), EXCEPT dx_loop_post(), dx_loop_stop() and
 * dx_loop_on_thread(), which any thread may call. Debug builds (NDEBUG not
 * defined) abort with a message naming the function when a loop-thread
 * function is called from another thread; release builds log an error and
 * return DX_EWRONG_THREAD (or do nothing, for void functions).
 *
 * Errors: negative DX_E* codes from duplex/error.h. DX_ESYS means a system
 * call failed; the reason (errno) is logged.
 */
#ifndef DUPLEX_LOOP_H
#define DUPLEX_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"
#include "duplex/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_loop dx_loop;

/* From a pointer to a handle embedded in a struct, back to the struct:
 *   struct conn { dx_timer ping; ... };
 *   struct conn *c = dx_container_of(t, struct conn, ping); */
#define dx_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- the loop ------------------------------------------------------- */

/* Options; zero means "default". */
typedef struct dx_loop_opts {
  /* Size of the read buffer shared by every stream of the loop; on_read
   * hands out at most this many bytes at once. Default 512 KiB (64 KiB
   * messages and their headers arrive whole, several per read, so they are
   * delivered in place instead of reassembled). */
  size_t read_buffer_size;
  /* Ready fds fetched per epoll_wait. Default 256. */
  int max_events;
} dx_loop_opts;

/* Create a loop (`opts` may be NULL). Returns NULL on failure (out of
 * memory, or epoll/eventfd creation failed; logged). */
DX_API dx_loop *dx_loop_new(const dx_loop_opts *opts);

/* Free the loop and its fds. Call it after dx_loop_run returned, on the
 * thread that ran it, once every handle is stopped and every stream closed
 * with its on_close delivered (run dx_loop_run_once(loop, 0) after closing
 * them). Functions still queued by dx_loop_post are dropped without running
 * (stop the posting threads first); dx_loop_free_later entries are released.
 * No other thread may use the loop during or after this call. NULL is a
 * no-op. */
DX_API void dx_loop_free(dx_loop *loop);

/* Run loop turns until dx_loop_stop() is called; it does not return just
 * because nothing is active. Queued writes are flushed once more before it
 * returns. Returns 0 after a stop, DX_ESTATE when called from inside a
 * callback of the same loop, DX_ESYS when epoll_wait failed. The calling
 * thread owns the loop while this runs. */
DX_API int dx_loop_run(dx_loop *loop);

/* Run one turn (see the top of this file), waiting at most `timeout_ms` for
 * events: 0 polls without blocking, -1 waits until the next timer or event.
 * Returns 0, DX_ESTATE (called from a callback of this loop) or DX_ESYS.
 * Useful in tests and to embed the loop in another one. */
DX_API int dx_loop_run_once(dx_loop *loop, int timeout_ms);

/* Make dx_loop_run return after the current turn. Thread-safe and
 * async-signal-unsafe. A stop requested while the loop is not running is
 * kept: the next dx_loop_run runs one turn and returns. */
DX_API void dx_loop_stop(dx_loop *loop);

/* The loop's monotonic clock in milliseconds (CLOCK_MONOTONIC), cached once
 * per turn, right after waking up. Timer deadlines are relative to it. */
DX_API uint64_t dx_loop_now(const dx_loop *loop);

/* Refresh the cached time, e.g. after a long computation in a callback. */
DX_API void dx_loop_update_time(dx_loop *loop);

/* True on the thread running the loop, and on any thread while the loop is
 * not running (setup/teardown). Thread-safe. */
DX_API bool dx_loop_on_thread(const dx_loop *loop);

/* THE thread-safe entry point: have `fn(loop, arg)` run on the loop thread.
 * Calls are queued under a mutex and the loop is woken through an eventfd;
 * they run in the order they were queued (per posting thread, and globally
 * in mutex order), each exactly once, during a later turn. Ownership of
 * `arg` passes to `fn`. May be called from the loop thread itself (runs in
 * a later turn) and from other loops' callbacks. Returns 0 or DX_ENOMEM. Do
 * not post to a loop that is being or has been freed. */
DX_API int dx_loop_post(dx_loop *loop, void (*fn)(dx_loop *loop, void *arg), void *arg);

/* Release `ptr` with `free_fn(ptr)` at the end of the current turn, after
 * every callback of the turn has returned: a callback can close the object
 * it was called for and still touch it until it returns. Returns 0, or
 * DX_ENOMEM (nothing was queued; the queue's storage is reused, so this only
 * happens while it grows). */
DX_API int dx_loop_free_later(dx_loop *loop, void *ptr, void (*free_fn)(void *ptr));

/* ---- timers --------------------------------------------------------- */

typedef struct dx_timer dx_timer;
typedef void (*dx_timer_cb)(dx_timer *timer);

/* A timer, embedded in your struct. Fields are private. 40 bytes. Active
 * timers sit in a binary min-heap of pointers (O(log n) start/stop, O(1)
 * next deadline); idle timers cost nothing. */
struct dx_timer {
  dx_loop *loop;
  dx_timer_cb cb;
  uint64_t due;    /* absolute deadline, loop ms */
  uint64_t seq;    /* start order: equal deadlines fire in start order */
  uint32_t repeat; /* ms, 0 = one-shot */
  uint32_t index;  /* heap slot, UINT32_MAX when inactive */
};

/* Bind `t` to `loop` with callback `cb` (never NULL). The timer is
 * inactive. Cannot fail. Re-initialising an active timer is a bug. */
DX_API void dx_timer_init(dx_loop *loop, dx_timer *t, dx_timer_cb cb);

/* (Re)start: fire `timeout_ms` after dx_loop_now(), then every `repeat_ms`
 * (0 = once). An active timer is rescheduled. Timers due at the same time
 * fire in the order they were started. Repeats are scheduled from the time
 * the timer fired (no catch-up bursts). Safe inside any callback, including
 * the timer's own: a timer (re)started from a timer callback never fires in
 * the same round, even with timeout 0. Returns 0, DX_ENOMEM (the heap
 * could not grow; the timer stays inactive), DX_EWRONG_THREAD. */
DX_API int dx_timer_start(dx_timer *t, uint64_t timeout_ms, uint32_t repeat_ms);

/* Stop the timer if active. Safe anywhere, including its own callback (for
 * a repeating timer this cancels the repeat). After this the memory may be
 * freed. */
DX_API void dx_timer_stop(dx_timer *t);

/* True while the timer is scheduled. Inside the callback of a repeating
 * timer this is already true again (it was rescheduled before the call). */
DX_API bool dx_timer_active(const dx_timer *t);

/* Change the interval of a repeating timer; takes effect at its next
 * firing. */
DX_API void dx_timer_set_repeat(dx_timer *t, uint32_t repeat_ms);

/* ---- deferred callbacks --------------------------------------------- */

typedef struct dx_deferred dx_deferred;
typedef void (*dx_deferred_cb)(dx_loop *loop, void *arg);

/* A one-shot deferred call, embedded in your struct. Fields are private. */
struct dx_deferred {
  dx_deferred *next, *prev; /* NULL when not queued */
  dx_deferred_cb cb;
  void *arg;
};

/* Zero the struct; equivalent to `= {0}`. */
DX_API void dx_deferred_init(dx_deferred *d);

/* Queue `cb(loop, arg)` to run once, after the callback that is running
 * now (and whatever it is nested in) returns, and before the loop sleeps.
 * Deferred calls run in FIFO order; calls queued while the queue is being
 * drained run in the same drain, so a callback that always re-queues itself
 * starves the loop (use a 0 ms timer to yield instead). Queuing an already
 * queued `d` only updates cb/arg. Never fails, never allocates. */
DX_API void dx_loop_defer(dx_loop *loop, dx_deferred *d, dx_deferred_cb cb, void *arg);

/* Unqueue `d` if queued (e.g. before freeing its memory). */
DX_API void dx_deferred_cancel(dx_deferred *d);

DX_API bool dx_deferred_pending(const dx_deferred *d);

/* ---- before-sleep hooks --------------------------------------------- */

typedef struct dx_hook dx_hook;
typedef void (*dx_hook_cb)(dx_loop *loop, void *arg);

/* A persistent callback run every turn just before the loop flushes
 * streams and sleeps, e.g. to coalesce work produced during the turn.
 * Embedded, fields private. */
struct dx_hook {
  dx_hook *next, *prev; /* NULL when not registered */
  dx_loop *loop;
  dx_hook_cb cb;
  void *arg;
};

/* Register `h` (zeroed, or removed, before; `cb` not NULL). Hooks run in registration order, before
 * the streams' flush, so writes made in a hook go out in the same turn. */
DX_API void dx_loop_hook_add(dx_loop *loop, dx_hook *h, dx_hook_cb cb, void *arg);

/* Unregister; safe inside any hook, including `h` itself. No-op if not
 * registered. */
DX_API void dx_loop_hook_remove(dx_hook *h);

/* ---- raw fd watchers ------------------------------------------------ */

enum { DX_READABLE = 1u, DX_WRITABLE = 2u };

typedef struct dx_io dx_io;
/* `events`: DX_READABLE and/or DX_WRITABLE, only among those requested.
 * Errors and hang-ups (EPOLLERR/EPOLLHUP) are reported as both requested
 * events, so that the read() or write() the callback makes finds them. */
typedef void (*dx_io_cb)(dx_io *io, unsigned events);

/* An fd watcher, embedded in your struct. Fields are private. 24 bytes. */
struct dx_io {
  dx_loop *loop;
  dx_io_cb cb;
  int fd;
  uint8_t events;     /* requested */
  uint8_t registered; /* 1 while the fd is in the epoll set */
  uint16_t reserved;
};

/* Bind `io` to `fd` (not owned: the watcher never closes it). Inactive. */
DX_API void dx_io_init(dx_loop *loop, dx_io *io, int fd, dx_io_cb cb);

/* Watch exactly `events` (DX_READABLE|DX_WRITABLE; replaces the previous
 * set; 0 is dx_io_stop). Level-triggered: the callback repeats every turn
 * while the condition holds, so only ask for DX_WRITABLE while you have
 * something to write. Only changes cause an epoll_ctl. Returns 0, DX_ESYS
 * (logged), DX_EWRONG_THREAD. */
DX_API int dx_io_start(dx_io *io, unsigned events);

/* Stop watching: the fd leaves the epoll set, and events already fetched
 * for it in the current turn are discarded, so the memory may be freed
 * (and the fd closed) right away, even from inside a callback. */
DX_API void dx_io_stop(dx_io *io);

/* ---- signals -------------------------------------------------------- */

typedef void (*dx_signal_cb)(dx_loop *loop, int signo, void *arg);

/* Deliver `signo` (SIGINT, SIGTERM, SIGHUP, ...) as a loop callback through
 * a signalfd; `cb` NULL unregisters. The signal is blocked in the calling
 * thread's mask (and stays blocked after unregistering), so register
 * signals on the main thread BEFORE creating other threads: they inherit
 * the mask, and a thread that does not block the signal would get the
 * default action (usually death) instead. Handle each signal on one loop
 * only. Returns 0, DX_EINVAL (SIGKILL, SIGSTOP, out of range), DX_ENOMEM,
 * DX_ESYS, DX_EWRONG_THREAD. */
DX_API int dx_loop_signal(dx_loop *loop, int signo, dx_signal_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_LOOP_H */
