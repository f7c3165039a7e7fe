/* The Redis broker (see broker.h and docs/ARCHITECTURE.md, "Scale-out").
 *
 * In Redis, per topic T (the {T} hash tag keeps all three on one cluster
 * shard):
 *   PREFIX{T}:m  hash: e (epoch), o (newest offset), r (the replication ID of
 *                the Redis that wrote e), f (the offset e began after)
 *   PREFIX{T}:s  stream: one entry per retained publication, id OFFSET-0,
 *                fields d (the envelope's tail), t (wall-clock ms)
 *   PREFIX{T}    channel: "EPOCH OFFSET TIME SKIP\n" + tail per publication
 * A Lua script numbers, retains and publishes atomically, so every node
 * sees a topic's publications in offset order and a subscriber resumes on
 * any node by the same (offset, epoch).
 *
 * Here, per node: one subscriber connection (loop 0's) SUBSCRIBEs only to
 * topics with local subscribers (reference-counted: `interest`); each loop
 * has a command connection for its publishes and loads. A topic becomes
 * live in steps: SUBSCRIBE confirmed -> load (script: position + retained
 * publications, with messages arriving meanwhile queued) -> the core
 * mirrors it -> waiting subscribes go on. A message that does not follow
 * on (a lost connection, a Redis restart) makes the topic load again: the
 * core fills the hole from the stream, or tells subscribers of the gap.
 *
 * Failover: replication is asynchronous, so a promoted replica (or a
 * restarted Redis) may lack publications the old master acknowledged, and
 * would number new ones with their offsets. Each script compares the
 * topic's r with the replication ID of the Redis it runs on (asked once per
 * connection: INFO replication) and on a change begins a new epoch at the
 * surviving offset: subscribers get an epoch_changed gap notice instead of
 * other publications under offsets they had.
 *
 * Threads: the topic table is shared by the loops under `mu`; Redis
 * connections are each driven by their own loop, and everything on the
 * subscriber connection happens on loop 0. Lock order: mu, then the
 * core's lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include "duplex/log.h"
#include "hub/broker_redis_internal.h"

#define WANT_TIMEOUT_MS 5000 /* a subscribe waits this long for Redis */

/* ---- clocks, names, keys (shared by the broker_redis*.c files) ---- */

/* Milliseconds of a clock every loop thread may read (the waiters' ages). */
uint64_t hub_rb_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t hub_rb_wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void hub_rb_random_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  uint8_t r[32] = {0};
  if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n)
    for (size_t i = 0; i < n; i++) r[i] = (uint8_t)rand();
  for (size_t i = 0; i < n; i++) out[i] = hex[r[i] & 15];
  out[n] = '\0';
}

/* PREFIX{T}SUFFIX into buf. */
size_t hub_rb_key(const redis_broker *rb, char *buf, size_t cap, const char *topic, size_t len,
                  const char *suffix) {
  int n = snprintf(buf, cap, "%s{%.*s}%s", rb->prefix, (int)len, topic, suffix);
  return n < 0 ? 0 : (size_t)n;
}

uint32_t hub_rb_topic_cap(dx_hub *h, const char *topic, size_t len) {
  const dx_hub_topic_rule *r = hub_rule(h, topic, len);
  if (!r || !r->history_size) return h->history_size;
  return r->history_size < 0 ? 0 : (uint32_t)r->history_size;
}

/* ---- command connections (one per loop) ---- */

/* The replication ID: publishes and loads wait for it (see the top). */
static void on_info(hub_redis_router *r, redisReply *reply, void *priv) {
  cmd_state *cs = priv;
  redis_broker *rb = cs->rb;
  if (!reply) return; /* lost: on_cmd_down */
  if (!strcmp(cs->replid, "*")) {
    /* a cluster: read per shard inside the scripts */
  } else if (!reply_is(reply, REDIS_REPLY_STRING) ||
             hub_wire_replid(reply->str, reply->len, cs->replid) != 0) {
    dx_log_error("hub: redis: no replication ID from INFO replication (%s): a failover that "
                 "loses publications will not be noticed",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected answer");
    snprintf(cs->replid, sizeof cs->replid, "-");
  }
  if (!cs->up) {
    cs->up = true;
    rb->cmds_down--;
  }
  if (cs->index == 0) {
    rb->cmd0_up = true;
    rb->readd = true; /* Redis may have lost this node's presence: add it again now */
    rb->refresh_due = 0;
    char where[256];
    dx_log_info("hub: redis: connected to %s", hub_router_describe(r, where, sizeof where));
    pthread_mutex_lock(&rb->mu);
    hub_rb_reconcile(rb); /* loads that waited for the connection */
    pthread_mutex_unlock(&rb->mu);
  }
}

static void on_cmd_up(hub_redis_router *r, void *user) {
  cmd_state *cs = user;
  cs->replid[0] = '\0';
  hub_rb_load_scripts(cs->rb, r);
  if (hub_router_sharded(r)) {
    /* Each shard has its own: the scripts read it there ('*'). */
    snprintf(cs->replid, sizeof cs->replid, "*");
    on_info(r, &(redisReply){.type = REDIS_REPLY_STATUS}, cs);
    return;
  }
  const char *argv[] = {"INFO", "replication"};
  if (hub_router_command(r, NULL, 0, on_info, cs, 2, argv, NULL) != 0)
    dx_log_error("hub: redis: cannot ask for the replication ID");
}

static void on_cmd_down(hub_redis_router *r, const char *why, bool was_up, void *user) {
  cmd_state *cs = user;
  redis_broker *rb = cs->rb;
  cs->replid[0] = '\0';
  if (cs->up) {
    cs->up = false;
    rb->cmds_down++;
  }
  if (r == rb->cmd[0]) rb->cmd0_up = false;
  if (was_up) /* once per outage: the client logs the attempts, rate-limited */
    dx_log_error("hub: redis: connection lost (%s); publishes are refused until it is back", why);
  if (r != rb->cmd[0]) return;
  /* Loads that were out are lost: send them again once up. */
  pthread_mutex_lock(&rb->mu);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&rb->topics, &pos); it;
       it = hub_map_next(&rb->topics, it, &pos))
    ((rtopic *)it)->load_sent = false;
  pthread_mutex_unlock(&rb->mu);
}

static hub_redis_router *connect_redis(redis_broker *rb, hub_loop *hl, bool pubsub) {
  char name[48];
  snprintf(name, sizeof name, pubsub ? "redis subscriber" : "redis (loop %u)", hl->index);
  hub_router_opts o = {.url = &rb->url,
                       .name = name,
                       .pubsub = pubsub,
                       .on_up = pubsub ? hub_rb_on_sub_up : on_cmd_up,
                       .on_down = pubsub ? hub_rb_on_sub_down : on_cmd_down,
                       .on_push = pubsub ? hub_rb_on_push : NULL,
                       .user = pubsub ? (void *)rb : (void *)&rb->cs[hl->index]};
  if (!pubsub) rb->cs[hl->index] = (cmd_state){.rb = rb, .index = hl->index};
  return hub_router_new(hl->loop, &o);
}

/* ---- the broker's operations ---- */

static void rb_loop_start(hub_broker *b, hub_loop *hl) {
  redis_broker *rb = rb_of(b);
  if (hl->index >= HUB_MAX_LOOPS) {
    dx_log_error("hub: redis: loop %u has no connection (at most %d loops)", hl->index,
                 HUB_MAX_LOOPS);
    return;
  }
  rb->cmds_down++; /* until its command connection is up */
  rb->cmd[hl->index] = connect_redis(rb, hl, false);
  if (hl->index == 0) rb->sub = connect_redis(rb, hl, true);
  if (!rb->cmd[hl->index] || (hl->index == 0 && !rb->sub))
    dx_log_error("hub: redis: out of memory starting the connections of loop %u", hl->index);
}

static void rb_loop_stop(hub_broker *b, hub_loop *hl) {
  redis_broker *rb = rb_of(b);
  if (hl->index >= HUB_MAX_LOOPS) return;
  hub_router_free(rb->cmd[hl->index]);
  rb->cmd[hl->index] = NULL;
  cmd_state *cs = &rb->cs[hl->index];
  if (!cs->up) rb->cmds_down--; /* a stopped loop refuses nothing */
  cs->up = false;
  if (hl->index == 0) {
    hub_router_free(rb->sub);
    rb->sub = NULL;
    rb->sub_up = rb->cmd0_up = false;
  }
}

static void rb_tick(hub_broker *b, hub_loop *hl) {
  redis_broker *rb = rb_of(b);
  if (hl->index != 0) return;
  uint64_t now = hub_now_ms(hl);
  uint64_t mono = hub_rb_mono_ms();
  pthread_mutex_lock(&rb->mu);
  /* Subscribes that waited too long for Redis get an error. */
  size_t pos;
  for (hub_map_item *it = hub_map_first(&rb->topics, &pos); it;
       it = hub_map_next(&rb->topics, it, &pos)) {
    rtopic *t = (rtopic *)it;
    waiter **pw = &t->waiters;
    while (*pw) {
      waiter *w = *pw;
      if (mono - w->since_ms < WANT_TIMEOUT_MS) {
        pw = &w->next;
        continue;
      }
      *pw = w->next;
      w->status = HUB_BROKER_DOWN;
      hub_rb_post_waiter(rb, w);
    }
  }
  waiter *again = rb->unposted;
  rb->unposted = NULL;
  for (waiter *w = again, *next; w; w = next) {
    next = w->next;
    hub_rb_post_waiter(rb, w);
  }
  hub_rb_reconcile(rb);
  pthread_mutex_unlock(&rb->mu);
  if (now >= rb->refresh_due) { /* a third of the presence ttl */
    rb->refresh_due = now + rb->presence_ttl_ms / 3;
    bool readd = rb->readd;
    rb->readd = false;
    /* Every topic with presence entries here, subscribed or an HTTP
     * session's; the expired entries of others go too. */
    hub_topic_list tl;
    if (hub_core_topics(rb->hub->core, &tl) == 0) {
      for (size_t i = 0; i < tl.len; i++)
        hub_rb_refresh_presence(rb, tl.items[i].name, strlen(tl.items[i].name), readd);
      hub_topic_list_free(&tl);
    }
  }
}

static bool rb_up(hub_broker *b) {
  redis_broker *rb = rb_of(b);
  return rb->sub_up && rb->cmd0_up && rb->cmds_down == 0;
}

static void rb_free(hub_broker *b) {
  redis_broker *rb = rb_of(b);
  for (unsigned i = 0; i < HUB_MAX_LOOPS; i++) hub_router_free(rb->cmd[i]);
  hub_router_free(rb->sub);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&rb->topics, &pos), *next; it; it = next) {
    next = hub_map_next(&rb->topics, it, &pos);
    rtopic *t = (rtopic *)it;
    for (waiter *w = t->waiters, *wn; w; w = wn) {
      wn = w->next;
      w->done(w->ctx, HUB_BROKER_DOWN, NULL);
      free(w);
    }
    hub_rb_queue_clear(t);
    free(t);
  }
  for (waiter *w = rb->unposted, *wn; w; w = wn) { /* could not be posted (memory) */
    wn = w->next;
    w->done(w->ctx, HUB_BROKER_DOWN, NULL);
    free(w);
  }
  hub_map_free(&rb->topics);
  pthread_mutex_destroy(&rb->mu);
  for (int k = 0; k < NSCRIPTS; k++) free(rb->script[k]);
  free(rb);
}

static const hub_broker_ops redis_ops = {
    .name = "redis",
    .remote_events = true,
    .loop_start = rb_loop_start,
    .loop_stop = rb_loop_stop,
    .publish = hub_rb_publish,
    .want = hub_rb_want,
    .unwant = hub_rb_unwant,
    .history = hub_rb_history,
    .joined = hub_rb_joined,
    .left = hub_rb_left,
    .presence = hub_rb_presence,
    .tick = rb_tick,
    .up = rb_up,
    .free = rb_free,
};

hub_broker *hub_broker_redis_new(dx_hub *h, const char *url, const char *prefix, char *err,
                                 size_t errlen) {
  redis_broker *rb = calloc(1, sizeof *rb);
  if (!rb) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (hub_redis_url_parse(url, &rb->url, err, errlen) != 0) {
    free(rb);
    return NULL;
  }
  rb->b.ops = &redis_ops;
  rb->hub = h;
  snprintf(rb->prefix, sizeof rb->prefix, "%s", prefix && *prefix ? prefix : "duplex:");
  hub_rb_random_hex(rb->node_id, HUB_NODE_ID_LEN);
  pthread_mutex_init(&rb->mu, NULL); /* before anything that may rb_free */
  if (hub_rb_scripts_make(rb) != 0) {
    rb_free(&rb->b);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  rb->presence_ttl_ms = h->o.presence_ttl_ms > 0 ? (uint64_t)h->o.presence_ttl_ms : 30000;
  return &rb->b;
}
