/* A plain HTTP response sent in pieces (DX_WS_HTTP), seen from inside:
 * the connection runs over a fake transport whose writev takes exactly the
 * bytes the test allows, so the unsent count is known at every moment.
 *
 * The stall check must look at bytes sent, not at the unsent count: here
 * the unsent count is 4000 at every check while 1000 bytes move between
 * checks (the "kernel" takes 1000, the drain hook queues 1000 more).
 *
 * While bytes move, the test runs each check itself, right after the
 * bytes moved, so a busy machine cannot make a check see no progress (a
 * 100 ms pause of the test is a real stall to the loop's timer). The
 * stall that follows runs on the loop's own timer. */
#include <sys/socket.h>
#include <unistd.h>

#include "io/loop_internal.h"
#include "server_helpers.h"
#include "ws/ws_internal.h"

static size_t budget;  /* bytes the fake transport will take */
static size_t taken;   /* bytes it took */
static int drains;     /* on_http_drain calls */
static bool released;  /* the connection ended */
static int body_token; /* stands for the owner's body */

static ssize_t fake_read(dx_stream *s, uint8_t *buf, size_t cap) {
  (void)s, (void)buf, (void)cap;
  return DX_EAGAIN;
}

static ssize_t fake_writev(dx_stream *s, const struct iovec *iov, int cnt) {
  (void)s;
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  size_t n = total < budget ? total : budget;
  if (n == 0) return DX_EAGAIN;
  budget -= n;
  taken += n;
  return (ssize_t)n;
}

static int fake_shutdown(dx_stream *s) {
  (void)s;
  return 0;
}

static void fake_close(dx_stream *s) { close(s->io.fd); }

static const dx_transport fake = {"fake",     fake_read, fake_writev, fake_shutdown,
                                  fake_close, NULL,      NULL};
static const dx_transport *const fake_ref = &fake; /* no state: a static pointer */

static void on_handshake_read(dx_ws *ws, uint8_t *data, size_t len) {
  (void)ws, (void)data, (void)len;
}

static void on_released(dx_ws *ws) {
  released = true;
  dx_loop_free_later(dx_ws_loop(ws), ws, free);
}

/* The owner's next piece of the response: 1000 bytes per drain. */
static void on_http_drain(dx_ws *ws) {
  static const uint8_t piece[1000];
  drains++;
  dx_stream_write(&ws->stream, piece, sizeof piece);
}

/* The owner keeps the connection's timeout: one timer for its one
 * connection, as a client does. */
static dx_timer timeout;
static dx_ws *timed;
static int armed_ms = -1;   /* what the connection last asked for */
static bool by_hand;        /* the test runs the checks, not the timer */
static uint64_t started_at; /* loop time the timer was started */
static uint64_t fired_at;   /* loop time it fired */

static void on_timeout(dx_timer *t) {
  fired_at = dx_loop_now(t->loop);
  dx__ws_timeout(timed);
}

static void arm(dx_ws *ws, int ms) {
  timed = ws;
  armed_ms = ms;
  if (ms < 0 || by_hand) {
    dx_timer_stop(&timeout);
  } else {
    started_at = dx_loop_now(dx_ws_loop(ws));
    dx_timer_start(&timeout, (uint64_t)ms, 0);
  }
}

/* The owner: the ops, then the connections' config. */
typedef struct test_owner {
  dx_ws_owner base;
  dx_ws_config cfg;
} test_owner;

static const dx_ws_owner_ops ops = {on_handshake_read,         on_released, false, on_http_drain,
                                    offsetof(test_owner, cfg), arm};
static test_owner owner = {{&ops}, {.close_timeout = 100}};

TEST(stall_check_counts_bytes_sent_not_bytes_unsent) {
  dx_loop *loop = dx_loop_new(NULL);
  dx__ws_config_resolve(&owner.cfg);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  dx_timer_init(loop, &timeout, on_timeout);
  dx_ws *ws = calloc(1, dx__ws_alloc_size(0));
  CHECK(dx__ws_init(ws, loop, sv[0], &owner.base, NULL, NULL) == 0);
  ws->stream.tp = &fake_ref; /* the test decides what "the kernel" takes */
  dx_stream_set_limits(&ws->stream, 3000);

  /* The response: 4000 bytes queued, more on each drain. */
  static const uint8_t head[4000];
  CHECK(dx_stream_write(&ws->stream, head, sizeof head) == 0);
  dx__ws_begin_http(ws);
  dx__ws_pre(ws)->http_body = &body_token;
  ws->http_body_held = true;
  by_hand = true;
  dx__ws_arm_http(ws);
  CHECK_EQ_INT(armed_ms, 100); /* one close timeout */

  /* Ten close timeouts of steady progress: 1000 bytes move, then the check
   * the timer would run. Each sees progress and asks for another close
   * timeout; a check on the unsent count (4000 every time) drops it. */
  for (int i = 0; i < 10 && !released; i++) {
    size_t before = taken;
    budget += 1000;
    RUN_UNTIL(loop, taken > before || released, 2000);
    CHECK_EQ_INT(taken - before, 1000);
    CHECK_EQ_INT(dx_stream_buffered(&ws->stream), 4000); /* the same at every check */
    armed_ms = -1;
    dx__ws_timeout(ws);
    CHECK_EQ_INT(armed_ms, 100);
    dx_loop_run_once(loop, 0);
  }
  printf("moving: %zu bytes sent in %d drains, %s\n", taken, drains,
         released ? "DROPPED" : "still sending");
  CHECK(!released);
  CHECK_EQ_INT(drains, 10);

  /* Then nothing moves, on the loop's timer: dropped when the close
   * timeout asked for by the last check ends, never before it (loop time),
   * and within a bounded wait. */
  by_hand = false;
  arm(ws, armed_ms);
  uint64_t t0 = now_ms();
  RUN_UNTIL(loop, released, 2000);
  printf("stalled: dropped after %llu ms (loop time %llu ms)\n",
         (unsigned long long)(now_ms() - t0), (unsigned long long)(fired_at - started_at));
  CHECK(fired_at >= started_at + 100);
  CHECK(released);
  for (int i = 0; i < 3; i++) dx_loop_run_once(loop, 0);
  close(sv[1]);
  dx_loop_free(loop);
}

int main(void) {
  RUN(stall_check_counts_bytes_sent_not_bytes_unsent);
  return test_report();
}
