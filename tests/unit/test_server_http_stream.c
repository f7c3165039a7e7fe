/* Deferred and streamed answers of plain HTTP handlers (duplex/http.h):
 * dx_http_defer answered from a timer, chunked streams read back and
 * de-chunked, HTTP/1.0 close-delimited streams, on_gone when the client
 * closes mid-stream, backpressure past max_buffered, keep-alive after
 * dx_http_stream_end, shutdown while streaming, a pipelined request
 * waiting behind a deferred one, and pipelined routes
 * (dx_server_http_pipelined): served while earlier ones wait, answered in
 * order.
 *
 * In-process: one loop, one server on an ephemeral port, raw sockets as
 * clients read between loop turns (server_helpers.h). */
#include "duplex/http.h"
#include "server_helpers.h"

/* ------------------------------------------------------------------ */
/* A handler that defers, and a test-driven "app" answering later      */

typedef struct app {
  dx_loop *loop;
  dx_http_req *req; /* the deferred request, NULL once answered or gone */
  int calls, gones, rc_defer;
  dx_timer timer;
  int mode; /* what the timer does: 0 respond, 1 stream N pieces then end */
  int pieces, sent;
  int last_write_rc;
  char peer[64];
  char path[64];
} app;

static void on_gone(dx_http_req *req, void *user) {
  app *a = user;
  CHECK(req == a->req);
  a->gones++;
  a->req = NULL;
}

static void on_defer(dx_http_req *req, void *user) {
  app *a = user;
  a->calls++;
  snprintf(a->path, sizeof a->path, "%s", dx_http_path(req));
  dx_http_peer_str(req, a->peer, sizeof a->peer);
  if (strcmp(dx_http_path(req), "/now") == 0) { /* not deferred: answered at once */
    dx_http_respond(req, 200, "text/plain", NULL, "now", 3);
    return;
  }
  a->rc_defer = dx_http_defer(req, on_gone, a);
  a->req = req;
  CHECK_EQ_INT(dx_http_defer(req, on_gone, a), DX_ESTATE); /* once */
}

static void on_timer(dx_timer *t) {
  app *a = dx_container_of(t, app, timer);
  if (!a->req) return;
  if (a->mode == 0) {
    CHECK_EQ_INT(dx_http_respond(a->req, 200, "text/plain", NULL, "later", 5), 0);
    a->req = NULL;
    return;
  }
  if (!a->sent) {
    CHECK_EQ_INT(dx_http_defer(a->req, on_gone, a), DX_ESTATE); /* outside the handler */
    CHECK_STR(dx_http_path(a->req), "");                        /* the strings were the call's */
    CHECK_EQ_INT(dx_http_stream_start(a->req, 200, "text/event-stream", NULL), 0);
    CHECK_EQ_INT(dx_http_respond(a->req, 200, NULL, NULL, "x", 1), DX_ESTATE); /* streaming */
  }
  if (a->sent < a->pieces) {
    char piece[64];
    int n = snprintf(piece, sizeof piece, "data: %d\n\n", a->sent);
    a->last_write_rc = dx_http_stream_write(a->req, piece, (size_t)n);
    a->sent++;
    if (a->last_write_rc < 0) return;
    dx_timer_start(&a->timer, 10, 0);
    return;
  }
  CHECK_EQ_INT(dx_http_stream_end(a->req), 0);
  a->req = NULL;
}

/* Again for a new request: stop the timer first (it may be queued). */
static void app_reset(app *a, int mode, int pieces) {
  dx_timer_stop(&a->timer);
  dx_timer t = a->timer;
  dx_loop *loop = a->loop;
  memset(a, 0, sizeof *a);
  a->timer = t;
  a->loop = loop;
  a->mode = mode;
  a->pieces = pieces;
}

static void app_init(app *a, dx_loop *loop, int mode, int pieces) {
  memset(a, 0, sizeof *a);
  a->loop = loop;
  a->mode = mode;
  a->pieces = pieces;
  dx_timer_init(loop, &a->timer, on_timer);
}

/* De-chunk a chunked body starting at s; returns the bytes consumed up to
 * and including the last chunk, or 0 when incomplete/bad. */
static size_t dechunk(const char *s, size_t len, char *out, size_t cap, int *nchunks) {
  size_t i = 0, o = 0;
  *nchunks = 0;
  for (;;) {
    const char *crlf = memmem(s + i, len - i, "\r\n", 2);
    if (!crlf) return 0;
    size_t n = strtoul(s + i, NULL, 16);
    i = (size_t)(crlf - s) + 2;
    if (i + n + 2 > len) return 0;
    if (n == 0) return memcmp(s + i, "\r\n", 2) == 0 ? i + 2 : 0;
    if (memcmp(s + i + n, "\r\n", 2) != 0) return 0;
    if (o + n < cap) memcpy(out + o, s + i, n);
    o += n;
    if (o < cap) out[o] = 0;
    i += n + 2;
    (*nchunks)++;
  }
}

/* ------------------------------------------------------------------ */

TEST(deferred_respond_from_a_timer) {
  dx_loop *loop = dx_loop_new(NULL);
  /* 500 ms: the next request on the kept connection must come before it
   * ends, and the test may be paused meanwhile. */
  dx_server *srv = make_server(loop, (dx_server_opts){.handshake_timeout = 500});
  app a;
  app_init(&a, loop, 0, 0);
  dx_server_http(srv, "/lp", on_defer, &a);
  dx_server_http(srv, "/now", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /lp HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  CHECK_EQ_INT(a.rc_defer, 0);
  CHECK_CONTAINS(a.peer, "127.0.0.1:");
  /* Longer than the handshake timeout: a deferred request has none. */
  dx_timer_start(&a.timer, 800, 0);
  run_for(loop, 600);
  CHECK_EQ_INT((int)r->len, 0);
  CHECK(!r->eof);
  RUN_UNTIL(loop, http_body(r->buf) && strstr(http_body(r->buf), "later"), 3000);
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "Content-Length: 5\r\n");
  CHECK_EQ_INT(a.gones, 0);
  /* Kept alive: the next request on the same connection. */
  raw_consume(r, r->len);
  CHECK(raw_write_str(loop, r, "GET /now HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, http_body(r->buf) && strstr(http_body(r->buf), "now"), 3000);
  CHECK_EQ_INT(http_status(r->buf), 200);
  /* And the idle timeout is back for the kept connection. */
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof);
  teardown(loop, srv);
}

TEST(chunked_stream_then_keep_alive) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 1, 5);
  dx_server_http(srv, "/events", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  dx_timer_start(&a.timer, 10, 0);
  int nchunks = 0;
  char body[512] = "";
  size_t used = 0;
  RUN_UNTIL(loop,
            http_body(r->buf) &&
                (used = dechunk(http_body(r->buf), r->len - (size_t)(http_body(r->buf) - r->buf),
                                body, sizeof body, &nchunks)),
            3000);
  CHECK(used > 0);
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "Transfer-Encoding: chunked\r\n");
  CHECK_CONTAINS(r->buf, "Content-Type: text/event-stream\r\n");
  CHECK(!strstr(r->buf, "Content-Length"));
  CHECK_EQ_INT(nchunks, 5);
  CHECK_STR(body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  CHECK_EQ_INT(a.last_write_rc, DX_SENT);
  CHECK_EQ_INT(a.gones, 0);
  /* Keep-alive after stream_end: a second request on the same connection. */
  raw_consume(r, (size_t)(http_body(r->buf) - r->buf) + used);
  CHECK_EQ_INT((int)r->len, 0);
  app_reset(&a, 1, 2);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  dx_timer_start(&a.timer, 10, 0);
  RUN_UNTIL(loop,
            http_body(r->buf) &&
                dechunk(http_body(r->buf), r->len - (size_t)(http_body(r->buf) - r->buf), body,
                        sizeof body, &nchunks),
            3000);
  CHECK_EQ_INT(nchunks, 2);
  CHECK_STR(body, "data: 0\n\ndata: 1\n\n");
  CHECK(!r->eof);
  CHECK_EQ_INT((int)dx_server_connections(srv), 1);
  teardown(loop, srv);
}

TEST(http10_close_delimited) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 1, 3);
  dx_server_http(srv, "/events", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  dx_timer_start(&a.timer, 10, 0);
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof);
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(!strstr(r->buf, "Transfer-Encoding"));
  CHECK(!strstr(r->buf, "Content-Length"));
  CHECK_CONTAINS(r->buf, "Connection: close\r\n");
  CHECK_STR(http_body(r->buf), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  CHECK_EQ_INT(a.gones, 0);
  teardown(loop, srv);
}

TEST(on_gone_when_the_client_closes_mid_stream) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 1, 1000);
  dx_server_http(srv, "/events", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  dx_timer_start(&a.timer, 10, 0);
  RUN_UNTIL(loop, r->buf && strstr(r->buf, "data: 2"), 3000);
  CHECK_CONTAINS(r->buf, "data: 2");
  raw_close(r);
  RUN_UNTIL(loop, a.gones == 1, 3000);
  CHECK_EQ_INT(a.gones, 1);
  CHECK(a.req == NULL);
  CHECK(a.sent < 1000);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 2000);
  CHECK_EQ_INT((int)dx_server_connections(srv), 0);

  /* A long-poll whose client goes before the answer. */
  app_reset(&a, 0, 0);
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  raw_close(r);
  RUN_UNTIL(loop, a.gones == 1, 3000);
  CHECK_EQ_INT(a.gones, 1);
  dx_timer_stop(&a.timer);
  teardown(loop, srv);
}

/* Streams as fast as it can to a client that does not read. */
typedef struct flood {
  dx_http_req *req;
  int gones, writes, rc;
  size_t buffered_at_buffered;
} flood;

static void flood_gone(dx_http_req *req, void *user) {
  (void)req;
  flood *f = user;
  f->gones++;
  f->req = NULL;
}

static void on_flood(dx_http_req *req, void *user) {
  flood *f = user;
  CHECK_EQ_INT(dx_http_defer(req, flood_gone, f), 0);
  CHECK_EQ_INT(dx_http_stream_write(req, "x", 1), DX_ESTATE); /* not started */
  CHECK_EQ_INT(dx_http_stream_start(req, 204, NULL, NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_http_stream_start(req, 200, "text/plain\r\nX: y", NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_http_stream_start(req, 200, "application/octet-stream", NULL), 0);
  CHECK_EQ_INT(dx_http_stream_start(req, 200, NULL, NULL), DX_ESTATE);
  CHECK_EQ_INT(dx_http_respond(req, 200, NULL, NULL, "x", 1), DX_ESTATE);
  f->req = req;
}

TEST(backpressure_past_max_buffered) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv =
      make_server(loop, (dx_server_opts){.max_buffered = 64 << 10, .low_water = 8 << 10});
  flood f = {0};
  dx_server_http(srv, "/flood", on_flood, &f);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 4096);
  r->paused = true;
  CHECK(raw_write_str(loop, r, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, f.req != NULL, 2000);
  CHECK(f.req != NULL);
  static char piece[4096];
  memset(piece, 'p', sizeof piece);
  bool saw_buffered = false;
  for (int i = 0; i < 10000 && f.req; i++) {
    int rc = dx_http_stream_write(f.req, piece, sizeof piece);
    f.writes++;
    if (rc == DX_BUFFERED && !saw_buffered) {
      saw_buffered = true;
      f.buffered_at_buffered = dx_http_buffered(f.req);
    }
    if (rc < 0) {
      f.rc = rc;
      break;
    }
    dx_loop_run_once(loop, 0);
  }
  CHECK_EQ_INT(f.rc, DX_EBACKPRESSURE);
  CHECK(saw_buffered);
  CHECK(f.buffered_at_buffered > (8 << 10));
  RUN_UNTIL(loop, f.gones == 1, 3000);
  CHECK_EQ_INT(f.gones, 1);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 3000);
  CHECK_EQ_INT((int)dx_server_connections(srv), 0);
  teardown(loop, srv);
}

static void shutdown_done(dx_server *srv, void *arg) {
  (void)srv;
  *(int *)arg = 1;
}

TEST(shutdown_while_streaming) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 1, 100000);
  dx_server_http(srv, "/events", on_defer, &a);
  app b; /* a long-poll on a second connection */
  app_init(&b, loop, 0, 0);
  dx_server_http(srv, "/lp", on_defer, &b);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  raw *r2 = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(raw_write_str(loop, r2, "GET /lp HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1 && b.calls == 1, 2000);
  dx_timer_start(&a.timer, 10, 0);
  RUN_UNTIL(loop, r->buf && strstr(r->buf, "data: 1"), 3000);
  int done = 0;
  uint64_t t0 = now_ms();
  dx_server_shutdown(srv, 5000, shutdown_done, &done);
  CHECK_EQ_INT(a.gones, 1);
  CHECK_EQ_INT(b.gones, 1);
  /* Both connections are closed by the server; the clients then close. */
  RUN_UNTIL(loop, (r->eof || r->reset) && (r2->eof || r2->reset), 2000);
  CHECK(r->eof || r->reset);
  CHECK(r2->eof || r2->reset);
  CHECK_CONTAINS(r->buf, "data: 1");
  CHECK(!strstr(r->buf, "0\r\n\r\n")); /* cut short: no last chunk */
  raw_close(r);
  raw_close(r2);
  RUN_UNTIL(loop, done, 3000);
  CHECK(done);
  CHECK(now_ms() - t0 < 4000); /* not the 5 s timeout */
  dx_timer_stop(&a.timer);
  dx_timer_stop(&b.timer);
  for (int i = 0; i < RAW_MAX; i++)
    if (raws_[i]) raw_close(raws_[i]);
  dx_server_free(srv);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

TEST(server_freed_while_deferred) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 0, 0);
  dx_server_http(srv, "/lp", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /lp HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  dx_server_free(srv);
  CHECK_EQ_INT(a.gones, 1);
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof || r->reset);
  raw_close(r);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

TEST(pipelined_request_waits_behind_a_deferred_one) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  app a;
  app_init(&a, loop, 0, 0);
  dx_server_http(srv, "/lp", on_defer, &a);
  dx_server_http(srv, "/now", on_defer, &a);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r,
                      "GET /lp HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /now HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.calls == 1, 2000);
  run_for(loop, 100);
  /* The second is not served before the first is answered. */
  CHECK_EQ_INT(a.calls, 1);
  CHECK_EQ_INT((int)r->len, 0);
  /* More pipelined bytes while it waits. */
  CHECK(raw_write_str(loop, r, "GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  run_for(loop, 50);
  CHECK_EQ_INT(a.calls, 1);
  dx_timer_start(&a.timer, 0, 0);
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof);
  CHECK_EQ_INT(a.calls, 3);
  const char *first = strstr(r->buf, "later");
  const char *second = strstr(r->buf, "now");
  CHECK(first && second && first < second);
  CHECK(second && strstr(second + 3, "now"));
  CHECK_EQ_INT(a.gones, 0);
  teardown(loop, srv);
}

/* Pipelined routes: /p/<n> defers, /p/now<n> answers at once; the app
 * answers deferred ones in any order it likes (here: last first). */
typedef struct line_app {
  dx_http_req *reqs[8];
  char names[8][16];
  int n, gones;
} line_app;

static void line_gone(dx_http_req *req, void *user) {
  line_app *a = user;
  for (int i = 0; i < a->n; i++)
    if (a->reqs[i] == req) a->reqs[i] = NULL;
  a->gones++;
}

static void on_line(dx_http_req *req, void *user) {
  line_app *a = user;
  const char *name = dx_http_path(req) + 3;
  if (!strncmp(name, "now", 3)) {
    dx_http_respond(req, 200, "text/plain", NULL, name, strlen(name));
    return;
  }
  CHECK(a->n < 8);
  snprintf(a->names[a->n], sizeof a->names[0], "%s", name);
  CHECK_EQ_INT(dx_http_defer(req, line_gone, a), 0);
  a->reqs[a->n++] = req;
}

static void line_answer(line_app *a, int i) {
  CHECK(a->reqs[i] != NULL);
  CHECK_EQ_INT(
      dx_http_respond(a->reqs[i], 200, "text/plain", NULL, a->names[i], strlen(a->names[i])), 0);
  a->reqs[i] = NULL;
}

/* The bodies of the responses in r->buf (Content-Length framed), joined by ','. */
static void bodies(const raw *r, char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  for (const char *p = r->buf; (p = strstr(p, "HTTP/1.1 "));) {
    const char *end = strstr(p, "\r\n\r\n"), *cl = strstr(p, "Content-Length: ");
    if (!end || !cl || cl > end) break;
    size_t n = strtoul(cl + 16, NULL, 10);
    p = end + 4;
    if (o + n + 2 < cap) {
      if (o) out[o++] = ',';
      memcpy(out + o, p, n);
      o += n;
      out[o] = 0;
    }
    p += n;
  }
}

TEST(pipelined_route_served_while_earlier_wait) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  line_app a = {0};
  app other;
  app_init(&other, loop, 0, 0);
  CHECK_EQ_INT(dx_server_http_pipelined(srv, "/p/"), DX_ENOENT);
  dx_server_http(srv, "/p/", on_line, &a);
  dx_server_http(srv, "/lp", on_defer, &other);
  CHECK_EQ_INT(dx_server_http_pipelined(srv, "/p/"), 0);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r,
                      "GET /p/a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/now1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /p/b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                      "GET /p/c HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /lp HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/now2 HTTP/1.1\r\nHost: x\r\n\r\n"));
  /* All three deferred ones are called at once; /lp (not pipelined) waits. */
  RUN_UNTIL(loop, a.n == 3, 2000);
  run_for(loop, 50);
  CHECK_EQ_INT(a.n, 3);
  CHECK_EQ_INT(other.calls, 0);
  CHECK_EQ_INT((int)r->len, 0);
  /* Answered last first: nothing goes out before the first is answered. */
  line_answer(&a, 2);
  line_answer(&a, 1);
  run_for(loop, 50);
  CHECK_EQ_INT((int)r->len, 0);
  line_answer(&a, 0);
  RUN_UNTIL(loop, other.calls == 1, 2000);
  char got[256];
  bodies(r, got, sizeof got);
  CHECK_STR(got, "a,now1,b,c");
  dx_timer_start(&other.timer, 0, 0);
  RUN_UNTIL(loop, strstr(r->buf, "now2") != NULL, 2000);
  bodies(r, got, sizeof got);
  CHECK_STR(got, "a,now1,b,c,later,now2");
  CHECK_EQ_INT(a.gones, 0);
  raw_close(r);

  /* The client goes while three wait: on_gone for each, nothing leaks. */
  memset(&a, 0, sizeof a);
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r,
                      "GET /p/d HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/now3 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/e HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/f HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.n == 3, 2000);
  line_answer(&a, 1); /* e answered; d still waits */
  raw_close(r);
  RUN_UNTIL(loop, a.gones == 2, 2000);
  CHECK_EQ_INT(a.gones, 2);

  /* Connection: close in the line: the connection closes after its answer,
   * and what follows it is not served. */
  memset(&a, 0, sizeof a);
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r,
                      "GET /p/g HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /p/h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      "GET /p/i HTTP/1.1\r\nHost: x\r\n\r\n"));
  RUN_UNTIL(loop, a.n == 2, 2000);
  run_for(loop, 50);
  CHECK_EQ_INT(a.n, 2);
  line_answer(&a, 1);
  line_answer(&a, 0);
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof);
  bodies(r, got, sizeof got);
  CHECK_STR(got, "g,h");
  CHECK_EQ_INT(a.n, 2);
  raw_close(r);
  teardown(loop, srv);
}

/* Streamed whole inside the handler, and a HEAD stream (no body). */
static void on_inline(dx_http_req *req, void *user) {
  (void)user;
  CHECK_EQ_INT(dx_http_stream_start(req, 200, "text/plain", "X-A: 1\r\n"), 0);
  CHECK_EQ_INT(dx_http_stream_write(req, "ab", 2), DX_SENT);
  CHECK_EQ_INT(dx_http_stream_write(req, "", 0), DX_SENT);
  CHECK_EQ_INT(dx_http_stream_write(req, "cd", 2), DX_SENT);
  CHECK_EQ_INT(dx_http_stream_end(req), 0);
}

TEST(stream_inside_the_handler) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_http(srv, "/i", on_inline, NULL);
  int port = start_listening(srv);
  raw *r = http_request(loop, port, "GET", "/i");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "X-A: 1\r\n");
  CHECK_STR(http_body(r->buf), "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n");
  raw_close(r);
  r = http_request(loop, port, "HEAD", "/i");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "Transfer-Encoding: chunked\r\n");
  CHECK_STR(http_body(r->buf), "");
  raw_close(r);
  teardown(loop, srv);
}

int main(void) {
  RUN(deferred_respond_from_a_timer);
  RUN(chunked_stream_then_keep_alive);
  RUN(http10_close_delimited);
  RUN(on_gone_when_the_client_closes_mid_stream);
  RUN(backpressure_past_max_buffered);
  RUN(shutdown_while_streaming);
  RUN(server_freed_while_deferred);
  RUN(pipelined_request_waits_behind_a_deferred_one);
  RUN(pipelined_route_served_while_earlier_wait);
  RUN(stream_inside_the_handler);
  return test_report();
}
