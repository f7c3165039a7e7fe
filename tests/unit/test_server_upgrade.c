/* dx_server, the opening handshake from the application's side: the
 * on_upgrade hook (request details, rejecting with an HTTP status, inline
 * per-connection data), subprotocol choice (dx_ws_set_protocol and route
 * protocols), the origin allowlist, and a dx_connect client negotiating a
 * subprotocol end to end. */
#include "server_helpers.h"

/* ------------------------------------------------------------------ */
/* on_upgrade                                                          */

typedef struct conn_data {
  uint32_t magic;
  uint32_t id;
  char token[48];
  unsigned char zero_check[64];
} conn_data;

typedef struct up_app {
  rec r;
  int upgrades;
  char path[128], query[128], auth[128], origin[128], missing[8];
  bool missing_is_null;
  bool data_was_zero; /* every on_upgrade saw zeroed data */
  int next_id;
  /* on_message reads the data back */
  uint32_t msg_magic, msg_id;
  char msg_token[48];
  /* protocol choice */
  const char *choose; /* dx_ws_set_protocol with this, if set */
  const char *choose_bad;
  int choose_rc, choose_bad_rc;
  const char *proto_in_open;
  bool proto_in_open_null;
  char open_protocol[64];
  const char *path_ptr; /* dx_ws_path() pointer taken before set_protocol */
  bool path_stable;
  bool header_null_after_open;
} up_app;

static int up_on_upgrade(dx_ws *ws, void *user) {
  up_app *a = user;
  a->upgrades++;
  rec_copy_(a->path, sizeof a->path, dx_ws_path(ws));
  rec_copy_(a->query, sizeof a->query, dx_ws_query(ws));
  rec_copy_(a->origin, sizeof a->origin, dx_ws_origin(ws));
  const char *auth = dx_ws_header(ws, "Authorization");
  rec_copy_(a->auth, sizeof a->auth, auth);
  a->missing_is_null = dx_ws_header(ws, "X-Not-There") == NULL;

  conn_data *d = dx_ws_data(ws);
  if (!d) return 500;
  const unsigned char *b = (const unsigned char *)d;
  for (size_t i = 0; i < sizeof *d; i++)
    if (b[i]) a->data_was_zero = false;

  a->path_ptr = dx_ws_path(ws);
  if (a->choose_bad) a->choose_bad_rc = dx_ws_set_protocol(ws, a->choose_bad);
  if (a->choose) a->choose_rc = dx_ws_set_protocol(ws, a->choose);
  a->path_stable = a->path_ptr == dx_ws_path(ws) && strcmp(a->path_ptr, a->path) == 0;

  if (!auth || strcmp(auth, "Bearer good") != 0) return 401;
  d->magic = 0xD0D0CAFE;
  d->id = (uint32_t)++a->next_id;
  snprintf(d->token, sizeof d->token, "%s", auth + 7);
  memset(d->zero_check, 0xAB, sizeof d->zero_check); /* dirty it for the next check */
  return 0;
}

static void up_on_open(dx_ws *ws, void *user) {
  up_app *a = user;
  rec_on_open(ws, &a->r);
  a->proto_in_open_null = dx_ws_protocol(ws) == NULL;
  rec_copy_(a->open_protocol, sizeof a->open_protocol, dx_ws_protocol(ws));
}

static void up_on_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  up_app *a = user;
  rec_on_message(ws, op, data, len, &a->r);
  conn_data *d = dx_ws_data(ws);
  a->msg_magic = d->magic;
  a->msg_id = d->id;
  snprintf(a->msg_token, sizeof a->msg_token, "%s", d->token);
  /* Request headers are gone after on_open. */
  a->header_null_after_open = dx_ws_header(ws, "Authorization") == NULL;
  dx_ws_send(ws, op, data, len);
}

static void up_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t rl, bool clean,
                        void *user) {
  rec_on_close(ws, code, reason, rl, clean, &((up_app *)user)->r);
}

static void up_on_error(dx_ws *ws, int err, const char *msg, void *user) {
  rec_on_error(ws, err, msg, &((up_app *)user)->r);
}

static dx_ws_handlers up_handlers(void) {
  return (dx_ws_handlers){.on_upgrade = up_on_upgrade,
                          .on_open = up_on_open,
                          .on_message = up_on_message,
                          .on_error = up_on_error,
                          .on_close = up_on_close,
                          .data_size = sizeof(conn_data)};
}

TEST(on_upgrade_sees_request_and_can_reject) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  up_app a = {.data_was_zero = true};
  dx_ws_handlers h = up_handlers();
  CHECK_EQ_INT(dx_server_route(srv, "/secure", &h, &a), 0);
  int port = start_listening(srv);

  /* Wrong credentials: 401, and nothing is opened or closed. */
  raw *bad = raw_connect(port, 0);
  int st = raw_ws_handshake(loop, bad, "/secure?user=eve&x=1",
                            "Authorization: Bearer wrong\r\nOrigin: https://app.example\r\n");
  CHECK_EQ_INT(st, 401);
  CHECK(!contains(bad->buf, "Sec-WebSocket-Accept"));
  RUN_UNTIL(loop, bad->eof || bad->reset, 2000);
  CHECK(bad->eof || bad->reset);
  CHECK_EQ_INT(a.upgrades, 1);
  CHECK_STR(a.path, "/secure");
  CHECK_STR(a.query, "user=eve&x=1");
  CHECK_STR(a.auth, "Bearer wrong");
  CHECK_STR(a.origin, "https://app.example");
  CHECK(a.missing_is_null);
  run_for(loop, 50);
  CHECK_EQ_INT(a.r.opens, 0);
  CHECK_EQ_INT(a.r.closes, 0);
  CHECK_EQ_INT(a.r.errors, 0);
  /* The server half-closed after the response and waits (bounded by the
   * close timeout) for the client to close its side. */
  raw_close(bad);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 0);

  /* No Authorization at all: also 401 (dx_ws_header returns NULL). */
  raw *none = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, none, "/secure", NULL), 401);
  CHECK_STR(a.auth, "");
  CHECK_STR(a.origin, "");
  CHECK_STR(a.query, "");

  /* Good credentials: 101, on_open, and the inline data written in
   * on_upgrade is there in on_message. */
  raw *good = raw_ws_open(loop, port, "/secure?user=bob",
                          "Authorization: Bearer good\r\nOrigin: https://app.example\r\n", &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, a.r.opens == 1, 2000);
  CHECK_EQ_INT(a.r.opens, 1);
  CHECK_STR(a.r.path, "/secure");
  CHECK_STR(a.r.query, "user=bob");
  CHECK(good && raw_ws_send(loop, good, 0x1, "hello", 5));
  ws_frame f;
  CHECK(good && raw_ws_next(loop, good, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x1);
  CHECK_STR((char *)f.data, "hello");
  ws_frame_free(&f);
  CHECK_EQ_INT(a.msg_magic, 0xD0D0CAFE);
  CHECK_EQ_INT(a.msg_id, 1);
  CHECK_STR(a.msg_token, "good");
  CHECK(a.header_null_after_open);

  /* A second connection gets its own zeroed data (on_upgrade checks). */
  raw *good2 = raw_ws_open(loop, port, "/secure", "Authorization: Bearer good\r\n", &st);
  CHECK_EQ_INT(st, 101);
  CHECK(good2 && raw_ws_send(loop, good2, 0x2, "x", 1));
  RUN_UNTIL(loop, a.r.messages == 2, 2000);
  CHECK_EQ_INT(a.msg_id, 2);
  CHECK(a.data_was_zero);

  /* The first connection's data is untouched by the second. */
  CHECK(good && raw_ws_send(loop, good, 0x1, "again", 5));
  RUN_UNTIL(loop, a.r.messages == 3, 2000);
  CHECK_EQ_INT(a.msg_id, 1);
  CHECK_EQ_INT(a.r.errors, 0);
  teardown(loop, srv);
}

static int reject_with(dx_ws *ws, void *user) {
  (void)ws;
  return *(int *)user;
}

TEST(on_upgrade_status_codes) {
  /* 403 and 503 pass through; an out-of-range value becomes 500. */
  int codes[][2] = {{403, 403}, {503, 503}, {200, 500}, {-1, 500}, {700, 500}};
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    dx_loop *loop = dx_loop_new(NULL);
    dx_server *srv = make_server(loop, (dx_server_opts){0});
    int ret = codes[i][0];
    rec r = {0};
    dx_ws_handlers h = rec_handlers();
    h.on_upgrade = reject_with;
    dx_server_route(srv, "/", &h, &ret);
    int port = start_listening(srv);
    raw *c = raw_connect(port, 0);
    CHECK_EQ_INT(raw_ws_handshake(loop, c, "/", NULL), codes[i][1]);
    run_for(loop, 20);
    CHECK_EQ_INT(r.opens + r.closes + r.errors, 0);
    teardown(loop, srv);
  }
}

TEST(route_data_size_after_listen) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = rec_handlers();
  h.data_size = 16;
  rec r = {0};
  CHECK_EQ_INT(dx_server_route(srv, "/a", &h, &r), 0);
  start_listening(srv);
  /* Connections are sized at accept: a larger data_size now is refused,
   * a smaller or equal one is fine. */
  h.data_size = 17;
  CHECK_EQ_INT(dx_server_route(srv, "/b", &h, &r), DX_ESTATE);
  h.data_size = 16;
  CHECK_EQ_INT(dx_server_route(srv, "/b", &h, &r), 0);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Subprotocols                                                        */

TEST(set_protocol_only_accepts_offers) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  up_app a = {.data_was_zero = true, .choose = "chat.v2", .choose_bad = "chat.v9"};
  dx_ws_handlers h = up_handlers();
  dx_server_route(srv, "/p", &h, &a);
  int port = start_listening(srv);

  raw *c = raw_connect(port, 0);
  int st = raw_ws_handshake(loop, c, "/p?q=1",
                            "Authorization: Bearer good\r\n"
                            "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n");
  CHECK_EQ_INT(st, 101);
  CHECK_EQ_INT(a.choose_bad_rc, DX_EINVAL);
  CHECK_EQ_INT(a.choose_rc, 0);
  CHECK(a.path_stable); /* dx_ws_path's pointer survives the choice */
  RUN_UNTIL(loop, a.r.opens == 1, 2000);
  CHECK_STR(a.open_protocol, "chat.v2");
  CHECK_STR(a.r.path, "/p");
  CHECK_STR(a.r.query, "q=1");
  raw_close(c);

  /* Offers split over two header lines count too. */
  a.r.opens = 0;
  raw *c2 = raw_connect(port, 0);
  char head[1024];
  st = raw_ws_handshake(loop, c2, "/p",
                        "Authorization: Bearer good\r\nSec-WebSocket-Protocol: x\r\n"
                        "Sec-WebSocket-Protocol: chat.v2\r\n");
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, a.r.opens == 1, 2000);
  CHECK_STR(a.open_protocol, "chat.v2");
  raw_close(c2);

  /* The client offers nothing: the choice is refused, no protocol. */
  a.r.opens = 0;
  a.choose_rc = 1;
  raw *c3 = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, c3, "/p", "Authorization: Bearer good\r\n"), 101);
  CHECK_EQ_INT(a.choose_rc, DX_EINVAL);
  RUN_UNTIL(loop, a.r.opens == 1, 2000);
  CHECK(a.proto_in_open_null);
  raw_close(c3);

  /* The 101 names the chosen protocol. */
  raw *c4 = raw_connect(port, 0);
  char req[1024];
  snprintf(req, sizeof req,
           "GET /p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
           "Authorization: Bearer good\r\nSec-WebSocket-Protocol: chat.v2\r\n\r\n");
  raw_write_str(loop, c4, req);
  RUN_UNTIL(loop, http_body(c4->buf), 2000);
  CHECK_EQ_INT(http_status(c4->buf), 101);
  CHECK(http_header(c4->buf, "Sec-WebSocket-Protocol", head, sizeof head));
  CHECK_STR(head, "chat.v2");
  CHECK(http_header(c4->buf, "Sec-WebSocket-Accept", head, sizeof head));
  CHECK_STR(head, WS_ACCEPT);
  teardown(loop, srv);
}

static int set_protocol_outside_upgrade_rc = 1;
static void open_then_set_protocol(dx_ws *ws, void *user) {
  (void)user;
  set_protocol_outside_upgrade_rc = dx_ws_set_protocol(ws, "a");
}

TEST(set_protocol_outside_on_upgrade_is_refused) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_open = open_then_set_protocol};
  dx_server_route(srv, "/", &h, NULL);
  int port = start_listening(srv);
  raw *c = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, c, "/", "Sec-WebSocket-Protocol: a\r\n"), 101);
  CHECK(set_protocol_outside_upgrade_rc < 0);
  CHECK(!contains(c->buf, "Sec-WebSocket-Protocol"));
  teardown(loop, srv);
}

TEST(route_protocols_server_preference) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec r = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/p", &h, &r);
  static const char *const prefs[] = {"v3", "v2", "v1", NULL};
  CHECK_EQ_INT(dx_server_route_protocols(srv, "/p", prefs), 0);
  CHECK_EQ_INT(dx_server_route_protocols(srv, "/unrouted", prefs), DX_EINVAL);
  int port = start_listening(srv);

  /* The client prefers v1, the server v2 among the common ones: v2. */
  raw *c = raw_connect(port, 0);
  char req[1024], v[64];
  snprintf(req, sizeof req,
           "GET /p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: v1, v2, v9\r\n\r\n");
  raw_write_str(loop, c, req);
  RUN_UNTIL(loop, http_body(c->buf) && r.opens == 1, 2000);
  CHECK_EQ_INT(http_status(c->buf), 101);
  CHECK(http_header(c->buf, "Sec-WebSocket-Protocol", v, sizeof v));
  CHECK_STR(v, "v2");
  CHECK_STR(r.protocol, "v2");
  CHECK(!r.protocol_null);

  /* No common protocol: the upgrade still succeeds, without one. */
  raw *d = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, d, "/p", "Sec-WebSocket-Protocol: other\r\n"), 101);
  RUN_UNTIL(loop, r.opens == 2, 2000);
  CHECK(r.protocol_null);

  /* dx_connect offering both gets the server's preference. */
  static const char *const offers[] = {"v1", "v3", NULL};
  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/p", port);
  rec cl = {0};
  dx_ws_handlers ch = rec_handlers();
  const char *why = NULL;
  dx_client *client = dx_connect(loop, url, &(dx_client_opts){.protocols = offers}, &ch, &cl, &why);
  CHECK(client != NULL);
  RUN_UNTIL(loop, cl.opens == 1 && r.opens == 3, 3000);
  CHECK_EQ_INT(cl.opens, 1);
  CHECK_STR(cl.protocol, "v3");
  CHECK_STR(r.protocol, "v3");
  dx_client_free(client);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Failures after on_upgrade accepted                                  */

/* What on_upgrade attaches, on_close releases: also when the upgrade fails
 * after on_upgrade accepted it (here the 101 cannot be built: the chosen
 * subprotocol is too long for it; out of memory takes the same path). */
typedef struct att_app {
  int upgrades, attached, opens, errors, closes, err, close_code;
} att_app;

static int att_on_upgrade(dx_ws *ws, void *user) {
  att_app *a = user;
  a->upgrades++;
  *(int **)dx_ws_data(ws) = &a->attached; /* "attach" something */
  a->attached++;
  return 0;
}
static void att_on_open(dx_ws *ws, void *user) {
  (void)ws;
  ((att_app *)user)->opens++;
}
static void att_on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws, (void)msg;
  att_app *a = user;
  a->errors++;
  a->err = err;
}
static void att_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t len, bool clean,
                         void *user) {
  (void)reason, (void)len, (void)clean;
  att_app *a = user;
  a->closes++;
  a->close_code = code;
  int **slot = dx_ws_data(ws);
  if (slot && *slot) --**slot; /* release */
}

TEST(failed_upgrade_after_on_upgrade_still_gets_on_close) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  att_app a = {0}, plain = {0};
  dx_ws_handlers h = {.on_upgrade = att_on_upgrade,
                      .on_open = att_on_open,
                      .on_error = att_on_error,
                      .on_close = att_on_close,
                      .data_size = sizeof(int *)};
  dx_server_route(srv, "/hooked", &h, &a);
  dx_ws_handlers h2 = {.on_open = att_on_open, .on_error = att_on_error, .on_close = att_on_close};
  dx_server_route(srv, "/plain", &h2, &plain);
  char longproto[601];
  memset(longproto, 'p', sizeof longproto - 1);
  longproto[sizeof longproto - 1] = 0;
  const char *const protos[] = {longproto, NULL};
  dx_server_route_protocols(srv, "/hooked", protos);
  dx_server_route_protocols(srv, "/plain", protos);
  int port = start_listening(srv);
  char extra[700];
  snprintf(extra, sizeof extra, "Sec-WebSocket-Protocol: %s\r\n", longproto);

  raw *c = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, c, "/hooked", extra), 500);
  RUN_UNTIL(loop, c->eof || c->reset, 2000);
  run_for(loop, 20);
  CHECK_EQ_INT(a.upgrades, 1);
  CHECK_EQ_INT(a.opens, 0);
  CHECK_EQ_INT(a.errors, 1);
  CHECK_EQ_INT(a.err, DX_ENOSPC);
  CHECK_EQ_INT(a.closes, 1);
  CHECK_EQ_INT(a.close_code, 1006);
  CHECK_EQ_INT(a.attached, 0); /* released */

  /* No on_upgrade: no handler ever saw the connection, and none runs. */
  raw *d = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, d, "/plain", extra), 500);
  RUN_UNTIL(loop, d->eof || d->reset, 2000);
  run_for(loop, 20);
  CHECK_EQ_INT(plain.opens + plain.errors + plain.closes, 0);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Origins                                                             */

TEST(origin_allowlist) {
  dx_loop *loop = dx_loop_new(NULL);
  static const char *const origins[] = {"https://good.example", "http://localhost:3000", NULL};
  dx_server *srv = make_server(loop, (dx_server_opts){.origins = origins});
  rec r = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "*", &h, &r);
  int port = start_listening(srv);

  raw *bad = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, bad, "/", "Origin: https://evil.example\r\n"), 403);
  raw *sub = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, sub, "/", "Origin: https://good.example.evil\r\n"), 403);
  raw *pre = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, pre, "/", "Origin: https://good.exampl\r\n"), 403);
  run_for(loop, 20);
  CHECK_EQ_INT(r.opens + r.closes, 0);

  int st = 0;
  raw *ok = raw_ws_open(loop, port, "/", "Origin: https://good.example\r\n", &st);
  CHECK_EQ_INT(st, 101);
  raw *ok2 = raw_ws_open(loop, port, "/", "Origin: http://localhost:3000\r\n", &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, r.opens == 2, 2000);
  CHECK_EQ_INT(r.opens, 2);

  /* The library client with an allowed / a refused origin. */
  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/x", port);
  rec c1 = {0}, c2 = {0};
  dx_ws_handlers ch = rec_handlers();
  dx_client *g =
      dx_connect(loop, url, &(dx_client_opts){.origin = "https://good.example"}, &ch, &c1, NULL);
  dx_client *e =
      dx_connect(loop, url, &(dx_client_opts){.origin = "https://evil.example"}, &ch, &c2, NULL);
  RUN_UNTIL(loop, c1.opens == 1 && c2.closes == 1, 3000);
  CHECK_EQ_INT(c1.opens, 1);
  CHECK_EQ_INT(c2.opens, 0);
  CHECK_EQ_INT(c2.closes, 1);
  CHECK_CONTAINS(c2.errmsg, "403");
  dx_client_free(g);
  dx_client_free(e);
  (void)ok, (void)ok2;
  teardown(loop, srv);
}

/* Headers are readable in on_upgrade/on_open only, even when the first
 * frame arrives in the same packet as the request (and so is handled
 * within the same read). */
static int hdr_in_open = -1, hdr_in_message = -1;
static void hdr_open(dx_ws *ws, void *user) {
  (void)user;
  hdr_in_open = dx_ws_header(ws, "Host") != NULL;
}
static void hdr_message(dx_ws *ws, unsigned op, const void *d, size_t n, void *user) {
  (void)op, (void)d, (void)n, (void)user;
  hdr_in_message = dx_ws_header(ws, "Host") != NULL;
}

TEST(headers_gone_after_on_open_even_with_a_frame_in_the_same_packet) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_route(srv, "/", &(dx_ws_handlers){.on_open = hdr_open, .on_message = hdr_message},
                  NULL);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n");
  /* A masked text frame "hi" with the all-zero key. */
  const char frame[] = {(char)0x81, (char)0x82, 0, 0, 0, 0, 'h', 'i'};
  memcpy(req + n, frame, sizeof frame);
  CHECK(raw_write(loop, r, req, (size_t)n + sizeof frame));
  RUN_UNTIL(loop, hdr_in_message != -1, 3000);
  CHECK_EQ_INT(hdr_in_open, 1);
  CHECK_EQ_INT(hdr_in_message, 0);
  raw_close(r);
  teardown(loop, srv);
}

/* A head dribbled one byte per read still upgrades (the server parses
 * once per line, not once per read), and a dribbled head with no line end
 * is cut off at the size limit with 431. */
TEST(head_dribbled_one_byte_per_read) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.max_handshake = 1024});
  dx_server_route(srv, "/", &(dx_ws_handlers){0}, NULL);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  for (size_t i = 0; req[i]; i++) {
    CHECK(raw_write(loop, r, req + i, 1));
    dx_loop_run_once(loop, 0); /* the server reads each byte on its own */
  }
  RUN_UNTIL(loop, http_body(r->buf) != NULL, 3000);
  CHECK_EQ_INT(http_status(r->buf), 101);
  raw_close(r);

  raw *g = raw_connect(port, 0);
  char junk[64];
  memset(junk, 'a', sizeof junk);
  CHECK(raw_write(loop, g, "GET /", 5));
  for (int i = 0; i < 20 && !g->eof && !g->reset; i++) { /* 1,280 bytes, no new line */
    raw_write(loop, g, junk, sizeof junk);
    dx_loop_run_once(loop, 0);
  }
  RUN_UNTIL(loop, http_body(g->buf) != NULL || g->eof || g->reset, 3000);
  CHECK_EQ_INT(http_status(g->buf), 431);
  raw_close(g);

  /* Exactly the limit, no line end, then silence: 431 at once, not at the
   * handshake timeout. */
  raw *e = raw_connect(port, 0);
  char exact[1024];
  memset(exact, 'a', sizeof exact);
  memcpy(exact, "GET /", 5);
  CHECK(raw_write(loop, e, exact, 1000));
  run_for(loop, 30); /* the server reads the first part on its own */
  CHECK(raw_write(loop, e, exact + 1000, 24));
  RUN_UNTIL(loop, http_body(e->buf) != NULL || e->eof || e->reset, 2000);
  CHECK_EQ_INT(http_status(e->buf), 431);
  raw_close(e);
  teardown(loop, srv);
}

int main(void) {
  RUN(on_upgrade_sees_request_and_can_reject);
  RUN(on_upgrade_status_codes);
  RUN(route_data_size_after_listen);
  RUN(set_protocol_only_accepts_offers);
  RUN(set_protocol_outside_on_upgrade_is_refused);
  RUN(route_protocols_server_preference);
  RUN(failed_upgrade_after_on_upgrade_still_gets_on_close);
  RUN(origin_allowlist);
  RUN(headers_gone_after_on_open_even_with_a_frame_in_the_same_packet);
  RUN(head_dribbled_one_byte_per_read);
  return test_report();
}
