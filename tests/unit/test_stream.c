/* Streams over socketpairs and loopback TCP: one writev per turn, blocking
 * writes finishing through EPOLLOUT, on_drain, shared buffers, every way a
 * stream ends, and the listener. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "duplex/loop.h"
#include "common/log.h"
#include "io/listener.h"
#include "io/loop_internal.h"
#include "io/stream.h"
#include "test.h"

/* A test connection: a stream plus what its callbacks saw. */
typedef struct conn {
  dx_stream s;
  uint8_t *rx; /* received bytes */
  size_t rx_len, rx_cap;
  int closes, close_err, drains, reads;
  /* behaviours */
  bool close_in_read, abort_in_read, echo, free_on_close, mutate_in_read;
  size_t chunk_echo; /* echo as framed dx_stream_writev pieces of this size */
  bool abort_after_chunks;
  int *freed; /* set when freed in on_close */
} conn;

static void c_on_read(void *user, uint8_t *data, size_t len) {
  conn *c = user;
  c->reads++;
  if (c->rx_len + len > c->rx_cap) {
    c->rx_cap = (c->rx_len + len) * 2;
    c->rx = realloc(c->rx, c->rx_cap);
  }
  memcpy(c->rx + c->rx_len, data, len);
  c->rx_len += len;
  if (c->mutate_in_read) data[0] ^= 0xff; /* the buffer is ours to scribble on */
  if (c->echo) CHECK_EQ_INT(dx_stream_write(&c->s, data, len), 0);
  if (c->chunk_echo) {
    /* Like ws: a header on the stack, the payload where it lies. */
    size_t held = dx_stream_buffered(&c->s);
    for (size_t off = 0; off < len; off += c->chunk_echo) {
      uint8_t hdr[2] = {'<', (uint8_t)(off / c->chunk_echo)};
      size_t n = len - off < c->chunk_echo ? len - off : c->chunk_echo;
      struct iovec iov[2] = {{hdr, 2}, {data + off, n}};
      CHECK_EQ_INT(dx_stream_writev(&c->s, iov, 2), 0);
      memset(hdr, 0, sizeof hdr);                /* the stream kept its own copy */
      if (off == 0 && n >= DX_STREAM_DIRECT_MIN) /* held, and counted */
        CHECK(dx_stream_buffered(&c->s) == held + n + 2);
    }
    if (c->abort_after_chunks) {
      dx_stream_abort(&c->s);
    } else {
      CHECK_EQ_INT(dx_stream_write(&c->s, "END", 3), 0); /* after the held frames */
    }
  }
  if (c->close_in_read) {
    dx_stream_close(&c->s);
    dx_stream_close(&c->s); /* idempotent */
    CHECK_EQ_INT(dx_stream_write(&c->s, "late", 4), DX_ECLOSED);
    CHECK(dx_stream_closing(&c->s)); /* still valid memory */
  }
  if (c->abort_in_read) {
    dx_stream_abort(&c->s);
    CHECK_EQ_INT(dx_stream_write(&c->s, "late", 4), DX_ECLOSED);
    CHECK_EQ_INT(dx_stream_fd(&c->s), -1);
  }
}

static void c_on_close(void *user, int err, const char *why) {
  (void)why;
  conn *c = user;
  c->closes++;
  c->close_err = err;
  if (c->free_on_close) {
    if (c->freed) *c->freed = 1;
    free(c->rx);
    free(c); /* allowed: the stream never touches itself after on_close */
  }
}

static void c_on_drain(void *user) { ((conn *)user)->drains++; }

static const dx_stream_cb conn_cb = {c_on_read, c_on_close, c_on_drain, NULL};

static conn *conn_new(dx_loop *loop, int fd) {
  conn *c = calloc(1, sizeof *c);
  CHECK_EQ_INT(dx_stream_init_tcp(&c->s, loop, fd, &conn_cb, c), 0);
  return c;
}

static void conn_free(conn *c) {
  free(c->rx);
  free(c);
}

static void pair(int sv[2]) {
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void spin(dx_loop *loop, int turns) {
  for (int i = 0; i < turns; i++) dx_loop_run_once(loop, 0);
}

/* Run turns until cond() or a deadline. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
  do {                                                                                             \
    dx_loop_update_time(loop);                                                                     \
    uint64_t end_ = dx_loop_now(loop) + (ms);                                                      \
    while (!(cond) && dx_loop_now(loop) < end_) dx_loop_run_once((loop), 10);                      \
  } while (0)

static size_t drain_fd(int fd, uint8_t *buf, size_t cap) {
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, buf + got, cap - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  return got;
}

TEST(size_of_stream) {
  printf("sizeof(dx_stream) = %zu, sizeof(dx_io) = %zu, sizeof(dx_timer) = %zu\n",
         sizeof(dx_stream), sizeof(dx_io), sizeof(dx_timer));
  CHECK(sizeof(dx_stream) <= 96);
}

TEST(many_small_writes_one_writev) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  dx_loop_stats *st = dx__loop_stats(loop);
  uint64_t before = st->writev_calls;
  char expect[1000 * 4];
  for (int i = 0; i < 1000; i++) {
    char piece[4] = {(char)('a' + i % 26), (char)i, (char)(i >> 8), '|'};
    memcpy(expect + i * 4, piece, 4);
    CHECK_EQ_INT(dx_stream_write(&a->s, piece, 4), 0);
  }
  CHECK_EQ_INT(dx_stream_buffered(&a->s), 4000);
  CHECK_EQ_INT(st->writev_calls, before); /* nothing written inside write calls */
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(st->writev_calls, before + 1);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), 0);
  uint8_t got[8192];
  CHECK_EQ_INT(drain_fd(sv[1], got, sizeof got), 4000);
  CHECK_MEM(got, expect, 4000);

  /* Idle turns write nothing. */
  spin(loop, 3);
  CHECK_EQ_INT(st->writev_calls, before + 1);
  dx_stream_abort(&a->s);
  spin(loop, 1);
  CHECK_EQ_INT(a->closes, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

/* Writes from several callbacks of one turn (three timers, a deferred
 * call) still leave in one writev. */
typedef struct multi multi;
typedef struct mtimer {
  dx_timer t;
  multi *m;
  int i;
} mtimer;
struct multi {
  mtimer t[3];
  dx_deferred d;
  conn *c;
};

static void multi_defer(dx_loop *loop, void *arg) {
  multi *m = arg;
  dx_stream_write(&m->c->s, "D", 1);
}

static void multi_timer(dx_timer *t) {
  mtimer *mt = dx_container_of(t, mtimer, t);
  if (mt->i == 2) dx_loop_defer(t->loop, &mt->m->d, multi_defer, mt->m);
  dx_stream_write(&mt->m->c->s, "T", 1);
}

TEST(writes_across_callbacks_one_writev) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  multi m;
  memset(&m, 0, sizeof m);
  m.c = conn_new(loop, sv[0]);
  for (int i = 0; i < 3; i++) {
    m.t[i].m = &m;
    m.t[i].i = i;
    dx_timer_init(loop, &m.t[i].t, multi_timer);
    dx_timer_start(&m.t[i].t, 0, 0);
  }
  uint64_t before = dx__loop_stats(loop)->writev_calls;
  dx_loop_run_once(loop, 0); /* fires timers; the flush comes before the next sleep */
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(dx__loop_stats(loop)->writev_calls, before + 1);
  uint8_t got[16];
  CHECK_EQ_INT(drain_fd(sv[1], got, sizeof got), 4);
  CHECK_MEM(got, "TTTD", 4);
  dx_stream_abort(&m.c->s);
  spin(loop, 1);
  conn_free(m.c);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(large_write_blocks_then_completes) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  conn *a = conn_new(loop, sv[0]);
  conn *b = conn_new(loop, sv[1]);
  enum { BIG = 8 * 1024 * 1024 };
  uint8_t *data = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) data[i] = (uint8_t)(i * 7 + (i >> 13));
  CHECK_EQ_INT(dx_stream_write(&a->s, data, BIG), 0);
  /* Mixed with small writes behind it, order kept. */
  CHECK_EQ_INT(dx_stream_write(&a->s, "tail", 4), 0);
  dx_loop_run_once(loop, 0);
  CHECK(dx_stream_buffered(&a->s) > 0); /* the kernel took only part */
  CHECK(a->s.io.events & DX_WRITABLE);  /* waiting for EPOLLOUT */
  CHECK_EQ_INT(a->drains, 0);
  RUN_UNTIL(loop, b->rx_len == BIG + 4, 10000);
  CHECK_EQ_INT(b->rx_len, BIG + 4);
  CHECK(b->rx_len == BIG + 4 && memcmp(b->rx, data, BIG) == 0 &&
        memcmp(b->rx + BIG, "tail", 4) == 0);
  spin(loop, 2);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), 0);
  CHECK_EQ_INT(a->drains, 1);
  CHECK(!(a->s.io.events & DX_WRITABLE)); /* EPOLLOUT off again */
  CHECK(dx_wq_empty(&a->s.wq));           /* no block kept when idle */
  printf("8 MiB through a 4 KiB socket buffer: %llu writev calls\n",
         (unsigned long long)dx__loop_stats(loop)->writev_calls);
  dx_stream_abort(&a->s);
  dx_stream_abort(&b->s);
  spin(loop, 1);
  CHECK_EQ_INT(a->closes, 1);
  CHECK_EQ_INT(b->closes, 1);
  conn_free(a);
  conn_free(b);
  free(data);
  dx_loop_free(loop);
}

/* dx_stream_writev: a large write into an empty queue goes out at once
 * from the caller's memory; what the kernel does not take is copied, in
 * order, ahead of later writes; small writes and writes behind a backlog
 * only queue. */
TEST(writev_large_goes_out_at_once_rest_is_copied) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  conn *a = conn_new(loop, sv[0]);
  conn *b = conn_new(loop, sv[1]);
  dx_loop_stats *st = dx__loop_stats(loop);

  /* Small: queued, nothing written inside the call. */
  uint64_t before = st->writev_calls;
  struct iovec tiny[2] = {{"ab", 2}, {"cd", 2}};
  CHECK_EQ_INT(dx_stream_writev(&a->s, tiny, 2), 0);
  CHECK_EQ_INT(st->writev_calls, before);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), 4);
  RUN_UNTIL(loop, b->rx_len == 4, 2000);
  CHECK_MEM(b->rx, "abcd", 4);

  /* Large: header + payload straight to the socket, the rest copied; the
   * caller's memory is scribbled on after the call and must not matter. */
  enum { BIG = 1024 * 1024 };
  uint8_t *data = malloc(BIG), *expect = malloc(BIG + 8);
  for (size_t i = 0; i < BIG; i++) data[i] = (uint8_t)(i * 13 + (i >> 11));
  memcpy(expect, "HDR!", 4);
  memcpy(expect + 4, data, BIG);
  memcpy(expect + 4 + BIG, "tail", 4);
  before = st->writev_calls;
  struct iovec big[2] = {{"HDR!", 4}, {data, BIG}};
  CHECK_EQ_INT(dx_stream_writev(&a->s, big, 2), 0);
  CHECK_EQ_INT(st->writev_calls, before + 1); /* written inside the call */
  size_t left = dx_stream_buffered(&a->s);
  CHECK(left > 0 && left < BIG + 4); /* the kernel took a part */
  memset(data, 0xee, BIG);
  /* Behind a backlog even a large write only queues. */
  CHECK_EQ_INT(dx_stream_writev(&a->s, big, 1), 0);
  CHECK_EQ_INT(st->writev_calls, before + 1);
  CHECK_EQ_INT(dx_stream_write(&a->s, "tail", 4), 0);
  RUN_UNTIL(loop, b->rx_len == 4 + BIG + 4 + 4 + 4, 10000);
  CHECK_EQ_INT(b->rx_len, 4 + BIG + 4 + 4 + 4);
  CHECK(memcmp(b->rx + 4, expect, 4 + BIG) == 0);
  CHECK_MEM(b->rx + 4 + 4 + BIG, "HDR!tail", 8);
  spin(loop, 2);
  CHECK(dx_wq_empty(&a->s.wq));

  /* Closed: refused, nothing written. */
  dx_stream_close(&a->s);
  CHECK_EQ_INT(dx_stream_writev(&a->s, big, 2), DX_ECLOSED);
  dx_stream_abort(&a->s);
  dx_stream_abort(&b->s);
  spin(loop, 1);
  CHECK_EQ_INT(a->closes, 1);
  conn_free(a);
  conn_free(b);
  free(data);
  free(expect);
  dx_loop_free(loop);
}

/* A direct write to a peer that is gone ends the stream like a failed
 * flush: the call returns 0, on_close reports the error from the loop. */
TEST(writev_direct_to_vanished_peer) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  close(sv[1]);
  static uint8_t big[64 * 1024];
  struct iovec iov[1] = {{big, sizeof big}};
  CHECK_EQ_INT(dx_stream_writev(&a->s, iov, 1), 0);
  CHECK(dx_stream_closing(&a->s));
  CHECK_EQ_INT(a->closes, 0); /* never from inside the call */
  spin(loop, 1);
  CHECK_EQ_INT(a->closes, 1);
  CHECK_EQ_INT(a->close_err, DX_ERESET);
  conn_free(a);
  dx_loop_free(loop);
}

/* Large writes made inside on_read from the read buffer are held and leave
 * together in one writev, before a small write behind them. */
TEST(large_writes_in_on_read_one_writev) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  int big = 1 << 20; /* room for the whole answer in one writev */
  CHECK_EQ_INT(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
  conn *a = conn_new(loop, sv[0]);
  a->chunk_echo = 20000;
  dx_loop_stats *st = dx__loop_stats(loop);
  static uint8_t msg[60000], got[60000 + 64];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7);
  CHECK_EQ_INT(write(sv[1], msg, sizeof msg), (ssize_t)sizeof msg);
  uint64_t before = st->writev_calls;
  RUN_UNTIL(loop, a->rx_len == sizeof msg, 2000);
  CHECK_EQ_INT(a->rx_len, sizeof msg);
  /* Per read: the held frames in one writev (sent when END came, to keep
   * the order), then END from the queue in the after-read flush. */
  CHECK_EQ_INT(st->writev_calls, before + 2 * (uint64_t)a->reads);
  size_t n = 0;
  RUN_UNTIL(loop, (n += drain_fd(sv[1], got + n, sizeof got - n)) >= sizeof msg + 3, 2000);
  /* Each read's bytes went out as <k + chunk frames, then END. */
  if (a->reads == 1) {
    CHECK_EQ_INT(n, sizeof msg + 3 * 2 + 3);
    for (int k = 0; k < 3; k++) {
      CHECK(got[k * 20002] == '<' && got[k * 20002 + 1] == k);
      CHECK_MEM(got + k * 20002 + 2, msg + k * 20000, 20000);
    }
    CHECK_MEM(got + 3 * 20002, "END", 3);
  }
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);

  /* Aborted with writes held: nothing goes out, nothing is touched. */
  pair(sv);
  a = conn_new(loop, sv[0]);
  a->chunk_echo = 20000;
  a->abort_after_chunks = true;
  CHECK_EQ_INT(write(sv[1], msg, sizeof msg), (ssize_t)sizeof msg);
  RUN_UNTIL(loop, a->closes == 1, 2000);
  CHECK_EQ_INT(a->closes, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

/* What on_read queues goes out right after it returns, one writev per
 * read, and the block is back in the cache before the turn ends. */
TEST(answer_flushed_after_on_read) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  a->echo = true;
  dx_loop_stats *st = dx__loop_stats(loop);
  CHECK_EQ_INT(write(sv[1], "ping", 4), 4);
  uint64_t before = st->writev_calls;
  RUN_UNTIL(loop, a->reads == 1, 2000);
  CHECK_EQ_INT(st->writev_calls, before + 1);
  CHECK(dx_wq_empty(&a->s.wq));
  uint8_t got[8];
  CHECK_EQ_INT(drain_fd(sv[1], got, sizeof got), 4);
  CHECK_MEM(got, "ping", 4);
  spin(loop, 2);
  CHECK_EQ_INT(st->writev_calls, before + 1); /* nothing left for the before-sleep pass */
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(drain_low_water) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  dx_stream_set_limits(&a->s, 100);
  dx_stream_write(&a->s, "0123456789", 10);
  spin(loop, 2);
  CHECK_EQ_INT(a->drains, 0); /* never above 100 */
  char big[500] = {0};
  dx_stream_write(&a->s, big, sizeof big);
  spin(loop, 2);
  CHECK_EQ_INT(a->drains, 1);
  uint8_t got[1024];
  CHECK_EQ_INT(drain_fd(sv[1], got, sizeof got), 510);
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(shared_buffer_refcount) {
  dx_loop *loop = dx_loop_new(NULL);
  enum { N = 10 };
  int sv[N][2];
  conn *c[N];
  dx_sbuf *b = dx_sbuf_new(1000);
  for (int i = 0; i < 1000; i++) b->data[i] = (uint8_t)i;
  b->len = 1000;
  for (int i = 0; i < N; i++) {
    pair(sv[i]);
    c[i] = conn_new(loop, sv[i][0]);
  }
  /* Stream 0 cannot take it all: its peer never reads. */
  int small = 4096;
  setsockopt(sv[0][0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  for (int r = 0; r < 200; r++) CHECK_EQ_INT(dx_stream_write_shared(&c[0]->s, b, 0, 1000), 0);
  for (int i = 1; i < N; i++) {
    CHECK_EQ_INT(dx_stream_write(&c[i]->s, "hdr", 3), 0);
    CHECK_EQ_INT(dx_stream_write_shared(&c[i]->s, b, 10, 990), 0);
    CHECK_EQ_INT(dx_stream_write(&c[i]->s, "end", 3), 0);
  }
  CHECK_EQ_INT(dx_stream_write_shared(&c[1]->s, b, 990, 11), DX_EINVAL);
  CHECK_EQ_INT(b->refs, 1 + 200 + (N - 1));
  dx_loop_run_once(loop, 0);
  CHECK(b->refs > 1); /* stream 0 still holds some */
  CHECK(b->refs < 1 + 200);
  for (int i = 1; i < N; i++) {
    uint8_t got[2048];
    CHECK_EQ_INT(drain_fd(sv[i][1], got, sizeof got), 996);
    CHECK_MEM(got, "hdr", 3);
    CHECK_MEM(got + 3, b->data + 10, 990);
    CHECK_MEM(got + 993, "end", 3);
  }
  /* Aborting the stuck stream drops its references. */
  dx_stream_abort(&c[0]->s);
  CHECK_EQ_INT(b->refs, 1);
  dx_sbuf_unref(b); /* the last one: freed (ASan checks) */
  for (int i = 1; i < N; i++) dx_stream_abort(&c[i]->s);
  spin(loop, 1);
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(c[i]->closes, 1);
    conn_free(c[i]);
    close(sv[i][1]);
  }
  dx_loop_free(loop);
}

TEST(reserve_commit) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  uint8_t *p = dx_stream_reserve(&a->s, 100);
  CHECK(p != NULL);
  const uint8_t key[4] = {1, 2, 3, 4};
  const char *msg = "masked while copied";
  size_t n = strlen(msg);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)msg[i] ^ key[i & 3];
  dx_stream_commit(&a->s, n);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), n);
  /* A reservation that gets nothing leaves nothing. */
  CHECK(dx_stream_reserve(&a->s, 64 * 1024) != NULL);
  dx_stream_commit(&a->s, 0);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), n);
  dx_loop_run_once(loop, 0);
  uint8_t got[64];
  CHECK_EQ_INT(drain_fd(sv[1], got, sizeof got), n);
  for (size_t i = 0; i < n; i++) got[i] ^= key[i & 3];
  CHECK_MEM(got, msg, n);
  CHECK(dx_wq_empty(&a->s.wq));
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(peer_close_calls_on_close_once) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  CHECK_EQ_INT(write(sv[1], "bye", 3), 3);
  close(sv[1]);
  RUN_UNTIL(loop, a->closes > 0, 1000);
  spin(loop, 3);
  CHECK_EQ_INT(a->closes, 1);
  CHECK_EQ_INT(a->close_err, 0);
  CHECK_EQ_INT(a->rx_len, 3);
  CHECK_EQ_INT(dx_stream_write(&a->s, "x", 1), DX_ECLOSED);
  conn_free(a);
  dx_loop_free(loop);
}

TEST(close_inside_on_read_then_free) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2], freed = 0;
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  a->close_in_read = true;
  a->free_on_close = true;
  a->freed = &freed;
  CHECK_EQ_INT(write(sv[1], "hello", 5), 5);
  dx_loop_run_once(loop, 100); /* on_read closes; FIN goes out before sleep */
  CHECK_EQ_INT(freed, 0);      /* lingering for the peer's EOF */
  uint8_t buf[16];
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 0); /* we see its FIN */
  CHECK_EQ_INT(write(sv[1], "ignored", 7), 7);   /* discarded while lingering */
  close(sv[1]);
  RUN_UNTIL(loop, freed, 1000);
  CHECK_EQ_INT(freed, 1);
  spin(loop, 2);
  dx_loop_free(loop);
}

/* A connection that answers and closes inside on_read, as a WebSocket
 * answering a close frame does, keeps its epoll registration until it
 * ends: one ADD when it starts, one DEL when it ends. (Interest is set
 * once per turn; it used to drop reading while the answer went out and
 * take it back to wait for the peer's FIN: four epoll_ctl calls.) */
TEST(close_in_on_read_costs_two_epoll_ctl) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_loop_stats *st = dx__loop_stats(loop);
  int sv[2];
  pair(sv);
  uint64_t before = st->epoll_ctl;
  conn *a = conn_new(loop, sv[0]);
  a->echo = true;
  a->close_in_read = true;
  CHECK_EQ_INT(write(sv[1], "bye", 3), 3);
  CHECK_EQ_INT(shutdown(sv[1], SHUT_WR), 0); /* the peer's FIN follows its last bytes */
  RUN_UNTIL(loop, a->closes, 1000);
  CHECK_EQ_INT(a->closes, 1);
  CHECK_EQ_INT(a->close_err, 0);
  uint8_t buf[16];
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 3); /* the answer, then our FIN */
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 0);
  CHECK_EQ_INT(st->epoll_ctl - before, 2);
  close(sv[1]);
  conn_free(a);
  dx_loop_free(loop);
}

TEST(abort_inside_on_read_then_free) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2], freed = 0;
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  a->abort_in_read = true;
  a->free_on_close = true;
  a->freed = &freed;
  CHECK_EQ_INT(dx_stream_write(&a->s, "queued", 6), 0);
  CHECK_EQ_INT(write(sv[1], "hello", 5), 5);
  dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(freed, 1); /* on_close in the same turn, before sleep */
  uint8_t buf[16];
  /* Our queued bytes were written before the read (flush precedes the
   * wait), then EOF. */
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 6);
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 0);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(graceful_close_delivers_everything) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  conn *a = conn_new(loop, sv[0]);
  conn *b = conn_new(loop, sv[1]);
  enum { LEN = 300000 };
  uint8_t *data = malloc(LEN);
  for (int i = 0; i < LEN; i++) data[i] = (uint8_t)(i % 251);
  dx_stream_write(&a->s, data, LEN);
  dx_stream_close(&a->s);
  CHECK_EQ_INT(dx_stream_write(&a->s, "x", 1), DX_ECLOSED);
  RUN_UNTIL(loop, a->closes && b->closes, 5000);
  CHECK_EQ_INT(b->rx_len, LEN);
  CHECK(b->rx_len == LEN && memcmp(b->rx, data, LEN) == 0);
  CHECK_EQ_INT(b->closes, 1); /* saw EOF, nothing to send: clean */
  CHECK_EQ_INT(b->close_err, 0);
  CHECK_EQ_INT(a->closes, 1); /* got b's EOF while lingering */
  CHECK_EQ_INT(a->close_err, 0);
  CHECK_EQ_INT(a->drains, 0); /* not called once closing */
  conn_free(a);
  conn_free(b);
  free(data);
  dx_loop_free(loop);
}

TEST(pause_and_resume_read) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  dx_stream_pause_read(&a->s);
  CHECK(!dx_stream_reading(&a->s));
  CHECK(!a->s.io.registered); /* nothing to wait for: out of epoll */
  CHECK_EQ_INT(write(sv[1], "data", 4), 4);
  spin(loop, 3);
  CHECK_EQ_INT(a->reads, 0);
  dx_stream_resume_read(&a->s);
  CHECK(dx_stream_reading(&a->s));
  RUN_UNTIL(loop, a->reads > 0, 1000);
  CHECK_EQ_INT(a->rx_len, 4);
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(read_buffer_is_writable_and_shared) {
  dx_loop *loop = dx_loop_new(&(dx_loop_opts){.read_buffer_size = 1024});
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  a->mutate_in_read = true;
  uint8_t data[5000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)i;
  CHECK_EQ_INT(write(sv[1], data, sizeof data), (ssize_t)sizeof data);
  RUN_UNTIL(loop, a->rx_len == sizeof data, 1000);
  CHECK_EQ_INT(a->rx_len, sizeof data);
  CHECK(a->reads >= 5); /* at most 1024 bytes per call */
  CHECK_MEM(a->rx, data, sizeof data);
  dx_stream_abort(&a->s);
  spin(loop, 1);
  conn_free(a);
  close(sv[1]);
  dx_loop_free(loop);
}

TEST(write_to_vanished_peer_reports_error) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  dx_stream_pause_read(&a->s); /* so only the write can notice */
  close(sv[1]);
  CHECK_EQ_INT(dx_stream_write(&a->s, "into the void", 13), 0);
  RUN_UNTIL(loop, a->closes > 0, 1000);
  CHECK_EQ_INT(a->closes, 1);
  CHECK_EQ_INT(a->close_err, DX_ERESET); /* EPIPE, and no SIGPIPE */
  conn_free(a);
  dx_loop_free(loop);
}

TEST(more_pieces_than_iov_max) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  pair(sv);
  conn *a = conn_new(loop, sv[0]);
  conn *b = conn_new(loop, sv[1]);
  dx_sbuf *buf = dx_sbuf_new(2);
  memcpy(buf->data, "ab", 2);
  for (int i = 0; i < 3000; i++)
    CHECK_EQ_INT(dx_stream_write_shared(&a->s, buf, (size_t)i & 1, 1), 0);
  /* run_once flushes before its wait (IOV_MAX pieces), EPOLLOUT fires at
   * once, and the end-of-turn flush sends the next IOV_MAX. */
  uint64_t before = dx__loop_stats(loop)->writev_calls;
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(dx__loop_stats(loop)->writev_calls, before + 2);
  CHECK_EQ_INT(dx_stream_buffered(&a->s), 3000 - 2 * IOV_MAX);
  RUN_UNTIL(loop, b->rx_len == 3000, 1000);
  CHECK_EQ_INT(b->rx_len, 3000);
  for (size_t i = 0; i < b->rx_len; i++) CHECK(b->rx[i] == ((i & 1) ? 'b' : 'a'));
  CHECK_EQ_INT(buf->refs, 1);
  dx_sbuf_unref(buf);
  dx_stream_abort(&a->s);
  dx_stream_abort(&b->s);
  spin(loop, 1);
  conn_free(a);
  conn_free(b);
  dx_loop_free(loop);
}

/* Many streams echoing, closed and aborted from inside callbacks at random,
 * freed in on_close: every on_close exactly once, ASan clean. */
enum { CHURN = 300 };
static int churn_closed_;

static void churn_on_read(void *user, uint8_t *data, size_t len);
static void churn_on_close(void *user, int err, const char *why);
static const dx_stream_cb churn_cb = {churn_on_read, churn_on_close, NULL, NULL};

typedef struct churn {
  dx_stream s;
  int id, rounds, closes;
} churn;

static void churn_on_read(void *user, uint8_t *data, size_t len) {
  churn *c = user;
  c->rounds++;
  dx_stream_write(&c->s, data, len); /* echo: both ends ping-pong */
  int r = (c->id * 7 + c->rounds) % 11;
  if (c->rounds > 3 && r == 0) dx_stream_abort(&c->s);
  if (c->rounds > 3 && r == 1) dx_stream_close(&c->s);
  if (c->rounds > 20) dx_stream_abort(&c->s);
}

static void churn_on_close(void *user, int err, const char *why) {
  (void)why;
  churn *c = user;
  CHECK_EQ_INT(++c->closes, 1);
  churn_closed_++;
  free(c);
}

TEST(many_streams_churn) {
  dx_loop *loop = dx_loop_new(NULL);
  churn_closed_ = 0;
  for (int i = 0; i < CHURN; i++) {
    int sv[2];
    pair(sv);
    for (int k = 0; k < 2; k++) {
      churn *c = calloc(1, sizeof *c);
      c->id = i * 2 + k;
      CHECK_EQ_INT(dx_stream_init_tcp(&c->s, loop, sv[k], &churn_cb, c), 0);
      if (k == 0) dx_stream_write(&c->s, "ping", 4);
    }
  }
  RUN_UNTIL(loop, churn_closed_ == 2 * CHURN, 10000);
  CHECK_EQ_INT(churn_closed_, 2 * CHURN);
  spin(loop, 2);
  dx_loop_free(loop);
}

/* ---- listener ------------------------------------------------------- */

typedef struct server {
  dx_loop *loop;
  dx_listener *l;
  conn *conns[64];
  int accepted;
  bool close_listener_in_accept;
  int family;
} server;

static void on_accept(void *user, int fd, const struct sockaddr *addr, socklen_t len) {
  server *s = user;
  s->family = addr->sa_family;
  int nodelay = 0;
  socklen_t ol = sizeof nodelay;
  if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) {
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &ol);
    CHECK_EQ_INT(nodelay, 1);
  }
  CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
  CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  conn *c = conn_new(s->loop, fd);
  c->echo = true;
  s->conns[s->accepted++ % 64] = c;
  if (s->close_listener_in_accept) {
    dx_listener_close(s->l);
    s->l = NULL;
  }
}

static int connect_to(int family, const char *ip, uint16_t port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc;
  if (family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  }
  if (rc != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void server_close_all(server *s) {
  for (int i = 0; i < s->accepted && i < 64; i++) dx_stream_abort(&s->conns[i]->s);
  spin(s->loop, 1);
  for (int i = 0; i < s->accepted && i < 64; i++) {
    CHECK_EQ_INT(s->conns[i]->closes, 1);
    conn_free(s->conns[i]);
  }
  dx_listener_close(s->l);
}

static void echo_roundtrip(server *s, int family, const char *ip) {
  int fd = connect_to(family, ip, dx_listener_port(s->l));
  CHECK(fd >= 0);
  if (fd < 0) return;
  RUN_UNTIL(s->loop, s->accepted > 0, 1000);
  CHECK_EQ_INT(s->accepted, 1);
  CHECK_EQ_INT(write(fd, "ping over tcp", 13), 13);
  char buf[32] = {0};
  size_t got = 0;
  for (int i = 0; i < 100 && got < 13; i++) {
    dx_loop_run_once(s->loop, 10);
    ssize_t n = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
    if (n > 0) got += (size_t)n;
  }
  CHECK_EQ_INT(got, 13);
  CHECK_MEM(buf, "ping over tcp", 13);
  close(fd);
}

TEST(listener_ipv4_ephemeral_echo) {
  server s = {.loop = dx_loop_new(NULL)};
  CHECK_EQ_INT(dx_listener_open(s.loop, "127.0.0.1", 0, NULL, on_accept, &s, &s.l), 0);
  CHECK(dx_listener_port(s.l) != 0);
  echo_roundtrip(&s, AF_INET, "127.0.0.1");
  CHECK_EQ_INT(s.family, AF_INET);
  server_close_all(&s);
  dx_loop_free(s.loop);
}

TEST(listener_localhost_and_any) {
  server s = {.loop = dx_loop_new(NULL)};
  CHECK_EQ_INT(dx_listener_open(s.loop, "localhost", 0, NULL, on_accept, &s, &s.l), 0);
  echo_roundtrip(&s, AF_INET, "127.0.0.1");
  server_close_all(&s);

  /* NULL: dual-stack, reachable over IPv4 as well. */
  server d = {.loop = s.loop};
  CHECK_EQ_INT(dx_listener_open(d.loop, NULL, 0, NULL, on_accept, &d, &d.l), 0);
  echo_roundtrip(&d, AF_INET, "127.0.0.1");
  server_close_all(&d);

  server z = {.loop = s.loop};
  CHECK_EQ_INT(dx_listener_open(z.loop, "0.0.0.0", 0, NULL, on_accept, &z, &z.l), 0);
  echo_roundtrip(&z, AF_INET, "127.0.0.1");
  server_close_all(&z);
  dx_loop_free(s.loop);
}

TEST(listener_ipv6) {
  server s = {.loop = dx_loop_new(NULL)};
  int rc = dx_listener_open(s.loop, "::1", 0, NULL, on_accept, &s, &s.l);
  if (rc != 0) {
    printf("no IPv6 loopback here; skipped\n");
    dx_loop_free(s.loop);
    return;
  }
  echo_roundtrip(&s, AF_INET6, "::1");
  CHECK_EQ_INT(s.family, AF_INET6);
  server_close_all(&s);
  dx_loop_free(s.loop);
}

TEST(listener_errors_and_reuseport) {
  dx_loop *loop = dx_loop_new(NULL);
  server s = {.loop = loop};
  dx_listener *l = NULL;
  CHECK_EQ_INT(dx_listener_open(loop, "127.0.0.1", 0, NULL, NULL, &s, &l), DX_EINVAL);
  CHECK_EQ_INT(dx_listener_open(loop, "no-such-host.invalid", 0, NULL, on_accept, &s, &l), DX_ESYS);
  CHECK(l == NULL);

  dx_listener_opts o = {.backlog = 16, .reuseport = true};
  dx_listener *l1 = NULL, *l2 = NULL, *l3 = NULL;
  CHECK_EQ_INT(dx_listener_open(loop, "127.0.0.1", 0, &o, on_accept, &s, &l1), 0);
  uint16_t port = dx_listener_port(l1);
  CHECK_EQ_INT(dx_listener_open(loop, "127.0.0.1", port, &o, on_accept, &s, &l2), 0);
  CHECK_EQ_INT(dx_listener_port(l2), port);
  /* Without reuseport the port is taken. */
  CHECK_EQ_INT(dx_listener_open(loop, "127.0.0.1", port, NULL, on_accept, &s, &l3), DX_ESYS);
  dx_listener_close(l1);
  dx_listener_close(l2);
  dx_listener_close(NULL);
  dx_loop_free(loop);
}

TEST(listener_close_inside_accept) {
  server s = {.loop = dx_loop_new(NULL), .close_listener_in_accept = true};
  CHECK_EQ_INT(dx_listener_open(s.loop, "127.0.0.1", 0, NULL, on_accept, &s, &s.l), 0);
  uint16_t port = dx_listener_port(s.l);
  int fds[3];
  for (int i = 0; i < 3; i++) fds[i] = connect_to(AF_INET, "127.0.0.1", port);
  RUN_UNTIL(s.loop, s.accepted > 0, 1000);
  spin(s.loop, 3);
  CHECK_EQ_INT(s.accepted, 1); /* the loop stopped accepting at once */
  CHECK(s.l == NULL);
  for (int i = 0; i < 3; i++) close(fds[i]);
  server_close_all(&s);
  dx_loop_free(s.loop);
}

/* Out of fds: accepting pauses on a timer instead of spinning. */
TEST(listener_emfile_pauses) {
  server s = {.loop = dx_loop_new(NULL)};
  CHECK_EQ_INT(dx_listener_open(s.loop, "127.0.0.1", 0, NULL, on_accept, &s, &s.l), 0);
  uint16_t port = dx_listener_port(s.l);
  int fds[3];
  for (int i = 0; i < 3; i++) fds[i] = connect_to(AF_INET, "127.0.0.1", port);

  /* New fds must be numbered below the limit: set it to the lowest free
   * number and nothing more can be opened. */
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(probe >= 0);
  close(probe);
  struct rlimit low = {(rlim_t)probe, old.rlim_max};
  CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &low), 0);

  dx_log_set_level(DX_LOG_ERROR); /* the expected warning */
  dx_loop_stats *st = dx__loop_stats(s.loop);
  uint64_t turns0 = st->turns;
  dx_loop_update_time(s.loop);
  uint64_t end = dx_loop_now(s.loop) + 250;
  while (dx_loop_now(s.loop) < end) dx_loop_run_once(s.loop, 100);
  uint64_t turns = st->turns - turns0;
  CHECK(st->accept_pauses >= 1);
  CHECK(turns < 30); /* a few per 100 ms pause, not thousands */
  CHECK_EQ_INT(s.accepted, 0);
  printf("EMFILE: %llu pauses, %llu turns in 250 ms\n", (unsigned long long)st->accept_pauses,
         (unsigned long long)turns);

  CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &old), 0);
  dx_log_set_level(DX_LOG_INFO);
  RUN_UNTIL(s.loop, s.accepted == 3, 2000);
  CHECK_EQ_INT(s.accepted, 3);
  for (int i = 0; i < 3; i++) close(fds[i]);
  server_close_all(&s);
  dx_loop_free(s.loop);
}

/* A reset from the peer (SO_LINGER 0) ends the stream with DX_ERESET. */
TEST(tcp_reset_reports_error) {
  server s = {.loop = dx_loop_new(NULL)};
  CHECK_EQ_INT(dx_listener_open(s.loop, "127.0.0.1", 0, NULL, on_accept, &s, &s.l), 0);
  int fd = connect_to(AF_INET, "127.0.0.1", dx_listener_port(s.l));
  RUN_UNTIL(s.loop, s.accepted > 0, 1000);
  conn *c = s.conns[0];
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  RUN_UNTIL(s.loop, c->closes > 0, 1000);
  CHECK_EQ_INT(c->closes, 1);
  CHECK_EQ_INT(c->close_err, DX_ERESET);
  conn_free(c);
  s.accepted = 0;
  dx_listener_close(s.l);
  dx_loop_free(s.loop);
}

int main(void) {
  RUN(size_of_stream);
  RUN(many_small_writes_one_writev);
  RUN(writes_across_callbacks_one_writev);
  RUN(large_write_blocks_then_completes);
  RUN(writev_large_goes_out_at_once_rest_is_copied);
  RUN(writev_direct_to_vanished_peer);
  RUN(large_writes_in_on_read_one_writev);
  RUN(answer_flushed_after_on_read);
  RUN(drain_low_water);
  RUN(shared_buffer_refcount);
  RUN(reserve_commit);
  RUN(peer_close_calls_on_close_once);
  RUN(close_inside_on_read_then_free);
  RUN(close_in_on_read_costs_two_epoll_ctl);
  RUN(abort_inside_on_read_then_free);
  RUN(graceful_close_delivers_everything);
  RUN(pause_and_resume_read);
  RUN(read_buffer_is_writable_and_shared);
  RUN(write_to_vanished_peer_reports_error);
  RUN(more_pieces_than_iov_max);
  RUN(many_streams_churn);
  RUN(listener_ipv4_ephemeral_echo);
  RUN(listener_localhost_and_any);
  RUN(listener_ipv6);
  RUN(listener_errors_and_reuseport);
  RUN(listener_close_inside_accept);
  RUN(listener_emfile_pauses);
  RUN(tcp_reset_reports_error);
  return test_report();
}
