/* dx_server timers and graceful shutdown: idle timeout (close 1001), the
 * heartbeat (a peer that never answers pings is dropped, a dx_connect
 * client that pongs stays), the handshake timeout, and dx_server_shutdown
 * (close 1001 to everyone, done once all closed or at the timeout, listener
 * gone, clean free).
 *
 * Times are short (200-1000 ms) and every assertion on time is a lower bound
 * or a generous upper bound; where a check needs the test itself to act in
 * time (answer before a timeout), the timeout leaves several hundred ms for
 * a busy machine to pause the test, and counts are awaited, not sampled
 * after a fixed sleep. */
#include "io/loop_internal.h"
#include "server_helpers.h"

/* ------------------------------------------------------------------ */
/* Idle timeout                                                        */

TEST(idle_timeout_closes_1001) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.idle_timeout = 300});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);

  /* A chatty connection stays open past the idle timeout... */
  raw *busy = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(busy != NULL);
  /* ... a quiet one does not. Lower bounds on time are taken from before
   * the event that starts the server's timer, so they always hold. */
  uint64_t t0 = now_ms();
  raw *quiet = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(quiet != NULL);
  RUN_UNTIL(loop, s.opens == 2, 2000);
  /* 600 ms of a message every 100 ms. Ticking stops if the busy one is
   * closed anyway (a pause of the test longer than the idle timeout is
   * idleness to the server): the server read every tick sent before it
   * closed (loop turns read before they run timers, and the test only
   * sends between turns), so the last tick bounds its close from below. */
  uint64_t last_tick = 0, quiet_closed = 0, busy_closed = 0;
  int ticks = 0;
  while (ticks < 6 && !busy_closed) {
    last_tick = now_ms();
    raw_ws_send(loop, busy, 0x1, "tick", 4);
    ticks++;
    uint64_t end = now_ms() + 100;
    while (now_ms() < end && !busy_closed) {
      pump(loop);
      if (!quiet_closed && quiet && quiet->len) quiet_closed = now_ms();
      if (busy->len) busy_closed = now_ms();
    }
  }
  printf("idle: busy sent %d ticks, %s\n", ticks, busy_closed ? "closed early" : "still open");
  ws_frame f;
  CHECK(raw_ws_next(loop, quiet, &f, 2000));
  if (!quiet_closed) quiet_closed = now_ms();
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 1001);
  CHECK(quiet_closed - t0 >= 290);
  ws_frame_free(&f);
  raw_ws_send_close(loop, quiet, 1001, NULL);
  RUN_UNTIL(loop, s.closes == 1, 2000);
  CHECK_EQ_INT(s.closes, 1);
  CHECK_EQ_INT(s.close_code, 1001);
  CHECK(s.clean);
  CHECK_EQ_INT(s.messages, ticks);

  /* Once the busy one goes quiet it is closed as well, no earlier than
   * 300 ms after its last message (a message that did not restart the
   * timer would let it close 300 ms after it opened). */
  CHECK(raw_ws_next(loop, busy, &f, 2000));
  if (!busy_closed) busy_closed = now_ms();
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 1001);
  CHECK(busy_closed - last_tick >= 290);
  ws_frame_free(&f);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Heartbeat                                                           */

TEST(unanswered_pings_drop_the_peer) {
  dx_loop *loop = dx_loop_new(NULL);
  /* The pong timeout leaves the library client 600 ms to answer: the test
   * runs it, so a pause of the test is a late answer to the server. */
  dx_server *srv = make_server(loop, (dx_server_opts){.ping_interval = 200, .pong_timeout = 600});
  rec mute = {0}, lib = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/mute", &h, &mute);
  dx_server_route(srv, "/lib", &h, &lib);
  int port = start_listening(srv);

  /* The library client answers pings by itself. */
  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/lib", port);
  rec cl = {0};
  dx_ws_handlers ch = rec_handlers();
  dx_client *client = dx_connect(loop, url, NULL, &ch, &cl, NULL);
  CHECK(client != NULL);
  RUN_UNTIL(loop, cl.opens == 1, 2000);

  uint64_t t0 = now_ms();
  raw *r = raw_ws_open(loop, port, "/mute", NULL, NULL);
  CHECK(r != NULL);
  RUN_UNTIL(loop, mute.opens == 1, 2000);

  /* A ping arrives after ~200 ms of silence; we do not answer. */
  ws_frame f;
  CHECK(raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x9);
  CHECK(now_ms() - t0 >= 190);
  ws_frame_free(&f);
  RUN_UNTIL(loop, mute.closes == 1, 3000);
  uint64_t dropped = now_ms() - t0;
  CHECK_EQ_INT(mute.closes, 1);
  CHECK_EQ_INT(mute.close_code, 1006);
  CHECK(!mute.clean);
  CHECK_EQ_INT(mute.errors, 1);
  CHECK_EQ_INT(mute.err, DX_ETIMEDOUT);
  CHECK_CONTAINS(mute.errmsg, "ping");
  CHECK(dropped >= 790);
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof || r->reset);

  /* The library client answers ping after ping and is still there. */
  RUN_UNTIL(loop, (cl.pings >= 3 && lib.pongs >= 3) || lib.closes, 5000);
  CHECK_EQ_INT(lib.closes, 0);
  CHECK_EQ_INT(cl.closes, 0);
  CHECK(dx_client_ws(client) != NULL);
  CHECK(cl.pings >= 3);
  CHECK(lib.pongs >= 3);
  CHECK_EQ_INT(lib.errors, 0);
  dx_client_free(client);
  teardown(loop, srv);
}

/* With the pong timeout off, a silent peer is pinged once per interval:
 * the timer sleeps until the next ping is due (it used to fire every loop
 * turn once a ping was outstanding, ~70k times a second). */
TEST(pong_timeout_off_pings_at_the_interval_without_spinning) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.ping_interval = 200, .pong_timeout = -1});
  rec mute = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/mute", &h, &mute);
  int port = start_listening(srv);
  uint64_t t0 = now_ms();
  raw *r = raw_ws_open(loop, port, "/mute", NULL, NULL);
  CHECK(r != NULL);
  RUN_UNTIL(loop, mute.opens == 1, 2000);
  uint64_t fired0 = dx__loop_stats(loop)->timers_fired;
  /* Three pings, each due 200 ms after the one before: never sooner than
   * 600 ms after the open, with one timer firing each. */
  int pings = 0;
  ws_frame f;
  uint64_t deadline = now_ms() + 5000;
  while (pings < 3 && now_ms() < deadline) {
    pump(loop);
    while (raw_ws_take(r, &f)) {
      pings += f.opcode == 0x9;
      ws_frame_free(&f);
    }
  }
  uint64_t took = now_ms() - t0;
  uint64_t fired = dx__loop_stats(loop)->timers_fired - fired0;
  printf("silent peer, pong timeout off: %d pings after %llu ms, %llu timer firings\n", pings,
         (unsigned long long)took, (unsigned long long)fired);
  CHECK_EQ_INT(pings, 3);
  CHECK(took >= 590);
  CHECK(fired <= 10);
  CHECK_EQ_INT(mute.closes, 0); /* never dropped: there is no pong timeout */
  teardown(loop, srv);
}

TEST(any_bytes_count_as_alive) {
  /* A peer that keeps sending (here: its own pings) never has a ping
   * outstanding long enough to be dropped, even without answering. */
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.ping_interval = 150, .pong_timeout = 300});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(r != NULL);
  for (int i = 0; i < 10; i++) {
    raw_ws_send(loop, r, 0x9, "p", 1);
    run_for(loop, 80);
  }
  CHECK_EQ_INT(s.closes, 0);
  CHECK(s.pings >= 10);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Handshake timeout                                                   */

TEST(handshake_timeout_drops_silent_tcp) {
  dx_loop *loop = dx_loop_new(NULL);
  /* 600 ms: the test must see all three connected before it runs out. */
  dx_server *srv = make_server(loop, (dx_server_opts){.handshake_timeout = 600});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);

  uint64_t t0 = now_ms();
  raw *silent = raw_connect(port, 0);
  raw *partial = raw_connect(port, 0); /* a request that never ends */
  raw_write_str(loop, partial, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n");
  raw *ok = raw_ws_open(loop, port, "/", NULL, NULL); /* upgraded in time */
  CHECK(ok != NULL);
  RUN_UNTIL(loop, dx_server_connections(srv) == 3, 1000);
  CHECK_EQ_INT(dx_server_connections(srv), 3);

  RUN_UNTIL(loop, (silent->eof || silent->reset) && (partial->eof || partial->reset), 3000);
  CHECK(silent->eof || silent->reset);
  CHECK(partial->eof || partial->reset);
  CHECK(now_ms() - t0 >= 590);
  CHECK_EQ_INT(silent->len, 0);
  RUN_UNTIL(loop, dx_server_connections(srv) == 1, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 1);

  /* The open connection does not care about the handshake timer. */
  run_for(loop, 400);
  CHECK_EQ_INT(s.opens, 1);
  CHECK_EQ_INT(s.closes, 0);
  CHECK_EQ_INT(s.errors, 0); /* and nothing was reported for the dropped ones */
  CHECK(!ok->eof && !ok->reset);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Graceful shutdown                                                   */

typedef struct done_ctx {
  int calls;
  uint64_t at;
  size_t conns_at_done;
  bool free_inside;
} done_ctx;

static void on_done(dx_server *srv, void *arg) {
  done_ctx *d = arg;
  d->calls++;
  d->at = now_ms();
  d->conns_at_done = dx_server_connections(srv);
  if (d->free_inside) dx_server_free(srv);
}

static bool connect_refused(int port) {
  raw *r = raw_connect(port, 0);
  if (r) {
    raw_close(r);
    return false;
  }
  return errno == ECONNREFUSED;
}

TEST(shutdown_closes_everyone_with_1001) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);

  char url[128];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  rec c1 = {0}, c2 = {0};
  dx_ws_handlers ch = rec_handlers();
  dx_client *a = dx_connect(loop, url, NULL, &ch, &c1, NULL);
  dx_client *b = dx_connect(loop, url, NULL, &ch, &c2, NULL);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  raw *hs = raw_connect(port, 0); /* mid-handshake: simply dropped */
  RUN_UNTIL(loop, s.opens == 3 && c1.opens && c2.opens && dx_server_connections(srv) == 4, 2000);
  CHECK_EQ_INT(s.opens, 3);
  CHECK_EQ_INT(dx_server_connections(srv), 4);

  done_ctx d = {0};
  uint64_t t0 = now_ms();
  dx_server_shutdown(srv, 2000, on_done, &d);
  CHECK_EQ_INT(d.calls, 0); /* never from inside the call */

  /* The listener is gone at once. */
  CHECK(connect_refused(port));

  /* The raw client sees 1001 and answers it. */
  ws_frame f;
  CHECK(r && raw_ws_next(loop, r, &f, 2000));
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 1001);
  ws_frame_free(&f);
  raw_ws_send_close(loop, r, 1001, NULL);
  /* The server then closes TCP first; like any real client, close ours
   * when we see that (until then the server lingers for our FIN). */
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof);
  raw_close(r);

  RUN_UNTIL(loop, d.calls == 1, 3000);
  CHECK_EQ_INT(d.calls, 1);
  CHECK(d.at - t0 < 1900); /* driven by the closes, not by the timeout */
  CHECK_EQ_INT(d.conns_at_done, 0);
  CHECK_EQ_INT(s.closes, 3);
  CHECK_EQ_INT(s.close_code, 1001);
  CHECK(s.clean);
  CHECK_EQ_INT(c1.closes, 1);
  CHECK_EQ_INT(c1.close_code, 1001);
  CHECK(c1.clean);
  CHECK_EQ_INT(c2.closes, 1);
  CHECK_EQ_INT(c2.close_code, 1001);
  RUN_UNTIL(loop, hs->eof || hs->reset, 1000);
  CHECK(hs->eof || hs->reset);

  /* The shutdown timer was stopped: no second call past its end. */
  while (now_ms() < t0 + 2200) pump(loop);
  CHECK_EQ_INT(d.calls, 1);
  CHECK(connect_refused(port));
  dx_server_free(srv);
  dx_client_free(a);
  dx_client_free(b);
  teardown(loop, NULL);
}

TEST(shutdown_times_out_on_a_silent_client) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  int port = start_listening(srv);
  raw *polite = raw_ws_open(loop, port, "/", NULL, NULL);
  raw *silent = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, s.opens == 2, 2000);
  CHECK(polite && silent);
  silent->paused = true;

  done_ctx d = {0};
  uint64_t t0 = now_ms();
  dx_server_shutdown(srv, 1000, on_done, &d); /* time for the polite one to answer */
  ws_frame f;
  CHECK(raw_ws_next(loop, polite, &f, 2000));
  CHECK_EQ_INT(ws_close_code(&f), 1001);
  ws_frame_free(&f);
  raw_ws_send_close(loop, polite, 1001, NULL);
  RUN_UNTIL(loop, s.closes == 1 && polite->eof, 2000);
  raw_close(polite);
  CHECK_EQ_INT(s.closes, 1);
  CHECK(s.clean);
  CHECK_EQ_INT(d.calls, 0); /* the silent one is still there */

  RUN_UNTIL(loop, d.calls == 1, 3000);
  CHECK_EQ_INT(d.calls, 1);
  CHECK(d.at - t0 >= 950); /* the timer starts from the loop's cached time */
  CHECK_EQ_INT(d.conns_at_done, 0);
  CHECK_EQ_INT(s.closes, 2);
  CHECK_EQ_INT(s.close_code, 1006);
  CHECK(!s.clean);
  /* The silent client got the close frame, then the connection dropped. */
  silent->paused = false;
  CHECK(raw_ws_next(loop, silent, &f, 1000));
  CHECK_EQ_INT(f.opcode, 0x8);
  CHECK_EQ_INT(ws_close_code(&f), 1001);
  ws_frame_free(&f);
  RUN_UNTIL(loop, silent->eof || silent->reset, 1000);
  CHECK(silent->eof || silent->reset);
  run_for(loop, 100);
  CHECK_EQ_INT(d.calls, 1);
  CHECK_EQ_INT(s.closes, 2);
  dx_server_free(srv);
  teardown(loop, NULL);
}

TEST(shutdown_without_connections_and_free_in_done) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  int port = start_listening(srv);
  done_ctx d = {.free_inside = true};
  uint64_t t0 = now_ms();
  dx_server_shutdown(srv, 5000, on_done, &d);
  RUN_UNTIL(loop, d.calls == 1, 2000);
  CHECK_EQ_INT(d.calls, 1);
  CHECK(d.at - t0 < 1000);
  CHECK(connect_refused(port));
  run_for(loop, 50); /* nothing touches the freed server */
  teardown(loop, NULL);

  /* A server that never listened frees cleanly too. */
  loop = dx_loop_new(NULL);
  srv = make_server(loop, (dx_server_opts){0});
  rec s = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &s);
  dx_server_free(srv);
  teardown(loop, NULL);
}

/* on_close frees the server while the shutdown timeout drops a silent
 * client: `done` must not run on the freed server (it was queued again
 * after dx_server_free cancelled it; a `done` that frees the server, as
 * server.h suggests, then freed it twice). */
static dx_server *free_me;
static int closes_seen;
static void free_server_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t len,
                                 bool clean, void *user) {
  (void)ws, (void)code, (void)reason, (void)len, (void)clean, (void)user;
  closes_seen++;
  if (free_me) dx_server_free(free_me);
  free_me = NULL;
}

TEST(server_freed_in_on_close_during_shutdown_timeout) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_close = free_server_on_close};
  dx_server_route(srv, "/", &h, NULL);
  int port = start_listening(srv);
  raw *a = raw_ws_open(loop, port, "/", NULL, NULL);
  raw *b = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(a && b);
  RUN_UNTIL(loop, dx_server_connections(srv) == 2, 2000);
  a->paused = b->paused = true; /* neither answers the close frame */
  free_me = srv;
  done_ctx d = {.free_inside = true};
  dx_server_shutdown(srv, 100, on_done, &d);
  RUN_UNTIL(loop, closes_seen == 2, 2000);
  run_for(loop, 100);
  CHECK_EQ_INT(closes_seen, 2); /* the first from the timeout, the second from the free */
  CHECK_EQ_INT(d.calls, 0);     /* freed first: done is not called */
  teardown(loop, NULL);
}

int main(void) {
  RUN(idle_timeout_closes_1001);
  RUN(unanswered_pings_drop_the_peer);
  RUN(pong_timeout_off_pings_at_the_interval_without_spinning);
  RUN(any_bytes_count_as_alive);
  RUN(handshake_timeout_drops_silent_tcp);
  RUN(shutdown_closes_everyone_with_1001);
  RUN(shutdown_times_out_on_a_silent_client);
  RUN(shutdown_without_connections_and_free_in_done);
  RUN(server_freed_in_on_close_during_shutdown_timeout);
  return test_report();
}
