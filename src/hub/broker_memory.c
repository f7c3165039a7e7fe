/* The embedded broker (see broker.h): every operation is the core's, done
 * before it returns. */
#include <stdlib.h>

#include "hub/broker.h"
#include "hub/hub_internal.h"

static hub_blob *make_env(uint64_t offset, void *ctx) { return hub_pub_envelope(ctx, offset); }

static void mem_publish(hub_broker *b, hub_loop *hl, const hub_pub *p, hub_broker_done done,
                        void *ctx) {
  (void)b;
  hub_position pos;
  int rc = hub_core_publish(hl->hub->core, p->topic, p->topic_len, make_env, (void *)p,
                            p->skip_conn, hub_now_ms(hl), &pos);
  done(ctx, rc ? HUB_BROKER_OOM : 0, rc ? NULL : &pos);
}

static void mem_want(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                     hub_broker_done done, void *ctx) {
  (void)b, (void)hl, (void)topic, (void)len;
  done(ctx, 0, NULL);
}

static void mem_unwant(hub_broker *b, hub_loop *hl, const char *topic, size_t len) {
  (void)b, (void)hl, (void)topic, (void)len;
}

static void mem_history(hub_broker *b, hub_loop *hl, const hub_history_query *q,
                        hub_history_done done, void *ctx) {
  (void)b;
  hub_history_result r = {0};
  r.status =
      hub_core_history(hl->hub->core, q->topic, q->topic_len, q->has_since, q->since_offset,
                       q->since_epoch, q->limit, hub_now_ms(hl), &r.pos, &r.pubs, &r.complete);
  done(ctx, &r);
  hub_replay_free(&r.pubs);
}

static void mem_joined(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                       const hub_who *who, hub_blob *env) {
  (void)b, (void)hl, (void)topic, (void)len, (void)who, (void)env;
}

static void mem_left(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                     const hub_who *who) {
  (void)b, (void)hl, (void)topic, (void)len, (void)who;
}

static void mem_presence(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                         hub_presence_done done, void *ctx) {
  (void)b;
  hub_presence_list l;
  int rc = hub_core_presence(hl->hub->core, topic, len, &l);
  done(ctx, rc ? HUB_BROKER_OOM : 0, &l);
  hub_presence_list_free(&l);
}

static void mem_nothing(hub_broker *b, hub_loop *hl) { (void)b, (void)hl; }
static bool mem_up(hub_broker *b) { return (void)b, true; }
static void mem_free(hub_broker *b) { free(b); }

static const hub_broker_ops memory_ops = {
    .name = "memory",
    .loop_start = mem_nothing,
    .loop_stop = mem_nothing,
    .publish = mem_publish,
    .want = mem_want,
    .unwant = mem_unwant,
    .history = mem_history,
    .joined = mem_joined,
    .left = mem_left,
    .presence = mem_presence,
    .tick = mem_nothing,
    .up = mem_up,
    .free = mem_free,
};

hub_broker *hub_broker_memory_new(void) {
  hub_broker *b = calloc(1, sizeof *b);
  if (b) b->ops = &memory_ops;
  return b;
}
