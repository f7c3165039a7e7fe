/* hub — the Redis broker's publish: one run of the publish script on the
 * caller's loop's command connection numbers, retains and publishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/log.h"
#include "hub/broker_redis_internal.h"
#include "hub/topic_name.h"

typedef struct pub_ctx {
  hub_broker_done done;
  void *ctx;
} pub_ctx;

static void on_published(hub_redis_router *r, redisReply *reply, void *priv) {
  (void)r;
  pub_ctx *pc = priv;
  hub_position pos = {0};
  int status = HUB_BROKER_UNKNOWN;
  if (reply_is(reply, REDIS_REPLY_ARRAY) && reply->elements == 2 &&
      reply_is(reply->element[0], REDIS_REPLY_INTEGER) &&
      reply_is(reply->element[1], REDIS_REPLY_STRING)) {
    pos.offset = (uint64_t)reply->element[0]->integer;
    snprintf(pos.epoch, sizeof pos.epoch, "%s", reply->element[1]->str);
    status = 0;
  } else if (reply) {
    dx_log_error("hub: redis: publish refused: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected answer");
    status = HUB_BROKER_DOWN; /* it answered: nothing was done */
  }
  pc->done(pc->ctx, status, status ? NULL : &pos);
  free(pc);
}

void hub_rb_publish(hub_broker *b, hub_loop *hl, const hub_pub *p, hub_broker_done done,
                    void *ctx) {
  redis_broker *rb = rb_of(b);
  hub_redis_router *c = hl->index < HUB_MAX_LOOPS ? rb->cmd[hl->index] : NULL;
  const char *rid = c ? rb->cs[hl->index].replid : "";
  if (!c || !hub_router_up(c) || !*rid) return done(ctx, HUB_BROKER_DOWN, NULL);
  hub_blob *tail =
      hub_env_message_tail(p->topic, p->topic_len, p->data, p->b64, p->b64_len, p->from);
  pub_ctx *pc = malloc(sizeof *pc);
  if (!tail || !pc) {
    hub_blob_unref(tail);
    free(pc);
    return done(ctx, HUB_BROKER_OOM, NULL);
  }
  *pc = (pub_ctx){done, ctx};
  char kmeta[HUB_TOPIC_MAX + 80], kstream[HUB_TOPIC_MAX + 80], ch[HUB_TOPIC_MAX + 80];
  size_t lm = hub_rb_key(rb, kmeta, sizeof kmeta, p->topic, p->topic_len, ":m");
  size_t ls = hub_rb_key(rb, kstream, sizeof kstream, p->topic, p->topic_len, ":s");
  size_t lc = hub_rb_key(rb, ch, sizeof ch, p->topic, p->topic_len, "");
  char maxlen[16], ttl[24], now[24], skip[64], epoch_new[HUB_EPOCH_LEN + 1], meta_ttl[24];
  snprintf(maxlen, sizeof maxlen, "%u", hub_rb_topic_cap(rb->hub, p->topic, p->topic_len));
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)rb->hub->history_ttl_ms);
  snprintf(now, sizeof now, "%llu", (unsigned long long)hub_rb_wall_ms());
  snprintf(skip, sizeof skip, "%s:%llu", rb->node_id, (unsigned long long)p->skip_conn);
  snprintf(meta_ttl, sizeof meta_ttl, "%llu",
           (unsigned long long)(rb->hub->history_ttl_ms > META_TTL_MS ? rb->hub->history_ttl_ms
                                                                      : META_TTL_MS));
  hub_rb_random_hex(epoch_new, HUB_EPOCH_LEN);
  const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_PUBLISH],
                        "2",       kmeta,
                        kstream,   tail->data,
                        maxlen,    ttl,
                        epoch_new, ch,
                        skip,      now,
                        meta_ttl,  rid};
  size_t lens[] = {7,
                   40,
                   1,
                   lm,
                   ls,
                   tail->len,
                   strlen(maxlen),
                   strlen(ttl),
                   HUB_EPOCH_LEN,
                   lc,
                   strlen(skip),
                   strlen(now),
                   strlen(meta_ttl),
                   strlen(rid)};
  int rc = hub_router_command(c, kmeta, lm, on_published, pc, 14, argv, lens);
  hub_blob_unref(tail);
  if (rc != 0) {
    free(pc);
    done(ctx, HUB_BROKER_DOWN, NULL);
  }
}
