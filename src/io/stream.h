/* duplex — streams: non-blocking byte pipes with a write queue.
 *
 * A dx_stream wraps a connected, non-blocking socket behind a transport
 * vtable (plain TCP: stream_tcp.c; TLS: tls.c, through the same vtable)
 * and knows nothing about what the bytes mean.
 *
 * Reading: while reading is on, every readable turn the stream reads once
 * (up to the loop's shared read buffer, 512 KiB by default) and calls
 * on_read with the bytes. There are no per-stream read buffers: an idle
 * stream is just this struct (80 bytes).
 *
 * Writing: dx_stream_write* only queue. NOTHING touches the socket inside a
 * write call (except a large dx_stream_writev into an empty queue, and
 * dx_stream_flush); the stream joins the loop's
 * pending list, and right before the loop sleeps every pending stream is flushed with ONE writev of
 * up to IOV_MAX pieces. What on_read queued (a reply) is flushed the same way right after on_read
 * returns, while it is in cache. Whatever the kernel does not take waits for EPOLLOUT and goes out
 * in a later turn, in order.
 *
 * Closing: on_close is called exactly once, always from the loop (never
 * from inside a dx_stream_* call or from inside on_read), during the
 * before-sleep phase of the turn in which the stream ended. Once on_close
 * has been called the stream never touches its memory again: on_close may
 * free the memory holding the stream. Until then the memory must stay
 * valid, so a callback can close or abort its stream and keep using it
 * until it returns. Never free a stream's memory before its on_close.
 *
 * Threads: every function must be called on the loop thread
 * (DX_EWRONG_THREAD otherwise; debug builds abort).
 */
#ifndef DX_IO_STREAM_H
#define DX_IO_STREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "duplex/error.h"
#include "duplex/loop.h"
#include "io/wqueue.h"

typedef struct dx_stream dx_stream;

/* Callbacks. `user` is the pointer given at init. */
typedef struct dx_stream_cb {
  /* Bytes arrived. `data` points into the loop's shared read buffer: it is
   * writable (unmask in place if you like) and valid only during the call;
   * copy what you need to keep. The callback may write, pause, close or
   * abort the stream. Required. */
  void (*on_read)(void *user, uint8_t *data, size_t len);
  /* The stream ended; called exactly once (see the top of this file). err
   * is 0 when it ended cleanly: dx_stream_close finished, dx_stream_abort,
   * or the peer's orderly EOF with nothing left to send. It is negative
   * when an I/O error ended it: DX_ERESET for a connection reset by the
   * peer (including a write failing after the peer left with bytes still
   * queued), DX_ESYS for other errors (errno in the debug log). `why` is
   * the transport's own account of a failure (TLS: "TLS certificate
   * verification failed: ..."), valid during the call, or NULL. The
   * transport's state is already released. Required. */
  void (*on_close)(void *user, int err, const char *why);
  /* Queued bytes fell to the low-water mark or below after having been
   * above it (see dx_stream_set_limits). Not called once closing. May be
   * NULL. */
  void (*on_drain)(void *user);
  /* Before each read: memory of the user's where the next bytes should
   * go instead of the shared buffer (a large message being reassembled:
   * read it in place rather than copy it), with room for *cap bytes, or
   * NULL. on_read then gets exactly that memory. May be NULL. */
  uint8_t *(*read_into)(void *user, size_t *cap);
} dx_stream_cb;

/* Transport vtable. All ops run on the loop thread. A transport with
 * per-connection state (TLS: the SSL object) starts that state with a
 * pointer to its vtable and gives the stream the address of that pointer
 * (see dx_stream_init); the ops get the state back with
 * dx_stream_tstate(). */
typedef struct dx_transport {
  const char *name;
  /* Read up to `cap` bytes into buf. Returns the count (> 0), 0 on orderly
   * EOF, DX_EAGAIN when nothing can be read now, or another negative code
   * (fatal). If the read is blocked on the socket becoming WRITABLE (TLS
   * renegotiation/handshake), call dx_stream_want(s, DX_STREAM_READ_WANTS_WRITE)
   * before returning DX_EAGAIN. */
  ssize_t (*read)(dx_stream *s, uint8_t *buf, size_t cap);
  /* Write the iovecs; returns the byte count taken (>= 0, may be short),
   * DX_EAGAIN, or a fatal negative code. Must never raise SIGPIPE. A write
   * blocked on READABLE sets DX_STREAM_WRITE_WANTS_READ. */
  ssize_t (*writev)(dx_stream *s, const struct iovec *iov, int iovcnt);
  /* Half-close the sending side once everything was written (TCP:
   * shutdown(SHUT_WR); TLS: close_notify). 0 when done, DX_EAGAIN to be
   * called again after the wanted event, or negative (fatal). */
  int (*shutdown)(dx_stream *s);
  /* Release transport state and close s->io.fd. Called exactly once. */
  void (*close)(dx_stream *s);
  /* Bytes the transport already holds decrypted (TLS: SSL_pending), read
   * without waiting for the socket. NULL when never any (TCP). */
  size_t (*pending)(dx_stream *s);
  /* After close, right before on_close: copy a sentence saying why the
   * transport failed into why[0..cap) (or leave why[0] = 0), then free
   * the state close kept for it. NULL when there is none (TCP). */
  void (*release)(dx_stream *s, char *why, size_t cap);
} dx_transport;

/* dx_stream_want() flags for transports. */
enum {
  DX_STREAM_READ_WANTS_WRITE = 1u << 0,
  DX_STREAM_WRITE_WANTS_READ = 1u << 1,
};

/* The stream. Embed it in your connection struct; fields are private. */
struct dx_stream {
  dx_io io; /* the fd and its watcher */
  /* The transport in one word: *tp is its vtable, and tp itself its
   * per-connection state, which begins with that vtable pointer (TCP has
   * none: tp is &dx_transport_tcp_ref). NULL until dx_stream_init. */
  const dx_transport *const *tp;
  const dx_stream_cb *cb;  /* not copied: must outlive the stream */
  void *user;              /* passed to callbacks */
  dx_wqueue wq;            /* unsent bytes */
  dx_stream *pending_next; /* link in the loop's pending list */
  uint32_t low_water;      /* on_drain threshold, bytes */
  uint16_t flags;          /* DX__S_* in stream.c */
  int16_t err;             /* why it ended, for on_close */
};

/* The DX_E* code for a failed socket call's errno: DX_ERESET when the
 * peer reset or left (ECONNRESET, EPIPE, ECONNABORTED), else DX_ESYS. */
static inline int dx__io_error(int e) {
  return e == ECONNRESET || e == EPIPE || e == ECONNABORTED ? DX_ERESET : DX_ESYS;
}

/* The plain TCP (or any socket: unix, socketpair) transport, and the
 * pointer to it that a TCP stream's tp points to. */
extern const dx_transport dx_transport_tcp;
extern const dx_transport *const dx_transport_tcp_ref;

/* The stream's transport vtable. */
static inline const dx_transport *dx_stream_transport(const dx_stream *s) { return *s->tp; }

/* For transports: the stream's transport state (what began with the
 * vtable pointer given to dx_stream_init). */
static inline void *dx_stream_tstate(const dx_stream *s) { return (void *)(uintptr_t)s->tp; }

/* Default low-water mark for on_drain. */
#define DX_STREAM_LOW_WATER_DEFAULT (16u * 1024u)

/* Set up `s` over `fd` (connected, O_NONBLOCK, e.g. from accept4 with
 * SOCK_NONBLOCK) with transport `tp`, and start reading. `tp` points to a
 * pointer to the transport's vtable: the first member of its
 * per-connection state (which the ops get back with dx_stream_tstate), or
 * a static pointer for a transport without state (&dx_transport_tcp_ref).
 * `cb` must outlive the stream (use a static const struct). On success the
 * stream owns fd and will close it; on failure (DX_ESYS: the fd could not
 * join epoll; DX_EWRONG_THREAD) the caller still owns it and `s` is
 * unused. */
int dx_stream_init(dx_stream *s, dx_loop *loop, int fd, const dx_transport *const *tp,
                   const dx_stream_cb *cb, void *user);

/* dx_stream_init with dx_transport_tcp. */
int dx_stream_init_tcp(dx_stream *s, dx_loop *loop, int fd, const dx_stream_cb *cb, void *user);

/* Copy n bytes into the queue. Returns 0, DX_ECLOSED (closing or closed:
 * nothing queued), DX_ENOMEM (nothing queued). */
int dx_stream_write(dx_stream *s, const void *p, size_t n);

/* Writes of at least this many bytes may go to the socket at once (see
 * dx_stream_writev). */
#define DX_STREAM_DIRECT_MIN (16u * 1024u)

/* Queue the bytes of iov[0..n) in this order, like dx_stream_write of each.
 * A large write (DX_STREAM_DIRECT_MIN bytes or more in all) into an empty
 * queue on plain TCP goes to the socket at once, straight from the
 * caller's memory, and only what the kernel does not take is copied into
 * the queue: a large message costs no copy of ours. The caller's memory is
 * not used after the call, except pieces inside the loop's read buffer
 * written from this stream's on_read: those are held and sent with the
 * read's other large writes in one writev when on_read returns. Returns
 * 0, DX_ECLOSED (nothing queued) or DX_ENOMEM (nothing queued, unless part
 * was already written: then the stream is aborted). A socket error during
 * the direct write ends the stream like a failed flush (on_close follows
 * from the loop) and returns 0. At most 1 GiB that the kernel does not
 * take. */
int dx_stream_writev(dx_stream *s, const struct iovec *iov, int n);

/* Queue b->data[off, off+n) by reference (takes a reference on b, dropped
 * once those bytes are sent or dropped). Encode a broadcast once, queue it
 * on many streams. Returns 0, DX_ECLOSED, DX_ENOMEM, DX_EINVAL (range
 * outside b->size or beyond 4 GiB). */
int dx_stream_write_shared(dx_stream *s, dx_sbuf *b, size_t off, size_t n);

/* Reserve n contiguous bytes at the end of the queue, to encode or mask
 * straight into it (a client: frame header, then dx_mask_copy of the
 * payload); then dx_stream_commit(s, m) queues the first m <= n of them.
 * No other call on this stream may come in between, and commit only
 * follows a reserve that succeeded. Returns NULL when closing/closed, out of
 * memory, or n > 1 GiB (nothing reserved). */
uint8_t *dx_stream_reserve(dx_stream *s, size_t n);
void dx_stream_commit(dx_stream *s, size_t n);

/* Bytes queued and not yet taken by the kernel. Includes bytes queued this
 * turn, which the before-sleep flush has not tried to send yet. */
size_t dx_stream_buffered(const dx_stream *s);

/* Offer the queue to the kernel now (one writev) instead of at the end of
 * the turn, unless the stream waits for EPOLLOUT or is closed. For a sender
 * about to judge the peer slow by dx_stream_buffered. A socket error ends
 * the stream like a failed flush (on_close follows from the loop). */
void dx_stream_flush(dx_stream *s);

/* on_drain fires when buffered bytes drop to <= low_water after having been
 * above it (checked after each flush). Default DX_STREAM_LOW_WATER_DEFAULT
 * (16 KiB). Values above 4 GiB are clamped. */
void dx_stream_set_limits(dx_stream *s, size_t low_water);

/* Input backpressure: stop/restart reading (and on_read). Pausing keeps the
 * fd in epoll only if a write is waiting. Both are idempotent; no-ops once
 * closing. */
void dx_stream_pause_read(dx_stream *s);
void dx_stream_resume_read(dx_stream *s);
bool dx_stream_reading(const dx_stream *s);

/* Graceful close: no more on_read, no more writes accepted (DX_ECLOSED);
 * the queue is flushed, then the sending side is shut down (FIN), then
 * incoming bytes are read and discarded until the peer's EOF (closing with
 * unread input would make the kernel send a reset that can destroy the
 * last bytes in flight), then the fd is closed and on_close(user, 0) runs.
 * A peer that stops reading or never closes keeps this pending forever:
 * bound it with a timer that calls dx_stream_abort. Idempotent. */
void dx_stream_close(dx_stream *s);

/* Close now: drop the queue, close the fd; on_close(user, 0) follows in
 * the before-sleep phase. Works during a graceful close too. Idempotent. */
void dx_stream_abort(dx_stream *s);

/* True once close/abort was called or the stream ended (writes fail). */
bool dx_stream_closing(const dx_stream *s);

/* The socket fd (-1 after it was closed). */
static inline int dx_stream_fd(const dx_stream *s) { return s->io.fd; }
static inline dx_loop *dx_stream_loop(const dx_stream *s) { return s->io.loop; }

/* For transports: record what a DX_EAGAIN from read/writev is waiting for
 * (DX_STREAM_READ_WANTS_WRITE, DX_STREAM_WRITE_WANTS_READ). */
void dx_stream_want(dx_stream *s, unsigned want);

#endif /* DX_IO_STREAM_H */
