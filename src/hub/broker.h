/* hub — the broker: who numbers a topic's publications, keeps its history
 * and carries each publication to every node that has subscribers.
 *
 * Two implementations behind one table of operations:
 *   - memory (broker_memory.c, the default): the core (core.h) is the
 *     whole truth; every operation completes before it returns.
 *   - redis (broker_redis.c, `duplex serve --redis URL`): Redis numbers,
 *     keeps and carries; the core mirrors the topics that have local
 *     subscribers, so subscribes, resumes and history of a live topic are
 *     answered locally and the mirror follows Redis's pub/sub.
 *
 * The session and the HTTP API use only these operations, so they behave
 * the same whichever broker runs. Completions (`done`) run on the calling
 * loop's thread, possibly before the operation returns (always so for the
 * memory broker): callers must be ready for both.
 *
 * Threads: every operation is called on a loop thread of the hub (`hl`'s). */
#ifndef DX_HUB_BROKER_H
#define DX_HUB_BROKER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/hub.h"
#include "hub/core.h"

struct hub_loop;
typedef struct hub_broker hub_broker;

/* Completion statuses besides 0. */
enum {
  HUB_BROKER_OOM = -1,
  HUB_BROKER_DOWN = -2,    /* unreachable: nothing was done */
  HUB_BROKER_UNKNOWN = -3, /* the connection broke before the answer: it may have been done */
};

/* pos is set for publish and NULL otherwise. */
typedef void (*hub_broker_done)(void *ctx, int status, const hub_position *pos);

/* A publication before it has an offset. */
typedef struct hub_pub {
  const char *topic;
  size_t topic_len;
  json_t *data; /* or b64 */
  const char *b64;
  size_t b64_len;
  const char *from;   /* the publishing client's id, or NULL */
  uint64_t skip_conn; /* not delivered to this connection (0: none) */
} hub_pub;

/* A history query's answer (see hub_core_history). status as above, or 1
 * when since's epoch is not the topic's. */
typedef struct hub_history_result {
  int status;
  hub_position pos;
  hub_replay pubs;
  bool complete;
} hub_history_result;
typedef void (*hub_history_done)(void *ctx, hub_history_result *r);

typedef struct hub_history_query {
  const char *topic;
  size_t topic_len;
  bool has_since;
  uint64_t since_offset;
  const char *since_epoch;
  uint32_t limit;
} hub_history_query;

/* A presence query's answer: status as above; l is valid for the call. */
typedef void (*hub_presence_done)(void *ctx, int status, hub_presence_list *l);

typedef struct hub_broker_ops {
  const char *name;   /* "memory", "redis" */
  bool remote_events; /* joins and leaves travel through the broker (core.h) */
  /* A loop joins (called on that loop's thread, from its first turn) or
   * leaves (on its thread, before it stops). */
  void (*loop_start)(hub_broker *b, struct hub_loop *hl);
  void (*loop_stop)(hub_broker *b, struct hub_loop *hl);
  void (*publish)(hub_broker *b, struct hub_loop *hl, const hub_pub *p, hub_broker_done done,
                  void *ctx);
  /* A subscription to the topic begins on hl: done(ctx, 0, NULL) once the
   * core holds the topic's current state, and the caller then calls
   * hub_core_subscribe. Whatever the status, the caller balances it with
   * unwant once the subscription ends (or at once, when it gives up). */
  void (*want)(hub_broker *b, struct hub_loop *hl, const char *topic, size_t len,
               hub_broker_done done, void *ctx);
  void (*unwant)(hub_broker *b, struct hub_loop *hl, const char *topic, size_t len);
  void (*history)(hub_broker *b, struct hub_loop *hl, const hub_history_query *q,
                  hub_history_done done, void *ctx);
  /* A subscriber entered the topic's presence here (after
   * hub_core_subscribe or hub_core_presence_join) or left it: tell every
   * node's subscribers. The memory broker has nothing to do: the core told
   * them. hl may be NULL (an HTTP session's presence, from any loop
   * thread, or the sweep). */
  void (*joined)(hub_broker *b, struct hub_loop *hl, const char *topic, size_t len,
                 const hub_who *who, hub_blob *join_env);
  void (*left)(hub_broker *b, struct hub_loop *hl, const char *topic, size_t len,
               const hub_who *who);
  void (*presence)(hub_broker *b, struct hub_loop *hl, const char *topic, size_t len,
                   hub_presence_done done, void *ctx);
  /* Once a second on every loop (reconnects, timeouts). */
  void (*tick)(hub_broker *b, struct hub_loop *hl);
  /* Reachable (for /readyz and /metrics; any thread). */
  bool (*up)(hub_broker *b);
  void (*free)(hub_broker *b);
} hub_broker_ops;

struct hub_broker {
  const hub_broker_ops *ops;
  _Atomic uint64_t resyncs; /* topics loaded again (for /metrics) */
};

/* The embedded broker: the hub's core is the whole truth. */
hub_broker *hub_broker_memory_new(void);

/* The Redis broker for `url` (see broker_redis.c); keys and channels start
 * with `prefix` (NULL: "duplex:"). NULL with a message in err. */
hub_broker *hub_broker_redis_new(dx_hub *h, const char *url, const char *prefix, char *err,
                                 size_t errlen);

/* The publication's envelope at `offset` (codec.c's message envelope). */
hub_blob *hub_pub_envelope(const hub_pub *p, uint64_t offset);

#endif
