/* hub — the dx_hub object's private parts, shared by its files: hub.c (the
 * object, fan-out across loops, the C API), session.c (one client's
 * requests, whatever the transport), transport_ws.c (WebSocket) and api.c
 * (the HTTP API). */
#ifndef DX_HUB_INTERNAL_H
#define DX_HUB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "duplex/hub.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "hub/broker.h"
#include "hub/codec.h"
#include "hub/core.h"
#include "hub/node.h"
#include "hub/poll_session.h"
#include "hub/limits.h"
#include "hub/rules.h"
#include "hub/token.h"

#define HUB_INFO_MAX 1024
#define HUB_BAD_IN_ROW_MAX 20 /* then close 4000 */
#define HUB_CLOSE_BAD_PROTOCOL 4000
#define HUB_CLOSE_UNAUTHORIZED 4001
#define HUB_CLOSE_TOO_MANY 4008

/* Counters of one loop, for /metrics: written by the loop's thread, read
 * by the scrape on any (relaxed atomics). */
typedef enum hub_stat {
  ST_CONNECTIONS,      /* WebSocket, open now (a gauge: opens minus closes) */
  ST_CONNECTIONS_SSE,  /* Server-Sent Events streams open now */
  ST_CONNECTIONS_POLL, /* long-polls waiting now */
  ST_CONNECTIONS_TOTAL,
  ST_REQUESTS,
  ST_REQUEST_BYTES,
  ST_REPLIES, /* and other messages sent to one client (welcome, replays) */
  ST_REPLY_BYTES,
  ST_ERRORS, /* error replies */
  ST_PUBLISH_CLIENT,
  ST_PUBLISH_API,
  ST_RESUME_RECOVERED,
  ST_RESUME_TOO_OLD,
  ST_RESUME_EPOCH_CHANGED,
  ST_RESUME_OFFSET_AHEAD,
  ST_RATE_LIMITED_PUBLISH,
  ST_RATE_LIMITED_SUBSCRIBE,
  ST_REFUSED_ADDRESS,
  ST_REFUSED_USER,
  ST_AUTH_OK,
  ST_AUTH_FAILED, /* by reason: see hub_auth_reasons */
  ST_AUTH_FAILED_LAST = ST_AUTH_FAILED + 10,
  ST_LOOP_LAG_MS, /* last measured (a gauge) */
  ST_COUNT
} hub_stat;

/* The reasons a token is refused, as labels (the last one catches others). */
extern const char *const hub_auth_reasons[ST_AUTH_FAILED_LAST - ST_AUTH_FAILED + 1];

/* One attached server: a loop's share of the hub. */
typedef struct hub_loop {
  dx_hub *hub;
  unsigned index;
  dx_server *srv;
  dx_loop *loop;
  hub_node node;
  dx_timer sweep;            /* once a second: auth deadlines, token expiry; loop 0
                                also expires history and forgets idle topics */
  struct hub_session *timed; /* sessions with an auth deadline or a token exp */
  uint64_t sweep_due;        /* when the sweep timer should fire (loop lag) */
  struct sse_conn *sse;      /* open Server-Sent Events streams (heartbeats) */
  unsigned sse_ticks;
  _Atomic uint64_t stats[ST_COUNT];
  bool detached;
} hub_loop;

static inline void hub_stat_add(hub_loop *hl, hub_stat st, uint64_t n) {
  atomic_fetch_add_explicit(&hl->stats[st], n, memory_order_relaxed);
}
/* Count a refused token under its reason. */
void hub_stat_auth_failed(hub_loop *hl, const char *why);

struct dx_hub {
  dx_hub_opts o; /* defaults applied; api_key and path are our copies */
  uint32_t history_size;
  uint64_t history_ttl_ms;
  hub_core *core;
  hub_broker *broker; /* memory (the core) or redis */
  bool shared;        /* several loops: the core locks and fan-out is posted */
  hub_loop **loops;
  unsigned nloops;
  hub_verifier *verifier; /* NULL: no tokens, everyone is anonymous */
  /* The rules in force: replaced whole by dx_hub_set_rules while loops
   * read them, so older sets are kept until dx_hub_free. */
  struct hub_ruleset {
    dx_hub_topic_rule *v;
    size_t n;
    struct hub_ruleset *older;
  } * _Atomic rules;
  hub_peers ips, users; /* connection counts and rates */
  int leeway_s;
  atomic_uint_fast64_t next_conn;
  char id_prefix[8];       /* of client ids: random per hub, so ids differ across restarts */
  hub_psessions psessions; /* of the HTTP transports (poll_session.h) */
};

/* Publish from a loop thread of the hub (hl's), through the broker; done
 * runs on hl's thread, maybe before this returns (see broker.h). */
void hub_publish(hub_loop *hl, const hub_pub *p, hub_broker_done done, void *ctx);
/* A broker failure as an error reply (unavailable, internal). */
void hub_broker_error(int status, hub_error *err);

/* Check a payload against max_publication (the topic's rule, or the
 * hub's); 0 or -1 with err set. */
int hub_check_payload(const dx_hub *hub, const char *topic, size_t topic_len, json_t *data,
                      const char *b64, size_t b64_len, hub_error *err);
/* The rule for a topic, or NULL. */
const dx_hub_topic_rule *hub_rule(const dx_hub *hub, const char *topic, size_t len);

/* Send a broadcast envelope to every connection of every loop. Returns the
 * connections reached on this loop's server (others are posted). */
int hub_broadcast(hub_loop *hl, hub_blob *env);

uint64_t hub_now_ms(const hub_loop *hl);

/* The `presence` result as JSON fields (presence, complete), shared by the
 * protocol and the HTTP API. NULL with err set (presence off: forbidden). */
json_t *hub_presence_fields(int status, const hub_presence_list *l, hub_error *err);
/* 0, or -1 with a forbidden error (err may be NULL) when the topic's rule
 * turns presence off. */
int hub_presence_allowed(dx_hub *h, const char *topic, size_t len, hub_error *err);

/* The `history` result as JSON fields (offset, epoch, publications,
 * complete), shared by the protocol and the HTTP API. NULL with err set. */
json_t *hub_history_fields(const hub_history_query *q, hub_history_result *r, hub_error *err);

/* ---- one client, transport-neutral (session.c) ---- */
typedef struct hub_session hub_session;
typedef struct hub_session_ops {
  void (*close)(hub_session *s, uint16_t code, const char *reason);
  /* The peer's address ("ip:port") into buf, for log lines. */
  const char *(*peer)(hub_session *s, char *buf, size_t cap);
  /* Optional: the last request that was waiting for the broker has been
   * answered (hub_session_busy is false again). */
  void (*settled)(hub_session *s);
} hub_session_ops;

/* A request waiting for the broker (a publish, subscribe or history that
 * Redis answers later). It outlives its session: s is NULL once the
 * session has closed, and the completion then only cleans up. */
typedef struct hub_pending {
  hub_session *s;
  struct hub_pending *prev, *next;
  json_t *id;   /* the request's id (a reference), or NULL */
  uint8_t kind; /* subscribe, publish, history */
} hub_pending;

typedef enum hub_auth {
  HUB_AUTH_ANONYMOUS = 0, /* no token (allowed) */
  HUB_AUTH_PENDING,       /* a token is required and has not come yet */
  HUB_AUTH_TOKEN,         /* authenticated by a token */
} hub_auth;

struct hub_session {
  hub_member m; /* subscriptions; m.tr is the transport */
  hub_loop *hl;
  const hub_session_ops *ops;
  const char *user; /* tok.user, or "" when anonymous */
  hub_token tok;
  hub_peer *user_peer; /* counted in hub->users while authenticated */
  hub_bucket pub_rate, sub_rate;
  uint32_t rate_logged_ms;         /* last "rate limited" log line */
  int64_t deadline;                /* pending: close at this time (s); token: its exp */
  struct hub_session *prev, *next; /* in hl->timed while deadline is set */
  hub_pending *pending;            /* requests the broker has not answered yet */
  uint16_t bad_in_row;
  uint8_t auth; /* hub_auth */
  bool closing;
  char client[HUB_CLIENT_ID_MAX];
  hub_psession *ps; /* HTTP transports: the session this request is one of */
};

/* Start a session: assign its ids, check `token` if the transport brought
 * one (NULL if not), send the welcome — or close 4001 for a bad token. */
void hub_session_open(hub_session *s, hub_loop *hl, const hub_transport *tr,
                      const hub_session_ops *ops, const char *token);
/* The same for a request of the HTTP transports, as one of the session
 * `ps` (held by the request: found by hub_psession_find), or of a new
 * session when ps is NULL (it then takes over `ip`, an address count, or
 * NULL). The welcome names the session. Returns 0 (s->ps set), -1 (the
 * session is closing: a bad token, no memory) or HUB_OPEN_FOREIGN: ps
 * belongs to another user (or to a user, and no token came), nothing was
 * sent and ps is still held. */
#define HUB_OPEN_FOREIGN 1
int hub_session_open_http(hub_session *s, hub_loop *hl, const hub_transport *tr,
                          const hub_session_ops *ops, const char *token, hub_psession *ps,
                          hub_peer *ip);
/* The per-second check of hl's timed sessions (auth deadline, token exp). */
void hub_sessions_tick(hub_loop *hl, int64_t now_s);
int64_t hub_wall_s(void);
/* One request (a text message). */
void hub_session_request(hub_session *s, const char *text, size_t len);
/* Report a request that could not be read as one (e.g. a binary frame). */
void hub_session_reject(hub_session *s, const char *code, const char *message);
/* The client is gone: leave every topic (leave events to the others);
 * requests still waiting for the broker are answered to nobody. A request
 * of an HTTP session leaves its deliveries only and releases the session:
 * its presence stays until the session expires. */
void hub_session_close(hub_session *s);
/* Whether requests are still waiting for the broker (a one-shot HTTP
 * transport answers once this is false: ops->settled tells). */
static inline bool hub_session_busy(const hub_session *s) { return s->pending != NULL; }

/* ---- transports and the HTTP API ---- */
int hub_ws_attach(hub_loop *hl);
int hub_api_attach(hub_loop *hl);
int hub_metrics_attach(hub_loop *hl); /* GET /metrics, /readyz */
int hub_sse_attach(hub_loop *hl);     /* GET /sse */
int hub_poll_attach(hub_loop *hl);    /* GET /poll, POST /http/request */
void hub_sse_heartbeat(hub_loop *hl); /* from the per-second tick */

#endif
