/* dx_connect / dx_client against the library's own dx_server in the same
 * loop: messages both ways (text, binary, large, fragmented), ping/pong,
 * subprotocols, a rejected upgrade, close codes both ways, freeing the
 * client from inside each handler, closes the client starts (and refused
 * close arguments), drain and buffered bytes. Helpers: client_helpers.h. */
#include "client_helpers.h"

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
  RUN(close_rejected_then_retry);
  RUN(client_drain_and_buffered);
  return test_report();
}
