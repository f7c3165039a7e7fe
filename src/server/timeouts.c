/* Connection timeouts without a timer per connection. Each slot of the
 * connection table has a deadline beside it (loop ms truncated to 32 bits,
 * 0 = none): 4 bytes per connection instead of a 40-byte dx_timer in the
 * connection and an 8-byte slot in the loop's timer heap. One server timer
 * sweeps the deadlines, a sequential scan of 4-byte words (50,000
 * connections: 200 KB, tens of microseconds), at most once per `grain`
 * milliseconds: 1/16 of the shortest configured timeout, at most 250 ms.
 * So a timeout fires no earlier than asked and at most a grain late; the
 * handshake, heartbeat, idle and close timeouts all tolerate that. */
#include "server/server_internal.h"

/* Connections whose deadline came. */
static void on_sweep(dx_timer *t);

static int shortest(int a, int b) { return b > 0 && (a <= 0 || b < a) ? b : a; }

void dx__server_timeouts_init(dx_server *srv) {
  const dx_ws_config *c = &srv->cfg;
  int m =
      shortest(shortest(shortest(shortest(c->handshake_timeout, c->ping_interval), c->pong_timeout),
                        c->idle_timeout),
               c->close_timeout);
  int g = m > 0 ? m / 16 : 250;
  srv->grain = (uint32_t)(g < 1 ? 1 : g > 250 ? 250 : g);
  dx_timer_init(srv->loop, &srv->sweep, on_sweep);
}

/* Sweep at `at` (loop ms) unless a sweep comes sooner already. */
static void schedule(dx_server *srv, uint64_t at) {
  uint64_t now = dx_loop_now(srv->loop);
  if (at < srv->last_sweep + srv->grain) at = srv->last_sweep + srv->grain;
  if (dx_timer_active(&srv->sweep) && srv->sweep_at <= at) return;
  srv->sweep_at = at;
  dx_timer_start(&srv->sweep, at > now ? at - now : 0, 0);
}

void dx__server_arm(dx_ws *ws, int ms) {
  dx_server *srv = ws->owner;
  uint32_t i = (uint32_t)ws->id;
  if (ms < 0) {
    srv->due[i] = 0;
    return;
  }
  uint64_t at = dx_loop_now(srv->loop) + (uint64_t)ms;
  srv->due[i] = (uint32_t)at ? (uint32_t)at : 1;
  schedule(srv, at);
}

static void on_sweep(dx_timer *t) {
  dx_server *srv = dx_container_of(t, dx_server, sweep);
  uint64_t now = dx_loop_now(srv->loop), next = UINT64_MAX;
  srv->last_sweep = now;
  /* A timeout may close connections (their slots free up and their
   * deadlines go to 0) or arm others; none is added. */
  for (uint32_t i = 0; i < srv->slots_len && !srv->freed; i++) {
    uint32_t d = srv->due[i];
    if (!d) continue;
    int32_t left = (int32_t)(d - (uint32_t)now);
    if (left <= 0) {
      srv->due[i] = 0;
      dx__ws_timeout(dx__server_slot_ws(srv, i));
      if (srv->freed || !(d = srv->due[i])) continue;
      left = (int32_t)(d - (uint32_t)now); /* re-armed */
      if (left < 0) left = 0;
    }
    if (now + (uint64_t)left < next) next = now + (uint64_t)left;
  }
  if (!srv->freed && next != UINT64_MAX) schedule(srv, next);
}
