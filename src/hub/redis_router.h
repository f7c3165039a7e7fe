/* hub — commands routed to the right Redis node, one Redis or a Redis Cluster alike, on one
 * dx_loop. The broker uses only this, so it does not care whether it talks to one Redis,
 * Sentinel's master, or a cluster.
 *
 * Single (redis://, rediss://, redis+sentinel://): one hub_redis underneath, its callbacks passed
 * through; `key` is ignored.
 *
 * Cluster (redis+cluster://seed,seed): a control connection asks the seeds in turn for CLUSTER
 * SLOTS; one hub_redis per master (the URL's TLS and credentials), all connected at start. A
 * command goes to the master of its key's slot (hub_redis_slot). Its arguments are kept until the
 * answer so that it can be sent again:
 *   -MOVED slot host:port  the map is refreshed (one CLUSTER SLOTS in flight at a time) and the
 *                          command goes to the new owner (once the map knows it; at most 5
 *                          redirects, then the callback gets the error);
 *   -ASK slot host:port    ASKING + the command on that node, once;
 *   -TRYAGAIN, -CLUSTERDOWN   sent again after 100, 200, 400, 800 ms, then the callback gets it.
 * A command waiting for a node or the map is answered with NULL if none comes within
 * reply_timeout_ms, or when the router goes down.
 * Pub/sub (opts.pubsub): the caller sends SSUBSCRIBE/SUNSUBSCRIBE with the shard channel as key
 * (cluster) or SUBSCRIBE/UNSUBSCRIBE (single): hub_router_sharded() tells which. Pushes from every
 * node's connection go to on_push. A slot that moves makes Redis push an sunsubscribe for the
 * channel: that goes to on_push like any push (subscribe again: it is routed to the new owner)
 * and refreshes the map.
 * Threads: the loop's. Callbacks run from loop callbacks only, never from inside hub_router_*. */
#ifndef HUB_REDIS_ROUTER_H
#define HUB_REDIS_ROUTER_H

#include "hub/redis_client.h"

typedef struct hub_redis_router hub_redis_router;
/* reply NULL: the connection went (or the router was freed or went down) before the answer. */
typedef void (*hub_router_reply_fn)(hub_redis_router *r, redisReply *reply, void *priv);

typedef struct hub_router_opts {
  const hub_redis_url *url;                /* copied */
  const char *name;                        /* starts the log lines (NULL: "redis"); copied */
  bool pubsub;                             /* subscriber connections (see redis_client.h) */
  uint32_t reply_timeout_ms;               /* 0: 5000 */
  uint32_t connect_timeout_ms;             /* 0: 2000 */
  uint32_t backoff_min_ms, backoff_max_ms; /* reconnect delays of each connection (0: 100, 5000) */
  /* Up: every connection it needs is up (cluster: the slot map is known and every master is
   * connected). Down: any of them broke (its pending callbacks got NULL first, and so did the
   * commands the router held); was_up as in redis_client.h (false: an attempt failed while down).
   * A pubsub router's subscriptions are all gone when it goes down (cluster: the connections
   * still up are made again): send them again on up. */
  void (*on_up)(hub_redis_router *r, void *user);
  void (*on_down)(hub_redis_router *r, const char *why, bool was_up, void *user);
  void (*on_push)(hub_redis_router *r, redisReply *msg, void *user); /* msg freed after */
  void *user;
} hub_router_opts;

hub_redis_router *hub_router_new(dx_loop *loop, const hub_router_opts *o); /* NULL: OOM, TLS */
/* Pending callbacks are called with NULL; on_down is not called. Allowed inside the router's
 * callbacks. NULL is a no-op. */
void hub_router_free(hub_redis_router *r);
bool hub_router_up(const hub_redis_router *r);
bool hub_router_sharded(const hub_redis_router *r); /* cluster: SSUBSCRIBE/SPUBLISH */
/* Queue a command for the node that owns `key` (len bytes; NULL: any node). lens NULL: the
 * arguments are NUL-terminated. 0, or -1 when that node is not up (or the map is not known, or
 * out of memory): cb is not called. */
int hub_router_command(hub_redis_router *r, const char *key, size_t len, hub_router_reply_fn cb,
                       void *priv, int argc, const char **argv, const size_t *lens);
/* Send to every master (single: the one node), e.g. SCRIPT LOAD; replies are dropped.
 * 0, or -1 when some master was not up (it was sent to the others). */
int hub_router_command_all(hub_redis_router *r, int argc, const char **argv, const size_t *lens);
/* Masters in the slot map (single: 1). */
unsigned hub_router_masters(const hub_redis_router *r);
/* For logs: "host:port" of the node (single), or "cluster of N masters (host:port, ...)". */
const char *hub_router_describe(const hub_redis_router *r, char *buf, size_t cap);
/* "host:port" of the master that owns `key` now ("?" when unknown). */
const char *hub_router_describe_key(const hub_redis_router *r, const char *key, size_t len,
                                    char *buf, size_t cap);

#endif
