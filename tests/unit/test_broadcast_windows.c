/* Broadcast to peers that limited our window (server_max_window_bits):
 * the message is compressed once per window size, not once per connection,
 * and every peer can inflate what it gets with the window it asked for. */
#include <zlib.h>

#include "server_helpers.h"
#include "test.h"
#include "ws/ws_internal.h"

static dx_msg *the_msg;
static int sent;
static void send_it(dx_ws *ws, void *arg) {
  (void)arg;
  if (dx_ws_send_msg(ws, the_msg) >= 0) sent++;
}

static int opened;
static void on_open(dx_ws *ws, void *u) {
  (void)ws, (void)u;
  opened++;
}

/* Inflate a raw permessage-deflate payload with a window of `bits`. */
static size_t inflate_with(const uint8_t *z, size_t n, int bits, uint8_t *out, size_t cap) {
  z_stream s = {0};
  if (inflateInit2(&s, -bits) != Z_OK) return 0;
  uint8_t *in = malloc(n + 4);
  memcpy(in, z, n);
  memcpy(in + n, "\x00\x00\xff\xff", 4);
  s.next_in = in;
  s.avail_in = (uInt)(n + 4);
  s.next_out = out;
  s.avail_out = (uInt)cap;
  int rc = inflate(&s, Z_SYNC_FLUSH);
  size_t got = cap - s.avail_out;
  inflateEnd(&s);
  free(in);
  return rc == Z_OK || rc == Z_STREAM_END ? got : 0;
}

TEST(one_compression_per_window_size) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.deflate = {.enable = true}});
  dx_server_route(srv, "/", &(dx_ws_handlers){.on_open = on_open}, NULL);
  int port = start_listening(srv);
  static const char *offers[] = {
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n",
      "Sec-WebSocket-Extensions: permessage-deflate\r\n",
      "Sec-WebSocket-Extensions: permessage-deflate\r\n",
      NULL, /* no compression */
  };
  static const int bits[] = {10, 10, 12, 15, 15, 0};
  enum { N = 6 };
  raw *r[N];
  for (int i = 0; i < N; i++) {
    r[i] = raw_ws_open(loop, port, "/", offers[i], NULL);
    CHECK(r[i] != NULL);
  }
  RUN_UNTIL(loop, opened == N, 5000);
  static uint8_t text[8000];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (uint8_t)("abcdefgh "[i % 9 + (i / 900) % 2]);
  the_msg = dx_msg_new(DX_OP_TEXT, text, sizeof text);
  dx_server_each(srv, send_it, NULL);
  CHECK_EQ_INT(sent, N);
  CHECK_EQ_INT(dx__msg_deflate_count(the_msg), 3); /* windows 10, 12 and 15 */
  dx_msg_free(the_msg);
  ws_frame f[N];
  for (int i = 0; i < N; i++) CHECK(raw_ws_next(loop, r[i], &f[i], 5000));
  static uint8_t out[sizeof text + 16];
  for (int i = 0; i < N; i++) {
    if (!bits[i]) {
      CHECK(f[i].len == sizeof text && memcmp(f[i].data, text, sizeof text) == 0);
      continue;
    }
    CHECK(f[i].len < sizeof text / 4);
    CHECK_EQ_INT(inflate_with(f[i].data, f[i].len, bits[i], out, sizeof out), sizeof text);
    CHECK_MEM(out, text, sizeof text);
  }
  /* Same window, same bytes. */
  CHECK(f[0].len == f[1].len && memcmp(f[0].data, f[1].data, f[0].len) == 0);
  CHECK(f[3].len == f[4].len && memcmp(f[3].data, f[4].data, f[3].len) == 0);
  for (int i = 0; i < N; i++) ws_frame_free(&f[i]);
  teardown(loop, srv);
}

int main(void) {
  RUN(one_compression_per_window_size);
  return test_report();
}
