/* The WebSocket connection after the handshake: proto glue, heartbeat,
 * timeouts, backpressure and handler dispatch (both roles). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/net.h"
#include "io/loop_internal.h"
#include "io/tls.h"
#include "proto/proto_embed.h"
#include "ws/ws_internal.h"

/* Every connection carries this struct and an embedded dx_proto: 128 + 80
 * keeps a connection at 208 bytes (a 224-byte glibc chunk), the budget
 * test_conn_budget checks. */
_Static_assert(sizeof(dx_ws) <= 128, "dx_ws grew past 128 bytes");

/* The user's data, after the proto, aligned for anything. */
static size_t data_offset(void) {
  size_t a = alignof(max_align_t);
  return (sizeof(dx_ws) + dx__proto_embedded_size() + a - 1) / a * a;
}

size_t dx__ws_alloc_size(size_t data_size) {
  if (!data_size) return sizeof(dx_ws) + dx__proto_embedded_size();
  return data_offset() + data_size;
}

static int pick(int v, int dflt) { return v == 0 ? dflt : v < 0 ? -1 : v; }

void dx__ws_config_resolve(dx_ws_config *cfg) {
  if (!cfg->proto.max_message) cfg->proto.max_message = DX_DEFAULT_MAX_MESSAGE;
  if (!cfg->proto.max_frame) cfg->proto.max_frame = cfg->proto.max_message;
  cfg->handshake_timeout = pick(cfg->handshake_timeout, 10000);
  cfg->ping_interval = pick(cfg->ping_interval, 30000);
  cfg->pong_timeout = pick(cfg->pong_timeout, 30000);
  cfg->idle_timeout = pick(cfg->idle_timeout, -1);
  cfg->close_timeout = pick(cfg->close_timeout, 5000);
  if (!cfg->max_buffered) cfg->max_buffered = (size_t)4 << 20;
  if (!cfg->low_water) cfg->low_water = (size_t)64 << 10;
}

/* The strings behind a reference count, so that connections with the
 * same path, query and protocol share one block. */
typedef struct strs_block {
  uint32_t refs;
  uint32_t size; /* bytes of s */
  char s[];
} strs_block;

static strs_block *block_of(char *s) { return dx_container_of(s, strs_block, s); }

void dx__strs_unref(char *s) {
  if (s && --block_of(s)->refs == 0) free(block_of(s));
}

int dx__ws_keep_strings(dx_ws *ws, dx_str path, dx_str query, const char *protocol, size_t room,
                        char **cache) {
  size_t pl = protocol ? strlen(protocol) : 0;
  /* With room beyond the protocol, dx_ws_set_protocol may write another
   * choice into it: such strings are this connection's alone. */
  if (room > pl) cache = NULL;
  if (room < pl) room = pl;
  size_t size = path.len + query.len + room + 3;
  if (size > UINT32_MAX) return DX_ENOMEM;
  char *c = cache ? *cache : NULL;
  if (c && block_of(c)->size == size && memcmp(c, path.ptr, path.len) == 0 && !c[path.len] &&
      (!query.len || memcmp(c + path.len + 1, query.ptr, query.len) == 0) &&
      !c[path.len + 1 + query.len] && (!pl || memcmp(c + size - pl - 1, protocol, pl) == 0)) {
    block_of(c)->refs++;
    dx__strs_unref(ws->strs);
    ws->strs = c;
    return 0;
  }
  strs_block *b = malloc(sizeof *b + size);
  if (!b) return DX_ENOMEM;
  b->refs = 1;
  b->size = (uint32_t)size;
  char *s = b->s;
  memcpy(s, path.ptr, path.len);
  s[path.len] = 0;
  char *q = s + path.len + 1;
  if (query.len) memcpy(q, query.ptr, query.len);
  q[query.len] = 0;
  char *p = q + query.len + 1;
  if (pl) memcpy(p, protocol, pl);
  p[pl] = 0;
  dx__strs_unref(ws->strs);
  ws->strs = s;
  if (cache) { /* the next connection will likely ask for the same */
    b->refs++;
    dx__strs_unref(*cache);
    *cache = s;
  }
  return 0;
}

const char *dx__ws_peer(const dx_ws *ws, char *buf, size_t cap) {
  return dx__peer_str(dx_stream_fd(&ws->stream), buf, cap);
}

void dx__http_terminate(const dx_http_header *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ((char *)h[i].name.ptr)[h[i].name.len] = 0;
    ((char *)h[i].value.ptr)[h[i].value.len] = 0;
  }
}

/* ---- timers ---- */

static void arm(dx_ws *ws, int ms) {
  const dx_ws_owner_ops *ops = dx__ws_ops(ws);
  if (ops->arm) ops->arm(ws, ms);
}

void dx__ws_disarm(dx_ws *ws) { arm(ws, -1); }

/* Heartbeat and idle: one timeout per connection, re-armed only when it
 * fires (receiving data just stamps last_rx: no timer work per message). */
static uint32_t now32(const dx_ws *ws) {
  return (uint32_t)dx_loop_now(dx_stream_loop(&ws->stream));
}

/* Milliseconds left of `timeout` after `since`, never negative. */
static uint32_t left(const dx_ws *ws, int timeout, uint32_t since) {
  uint32_t elapsed = now32(ws) - since;
  return elapsed >= (uint32_t)timeout ? 0 : (uint32_t)timeout - elapsed;
}

/* When the next ping is due: ping_interval after the last bytes received,
 * or, with a ping unanswered and no pong timeout, after that ping (keeps
 * pinging a silent peer at the interval instead of "due now" forever). */
static uint32_t ping_due(const dx_ws *ws) {
  uint32_t since = ws->ping_outstanding ? ws->ping_sent : ws->last_rx;
  return left(ws, dx__ws_cfg(ws)->ping_interval, since);
}

static void arm_heartbeat(dx_ws *ws) {
  const dx_ws_config *c = dx__ws_cfg(ws);
  uint32_t next = UINT32_MAX;
  if (ws->ping_outstanding && c->pong_timeout > 0) {
    uint32_t t = left(ws, c->pong_timeout, ws->ping_sent);
    if (t < next) next = t;
  } else if (c->ping_interval > 0) {
    uint32_t t = ping_due(ws);
    if (t < next) next = t;
  }
  if (c->idle_timeout > 0) {
    uint32_t t = left(ws, c->idle_timeout, ws->last_msg);
    if (t < next) next = t;
  }
  arm(ws, next == UINT32_MAX ? -1 : (int)next);
}

static void heartbeat(dx_ws *ws) {
  const dx_ws_config *c = dx__ws_cfg(ws);
  char peer[64];
  if (c->idle_timeout > 0 && left(ws, c->idle_timeout, ws->last_msg) == 0) {
    dx_log_info("%s: idle for %d ms; closing with 1001", dx__ws_peer(ws, peer, sizeof peer),
                c->idle_timeout);
    dx_ws_close(ws, DX_CLOSE_GOING_AWAY, "idle timeout");
    return;
  }
  if (ws->ping_outstanding && c->pong_timeout > 0 &&
      left(ws, c->pong_timeout, ws->ping_sent) == 0) {
    dx_log_info("%s: no answer to ping within %d ms; dropping dead connection",
                dx__ws_peer(ws, peer, sizeof peer), c->pong_timeout);
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, DX_ETIMEDOUT,
                        "the peer did not answer a ping in time");
    dx_stream_abort(&ws->stream);
    return;
  }
  if (c->ping_interval > 0 && (!ws->ping_outstanding || c->pong_timeout <= 0) &&
      ping_due(ws) == 0) {
    ws->ping_outstanding = true;
    ws->ping_sent = now32(ws);
    dx_proto_send(dx__ws_proto(ws), DX_OP_PING, NULL, 0);
  }
  arm_heartbeat(ws);
}

void dx__ws_timeout(dx_ws *ws) {
  char peer[64];
  switch (ws->phase) {
  case DX_WS_HANDSHAKE:
    if (ws->http_served && !dx__ws_pre(ws)->hs.len) /* a kept-alive HTTP connection, idle: normal */
      dx_log_debug("%s: idle HTTP keep-alive connection; closing",
                   dx__ws_peer(ws, peer, sizeof peer));
    else
      dx_log_info("%s: %s not completed within %d ms; dropping", dx__ws_peer(ws, peer, sizeof peer),
                  ws->http_served ? "request" : "handshake", dx__ws_cfg(ws)->handshake_timeout);
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, DX_ETIMEDOUT,
                        "the opening handshake timed out");
    dx_stream_abort(&ws->stream);
    break;
  case DX_WS_OPEN:
    heartbeat(ws);
    break;
  case DX_WS_HTTP: {
    /* A plain HTTP response (a static file) may take long to a slow
     * reader: only a stall of a whole close timeout drops it. Progress is
     * bytes sent (queued minus unsent), which only grows; the unsent count
     * alone can come back to the same value while bytes move. */
    size_t unsent = dx_stream_buffered(&ws->stream);
    uint32_t sent = ws->http_queued - (uint32_t)unsent;
    if (!ws->stream_done && unsent && sent != ws->http_sent) {
      ws->http_sent = sent;
      arm(ws, dx__ws_cfg(ws)->close_timeout);
      break;
    }
    dx_log_debug("%s: HTTP response stalled; dropping", dx__ws_peer(ws, peer, sizeof peer));
    dx_stream_abort(&ws->stream);
    break;
  }
  default: /* closing: the peer did not finish in time */
    dx_log_debug("%s: close timeout; dropping", dx__ws_peer(ws, peer, sizeof peer));
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, DX_ETIMEDOUT,
                        "the closing handshake timed out");
    dx_stream_abort(&ws->stream);
    break;
  }
}

/* ---- close notification ---- */

void dx__ws_notify_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len,
                         bool clean, int err, const char *errmsg) {
  if (ws->closed_notified) return;
  ws->closed_notified = true;
  ws->close_code = code;
  if (ws->phase < DX_WS_CLOSED) ws->phase = DX_WS_CLOSED;
  const dx_ws_route *r = ws->route;
  if (!r) return; /* never opened: no handlers to tell */
  if (err && r->h.on_error) r->h.on_error(ws, err, errmsg ? errmsg : dx_strerror(err), r->user);
  /* on_error may have freed the client (or server), which swaps or clears
   * the handlers: read them again. */
  if (!(r = ws->route)) return;
  if (r->h.on_close) r->h.on_close(ws, code, reason ? reason : "", reason_len, clean, r->user);
}

void dx__ws_begin_http(dx_ws *ws) {
  ws->phase = DX_WS_HTTP;
  dx__ws_drop_handshake(ws);
  /* Nothing was flushed yet (writes only queue), so all of it is unsent. */
  ws->http_queued = (uint32_t)dx_stream_buffered(&ws->stream);
  ws->http_sent = 0;
}

void dx__ws_arm_http(dx_ws *ws) { arm(ws, dx__ws_cfg(ws)->close_timeout); }

void dx__ws_arm_handshake(dx_ws *ws) { arm(ws, dx__ws_cfg(ws)->handshake_timeout); }

void dx__ws_finish(dx_ws *ws) {
  dx_stream_close(&ws->stream);
  if (!ws->stream_done) arm(ws, dx__ws_cfg(ws)->close_timeout);
}

void dx__ws_drop_handshake(dx_ws *ws) {
  if (!ws->proto_ready) dx__gather_free(&dx__ws_pre(ws)->hs);
}

/* ---- orphans: connections whose owner is going away ---- */

static void orphan_released(dx_ws *ws) {
  dx__strs_unref(ws->strs);
  ws->strs = NULL;
  dx_loop_free_later(dx_stream_loop(&ws->stream), ws, free);
}

/* An orphan's owner: the real owner's memory goes at the end of the turn,
 * so an orphan reads the default config instead (no timeouts: arm is
 * NULL; its proto's limits become the defaults, proto_embed.h). */
typedef struct orphan_owner {
  dx_ws_owner base;
  dx_ws_config cfg;
} orphan_owner;

static const dx_ws_owner_ops orphan_ops = {
    NULL, orphan_released, false, NULL, offsetof(orphan_owner, cfg), NULL};

static const orphan_owner orphans = {
    {&orphan_ops},
    {.proto = {.max_message = DX_DEFAULT_MAX_MESSAGE, .max_frame = DX_DEFAULT_MAX_MESSAGE},
     .handshake_timeout = 10000,
     .ping_interval = 30000,
     .pong_timeout = 30000,
     .idle_timeout = -1,
     .close_timeout = 5000,
     .max_buffered = (size_t)4 << 20,
     .low_water = (size_t)64 << 10}};
static const dx_ws_route no_handlers;

void dx__ws_orphan(dx_ws *ws, dx_loop *loop) {
  arm(ws, -1);                /* the owner's deadline goes with the owner */
  ws->closed_notified = true; /* no handler runs from here on */
  ws->route = &no_handlers;
  ws->owner = (void *)(uintptr_t)&orphans;
  if (!ws->stream.tp) { /* a client attempt that never got a socket */
    dx__strs_unref(ws->strs);
    ws->strs = NULL;
    dx_loop_free_later(loop, ws, free);
    return;
  }
  /* Inside the stream's on_close (stream_done), on_released comes next and
   * frees through orphan_ops; otherwise end the stream now. */
  if (!ws->stream_done) dx_stream_abort(&ws->stream);
}

/* ---- stream callbacks ---- */

static void after_feed(dx_ws *ws, int rc) {
  dx_proto *p = dx__ws_proto(ws);
  if (rc < 0) {
    char peer[64];
    uint16_t code = dx_close_code_for_error(rc);
    dx_log_info("%s: %s; closing with %d", dx__ws_peer(ws, peer, sizeof peer), dx_strerror(rc),
                code);
    const char *why = dx_strerror(rc);
    dx__ws_notify_close(ws, code, why, strlen(why), false, rc, why);
    ws->finishing = true;
    dx__ws_finish(ws);
    return;
  }
  if (dx_proto_get_state(p) == DX_PROTO_CLOSED && !ws->finishing) {
    /* Closing handshake complete. The server closes TCP first (RFC 6455
     * 7.1.1); a client waits for that, bounded by the close timeout. */
    ws->finishing = true;
    if (dx_proto_role(p) == DX_ROLE_SERVER)
      dx__ws_finish(ws);
    else
      arm(ws, dx__ws_cfg(ws)->close_timeout);
  }
}

static void on_read(void *user, uint8_t *data, size_t len) {
  dx_ws *ws = user;
  ws->last_rx = now32(ws);
  ws->ping_outstanding = false; /* any bytes prove the peer is alive */
  switch (ws->phase) {
  case DX_WS_HANDSHAKE:
    dx__ws_ops(ws)->on_handshake_read(ws, data, len);
    return;
  case DX_WS_OPEN:
  case DX_WS_CLOSING:
  case DX_WS_CLOSED:
    after_feed(ws, dx_proto_feed(dx__ws_proto(ws), data, len));
    return;
  default: /* plain HTTP being answered: ignore input */
    return;
  }
}

static void on_stream_close(void *user, int err, const char *why) {
  dx_ws *ws = user;
  ws->stream_done = true;
  arm(ws, -1);
  if (!ws->closed_notified) {
    dx_proto *p = dx__ws_proto(ws);
    bool clean = ws->phase >= DX_WS_OPEN && dx_proto_close_received(p) && dx_proto_close_sent(p);
    const char *msg = err == DX_ERESET ? "the connection was reset by the peer"
                      : err            ? "the connection failed (I/O error)"
                                       : NULL;
    /* Ending before the opening handshake completed is a failure, and the
     * user hears of failures through on_error (client.h). Only a client
     * has handlers in this phase: a server sets the route once the request
     * is complete and leaves the phase in the same call. */
    if (ws->phase == DX_WS_HANDSHAKE) {
      msg = err == DX_ERESET ? "the connection was reset during the opening handshake"
            : err            ? "the connection failed during the opening handshake"
                             : "the server closed the connection during the opening handshake";
      if (!err) err = DX_ECLOSED;
    }
    if (why) { /* the transport's account, e.g. "TLS certificate verification failed: ..." */
      msg = why;
      if (err != DX_ERESET) err = DX_ETLS;
    }
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, clean, err, msg);
  }
  if (ws->proto_ready) {
    dx_proto *p = dx__ws_proto(ws);
    dx_pmd_free(dx_proto_get_deflate(p));
    dx_proto_free(p);
  } else {
    if (!ws->http_body_held) { /* else the owner frees http_body in on_released */
      dx_pmd_free(dx__ws_pre(ws)->pmd);
      dx__ws_pre(ws)->pmd = NULL;
    }
    dx__ws_drop_handshake(ws);
  }
  dx__ws_ops(ws)->on_released(ws);
}

static void on_drain(void *user) {
  dx_ws *ws = user;
  if (ws->phase == DX_WS_HTTP && ws->http_body_held && dx__ws_pre(ws)->http_body &&
      dx__ws_ops(ws)->on_http_drain) {
    size_t before = dx_stream_buffered(&ws->stream);
    dx__ws_ops(ws)->on_http_drain(ws);
    size_t after = dx_stream_buffered(&ws->stream); /* less only if it aborted */
    if (after > before) ws->http_queued += (uint32_t)(after - before);
    return;
  }
  if (ws->phase == DX_WS_OPEN && ws->route && ws->route->h.on_drain)
    ws->route->h.on_drain(ws, ws->route->user);
}

/* A large message being reassembled is read straight into its buffer. */
static uint8_t *read_into(void *user, size_t *cap) {
  dx_ws *ws = user;
  if (ws->phase < DX_WS_OPEN || ws->phase > DX_WS_CLOSED || !ws->proto_ready) return NULL;
  return dx_proto_read_into(dx__ws_proto(ws), cap);
}

static const dx_stream_cb stream_cb = {on_read, on_stream_close, on_drain, read_into};

int dx__ws_init(dx_ws *ws, dx_loop *loop, int fd, dx_ws_owner *owner, SSL_CTX *tls,
                const char *tls_host) {
  ws->owner = owner;
  const dx_ws_owner_ops *ops = owner->ws_ops;
  const dx_ws_config *cfg = dx__ws_cfg(ws);
  ws->phase = DX_WS_HANDSHAKE;
  int rc = tls ? dx_stream_init_tls(&ws->stream, loop, fd, tls, ops->tls_server, tls_host,
                                    &stream_cb, ws)
               : dx_stream_init_tcp(&ws->stream, loop, fd, &stream_cb, ws);
  if (rc) return rc;
  dx_stream_set_limits(&ws->stream, cfg->low_water);
  ws->last_rx = ws->last_msg = (uint32_t)dx_loop_now(loop);
  arm(ws, cfg->handshake_timeout);
  return 0;
}

/* ---- proto callbacks ---- */

static void on_event(void *user, const dx_event *ev) {
  dx_ws *ws = user;
  const dx_ws_route *r = ws->route;
  if (ws->closed_notified && ev->type != DX_EV_CLOSE) return; /* on_close is last */
  switch (ev->type) {
  case DX_EV_MESSAGE:
    ws->last_msg = ws->last_rx;
    if (r->h.on_message && ws->phase <= DX_WS_CLOSING)
      r->h.on_message(ws, ev->opcode, ev->data, ev->len, r->user);
    break;
  case DX_EV_PING:
    if (r->h.on_ping) r->h.on_ping(ws, ev->data, ev->len, r->user);
    break;
  case DX_EV_PONG:
    if (r->h.on_pong) r->h.on_pong(ws, ev->data, ev->len, r->user);
    break;
  case DX_EV_CLOSE:
    dx__ws_notify_close(ws, ev->close_code, (const char *)ev->data, ev->len, true, 0, NULL);
    break;
  default:
    break;
  }
}

static int on_output(void *user, const dx_output *o) {
  dx_ws *ws = user;
  size_t n = o->header_len + o->payload_len;
  /* Automatic pongs to a peer that does not read would pile up without
   * bound (a ping flood): past the send cap, skip them (RFC 6455 5.5.3
   * lets an endpoint answer only the latest ping). */
  if ((o->header[0] & 0x0f) == DX_OP_PONG && dx__ws_cfg(ws)->max_buffered &&
      dx_stream_buffered(&ws->stream) > dx__ws_cfg(ws)->max_buffered)
    return 0;
  if (!o->mask && n >= DX_STREAM_DIRECT_MIN) {
    /* Large and unmasked: the socket may take the payload from where it
     * lies (the read buffer, a reassembled message, the user's memory). */
    struct iovec iov[2] = {{(void *)o->header, o->header_len},
                           {(void *)o->payload, o->payload_len}};
    return dx_stream_writev(&ws->stream, iov, 2);
  }
  uint8_t *dst = dx_stream_reserve(&ws->stream, n);
  if (!dst) return dx_stream_closing(&ws->stream) ? DX_ECLOSED : DX_ENOMEM;
  memcpy(dst, o->header, o->header_len);
  if (o->mask)
    dx_mask_copy(dst + o->header_len, o->payload, o->payload_len, o->mask, 0);
  else if (o->payload_len)
    memcpy(dst + o->header_len, o->payload, o->payload_len);
  dx_stream_commit(&ws->stream, n);
  return 0;
}

static void mask_key(void *user, uint8_t key[4]);

/* The callbacks of every connection's proto (embedded: proto_embed.h),
 * with the connection right before the proto as user. */
const dx_proto_callbacks dx__embedded_proto_cb = {on_event, on_output, mask_key};
const size_t dx__embedded_proto_back = offsetof(dx_ws, tail);

/* The connection's server or client options (resolved; an orphan's are
 * the defaults). */
const dx_proto_opts *dx__embedded_proto_opts(const void *user) { return &dx__ws_cfg(user)->proto; }

/* Client masking keys: drawn from the CSPRNG in batches of 64 so that
 * masking stays cheap (one RAND_bytes per 64 frames, per thread). */
#include <openssl/rand.h>
static _Thread_local uint8_t key_pool[256];
static _Thread_local unsigned key_pos = sizeof key_pool;

static void mask_key(void *user, uint8_t key[4]) {
  (void)user;
  if (key_pos >= sizeof key_pool) {
    if (RAND_bytes(key_pool, sizeof key_pool) != 1) abort(); /* no entropy: cannot mask safely */
    key_pos = 0;
  }
  memcpy(key, key_pool + key_pos, 4);
  key_pos += 4;
}

void dx__ws_open(dx_ws *ws, dx_role role, const dx_ws_route *route, uint8_t *rest,
                 size_t rest_len) {
  ws->route = route;
  /* The proto takes the place of dx_ws_pre: keep what it held. `rest` may
   * point into the gathered request, freed once it was fed. */
  dx_ws_pre pre = *dx__ws_pre(ws);
  dx__proto_init_embedded(dx__ws_proto(ws), role);
  ws->proto_ready = true;
  if (pre.pmd) dx_proto_set_deflate(dx__ws_proto(ws), pre.pmd);
  ws->phase = DX_WS_OPEN;
  ws->last_rx = ws->last_msg = now32(ws);
  arm_heartbeat(ws);
  if (route->h.on_open) route->h.on_open(ws, route->user);
  dx__ws_set_request(NULL, NULL, 0); /* headers are readable until on_open returns */
  if (rest_len) after_feed(ws, dx_proto_feed(dx__ws_proto(ws), rest, rest_len));
  dx__gather_free(&pre.hs);
}

/* ---- public API ---- */

/* The thread is checked by each public entry point, so that a debug
 * build's wrong-thread abort names the function the application called
 * (it named "dx__ws_admit" for dx_ws_send, an internal name). */
static int admit(dx_ws *ws, unsigned opcode, size_t len) {
  if (ws->phase != DX_WS_OPEN) return ws->phase == DX_WS_HANDSHAKE ? DX_ESTATE : DX_ECLOSED;
  const dx_ws_config *c = dx__ws_cfg(ws);
  size_t buffered = dx_stream_buffered(&ws->stream);
  /* The cap bounds the backlog: a message into an empty queue always goes
   * (its size is bounded by the message limits), one on top of unsent
   * bytes must fit. Control frames are tiny and always go. */
  if (c->max_buffered && buffered && buffered + len > c->max_buffered &&
      !dx_opcode_is_control(opcode)) {
    /* Bytes queued this turn were not offered to the kernel yet: a burst
     * (a big read of pipelined publications, fanned out) is not a slow
     * peer. Offer them first; a peer that stopped reading has a full
     * socket and is waiting for EPOLLOUT, so this costs it nothing. */
    dx_stream_flush(&ws->stream);
    buffered = dx_stream_buffered(&ws->stream);
  }
  if (c->max_buffered && buffered && buffered + len > c->max_buffered &&
      !dx_opcode_is_control(opcode)) {
    char peer[64];
    /* Dropping a continuation would leave a hole in a message the peer
     * is receiving: that case closes like the default policy. */
    if (c->backpressure == DX_BP_DROP && opcode != DX_OP_CONT) {
      dx_log_debug("%s: send buffer full (%zu bytes); message dropped",
                   dx__ws_peer(ws, peer, sizeof peer), buffered);
      return DX_EBACKPRESSURE;
    }
    uint16_t code = c->backpressure == DX_BP_CLOSE_1013 ? DX_CLOSE_TRY_AGAIN : DX_CLOSE_POLICY;
    dx_log_warn("%s: slow client: %zu bytes unsent + a %zu-byte message would exceed the "
                "%zu-byte cap; closing with %u",
                dx__ws_peer(ws, peer, sizeof peer), buffered, len, c->max_buffered, code);
    dx_ws_close(ws, code, "send buffer limit exceeded");
    return DX_EBACKPRESSURE;
  }
  return 0;
}

int dx__ws_admit(dx_ws *ws, unsigned opcode, size_t len) { return admit(ws, opcode, len); }

int dx__ws_sent(dx_ws *ws, unsigned opcode) {
  if (!dx_opcode_is_control(opcode)) ws->last_msg = now32(ws);
  return dx_stream_buffered(&ws->stream) > dx__ws_cfg(ws)->low_water ? DX_BUFFERED : DX_SENT;
}

static int send_fragment(dx_ws *ws, unsigned opcode, const void *data, size_t len, bool more) {
  int rc = admit(ws, opcode, len);
  if (rc) return rc;
  rc = more || opcode == DX_OP_CONT
           ? dx_proto_send_frame(dx__ws_proto(ws), opcode, data, len, more ? DX_SEND_MORE : 0)
           : dx_proto_send(dx__ws_proto(ws), opcode, data, len);
  return rc ? rc : dx__ws_sent(ws, opcode);
}

int dx_ws_send_fragment(dx_ws *ws, unsigned opcode, const void *data, size_t len, bool more) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  return send_fragment(ws, opcode, data, len, more);
}

int dx_ws_send(dx_ws *ws, unsigned opcode, const void *data, size_t len) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  return send_fragment(ws, opcode, data, len, false);
}

int dx_ws_send_text(dx_ws *ws, const char *text) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  return send_fragment(ws, DX_OP_TEXT, text, strlen(text), false);
}

int dx_ws_close(dx_ws *ws, uint16_t code, const char *reason) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  if (ws->phase != DX_WS_OPEN) return ws->phase == DX_WS_HANDSHAKE ? DX_ESTATE : DX_ECLOSED;
  int rc = dx_proto_close(dx__ws_proto(ws), code, reason, reason ? strlen(reason) : 0);
  if (rc) return rc;
  ws->phase = DX_WS_CLOSING;
  arm(ws, dx__ws_cfg(ws)->close_timeout);
  return 0;
}

void dx_ws_abort(dx_ws *ws) {
  DX__CHECK_THREAD_VOID(dx_stream_loop(&ws->stream));
  dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, 0, NULL);
  dx_stream_abort(&ws->stream);
}

size_t dx_ws_buffered(const dx_ws *ws) { return dx_stream_buffered(&ws->stream); }

void *dx_ws_data(dx_ws *ws) {
  return ws->route && ws->route->h.data_size ? (unsigned char *)ws + data_offset() : NULL;
}

uint64_t dx_ws_id(const dx_ws *ws) { return ws->id; }

const char *dx_ws_path(const dx_ws *ws) { return ws->strs ? ws->strs : "/"; }

const char *dx_ws_query(const dx_ws *ws) { return ws->strs ? ws->strs + strlen(ws->strs) + 1 : ""; }

const char *dx_ws_header(const dx_ws *ws, const char *name) {
  size_t n;
  const dx_http_header *hs = dx__ws_request(ws, &n);
  const dx_http_header *h = hs ? dx_http_find(hs, n, name) : NULL;
  return h ? h->value.ptr : NULL; /* values were NUL-terminated in place */
}

const char *dx_ws_origin(const dx_ws *ws) { return dx_ws_header(ws, "Origin"); }

const char *dx_ws_protocol(const dx_ws *ws) {
  if (!ws->strs) return NULL;
  const char *query = ws->strs + strlen(ws->strs) + 1;
  const char *proto = query + strlen(query) + 1;
  return *proto ? proto : NULL;
}

static _Thread_local struct {
  const dx_ws *ws;
  const dx_http_header *h;
  size_t n;
} current_request;

void dx__ws_set_request(const dx_ws *ws, const dx_http_header *h, size_t n) {
  current_request.ws = ws;
  current_request.h = ws ? h : NULL;
  current_request.n = ws ? n : 0;
}

const dx_http_header *dx__ws_request(const dx_ws *ws, size_t *n) {
  if (!ws || current_request.ws != ws) {
    *n = 0;
    return NULL;
  }
  *n = current_request.n;
  return current_request.h;
}

int dx_ws_peer(const dx_ws *ws, struct sockaddr_storage *addr, socklen_t *len) {
  *len = sizeof *addr;
  return getpeername(dx_stream_fd(&ws->stream), (struct sockaddr *)addr, len) == 0 ? 0 : DX_ESYS;
}

const char *dx_ws_peer_str(const dx_ws *ws, char *buf, size_t cap) {
  return dx__ws_peer(ws, buf, cap);
}

dx_loop *dx_ws_loop(const dx_ws *ws) { return dx_stream_loop(&ws->stream); }
