/* The hub over WebSocket: the duplex.v1 endpoint. A thin layer: each
 * connection carries a hub_session inline (dx_ws_data), text messages are
 * requests, deliveries share one dx_msg per publication per loop. */
#include <string.h>

#include "duplex/log.h"
#include "hub/hub_internal.h"

#define SUBPROTOCOL "duplex.v1"

typedef struct ws_conn {
  hub_session s; /* first: a hub_member* is a ws_conn* */
  dx_ws *ws;
  hub_peer *ip; /* counted in hub->ips when address limits are on */
} ws_conn;

static dx_ws *ws_of(hub_member *m) { return ((ws_conn *)(void *)m)->ws; }

static void *prepare(hub_blob *env) { return dx_msg_new(DX_OP_TEXT, env->data, env->len); }
static int result(int rc) {
  return rc >= 0 ? 0 : rc == DX_EBACKPRESSURE ? HUB_SEND_SLOW : HUB_SEND_CLOSED;
}
static int send_prepared(hub_member *m, void *msg, const hub_fanout *f) {
  (void)f;
  /* A slow client is closed by the backpressure policy (counted here). */
  return result(dx_ws_send_msg(ws_of(m), msg));
}
static void release(void *msg) { dx_msg_free(msg); }
static int send_env(hub_member *m, const char *data, size_t len) {
  return result(dx_ws_send(ws_of(m), DX_OP_TEXT, data, len));
}
static int send_one(hub_member *m, const hub_fanout *f) {
  return send_env(m, f->env->data, f->env->len);
}

static const hub_transport ws_transport = {prepare, send_prepared, release, send_one, send_env,
                                           NULL};

static void close_session(hub_session *s, uint16_t code, const char *reason) {
  dx_ws_close(((ws_conn *)(void *)s)->ws, code, reason);
}
static const char *session_peer(hub_session *s, char *buf, size_t cap) {
  return dx_ws_peer_str(((ws_conn *)(void *)s)->ws, buf, cap);
}
static const hub_session_ops ws_session_ops = {.close = close_session, .peer = session_peer};

/* Does a Sec-WebSocket-Protocol list name duplex.v1? */
static bool offers_v1(const char *list) {
  size_t n = strlen(SUBPROTOCOL);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ' && *e != '\t') e++;
    if ((size_t)(e - p) == n && !memcmp(p, SUBPROTOCOL, n)) return true;
    p = e;
  }
  return false;
}

/* The peer's address without the port, for the per-address limits. */
static const char *peer_ip(dx_ws *ws, char *buf, size_t cap) {
  dx_ws_peer_str(ws, buf, cap);
  char *colon = strrchr(buf, ':');
  if (colon) *colon = '\0';
  return buf;
}

static int on_upgrade(dx_ws *ws, void *user) {
  hub_loop *hl = user;
  const char *offered = dx_ws_header(ws, "Sec-WebSocket-Protocol");
  if (offered && !offers_v1(offered)) {
    char peer[64];
    dx_log_info("hub: %s offered subprotocols '%s' but not " SUBPROTOCOL "; refused with 400",
                dx_ws_peer_str(ws, peer, sizeof peer), offered);
    return 400;
  }
  const dx_hub_opts *o = &hl->hub->o;
  if (o->max_conns_per_ip || o->connect_rate_per_ip > 0) {
    char ip[64];
    const char *why;
    ws_conn *c = dx_ws_data(ws);
    c->ip = hub_peers_admit(&hl->hub->ips, peer_ip(ws, ip, sizeof ip), hub_now_ms(hl), &why);
    if (!c->ip) {
      hub_stat_add(hl, ST_REFUSED_ADDRESS, 1);
      dx_log_info("hub: %s refused with 429: %s from this address", ip, why);
      return 429;
    }
  }
  if (offered) dx_ws_set_protocol(ws, SUBPROTOCOL);
  return 0;
}

#define TOKEN_PROTOCOL "duplex.token."
#define TOKEN_MAX 8192

/* A token offered as a subprotocol (browsers cannot set headers):
 * "duplex.v1, duplex.token.JWT". Copied into out; false if none. */
static bool token_from_protocols(const char *list, char *out, size_t cap) {
  const char *p = list ? strstr(list, TOKEN_PROTOCOL) : NULL;
  if (!p) return false;
  p += strlen(TOKEN_PROTOCOL);
  size_t n = strcspn(p, ", \t");
  if (!n || n >= cap) return false;
  memcpy(out, p, n);
  out[n] = '\0';
  return true;
}

/* ?token=JWT (JWTs need no percent-decoding: base64url and dots). */
static bool token_from_query(const char *q, char *out, size_t cap) {
  for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, "token=", 6) != 0) continue;
    p += 6;
    size_t n = strcspn(p, "&");
    if (!n || n >= cap) return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
  }
  return false;
}

static void on_open(dx_ws *ws, void *user) {
  ws_conn *c = dx_ws_data(ws);
  c->ws = ws;
  hub_stat_add(user, ST_CONNECTIONS, 1);
  hub_stat_add(user, ST_CONNECTIONS_TOTAL, 1);
  static _Thread_local char token[TOKEN_MAX];
  bool have = token_from_protocols(dx_ws_header(ws, "Sec-WebSocket-Protocol"), token, sizeof token) ||
              token_from_query(dx_ws_query(ws), token, sizeof token);
  hub_session_open(&c->s, user, &ws_transport, &ws_session_ops, have ? token : NULL);
}

static void on_message(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user) {
  (void)user;
  ws_conn *c = dx_ws_data(ws);
  if (opcode == DX_OP_TEXT)
    hub_session_request(&c->s, data, len);
  else
    hub_session_reject(&c->s, "bad_request",
                       "binary frames are not requests: send JSON text (binary payloads go in "
                       "\"b64\")");
}

static void on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                     void *user) {
  (void)code, (void)reason, (void)reason_len, (void)clean;
  ws_conn *c = dx_ws_data(ws);
  if (c->ws) { /* opened: leave every topic */
    hub_session_close(&c->s);
    hub_stat_add(user, ST_CONNECTIONS, (uint64_t)-1);
  }
  hub_peers_release(&((hub_loop *)user)->hub->ips, c->ip);
}

int hub_ws_attach(hub_loop *hl) {
  const char *path = hl->hub->o.path;
  dx_ws_handlers h = {.on_upgrade = on_upgrade,
                      .on_open = on_open,
                      .on_message = on_message,
                      .on_close = on_close,
                      .data_size = sizeof(ws_conn)};
  int rc = dx_server_route(hl->srv, path, &h, hl);
  if (rc == 0) rc = dx_server_route_protocols(hl->srv, path, (const char *const[]){SUBPROTOCOL, NULL});
  return rc;
}
