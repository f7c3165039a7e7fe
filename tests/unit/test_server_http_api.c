/* dx_server_http: plain HTTP handlers (duplex/http.h). Query parameters
 * and their decoding, request bodies (whole, one byte per read, 100
 * Continue, 413/411/400), keep-alive and pipelining, a handler that does
 * not respond (500), exact and prefix routes, and that /healthz, static
 * files, WebSocket upgrades and 404 work as before beside the handlers.
 *
 * In-process: one loop, one server on an ephemeral port, raw sockets as
 * clients read between loop turns (server_helpers.h). */
#include <sys/stat.h>

#include "duplex/http.h"
#include "proto/head_gather.h"
#include "server_helpers.h"

/* ------------------------------------------------------------------ */
/* A recording handler                                                 */

typedef struct seen {
  const char *name; /* answered in the body: which route */
  int calls;
  char method[16], path[256], query[256], host[64];
  char body[8193];
  size_t body_len;
  bool no_answer; /* return without responding */
} seen;

static void copy_(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "(null)");
}

/* Records the request and answers "<name> <method> <path> <body bytes>". */
static void on_req(dx_http_req *req, void *user) {
  seen *s = user;
  s->calls++;
  copy_(s->method, sizeof s->method, dx_http_method(req));
  copy_(s->path, sizeof s->path, dx_http_path(req));
  copy_(s->query, sizeof s->query, dx_http_query(req));
  copy_(s->host, sizeof s->host, dx_http_get_header(req, "host"));
  size_t len = 99;
  const void *b = dx_http_body(req, &len);
  CHECK(b != NULL);
  s->body_len = len;
  memcpy(s->body, b, len < sizeof s->body ? len : sizeof s->body - 1);
  s->body[len < sizeof s->body ? len : sizeof s->body - 1] = 0;
  if (s->no_answer) return;
  char out[512];
  int n = snprintf(out, sizeof out, "%s %s %s %zu", s->name, s->method, s->path, len);
  CHECK_EQ_INT(dx_http_respond(req, 200, "text/plain", "X-Test: 1\r\n", out, (size_t)n), 0);
}

/* Read one whole response (head and Content-Length body) from r: its
 * status (-1 if none within 3 s), the body copied into body[cap], and the
 * response consumed from r->buf. */
static int take_response(dx_loop *loop, raw *r, char *body, size_t cap, char *head, size_t hcap) {
  RUN_UNTIL(loop, http_body(r->buf) || r->eof || r->reset, 3000);
  const char *b = http_body(r->buf);
  if (!b) return -1;
  char cl[32];
  size_t blen = http_header(r->buf, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
  size_t hlen = (size_t)(b - r->buf);
  RUN_UNTIL(loop, r->len >= hlen + blen || r->eof || r->reset, 3000);
  if (r->len < hlen + blen) return -1;
  int st = http_status(r->buf);
  if (head) snprintf(head, hcap, "%.*s", (int)hlen, r->buf);
  if (body) snprintf(body, cap, "%.*s", (int)blen, r->buf + hlen);
  raw_consume(r, hlen + blen);
  return st;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

typedef struct params {
  int calls;
  int rc_a, rc_b, rc_c, rc_d, rc_aa, rc_missing, rc_small, rc_nul, rc_empty_name;
  char a[32], b[32], c[32], aa[32];
} params;

static void on_params(dx_http_req *req, void *user) {
  params *p = user;
  p->calls++;
  char small[3];
  p->rc_a = dx_http_query_param(req, "a", p->a, sizeof p->a);
  p->rc_b = dx_http_query_param(req, "b", p->b, sizeof p->b);
  p->rc_c = dx_http_query_param(req, "c", p->c, sizeof p->c);
  p->rc_d = dx_http_query_param(req, "d", small, sizeof small);
  p->rc_aa = dx_http_query_param(req, "aa", p->aa, sizeof p->aa);
  p->rc_missing = dx_http_query_param(req, "zzz", small, sizeof small);
  p->rc_small = dx_http_query_param(req, "b", small, sizeof small);
  p->rc_nul = dx_http_query_param(req, "n", small, sizeof small);
  p->rc_empty_name = dx_http_query_param(req, "", small, sizeof small);
  dx_http_respond(req, 204, NULL, NULL, NULL, 0);
}

TEST(get_with_query_parameters) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  params p = {0};
  seen s = {.name = "echo"};
  CHECK_EQ_INT(dx_server_http(srv, "/params", on_params, &p), 0);
  CHECK_EQ_INT(dx_server_http(srv, "/echo", on_req, &s), 0);
  CHECK_EQ_INT(dx_server_http(srv, "nope", on_req, &s), DX_EINVAL);
  CHECK_EQ_INT(dx_server_http(srv, "/x", NULL, &s), DX_EINVAL);
  int port = start_listening(srv);

  raw *r =
      http_request(loop, port, "GET", "/params?a=1&b=x%20y+z&c&d=%zz&%61a=n%2Fm&n=%00&b=second&=e");
  CHECK_EQ_INT(http_status(r->buf), 204);
  CHECK(strstr(r->buf, "Content-Length") == NULL); /* 204 has none */
  CHECK_EQ_INT(p.calls, 1);
  CHECK_EQ_INT(p.rc_a, 1);
  CHECK_STR(p.a, "1");
  CHECK_EQ_INT(p.rc_b, 5); /* the first "b" */
  CHECK_STR(p.b, "x y z");
  CHECK_EQ_INT(p.rc_c, 0); /* no '=': empty */
  CHECK_STR(p.c, "");
  CHECK_EQ_INT(p.rc_d, DX_EINVAL); /* %zz */
  CHECK_EQ_INT(p.rc_aa, 3);        /* names are decoded too */
  CHECK_STR(p.aa, "n/m");
  CHECK_EQ_INT(p.rc_missing, DX_ENOENT);
  CHECK_EQ_INT(p.rc_small, DX_EINVAL); /* "x y z" does not fit in 3 bytes */
  CHECK_EQ_INT(p.rc_nul, DX_EINVAL);   /* a decoded NUL */
  CHECK_EQ_INT(p.rc_empty_name, 1);    /* "=e" */
  raw_close(r);

  r = http_request(loop, port, "GET", "/echo?q=1");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "Content-Type: text/plain\r\n");
  CHECK_CONTAINS(r->buf, "Content-Length: 16\r\n");
  CHECK_CONTAINS(r->buf, "X-Test: 1\r\n");
  CHECK_CONTAINS(r->buf, "Connection: close\r\n"); /* the client asked */
  CHECK_STR(http_body(r->buf), "echo GET /echo 0");
  CHECK_STR(s.path, "/echo");
  CHECK_STR(s.query, "q=1");
  CHECK_STR(s.host, "127.0.0.1");
  CHECK_EQ_INT((int)s.body_len, 0);
  raw_close(r);

  /* No query at all: "" and DX_ENOENT. */
  r = http_request(loop, port, "GET", "/echo");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_STR(s.query, "");
  raw_close(r);
  r = http_request(loop, port, "GET", "/params");
  CHECK_EQ_INT(p.rc_a, DX_ENOENT);
  raw_close(r);
  teardown(loop, srv);
}

static char *post_request(const char *target, const char *body, size_t len, const char *extra) {
  char *req = malloc(len + 512);
  int n = snprintf(req, 512,
                   "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nContent-Type: "
                   "application/json\r\n%s\r\n",
                   target, len, extra ? extra : "");
  memcpy(req + n, body, len);
  req[n + len] = 0;
  return req;
}

TEST(post_body_whole_and_one_byte_per_read) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen s = {.name = "pub"};
  dx_server_http(srv, "/publish", on_req, &s);
  int port = start_listening(srv);
  char body[5000];
  for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);

  /* Whole. */
  char *req = post_request("/publish", body, sizeof body, NULL);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, req));
  char out[256];
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
  CHECK_STR(out, "pub POST /publish 5000");
  CHECK_EQ_INT((int)s.body_len, 5000);
  CHECK_MEM(s.body, body, sizeof body);

  /* One byte per read, on the same (kept-alive) connection: the head is
   * parsed once per line and once more when the body is complete, not
   * once per byte. */
  memset(s.body, 0, sizeof s.body);
  unsigned long parses = dx__gather_parses;
  size_t n = strlen(req);
  for (size_t i = 0; i < n; i++) {
    CHECK(raw_write(loop, r, req + i, 1));
    dx_loop_run_once(loop, 0);
  }
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
  CHECK_STR(out, "pub POST /publish 5000");
  CHECK_EQ_INT(s.calls, 2);
  CHECK_MEM(s.body, body, sizeof body);
  unsigned long lines = 6; /* request line, 3 headers, blank line... */
  CHECK(dx__gather_parses - parses <= lines + 2);
  free(req);

  /* Expect: 100-continue gets "100 Continue" before the body is sent. */
  req = post_request("/publish", body, 100, "Expect: 100-continue\r\n");
  char *blank = strstr(req, "\r\n\r\n") + 4;
  CHECK(raw_write(loop, r, req, (size_t)(blank - req)));
  RUN_UNTIL(loop, strstr(r->buf ? r->buf : "", "\r\n\r\n"), 3000);
  CHECK_STR(r->buf, "HTTP/1.1 100 Continue\r\n\r\n");
  raw_consume(r, r->len);
  CHECK(raw_write_str(loop, r, blank));
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
  CHECK_STR(out, "pub POST /publish 100");
  free(req);
  teardown(loop, srv);
}

TEST(bodies_refused) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.max_body = 100});
  seen s = {.name = "pub"};
  dx_server_http(srv, "/p", on_req, &s);
  int port = start_listening(srv);
  char body[101];
  memset(body, 'x', sizeof body);

  /* Exactly max_body: fine. */
  char *req = post_request("/p", body, 100, NULL);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, req));
  CHECK_EQ_INT(take_response(loop, r, NULL, 0, NULL, 0), 200);
  free(req);
  raw_close(r);

  /* One byte more: 413 as soon as the head is in, without the handler,
   * and the connection closes. */
  req = post_request("/p", body, 101, NULL);
  *strstr(req, "\r\n\r\n") = 0; /* the head only */
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, req));
  CHECK(raw_write_str(loop, r, "\r\n\r\n"));
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK_EQ_INT(http_status(r->buf), 413);
  CHECK_EQ_INT(s.calls, 1);
  free(req);
  raw_close(r);

  r = http_exchange(loop, port,
                    "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\n\r\n");
  CHECK_EQ_INT(http_status(r->buf), 411);
  raw_close(r);
  r = http_exchange(loop, port, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
  CHECK_EQ_INT(http_status(r->buf), 400);
  raw_close(r);
  r = http_exchange(
      loop, port, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  CHECK_EQ_INT(http_status(r->buf), 400);
  raw_close(r);
  CHECK_EQ_INT(s.calls, 1);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Keep-alive                                                          */

TEST(keep_alive_two_requests_then_close) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen s = {.name = "k"};
  dx_server_http(srv, "/k", on_req, &s);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  char out[256], head[1024];
  CHECK(raw_write_str(loop, r, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, head, sizeof head), 200);
  CHECK(!strstr(head, "Connection:")); /* HTTP/1.1 keeps alive by default */
  CHECK_STR(out, "k GET /k 0");
  char *req = post_request("/k", "hello", 5, NULL);
  CHECK(raw_write_str(loop, r, req));
  free(req);
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
  CHECK_STR(out, "k POST /k 5");
  run_for(loop, 50);
  CHECK(!r->eof && !r->reset);
  CHECK_EQ_INT((int)dx_server_connections(srv), 1);
  /* A third asks to close: answered with Connection: close, then closed. */
  CHECK(raw_write_str(loop, r, "HEAD /k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof);
  CHECK_CONTAINS(r->buf, "Connection: close\r\n");
  CHECK_CONTAINS(r->buf, "Content-Length: 11\r\n"); /* "k HEAD /k 0" not sent */
  CHECK(http_body(r->buf) && !*http_body(r->buf));
  CHECK_EQ_INT(s.calls, 3);
  raw_close(r);

  /* HTTP/1.0: closes unless asked; kept with Connection: keep-alive. */
  r = http_exchange(loop, port, "GET /k HTTP/1.0\r\n\r\n");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_CONTAINS(r->buf, "Connection: close\r\n");
  raw_close(r);
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, head, sizeof head), 200);
  CHECK_CONTAINS(head, "Connection: keep-alive\r\n");
  run_for(loop, 50);
  CHECK(!r->eof);
  teardown(loop, srv);
}

TEST(idle_keep_alive_closed_after_handshake_timeout) {
  dx_loop *loop = dx_loop_new(NULL);
  /* 600 ms against requests 200 ms apart: a pause of the test of up to
   * 400 ms is not idleness to the server. */
  dx_server *srv = make_server(loop, (dx_server_opts){.handshake_timeout = 600});
  seen s = {.name = "k"};
  dx_server_http(srv, "/k", on_req, &s);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  /* Requests 200 ms apart keep it open past one timeout... */
  uint64_t last = 0;
  for (int i = 0; i < 5; i++) {
    last = now_ms();
    CHECK(raw_write_str(loop, r, "GET /k HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK_EQ_INT(take_response(loop, r, NULL, 0, NULL, 0), 200);
    run_for(loop, 200);
    CHECK(!r->eof);
  }
  /* ...then idle: closed, a whole timeout after the last request (not
   * before), and well before the 3 s wait ends. */
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof);
  CHECK(now_ms() - last >= 590);
  CHECK_EQ_INT((int)r->len, 0);
  raw_close(r);

  /* A body that never completes is bounded by the same timeout. */
  r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof || r->reset);
  CHECK_EQ_INT(s.calls, 5);
  teardown(loop, srv);
}

TEST(pipelined_requests) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen s = {.name = "p"};
  dx_server_http(srv, "/p", on_req, &s);
  int port = start_listening(srv);
  const char *reqs =
      "GET /p?1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /p HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxy";
  /* All in one write, then in 7-byte pieces (heads and bodies cut
   * anywhere), then one byte at a time. */
  size_t pieces[] = {0, 7, 1};
  for (int k = 0; k < 3; k++) {
    raw *r = raw_connect(port, 0);
    size_t n = strlen(reqs), step = pieces[k] ? pieces[k] : n;
    for (size_t i = 0; i < n; i += step) {
      CHECK(raw_write(loop, r, reqs + i, i + step > n ? n - i : step));
      if (pieces[k]) dx_loop_run_once(loop, 0);
    }
    char out[256];
    CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
    CHECK_STR(out, "p GET /p 0");
    CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
    CHECK_STR(out, "p POST /p 3");
    CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
    CHECK_STR(out, "p GET /p 0");
    CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200);
    CHECK_STR(out, "p POST /p 2");
    CHECK_STR(s.body, "xy");
    RUN_UNTIL(loop, r->eof || r->reset, 3000);
    CHECK(r->eof);
    CHECK_EQ_INT((int)r->len, 0);
    raw_close(r);
  }
  CHECK_EQ_INT(s.calls, 12);
  teardown(loop, srv);
}

/* A WebSocket upgrade after a kept-alive request on the same connection. */
TEST(upgrade_after_keep_alive_request) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen s = {.name = "both"};
  rec ws = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/both", &h, &ws);
  dx_server_http(srv, "/both", on_req, &s);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /both HTTP/1.1\r\nHost: x\r\n\r\n"));
  char out[256];
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 200); /* no upgrade: handler */
  CHECK_STR(out, "both GET /both 0");
  CHECK_EQ_INT(raw_ws_handshake(loop, r, "/both", NULL), 101);
  RUN_UNTIL(loop, ws.opens == 1, 2000);
  CHECK_EQ_INT(ws.opens, 1);
  raw_ws_send(loop, r, 0x1, "hi", 2);
  RUN_UNTIL(loop, ws.messages == 1, 2000);
  CHECK_STR(ws.msg, "hi");
  CHECK_EQ_INT(s.calls, 1);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Handlers that misbehave, and respond's checks                       */

typedef struct checks {
  int rc_status, rc_ct, rc_extra, rc_extra2, rc_204, rc_ok, rc_again;
} checks;

static void on_checks(dx_http_req *req, void *user) {
  checks *c = user;
  c->rc_status = dx_http_respond(req, 99, NULL, NULL, NULL, 0);
  c->rc_ct = dx_http_respond(req, 200, "text/plain\r\nX-Evil: 1", NULL, NULL, 0);
  c->rc_extra = dx_http_respond(req, 200, NULL, "X-A: 1", NULL, 0);
  c->rc_extra2 = dx_http_respond(req, 200, NULL, "X-A: 1\r\n\r\nbody", NULL, 0);
  c->rc_204 = dx_http_respond(req, 204, NULL, NULL, "x", 1);
  c->rc_ok = dx_http_respond(req, 201, "text/plain", NULL, "made", 4);
  c->rc_again = dx_http_respond(req, 200, NULL, NULL, NULL, 0);
}

TEST(handler_not_responding_gets_500) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen s = {.name = "mute", .no_answer = true};
  checks c = {0};
  dx_server_http(srv, "/mute", on_req, &s);
  dx_server_http(srv, "/checks", on_checks, &c);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  capture cap;
  capture_start(&cap);
  CHECK(raw_write_str(loop, r, "GET /mute HTTP/1.1\r\nHost: x\r\n\r\n"));
  char out[256];
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 500);
  char *log = capture_end(&cap);
  CHECK_CONTAINS(log, "did not respond");
  free(log);
  /* Still a well-formed response: the connection stays usable. */
  CHECK(raw_write_str(loop, r, "GET /checks HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK_EQ_INT(take_response(loop, r, out, sizeof out, NULL, 0), 201);
  CHECK_STR(out, "made");
  CHECK_EQ_INT(c.rc_status, DX_EINVAL);
  CHECK_EQ_INT(c.rc_ct, DX_EINVAL);
  CHECK_EQ_INT(c.rc_extra, DX_EINVAL);
  CHECK_EQ_INT(c.rc_extra2, DX_EINVAL);
  CHECK_EQ_INT(c.rc_204, DX_EINVAL);
  CHECK_EQ_INT(c.rc_ok, 0);
  CHECK_EQ_INT(c.rc_again, DX_ESTATE);
  run_for(loop, 20);
  CHECK_EQ_INT((int)r->len, 0); /* nothing but the one response */
  teardown(loop, srv);
}

static void on_free_server(dx_http_req *req, void *user) {
  dx_server **srv = user;
  dx_http_respond(req, 200, NULL, NULL, "bye", 3);
  dx_server_free(*srv);
  *srv = NULL;
}

TEST(handler_frees_the_server) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server *hold = srv;
  dx_server_http(srv, "/bye", on_free_server, &hold);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /bye HTTP/1.1\r\nHost: x\r\n\r\nGET /bye HTTP/1.1\r\n\r\n"));
  RUN_UNTIL(loop, r->eof || r->reset, 3000);
  CHECK(r->eof || r->reset);
  CHECK(hold == NULL);
  teardown(loop, NULL);
}

/* ------------------------------------------------------------------ */
/* Routing beside WebSocket routes, /healthz and static files          */

TEST(prefix_and_exact_routes) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  seen api = {.name = "api"}, deep = {.name = "deep"}, exact = {.name = "exact"};
  seen again = {.name = "again"};
  dx_server_http(srv, "/api/", on_req, &api);
  dx_server_http(srv, "/api/deep/", on_req, &deep);
  dx_server_http(srv, "/api/x", on_req, &exact);
  struct {
    const char *target, *want;
    int status;
  } cases[] = {
      {"/api/x", "exact GET /api/x 0", 200},
      {"/api/x/", "api GET /api/x/ 0", 200},
      {"/api/", "api GET /api/ 0", 200},
      {"/api/y?z=1", "api GET /api/y 0", 200},
      {"/api/deep", "api GET /api/deep 0", 200},
      {"/api/deep/z", "deep GET /api/deep/z 0", 200},
      {"/api", NULL, 404},
      {"/ap", NULL, 404},
      {"/other", NULL, 404},
  };
  int port = start_listening(srv);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    raw *r = http_request(loop, port, "GET", cases[i].target);
    CHECK_EQ_INT(http_status(r->buf), cases[i].status);
    if (cases[i].want) CHECK_STR(http_body(r->buf), cases[i].want);
    raw_close(r);
  }
  /* Registering a path again replaces its handler. */
  dx_server_http(srv, "/api/x", on_req, &again);
  raw *r = http_request(loop, port, "DELETE", "/api/x");
  CHECK_STR(http_body(r->buf), "again DELETE /api/x 0");
  raw_close(r);
  CHECK_EQ_INT(exact.calls, 1);
  teardown(loop, srv);
}

TEST(healthz_static_websocket_and_404_unaffected) {
  char dir[] = "/tmp/dx_http_api_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/index.html", dir);
  FILE *f = fopen(path, "w");
  fputs("<p>static</p>", f);
  fclose(f);

  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.static_dir = dir});
  seen api = {.name = "api"}, root = {.name = "root"};
  rec ws = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/ws", &h, &ws);
  dx_server_http(srv, "/api/", on_req, &api);
  int port = start_listening(srv);

  raw *r = http_request(loop, port, "GET", "/healthz");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_STR(http_body(r->buf), "ok\n");
  raw_close(r);
  r = http_request(loop, port, "GET", "/index.html");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK_STR(http_body(r->buf), "<p>static</p>");
  raw_close(r);
  r = http_request(loop, port, "GET", "/missing.html");
  CHECK_EQ_INT(http_status(r->buf), 404);
  raw_close(r);
  r = http_request(loop, port, "GET", "/ws");
  CHECK_EQ_INT(http_status(r->buf), 426);
  raw_close(r);
  int st = 0;
  r = raw_ws_open(loop, port, "/ws", NULL, &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, ws.opens == 1, 2000);
  CHECK_EQ_INT(ws.opens, 1);
  raw_close(r);
  /* An upgrade to a handler-only path is still "no WebSocket endpoint". */
  r = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, r, "/api/x", NULL), 404);
  raw_close(r);
  CHECK_EQ_INT(api.calls, 0);

  /* A "/" prefix takes every path, static files too, but not /healthz. */
  dx_server_http(srv, "/", on_req, &root);
  r = http_request(loop, port, "GET", "/index.html");
  CHECK_STR(http_body(r->buf), "root GET /index.html 0");
  raw_close(r);
  r = http_request(loop, port, "GET", "/healthz");
  CHECK_STR(http_body(r->buf), "ok\n");
  raw_close(r);
  /* An exact "/healthz" does. */
  dx_server_http(srv, "/healthz", on_req, &root);
  r = http_request(loop, port, "GET", "/healthz");
  CHECK_STR(http_body(r->buf), "root GET /healthz 0");
  raw_close(r);
  teardown(loop, srv);
  unlink(path);
  rmdir(dir);
}

/* A large response and a keep-alive connection that does not read: the
 * response goes out whole; pipelined requests past max_buffered unsent
 * bytes get "Connection: close". */
static void on_big(dx_http_req *req, void *user) {
  size_t n = (size_t)user;
  char *b = malloc(n);
  memset(b, 'b', n);
  dx_http_respond(req, 200, "application/octet-stream", NULL, b, n);
  free(b);
}

TEST(large_responses_and_a_client_that_does_not_read) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.max_buffered = 256 << 10});
  dx_server_http(srv, "/big", on_big, (void *)(size_t)(1 << 20));
  int port = start_listening(srv);
  raw *r = raw_connect(port, 4096);
  r->paused = true;
  char reqs[64 * 40] = "";
  for (int i = 0; i < 40; i++) strcat(reqs, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(raw_write_str(loop, r, reqs));
  run_for(loop, 100);
  r->paused = false;
  r->discard = false;
  int ok = 0;
  char head[1024];
  for (;;) {
    int st = take_response(loop, r, NULL, 0, head, sizeof head);
    if (st != 200) break;
    ok++;
    if (strstr(head, "Connection: close")) break;
  }
  CHECK(ok >= 1 && ok < 40); /* the first goes out whole; then it closes */
  RUN_UNTIL(loop, r->eof || r->reset, 5000);
  CHECK(r->eof || r->reset);
  teardown(loop, srv);
}

int main(void) {
  RUN(get_with_query_parameters);
  RUN(post_body_whole_and_one_byte_per_read);
  RUN(bodies_refused);
  RUN(keep_alive_two_requests_then_close);
  RUN(idle_keep_alive_closed_after_handshake_timeout);
  RUN(pipelined_requests);
  RUN(upgrade_after_keep_alive_request);
  RUN(handler_not_responding_gets_500);
  RUN(handler_frees_the_server);
  RUN(prefix_and_exact_routes);
  RUN(healthz_static_websocket_and_404_unaffected);
  RUN(large_responses_and_a_client_that_does_not_read);
  return test_report();
}
