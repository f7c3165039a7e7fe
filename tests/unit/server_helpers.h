/* Shared helpers for the in-process server tests (tests/unit/test_server*.c).
 *
 * Everything runs on one thread: a dx_loop with a dx_server, and "raw"
 * clients that are plain non-blocking sockets read between loop turns (so a
 * test can send exactly the bytes it wants, stop reading, or never answer a
 * ping). pump() runs one loop turn and then reads every registered raw
 * client that is not paused; RUN_UNTIL() pumps until a condition holds or a
 * wall-clock deadline passes, so a missing event fails a CHECK instead of
 * hanging the test.
 *
 * Ports are always ephemeral (.port = -1, then dx_server_port). */
#ifndef DX_TEST_SERVER_HELPERS_H
#define DX_TEST_SERVER_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "duplex/client.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "duplex/ws.h"
#include "test.h"

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline bool contains(const char *hay, const char *needle) {
  return hay && needle && strstr(hay, needle) != NULL;
}

#define CHECK_CONTAINS(hay, needle)                                                                \
  do {                                                                                             \
    const char *h_ = (hay);                                                                        \
    if (!contains(h_, (needle))) {                                                                 \
      fprintf(stderr, "%s:%d: '%.300s' does not mention '%s'\n", __FILE__, __LINE__,               \
              h_ ? h_ : "(null)", (needle));                                                       \
      CHECK(contains(h_, (needle)));                                                               \
    }                                                                                              \
  } while (0)

/* ------------------------------------------------------------------ */
/* Raw clients                                                         */

typedef struct raw {
  int fd;
  char *buf; /* received, not yet consumed; always NUL-terminated */
  size_t len, cap;
  bool eof;         /* read returned 0 */
  bool reset;       /* read failed (ECONNRESET) */
  bool paused;      /* pump() does not read this one */
  bool discard;     /* pump() reads and throws the bytes away */
  size_t discarded; /* bytes thrown away */
} raw;

#define RAW_MAX 64
static raw *raws_[RAW_MAX];

static void raw_register_(raw *r) {
  for (int i = 0; i < RAW_MAX; i++)
    if (!raws_[i]) {
      raws_[i] = r;
      return;
    }
  fprintf(stderr, "too many raw clients\n");
  exit(2);
}

static void raw_append_(raw *r, const char *d, size_t n) {
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n + 1) cap *= 2;
    r->buf = realloc(r->buf, cap);
    if (!r->buf) exit(2);
    r->cap = cap;
  }
  memcpy(r->buf + r->len, d, n);
  r->len += n;
  r->buf[r->len] = 0;
}

/* Read whatever is available now. */
static inline void raw_read(raw *r) {
  char tmp[16384];
  while (r->fd >= 0 && !r->eof && !r->reset) {
    ssize_t n = recv(r->fd, tmp, sizeof tmp, 0);
    if (n > 0) {
      if (r->discard)
        r->discarded += (size_t)n;
      else
        raw_append_(r, tmp, (size_t)n);
    } else if (n == 0) {
      r->eof = true;
    } else if (errno == EINTR) {
      continue;
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK) r->reset = true;
      break;
    }
  }
}

/* Drop the first n buffered bytes. */
static inline void raw_consume(raw *r, size_t n) {
  if (n > r->len) n = r->len;
  memmove(r->buf, r->buf + n, r->len - n);
  r->len -= n;
  if (r->buf) r->buf[r->len] = 0;
}

/* One loop turn (waiting at most a few ms), then read every raw client. */
static inline void pump(dx_loop *loop) {
  dx_loop_run_once(loop, 2);
  for (int i = 0; i < RAW_MAX; i++)
    if (raws_[i] && !raws_[i]->paused) raw_read(raws_[i]);
}

/* Both pump once more after the deadline passed: if the test was paused
 * past it, what happened meanwhile is still read before giving up. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
  do {                                                                                             \
    uint64_t deadline_ = now_ms() + (uint64_t)(ms);                                                \
    bool last_ = false;                                                                            \
    while (!(cond) && !last_) {                                                                    \
      last_ = now_ms() >= deadline_;                                                               \
      pump(loop);                                                                                  \
    }                                                                                              \
  } while (0)

static inline void run_for(dx_loop *loop, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  bool last;
  do {
    last = now_ms() >= end;
    pump(loop);
  } while (!last);
}

/* A blocking connect to 127.0.0.1:port (loopback completes it from the
 * kernel's backlog, without the server's accept), then non-blocking.
 * `rcvbuf` > 0 sets SO_RCVBUF before connecting (a small window). Returns
 * NULL with errno set when the connect fails. */
static inline raw *raw_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  raw *r = calloc(1, sizeof *r);
  if (!r) exit(2);
  r->fd = fd;
  raw_register_(r);
  return r;
}

static inline void raw_close(raw *r) {
  if (!r) return;
  for (int i = 0; i < RAW_MAX; i++)
    if (raws_[i] == r) raws_[i] = NULL;
  if (r->fd >= 0) close(r->fd);
  free(r->buf);
  free(r);
}

/* Write all of data, pumping the loop while the socket is full. */
static inline bool raw_write(dx_loop *loop, raw *r, const void *data, size_t len) {
  const char *p = data;
  uint64_t deadline = now_ms() + 5000;
  while (len) {
    ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (now_ms() > deadline) return false;
      pump(loop);
    } else {
      return false;
    }
  }
  return true;
}

static inline bool raw_write_str(dx_loop *loop, raw *r, const char *s) {
  return raw_write(loop, r, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* HTTP over raw clients                                               */

/* The status code of a response in buf, or -1. */
static inline int http_status(const char *buf) {
  int st;
  if (!buf || sscanf(buf, "HTTP/1.%*d %d", &st) != 1) return -1;
  return st;
}

/* The end of the response head (just past CRLFCRLF), or NULL. */
static inline const char *http_body(const char *buf) {
  const char *e = buf ? strstr(buf, "\r\n\r\n") : NULL;
  return e ? e + 4 : NULL;
}

/* The value of header `name` in the head of the response in buf, copied
 * into out; false if absent. */
static inline bool http_header(const char *buf, const char *name, char *out, size_t cap) {
  const char *end = http_body(buf);
  if (!end) return false;
  size_t nl = strlen(name);
  for (const char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *ve = strstr(v, "\r\n");
      size_t n = (size_t)(ve - v);
      if (n >= cap) n = cap - 1;
      memcpy(out, v, n);
      out[n] = 0;
      return true;
    }
  }
  return false;
}

/* Send `request` on a new connection and collect everything the server
 * answers until it closes the connection. Returns the raw client (caller
 * closes it); its buf holds the response. */
static inline raw *http_exchange(dx_loop *loop, int port, const char *request) {
  raw *r = raw_connect(port, 0);
  if (!r) {
    perror("connect");
    exit(2);
  }
  raw_write_str(loop, r, request);
  RUN_UNTIL(loop, r->eof || r->reset, 5000);
  return r;
}

/* A GET (or other method) for `target` with Connection: close. */
static inline raw *http_request(dx_loop *loop, int port, const char *method, const char *target) {
  char req[2048];
  snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           method, target);
  return http_exchange(loop, port, req);
}

/* ------------------------------------------------------------------ */
/* WebSocket over raw clients                                          */

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 1.3 */

/* Send an upgrade request for `target` with extra header lines `extra`
 * ("Name: value\r\n..." or NULL) and wait for the response head. Returns
 * the HTTP status (-1 if none came); on 101 the head is consumed from
 * r->buf, so what is left are frames; otherwise r->buf keeps the response. */
static inline int raw_ws_handshake(dx_loop *loop, raw *r, const char *target, const char *extra) {
  char req[4096];
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
           target, extra ? extra : "");
  if (!raw_write_str(loop, r, req)) return -1;
  RUN_UNTIL(loop, http_body(r->buf) || r->eof || r->reset, 5000);
  const char *body = http_body(r->buf);
  if (!body) return -1;
  int st = http_status(r->buf);
  if (st == 101) raw_consume(r, (size_t)(body - r->buf));
  return st;
}

/* Connect and upgrade; the response head is left in *head (caller frees)
 * when head is not NULL. Returns NULL unless the status was 101. */
static inline raw *raw_ws_open(dx_loop *loop, int port, const char *target, const char *extra,
                               int *status) {
  raw *r = raw_connect(port, 0);
  if (!r) return NULL;
  int st = raw_ws_handshake(loop, r, target, extra);
  if (status) *status = st;
  if (st != 101) {
    raw_close(r);
    return NULL;
  }
  return r;
}

/* Send one masked frame (FIN set). */
static inline bool raw_ws_send(dx_loop *loop, raw *r, unsigned opcode, const void *data,
                               size_t len) {
  static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  uint8_t *f = malloc(len + 14);
  size_t h = 0;
  f[h++] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    f[h++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xFFFF) {
    f[h++] = 0x80 | 126;
    f[h++] = (uint8_t)(len >> 8);
    f[h++] = (uint8_t)len;
  } else {
    f[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  memcpy(f + h, key, 4);
  h += 4;
  for (size_t i = 0; i < len; i++) f[h + i] = ((const uint8_t *)data)[i] ^ key[i & 3];
  bool ok = raw_write(loop, r, f, h + len);
  free(f);
  return ok;
}

/* Send a close frame with `code` and `reason`. */
static inline bool raw_ws_send_close(dx_loop *loop, raw *r, unsigned code, const char *reason) {
  uint8_t p[128];
  size_t rl = reason ? strlen(reason) : 0;
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  if (rl) memcpy(p + 2, reason, rl);
  return raw_ws_send(loop, r, 0x8, p, 2 + rl);
}

typedef struct ws_frame {
  unsigned opcode;
  bool fin;
  bool masked;
  size_t len;
  uint8_t *data; /* malloc'd copy (NUL-terminated); free with ws_frame_free */
} ws_frame;

static inline void ws_frame_free(ws_frame *f) {
  free(f->data);
  f->data = NULL;
}

/* Take one complete frame from r->buf (server frames are unmasked). Returns
 * true and fills *f if a whole frame was buffered. */
static inline bool raw_ws_take(raw *r, ws_frame *f) {
  const uint8_t *b = (const uint8_t *)r->buf;
  if (r->len < 2) return false;
  size_t h = 2;
  uint64_t len = b[1] & 0x7F;
  if (len == 126) {
    if (r->len < 4) return false;
    len = (uint64_t)b[2] << 8 | b[3];
    h = 4;
  } else if (len == 127) {
    if (r->len < 10) return false;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | b[2 + i];
    h = 10;
  }
  bool masked = b[1] & 0x80;
  if (masked) h += 4;
  if (r->len < h + len) return false;
  f->opcode = b[0] & 0x0F;
  f->fin = b[0] & 0x80;
  f->masked = masked;
  f->len = (size_t)len;
  f->data = malloc((size_t)len + 1);
  memcpy(f->data, b + h, (size_t)len);
  if (masked)
    for (size_t i = 0; i < len; i++) f->data[i] ^= b[h - 4 + (i & 3)];
  f->data[len] = 0;
  raw_consume(r, h + (size_t)len);
  return true;
}

/* Wait up to ms for the next frame. */
static inline bool raw_ws_next(dx_loop *loop, raw *r, ws_frame *f, int ms) {
  memset(f, 0, sizeof *f);
  uint64_t deadline = now_ms() + (uint64_t)ms;
  for (;;) {
    if (raw_ws_take(r, f)) return true;
    if (r->eof || r->reset || now_ms() >= deadline) return false;
    pump(loop);
  }
}

/* The close code in a close frame's payload (1005 if none). */
static inline unsigned ws_close_code(const ws_frame *f) {
  return f->len >= 2 ? (unsigned)(f->data[0] << 8 | f->data[1]) : 1005;
}

/* ------------------------------------------------------------------ */
/* Server-side recorder: generic handlers that count and remember.     */

typedef struct rec {
  const char *name; /* which route, for tests with several */
  int upgrades, opens, messages, closes, errors, drains, pings, pongs;
  dx_ws *ws; /* the last opened connection, NULL after its on_close */
  /* last message */
  unsigned msg_op;
  char msg[512];
  size_t msg_len;
  /* last close */
  int close_code;
  bool clean;
  char close_reason[128];
  /* last error */
  int err;
  char errmsg[256];
  /* on_open */
  char path[128], query[128], protocol[64];
  bool protocol_null;
  bool error_then_close; /* every on_error was followed by on_close */
  int pending_error;
  /* behaviour */
  bool echo; /* on_message sends the message back */
} rec;

static inline void rec_copy_(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

static inline void rec_on_open(dx_ws *ws, void *user) {
  rec *r = user;
  r->opens++;
  r->ws = ws;
  rec_copy_(r->path, sizeof r->path, dx_ws_path(ws));
  rec_copy_(r->query, sizeof r->query, dx_ws_query(ws));
  r->protocol_null = dx_ws_protocol(ws) == NULL;
  rec_copy_(r->protocol, sizeof r->protocol, dx_ws_protocol(ws));
}

static inline void rec_on_message(dx_ws *ws, unsigned op, const void *data, size_t len,
                                  void *user) {
  rec *r = user;
  r->messages++;
  r->msg_op = op;
  r->msg_len = len;
  size_t n = len < sizeof r->msg - 1 ? len : sizeof r->msg - 1;
  memcpy(r->msg, data, n);
  r->msg[n] = 0;
  if (r->echo) dx_ws_send(ws, op, data, len);
}

static inline void rec_on_ping(dx_ws *ws, const void *d, size_t n, void *user) {
  (void)ws, (void)d, (void)n;
  ((rec *)user)->pings++;
}

static inline void rec_on_pong(dx_ws *ws, const void *d, size_t n, void *user) {
  (void)ws, (void)d, (void)n;
  ((rec *)user)->pongs++;
}

static inline void rec_on_drain(dx_ws *ws, void *user) {
  (void)ws;
  ((rec *)user)->drains++;
}

static inline void rec_on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  rec *r = user;
  r->errors++;
  r->err = err;
  r->pending_error++;
  rec_copy_(r->errmsg, sizeof r->errmsg, msg);
}

static inline void rec_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t len,
                                bool clean, void *user) {
  rec *r = user;
  r->closes++;
  r->close_code = code;
  r->clean = clean;
  size_t n = len < sizeof r->close_reason - 1 ? len : sizeof r->close_reason - 1;
  memcpy(r->close_reason, reason, n);
  r->close_reason[n] = 0;
  r->pending_error = 0;
  if (r->ws == ws) r->ws = NULL;
}

/* Handlers that record everything into a rec passed as `user`. */
static inline dx_ws_handlers rec_handlers(void) {
  return (dx_ws_handlers){.on_open = rec_on_open,
                          .on_message = rec_on_message,
                          .on_ping = rec_on_ping,
                          .on_pong = rec_on_pong,
                          .on_drain = rec_on_drain,
                          .on_error = rec_on_error,
                          .on_close = rec_on_close};
}

/* ------------------------------------------------------------------ */
/* Setup and teardown                                                  */

/* A loop and a listening server on an ephemeral port (opts may set
 * anything but the port). Routes must be added by the caller BEFORE
 * listening if they carry user data, so this does not listen: call
 * start_listening. */
static inline dx_server *make_server(dx_loop *loop, dx_server_opts opts) {
  opts.port = -1;
  if (!opts.host) opts.host = "127.0.0.1";
  dx_server *srv = dx_server_new(loop, &opts);
  if (!srv) exit(2);
  return srv;
}

static inline int start_listening(dx_server *srv) {
  int rc = dx_server_listen(srv);
  if (rc) {
    fprintf(stderr, "dx_server_listen: %s\n", dx_strerror(rc));
    exit(2);
  }
  return dx_server_port(srv);
}

static inline void set_flag_(dx_server *srv, void *arg) {
  (void)srv;
  ++*(int *)arg;
}

/* Close every raw client, shut the server down, free it and the loop. */
static inline void teardown(dx_loop *loop, dx_server *srv) {
  for (int i = 0; i < RAW_MAX; i++)
    if (raws_[i]) raw_close(raws_[i]);
  if (srv) {
    int done = 0;
    dx_server_shutdown(srv, 200, set_flag_, &done);
    RUN_UNTIL(loop, done, 5000);
    CHECK_EQ_INT(done, 1);
    dx_server_free(srv);
  }
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

/* ------------------------------------------------------------------ */
/* Capturing stderr (the library's log) during part of a test.         */

typedef struct capture {
  int saved;
  int fd;
  char path[64];
} capture;

static inline void capture_start(capture *c) {
  fflush(stderr);
  snprintf(c->path, sizeof c->path, "/tmp/dx_test_stderr_XXXXXX");
  c->fd = mkstemp(c->path);
  if (c->fd < 0) {
    perror("mkstemp");
    exit(2);
  }
  c->saved = dup(2);
  dup2(c->fd, 2);
}

/* Stop capturing; returns what was written (malloc'd; caller frees), and
 * echoes it to the real stderr so failures stay debuggable. */
static inline char *capture_end(capture *c) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  off_t size = lseek(c->fd, 0, SEEK_END);
  char *s = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
  if (size > 0 && pread(c->fd, s, (size_t)size, 0) != size) s[0] = 0;
  close(c->fd);
  unlink(c->path);
  fputs(s, stderr);
  return s;
}

#endif /* DX_TEST_SERVER_HELPERS_H */
