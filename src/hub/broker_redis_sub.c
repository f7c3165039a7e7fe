/* hub — the Redis broker's interest in topics: want/unwant count local
 * subscriptions, loop 0 reconciles them with its subscriber connection
 * (SUBSCRIBE, then a load, then live), and the messages that arrive there
 * go to the core (or wait for the load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/log.h"
#include "hub/broker_redis_internal.h"
#include "hub/topic_name.h"

/* ---- the subscriber connection (loop 0) ---- */

typedef struct sub_ctx {
  redis_broker *rb;
  size_t len;
  char topic[];
} sub_ctx;

static void on_subscribed(hub_redis_router *r, redisReply *reply, void *priv) {
  (void)r;
  sub_ctx *sc = priv;
  redis_broker *rb = sc->rb;
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, sc->topic, sc->len);
  if (t && t->state == T_SUBSCRIBING && reply && reply->type == REDIS_REPLY_ARRAY) {
    hub_rb_send_load(rb, t);
  } else if (t && t->state == T_SUBSCRIBING) { /* refused (a moving slot) or lost: retry */
    if (reply && reply->type == REDIS_REPLY_ERROR)
      dx_log_info("hub: redis: subscribing to '%.*s' failed (%s): retrying", (int)sc->len,
                  sc->topic, reply->str);
    t->state = T_IDLE; /* the next tick subscribes again */
  }
  pthread_mutex_unlock(&rb->mu);
  free(sc);
}

/* 0, or -1 when it could not be sent (priv is freed). */
static int sub_command(redis_broker *rb, const char *verb, const char *topic, size_t len,
                       hub_router_reply_fn cb, void *priv) {
  char ch[HUB_TOPIC_MAX + 80];
  size_t lc = hub_rb_key(rb, ch, sizeof ch, topic, len, "");
  const char *argv[] = {verb, ch};
  size_t lens[] = {strlen(verb), lc};
  if (hub_router_command(rb->sub, ch, lc, cb, priv, 2, argv, lens) == 0) return 0;
  free(priv);
  return -1;
}

static void subscribe_topic(redis_broker *rb, rtopic *t) {
  sub_ctx *sc = malloc(sizeof *sc + t->item.key_len);
  if (!sc) return;
  sc->rb = rb;
  sc->len = t->item.key_len;
  memcpy(sc->topic, t->item.key, t->item.key_len);
  /* Not sent (its node is not up, or a cluster's slot map is being asked
   * again): the next tick tries again. */
  t->state = sub_command(rb, hub_router_sharded(rb->sub) ? "SSUBSCRIBE" : "SUBSCRIBE", t->item.key,
                         t->item.key_len, on_subscribed, sc) == 0
                 ? T_SUBSCRIBING
                 : T_IDLE;
}

static void drop_topic(redis_broker *rb, rtopic *t) {
  hub_map_del(&rb->topics, &t->item);
  hub_rb_queue_clear(t);
  hub_core_forget(rb->hub->core, t->item.key, t->item.key_len);
  free(t);
}

/* Bring every topic's subscription in line with its interest (loop 0). */
void hub_rb_reconcile(redis_broker *rb) {
  bool up = hub_router_up(rb->sub);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&rb->topics, &pos), *next; it; it = next) {
    next = hub_map_next(&rb->topics, it, &pos);
    rtopic *t = (rtopic *)it;
    if (!t->interest) {
      if (up && t->state != T_IDLE)
        sub_command(rb, hub_router_sharded(rb->sub) ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", it->key,
                    it->key_len, NULL, NULL);
      drop_topic(rb, t);
    } else if (t->state == T_IDLE && up) {
      subscribe_topic(rb, t);
    } else if (t->state == T_LOADING && !t->load_sent && hub_router_up(rb->cmd[0])) {
      hub_rb_send_load(rb, t);
    }
  }
}

static void run_kick(dx_loop *loop, void *arg) {
  (void)loop;
  redis_broker *rb = arg;
  pthread_mutex_lock(&rb->mu);
  rb->kick_posted = false;
  hub_rb_reconcile(rb);
  pthread_mutex_unlock(&rb->mu);
}

/* Have loop 0 reconcile soon (under mu). */
static void kick(redis_broker *rb) {
  if (rb->kick_posted || !rb->hub->nloops) return;
  if (dx_loop_post(rb->hub->loops[0]->loop, run_kick, rb) == 0) rb->kick_posted = true;
}

/* A cluster moved the slot of a topic's shard channel: Redis dropped the
 * subscription. Subscribe again (the router sends it to the new owner)
 * and load the topic, filling what passed meanwhile. */
static void slot_moved(redis_broker *rb, const redisReply *ch) {
  hub_wire_msg w;
  if (hub_wire_parse(rb->prefix, ch->str, ch->len, "- 0 0 -\n", 8, &w) != 0) return;
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, w.topic, w.topic_len);
  if (t && t->state != T_IDLE) {
    dx_log_info("hub: redis: the slot of '%.*s' moved: subscribing again", (int)w.topic_len,
                w.topic);
    t->state = T_IDLE;
    t->load_sent = false;
    hub_rb_queue_clear(t);
    hub_rb_reconcile(rb);
  }
  pthread_mutex_unlock(&rb->mu);
}

/* "EPOCH OFFSET TIME SKIP\n" + tail, from channel PREFIX{T}. */
void hub_rb_on_push(hub_redis_router *r, redisReply *msg, void *user) {
  (void)r;
  redis_broker *rb = user;
  if (!reply_is(msg, REDIS_REPLY_ARRAY) || msg->elements != 3 ||
      !reply_is(msg->element[0], REDIS_REPLY_STRING) ||
      !reply_is(msg->element[1], REDIS_REPLY_STRING))
    return;
  const char *kind = msg->element[0]->str;
  if (!strcmp(kind, "sunsubscribe")) return slot_moved(rb, msg->element[1]);
  if ((strcmp(kind, "message") && strcmp(kind, "smessage")) ||
      !reply_is(msg->element[2], REDIS_REPLY_STRING))
    return;
  const redisReply *ch = msg->element[1], *body = msg->element[2];
  hub_wire_msg w;
  if (hub_wire_parse(rb->prefix, ch->str, ch->len, body->str, body->len, &w) != 0) {
    dx_log_error("hub: redis: a malformed message on %.*s: ignored (does another program "
                 "publish there? see --redis-prefix)",
                 (int)ch->len, ch->str);
    return;
  }
  const char *topic = w.topic, *epoch = w.epoch, *tail = w.body;
  size_t len = w.topic_len, tail_len = w.body_len;
  unsigned long long offset = w.offset, time_ms = w.time_ms;
  uint64_t skip_conn = !strcmp(w.node, rb->node_id) ? w.conn : 0;
  hub_loop *hl = rb->hub->loops[0];
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, topic, len);
  if (offset == 0) { /* a join or leave: the whole envelope follows */
    hub_blob *env = t && t->state >= T_LOADING ? hub_blob_new(tail, tail_len) : NULL;
    if (env) hub_core_event(rb->hub->core, topic, len, env, skip_conn);
    hub_blob_unref(env);
    pthread_mutex_unlock(&rb->mu);
    return;
  }
  if (t && t->state == T_LIVE) {
    if (hub_rb_apply_msg(rb, hl, topic, len, epoch, offset, time_ms, skip_conn, tail, tail_len) ==
        2) {
      dx_log_info("hub: redis: '%.*s' is out of step (offset %llu, epoch %s): loading it again",
                  (int)len, topic, offset, epoch);
      hub_rb_send_load(rb, t); /* now T_LOADING: this message waits in the queue */
    }
  }
  if (t && t->state == T_LOADING) { /* keep it for after the load */
    queued *m = malloc(sizeof *m + tail_len);
    if (m) {
      *m = (queued){NULL, offset, time_ms, skip_conn, "", tail_len};
      snprintf(m->epoch, sizeof m->epoch, "%s", epoch);
      memcpy(m->tail, tail, tail_len);
      if (t->q_tail)
        t->q_tail->next = m;
      else
        t->q = m;
      t->q_tail = m;
    } else {
      t->reload = true;
    }
  }
  pthread_mutex_unlock(&rb->mu);
}

void hub_rb_on_sub_up(hub_redis_router *r, void *user) {
  (void)r;
  redis_broker *rb = user;
  rb->sub_up = true;
  dx_log_info("hub: redis: subscriber connection up");
  pthread_mutex_lock(&rb->mu);
  hub_rb_reconcile(rb);
  pthread_mutex_unlock(&rb->mu);
}

void hub_rb_on_sub_down(hub_redis_router *r, const char *why, bool was_up, void *user) {
  (void)r;
  redis_broker *rb = user;
  rb->sub_up = false;
  if (!was_up) return;
  dx_log_error("hub: redis: subscriber connection lost (%s): local connections go on; "
               "topics resume from Redis when it is back",
               why);
  /* Every topic subscribes and loads again (filling from the stream). */
  pthread_mutex_lock(&rb->mu);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&rb->topics, &pos); it;
       it = hub_map_next(&rb->topics, it, &pos)) {
    rtopic *t = (rtopic *)it;
    t->state = T_IDLE;
    t->load_sent = false;
    hub_rb_queue_clear(t);
  }
  pthread_mutex_unlock(&rb->mu);
}

/* ---- interest: the broker's want and unwant (any loop) ---- */

void hub_rb_want(hub_broker *b, hub_loop *hl, const char *topic, size_t len, hub_broker_done done,
                 void *ctx) {
  redis_broker *rb = rb_of(b);
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, topic, len);
  if (!t && (t = calloc(1, sizeof *t + len + 1))) {
    memcpy((char *)(t + 1), topic, len);
    t->item.key = (char *)(t + 1);
    t->item.key_len = len;
    hub_map_put(&rb->topics, &t->item);
  }
  /* Counted whatever happens: the caller's unwant balances it. */
  if (t) t->interest++;
  bool live = t && t->state == T_LIVE;
  waiter *w = t && !live ? malloc(sizeof *w) : NULL;
  if (w) {
    *w = (waiter){t->waiters, hl, done, ctx, hub_rb_mono_ms(), 0};
    t->waiters = w;
    kick(rb);
  }
  pthread_mutex_unlock(&rb->mu);
  if (live)
    done(ctx, 0, NULL);
  else if (!w)
    done(ctx, HUB_BROKER_OOM, NULL);
}

void hub_rb_unwant(hub_broker *b, hub_loop *hl, const char *topic, size_t len) {
  (void)hl;
  redis_broker *rb = rb_of(b);
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, topic, len);
  if (t && t->interest && --t->interest == 0) kick(rb);
  pthread_mutex_unlock(&rb->mu);
}
