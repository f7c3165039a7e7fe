/* dx_client reconnect: the backoff policy and its timing, the attempt
 * count reset after a stable connection, attempt limits, final close codes
 * (1008 by default, or the application's), no reconnect after a close the
 * client started, a heartbeat timeout that reconnects. Helpers:
 * client_helpers.h. */
#include "client_helpers.h"

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
  cl_start(&c, loop, url,
           &(dx_client_opts){.reconnect = true,
                             .reconnect_initial = 10,
                             .reconnect_max = 40,
                             .reconnect_reset = 1000});
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
  /* One that stayed open for reconnect_reset ms restarts the count. (1 s:
   * the quick drops above must stay quick on a busy machine too.) */
  run_for(loop, 1200);
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

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(reconnect_backoff_policy_and_timing);
  RUN(reconnect_count_resets_after_stable_connection);
  RUN(reconnect_attempts_limit);
  RUN(policy_close_is_final);
  RUN(final_codes_override);
  RUN(ws_close_by_client_does_not_reconnect);
  RUN(heartbeat_timeout_reconnects);
  return test_report();
}
