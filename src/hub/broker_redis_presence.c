/* hub — the Redis broker's presence: entries in the hash PREFIX{T}:p
 * (see the scripts in broker_redis_scripts.c), joins and leaves told on the
 * topic's channel, this node's entries kept alive by the tick's refresh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/broker_redis_internal.h"
#include "hub/topic_name.h"

/* "- 0 TIME NODE:CONN\n" into buf: the head of an event message. */
static int event_head(const redis_broker *rb, char *buf, size_t cap, uint64_t conn) {
  return hub_wire_event_head(buf, cap, hub_rb_wall_ms(), rb->node_id, conn);
}

/* The stored value of a presence entry: "EXPIRY\nLEAVE\nITEM"; malloc'd. */
static char *presence_value(const redis_broker *rb, const char *topic, size_t len,
                            const char *client, const char *user, const char *info,
                            size_t *out_len) {
  hub_blob *leave = hub_env_presence("leave", topic, len, client, user, NULL);
  json_t *item = json_pack("{s:s,s:s}", "client", client, "user", user ? user : "");
  if (item && info) json_object_set_new(item, "info", json_loads(info, JSON_DECODE_ANY, NULL));
  char *itext = item ? json_dumps(item, JSON_COMPACT) : NULL;
  json_decref(item);
  char *v = NULL;
  if (leave && itext) {
    size_t n = 24 + leave->len + strlen(itext);
    v = malloc(n);
    int k = v ? snprintf(v, n, "%llu\n%s\n%s",
                         (unsigned long long)(hub_rb_wall_ms() + rb->presence_ttl_ms), leave->data,
                         itext)
              : -1;
    if (k < 0) {
      free(v);
      v = NULL;
    } else {
      *out_len = (size_t)k;
    }
  }
  hub_blob_unref(leave);
  free(itext);
  return v;
}

/* The command connection of hl, or of the loop this thread runs when hl
 * is NULL; NULL when there is none or it is down. */
static hub_redis_router *loop_conn(redis_broker *rb, hub_loop *hl) {
  for (unsigned i = 0; !hl && i < rb->hub->nloops; i++)
    if (dx_loop_on_thread(rb->hub->loops[i]->loop)) hl = rb->hub->loops[i];
  hub_redis_router *c = hl && hl->index < HUB_MAX_LOOPS ? rb->cmd[hl->index] : NULL;
  return c && hub_router_up(c) ? c : NULL;
}

void hub_rb_joined(hub_broker *b, hub_loop *hl, const char *topic, size_t len, const hub_who *who,
                   hub_blob *join_env) {
  redis_broker *rb = rb_of(b);
  hub_redis_router *c = loop_conn(rb, hl);
  if (!c) return; /* the refresh adds it when Redis is back; the join is not told */
  size_t vlen;
  char *value = presence_value(rb, topic, len, who->client, who->user, who->info, &vlen);
  char head[96];
  int hn = event_head(rb, head, sizeof head, who->conn);
  char *msg = value ? malloc((size_t)hn + join_env->len) : NULL;
  if (msg) {
    memcpy(msg, head, (size_t)hn);
    memcpy(msg + hn, join_env->data, join_env->len);
    char kp[HUB_TOPIC_MAX + 80], ch[HUB_TOPIC_MAX + 80], ttl[24];
    size_t lp = hub_rb_key(rb, kp, sizeof kp, topic, len, ":p");
    size_t lc = hub_rb_key(rb, ch, sizeof ch, topic, len, "");
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)rb->presence_ttl_ms);
    const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_JOIN], "1", kp, who->client, value, ttl, ch,
                          msg};
    size_t lens[] = {
        7, 40, 1, lp, strlen(who->client), vlen, strlen(ttl), lc, (size_t)hn + join_env->len};
    hub_router_command(c, kp, lp, NULL, NULL, 9, argv, lens);
  }
  free(msg);
  free(value);
}

void hub_rb_left(hub_broker *b, hub_loop *hl, const char *topic, size_t len, const hub_who *who) {
  redis_broker *rb = rb_of(b);
  hub_redis_router *c = loop_conn(rb, hl);
  if (!c) return; /* the entry expires; a node's refresh tells the leave */
  hub_blob *leave = hub_env_presence("leave", topic, len, who->client, who->user, NULL);
  char head[96];
  int hn = event_head(rb, head, sizeof head, who->conn);
  char *msg = leave ? malloc((size_t)hn + leave->len) : NULL;
  if (msg) {
    memcpy(msg, head, (size_t)hn);
    memcpy(msg + hn, leave->data, leave->len);
    char kp[HUB_TOPIC_MAX + 80], ch[HUB_TOPIC_MAX + 80];
    size_t lp = hub_rb_key(rb, kp, sizeof kp, topic, len, ":p");
    size_t lc = hub_rb_key(rb, ch, sizeof ch, topic, len, "");
    const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_LEAVE], "1", kp, who->client, ch, msg};
    size_t lens[] = {7, 40, 1, lp, strlen(who->client), lc, (size_t)hn + leave->len};
    hub_router_command(c, kp, lp, NULL, NULL, 7, argv, lens);
  }
  free(msg);
  hub_blob_unref(leave);
}

/* Push on the expiry of this node's entries in a live topic, and let
 * Redis drop (and tell the leave of) the entries of nodes that are gone. */
void hub_rb_refresh_presence(redis_broker *rb, const char *topic, size_t len, bool readd) {
  hub_redis_router *c = rb->cmd[0];
  hub_presence_list l;
  if (!c || !hub_router_up(c) || hub_core_presence(rb->hub->core, topic, len, &l)) return;
  if (!l.len) return hub_presence_list_free(&l);
  size_t argc = 10 + 2 * l.len;
  const char **argv = calloc(argc, sizeof *argv);
  size_t *lens = calloc(argc, sizeof *lens);
  char **values = calloc(l.len + 1, sizeof *values);
  char kp[HUB_TOPIC_MAX + 80], ch[HUB_TOPIC_MAX + 80], now[24], ttl[24], head[96];
  size_t lp = hub_rb_key(rb, kp, sizeof kp, topic, len, ":p");
  size_t lc = hub_rb_key(rb, ch, sizeof ch, topic, len, "");
  snprintf(now, sizeof now, "%llu", (unsigned long long)hub_rb_wall_ms());
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)rb->presence_ttl_ms);
  int hn = event_head(rb, head, sizeof head, 0);
  bool ok = argv && lens && values;
  if (ok) {
    const char *mode = readd ? "add" : "extend";
    const char *fixed[] = {"EVALSHA", rb->sha[SCRIPT_REFRESH], "1", kp, now, ttl, ch, head, mode};
    size_t flens[] = {7, 40, 1, lp, strlen(now), strlen(ttl), lc, (size_t)hn, strlen(mode)};
    memcpy(argv, fixed, sizeof fixed);
    memcpy(lens, flens, sizeof flens);
    size_t k = 9;
    for (size_t i = 0; i < l.len; i++) {
      size_t vlen;
      values[i] = presence_value(rb, topic, len, l.items[i].client, l.items[i].user,
                                 l.items[i].info, &vlen);
      if (!values[i]) continue;
      argv[k] = l.items[i].client;
      lens[k++] = strlen(l.items[i].client);
      argv[k] = values[i];
      lens[k++] = vlen;
    }
    hub_router_command(c, kp, lp, NULL, NULL, (int)k, argv, lens);
  }
  for (size_t i = 0; values && i < l.len; i++) free(values[i]);
  free(values);
  free(argv);
  free(lens);
  hub_presence_list_free(&l);
}

typedef struct presence_ctx {
  hub_presence_done done;
  void *ctx;
  uint32_t max;
} presence_ctx;

static void on_presence(hub_redis_router *r, redisReply *reply, void *priv) {
  (void)r;
  presence_ctx *pc = priv;
  hub_presence_list l = {.complete = true};
  int status = reply ? HUB_BROKER_DOWN : HUB_BROKER_UNKNOWN;
  if (reply_is(reply, REDIS_REPLY_ARRAY)) {
    status = 0;
    l.items = reply->elements ? calloc(reply->elements, sizeof *l.items) : NULL;
    if (reply->elements && !l.items) status = HUB_BROKER_OOM;
    for (size_t i = 0; l.items && i < reply->elements; i++) {
      if (pc->max && l.len >= pc->max) {
        l.complete = false;
        break;
      }
      json_t *o = reply_is(reply->element[i], REDIS_REPLY_STRING)
                      ? json_loadb(reply->element[i]->str, reply->element[i]->len, 0, NULL)
                      : NULL;
      const char *client = json_string_value(json_object_get(o, "client"));
      const char *user = json_string_value(json_object_get(o, "user"));
      json_t *info = json_object_get(o, "info");
      if (client && user) {
        struct hub_presence_item *it = &l.items[l.len++];
        it->client = strdup(client);
        it->user = strdup(user);
        it->info = info ? json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!it->client || !it->user || (info && !it->info)) status = HUB_BROKER_OOM;
      }
      json_decref(o);
    }
  }
  pc->done(pc->ctx, status, &l);
  hub_presence_list_free(&l);
  free(pc);
}

void hub_rb_presence(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                     hub_presence_done done, void *ctx) {
  redis_broker *rb = rb_of(b);
  hub_redis_router *c = loop_conn(rb, hl);
  presence_ctx *pc = c ? malloc(sizeof *pc) : NULL;
  if (!pc) {
    hub_presence_list l = {.complete = true};
    return done(ctx, c ? HUB_BROKER_OOM : HUB_BROKER_DOWN, &l);
  }
  *pc = (presence_ctx){done, ctx, rb->hub->o.max_presence};
  char kp[HUB_TOPIC_MAX + 80], now[24];
  size_t lp = hub_rb_key(rb, kp, sizeof kp, topic, len, ":p");
  snprintf(now, sizeof now, "%llu", (unsigned long long)hub_rb_wall_ms());
  const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_PRESENCE], "1", kp, now};
  size_t lens[] = {7, 40, 1, lp, strlen(now)};
  if (hub_router_command(c, kp, lp, on_presence, pc, 5, argv, lens) != 0) {
    free(pc);
    hub_presence_list l = {.complete = true};
    done(ctx, HUB_BROKER_DOWN, &l);
  }
}
