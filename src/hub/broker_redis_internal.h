/* hub — the Redis broker's state, shared by its files only (the design is at
 * the top of broker_redis.c):
 *   broker_redis.c           construction, command connections, tick, the ops table
 *   broker_redis_scripts.c   the Lua scripts, their SHA1s and SCRIPT LOAD
 *   broker_redis_sub.c       interest (want/unwant), the subscriber connection, messages
 *   broker_redis_load.c      a topic's position and publications from Redis: into the
 *                            core's mirror (then the waiting subscribes are answered),
 *                            or as a history answer
 *   broker_redis_publish.c   publish
 *   broker_redis_presence.c  presence: join, leave, refresh, query
 * Names shared between them begin hub_rb_. */
#ifndef DX_HUB_BROKER_REDIS_INTERNAL_H
#define DX_HUB_BROKER_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/broker.h"
#include "hub/broker_wire.h"
#include "hub/hub_internal.h"
#include "hub/map.h"
#include "hub/redis_router.h"

#define META_TTL_MS (24ull * 3600 * 1000) /* an idle topic's position lives a day */
#define HUB_MAX_LOOPS 256

enum {
  SCRIPT_PUBLISH,
  SCRIPT_LOAD,
  SCRIPT_JOIN,
  SCRIPT_LEAVE,
  SCRIPT_REFRESH,
  SCRIPT_PRESENCE,
  NSCRIPTS
};

enum { T_IDLE, T_SUBSCRIBING, T_LOADING, T_LIVE };

typedef struct waiter {
  struct waiter *next;
  hub_loop *hl;
  hub_broker_done done;
  void *ctx;
  uint64_t since_ms; /* hub_rb_mono_ms() */
  int status;        /* when posted */
} waiter;

typedef struct queued {
  struct queued *next;
  uint64_t offset, time_ms, skip;
  char epoch[HUB_EPOCH_LEN + 1];
  size_t len;
  char tail[];
} queued;

typedef struct rtopic {
  hub_map_item item; /* key: the name, after the struct */
  uint32_t interest; /* local subscriptions, and subscribes waiting */
  uint8_t state;
  bool load_sent;    /* a load is out (or must be sent when the connection is up) */
  bool reload;       /* a message did not follow on during the load: load again */
  uint32_t load_gen; /* of the load that counts: older answers are stale */
  waiter *waiters;
  queued *q, *q_tail; /* messages that came during the load */
} rtopic;

struct redis_broker;

/* A command connection's loop index and the replication ID of its Redis
 * ("" until INFO answered; written and read on its loop). */
typedef struct cmd_state {
  struct redis_broker *rb;
  unsigned index;
  char replid[HUB_REPLID_LEN + 1];
  bool up; /* counted out of redis_broker.cmds_down (this loop only) */
} cmd_state;

typedef struct redis_broker {
  hub_broker b;
  dx_hub *hub;
  hub_redis_url url;
  char prefix[64];
  char node_id[HUB_NODE_ID_LEN + 1];
  char *script[NSCRIPTS]; /* the texts: PUBLISH becomes SPUBLISH on a cluster */
  char sha[NSCRIPTS][41];
  uint64_t presence_ttl_ms;
  uint64_t refresh_due; /* loop 0's clock */
  pthread_mutex_t mu;
  hub_map topics;                       /* name -> rtopic, under mu */
  hub_redis_router *sub;                /* loop 0's subscriber connection */
  hub_redis_router *cmd[HUB_MAX_LOOPS]; /* per loop index (each written by its loop) */
  cmd_state cs[HUB_MAX_LOOPS];
  _Atomic bool sub_up, cmd0_up;
  /* Started loops whose command connection is not up: publishes there are
   * refused, so the node is not ready (rb_up) while any is. */
  _Atomic int cmds_down;
  bool kick_posted; /* under mu */
  waiter *unposted; /* completions that could not be posted yet (under mu) */
  bool readd;       /* loop 0: the next presence refresh adds every entry */
} redis_broker;

static inline redis_broker *rb_of(hub_broker *b) { return (redis_broker *)b; }

static inline bool reply_is(const redisReply *r, int type) { return r && r->type == type; }

/* broker_redis.c: clocks, names, keys */
uint64_t hub_rb_mono_ms(void);
uint64_t hub_rb_wall_ms(void);
void hub_rb_random_hex(char *out, size_t n);
size_t hub_rb_key(const redis_broker *rb, char *buf, size_t cap, const char *topic, size_t len,
                  const char *suffix);
uint32_t hub_rb_topic_cap(dx_hub *h, const char *topic, size_t len);

/* broker_redis_scripts.c */
int hub_rb_scripts_make(redis_broker *rb); /* rb->script and rb->sha; -1: out of memory */
void hub_rb_load_scripts(redis_broker *rb, hub_redis_router *c);

/* broker_redis_sub.c */
void hub_rb_reconcile(redis_broker *rb);
void hub_rb_on_push(hub_redis_router *r, redisReply *msg, void *user);
void hub_rb_on_sub_up(hub_redis_router *r, void *user);
void hub_rb_on_sub_down(hub_redis_router *r, const char *why, bool was_up, void *user);
void hub_rb_want(hub_broker *b, hub_loop *hl, const char *topic, size_t len, hub_broker_done done,
                 void *ctx);
void hub_rb_unwant(hub_broker *b, hub_loop *hl, const char *topic, size_t len);

/* broker_redis_load.c */
void hub_rb_post_waiter(redis_broker *rb, waiter *w);
void hub_rb_queue_clear(rtopic *t);
int hub_rb_apply_msg(redis_broker *rb, hub_loop *hl, const char *topic, size_t len,
                     const char *epoch, uint64_t offset, uint64_t time_ms, uint64_t skip,
                     const char *tail, size_t tail_len);
void hub_rb_send_load(redis_broker *rb, rtopic *t);
void hub_rb_history(hub_broker *b, hub_loop *hl, const hub_history_query *q, hub_history_done done,
                    void *ctx);

/* broker_redis_publish.c */
void hub_rb_publish(hub_broker *b, hub_loop *hl, const hub_pub *p, hub_broker_done done, void *ctx);

/* broker_redis_presence.c */
void hub_rb_joined(hub_broker *b, hub_loop *hl, const char *topic, size_t len, const hub_who *who,
                   hub_blob *join_env);
void hub_rb_left(hub_broker *b, hub_loop *hl, const char *topic, size_t len, const hub_who *who);
void hub_rb_presence(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                     hub_presence_done done, void *ctx);
void hub_rb_refresh_presence(redis_broker *rb, const char *topic, size_t len, bool readd);

#endif
