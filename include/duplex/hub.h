/* duplex — the pub/sub hub (what `duplex serve` runs), for programs that
 * embed it.
 *
 *   dx_hub *hub = dx_hub_new(&(dx_hub_opts){ .history_size = 100, .api_key = key });
 *   dx_hub_attach(hub, srv);        // once per server (= per loop thread)
 *   dx_server_listen(srv);
 *   dx_loop_run(loop);              // clients speak duplex.v1 at /ws
 *   ...
 *   dx_hub_publish(hub, "ticker/AAPL", "{\"price\":187.2}", 15, NULL);   // any thread
 *
 * The wire protocol, the HTTP API (/api/...) and the resume rules are in
 * docs/PROTOCOL.md. The hub is an ordinary user of the server API: it
 * registers a WebSocket route and HTTP handlers on each attached server.
 *
 * Threads: dx_hub_new, dx_hub_attach and dx_hub_free run while no attached
 * loop runs (setup and teardown); dx_hub_detach on the server's loop thread
 * (or while it does not run); dx_hub_publish and dx_hub_broadcast on any
 * thread. With several loops (one server each, SO_REUSEPORT), topics,
 * positions, history and presence are shared: a publish on any loop reaches
 * subscribers on all, in offset order.
 * Errors: negative DX_E* codes (duplex/error.h).
 */
#ifndef DUPLEX_HUB_H
#define DUPLEX_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_hub dx_hub;

typedef enum dx_hub_action {
  DX_HUB_SUBSCRIBE = 1,
  DX_HUB_PUBLISH = 2,
} dx_hub_action;

/* What anonymous clients may do on a topic when tokens are configured and
 * allow_anonymous is set (without tokens everyone is anonymous and these do
 * not apply). */
typedef enum dx_hub_anonymous {
  DX_HUB_ANON_DEFAULT = 0, /* subscribe, not publish */
  DX_HUB_ANON_NONE,        /* neither */
  DX_HUB_ANON_READ,        /* subscribe, not publish */
  DX_HUB_ANON_WRITE,       /* subscribe and publish */
} dx_hub_anonymous;

/* A rule for the topics matching `pattern` (a topic name, or a prefix
 * ending in '*'); the first matching rule applies, and a topic no rule
 * matches gets the hub's defaults. Zero means "default". */
typedef struct dx_hub_topic_rule {
  const char *pattern;
  bool api_only;          /* clients may not publish: only the HTTP and C APIs */
  bool no_presence;       /* no presence entries, join/leave or presence queries */
  int history_size;       /* publications kept (0: the hub's; negative: none) */
  size_t max_publication; /* payload limit (0: the hub's) */
  dx_hub_anonymous anonymous;
} dx_hub_topic_rule;

/* Options; zero means "default". */
typedef struct dx_hub_opts {
  int history_size;         /* publications kept per topic (default 100; negative: none) */
  int history_ttl_ms;       /* kept at most this long (default 300000; negative: forever) */
  size_t max_publication;   /* payload bytes of one publication (default 64 KiB) */
  unsigned max_subscriptions; /* per connection (default 128) */
  const char *api_key;      /* key for /api/ (copied); NULL: the HTTP API answers 403 */
  const char *path;         /* WebSocket endpoint (default "/ws") */
  /* Connection tokens (JWT; docs/PROTOCOL.md "Authentication"). With a
   * secret (HS256) or a public key file (RS256 for an RSA key, ES256 for a
   * P-256 key), every connection must present a valid token — in a
   * `connect` request, in the `token` query parameter or as a
   * `duplex.token.JWT` subprotocol offer — unless allow_anonymous. */
  const char *token_secret;   /* at least 16 bytes */
  const char *token_key_file; /* PEM public key */
  const char *token_audience; /* require this "aud" (NULL: not checked) */
  const char *token_issuer;   /* require this "iss" (NULL: not checked) */
  int token_leeway_s;         /* clock skew allowed on exp/nbf (default 5; negative: 0) */
  int auth_timeout_ms;        /* to authenticate after connecting (default 10000) */
  bool allow_anonymous;       /* with tokens configured, still let anonymous clients in */
  /* Topic rules (copied), first match wins. */
  const dx_hub_topic_rule *rules;
  size_t nrules;
  /* Limits that keep one client from hurting the rest (0: default, negative
   * or for counts ~0: off). Rates are per second, with a burst of the same
   * size. A client past a rate gets `rate_limited` errors; past a
   * connection limit it is refused (429 before the upgrade for an address,
   * close 4008 for a user). */
  double publish_rate;        /* per connection (default 100/s) */
  double subscribe_rate;      /* per connection (default 50/s) */
  unsigned max_conns_per_user; /* default 100 */
  unsigned max_conns_per_ip;   /* default 1000 */
  double connect_rate_per_ip; /* new connections per address (default 50/s) */
  size_t history_memory;      /* bytes of retained publications, all topics (default 256 MiB) */
  unsigned max_presence;      /* presence entries per topic (default 10000) */
  /* Scale-out: NULL for the embedded broker (one process), or a Redis URL
   * (redis://[[user]:password@]host[:port][/db], rediss://... for TLS,
   * redis+sentinel://host:port,host:port/mastername) so that every node on
   * the same Redis shares topics, positions and history. Keys and channels
   * start with redis_prefix (NULL: "duplex:"). See docs/SCALING.md. */
  const char *redis_url;
  const char *redis_prefix;
  /* A session of the HTTP transports (long-polling, SSE + POST; it keeps a
   * client's id, presence and rate limits across its requests) expires this
   * long after its last request ended (default 30000; negative: at the
   * next sweep). Presence of a long-poller leaves then. */
  int session_idle_ms;
  /* With Redis: a node's presence entries are refreshed every third of
   * this, so a node that dies leaves them for at most this long (its
   * clients' leave events come then). Default 30 s. */
  int presence_ttl_ms;
  /* Optional authorisation hook, called on the loop thread before a client
   * subscribes or publishes: return 0 to allow, anything else to refuse
   * (the client gets a `forbidden` error). `user_id` is "" for anonymous
   * clients. */
  int (*authorize)(const char *client_id, const char *user_id, dx_hub_action action,
                   const char *topic, void *user);
  void *user;
} dx_hub_opts;

/* Create a hub. `opts` may be NULL. NULL when out of memory or when the
 * token configuration is unusable (a short secret, an unreadable or
 * unsupported key file: the reason is logged). */
dx_hub *dx_hub_new(const dx_hub_opts *opts);

/* Serve the hub on `srv`: the WebSocket endpoint (opts.path, subprotocol
 * duplex.v1), the HTTP API under /api/, /sse, /metrics and /readyz. Call
 * once per server, before any of the hub's loops runs. Returns 0,
 * DX_ESTATE (a loop already runs clients), DX_ENOMEM; after an error the
 * server may hold some of the hub's routes: free it without running it. */
int dx_hub_attach(dx_hub *hub, dx_server *srv);

/* Stop serving on `srv` once it was freed (dx_server_free), before its
 * loop is freed: stops the hub's timers on that loop. Loop thread. */
void dx_hub_detach(dx_hub *hub, dx_server *srv);

/* Publish `json` (a JSON text of any type, e.g. "{\"x\":1}" or "42") on
 * `topic`, from any thread. With `b64` set, `json` is ignored and the
 * payload is the base64 text (a binary publication). On success returns 0;
 * *offset (if not NULL) gets the publication's offset when it was known at
 * once (a publish from a thread that is not a loop of the hub is handed to
 * a loop and *offset is 0). Errors: DX_EINVAL (bad topic, bad JSON or
 * base64, too big), DX_ENOMEM, DX_ESTATE (no server attached). */
int dx_hub_publish(dx_hub *hub, const char *topic, const char *json, size_t len,
                   uint64_t *offset);
int dx_hub_publish_b64(dx_hub *hub, const char *topic, const char *b64, size_t len,
                       uint64_t *offset);

/* Mint an HS256 token (for tests, demos and `duplex token`): claims sub,
 * iat, exp (now + ttl_s; none when ttl_s is 0) and the members of
 * `claims_json` (a JSON object such as {"subscribe":["chat:*"]}, or NULL).
 * Returns a malloc'd string (free it), or NULL for a bad argument (a secret
 * shorter than 16 bytes, claims that are not a JSON object) or no memory.
 * Any thread. */
char *dx_hub_token_mint(const char *secret, const char *sub, long ttl_s, const char *claims_json);

/* Replace the topic rules (copied), e.g. on a configuration reload: new
 * requests and topics created from now on follow them (a topic's history
 * size is fixed when the topic is created). Any thread; concurrent calls
 * must be serialised by the caller. Returns 0, DX_EINVAL, DX_ENOMEM. */
int dx_hub_set_rules(dx_hub *hub, const dx_hub_topic_rule *rules, size_t nrules);

/* Free the hub after every attached server was freed and detached. NULL ok. */
void dx_hub_free(dx_hub *hub);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_HUB_H */
