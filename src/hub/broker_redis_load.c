/* hub — the Redis broker reading a topic's position and retained
 * publications (the load script): into the core's mirror when the topic
 * goes live on loop 0 or falls out of step, or as the answer to a history
 * query for a topic that is not live here. A load that ends posts the
 * waiting subscribes' answers to their loops, and applies the messages
 * queued while it was out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/log.h"
#include "hub/broker_redis_internal.h"
#include "hub/topic_name.h"

#define LOAD_MAX 100000 /* publications one load brings at most */

/* ---- completions on the caller's loop ---- */

static void run_waiter(dx_loop *loop, void *arg) {
  (void)loop;
  waiter *w = arg;
  w->done(w->ctx, w->status, NULL);
  free(w);
}

/* Post a waiter's completion to its loop (under mu). Out of memory: it is
 * kept and posted again by the next tick — never completed here, under mu
 * and maybe on another loop's thread. */
void hub_rb_post_waiter(redis_broker *rb, waiter *w) {
  if (dx_loop_post(w->hl->loop, run_waiter, w) == 0) return;
  dx_log_error("hub: cannot queue a subscribe's answer to loop %u (out of memory): retrying",
               w->hl->index);
  w->next = rb->unposted;
  rb->unposted = w;
}

/* Post each waiter's completion to its loop (under mu). */
static void release_waiters(redis_broker *rb, rtopic *t, int status) {
  for (waiter *w = t->waiters, *next; w; w = next) {
    next = w->next;
    w->status = status;
    hub_rb_post_waiter(rb, w);
  }
  t->waiters = NULL;
}

void hub_rb_queue_clear(rtopic *t) {
  for (queued *m = t->q, *next; m; m = next) {
    next = m->next;
    free(m);
  }
  t->q = t->q_tail = NULL;
}

/* ---- loading a topic into the core (loop 0) ---- */

static hub_blob *gap_env(const char *topic, size_t len, const hub_position *pos, const char *why) {
  return hub_env_gap(topic, len, pos, why);
}

/* Monotonic time of the loop for a wall-clock time of Redis's entries. */
static uint64_t local_time(hub_loop *hl, uint64_t wall) {
  uint64_t now = hub_now_ms(hl), w = hub_rb_wall_ms();
  return wall >= w ? now : now > w - wall ? now - (w - wall) : 0;
}

int hub_rb_apply_msg(redis_broker *rb, hub_loop *hl, const char *topic, size_t len,
                     const char *epoch, uint64_t offset, uint64_t time_ms, uint64_t skip,
                     const char *tail, size_t tail_len) {
  hub_blob *env = hub_env_message_join(topic, len, offset, tail, tail_len);
  if (!env) return -1;
  int rc = hub_core_apply(rb->hub->core, topic, len, epoch, offset, env, skip,
                          local_time(hl, time_ms), hub_now_ms(hl));
  hub_blob_unref(env);
  return rc;
}

typedef struct load_ctx {
  redis_broker *rb;
  uint32_t gen; /* the topic's load_gen when sent */
  size_t len;
  char topic[];
} load_ctx;

static uint64_t entry_offset(const redisReply *id) {
  return reply_is(id, REDIS_REPLY_STRING) ? strtoull(id->str, NULL, 10) : 0;
}

/* An entry's fields d and t. */
static bool entry_fields(const redisReply *e, const redisReply **d, uint64_t *t) {
  *d = NULL;
  *t = 0;
  if (!reply_is(e, REDIS_REPLY_ARRAY) || e->elements != 2 ||
      !reply_is(e->element[1], REDIS_REPLY_ARRAY))
    return false;
  const redisReply *f = e->element[1];
  for (size_t i = 0; i + 1 < f->elements; i += 2) {
    if (!reply_is(f->element[i], REDIS_REPLY_STRING)) continue;
    if (!strcmp(f->element[i]->str, "d"))
      *d = f->element[i + 1];
    else if (!strcmp(f->element[i]->str, "t") && reply_is(f->element[i + 1], REDIS_REPLY_STRING))
      *t = strtoull(f->element[i + 1]->str, NULL, 10);
  }
  return reply_is(*d, REDIS_REPLY_STRING);
}

/* The load script's answer as sync entries (oldest first); envelopes are
 * references the caller drops. Returns the count, or -1 when malformed. */
static long load_entries(const redisReply *r, const char *topic, size_t len, hub_loop *hl,
                         hub_sync_entry **out, char epoch[HUB_EPOCH_LEN + 1], uint64_t *offset) {
  *out = NULL;
  if (!reply_is(r, REDIS_REPLY_ARRAY) || r->elements != 5 ||
      !reply_is(r->element[0], REDIS_REPLY_STRING) || r->element[0]->len > HUB_EPOCH_LEN ||
      !reply_is(r->element[1], REDIS_REPLY_INTEGER) || !reply_is(r->element[2], REDIS_REPLY_ARRAY))
    return -1;
  snprintf(epoch, HUB_EPOCH_LEN + 1, "%s", r->element[0]->str);
  *offset = (uint64_t)r->element[1]->integer;
  const redisReply *a = r->element[2];
  bool ascending = reply_is(r->element[3], REDIS_REPLY_INTEGER) && r->element[3]->integer == 1;
  if (!a->elements) return 0;
  hub_sync_entry *e = calloc(a->elements, sizeof *e);
  if (!e) return -1;
  size_t n = 0;
  for (size_t k = 0; k < a->elements; k++) {
    const redisReply *it = a->element[ascending ? k : a->elements - 1 - k];
    const redisReply *d;
    uint64_t t;
    if (!entry_fields(it, &d, &t)) continue;
    hub_blob *env = hub_env_message_join(topic, len, entry_offset(it->element[0]), d->str, d->len);
    if (!env) continue; /* out of memory: the run breaks there (a gap, not a lie) */
    e[n++] = (hub_sync_entry){entry_offset(it->element[0]), local_time(hl, t), env};
  }
  *out = e;
  return (long)n;
}

static void entries_free(hub_sync_entry *e, long n) {
  for (long i = 0; i < n; i++) hub_blob_unref(e[i].env);
  free(e);
}

static void on_loaded(hub_redis_router *r, redisReply *reply, void *priv) {
  (void)r;
  load_ctx *lc = priv;
  redis_broker *rb = lc->rb;
  hub_loop *hl = rb->hub->loops[0];
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, lc->topic, lc->len);
  if (!t || t->state != T_LOADING || t->load_gen != lc->gen)
    goto out; /* unsubscribed meanwhile, or an older load (before a resubscribe) */
  t->load_sent = false;
  char epoch[HUB_EPOCH_LEN + 1];
  uint64_t offset;
  hub_sync_entry *e;
  long n = reply ? load_entries(reply, lc->topic, lc->len, hl, &e, epoch, &offset) : -1;
  if (n < 0) {
    if (reply)
      dx_log_error("hub: redis: unexpected answer loading '%.*s'%s%s", (int)lc->len, lc->topic,
                   reply->type == REDIS_REPLY_ERROR ? ": " : "",
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    goto out; /* tick sends it again */
  }
  int rc = hub_core_sync(rb->hub->core, lc->topic, lc->len, epoch, offset, e, (size_t)n, gap_env,
                         hub_now_ms(hl));
  entries_free(e, n);
  if (rc != 0) {
    dx_log_error("hub: out of memory loading '%.*s' from redis", (int)lc->len, lc->topic);
    goto out;
  }
  /* What came meanwhile, in order; a message that still does not follow on
   * means more was missed: load again. */
  bool missed = t->reload; /* a message that could not be queued (memory) */
  t->reload = false;
  for (queued *m = t->q; m; m = m->next)
    if (hub_rb_apply_msg(rb, hl, lc->topic, lc->len, m->epoch, m->offset, m->time_ms, m->skip,
                         m->tail, m->len) == 2)
      t->reload = true;
  hub_rb_queue_clear(t);
  if (t->reload || missed) {
    hub_rb_send_load(rb, t);
    goto out;
  }
  t->state = T_LIVE;
  release_waiters(rb, t, 0);
out:
  pthread_mutex_unlock(&rb->mu);
  free(lc);
}

/* Run the load script (broker_redis_scripts.c) for a topic on `c`, whose
 * replication ID is `rid`: the entries after offset `after` if the stream
 * is still in `epoch`, else (or with `after` -1) the newest `count`. 0, or
 * -1 when it could not be sent (cb is not called). */
static int eval_load(redis_broker *rb, hub_redis_router *c, const char *rid, const char *topic,
                     size_t len, long long after, const char *epoch, unsigned count,
                     hub_router_reply_fn cb, void *priv) {
  char kmeta[HUB_TOPIC_MAX + 80], kstream[HUB_TOPIC_MAX + 80];
  size_t lm = hub_rb_key(rb, kmeta, sizeof kmeta, topic, len, ":m");
  size_t ls = hub_rb_key(rb, kstream, sizeof kstream, topic, len, ":s");
  char epoch_new[HUB_EPOCH_LEN + 1], ttl[24], after_s[24], count_s[24];
  hub_rb_random_hex(epoch_new, HUB_EPOCH_LEN);
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)META_TTL_MS);
  snprintf(after_s, sizeof after_s, "%lld", after);
  snprintf(count_s, sizeof count_s, "%u", count);
  const char *argv[] = {
      "EVALSHA", rb->sha[SCRIPT_LOAD], "2", kmeta, kstream, epoch_new, ttl, after_s, epoch, count_s,
      rid};
  size_t lens[] = {7,
                   40,
                   1,
                   lm,
                   ls,
                   HUB_EPOCH_LEN,
                   strlen(ttl),
                   strlen(after_s),
                   strlen(epoch),
                   strlen(count_s),
                   strlen(rid)};
  return hub_router_command(c, kmeta, lm, cb, priv, 11, argv, lens);
}

/* Send the load for t (under mu, on loop 0). When the command connection
 * is down, the tick sends it later. */
void hub_rb_send_load(redis_broker *rb, rtopic *t) {
  t->state = T_LOADING;
  t->load_sent = true;
  t->load_gen++;
  t->reload = false; /* this load covers whatever was missed before it */
  hub_redis_router *c = rb->cmd[0];
  const char *topic = t->item.key;
  size_t len = t->item.key_len;
  /* A topic the core already mirrors loads what came after its position. */
  hub_position pos = {0};
  bool have = hub_core_position(rb->hub->core, topic, len, &pos);
  if (have) atomic_fetch_add_explicit(&rb->b.resyncs, 1, memory_order_relaxed);
  const char *rid = rb->cs[0].replid;
  load_ctx *lc = malloc(sizeof *lc + len);
  if (lc) {
    lc->rb = rb;
    lc->gen = t->load_gen;
    lc->len = len;
    memcpy(lc->topic, topic, len);
  }
  if (!lc || !c || !*rid ||
      eval_load(rb, c, rid, topic, len, have ? (long long)pos.offset : -1, pos.epoch,
                have ? LOAD_MAX : hub_rb_topic_cap(rb->hub, topic, len), on_loaded, lc) != 0) {
    free(lc);
    t->load_sent = false; /* the tick tries again */
  }
}

/* ---- history queries for topics not live here ---- */

typedef struct history_ctx {
  hub_history_done done;
  void *ctx;
  hub_loop *hl;
  hub_history_query q;
} history_ctx;

/* Answer a history query from the load script's answer, as the core
 * answers from its ring (see hub_core_history). */
static void on_history(hub_redis_router *r, redisReply *reply, void *priv) {
  (void)r;
  history_ctx *hc = priv;
  const hub_history_query *q = &hc->q;
  hub_history_result res = {.status = HUB_BROKER_UNKNOWN, .complete = true};
  hub_sync_entry *e = NULL;
  long n = reply ? load_entries(reply, q->topic, q->topic_len, hc->hl, &e, res.pos.epoch,
                                &res.pos.offset)
                 : -1;
  /* Publications older than --history-ttl are not history any more (the
   * stream expires whole; its oldest entries may be older): as the core. */
  long lo = 0;
  uint64_t ttl = hc->hl->hub->history_ttl_ms, now = hub_now_ms(hc->hl);
  while (ttl && lo < n && now > ttl && e[lo].time_ms < now - ttl) lo++;
  if (n >= 0) {
    res.status = 0;
    if (q->has_since && (!q->since_epoch || strcmp(q->since_epoch, res.pos.epoch) != 0)) {
      res.status = 1;
    } else {
      long from = lo;
      if (q->has_since) {
        res.complete =
            q->since_offset >= res.pos.offset || (n > lo && e[lo].offset == q->since_offset + 1);
      } else {
        from = n - lo > (long)q->limit ? n - (long)q->limit : lo;
        /* as the core: nothing since the topic's start is lost */
        long long first =
            reply->element[4]->type == REDIS_REPLY_INTEGER ? reply->element[4]->integer : 0;
        if (lo) first = lo < n ? (long long)e[lo].offset : 0;
        res.complete = first ? first == 1 : res.pos.offset == 0 && !lo;
      }
      long take = n - from;
      if (q->has_since && take > (long)q->limit) take = q->limit;
      if (take > 0 && (res.pubs.envs = malloc((size_t)take * sizeof *res.pubs.envs))) {
        for (long i = 0; i < take; i++) res.pubs.envs[i] = hub_blob_ref(e[from + i].env);
        res.pubs.len = (uint32_t)take;
      } else if (take > 0) {
        res.status = HUB_BROKER_OOM;
      }
    }
  } else if (reply) {
    res.status = HUB_BROKER_DOWN;
  }
  entries_free(e, n < 0 ? 0 : n);
  hc->done(hc->ctx, &res);
  hub_replay_free(&res.pubs);
  free(hc);
}

void hub_rb_history(hub_broker *b, hub_loop *hl, const hub_history_query *q, hub_history_done done,
                    void *ctx) {
  redis_broker *rb = rb_of(b);
  /* A topic live here: the core mirrors Redis, answer from it. */
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, q->topic, q->topic_len);
  bool live = t && t->state == T_LIVE;
  pthread_mutex_unlock(&rb->mu);
  hub_history_result res = {0};
  if (live) {
    res.status = hub_core_history(rb->hub->core, q->topic, q->topic_len, q->has_since,
                                  q->since_offset, q->since_epoch, q->limit, hub_now_ms(hl),
                                  &res.pos, &res.pubs, &res.complete);
    done(ctx, &res);
    hub_replay_free(&res.pubs);
    return;
  }
  hub_redis_router *c = hl->index < HUB_MAX_LOOPS ? rb->cmd[hl->index] : NULL;
  const char *rid = c ? rb->cs[hl->index].replid : "";
  history_ctx *hc = malloc(sizeof *hc);
  if (!c || !hub_router_up(c) || !*rid || !hc) {
    free(hc);
    res.status = hc ? HUB_BROKER_DOWN : HUB_BROKER_OOM;
    return done(ctx, &res);
  }
  *hc = (history_ctx){done, ctx, hl, *q};
  /* With since: the first `limit` after it; without: the newest `limit`
   * (the script also returns the stream's first offset, which tells
   * whether the topic's start is in). */
  if (eval_load(rb, c, rid, q->topic, q->topic_len, q->has_since ? (long long)q->since_offset : -1,
                q->since_epoch ? q->since_epoch : "", q->limit, on_history, hc) != 0) {
    free(hc);
    res.status = HUB_BROKER_DOWN;
    done(ctx, &res);
  }
}
