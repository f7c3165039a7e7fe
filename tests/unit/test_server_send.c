/* dx_server connections after the upgrade: dx_ws_send results, the
 * per-connection buffer cap and its policies (close 1008 / 1013, drop),
 * on_drain, closing (and aborting) from inside on_message, and
 * dx_server_each. */
#include "server_helpers.h"

static uint8_t big[16384];

/* ------------------------------------------------------------------ */
/* Send results and closing from on_message                            */

typedef struct closer {
  rec r;
  int send_before, close_rc, send_after, close_again, fragment_after, ping_after;
  size_t buffered_after;
  char path_after[64];
  int data_after;
  bool abort_instead;
  int closes_seen_inside; /* on_close calls that happened during on_message */
} closer;

static void closer_on_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  closer *c = user;
  rec_on_message(ws, op, data, len, &c->r);
  if (c->r.messages > 1) {
    /* A message that was already on its way: the connection is closing. */
    c->close_again = dx_ws_close(ws, 1000, NULL);
    return;
  }
  c->send_before = dx_ws_send(ws, DX_OP_TEXT, "last", 4);
  if (c->abort_instead) {
    int before = c->r.closes;
    dx_ws_abort(ws);
    c->closes_seen_inside = c->r.closes - before;
    c->close_rc = 0;
  } else {
    c->close_rc = dx_ws_close(ws, 4000, "bye");
  }
  /* ws stays usable until this handler returns. */
  c->send_after = dx_ws_send(ws, DX_OP_TEXT, "x", 1);
  c->fragment_after = dx_ws_send_fragment(ws, DX_OP_TEXT, "y", 1, true);
  c->ping_after = dx_ws_send(ws, DX_OP_PING, NULL, 0);
  c->close_again = dx_ws_close(ws, 1000, NULL);
  c->buffered_after = dx_ws_buffered(ws);
  rec_copy_(c->path_after, sizeof c->path_after, dx_ws_path(ws));
  int *d = dx_ws_data(ws);
  *d = 42;
  c->data_after = *d;
}

static void closer_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t rl, bool clean,
                            void *user) {
  rec_on_close(ws, code, reason, rl, clean, &((closer *)user)->r);
}

static void closer_on_open(dx_ws *ws, void *user) {
  closer *c = user;
  rec_on_open(ws, &c->r);
  /* Sending in on_open works and reports DX_SENT for a small message. */
  c->r.msg_op = (unsigned)dx_ws_send_text(ws, "welcome");
}

TEST(send_results_and_close_from_on_message) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  closer c = {0};
  dx_ws_handlers h = {.on_open = closer_on_open,
                      .on_message = closer_on_message,
                      .on_close = closer_on_close,
                      .data_size = sizeof(int)};
  dx_server_route(srv, "/close", &h, &c);
  int port = start_listening(srv);

  int st = 0;
  raw *r = raw_ws_open(loop, port, "/close", NULL, &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, c.r.opens == 1, 2000);
  CHECK_EQ_INT(c.r.msg_op, DX_SENT); /* the on_open send result */
  ws_frame f;
  CHECK(r && raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x1);
  CHECK_STR((char *)f.data, "welcome");
  ws_frame_free(&f);

  /* Two messages in one write: the first closes, the second arrives while
   * the connection is closing. */
  raw_ws_send(loop, r, 0x1, "first", 5);
  raw_ws_send(loop, r, 0x1, "second", 6);
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x1);
  CHECK_STR((char *)f.data, "last");
  ws_frame_free(&f);
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 4000);
  CHECK_EQ_INT(f.len, 5);
  CHECK(f.len == 5 && memcmp(f.data + 2, "bye", 3) == 0);
  CHECK(!f.masked);
  ws_frame_free(&f);
  /* Nothing after the close frame. */
  run_for(loop, 30);
  CHECK_EQ_INT(r->len, 0);

  CHECK_EQ_INT(c.send_before, DX_SENT);
  CHECK_EQ_INT(c.close_rc, 0);
  CHECK_EQ_INT(c.send_after, DX_ECLOSED);
  CHECK_EQ_INT(c.fragment_after, DX_ECLOSED);
  CHECK_EQ_INT(c.ping_after, DX_ECLOSED);
  CHECK_EQ_INT(c.close_again, DX_ECLOSED);
  CHECK_STR(c.path_after, "/close");
  CHECK_EQ_INT(c.data_after, 42);
  CHECK_EQ_INT(c.r.closes, 0); /* not before the peer answers */

  /* The client answers the close: on_close once, clean, with the code. */
  raw_ws_send_close(loop, r, 4000, "bye");
  RUN_UNTIL(loop, c.r.closes == 1 && (r->eof || r->reset), 2000);
  CHECK_EQ_INT(c.r.closes, 1);
  CHECK_EQ_INT(c.r.close_code, 4000);
  CHECK_STR(c.r.close_reason, "bye");
  CHECK(c.r.clean);
  CHECK(r->eof); /* the server closes TCP first (RFC 6455 7.1.1) */
  run_for(loop, 50);
  CHECK_EQ_INT(c.r.closes, 1);
  CHECK_EQ_INT(dx_server_connections(srv), 1); /* until the client closes its end */
  raw_close(r);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 0);
  CHECK_EQ_INT(c.r.closes, 1);

  /* The library client sees the close code and reason too. */
  memset(&c, 0, sizeof c);
  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/close", port);
  rec cl = {0};
  dx_ws_handlers ch = rec_handlers();
  dx_client *client = dx_connect(loop, url, NULL, &ch, &cl, NULL);
  RUN_UNTIL(loop, cl.messages == 1, 2000);
  CHECK_STR(cl.msg, "welcome");
  dx_client_send(client, DX_OP_TEXT, "go", 2);
  RUN_UNTIL(loop, cl.closes == 1 && c.r.closes == 1, 3000);
  CHECK_EQ_INT(cl.closes, 1);
  CHECK_EQ_INT(cl.close_code, 4000);
  CHECK_STR(cl.close_reason, "bye");
  CHECK(cl.clean);
  CHECK_STR(cl.msg, "last");
  CHECK_EQ_INT(c.r.closes, 1);
  CHECK_EQ_INT(c.r.close_code, 4000);
  CHECK(c.r.clean);
  dx_client_free(client);
  teardown(loop, srv);
}

TEST(abort_from_on_message) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  closer c = {.abort_instead = true};
  dx_ws_handlers h = {.on_open = closer_on_open,
                      .on_message = closer_on_message,
                      .on_close = closer_on_close,
                      .data_size = sizeof(int)};
  dx_server_route(srv, "/", &h, &c);
  int port = start_listening(srv);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(r != NULL);
  RUN_UNTIL(loop, c.r.opens == 1, 2000);
  raw_ws_send(loop, r, 0x1, "first", 5);
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof || r->reset);
  CHECK_EQ_INT(c.closes_seen_inside, 1); /* on_close ran inside dx_ws_abort */
  CHECK_EQ_INT(c.r.closes, 1);
  CHECK_EQ_INT(c.r.close_code, 1006);
  CHECK(!c.r.clean);
  CHECK_EQ_INT(c.send_after, DX_ECLOSED);
  CHECK_EQ_INT(c.close_again, DX_ECLOSED);
  CHECK_EQ_INT(c.data_after, 42);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 0);
  CHECK_EQ_INT(c.r.closes, 1);
  teardown(loop, srv);
}

TEST(send_argument_errors) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, s.ws != NULL, 2000);
  CHECK(s.ws != NULL);
  if (s.ws) {
    char ctl[126] = {0};
    CHECK_EQ_INT(dx_ws_send(s.ws, DX_OP_PING, ctl, 125), DX_SENT);
    CHECK_EQ_INT(dx_ws_send(s.ws, DX_OP_PING, ctl, 126), DX_EINVAL); /* control > 125 */
    CHECK_EQ_INT(dx_ws_send(s.ws, 0x3, "x", 1), DX_EINVAL);          /* reserved opcode */
    CHECK_EQ_INT(dx_ws_send(s.ws, DX_OP_BINARY, big, sizeof big), DX_SENT);
    CHECK_EQ_INT(dx_ws_close(s.ws, 1005, NULL), DX_EINVAL); /* never on the wire */
    CHECK(dx_ws_send(s.ws, DX_OP_TEXT, "still open", 10) >= 0);
  }
  ws_frame f;
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x9);
  CHECK_EQ_INT(f.len, 125);
  ws_frame_free(&f);
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x2);
  CHECK_EQ_INT(f.len, sizeof big);
  ws_frame_free(&f);
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x1);
  CHECK_STR((char *)f.data, "still open");
  ws_frame_free(&f);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Backpressure                                                        */

typedef struct bp_result {
  int sends;         /* accepted sends (DX_SENT or DX_BUFFERED) */
  int buffered_seen; /* DX_BUFFERED results */
  int first_rc;
  int last_rc;
  int sent_after_buffered; /* DX_SENT after a DX_BUFFERED: the backlog never cleared */
} bp_result;

/* Send 16 KiB messages one per loop turn until the cap is hit (or 4000
 * tries). */
static bp_result fill_until_backpressure(dx_loop *loop, dx_ws *ws) {
  bp_result b = {0, 0, 1, 1, 0};
  for (int i = 0; i < 4000; i++) {
    int rc = dx_ws_send(ws, DX_OP_BINARY, big, sizeof big);
    if (i == 0) b.first_rc = rc;
    b.last_rc = rc;
    if (rc < 0) break;
    b.sends++;
    if (rc == DX_BUFFERED) b.buffered_seen++;
    if (rc == DX_SENT && b.buffered_seen) b.sent_after_buffered++;
    pump(loop);
  }
  return b;
}

static raw *slow_client(dx_loop *loop, int port, rec *s) {
  raw *r = raw_connect(port, 4096);
  if (!r) exit(2);
  CHECK_EQ_INT(raw_ws_handshake(loop, r, "/bp", NULL), 101);
  RUN_UNTIL(loop, s->ws != NULL, 2000);
  CHECK(s->ws != NULL);
  if (!s->ws) exit(1);
  r->paused = true; /* never reads from now on */
  return r;
}

TEST(backpressure_close_policy) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv =
      make_server(loop, (dx_server_opts){.max_buffered = 64 << 10, .close_timeout = 300});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/bp", &h, &s);
  int port = start_listening(srv);
  slow_client(loop, port, &s);
  dx_ws *ws = s.ws;

  capture cap;
  capture_start(&cap);
  bp_result b = fill_until_backpressure(loop, ws);
  int after = dx_ws_send(ws, DX_OP_BINARY, "x", 1);
  char *log = capture_end(&cap);

  printf("close policy: %d x 16 KiB accepted (%d DX_BUFFERED) before DX_EBACKPRESSURE\n", b.sends,
         b.buffered_seen);
  CHECK_EQ_INT(b.first_rc, DX_SENT);
  CHECK(b.sends >= 4); /* at least the 64 KiB cap */
  CHECK_EQ_INT(b.last_rc, DX_EBACKPRESSURE);
  CHECK_EQ_INT(after, DX_ECLOSED); /* closing now */
  CHECK_CONTAINS(log, "slow client");
  CHECK_CONTAINS(log, "1008");
  free(log);

  /* The close frame sits behind unread bytes; the close timeout ends it. */
  RUN_UNTIL(loop, s.closes == 1, 3000);
  CHECK_EQ_INT(s.closes, 1);
  CHECK(s.close_code == 1006 || s.close_code == 1008);
  CHECK(!s.clean);
  CHECK(s.ws == NULL);
  teardown(loop, srv);
}

TEST(backpressure_close_1013_reader_sees_close_frame) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(
      loop, (dx_server_opts){.max_buffered = 64 << 10, .backpressure = DX_BP_CLOSE_1013});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/bp", &h, &s);
  int port = start_listening(srv);
  raw *r = slow_client(loop, port, &s);
  bp_result b = fill_until_backpressure(loop, s.ws);
  CHECK_EQ_INT(b.last_rc, DX_EBACKPRESSURE);

  /* The client reads again: every accepted message arrives whole, then
   * the close frame with 1013; nothing of the dropped message. */
  r->paused = false;
  int got = 0;
  ws_frame f;
  bool closed = false;
  while (raw_ws_next(loop, r, &f, 3000)) {
    if (f.opcode == 0x2) {
      CHECK_EQ_INT(f.len, sizeof big);
      got++;
    } else if (f.opcode == 0x8) {
      CHECK_EQ_INT(ws_close_code(&f), 1013);
      closed = true;
      ws_frame_free(&f);
      break;
    }
    ws_frame_free(&f);
  }
  CHECK(closed);
  CHECK_EQ_INT(got, b.sends);
  raw_ws_send_close(loop, r, 1013, NULL);
  RUN_UNTIL(loop, s.closes == 1, 2000);
  CHECK_EQ_INT(s.closes, 1);
  CHECK_EQ_INT(s.close_code, 1013);
  CHECK(s.clean);
  teardown(loop, srv);
}

TEST(backpressure_drop_policy_and_drain) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(
      loop,
      (dx_server_opts){.max_buffered = 64 << 10, .low_water = 1024, .backpressure = DX_BP_DROP});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/bp", &h, &s);
  int port = start_listening(srv);
  raw *r = slow_client(loop, port, &s);
  dx_ws *ws = s.ws;

  bp_result b = fill_until_backpressure(loop, ws);
  /* A 16 KiB message into an empty queue goes to the socket at once
   * (dx_stream_writev): DX_SENT while the kernel takes it whole; once it
   * does not, the rest waits above the 1 KiB low-water mark and every
   * later send is DX_BUFFERED, since the client never reads. */
  CHECK(b.first_rc == DX_SENT || b.first_rc == DX_BUFFERED);
  CHECK_EQ_INT(b.last_rc, DX_EBACKPRESSURE);
  CHECK(b.buffered_seen > 0);
  CHECK_EQ_INT(b.sent_after_buffered, 0);
  printf("drop policy: %d x 16 KiB accepted before DX_EBACKPRESSURE\n", b.sends);

  /* Still open: more big sends are dropped, the connection stays, and
   * nothing drains while the client does not read. */
  s.drains = 0;
  run_for(loop, 100);
  CHECK_EQ_INT(s.closes, 0);
  CHECK(s.ws == ws);
  CHECK_EQ_INT(dx_ws_send(ws, DX_OP_BINARY, big, sizeof big), DX_EBACKPRESSURE);
  CHECK_EQ_INT(dx_ws_send(ws, DX_OP_BINARY, big, sizeof big), DX_EBACKPRESSURE);
  CHECK(dx_ws_buffered(ws) > 0);
  CHECK(dx_ws_buffered(ws) <= (64 << 10) + sizeof big + 16);
  CHECK_EQ_INT(s.drains, 0);

  /* The client starts reading: on_drain fires, sends go through again. */
  r->paused = false;
  r->discard = true;
  RUN_UNTIL(loop, s.drains >= 1, 5000);
  CHECK(s.drains >= 1);
  CHECK(dx_ws_buffered(ws) <= 1024);
  CHECK_EQ_INT(s.closes, 0);
  RUN_UNTIL(loop, dx_ws_buffered(ws) == 0, 2000);
  /* Exactly the accepted messages went out, each whole (16384 + 4 bytes
   * of header); nothing of the dropped ones. */
  RUN_UNTIL(loop, r->discarded == (size_t)b.sends * (sizeof big + 4), 2000);
  CHECK_EQ_INT(r->discarded, (size_t)b.sends * (sizeof big + 4));
  /* Into the empty queue: the kernel takes it whole (DX_SENT), or the
   * rest is above low water (DX_BUFFERED) and on_drain follows once. */
  int drains = s.drains;
  int rc = dx_ws_send(ws, DX_OP_BINARY, big, sizeof big);
  CHECK(rc == DX_SENT || rc == DX_BUFFERED);
  if (rc == DX_BUFFERED) RUN_UNTIL(loop, s.drains > drains, 2000);
  CHECK_EQ_INT(s.drains, drains + (rc == DX_BUFFERED));
  CHECK_EQ_INT(dx_ws_send(ws, DX_OP_TEXT, "ok", 2), DX_SENT);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* dx_server_each                                                      */

typedef struct each_ctx {
  dx_ws *seen[16];
  int n;
  int close_rc;
  bool close_them;
  bool abort_them;
} each_ctx;

static void each_fn(dx_ws *ws, void *arg) {
  each_ctx *e = arg;
  if (e->n < 16) e->seen[e->n] = ws;
  e->n++;
  if (e->close_them) e->close_rc = dx_ws_close(ws, 1000, "each");
  if (e->abort_them) dx_ws_abort(ws);
}

typedef struct each_app {
  dx_ws *open[8];
  int nopen;
  int closes;
} each_app;

static void each_on_open(dx_ws *ws, void *user) {
  each_app *a = user;
  a->open[a->nopen++] = ws;
}
static void each_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t rl, bool clean,
                          void *user) {
  (void)ws, (void)code, (void)reason, (void)rl, (void)clean;
  ((each_app *)user)->closes++;
}

static bool seen(const each_ctx *e, const dx_ws *ws) {
  for (int i = 0; i < e->n && i < 16; i++)
    if (e->seen[i] == ws) return true;
  return false;
}

TEST(each_visits_only_open_websockets) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  each_app app = {0};
  dx_ws_handlers h = {.on_open = each_on_open, .on_close = each_on_close};
  dx_server_route(srv, "/ws", &h, &app);
  int port = start_listening(srv);

  /* Empty server: nothing visited. */
  each_ctx e = {0};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 0);

  raw *a = raw_ws_open(loop, port, "/ws", NULL, NULL);
  raw *b = raw_ws_open(loop, port, "/ws", NULL, NULL);
  raw *c = raw_ws_open(loop, port, "/ws", NULL, NULL); /* will be closing */
  raw *hs = raw_connect(port, 0);                      /* still in the handshake */
  raw_write_str(loop, hs, "GET /ws HTTP/1.1\r\nHost: x\r\n");
  raw *http = raw_connect(port, 0); /* plain HTTP, answered and lingering */
  raw_write_str(loop, http, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  RUN_UNTIL(loop, app.nopen == 3 && http->eof && dx_server_connections(srv) == 5, 2000);
  CHECK_EQ_INT(app.nopen, 3);
  CHECK_EQ_INT(dx_server_connections(srv), 5);
  CHECK(a && b && c);
  CHECK_EQ_INT(dx_ws_close(app.open[2], 1000, NULL), 0);

  e = (each_ctx){0};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 2);
  CHECK(seen(&e, app.open[0]));
  CHECK(seen(&e, app.open[1]));
  CHECK(!seen(&e, app.open[2]));

  /* fn may close what it is given. */
  e = (each_ctx){.close_them = true};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 2);
  CHECK_EQ_INT(e.close_rc, 0);
  e = (each_ctx){0};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 0);
  ws_frame f;
  CHECK(raw_ws_next(loop, a, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 1000);
  ws_frame_free(&f);
  raw_ws_send_close(loop, a, 1000, NULL);
  raw_ws_send_close(loop, b, 1000, NULL);
  raw_ws_send_close(loop, c, 1000, NULL);
  RUN_UNTIL(loop, app.closes == 3, 2000);
  CHECK_EQ_INT(app.closes, 3);

  /* ... or abort it (freed at the end of the turn, after each returns). */
  raw *d = raw_ws_open(loop, port, "/ws", NULL, NULL);
  raw *g = raw_ws_open(loop, port, "/ws", NULL, NULL);
  RUN_UNTIL(loop, app.nopen == 5, 2000);
  e = (each_ctx){.abort_them = true};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 2);
  CHECK_EQ_INT(app.closes, 5);
  RUN_UNTIL(loop, d && g && (d->eof || d->reset) && (g->eof || g->reset), 2000);
  e = (each_ctx){0};
  dx_server_each(srv, each_fn, &e);
  CHECK_EQ_INT(e.n, 0);
  teardown(loop, srv);
}

int main(void) {
  memset(big, 0x5A, sizeof big);
  RUN(send_results_and_close_from_on_message);
  RUN(abort_from_on_message);
  RUN(send_argument_errors);
  RUN(backpressure_close_policy);
  RUN(backpressure_close_1013_reader_sees_close_frame);
  RUN(backpressure_drop_policy_and_drain);
  RUN(each_visits_only_open_websockets);
  return test_report();
}
