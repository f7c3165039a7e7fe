/* dx_connect / dx_client: a real dx_loop in-process, with the library's own
 * dx_server in the same loop as the peer, or a raw listening socket scripted
 * by hand for servers that misbehave (wrong accept key, HTTP 200, silence,
 * masked frames, unrequested extension/subprotocol) and for an HTTP CONNECT
 * proxy. Also reconnect: backoff policy and timing, final close codes,
 * attempt limits.
 *
 * Ports are always ephemeral. Where a test needs a port that stays free
 * (connection refused, a server that comes back on the same port), a socket
 * bound with SO_REUSEADDR|SO_REUSEPORT but not listening holds it: connects
 * to it are refused, no other process can take it, and a dx_server with
 * .reuseport can still bind it. */
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

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run loop turns until `cond` holds or `ms` of wall-clock time passed. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
  do {                                                                                             \
    uint64_t deadline_ = now_ms() + (uint64_t)(ms);                                                \
    while (!(cond) && now_ms() < deadline_) dx_loop_run_once((loop), 10);                          \
  } while (0)

/* Run the loop for `ms` whatever happens. */
static void run_for(dx_loop *loop, int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  while (now_ms() < end) dx_loop_run_once(loop, 10);
}

static bool contains(const char *hay, const char *needle) {
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

static int hold_port(int port) {
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

static int fd_port(int fd) {
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

static void log_ev(cl *s, int type, int attempt, int delay) {
  if (s->nev < 128) {
    s->ev[s->nev].type = type;
    s->ev[s->nev].attempt = attempt;
    s->ev[s->nev].delay = delay;
    s->ev[s->nev].at = now_ms();
    s->nev++;
  }
}

/* dx_client_free from inside a handler, if this is the one. */
static void maybe_free(cl *s, int where) {
  if (s->free_in != where || s->freed) return;
  s->freed = true;
  dx_client_free(s->c);
}

static void c_open(dx_ws *ws, void *user) {
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

static void c_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
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

static void c_ping(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  cl *s = user;
  s->pings++;
  CHECK(len == 2 && memcmp(data, "sp", 2) == 0);
}

static void c_pong(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  cl *s = user;
  s->pongs++;
  snprintf(s->pong_data, sizeof s->pong_data, "%.*s", (int)len, (const char *)data);
}

static void c_error(dx_ws *ws, int err, const char *msg, void *user) {
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

static void c_close(dx_ws *ws, int code, const char *reason, size_t reason_len, bool clean,
                    void *user) {
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

static void c_drain(dx_ws *ws, void *user) {
  cl *s = user;
  s->drains++;
  s->buffered_at_drain = dx_ws_buffered(ws);
}

static void c_reconnecting(dx_client *c, int attempt, int delay, void *user) {
  cl *s = user;
  CHECK(c == s->c);
  s->reconnectings++;
  log_ev(s, EV_RECONNECTING, attempt, delay);
}

static void c_done(dx_client *c, void *user) {
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
static void cl_start(cl *s, dx_loop *loop, const char *url, const dx_client_opts *o) {
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

static void cl_free(cl *s) {
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

static int s_upgrade(dx_ws *ws, void *user) {
  sv *s = user;
  const char *h = dx_ws_header(ws, "X-Test");
  snprintf(s->header_seen, sizeof s->header_seen, "%s", h ? h : "");
  const char *o = dx_ws_origin(ws);
  snprintf(s->origin_seen, sizeof s->origin_seen, "%s", o ? o : "");
  snprintf(s->query_seen, sizeof s->query_seen, "%s", dx_ws_query(ws));
  if (strcmp(dx_ws_path(ws), "/forbidden") == 0) return 403;
  return 0;
}

static void s_open(dx_ws *ws, void *user) {
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

static void s_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  sv *s = user;
  s->msgs++;
  CHECK(dx_ws_send(ws, op, data, len) >= 0);
}

static void s_ping(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  (void)data;
  (void)len;
  sv *s = user;
  s->pings++;
}

static void s_pong(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  sv *s = user;
  s->pongs++;
  CHECK(len == 2 && memcmp(data, "sp", 2) == 0);
}

static void s_close(dx_ws *ws, int code, const char *reason, size_t reason_len, bool clean,
                    void *user) {
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
static void sv_start(sv *s, dx_loop *loop, int port) {
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

static void sv_stopped(dx_server *srv, void *arg) {
  (void)srv;
  ((sv *)arg)->stopped = true;
}

static void sv_stop(sv *s) {
  if (!s->srv) return;
  s->stopped = false;
  dx_server_shutdown(s->srv, 500, sv_stopped, s);
  RUN_UNTIL(s->loop, s->stopped, 3000);
  CHECK(s->stopped);
  dx_server_free(s->srv);
  s->srv = NULL;
}

/* Let aborted streams and free_later entries finish, then free the loop. */
static void loop_done(dx_loop *loop) {
  run_for(loop, 50);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

static void url_for(char *buf, size_t cap, int port, const char *path) {
  snprintf(buf, cap, "ws://127.0.0.1:%d%s", port, path);
}

/* ------------------------------------------------------------------ */
/* Round trips against dx_server.                                       */

TEST(text_binary_roundtrip) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/echo?room=1");
  cl c;
  cl_start(&c, loop, url,
           &(dx_client_opts){.origin = "https://example.test", .headers = "X-Test: 42\r\n"});
  CHECK(dx_client_ws(c.c) == NULL); /* still connecting */
  CHECK_EQ_INT(dx_client_send(c.c, DX_OP_TEXT, "x", 1), DX_ECLOSED);
  RUN_UNTIL(loop, c.opens == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK(c.client_matches);
  CHECK_STR(s.header_seen, "42");
  CHECK_STR(s.origin_seen, "https://example.test");
  CHECK_STR(s.query_seen, "room=1");
  CHECK(dx_client_ws(c.c) != NULL);
  CHECK_STR(dx_ws_path(dx_client_ws(c.c)), "/echo");
  CHECK_STR(dx_ws_query(dx_client_ws(c.c)), "room=1");
  CHECK(dx_ws_protocol(dx_client_ws(c.c)) == NULL);

  const char *text = "héllo wörld ✓";
  CHECK(dx_client_send(c.c, DX_OP_TEXT, text, strlen(text)) >= 0);
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.msgs, 1);
  CHECK_EQ_INT(c.last_op, DX_OP_TEXT);
  CHECK(c.last_len == strlen(text) && memcmp(c.last_msg, text, c.last_len) == 0);

  unsigned char bin[256];
  for (int i = 0; i < 256; i++) bin[i] = (unsigned char)i;
  CHECK(dx_ws_send(dx_client_ws(c.c), DX_OP_BINARY, bin, sizeof bin) >= 0);
  RUN_UNTIL(loop, c.msgs == 2, 5000);
  CHECK_EQ_INT(c.last_op, DX_OP_BINARY);
  CHECK(c.last_len == 256 && memcmp(c.last_msg, bin, 256) == 0);

  /* Empty messages, and many pipelined in one turn. */
  CHECK(dx_client_send(c.c, DX_OP_TEXT, "", 0) >= 0);
  RUN_UNTIL(loop, c.msgs == 3, 5000);
  CHECK_EQ_INT(c.last_len, 0);
  for (int i = 0; i < 100; i++) {
    char m[16];
    snprintf(m, sizeof m, "m%d", i);
    CHECK(dx_client_send(c.c, DX_OP_TEXT, m, strlen(m)) >= 0);
  }
  RUN_UNTIL(loop, c.msgs == 103, 5000);
  CHECK_EQ_INT(c.msgs, 103);
  CHECK_STR((char *)c.last_msg, "m99");

  CHECK_EQ_INT(c.errors, 0);
  cl_free(&c);
  sv_stop(&s);
  CHECK_EQ_INT(c.closes, 0); /* dx_client_free calls no handlers */
  loop_done(loop);
}

TEST(large_messages) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.opens == 1, 5000);
  size_t n = (size_t)4 << 20;
  unsigned char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i * 2654435761u >> 13);
  CHECK(dx_client_send(c.c, DX_OP_BINARY, big, n) >= 0);
  RUN_UNTIL(loop, c.msgs == 1, 20000);
  CHECK_EQ_INT(c.msgs, 1);
  CHECK_EQ_INT(c.last_op, DX_OP_BINARY);
  CHECK(c.last_len == n && memcmp(c.last_msg, big, n) == 0);

  /* A 1 MiB text of multi-byte characters (UTF-8 validated on both ends). */
  size_t tn = (size_t)1 << 20;
  char *t = malloc(tn);
  for (size_t i = 0; i + 3 <= tn; i += 3) memcpy(t + i, "\xe2\x9c\x93", 3); /* ✓ */
  tn = tn / 3 * 3;
  CHECK(dx_client_send(c.c, DX_OP_TEXT, t, tn) >= 0);
  RUN_UNTIL(loop, c.msgs == 2, 20000);
  CHECK_EQ_INT(c.last_op, DX_OP_TEXT);
  CHECK(c.last_len == tn && memcmp(c.last_msg, t, tn) == 0);
  free(t);
  free(big);
  CHECK_EQ_INT(c.errors, 0);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(max_message_enforced_by_client) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.max_message = 1000});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  char buf[2000];
  memset(buf, 'x', sizeof buf);
  CHECK(dx_client_send(c.c, DX_OP_TEXT, buf, sizeof buf) >= 0); /* the echo is too big */
  RUN_UNTIL(loop, c.closes == 1, 5000);
  CHECK_EQ_INT(c.msgs, 0);
  CHECK_EQ_INT(c.close_code, 1009);
  CHECK(!c.clean);
  /* max_frame defaults to max_message: the frame is what is too big here */
  CHECK(c.last_err == DX_EMESSAGE_TOO_BIG || c.last_err == DX_EFRAME_TOO_BIG);
  CHECK_CONTAINS(c.errmsg, "larger than the maximum");
  RUN_UNTIL(loop, s.closes == 1, 5000);
  CHECK_EQ_INT(s.close_code, 1009);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(fragmented_both_ways) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/frag");
  cl c;
  cl_start(&c, loop, url, NULL);
  /* The server sends "abc" "" "defghi" with a ping in between. */
  RUN_UNTIL(loop, c.msgs == 1 && c.pings == 1, 5000);
  CHECK_EQ_INT(c.msgs, 1);
  CHECK_EQ_INT(c.pings, 1);
  CHECK_EQ_INT(c.last_op, DX_OP_BINARY);
  CHECK(c.last_len == 9 && memcmp(c.last_msg, "abcdefghi", 9) == 0);

  /* The client sends a fragmented text message, a ping in the middle. */
  dx_ws *ws = dx_client_ws(c.c);
  CHECK(ws != NULL);
  CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_TEXT, "Hel", 3, true), DX_SENT);
  CHECK_EQ_INT(dx_ws_send(ws, DX_OP_PING, "ping", 4), DX_SENT);
  /* A data message may not interleave with the fragmented one. */
  CHECK(dx_ws_send(ws, DX_OP_TEXT, "no", 2) < 0);
  CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_CONT, "lo w\xc3", 5, true), DX_SENT); /* split ö */
  CHECK_EQ_INT(dx_ws_send_fragment(ws, DX_OP_CONT, "\xb6rld", 4, false), DX_SENT);
  RUN_UNTIL(loop, c.msgs == 2 && c.pongs == 1, 5000);
  CHECK_EQ_INT(c.msgs, 2);
  CHECK_EQ_INT(c.pongs, 1);
  CHECK_STR(c.pong_data, "ping");
  CHECK_EQ_INT(c.last_op, DX_OP_TEXT);
  CHECK_STR((char *)c.last_msg, "Hello w\xc3\xb6rld");
  CHECK_EQ_INT(s.msgs, 1);
  CHECK_EQ_INT(s.pings, 1);

  /* Fragmenting a 256 KiB binary message in 1000-byte pieces. */
  size_t n = 256 << 10;
  unsigned char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i % 251);
  for (size_t off = 0; off < n; off += 1000) {
    size_t len = n - off < 1000 ? n - off : 1000;
    CHECK(dx_ws_send_fragment(ws, off ? DX_OP_CONT : DX_OP_BINARY, big + off, len, off + len < n) >=
          0);
  }
  RUN_UNTIL(loop, c.msgs == 3, 10000);
  CHECK(c.last_len == n && memcmp(c.last_msg, big, n) == 0);
  free(big);
  CHECK_EQ_INT(c.errors, 0);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(ping_pong) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/ping");
  cl c;
  cl_start(&c, loop, url, NULL);
  /* Server → client ping "sp": the client answers by itself. */
  RUN_UNTIL(loop, s.pongs == 1, 5000);
  CHECK_EQ_INT(c.pings, 1);
  CHECK_EQ_INT(s.pongs, 1);
  /* Client → server ping "ping". */
  CHECK_EQ_INT(dx_ws_send(dx_client_ws(c.c), DX_OP_PING, "ping", 4), DX_SENT);
  RUN_UNTIL(loop, c.pongs == 1, 5000);
  CHECK_EQ_INT(c.pongs, 1);
  CHECK_STR(c.pong_data, "ping");
  CHECK_EQ_INT(s.pings, 1);
  /* Control payloads are capped at 125 bytes. */
  char big[126] = {0};
  CHECK_EQ_INT(dx_ws_send(dx_client_ws(c.c), DX_OP_PING, big, sizeof big), DX_EINVAL);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(client_ping_interval_keeps_alive) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.ping_interval = 100, .pong_timeout = 1000});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  RUN_UNTIL(loop, s.pings >= 2 && c.pongs >= 2, 3000);
  CHECK(s.pings >= 2);
  CHECK(c.pongs >= 2);
  CHECK_STR(c.pong_data, "");
  CHECK_EQ_INT(c.closes, 0);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(subprotocol_negotiated) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/proto");
  static const char *const offer[] = {"chat.v1", NULL};
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.protocols = offer});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_STR(c.protocol, "chat.v1");
  cl_free(&c);

  /* Both offered: the server's preference wins. */
  static const char *const offer2[] = {"chat.v1", "chat.v2", NULL};
  cl_start(&c, loop, url, &(dx_client_opts){.protocols = offer2});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  CHECK_STR(c.protocol, "chat.v2");
  cl_free(&c);

  /* None in common: no protocol, still open (RFC 6455 4.2.2). */
  static const char *const offer3[] = {"other", NULL};
  cl_start(&c, loop, url, &(dx_client_opts){.protocols = offer3});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_STR(c.protocol, "");
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(server_rejects_upgrade) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/forbidden");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.opens, 0);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_EHTTP_STATUS);
  CHECK_CONTAINS(c.errmsg, "403");
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK(!c.clean);
  CHECK(c.error_before_close);
  CHECK(dx_client_done(c.c));
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

/* ------------------------------------------------------------------ */
/* Close codes both ways.                                               */

TEST(client_closes_4001) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  CHECK_EQ_INT(dx_client_close(c.c, 4001, "client bye"), 0);
  CHECK_EQ_INT(dx_client_close(c.c, 4001, "again"), DX_ECLOSED);
  CHECK(dx_client_send(c.c, DX_OP_TEXT, "late", 4) < 0);
  RUN_UNTIL(loop, c.dones == 1 && s.closes == 1, 5000);
  CHECK_EQ_INT(s.closes, 1);
  CHECK_EQ_INT(s.close_code, 4001);
  CHECK_STR(s.reason, "client bye");
  CHECK(s.clean);
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, 4001); /* the server echoes our code */
  CHECK(c.clean);
  CHECK_EQ_INT(c.errors, 0);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.reconnectings, 0); /* closed by us: no reconnect */
  CHECK(dx_client_done(c.c));
  CHECK(dx_client_ws(c.c) == NULL);
  run_for(loop, 100);
  CHECK_EQ_INT(c.opens, 1);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(server_closes_4002) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/close4002");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, 4002);
  CHECK_STR(c.reason, "server says bye");
  CHECK(c.clean);
  CHECK_EQ_INT(c.errors, 0);
  RUN_UNTIL(loop, s.closes == 1, 5000);
  CHECK_EQ_INT(s.close_code, 4002);
  CHECK(s.clean);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(server_going_away_without_reconnect) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.opens == 1, 5000);
  sv_stop(&s); /* closes with 1001 */
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.close_code, 1001);
  CHECK(c.clean);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.reconnectings, 0);
  cl_free(&c);
  loop_done(loop);
}

TEST(free_in_on_done) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/close4002");
  cl c;
  cl_start(&c, loop, url, NULL);
  c.free_in_done = true;
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK(c.c == NULL);
  run_for(loop, 50);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

/* dx_client_free is safe inside the client's own handlers, and no handler
 * is called after it, even for bytes already read in the same turn. */
static void free_in_handler_case(const char *path, int where, int want_opens, int want_msgs) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  int hold = hold_port(0);
  char url[128];
  if (path)
    url_for(url, sizeof url, s.port, path);
  else
    url_for(url, sizeof url, fd_port(hold), "/"); /* refused */
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 10});
  c.free_in = where;
  RUN_UNTIL(loop, c.freed, 5000);
  CHECK(c.freed);
  run_for(loop, 200);
  if (c.calls_after_free)
    fprintf(stderr, "free in handler %d: %d handler call(s) after dx_client_free\n", where,
            c.calls_after_free);
  CHECK_EQ_INT(c.calls_after_free, 0);
  CHECK_EQ_INT(c.opens, want_opens);
  CHECK_EQ_INT(c.msgs, want_msgs);
  CHECK_EQ_INT(c.dones, 0);
  CHECK_EQ_INT(c.reconnectings, 0);
  cl_free(&c);
  sv_stop(&s);
  close(hold);
  loop_done(loop);
}

TEST(free_in_handlers) {
  free_in_handler_case("/burst", FREE_IN_OPEN, 1, 0);
  free_in_handler_case("/burst", FREE_IN_MESSAGE, 1, 1);
  free_in_handler_case("/close4002", FREE_IN_CLOSE, 1, 0);
  free_in_handler_case(NULL, FREE_IN_ERROR, 0, 0);
  free_in_handler_case(NULL, FREE_IN_CLOSE, 0, 0);
}

TEST(close_while_connecting) {
  dx_loop *loop = dx_loop_new(NULL);
  /* A listener that never answers: the attempt stays in the handshake. */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(lfd, 8), 0);
  char url[128];
  url_for(url, sizeof url, fd_port(lfd), "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true});
  run_for(loop, 50);
  CHECK_EQ_INT(c.opens, 0);
  CHECK_EQ_INT(dx_client_close(c.c, 1000, NULL), 0);
  RUN_UNTIL(loop, c.dones == 1, 2000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK_EQ_INT(c.reconnectings, 0);
  cl_free(&c);
  close(lfd);
  loop_done(loop);
}

/* ------------------------------------------------------------------ */
/* Reconnect.                                                           */

typedef struct restart {
  dx_timer t;
  sv *s;
  int port;
  bool fired;
} restart;

static void restart_cb(dx_timer *t) {
  restart *r = dx_container_of(t, restart, t);
  sv_start(r->s, t->loop, r->port);
  r->fired = true;
}

TEST(reconnect_backoff_policy_and_timing) {
  dx_loop *loop = dx_loop_new(NULL);
  int hold = hold_port(0);
  int port = fd_port(hold);
  sv s;
  sv_start(&s, loop, port);
  CHECK_EQ_INT(s.port, port);
  char url[128];
  url_for(url, sizeof url, port, "/");
  cl c;
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true,
                             .reconnect_initial = 100,
                             .reconnect_max = 400,
                             .reconnect_factor = 2});
  c.send_on_open = "hello";
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.msgs, 1);

  /* The server goes away (1001), and comes back 1.5 s later. */
  sv_stop(&s);
  restart r = {.s = &s, .port = port};
  dx_timer_init(loop, &r.t, restart_cb);
  dx_timer_start(&r.t, 1500, 0);
  RUN_UNTIL(loop, c.msgs == 2, 8000);
  CHECK(r.fired);
  CHECK_EQ_INT(c.opens, 2);
  CHECK_EQ_INT(c.msgs, 2); /* sending resumed on the new connection */
  CHECK_STR((char *)c.last_msg, "hello");
  CHECK_EQ_INT(c.dones, 0);
  CHECK(c.error_before_close);
  /* During 1.5 s with delays of at most 400 ms there were several tries. */
  CHECK(c.reconnectings >= 4);
  CHECK_EQ_INT(c.errors, c.reconnectings - 1); /* each refused but the last */

  int expect_attempt = 1;
  for (int i = 0; i < c.nev; i++) {
    if (c.ev[i].type != EV_RECONNECTING) continue;
    int n = c.ev[i].attempt, d = c.ev[i].delay;
    CHECK_EQ_INT(n, expect_attempt);
    expect_attempt++;
    long cap = 100;
    for (int k = 1; k < n && cap < 400; k++) cap *= 2;
    if (cap > 400) cap = 400;
    if (d < 0 || d > cap) fprintf(stderr, "attempt %d: delay %d not in [0, %ld]\n", n, d, cap);
    CHECK(d >= 0 && d <= cap);
    /* The next attempt's outcome (refused or open) comes `d` ms later. */
    int j = i + 1;
    while (j < c.nev && c.ev[j].type == EV_RECONNECTING) j++;
    CHECK(j < c.nev);
    if (j >= c.nev) break;
    long gap = (long)(c.ev[j].at - c.ev[i].at);
    if (gap < d - 25 || gap > d + 300)
      fprintf(stderr, "attempt %d: delay %d ms but the attempt came after %ld ms\n", n, d, gap);
    CHECK(gap >= d - 25 && gap <= d + 300);
  }
  /* The error for a refused attempt says so. */
  CHECK_CONTAINS(c.errmsg, "connection refused");

  dx_client_close(c.c, 1000, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  sv_stop(&s);
  close(hold);
  loop_done(loop);
}

static void close_4000(dx_ws *ws, void *arg) {
  (void)arg;
  dx_ws_close(ws, 4000, NULL);
}

static int last_attempt(const cl *c) {
  for (int i = c->nev - 1; i >= 0; i--)
    if (c->ev[i].type == EV_RECONNECTING) return c->ev[i].attempt;
  return 0;
}

TEST(reconnect_count_resets_after_stable_connection) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(
      &c, loop, url,
      &(dx_client_opts){
          .reconnect = true, .reconnect_initial = 10, .reconnect_max = 40, .reconnect_reset = 400});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  /* Connections that drop at once count as failed attempts in a row. */
  dx_server_each(s.srv, close_4000, NULL);
  RUN_UNTIL(loop, c.opens == 2, 5000);
  CHECK_EQ_INT(c.reconnectings, 1);
  CHECK_EQ_INT(last_attempt(&c), 1);
  dx_server_each(s.srv, close_4000, NULL);
  RUN_UNTIL(loop, c.opens == 3, 5000);
  CHECK_EQ_INT(c.reconnectings, 2);
  CHECK_EQ_INT(last_attempt(&c), 2);
  /* One that stayed open for reconnect_reset ms restarts the count. */
  run_for(loop, 600);
  dx_server_each(s.srv, close_4000, NULL);
  RUN_UNTIL(loop, c.opens == 4, 5000);
  CHECK_EQ_INT(c.reconnectings, 3);
  CHECK_EQ_INT(last_attempt(&c), 1);
  CHECK_EQ_INT(c.close_code, 4000);
  CHECK_EQ_INT(c.dones, 0);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(reconnect_attempts_limit) {
  dx_loop *loop = dx_loop_new(NULL);
  int hold = hold_port(0); /* nothing listens: every attempt is refused */
  char url[128];
  url_for(url, sizeof url, fd_port(hold), "/");
  cl c;
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true,
                             .reconnect_initial = 20,
                             .reconnect_max = 40,
                             .reconnect_attempts = 3});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.reconnectings, 3);
  CHECK_EQ_INT(c.errors, 4); /* the first try and three retries */
  CHECK_EQ_INT(c.closes, 4);
  CHECK_EQ_INT(c.last_err, DX_ECONNREFUSED);
  CHECK(dx_client_done(c.c));
  run_for(loop, 200); /* and nothing more happens */
  CHECK_EQ_INT(c.errors, 4);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  close(hold);
  loop_done(loop);
}

TEST(policy_close_is_final) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/policy");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 10});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.close_code, 1008);
  CHECK_STR(c.reason, "go away");
  CHECK_EQ_INT(c.reconnectings, 0);
  run_for(loop, 150);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(s.opens, 1);
  cl_free(&c);

  /* Other codes reconnect. */
  url_for(url, sizeof url, s.port, "/close4000");
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 10});
  RUN_UNTIL(loop, c.opens >= 2, 5000);
  CHECK(c.opens >= 2);
  CHECK(c.reconnectings >= 1);
  CHECK_EQ_INT(c.dones, 0);
  dx_client_close(c.c, 1000, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(final_codes_override) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  static const uint16_t finals[] = {4000, 0};
  char url[128];
  url_for(url, sizeof url, s.port, "/close4000");
  cl c;
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true, .reconnect_initial = 10, .final_codes = finals});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.close_code, 4000);
  CHECK_EQ_INT(c.reconnectings, 0);
  cl_free(&c);

  /* With the override, 1008 is no longer final. */
  url_for(url, sizeof url, s.port, "/policy");
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true, .reconnect_initial = 10, .final_codes = finals});
  RUN_UNTIL(loop, c.reconnectings >= 1 && c.opens >= 2, 5000);
  CHECK(c.reconnectings >= 1);
  CHECK(c.opens >= 2);
  CHECK_EQ_INT(c.dones, 0);
  /* Closing while waiting to reconnect ends it at once. */
  RUN_UNTIL(loop, dx_client_ws(c.c) == NULL && c.closes == c.opens, 2000);
  dx_client_close(c.c, 1000, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  int opens = c.opens;
  run_for(loop, 100);
  CHECK_EQ_INT(c.opens, opens);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

/* ------------------------------------------------------------------ */
/* Connection failures.                                                 */

TEST(connection_refused) {
  dx_loop *loop = dx_loop_new(NULL);
  int hold = hold_port(0);
  char url[128];
  url_for(url, sizeof url, fd_port(hold), "/");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_ECONNREFUSED);
  CHECK_CONTAINS(c.errmsg, "connection refused");
  CHECK_CONTAINS(c.errmsg, "127.0.0.1");
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK(!c.clean);
  CHECK(c.error_before_close);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  close(hold);
  loop_done(loop);
}

TEST(dns_failure) {
  dx_loop *loop = dx_loop_new(NULL);
  cl c;
  cl_start(&c, loop, "ws://nonexistent.invalid:9001/", NULL);
  RUN_UNTIL(loop, c.dones == 1, 15000);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_ERESOLVE);
  CHECK_CONTAINS(c.errmsg, "DNS");
  CHECK_CONTAINS(c.errmsg, "nonexistent.invalid");
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK(!c.clean);
  cl_free(&c);
  loop_done(loop);
}

TEST(localhost_name_resolves) {
  /* "localhost" goes through the resolver thread; if it yields ::1 first,
   * that is refused and the next address is tried. */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  snprintf(url, sizeof url, "ws://localhost:%d/", s.port);
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.opens == 1 || c.closes == 1, 10000);
  CHECK_EQ_INT(c.opens, 1);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(free_while_resolving) {
  dx_loop *loop = dx_loop_new(NULL);
  cl c;
  cl_start(&c, loop, "ws://nonexistent.invalid/", NULL);
  cl_free(&c); /* the resolver thread finishes on its own */
  run_for(loop, 300);
  CHECK_EQ_INT(c.errors, 0);
  loop_done(loop);
}

TEST(invalid_arguments) {
  dx_loop *loop = dx_loop_new(NULL);
  const char *why = NULL;
  CHECK(dx_connect(loop, "http://127.0.0.1/", NULL, &client_handlers, NULL, &why) == NULL);
  CHECK_CONTAINS(why, "ws://");
  why = NULL;
  CHECK(dx_connect(loop, "ws://h:99999/", NULL, &client_handlers, NULL, &why) == NULL);
  CHECK_CONTAINS(why, "port");
  why = NULL;
  CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.headers = "X-A: 1"}, &client_handlers, NULL,
                   &why) == NULL);
  CHECK(why != NULL);
  why = NULL;
  CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.proxy = "http://proxyhost"},
                   &client_handlers, NULL, &why) == NULL);
  CHECK_CONTAINS(why, "proxy");
  why = NULL;
  CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.proxy = "http://proxyhost:1/path"},
                   &client_handlers, NULL, &why) == NULL);
  CHECK_CONTAINS(why, "proxy");
  why = NULL;
  CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.proxy = "socks5://proxyhost:1"},
                   &client_handlers, NULL, &why) == NULL);
  CHECK_CONTAINS(why, "proxy");
  /* Request options are checked here, not when the request is written
   * (that failed every attempt, forever with reconnect on). */
  static const char *const bad_protos[][3] = {{"a b", NULL},
                                              {"", NULL},
                                              {"chat", "a,b", NULL},
                                              {"x\r\nX-Evil: 1", NULL},
                                              {"chat", "chat", NULL}};
  for (size_t i = 0; i < sizeof bad_protos / sizeof bad_protos[0]; i++) {
    why = NULL;
    CHECK(dx_connect(loop, "ws://h/",
                     &(dx_client_opts){.protocols = bad_protos[i], .reconnect = true},
                     &client_handlers, NULL, &why) == NULL);
    CHECK_CONTAINS(why, "subprotocol");
  }
  static const char *const bad_origins[] = {"x\ny", "x\ry", "a\tb\x01", ""};
  for (size_t i = 0; i < sizeof bad_origins / sizeof bad_origins[0]; i++) {
    why = NULL;
    CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.origin = bad_origins[i]}, &client_handlers,
                     NULL, &why) == NULL);
    CHECK_CONTAINS(why, "Origin");
  }
  static const char *const bad_headers[] = {
      "X-A: 1\r\nno colon\r\n", "X A: 1\r\n",           ": 1\r\n",
      "X-A: a\nb\r\n",          "X-A: a\rb\r\n",        "X-A: 1\r\n\r\n",
      "X-A: \x01\r\n",          "Host: other\r\n",      "sec-websocket-key: x\r\n",
      "Upgrade: h2c\r\n",       "Connection: close\r\n"};
  for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
    why = NULL;
    CHECK(dx_connect(loop, "ws://h/", &(dx_client_opts){.headers = bad_headers[i]},
                     &client_handlers, NULL, &why) == NULL);
    if (!contains(why, "header")) fprintf(stderr, "headers case %zu: %s\n", i, why);
    CHECK_CONTAINS(why, "header");
  }
  /* and good ones pass */
  static const char *const good_protos[] = {"chat.v1", "x-y_z~1", NULL};
  dx_client *ok = dx_connect(loop, "ws://127.0.0.1:1/",
                             &(dx_client_opts){.protocols = good_protos,
                                               .origin = "https://example.test:8443",
                                               .headers = "X-A: 1\r\nAuthorization: Bearer t\t1\r\n"
                                                          "X-Empty:\r\n"},
                             &client_handlers, NULL, &why);
  CHECK(ok != NULL);
  dx_client_free(ok);
  /* why may be NULL */
  CHECK(dx_connect(loop, "nope", NULL, &client_handlers, NULL, NULL) == NULL);
  dx_client_free(NULL);
  loop_done(loop);
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

static void write_all(int fd, const void *p, size_t n) {
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

static void rconn_close(rconn *k) {
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

static void send_later(dx_timer *t) {
  rconn *k = dx_container_of(t, rconn, later);
  if (k->fd >= 0) write_all(k->fd, k->pending, k->pending_len);
  free(k->pending);
  k->pending = NULL;
}

/* The 101 in two writes 50 ms apart: its first 20 bytes, then the rest of
 * the head together with a 40000-byte binary message (byte i = i % 253). */
static void answer_101_split(rconn *k) {
  const char *key = strcasestr(k->buf, "\r\nSec-WebSocket-Key:");
  char accept[DX_WS_ACCEPT_LEN + 1] = "";
  if (key) {
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ') key++;
    dx_ws_accept(key, strcspn(key, "\r"), accept);
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

static void answer_101(rconn *k, const char *extra, const void *then, size_t then_len) {
  const char *key = strcasestr(k->buf, "\r\nSec-WebSocket-Key:");
  char accept[DX_WS_ACCEPT_LEN + 1] = "";
  if (key) {
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ') key++;
    size_t kl = strcspn(key, "\r");
    dx_ws_accept(key, kl, accept);
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

static void on_up_read(dx_io *io, unsigned ev) {
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

static void proxy_answer(rconn *k, size_t head_len) {
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

static void on_rconn_read(dx_io *io, unsigned ev) {
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
  case RS_SPLIT_HEAD:
    answer_101_split(k);
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

static void on_raccept(dx_io *io, unsigned ev) {
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

static void rs_start(rs *r, dx_loop *loop, rs_mode mode) {
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

static void rs_stop(rs *r) {
  dx_io_stop(&r->lio);
  close(r->lfd);
  for (int i = 0; i < r->nconns; i++) {
    rconn_close(r->conns[i]);
    free(r->conns[i]);
  }
  r->nconns = 0;
}

/* Connect to a raw server in `mode`; expect on_error mentioning `needle`
 * with error `err`, then on_close with `code`, clean=false, then on_done. */
static void bad_server_case(rs_mode mode, const dx_client_opts *o, int err, const char *needle,
                            int code, int opens) {
  dx_loop *loop = dx_loop_new(NULL);
  rs r;
  rs_start(&r, loop, mode);
  char url[128];
  url_for(url, sizeof url, r.port, "/bad");
  cl c;
  cl_start(&c, loop, url, o);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.opens, opens);
  CHECK_EQ_INT(c.errors, 1);
  if (c.last_err != err)
    fprintf(stderr, "mode %d: error %s (%s), expected %s\n", (int)mode, dx_errname(c.last_err),
            c.errmsg, dx_errname(err));
  CHECK_EQ_INT(c.last_err, err);
  CHECK_CONTAINS(c.errmsg, needle);
  CHECK_EQ_INT(c.closes, 1);
  CHECK_EQ_INT(c.close_code, code);
  CHECK(!c.clean);
  CHECK(c.error_before_close);
  CHECK(dx_client_done(c.c));
  CHECK(dx_client_ws(c.c) == NULL);
  CHECK_CONTAINS(r.first_line, "GET /bad HTTP/1.1");
  if (mode == RS_MASKED_FRAME) {
    /* The client failed the connection with a (masked) close frame 1002. */
    RUN_UNTIL(loop, r.eofs == 1, 3000);
    CHECK(r.after_len >= 8);
    if (r.after_len >= 8) {
      CHECK_EQ_INT(r.after[0], 0x88);
      CHECK(r.after[1] & 0x80);
      unsigned hi = r.after[6] ^ r.after[2], lo = r.after[7] ^ r.after[3];
      CHECK_EQ_INT(hi << 8 | lo, 1002);
    }
  }
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

TEST(bad_server_wrong_accept) {
  bad_server_case(RS_BAD_ACCEPT, NULL, DX_EWS_ACCEPT, "Sec-WebSocket-Accept", 1006, 0);
}

TEST(bad_server_status_200) {
  bad_server_case(RS_STATUS_200, NULL, DX_EHTTP_STATUS, "HTTP status 200", 1006, 0);
}

TEST(bad_server_silent_times_out) {
  uint64_t t0 = now_ms();
  bad_server_case(RS_SILENT, &(dx_client_opts){.connect_timeout = 500}, DX_ETIMEDOUT, "timed out",
                  1006, 0);
  uint64_t took = now_ms() - t0;
  CHECK(took >= 450 && took < 4000);
}

TEST(bad_server_masked_frame) {
  bad_server_case(RS_MASKED_FRAME, NULL, DX_EFRAME_MASKED, "masked", 1002, 1);
}

TEST(bad_server_unrequested_extension) {
  bad_server_case(RS_UNREQ_EXTENSION, NULL, DX_EWS_UNOFFERED_EXTENSION, "extension", 1006, 0);
}

TEST(bad_server_unrequested_subprotocol) {
  bad_server_case(RS_UNREQ_PROTOCOL, NULL, DX_EWS_UNOFFERED_PROTOCOL, "subprotocol", 1006, 0);
  static const char *const offer[] = {"chat.v1", NULL};
  bad_server_case(RS_UNREQ_PROTOCOL, &(dx_client_opts){.protocols = offer},
                  DX_EWS_UNOFFERED_PROTOCOL, "subprotocol", 1006, 0);
}

TEST(bad_server_not_http) {
  bad_server_case(RS_GARBAGE, NULL, DX_EHTTP_MALFORMED, "bad handshake response", 1006, 0);
}

TEST(bad_server_eof_in_handshake) {
  bad_server_case(RS_EOF_IN_HANDSHAKE, NULL, DX_ECLOSED,
                  "closed the connection during the opening handshake", 1006, 0);
}

TEST(dead_server_detected_by_ping) {
  /* Open, then silence: with a ping interval the client notices. */
  bad_server_case(RS_OPEN_MUTE, &(dx_client_opts){.ping_interval = 100, .pong_timeout = 200},
                  DX_ETIMEDOUT, "did not answer a ping", 1006, 1);
}

TEST(split_response_then_big_message) {
  /* Regression: bytes after a 101 head that arrived in pieces were cut at
   * the handshake buffer's size (16 KiB), losing the start of the data. */
  dx_loop *loop = dx_loop_new(NULL);
  rs r;
  rs_start(&r, loop, RS_SPLIT_HEAD);
  char url[128];
  url_for(url, sizeof url, r.port, "/");
  cl c;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.msgs == 1 || c.closes == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.msgs, 1);
  CHECK_EQ_INT(c.errors, 0);
  CHECK_EQ_INT(c.last_op, DX_OP_BINARY);
  CHECK_EQ_INT(c.last_len, 40000);
  bool same = c.last_len == 40000;
  for (size_t i = 0; same && i < 40000; i++) same = c.last_msg[i] == (unsigned char)(i % 253);
  CHECK(same);
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

TEST(tcp_connect_timeout) {
  /* A listener whose accept queue is full drops SYNs: connect() hangs
   * until the client's own deadline. */
  dx_loop *loop = dx_loop_new(NULL);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(lfd, 0), 0);
  a.sin_port = htons((uint16_t)fd_port(lfd));
  int fill[2];
  for (int i = 0; i < 2; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  /* Also a regression test: the loop's clock is cached, and here it is
   * 400 ms stale when dx_connect runs; the deadline must count from the
   * call, not from the loop's last wake-up. */
  usleep(400000);
  char url[128];
  url_for(url, sizeof url, fd_port(lfd), "/");
  cl c;
  uint64_t t0 = now_ms();
  cl_start(&c, loop, url, &(dx_client_opts){.connect_timeout = 300});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  uint64_t took = now_ms() - t0;
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.last_err, DX_ETIMEDOUT);
  CHECK_CONTAINS(c.errmsg, "timed out");
  CHECK_EQ_INT(c.close_code, 1006);
  if (took < 295 || took >= 3000)
    fprintf(stderr, "took %llu ms: %s\n", (unsigned long long)took, c.errmsg);
  CHECK(took >= 295 && took < 3000);
  cl_free(&c);
  for (int i = 0; i < 2; i++) close(fill[i]);
  close(lfd);
  loop_done(loop);
}

typedef struct unblock {
  dx_timer t;
  int lfd;
  int accepted;
} unblock;

static void unblock_cb(dx_timer *t) {
  unblock *u = dx_container_of(t, unblock, t);
  u->accepted = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC); /* frees the queue */
}

TEST(connect_timeout_covers_tcp_and_handshake) {
  /* connect_timeout bounds DNS + TCP + handshake together. The TCP connect
   * is slow here (the first SYN is dropped; the kernel retries after 1 s)
   * and then the server says nothing: the attempt must still end at
   * connect_timeout, not connect_timeout after TCP connected. */
  dx_loop *loop = dx_loop_new(NULL);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(lfd, 0), 0);
  a.sin_port = htons((uint16_t)fd_port(lfd));
  int fill = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  connect(fill, (struct sockaddr *)&a, sizeof a);
  usleep(50000);
  unblock u = {.lfd = lfd, .accepted = -1};
  dx_timer_init(loop, &u.t, unblock_cb);
  dx_timer_start(&u.t, 400, 0);
  char url[128];
  url_for(url, sizeof url, fd_port(lfd), "/");
  cl c;
  uint64_t t0 = now_ms();
  cl_start(&c, loop, url, &(dx_client_opts){.connect_timeout = 1600});
  RUN_UNTIL(loop, c.dones == 1, 8000);
  uint64_t took = now_ms() - t0;
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.last_err, DX_ETIMEDOUT);
  CHECK_CONTAINS(c.errmsg, "timed out");
  CHECK(u.accepted >= 0);
  if (took < 1550 || took > 2300)
    fprintf(stderr, "took %llu ms, expected about 1600\n", (unsigned long long)took);
  CHECK(took >= 1550 && took <= 2300);
  cl_free(&c);
  close(fill);
  if (u.accepted >= 0) close(u.accepted);
  close(lfd);
  loop_done(loop);
}

/* ------------------------------------------------------------------ */
/* HTTP CONNECT proxy.                                                  */

TEST(proxy_tunnels_to_server) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  rs p;
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  char url[128], proxy[64];
  url_for(url, sizeof url, s.port, "/via-proxy");
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  c.send_on_open = "through the tunnel";
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.msgs, 1);
  if (c.last_msg) CHECK_STR((char *)c.last_msg, "through the tunnel");
  char want[64];
  snprintf(want, sizeof want, "CONNECT 127.0.0.1:%d HTTP/1.1", s.port);
  CHECK_STR(p.first_line, want);
  CHECK_EQ_INT(s.opens, 1);
  /* Close through the tunnel, both ways clean. */
  dx_client_close(c.c, 4001, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.close_code, 4001);
  CHECK(c.clean);
  CHECK_EQ_INT(c.errors, 0);
  cl_free(&c);
  rs_stop(&p);
  sv_stop(&s);
  loop_done(loop);
}

TEST(proxy_refuses) {
  dx_loop *loop = dx_loop_new(NULL);
  rs p;
  rs_start(&p, loop, RS_PROXY_403);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d/", p.port);
  cl c;
  cl_start(&c, loop, "ws://backend.example:9001/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_EPROXY);
  CHECK_CONTAINS(c.errmsg, "403");
  CHECK_CONTAINS(c.errmsg, "proxy");
  CHECK_CONTAINS(c.errmsg, "backend.example:9001");
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK(!c.clean);
  /* The target name went to the proxy unresolved. */
  CHECK_STR(p.first_line, "CONNECT backend.example:9001 HTTP/1.1");
  cl_free(&c);
  rs_stop(&p);
  loop_done(loop);
}

TEST(proxy_split_answer_with_junk) {
  /* Regression: bytes after a proxy's 200 that came in pieces were read
   * from the freed handshake buffer. */
  dx_loop *loop = dx_loop_new(NULL);
  rs p;
  rs_start(&p, loop, RS_PROXY_SPLIT_JUNK);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl c;
  cl_start(&c, loop, "ws://backend.example/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.opens, 0);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_EHTTP_MALFORMED);
  CHECK_CONTAINS(c.errmsg, "bad handshake response from the server");
  CHECK_EQ_INT(c.close_code, 1006);
  cl_free(&c);
  rs_stop(&p);
  loop_done(loop);
}

TEST(proxy_unreachable) {
  dx_loop *loop = dx_loop_new(NULL);
  int hold = hold_port(0);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", fd_port(hold));
  cl c;
  cl_start(&c, loop, "ws://backend.example/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.last_err, DX_ECONNREFUSED);
  CHECK_CONTAINS(c.errmsg, "proxy");
  CHECK_CONTAINS(c.errmsg, "connection refused");
  cl_free(&c);
  close(hold);
  loop_done(loop);
}

/* ------------------------------------------------------------------ */
/* Closing: rejected arguments, closes the client started itself.       */

TEST(close_rejected_then_retry) {
  /* A close with bad arguments changes nothing: the client stays open
   * and a correct close afterwards works (it used to be stuck: marked
   * closed before the arguments were checked, then DX_ECLOSED forever). */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 10});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  char reason[200];
  memset(reason, 'r', 199);
  reason[199] = 0;
  CHECK_EQ_INT(dx_client_close(c.c, 1000, reason), DX_EINVAL); /* > 123 bytes */
  CHECK_EQ_INT(dx_client_close(c.c, 999, NULL), DX_EINVAL);    /* not a valid code */
  CHECK_EQ_INT(dx_client_close(c.c, 1005, NULL), DX_EINVAL);   /* not for the wire */
  CHECK_EQ_INT(dx_client_close(c.c, 0, "reason without code"), DX_EINVAL);
  CHECK_EQ_INT(dx_client_close(c.c, 1000, "\xc3"), DX_EINVAL); /* not UTF-8 */
  CHECK(dx_client_ws(c.c) != NULL);
  CHECK(!dx_client_done(c.c));
  CHECK(dx_client_send(c.c, DX_OP_TEXT, "still open", 10) >= 0);
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.msgs, 1);
  CHECK_EQ_INT(dx_client_close(c.c, 1000, NULL), 0);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.close_code, 1000);
  CHECK(c.clean);
  CHECK_EQ_INT(c.reconnectings, 0);
  cl_free(&c);

  /* The same while waiting to reconnect: bad arguments are refused and
   * the wait goes on. */
  int hold = hold_port(0);
  url_for(url, sizeof url, fd_port(hold), "/");
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 100000});
  RUN_UNTIL(loop, c.reconnectings == 1, 5000);
  CHECK_EQ_INT(dx_client_close(c.c, 1000, reason), DX_EINVAL);
  CHECK(!dx_client_done(c.c));
  CHECK_EQ_INT(dx_client_close(c.c, 1000, NULL), 0);
  CHECK(dx_client_done(c.c));
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  close(hold);
  sv_stop(&s);
  loop_done(loop);
}

TEST(ws_close_by_client_does_not_reconnect) {
  /* dx_ws_close on the client's own connection is a close by the user:
   * no reconnect, even with reconnect on. */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.reconnect = true, .reconnect_initial = 10});
  c.close_in_open = 4001;
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.close_code, 4001);
  CHECK(c.clean);
  CHECK_EQ_INT(c.reconnectings, 0);
  run_for(loop, 100);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(s.opens, 1);
  CHECK_EQ_INT(dx_client_close(c.c, 1000, NULL), DX_ECLOSED);
  cl_free(&c);
  sv_stop(&s);

  /* The server never answers our close: the close timeout ends it, and
   * still no reconnect. */
  rs r;
  rs_start(&r, loop, RS_OPEN_MUTE);
  url_for(url, sizeof url, r.port, "/");
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true, .reconnect_initial = 10, .close_timeout = 200});
  c.close_in_open = 1000;
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK_EQ_INT(c.reconnectings, 0);
  run_for(loop, 100);
  CHECK_EQ_INT(c.opens, 1);
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

TEST(heartbeat_timeout_reconnects) {
  /* A server that goes silent after the handshake: the ping timeout
   * drops the connection and, with reconnect on, the client tries again. */
  dx_loop *loop = dx_loop_new(NULL);
  rs r;
  rs_start(&r, loop, RS_OPEN_MUTE);
  char url[128];
  url_for(url, sizeof url, r.port, "/");
  cl c;
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true,
                             .reconnect_initial = 10,
                             .reconnect_max = 20,
                             .ping_interval = 100,
                             .pong_timeout = 150});
  RUN_UNTIL(loop, c.opens >= 2 && c.reconnectings >= 1, 5000);
  CHECK(c.opens >= 2);
  CHECK(c.reconnectings >= 1);
  CHECK_EQ_INT(c.last_err, DX_ETIMEDOUT);
  CHECK_CONTAINS(c.errmsg, "did not answer a ping");
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK_EQ_INT(c.dones, 0);
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

TEST(no_connect_timeout) {
  /* A negative connect_timeout means none: a silent server keeps the
   * attempt waiting. */
  dx_loop *loop = dx_loop_new(NULL);
  rs r;
  rs_start(&r, loop, RS_SILENT);
  char url[128];
  url_for(url, sizeof url, r.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.connect_timeout = -1});
  run_for(loop, 400);
  CHECK_EQ_INT(c.errors, 0);
  CHECK_EQ_INT(c.closes, 0);
  CHECK(r.first_line[0] != 0); /* the request went out */
  CHECK_EQ_INT(dx_client_close(c.c, 1000, NULL), 0);
  RUN_UNTIL(loop, c.dones == 1, 2000);
  CHECK_EQ_INT(c.dones, 1);
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

TEST(client_drain_and_buffered) {
  /* Client side backpressure: a big send reports DX_BUFFERED and
   * dx_ws_buffered counts the queued bytes; on_drain follows once the
   * queue is below the low-water mark. */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  char url[128];
  url_for(url, sizeof url, s.port, "/");
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.low_water = 16 << 10});
  RUN_UNTIL(loop, c.opens == 1, 5000);
  dx_ws *ws = dx_client_ws(c.c);
  CHECK(ws != NULL);
  CHECK_EQ_INT(dx_ws_buffered(ws), 0);
  CHECK_EQ_INT(dx_client_send(c.c, DX_OP_TEXT, "small", 5), DX_SENT);
  size_t n = (size_t)1 << 20;
  unsigned char *big = calloc(1, n);
  CHECK_EQ_INT(dx_client_send(c.c, DX_OP_BINARY, big, n), DX_BUFFERED);
  CHECK(dx_ws_buffered(ws) >= n);
  CHECK_EQ_INT(c.drains, 0);
  RUN_UNTIL(loop, c.drains >= 1, 5000);
  CHECK(c.drains >= 1);
  CHECK(c.buffered_at_drain <= (size_t)(16 << 10));
  RUN_UNTIL(loop, c.msgs == 2, 10000);
  CHECK_EQ_INT(c.msgs, 2);
  CHECK_EQ_INT(c.last_len, n);
  free(big);
  cl_free(&c);
  sv_stop(&s);
  loop_done(loop);
}

TEST(proxy_2xx_uppercase_scheme_and_credentials) {
  /* Any 2xx answers CONNECT (RFC 9110 9.3.6); "HTTP://" is the same
   * scheme; user:pass@ becomes Proxy-Authorization: Basic. */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  rs p;
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  p.proxy_ok = "HTTP/1.0 204 Tunnel ready\r\n\r\n";
  char url[128], proxy[128];
  url_for(url, sizeof url, s.port, "/via-proxy");
  snprintf(proxy, sizeof proxy, "HTTP://Aladdin:open%%20sesame@127.0.0.1:%d/", p.port);
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  c.send_on_open = "tunnelled";
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.errors, 0);
  if (c.last_msg) CHECK_STR((char *)c.last_msg, "tunnelled");
  CHECK_CONTAINS(p.head, "\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n");
  cl_free(&c);
  rs_stop(&p);

  /* Without credentials, no header; a 3xx is still a refusal. */
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  p.proxy_ok = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n";
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.last_err, DX_EPROXY);
  CHECK_CONTAINS(c.errmsg, "302");
  CHECK(!contains(p.head, "Proxy-Authorization"));
  cl_free(&c);
  rs_stop(&p);
  sv_stop(&s);
  loop_done(loop);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(text_binary_roundtrip);
  RUN(large_messages);
  RUN(max_message_enforced_by_client);
  RUN(fragmented_both_ways);
  RUN(ping_pong);
  RUN(client_ping_interval_keeps_alive);
  RUN(subprotocol_negotiated);
  RUN(server_rejects_upgrade);
  RUN(client_closes_4001);
  RUN(server_closes_4002);
  RUN(server_going_away_without_reconnect);
  RUN(free_in_on_done);
  RUN(free_in_handlers);
  RUN(close_while_connecting);
  RUN(reconnect_backoff_policy_and_timing);
  RUN(reconnect_count_resets_after_stable_connection);
  RUN(reconnect_attempts_limit);
  RUN(policy_close_is_final);
  RUN(final_codes_override);
  RUN(connection_refused);
  RUN(dns_failure);
  RUN(localhost_name_resolves);
  RUN(free_while_resolving);
  RUN(invalid_arguments);
  RUN(bad_server_wrong_accept);
  RUN(bad_server_status_200);
  RUN(bad_server_silent_times_out);
  RUN(bad_server_masked_frame);
  RUN(bad_server_unrequested_extension);
  RUN(bad_server_unrequested_subprotocol);
  RUN(bad_server_not_http);
  RUN(bad_server_eof_in_handshake);
  RUN(dead_server_detected_by_ping);
  RUN(split_response_then_big_message);
  RUN(tcp_connect_timeout);
  RUN(connect_timeout_covers_tcp_and_handshake);
  RUN(proxy_tunnels_to_server);
  RUN(proxy_refuses);
  RUN(proxy_split_answer_with_junk);
  RUN(proxy_unreachable);
  RUN(close_rejected_then_retry);
  RUN(ws_close_by_client_does_not_reconnect);
  RUN(heartbeat_timeout_reconnects);
  RUN(no_connect_timeout);
  RUN(client_drain_and_buffered);
  RUN(proxy_2xx_uppercase_scheme_and_credentials);
  return test_report();
}
