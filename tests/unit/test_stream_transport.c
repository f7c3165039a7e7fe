/* The transport vtable as TLS will use it, exercised with a fake transport:
 * input buffered inside the transport (SSL_pending), a write that waits
 * for the socket to become readable, a read that waits for writable. */
#include <errno.h>
#include <sys/socket.h>

#include "duplex/loop.h"
#include "io/loop_internal.h"
#include "io/stream.h"
#include "test.h"

/* The transport's state begins with its vtable pointer, as TLS's does. */
typedef struct fake {
  const dx_transport *ops;
  uint8_t buf[4096]; /* "decrypted" input not yet handed out */
  size_t len, off;
  int write_wants_read; /* next writev blocks on READABLE this many times */
  int read_wants_write; /* next read blocks on WRITABLE this many times */
  int reads, writevs;
} fake;

static ssize_t fake_read(dx_stream *s, uint8_t *out, size_t cap) {
  fake *f = dx_stream_tstate(s);
  f->reads++;
  if (f->read_wants_write > 0) {
    f->read_wants_write--;
    dx_stream_want(s, DX_STREAM_READ_WANTS_WRITE);
    return DX_EAGAIN;
  }
  if (f->off == f->len) {
    ssize_t n = recv(s->io.fd, f->buf, sizeof f->buf, 0);
    if (n < 0) return errno == EAGAIN ? DX_EAGAIN : DX_ESYS;
    if (n == 0) return 0;
    f->len = (size_t)n;
    f->off = 0;
  }
  /* Hand out 3 bytes at a time, like a TLS record at a time. */
  size_t take = f->len - f->off < 3 ? f->len - f->off : 3;
  if (take > cap) take = cap;
  memcpy(out, f->buf + f->off, take);
  f->off += take;
  return (ssize_t)take;
}

static ssize_t fake_writev(dx_stream *s, const struct iovec *iov, int cnt) {
  fake *f = dx_stream_tstate(s);
  f->writevs++;
  if (f->write_wants_read > 0) {
    f->write_wants_read--;
    dx_stream_want(s, DX_STREAM_WRITE_WANTS_READ);
    return DX_EAGAIN;
  }
  struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
  ssize_t n = sendmsg(s->io.fd, &m, MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN ? DX_EAGAIN : DX_ESYS;
  return n;
}

static int fake_shutdown(dx_stream *s) { return shutdown(s->io.fd, SHUT_WR) == 0 ? 0 : DX_ESYS; }
static void fake_close(dx_stream *s) { close(s->io.fd); }
static size_t fake_pending(dx_stream *s) {
  fake *f = dx_stream_tstate(s);
  return f->len - f->off;
}

static const dx_transport fake_tp = {"fake",     fake_read,    fake_writev, fake_shutdown,
                                     fake_close, fake_pending, NULL};

typedef struct conn {
  dx_stream s;
  fake f;
  uint8_t rx[4096];
  size_t rx_len;
  int closes;
  size_t pause_after; /* pause reading once this much arrived */
} conn;

static void on_read(void *user, uint8_t *data, size_t len) {
  conn *c = user;
  memcpy(c->rx + c->rx_len, data, len);
  c->rx_len += len;
  if (c->pause_after && c->rx_len >= c->pause_after) dx_stream_pause_read(&c->s);
}
static void on_close(void *user, int err, const char *why) { ((conn *)user)->closes++; }
static const dx_stream_cb cbs = {on_read, on_close, NULL, NULL};

static conn *open_conn(dx_loop *loop, int sv[2]) {
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  conn *c = calloc(1, sizeof *c);
  c->f.ops = &fake_tp;
  CHECK_EQ_INT(dx_stream_init(&c->s, loop, sv[0], &c->f.ops, &cbs, c), 0);
  return c;
}

static void finish(dx_loop *loop, conn *c, int peer) {
  dx_stream_abort(&c->s);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(c->closes, 1);
  free(c);
  close(peer);
}

TEST(buffered_input_is_drained_without_events) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  conn *c = open_conn(loop, sv);
  uint8_t data[1000];
  for (int i = 0; i < 1000; i++) data[i] = (uint8_t)(i * 31);
  CHECK_EQ_INT(write(sv[1], data, sizeof data), 1000);
  /* One readable event; the rest comes from the transport's buffer. */
  for (int i = 0; i < 10 && c->rx_len < 1000; i++) dx_loop_run_once(loop, 10);
  CHECK_EQ_INT(c->rx_len, 1000);
  CHECK_MEM(c->rx, data, 1000);
  finish(loop, c, sv[1]);
  dx_loop_free(loop);
}

TEST(resume_delivers_buffered_input) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  conn *c = open_conn(loop, sv);
  c->pause_after = 6;
  CHECK_EQ_INT(write(sv[1], "abcdefghijkl", 12), 12);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 10);
  CHECK_EQ_INT(c->rx_len, 6); /* paused with 6 bytes inside the transport */
  c->pause_after = 0;
  dx_stream_resume_read(&c->s); /* the socket is not readable: must not wait */
  dx_loop_run_once(loop, 0);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(c->rx_len, 12);
  CHECK_MEM(c->rx, "abcdefghijkl", 12);
  finish(loop, c, sv[1]);
  dx_loop_free(loop);
}

TEST(write_waits_for_readable) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  conn *c = open_conn(loop, sv);
  dx_stream_pause_read(&c->s);
  c->f.write_wants_read = 1;
  CHECK_EQ_INT(dx_stream_write(&c->s, "hello", 5), 0);
  dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(c->f.writevs, 1);
  CHECK(c->s.io.events & DX_READABLE); /* watching input for the write's sake */
  CHECK(!(c->s.io.events & DX_WRITABLE));
  CHECK_EQ_INT(dx_stream_write(&c->s, " world", 6), 0); /* queued, no retry */
  for (int i = 0; i < 3; i++) dx_loop_run_once(loop, 0);
  CHECK_EQ_INT(c->f.writevs, 1);

  CHECK_EQ_INT(write(sv[1], "!", 1), 1); /* the input the write waited for */
  dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(c->f.writevs, 2);
  char buf[32];
  CHECK_EQ_INT(read(sv[1], buf, sizeof buf), 11);
  CHECK_MEM(buf, "hello world", 11);
  CHECK_EQ_INT(c->s.io.events, 0); /* paused and nothing to write */
  CHECK_EQ_INT(c->rx_len, 0);      /* paused: input not delivered */
  finish(loop, c, sv[1]);
  dx_loop_free(loop);
}

TEST(read_waits_for_writable) {
  dx_loop *loop = dx_loop_new(NULL);
  int sv[2];
  conn *c = open_conn(loop, sv);
  c->f.read_wants_write = 1;
  CHECK_EQ_INT(write(sv[1], "xyz", 3), 3);
  dx_loop_run_once(loop, 100); /* read: EAGAIN, wants WRITABLE */
  CHECK(c->s.io.events & DX_WRITABLE);
  for (int i = 0; i < 5 && c->rx_len < 3; i++) dx_loop_run_once(loop, 100);
  CHECK_EQ_INT(c->rx_len, 3);
  CHECK(!(c->s.io.events & DX_WRITABLE));
  finish(loop, c, sv[1]);
  dx_loop_free(loop);
}

int main(void) {
  RUN(buffered_input_is_drained_without_events);
  RUN(resume_delivers_buffered_input);
  RUN(write_waits_for_readable);
  RUN(read_waits_for_writable);
  return test_report();
}
