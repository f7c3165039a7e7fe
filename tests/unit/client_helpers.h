/* Shared helpers for the client tests (tests/unit/test_client*.c): a real
 * dx_loop in-process, with the library's own dx_server in the same loop as
 * the peer (sv), or a raw listening socket scripted by hand (rs) for
 * servers that misbehave (wrong accept key, HTTP 200, silence, masked
 * frames, unrequested extension/subprotocol, a 101 in pieces) and for an
 * HTTP CONNECT proxy. Every client handler call is recorded (cl).
 *
 * Ports are always ephemeral. Where a test needs a port that stays free
 * (connection refused, a server that comes back on the same port), a socket
 * bound with SO_REUSEADDR|SO_REUSEPORT but not listening holds it: connects
 * to it are refused, no other process can take it, and a dx_server with
 * .reuseport can still bind it. */
#ifndef DX_TEST_CLIENT_HELPERS_H
#define DX_TEST_CLIENT_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "duplex/client.h"
#include "duplex/handshake.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "test.h"

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run loop turns until `cond` holds or `ms` of wall-clock time passed. */
/* Both run one more turn after the deadline passed: if the test was paused
 * past it, what happened meanwhile is still seen before giving up. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
  do {                                                                                             \
    uint64_t deadline_ = now_ms() + (uint64_t)(ms);                                                \
    bool last_ = false;                                                                            \
    while (!(cond) && !last_) {                                                                    \
      last_ = now_ms() >= deadline_;                                                               \
      dx_loop_run_once((loop), 10);                                                                \
    }                                                                                              \
  } while (0)

/* Run the loop for `ms` whatever happens. */
static inline void run_for(dx_loop *loop, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  bool last;
  do {
    last = now_ms() >= end;
    dx_loop_run_once(loop, 10);
  } while (!last);
}

static inline bool contains(const char *hay, const char *needle) {
  return hay && needle && strstr(hay, needle) != NULL;
}

#define CHECK_CONTAINS(hay, needle)                                                                \
  do {                                                                                             \
    if (!contains((hay), (needle))) {                                                              \
      fprintf(stderr, "%s:%d: '%s' does not mention '%s'\n", __FILE__, __LINE__,                   \
              (hay) ? (hay) : "(null)", (needle));                                                 \
      CHECK(contains((hay), (needle)));                                                            \
    }                                                                                              \
  } while (0)

/* ------------------------------------------------------------------ */
/* A port holder: bound, never listening.                              */

static inline int hold_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("bind");
    exit(2);
  }
  return fd;
}

static inline int fd_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

/* ------------------------------------------------------------------ */
/* The client side: every handler call is recorded.                    */

enum { EV_OPEN = 1, EV_ERROR, EV_RECONNECTING };
enum { FREE_IN_OPEN = 1, FREE_IN_MESSAGE, FREE_IN_ERROR, FREE_IN_CLOSE };

typedef struct cl {
  dx_loop *loop;
  dx_client *c;
  int opens, msgs, errors, closes, pings, pongs, dones, reconnectings;
  char pong_data[128];
  bool client_matches; /* dx_ws_client(ws) == c in on_open */
  /* last message */
  unsigned last_op;
  unsigned char *last_msg;
  size_t last_len;
  /* last error */
  int last_err;
  char errmsg[512];
  /* last close */
  int close_code;
  bool clean;
  char reason[128];
  bool error_before_close; /* every on_error was followed by its on_close */
  /* what the server told us */
  char protocol[64];
  char resp_header[128];
  /* behaviour */
  const char *send_on_open; /* text sent from on_open with dx_client_send */
  unsigned close_in_open;   /* dx_ws_close(ws, this, "bye") from on_open */
  int drains;               /* on_drain calls */
  size_t buffered_at_drain; /* dx_ws_buffered in the last on_drain */
  bool free_in_done;
  int free_in;          /* FREE_IN_* : dx_client_free from that handler */
  bool freed;           /* ... and it happened */
  int calls_after_free; /* handler calls after dx_client_free (must stay 0) */
  /* reconnect records, in order with the attempt outcomes */
  struct {
    int type, attempt, delay;
    uint64_t at;
  } ev[128];
  int nev;
  uint64_t started;
} cl;

static inline void log_ev(cl *s, int type, int attempt, int delay) {
  if (s->nev < 128) {
    s->ev[s->nev].type = type;
    s->ev[s->nev].attempt = attempt;
    s->ev[s->nev].delay = delay;
    s->ev[s->nev].at = now_ms();
    s->nev++;
  }
}

/* dx_client_free from inside a handler, if this is the one. */
static inline void maybe_free(cl *s, int where) {
  if (s->free_in != where || s->freed) return;
  s->freed = true;
  dx_client_free(s->c);
}

static inline void c_open(dx_ws *ws, void *user) {
  cl *s = user;
  if (s->freed) s->calls_after_free++;
  s->opens++;
  s->client_matches = dx_ws_client(ws) == s->c && dx_client_ws(s->c) == ws;
  const char *p = dx_ws_protocol(ws);
  snprintf(s->protocol, sizeof s->protocol, "%s", p ? p : "");
  const char *h = dx_ws_header(ws, "X-Server-Says");
  snprintf(s->resp_header, sizeof s->resp_header, "%s", h ? h : "");
  log_ev(s, EV_OPEN, 0, 0);
  if (s->send_on_open)
    CHECK(dx_client_send(s->c, DX_OP_TEXT, s->send_on_open, strlen(s->send_on_open)) >= 0);
  if (s->close_in_open) CHECK_EQ_INT(dx_ws_close(ws, s->close_in_open, "bye"), 0);
  maybe_free(s, FREE_IN_OPEN);
}

static inline void c_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  (void)ws;
  cl *s = user;
  if (s->freed) s->calls_after_free++;
  s->msgs++;
  s->last_op = op;
  free(s->last_msg);
  s->last_msg = malloc(len + 1);
  memcpy(s->last_msg, data, len);
  s->last_msg[len] = 0;
  s->last_len = len;
  maybe_free(s, FREE_IN_MESSAGE);
}

static inline void c_ping(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  cl *s = user;
  s->pings++;
  CHECK(len == 2 && memcmp(data, "sp", 2) == 0);
}

static inline void c_pong(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  cl *s = user;
  s->pongs++;
  snprintf(s->pong_data, sizeof s->pong_data, "%.*s", (int)len, (const char *)data);
}

static inline void c_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  cl *s = user;
  if (s->freed) s->calls_after_free++;
  s->errors++;
  s->last_err = err;
  snprintf(s->errmsg, sizeof s->errmsg, "%s", msg ? msg : "(null)");
  CHECK(msg != NULL && msg[0] != 0);
  log_ev(s, EV_ERROR, 0, 0);
  maybe_free(s, FREE_IN_ERROR);
}

static inline void c_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len,
                           bool clean, void *user) {
  (void)ws;
  cl *s = user;
  if (s->freed) s->calls_after_free++;
  s->closes++;
  s->close_code = code;
  s->clean = clean;
  snprintf(s->reason, sizeof s->reason, "%.*s", (int)reason_len, reason);
  /* on_close is the last call of an attempt: errors never outnumber closes. */
  if (s->errors > s->closes) s->error_before_close = false;
  maybe_free(s, FREE_IN_CLOSE);
}

static inline void c_drain(dx_ws *ws, void *user) {
  cl *s = user;
  s->drains++;
  s->buffered_at_drain = dx_ws_buffered(ws);
}

static inline void c_reconnecting(dx_client *c, int attempt, int delay, void *user) {
  cl *s = user;
  CHECK(c == s->c);
  s->reconnectings++;
  log_ev(s, EV_RECONNECTING, attempt, delay);
}

static inline void c_done(dx_client *c, void *user) {
  cl *s = user;
  CHECK(c == s->c);
  s->dones++;
  if (s->free_in_done) {
    dx_client_free(c);
    s->c = NULL;
  }
}

static const dx_ws_handlers client_handlers = {
    .on_open = c_open,
    .on_message = c_message,
    .on_ping = c_ping,
    .on_pong = c_pong,
    .on_error = c_error,
    .on_close = c_close,
    .on_drain = c_drain,
};

/* Connect; `o` may be NULL. on_reconnecting/on_done are always ours. */
static inline void cl_start(cl *s, dx_loop *loop, const char *url, const dx_client_opts *o) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->error_before_close = true;
  dx_client_opts opts = o ? *o : (dx_client_opts){0};
  opts.on_reconnecting = c_reconnecting;
  opts.on_done = c_done;
  const char *why = NULL;
  s->started = now_ms();
  s->c = dx_connect(loop, url, &opts, &client_handlers, s, &why);
  if (!s->c) fprintf(stderr, "dx_connect(%s) failed: %s\n", url, why ? why : "?");
  CHECK(s->c != NULL);
}

static inline void cl_free(cl *s) {
  if (!s->freed) dx_client_free(s->c);
  s->c = NULL;
  free(s->last_msg);
  s->last_msg = NULL;
}

/* ------------------------------------------------------------------ */
/* The server side: the library's own dx_server, behaviour by path.    */

typedef struct sv {
  dx_loop *loop;
  dx_server *srv;
  int port;
  int opens, msgs, closes, pings, pongs;
  int close_code;
  bool clean;
  char reason[128];
  char header_seen[128];
  char origin_seen[128];
  char query_seen[128];
  bool stopped;
} sv;

static inline int s_upgrade(dx_ws *ws, void *user) {
  sv *s = user;
  const char *h = dx_ws_header(ws, "X-Test");
  snprintf(s->header_seen, sizeof s->header_seen, "%s", h ? h : "");
  const char *o = dx_ws_origin(ws);
  snprintf(s->origin_seen, sizeof s->origin_seen, "%s", o ? o : "");
  snprintf(s->query_seen, sizeof s->query_seen, "%s", dx_ws_query(ws));
  if (strcmp(dx_ws_path(ws), "/forbidden") == 0) return 403;
  return 0;
}

static inline void s_open(dx_ws *ws, void *user) {
  sv *s = user;
  s->opens++;
  const char *path = dx_ws_path(ws);
  if (!strcmp(path, "/close4002")) {
    dx_ws_close(ws, 4002, "server says bye");
  } else if (!strcmp(path, "/close4000")) {
    dx_ws_close(ws, 4000, NULL);
  } else if (!strcmp(path, "/policy")) {
    dx_ws_close(ws, 1008, "go away");
  } else if (!strcmp(path, "/frag")) {
    CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_BINARY, "abc", 3, true), DX_SENT);
    CHECK_EQ_INT(dx_ws_send(ws, DX_OP_PING, "sp", 2), DX_SENT); /* control frame in between */
    CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_CONT, "", 0, true), DX_SENT);
    CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_CONT, "defghi", 6, false), DX_SENT);
  } else if (!strcmp(path, "/burst")) {
    /* Goes out with the 101 in one write: the client reads it all at once. */
    dx_ws_send_text(ws, "b1");
    dx_ws_send_text(ws, "b2");
    dx_ws_send_text(ws, "b3");
  } else if (!strcmp(path, "/ping")) {
    CHECK_EQ_INT(dx_ws_send(ws, DX_OP_PING, "sp", 2), DX_SENT);
  }
}

static inline void s_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  sv *s = user;
  s->msgs++;
  CHECK(dx_ws_send(ws, op, data, len) >= 0);
}

static inline void s_ping(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  (void)data;
  (void)len;
  sv *s = user;
  s->pings++;
}

static inline void s_pong(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  sv *s = user;
  s->pongs++;
  CHECK(len == 2 && memcmp(data, "sp", 2) == 0);
}

static inline void s_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len,
                           bool clean, void *user) {
  (void)ws;
  sv *s = user;
  s->closes++;
  s->close_code = code;
  s->clean = clean;
  snprintf(s->reason, sizeof s->reason, "%.*s", (int)reason_len, reason);
}

static const dx_ws_handlers server_handlers = {
    .on_upgrade = s_upgrade,
    .on_open = s_open,
    .on_message = s_message,
    .on_ping = s_ping,
    .on_pong = s_pong,
    .on_close = s_close,
};

/* Start a server on 127.0.0.1:`port` (0: any free port). */
static inline void sv_start(sv *s, dx_loop *loop, int port) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->srv = dx_server_new(loop, &(dx_server_opts){.host = "127.0.0.1",
                                                 .port = port ? port : -1,
                                                 .reuseport = true,
                                                 .max_message = 8u << 20,
                                                 .max_buffered = 16u << 20});
  CHECK(s->srv != NULL);
  CHECK_EQ_INT(dx_server_route(s->srv, "*", &server_handlers, s), 0);
  CHECK_EQ_INT(dx_server_route(s->srv, "/proto", &server_handlers, s), 0);
  static const char *const protos[] = {"chat.v2", "chat.v1", NULL};
  CHECK_EQ_INT(dx_server_route_protocols(s->srv, "/proto", protos), 0);
  CHECK_EQ_INT(dx_server_listen(s->srv), 0);
  s->port = dx_server_port(s->srv);
  CHECK(s->port > 0);
}

static inline void sv_stopped(dx_server *srv, void *arg) {
  (void)srv;
  ((sv *)arg)->stopped = true;
}

static inline void sv_stop(sv *s) {
  if (!s->srv) return;
  s->stopped = false;
  dx_server_shutdown(s->srv, 500, sv_stopped, s);
  RUN_UNTIL(s->loop, s->stopped, 3000);
  CHECK(s->stopped);
  dx_server_free(s->srv);
  s->srv = NULL;
}

/* Let aborted streams and free_later entries finish, then free the loop. */
static inline void loop_done(dx_loop *loop) {
  run_for(loop, 50);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

static inline void url_for(char *buf, size_t cap, int port, const char *path) {
  snprintf(buf, cap, "ws://127.0.0.1:%d%s", port, path);
}

/* ------------------------------------------------------------------ */
/* A raw server scripted by hand.                                       */

typedef enum {
  RS_BAD_ACCEPT,
  RS_STATUS_200,
  RS_SILENT,
  RS_MASKED_FRAME,
  RS_UNREQ_EXTENSION,
  RS_UNREQ_PROTOCOL,
  RS_EOF_IN_HANDSHAKE,
  RS_GARBAGE,
  RS_OPEN_MUTE,
  RS_SPLIT_HEAD,
  RS_PROXY_SPLIT_JUNK,
  RS_PROXY,
  RS_PROXY_403,
  RS_DRIBBLE,    /* a 101 one byte per loop turn */
  RS_OPEN_RESET, /* a 101, then a reset (RST) 50 ms later */
} rs_mode;

typedef struct rs rs;
typedef struct rconn {
  rs *srv;
  int fd, up_fd;
  dx_io io, up_io;
  char buf[16384];
  size_t len;
  bool answered;
  bool eof;
  dx_timer later; /* RS_SPLIT_HEAD: the second half */
  char *pending;
  size_t pending_len;
  size_t pending_pos; /* RS_DRIBBLE: bytes of pending sent so far */
} rconn;

struct rs {
  dx_loop *loop;
  int lfd;
  dx_io lio;
  int port;
  rs_mode mode;
  int target_port; /* proxy: where CONNECT goes */
  rconn *conns[8];
  int nconns;
  char first_line[256];
  char head[2048];          /* the first request head */
  const char *proxy_ok;     /* RS_PROXY: the answer to CONNECT (default: a 200) */
  unsigned char after[256]; /* bytes received after our answer */
  size_t after_len;
  int eofs;
};

static inline void write_all(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w > 0) {
      b += w;
      n -= (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      poll(&pfd, 1, 1000);
    } else {
      return;
    }
  }
}

static inline void rconn_close(rconn *k) {
  dx_timer_stop(&k->later);
  free(k->pending);
  k->pending = NULL;
  if (k->fd >= 0) {
    dx_io_stop(&k->io);
    close(k->fd);
    k->fd = -1;
  }
  if (k->up_fd >= 0) {
    dx_io_stop(&k->up_io);
    close(k->up_fd);
    k->up_fd = -1;
  }
}

static inline void send_later(dx_timer *t) {
  rconn *k = dx_container_of(t, rconn, later);
  if (k->srv->mode == RS_OPEN_RESET) {
    struct linger lg = {1, 0};
    setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    rconn_close(k);
    return;
  }
  if (k->srv->mode == RS_DRIBBLE) {
    if (k->fd >= 0 && k->pending_pos < k->pending_len)
      write_all(k->fd, k->pending + k->pending_pos++, 1);
    if (k->pending_pos < k->pending_len) return; /* the timer repeats */
    dx_timer_stop(t);
  }
  if (k->fd >= 0) write_all(k->fd, k->pending, k->pending_len);
  free(k->pending);
  k->pending = NULL;
}

/* The 101 in two writes 50 ms apart: its first 20 bytes, then the rest of
 * the head together with a 40000-byte binary message (byte i = i % 253). */
static inline void answer_101_split(rconn *k) {
  const char *key = strcasestr(k->buf, "\r\nSec-WebSocket-Key:");
  char accept[DX_HANDSHAKE_ACCEPT_LEN + 1] = "";
  if (key) {
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ') key++;
    dx_handshake_accept_key(key, strcspn(key, "\r"), accept);
  }
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  size_t m = 40000;
  k->pending_len = (size_t)n - 20 + 4 + m;
  k->pending = malloc(k->pending_len);
  memcpy(k->pending, head + 20, (size_t)n - 20);
  unsigned char *f = (unsigned char *)k->pending + n - 20;
  f[0] = 0x82;
  f[1] = 126;
  f[2] = (unsigned char)(m >> 8);
  f[3] = (unsigned char)m;
  for (size_t i = 0; i < m; i++) f[4 + i] = (unsigned char)(i % 253);
  write_all(k->fd, head, 20);
  dx_timer_start(&k->later, 50, 0);
}

/* The 101 one byte per loop turn (a 1 ms repeating timer): the client
 * reads each byte on its own. */
static inline void answer_101_dribble(rconn *k) {
  const char *key = strcasestr(k->buf, "\r\nSec-WebSocket-Key:");
  char accept[DX_HANDSHAKE_ACCEPT_LEN + 1] = "";
  if (key) {
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ') key++;
    dx_handshake_accept_key(key, strcspn(key, "\r"), accept);
  }
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Padding: "
                   "%0100d\r\n\r\n",
                   accept, 0);
  k->pending = malloc((size_t)n);
  memcpy(k->pending, head, (size_t)n);
  k->pending_len = (size_t)n;
  k->pending_pos = 0;
  dx_timer_start(&k->later, 1, 1);
}

static inline void answer_101(rconn *k, const char *extra, const void *then, size_t then_len) {
  const char *key = strcasestr(k->buf, "\r\nSec-WebSocket-Key:");
  char accept[DX_HANDSHAKE_ACCEPT_LEN + 1] = "";
  if (key) {
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ') key++;
    size_t kl = strcspn(key, "\r");
    dx_handshake_accept_key(key, kl, accept);
  }
  char resp[1024];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                   accept, extra ? extra : "");
  if (then_len && (size_t)n + then_len < sizeof resp) {
    memcpy(resp + n, then, then_len);
    n += (int)then_len;
  }
  write_all(k->fd, resp, (size_t)n);
}

static inline void on_up_read(dx_io *io, unsigned ev) {
  (void)ev;
  rconn *k = dx_container_of(io, rconn, up_io);
  char b[65536];
  ssize_t n = read(k->up_fd, b, sizeof b);
  if (n > 0) {
    write_all(k->fd, b, (size_t)n);
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    rconn_close(k);
  }
}

static inline void proxy_answer(rconn *k, size_t head_len) {
  rs *r = k->srv;
  if (r->mode == RS_PROXY_403) {
    const char *resp = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    write_all(k->fd, resp, strlen(resp));
    return;
  }
  int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(up, (struct sockaddr *)&a, sizeof a) != 0) { /* loopback: completes at once */
    close(up);
    const char *resp = "HTTP/1.1 502 Bad Gateway\r\n\r\n";
    write_all(k->fd, resp, strlen(resp));
    return;
  }
  fcntl(up, F_SETFL, O_NONBLOCK);
  k->up_fd = up;
  dx_io_init(r->loop, &k->up_io, up, on_up_read);
  dx_io_start(&k->up_io, DX_READABLE);
  const char *ok = r->proxy_ok ? r->proxy_ok
                               : "HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n";
  write_all(k->fd, ok, strlen(ok));
  if (k->len > head_len) write_all(up, k->buf + head_len, k->len - head_len);
}

static inline void on_rconn_read(dx_io *io, unsigned ev) {
  (void)ev;
  rconn *k = dx_container_of(io, rconn, io);
  rs *r = k->srv;
  char tmp[65536];
  ssize_t n = read(k->fd, tmp, sizeof tmp);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    k->eof = true;
    r->eofs++;
    rconn_close(k);
    return;
  }
  if (n < 0) return;
  if (k->answered) {
    if (k->up_fd >= 0) {
      write_all(k->up_fd, tmp, (size_t)n);
    } else {
      size_t room = sizeof r->after - r->after_len;
      size_t take = (size_t)n < room ? (size_t)n : room;
      memcpy(r->after + r->after_len, tmp, take);
      r->after_len += take;
    }
    return;
  }
  size_t take = (size_t)n < sizeof k->buf - 1 - k->len ? (size_t)n : sizeof k->buf - 1 - k->len;
  memcpy(k->buf + k->len, tmp, take);
  k->len += take;
  k->buf[k->len] = 0;
  char *end = strstr(k->buf, "\r\n\r\n");
  if (!end) return;
  size_t head_len = (size_t)(end + 4 - k->buf);
  snprintf(r->first_line, sizeof r->first_line, "%.*s", (int)strcspn(k->buf, "\r"), k->buf);
  if (!r->head[0]) snprintf(r->head, sizeof r->head, "%.*s", (int)head_len, k->buf);
  k->answered = true;
  static const unsigned char masked[] = {0x81,    0x85,    1,       2,       3,      4,
                                         'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
  switch (r->mode) {
  case RS_BAD_ACCEPT: {
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    write_all(k->fd, resp, strlen(resp));
    break;
  }
  case RS_STATUS_200: {
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
    write_all(k->fd, resp, strlen(resp));
    break;
  }
  case RS_SILENT:
    break;
  case RS_MASKED_FRAME:
    answer_101(k, NULL, masked, sizeof masked);
    break;
  case RS_OPEN_MUTE:
    answer_101(k, NULL, NULL, 0);
    break;
  case RS_OPEN_RESET:
    answer_101(k, NULL, NULL, 0);
    dx_timer_start(&k->later, 50, 0);
    break;
  case RS_SPLIT_HEAD:
    answer_101_split(k);
    break;
  case RS_DRIBBLE:
    answer_101_dribble(k);
    break;
  case RS_PROXY_SPLIT_JUNK: {
    /* A 200 in two pieces, then bytes nobody asked for. */
    const char *first = "HTTP/1.1 200 Connection established\r\n";
    write_all(k->fd, first, strlen(first));
    const char *second = "\r\nNOT-HTTP garbage\r\n\r\n";
    k->pending_len = strlen(second);
    k->pending = malloc(k->pending_len);
    memcpy(k->pending, second, k->pending_len);
    dx_timer_start(&k->later, 50, 0);
    break;
  }
  case RS_UNREQ_EXTENSION:
    answer_101(k, "Sec-WebSocket-Extensions: permessage-deflate\r\n", NULL, 0);
    break;
  case RS_UNREQ_PROTOCOL:
    answer_101(k, "Sec-WebSocket-Protocol: chat.v9\r\n", NULL, 0);
    break;
  case RS_EOF_IN_HANDSHAKE:
    write_all(k->fd, "HTTP/1.1 101 Swi", 16);
    rconn_close(k);
    break;
  case RS_GARBAGE: {
    const char *resp = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    write_all(k->fd, resp, strlen(resp));
    break;
  }
  case RS_PROXY:
  case RS_PROXY_403:
    proxy_answer(k, head_len);
    break;
  }
}

static inline void on_raccept(dx_io *io, unsigned ev) {
  (void)ev;
  rs *r = dx_container_of(io, rs, lio);
  int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  if (r->nconns >= 8) {
    close(fd);
    return;
  }
  rconn *k = calloc(1, sizeof *k);
  k->srv = r;
  k->fd = fd;
  k->up_fd = -1;
  dx_timer_init(r->loop, &k->later, send_later);
  r->conns[r->nconns++] = k;
  dx_io_init(r->loop, &k->io, fd, on_rconn_read);
  dx_io_start(&k->io, DX_READABLE);
}

static inline void rs_start(rs *r, dx_loop *loop, rs_mode mode) {
  memset(r, 0, sizeof *r);
  r->loop = loop;
  r->mode = mode;
  r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ_INT(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(r->lfd, 16), 0);
  r->port = fd_port(r->lfd);
  dx_io_init(loop, &r->lio, r->lfd, on_raccept);
  dx_io_start(&r->lio, DX_READABLE);
}

static inline void rs_stop(rs *r) {
  dx_io_stop(&r->lio);
  close(r->lfd);
  for (int i = 0; i < r->nconns; i++) {
    rconn_close(r->conns[i]);
    free(r->conns[i]);
  }
  r->nconns = 0;
}

#endif /* DX_TEST_CLIENT_HELPERS_H */
