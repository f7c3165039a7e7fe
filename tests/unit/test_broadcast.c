/* Broadcast: one dx_msg framed and compressed once, sent to many
 * connections (plain, shared-compression, own-context compression); every
 * client receives exactly the message. */
#include <time.h>

#include "duplex/client.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "io/loop_internal.h"
#include "test.h"

#define NCLIENTS 6

typedef struct {
  int opened, received, closed;
  size_t last_len;
  int bad;
} counts;

static counts cs;
static uint8_t msg[20000];

static void c_open(dx_ws *ws, void *u) {
  (void)ws;
  (void)u;
  cs.opened++;
}
static void c_message(dx_ws *ws, unsigned op, const void *d, size_t n, void *u) {
  (void)ws;
  (void)u;
  cs.received++;
  cs.last_len = n;
  if (op != DX_OP_TEXT || n != sizeof msg || memcmp(d, msg, n) != 0) cs.bad++;
}
static void c_close(dx_ws *ws, uint16_t code, const char *r, size_t rl, bool clean, void *u) {
  (void)ws, (void)code, (void)r, (void)rl, (void)clean, (void)u;
  cs.closed++;
}

static int server_opened;
static void s_open(dx_ws *ws, void *u) {
  (void)ws;
  (void)u;
  server_opened++;
}

static void run_until(dx_loop *loop, int *counter, int want, int ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (*counter < want) {
    dx_loop_run_once(loop, 10);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms) break;
  }
}

TEST(broadcast_reaches_every_kind_of_connection) {
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)("abcdefgh "[i % 9]);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = dx_server_new(
      loop, &(dx_server_opts){.host = "127.0.0.1", .port = -1, .deflate = {.enable = true}});
  CHECK_EQ_INT(dx_server_route(srv, "/", &(dx_ws_handlers){.on_open = s_open}, NULL), 0);
  CHECK_EQ_INT(dx_server_listen(srv), 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", dx_server_port(srv));
  dx_ws_handlers h = {.on_open = c_open, .on_message = c_message, .on_close = c_close};
  dx_client *c[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    /* 0-1 plain, 2-3 shared compression, 4-5 the client keeps context (the
     * server still compresses without it), one with a smaller window. */
    dx_client_opts o = {0};
    if (i >= 2) o.deflate.enable = true;
    if (i >= 4) o.deflate.mode = DX_DEFLATE_TAKEOVER;
    if (i == 5) o.deflate.window_bits = 10;
    c[i] = dx_connect(loop, url, &o, &h, NULL, NULL);
    CHECK(c[i] != NULL);
  }
  run_until(loop, &cs.opened, NCLIENTS, 5000);
  run_until(loop, &server_opened, NCLIENTS, 5000);
  CHECK_EQ_INT(cs.opened, NCLIENTS);
  uint64_t writes_before = dx__loop_stats(loop)->writev_calls;
  CHECK_EQ_INT(dx_server_broadcast(srv, DX_OP_TEXT, msg, sizeof msg), NCLIENTS);
  CHECK_EQ_INT(dx_server_broadcast(srv, DX_OP_TEXT, msg, sizeof msg), NCLIENTS);
  run_until(loop, &cs.received, 2 * NCLIENTS, 5000);
  CHECK_EQ_INT(cs.received, 2 * NCLIENTS);
  CHECK_EQ_INT(cs.bad, 0);
  CHECK(dx__loop_stats(loop)->writev_calls > writes_before);
  /* Bad opcode. */
  CHECK_EQ_INT(dx_server_broadcast(srv, DX_OP_PING, "x", 1), DX_EINVAL);
  for (int i = 0; i < NCLIENTS; i++) dx_client_close(c[i], 1000, NULL);
  run_until(loop, &cs.closed, NCLIENTS, 5000);
  CHECK_EQ_INT(cs.closed, NCLIENTS);
  for (int i = 0; i < NCLIENTS; i++) dx_client_free(c[i]);
  dx_server_free(srv);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

TEST(msg_reuse_and_errors) {
  CHECK(dx_msg_new(DX_OP_CLOSE, "x", 1) == NULL);
  dx_msg *m = dx_msg_new(DX_OP_BINARY, "", 0);
  CHECK(m != NULL);
  dx_msg_free(m);
  dx_msg_free(NULL);
}

int main(void) {
  RUN(broadcast_reaches_every_kind_of_connection);
  RUN(msg_reuse_and_errors);
  return test_report();
}
