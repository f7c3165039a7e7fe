/* Streams: reading into the loop's shared buffer, queuing writes, one
 * writev per stream per turn from the before-sleep flush, and the close
 * state machine:
 *
 *   open --close()--> CLOSING --queue empty--> SHUT (FIN sent, discard
 *   input until EOF) --EOF--> DEAD --before sleep--> on_close
 *   open --peer EOF--> CLOSING+PEER_EOF --queue empty--> DEAD
 *   any --abort()/I/O error--> DEAD
 *
 * DEAD streams wait on the loop's pending list for their on_close, which
 * is the last time the stream is touched. */
#include "io/stream.h"

#include <limits.h>
#include <string.h>

#include "common/log.h"
#include "io/loop_internal.h"

enum {
  DX__S_READ = 1u << 0,        /* the user wants on_read */
  DX__S_PENDING = 1u << 1,     /* on the loop's pending list */
  DX__S_CLOSING = 1u << 2,     /* no more writes or on_read */
  DX__S_PEER_EOF = 1u << 3,    /* the peer sent FIN */
  DX__S_SHUT = 1u << 4,        /* our FIN is out; discarding input */
  DX__S_DEAD = 1u << 5,        /* transport closed; on_close pending */
  DX__S_ABOVE = 1u << 6,       /* buffered went above low_water */
  DX__S_WAIT_OUT = 1u << 7,    /* waiting for EPOLLOUT to write */
  DX__S_RD_WANTS_W = 1u << 8,  /* transport read waits for WRITABLE */
  DX__S_WR_WANTS_R = 1u << 9,  /* transport write waits for READABLE */
  DX__S_READ_AGAIN = 1u << 10, /* transport holds input: read without an event */
};

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
/* Reads per readable event when the transport holds more input (TLS
 * records): bounded so one stream cannot hog a turn. */
#define DX__MAX_READS_PER_EVENT 16
#define DX__LINGER_READS 4

_Static_assert(sizeof(dx_stream) <= 80, "dx_stream grew past 80 bytes");

static void dx__stream_on_io(dx_io *io, unsigned events);
static void dx__flush_now(dx_stream *s);
static void dx__gather_flush(dx_stream *s);

/* Bytes the transport holds decrypted, readable without an event. */
static inline size_t dx__tp_pending(dx_stream *s) {
  const dx_transport *t = dx_stream_transport(s);
  return t->pending ? t->pending(s) : 0;
}

static void dx__mark_pending(dx_stream *s) {
  if (s->flags & DX__S_PENDING) return;
  dx_loop *loop = s->io.loop;
  s->flags |= DX__S_PENDING;
  s->pending_next = NULL;
  if (loop->pending_tail)
    loop->pending_tail->pending_next = s;
  else
    loop->pending_head = s;
  loop->pending_tail = s;
}

/* End the stream now: fd closed, queue dropped, on_close queued. */
static void dx__finish(dx_stream *s, int err) {
  if (s->flags & DX__S_DEAD) return;
  dx_io_stop(&s->io);
  dx_stream_transport(s)->close(s);
  s->io.fd = -1;
  dx_wq_clear(&s->wq);
  dx_loop *loop = s->io.loop;
  if (loop->gather_s == s) {
    loop->gather_cnt = 0;
    loop->gather_used = loop->gather_total = 0;
  }
  s->flags = (uint16_t)((s->flags & DX__S_PENDING) | DX__S_DEAD);
  s->err = (int16_t)err;
  dx__mark_pending(s);
}

static void dx__update_interest(dx_stream *s) {
  uint16_t f = s->flags;
  if (f & DX__S_DEAD) return;
  unsigned ev = 0;
  if ((f & DX__S_SHUT) || ((f & DX__S_READ) && !(f & DX__S_CLOSING))) ev |= DX_READABLE;
  if (f & (DX__S_WAIT_OUT | DX__S_RD_WANTS_W)) ev |= DX_WRITABLE;
  if (f & DX__S_WR_WANTS_R) ev |= DX_READABLE;
  int rc = dx_io_start(&s->io, ev);
  if (rc) dx__finish(s, rc);
}

/* ---- reading -------------------------------------------------------- */

static void dx__linger_read(dx_stream *s) {
  dx_loop *loop = s->io.loop;
  for (int i = 0; i < DX__LINGER_READS; i++) {
    loop->stats.read_calls++;
    ssize_t n = dx_stream_transport(s)->read(s, loop->read_buf, loop->read_buf_size);
    if (n > 0) continue; /* discarded: we said goodbye already */
    if (n == DX_EAGAIN) return;
    /* EOF, or a reset from a peer that closed with our FIN unread: both
     * end a close we asked for. */
    dx__finish(s, 0);
    return;
  }
}

static void dx__read(dx_stream *s) {
  dx_loop *loop = s->io.loop;
  if (s->flags & DX__S_SHUT) {
    dx__linger_read(s);
    return;
  }
  for (int i = 0; i < DX__MAX_READS_PER_EVENT; i++) {
    if ((s->flags & (DX__S_READ | DX__S_CLOSING | DX__S_DEAD)) != DX__S_READ) return;
    loop->stats.read_calls++;
    uint8_t *buf = loop->read_buf;
    size_t cap = loop->read_buf_size;
    if (s->cb->read_into) {
      size_t c = 0;
      uint8_t *own = s->cb->read_into(s->user, &c);
      if (own && c) buf = own, cap = c;
    }
    ssize_t n = dx_stream_transport(s)->read(s, buf, cap);
    if (n > 0) {
      if (s->tp == &dx_transport_tcp_ref) loop->gather_s = s;
      s->cb->on_read(s->user, buf, (size_t)n);
      dx__flush_now(s); /* sends what was held */
      loop->gather_s = NULL;
      /* Level-triggered: one read per event is fair; the transport's own
       * buffered input would never raise an event, so drain some of it. */
      if (dx__tp_pending(s) == 0) return;
      continue;
    }
    if (n == 0) {
      s->flags |= DX__S_PEER_EOF | DX__S_CLOSING;
      dx__mark_pending(s);
      return;
    }
    if (n != DX_EAGAIN) dx__finish(s, (int)n);
    return;
  }
  /* Still holding input after the cap: continue before sleeping. */
  s->flags |= DX__S_READ_AGAIN;
  dx__mark_pending(s);
}

static void dx__stream_on_io(dx_io *io, unsigned events) {
  dx_stream *s = dx_container_of(io, dx_stream, io);
  bool read = false;
  if (events & DX_WRITABLE) {
    if (s->flags & DX__S_RD_WANTS_W) {
      s->flags &= (uint16_t)~DX__S_RD_WANTS_W;
      read = true;
    }
    if (s->flags & DX__S_WAIT_OUT) dx__mark_pending(s);
  }
  if (events & DX_READABLE) {
    if (s->flags & DX__S_WR_WANTS_R) {
      s->flags &= (uint16_t)~DX__S_WR_WANTS_R;
      dx__mark_pending(s);
    }
    read = true;
  }
  if (read) dx__read(s);
  /* A pending stream gets its interest from dx__process before the loop
   * sleeps; setting it here too cost a closing connection two epoll_ctl
   * calls (reading off while the close is answered, on again to wait for
   * the peer's FIN). */
  if (!(s->flags & DX__S_PENDING)) dx__update_interest(s);
}

/* ---- flushing ------------------------------------------------------- */

/* One writev of as much of the queue as fits in IOV_MAX pieces. */
static int dx__flush_once(dx_stream *s) {
  dx_loop *loop = s->io.loop;
  struct iovec iov[IOV_MAX];
  size_t total;
  int cnt = dx_wq_iov(&s->wq, iov, IOV_MAX, &total);
  if (cnt == 0) return 0;
  loop->stats.writev_calls++;
  ssize_t n = dx_stream_transport(s)->writev(s, iov, cnt);
  if (n >= 0) {
    loop->stats.writev_bytes += (uint64_t)n;
    dx_wq_consume(&s->wq, (size_t)n);
    /* Short write: the socket is full. Full write with more queued (over
     * IOV_MAX pieces): EPOLLOUT fires at once next turn. */
    if (s->wq.bytes) s->flags |= DX__S_WAIT_OUT;
    return 0;
  }
  if (n == DX_EAGAIN) {
    if (!(s->flags & DX__S_WR_WANTS_R)) s->flags |= DX__S_WAIT_OUT;
    return 0;
  }
  return (int)n;
}

/* What on_read queued (an echo, a reply) goes out right after it returns,
 * not in the before-sleep flush: the bytes are still in cache, and the
 * queue's block returns to the thread's cache at once, so the next
 * connection's answer reuses the same hot block instead of each connection
 * holding one until the end of the turn (the turn's working set was one
 * block per readable connection). Same writev count: a stream is read once
 * per turn. The stream stays pending; the before-sleep pass does the rest
 * (drain, close, interest). */
static void dx__flush_now(dx_stream *s) {
  dx__gather_flush(s);
  if (!s->wq.bytes || (s->flags & (DX__S_DEAD | DX__S_WAIT_OUT | DX__S_WR_WANTS_R))) return;
  int rc = dx__flush_once(s);
  if (rc) dx__finish(s, rc);
}

static void dx__process(dx_stream *s) {
  s->flags &= (uint16_t)~DX__S_PENDING;
  if (s->flags & DX__S_DEAD) {
    char why[256] = "";
    const dx_transport *t = dx_stream_transport(s);
    if (t->release) t->release(s, why, sizeof why);
    /* Last touch: on_close may free s. */
    s->cb->on_close(s->user, s->err, why[0] ? why : NULL);
    return;
  }
  if (s->flags & DX__S_READ_AGAIN) {
    s->flags &= (uint16_t)~DX__S_READ_AGAIN;
    dx__read(s);
    if (s->flags & DX__S_DEAD) return; /* queued again for on_close */
  }

  if (s->wq.bytes && !(s->flags & DX__S_WR_WANTS_R)) {
    int rc = dx__flush_once(s);
    if (rc) {
      dx__finish(s, rc);
      return;
    }
  }
  if (s->wq.bytes == 0) {
    dx_wq_clear(&s->wq); /* frees a reserved block that got nothing */
    s->flags &= (uint16_t)~DX__S_WAIT_OUT;
  }

  if ((s->flags & DX__S_ABOVE) && s->wq.bytes <= s->low_water) {
    s->flags &= (uint16_t)~DX__S_ABOVE;
    if (s->cb->on_drain && !(s->flags & DX__S_CLOSING)) {
      s->cb->on_drain(s->user);
      /* It may have written (pending again), closed or aborted. */
      if (s->flags & (DX__S_DEAD | DX__S_PENDING)) return;
    }
  }

  if ((s->flags & (DX__S_CLOSING | DX__S_SHUT)) == DX__S_CLOSING && s->wq.bytes == 0) {
    if (s->flags & DX__S_PEER_EOF) {
      dx__finish(s, 0);
      return;
    }
    int rc = dx_stream_transport(s)->shutdown(s);
    if (rc == 0) {
      s->flags |= DX__S_SHUT;
    } else if (rc == DX_EAGAIN) {
      if (!(s->flags & DX__S_WR_WANTS_R)) s->flags |= DX__S_WAIT_OUT;
    } else {
      dx__finish(s, rc);
      return;
    }
  }
  dx__update_interest(s);
}

void dx__streams_flush(dx_loop *loop) {
  /* One round over what is pending now; streams that callbacks make
   * pending again go to a fresh list, which the loop runs next round. */
  dx_stream *s = loop->pending_head;
  loop->pending_head = loop->pending_tail = NULL;
  while (s) {
    dx_stream *next = s->pending_next; /* s may be freed by on_close */
    dx__process(s);
    s = next;
  }
}

/* ---- public API ----------------------------------------------------- */

int dx_stream_init(dx_stream *s, dx_loop *loop, int fd, const dx_transport *const *tp,
                   const dx_stream_cb *cb, void *user) {
  DX__CHECK_THREAD(loop);
  memset(s, 0, sizeof *s);
  dx_io_init(loop, &s->io, fd, dx__stream_on_io);
  s->tp = tp;
  s->cb = cb;
  s->user = user;
  dx_wq_init(&s->wq);
  s->low_water = DX_STREAM_LOW_WATER_DEFAULT;
  s->flags = DX__S_READ;
  int rc = dx_io_start(&s->io, DX_READABLE);
  if (rc) s->io.fd = -1;
  return rc;
}

int dx_stream_init_tcp(dx_stream *s, dx_loop *loop, int fd, const dx_stream_cb *cb, void *user) {
  return dx_stream_init(s, loop, fd, &dx_transport_tcp_ref, cb, user);
}

static void dx__after_write(dx_stream *s) {
  if (s->wq.bytes > s->low_water) s->flags |= DX__S_ABOVE;
  /* While waiting for EPOLLOUT (or for input, TLS) a writev would fail:
   * the event makes the stream pending. */
  if (!(s->flags & (DX__S_WAIT_OUT | DX__S_WR_WANTS_R))) dx__mark_pending(s);
}

int dx_stream_write(dx_stream *s, const void *p, size_t n) {
  DX__CHECK_THREAD(s->io.loop);
  if (s->flags & (DX__S_CLOSING | DX__S_DEAD)) return DX_ECLOSED;
  if (n == 0) return 0;
  dx__gather_flush(s);
  int rc = dx_wq_write(&s->wq, p, n);
  if (rc) return rc;
  dx__after_write(s);
  return 0;
}

/* Offer iov[0..n) (total bytes) to the socket now, straight from where it
 * lies, and queue a copy of what the kernel does not take. */
static int dx__write_direct(dx_stream *s, const struct iovec *iov, int n, size_t total) {
  size_t sent = 0;
  /* Plain TCP only: a TLS write copies into records anyway, and its retry
   * rules want the queue to offer the same bytes again. */
  if (total >= DX_STREAM_DIRECT_MIN && s->wq.bytes == 0 && s->tp == &dx_transport_tcp_ref &&
      !(s->flags & (DX__S_WAIT_OUT | DX__S_WR_WANTS_R))) {
    dx_loop *loop = s->io.loop;
    loop->stats.writev_calls++;
    ssize_t r = dx_stream_transport(s)->writev(s, iov, n < IOV_MAX ? n : IOV_MAX);
    if (r >= 0) {
      loop->stats.writev_bytes += (uint64_t)r;
      sent = (size_t)r;
      if (sent == total) return 0;
    } else if (r != DX_EAGAIN) {
      dx__finish(s, (int)r); /* as if the flush had failed: on_close follows */
      return 0;
    }
  }
  /* Queue the rest as one copy (the kernel's buffer is full: the
   * before-sleep flush retries and then waits for EPOLLOUT). */
  size_t rest = total - sent;
  uint8_t *dst = rest <= DX_WQ_MAX_RESERVE ? dx_wq_reserve(&s->wq, rest) : NULL;
  if (!dst) {
    if (sent == 0) return DX_ENOMEM;
    dx__finish(s, DX_ENOMEM); /* half a frame is out: the stream cannot go on */
    return DX_ENOMEM;
  }
  uint8_t *w = dst;
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    const uint8_t *src = iov[i].iov_base;
    if (sent >= len) {
      sent -= len;
      continue;
    }
    memcpy(w, src + sent, len - sent);
    w += len - sent;
    sent = 0;
  }
  dx_wq_commit(&s->wq, rest);
  dx__after_write(s);
  return 0;
}

static bool dx__in_read_buf(const dx_loop *loop, const void *p, size_t n) {
  uintptr_t b = (uintptr_t)loop->read_buf, a = (uintptr_t)p;
  return a >= b && n <= loop->read_buf_size && a - b <= loop->read_buf_size - n;
}

/* Hold a large write made inside on_read until it returns, so that the
 * frames answered from one read leave in one writev. Only what stays valid
 * until then is held: pieces in the loop's read buffer (not read into
 * again before on_read returns), and small pieces copied here. */
static bool dx__gather_add(dx_stream *s, const struct iovec *iov, int n, size_t total) {
  dx_loop *loop = s->io.loop;
  if (s->wq.bytes || (s->flags & (DX__S_WAIT_OUT | DX__S_WR_WANTS_R)) ||
      loop->gather_cnt + n > DX__GATHER_IOV)
    return false;
  int cnt = loop->gather_cnt;
  size_t used = loop->gather_used;
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    if (len == 0) continue;
    struct iovec *g = &loop->gather_iov[cnt++];
    if (dx__in_read_buf(loop, iov[i].iov_base, len)) {
      *g = iov[i];
    } else if (len <= 64 && used + len <= DX__GATHER_BYTES) {
      memcpy(loop->gather_bytes + used, iov[i].iov_base, len);
      g->iov_base = loop->gather_bytes + used;
      g->iov_len = len;
      used += len;
    } else {
      return false; /* nothing committed yet */
    }
  }
  loop->gather_cnt = cnt;
  loop->gather_used = used;
  loop->gather_total += total;
  return true;
}

/* Send what was held, followed by iov[0..n) when given, in one writev. */
static int dx__gather_out(dx_stream *s, const struct iovec *iov, int n, size_t total) {
  dx_loop *loop = s->io.loop;
  struct iovec all[DX__GATHER_IOV + 8];
  int cnt = loop->gather_cnt;
  size_t sum = loop->gather_total + total;
  memcpy(all, loop->gather_iov, (size_t)cnt * sizeof *all);
  loop->gather_cnt = 0;
  loop->gather_used = loop->gather_total = 0;
  if (n > 8) { /* not from ws: send the held part first */
    int rc = cnt ? dx__write_direct(s, all, cnt, sum - total) : 0;
    if (rc || (s->flags & DX__S_DEAD)) return rc ? rc : DX_ECLOSED;
    return dx__write_direct(s, iov, n, total);
  }
  if (n) memcpy(all + cnt, iov, (size_t)n * sizeof *all);
  return dx__write_direct(s, all, cnt + n, sum);
}

static inline void dx__gather_flush(dx_stream *s) {
  dx_loop *loop = s->io.loop;
  if (loop->gather_cnt && loop->gather_s == s) dx__gather_out(s, NULL, 0, 0);
}

int dx_stream_writev(dx_stream *s, const struct iovec *iov, int n) {
  DX__CHECK_THREAD(s->io.loop);
  if (s->flags & (DX__S_CLOSING | DX__S_DEAD)) return DX_ECLOSED;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  if (total == 0) return 0;
  dx_loop *loop = s->io.loop;
  if (loop->gather_s == s) {
    if (total >= DX_STREAM_DIRECT_MIN && dx__gather_add(s, iov, n, total)) return 0;
    if (loop->gather_cnt) return dx__gather_out(s, iov, n, total);
  }
  return dx__write_direct(s, iov, n, total);
}

int dx_stream_write_shared(dx_stream *s, dx_sbuf *b, size_t off, size_t n) {
  DX__CHECK_THREAD(s->io.loop);
  if (s->flags & (DX__S_CLOSING | DX__S_DEAD)) return DX_ECLOSED;
  dx__gather_flush(s);
  int rc = dx_wq_write_shared(&s->wq, b, off, n);
  if (rc) return rc;
  if (n) dx__after_write(s);
  return 0;
}

uint8_t *dx_stream_reserve(dx_stream *s, size_t n) {
  if (dx__loop_assert_thread(s->io.loop)) return NULL;
  if (s->flags & (DX__S_CLOSING | DX__S_DEAD)) return NULL;
  dx__gather_flush(s);
  if (s->flags & DX__S_DEAD) return NULL;
  return dx_wq_reserve(&s->wq, n);
}

void dx_stream_commit(dx_stream *s, size_t n) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  if (n == 0) return;
  dx_wq_commit(&s->wq, n);
  dx__after_write(s);
}

size_t dx_stream_buffered(const dx_stream *s) {
  const dx_loop *loop = s->io.loop;
  return s->wq.bytes + (loop->gather_total && loop->gather_s == s ? loop->gather_total : 0);
}

void dx_stream_flush(dx_stream *s) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  dx__flush_now(s);
}

void dx_stream_set_limits(dx_stream *s, size_t low_water) {
  s->low_water = low_water > UINT32_MAX ? UINT32_MAX : (uint32_t)low_water;
  if (s->wq.bytes > s->low_water) s->flags |= DX__S_ABOVE;
}

void dx_stream_pause_read(dx_stream *s) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  if (!(s->flags & DX__S_READ)) return;
  s->flags &= (uint16_t)~DX__S_READ;
  dx__update_interest(s);
}

void dx_stream_resume_read(dx_stream *s) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  if (s->flags & (DX__S_READ | DX__S_DEAD)) return;
  s->flags |= DX__S_READ;
  dx__update_interest(s);
  if (!(s->flags & (DX__S_CLOSING | DX__S_DEAD)) && dx__tp_pending(s) > 0) {
    s->flags |= DX__S_READ_AGAIN;
    dx__mark_pending(s);
  }
}

bool dx_stream_reading(const dx_stream *s) {
  return (s->flags & (DX__S_READ | DX__S_CLOSING | DX__S_DEAD)) == DX__S_READ;
}

void dx_stream_close(dx_stream *s) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  if (s->flags & (DX__S_CLOSING | DX__S_DEAD)) return;
  s->flags |= DX__S_CLOSING;
  dx__mark_pending(s); /* dx__process sets the interest (see on_io) */
}

void dx_stream_abort(dx_stream *s) {
  DX__CHECK_THREAD_VOID(s->io.loop);
  dx__finish(s, 0);
}

bool dx_stream_closing(const dx_stream *s) {
  return (s->flags & (DX__S_CLOSING | DX__S_DEAD)) != 0;
}

void dx_stream_want(dx_stream *s, unsigned want) {
  if (want & DX_STREAM_READ_WANTS_WRITE) s->flags |= DX__S_RD_WANTS_W;
  if (want & DX_STREAM_WRITE_WANTS_READ) s->flags |= DX__S_WR_WANTS_R;
}
