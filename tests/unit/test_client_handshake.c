/* dx_client's opening handshake against servers scripted by hand (rs in
 * client_helpers.h): a wrong accept key, HTTP 200, silence, a masked
 * frame, an unrequested extension or subprotocol, garbage, EOF in the head,
 * a dead server after the handshake, a 101 in pieces followed by a large
 * message, and a 101 fed one byte per read (parsed once per line). */
#include "client_helpers.h"
#include "proto/head_gather.h"

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

TEST(reset_after_open_is_dx_ereset) {
  /* A peer that resets the connection: on_error says so with DX_ERESET. */
  bad_server_case(RS_OPEN_RESET, NULL, DX_ERESET, "reset", 1006, 1);
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

/* Issue 9, item 1: a response head dribbled one byte per read is parsed
 * once when its first byte comes and then once per line (six lines here),
 * not once per read (~190 reads). */
TEST(response_one_byte_per_read_parsed_once_per_line) {
  dx_loop *loop = dx_loop_new(NULL);
  rs r;
  rs_start(&r, loop, RS_DRIBBLE);
  char url[128];
  url_for(url, sizeof url, r.port, "/");
  cl c;
  unsigned long parses = dx__gather_parses;
  cl_start(&c, loop, url, NULL);
  RUN_UNTIL(loop, c.opens == 1 || c.closes == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.errors, 0);
  CHECK(r.nconns == 1 && r.conns[0]->pending_pos == r.conns[0]->pending_len);
  CHECK(r.conns[0]->pending_len > 150);
  unsigned long n = dx__gather_parses - parses;
  if (n != 7) fprintf(stderr, "parsed %lu times\n", n);
  CHECK_EQ_INT((int)n, 7); /* the first byte, then 6 lines */
  cl_free(&c);
  rs_stop(&r);
  loop_done(loop);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(bad_server_wrong_accept);
  RUN(bad_server_status_200);
  RUN(bad_server_silent_times_out);
  RUN(bad_server_masked_frame);
  RUN(bad_server_unrequested_extension);
  RUN(bad_server_unrequested_subprotocol);
  RUN(bad_server_not_http);
  RUN(bad_server_eof_in_handshake);
  RUN(dead_server_detected_by_ping);
  RUN(reset_after_open_is_dx_ereset);
  RUN(split_response_then_big_message);
  RUN(response_one_byte_per_read_parsed_once_per_line);
  return test_report();
}
