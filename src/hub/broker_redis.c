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
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include "duplex/log.h"
#include "hub/broker.h"
#include "hub/broker_wire.h"
#include "hub/hub_internal.h"
#include "hub/map.h"
#include "hub/redis_router.h"
#include "hub/topic_name.h"

#define WANT_TIMEOUT_MS 5000              /* a subscribe waits this long for Redis */
#define LOAD_MAX 100000                   /* publications one load brings at most */
#define META_TTL_MS (24ull * 3600 * 1000) /* an idle topic's position lives a day */
#define HUB_MAX_LOOPS 256

/* The topic's epoch (e), new if the topic is (the stream goes), or if the
 * meta was written under another replication ID (new_epoch, rid). On a
 * cluster (rid '*') the shard is asked here, and a meta written by a master
 * that is not this one's former master (master_replid2) came with its slot
 * (a migration moves the data whole): the epoch stays. */
#define EPOCH_LUA                                                                                  \
  "local rid2, moved = nil, false\n"                                                               \
  "if rid == '*' then\n"                                                                           \
  "  local info = redis.call('INFO', 'replication')\n"                                             \
  "  rid = string.match(info, 'master_replid:(%x+)') or '-'\n"                                     \
  "  rid2 = string.match(info, 'master_replid2:(%x+)'); moved = true\n"                            \
  "end\n"                                                                                          \
  "local m = redis.call('HMGET', KEYS[1], 'e', 'r', 'o')\n"                                        \
  "local e = m[1]\n"                                                                               \
  "if not e then e = new_epoch; redis.call('DEL', KEYS[2]); "                                      \
  "redis.call('HSET', KEYS[1], 'e', e, 'r', rid, 'o', 0)\n"                                        \
  "elseif m[2] ~= rid and moved and m[2] ~= rid2 then redis.call('HSET', KEYS[1], 'r', rid)\n"     \
  "elseif m[2] ~= rid then e = new_epoch; "                                                        \
  "redis.call('HSET', KEYS[1], 'e', e, 'r', rid, 'f', m[3] or 0) end\n"

/* Number, retain, publish. KEYS: meta, stream. ARGV: tail, maxlen, ttl_ms
 * (history), epoch if new, channel, skip, now (wall ms), meta ttl ms,
 * replication ID. */
static const char PUBLISH_LUA[] =
    "local new_epoch, rid = ARGV[4], ARGV[9]\n" EPOCH_LUA
    "local o = redis.call('HINCRBY', KEYS[1], 'o', 1)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[8])\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], o .. '-0', 'd', ARGV[1], 't', ARGV[7])\n"
    "  if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[5], e .. ' ' .. o .. ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. '\\n' .. "
    "ARGV[1])\n"
    "return {o, e}\n";

/* A topic's position and retained publications. KEYS: meta, stream. ARGV:
 * epoch if new, meta ttl ms, after (-1: the newest), the caller's epoch,
 * count, replication ID. Returns {epoch, offset, entries, ascending, first}:
 * entries after `after` (oldest first) when the epochs match, else the
 * newest `count` (newest first; for a caller with a position, only those
 * of the epoch) and the offset of the oldest retained (0: none). */
static const char LOAD_LUA[] =
    "local new_epoch, rid = ARGV[1], ARGV[6]\n" EPOCH_LUA
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')\n"
    "local after = tonumber(ARGV[3])\n"
    "if after >= 0 and e == ARGV[4] then\n"
    "  if after >= o then return {e, o, {}, 1, 0} end\n"
    "  return {e, o, redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', ARGV[5]), 1, "
    "0}\n"
    "end\n"
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "local f = 0\n"
    "if first[1] then f = tonumber(string.match(first[1][1], '^%d+')) end\n"
    "local lo = '-'\n"
    "if after >= 0 then lo = (tonumber(redis.call('HGET', KEYS[1], 'f') or '0') + 1) .. '-0' end\n"
    "return {e, o, redis.call('XREVRANGE', KEYS[2], '+', lo, 'COUNT', ARGV[5]), 0, f}\n";

/* Presence: hash PREFIX{T}:p, field client id, value "EXPIRY_MS\nLEAVE\nITEM"
 * (the leave envelope told when it expires, the entry as JSON). */

/* KEYS: presence hash. ARGV: client, value, key ttl ms, channel, join message. */
static const char JOIN_LUA[] = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                               "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                               "redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
                               "return 1\n";

/* KEYS: presence hash. ARGV: client, channel, leave message. Tells only
 * when the entry was there: a leave is told once. */
static const char LEAVE_LUA[] = "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
                                "  redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
                                "end\n"
                                "return 1\n";

/* KEYS: presence hash. ARGV: now ms, key ttl ms, channel, message head,
 * "extend" or "add", then client, value pairs of this node's entries:
 * their expiry is pushed on — only for entries still there ("extend"; a
 * leave sent meanwhile by another loop must not be undone), or all of them
 * ("add": after Redis came back, it may have lost them). Entries that
 * expired (their node is gone) are removed and their leave told, once. */
static const char REFRESH_LUA[] =
    "for i = 6, #ARGV, 2 do\n"
    "  if ARGV[5] == 'add' or redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "local now = tonumber(ARGV[1])\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  local nl = string.find(v, '\\n', 1, true)\n"
    "  if nl and tonumber(string.sub(v, 1, nl - 1)) < now then\n"
    "    redis.call('HDEL', KEYS[1], all[i])\n"
    "    local nl2 = string.find(v, '\\n', nl + 1, true)\n"
    "    if nl2 then redis.call('PUBLISH', ARGV[3], ARGV[4] .. string.sub(v, nl + 1, nl2 - 1)) "
    "end\n"
    "  end\n"
    "end\n"
    "if #all > 0 or #ARGV > 5 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return 1\n";

/* KEYS: presence hash. ARGV: now ms. The live entries' JSON. */
static const char PRESENCE_LUA[] = "local now = tonumber(ARGV[1])\n"
                                   "local out = {}\n"
                                   "local all = redis.call('HGETALL', KEYS[1])\n"
                                   "for i = 1, #all, 2 do\n"
                                   "  local v = all[i + 1]\n"
                                   "  local nl = string.find(v, '\\n', 1, true)\n"
                                   "  local nl2 = nl and string.find(v, '\\n', nl + 1, true)\n"
                                   "  if nl2 and tonumber(string.sub(v, 1, nl - 1)) >= now then "
                                   "out[#out + 1] = string.sub(v, nl2 + 1) "
                                   "end\n"
                                   "end\n"
                                   "return out\n";

enum {
  SCRIPT_PUBLISH,
  SCRIPT_LOAD,
  SCRIPT_JOIN,
  SCRIPT_LEAVE,
  SCRIPT_REFRESH,
  SCRIPT_PRESENCE,
  NSCRIPTS
};
static const char *const SCRIPTS[NSCRIPTS] = {PUBLISH_LUA, LOAD_LUA,    JOIN_LUA,
                                              LEAVE_LUA,   REFRESH_LUA, PRESENCE_LUA};

enum { T_IDLE, T_SUBSCRIBING, T_LOADING, T_LIVE };

typedef struct waiter {
  struct waiter *next;
  hub_loop *hl;
  hub_broker_done done;
  void *ctx;
  uint64_t since_ms; /* mono_ms() */
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
  bool kick_posted; /* under mu */
  waiter *unposted; /* completions that could not be posted yet (under mu) */
  bool readd;       /* loop 0: the next presence refresh adds every entry */
} redis_broker;

static redis_broker *rb_of(hub_broker *b) { return (redis_broker *)b; }

/* Milliseconds of a clock every loop thread may read (the waiters' ages). */
static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A script as sent: on a cluster a topic's channel is a shard channel
 * (SPUBLISH, on the topic's own shard). malloc'd. */
static char *script_text(const char *lua, bool cluster) {
  static const char pub[] = "'PUBLISH'";
  size_t n = strlen(lua), extra = 0;
  for (const char *p = lua; cluster && (p = strstr(p, pub)); p += sizeof pub - 1) extra++;
  char *out = malloc(n + extra + 1), *o = out;
  if (!out) return NULL;
  for (const char *p = lua; *p;) {
    if (cluster && !strncmp(p, pub, sizeof pub - 1)) {
      memcpy(o, "'SPUBLISH'", 10);
      o += 10;
      p += sizeof pub - 1;
    } else {
      *o++ = *p++;
    }
  }
  *o = '\0';
  return out;
}

static uint64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void sha1_hex(const char *s, char out[41]) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)s, strlen(s), d);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void random_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  uint8_t r[32] = {0};
  if (getrandom(r, n, GRND_NONBLOCK) != (ssize_t)n)
    for (size_t i = 0; i < n; i++) r[i] = (uint8_t)rand();
  for (size_t i = 0; i < n; i++) out[i] = hex[r[i] & 15];
  out[n] = '\0';
}

/* PREFIX{T}SUFFIX into buf. */
static size_t key(const redis_broker *rb, char *buf, size_t cap, const char *topic, size_t len,
                  const char *suffix) {
  int n = snprintf(buf, cap, "%s{%.*s}%s", rb->prefix, (int)len, topic, suffix);
  return n < 0 ? 0 : (size_t)n;
}

static uint32_t topic_cap(dx_hub *h, const char *topic, size_t len) {
  const dx_hub_topic_rule *r = hub_rule(h, topic, len);
  if (!r || !r->history_size) return h->history_size;
  return r->history_size < 0 ? 0 : (uint32_t)r->history_size;
}

static bool reply_is(const redisReply *r, int type) { return r && r->type == type; }

/* ---- completions on the caller's loop ---- */

static void run_waiter(dx_loop *loop, void *arg) {
  (void)loop;
  waiter *w = arg;
  w->done(w->ctx, w->status, NULL);
  free(w);
}

static void post_waiter(redis_broker *rb, waiter *w) {
  if (dx_loop_post(w->hl->loop, run_waiter, w) == 0) return;
  dx_log_error("hub: cannot queue a subscribe's answer to loop %u (out of memory): retrying",
               w->hl->index);
  w->next = rb->unposted;
  rb->unposted = w;
}

/* Post each waiter's completion to its loop (under mu). */
/* Post a waiter's completion to its loop (under mu). Out of memory: it is
 * kept and posted again by the next tick — never completed here, under mu
 * and maybe on another loop's thread. */
static void post_waiter(struct redis_broker *rb, waiter *w);

static void release_waiters(struct redis_broker *rb, rtopic *t, int status) {
  for (waiter *w = t->waiters, *next; w; w = next) {
    next = w->next;
    w->status = status;
    post_waiter(rb, w);
  }
  t->waiters = NULL;
}

static void queue_clear(rtopic *t) {
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
  uint64_t now = hub_now_ms(hl), w = wall_ms();
  return wall >= w ? now : now > w - wall ? now - (w - wall) : 0;
}

static int apply_msg(redis_broker *rb, hub_loop *hl, const char *topic, size_t len,
                     const char *epoch, uint64_t offset, uint64_t time_ms, uint64_t skip,
                     const char *tail, size_t tail_len) {
  hub_blob *env = hub_env_message_join(topic, len, offset, tail, tail_len);
  if (!env) return -1;
  int rc = hub_core_apply(rb->hub->core, topic, len, epoch, offset, env, skip,
                          local_time(hl, time_ms), hub_now_ms(hl));
  hub_blob_unref(env);
  return rc;
}

static void send_load(redis_broker *rb, rtopic *t);

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
    if (apply_msg(rb, hl, lc->topic, lc->len, m->epoch, m->offset, m->time_ms, m->skip, m->tail,
                  m->len) == 2)
      t->reload = true;
  queue_clear(t);
  if (t->reload || missed) {
    send_load(rb, t);
    goto out;
  }
  t->state = T_LIVE;
  release_waiters(rb, t, 0);
out:
  pthread_mutex_unlock(&rb->mu);
  free(lc);
}

/* Send the load for t (under mu, on loop 0). When the command connection
 * is down, the tick sends it later. */
static void send_load(redis_broker *rb, rtopic *t) {
  t->state = T_LOADING;
  t->load_sent = true;
  t->load_gen++;
  t->reload = false; /* this load covers whatever was missed before it */
  hub_redis_router *c = rb->cmd[0];
  const char *topic = t->item.key;
  size_t len = t->item.key_len;
  char kmeta[HUB_TOPIC_MAX + 80], kstream[HUB_TOPIC_MAX + 80];
  size_t lm = key(rb, kmeta, sizeof kmeta, topic, len, ":m");
  size_t ls = key(rb, kstream, sizeof kstream, topic, len, ":s");
  char epoch_new[HUB_EPOCH_LEN + 1], ttl[24], after[24], count[24];
  random_hex(epoch_new, HUB_EPOCH_LEN);
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)META_TTL_MS);
  /* A topic the core already mirrors loads what came after its position. */
  hub_position pos = {0};
  bool have = hub_core_position(rb->hub->core, topic, len, &pos);
  if (have) atomic_fetch_add_explicit(&rb->b.resyncs, 1, memory_order_relaxed);
  snprintf(after, sizeof after, "%lld", have ? (long long)pos.offset : -1LL);
  snprintf(count, sizeof count, "%u", have ? LOAD_MAX : topic_cap(rb->hub, topic, len));
  const char *rid = rb->cs[0].replid;
  const char *argv[] = {
      "EVALSHA", rb->sha[SCRIPT_LOAD], "2", kmeta, kstream, epoch_new, ttl, after, pos.epoch, count,
      rid};
  size_t lens[] = {7,
                   40,
                   1,
                   lm,
                   ls,
                   HUB_EPOCH_LEN,
                   strlen(ttl),
                   strlen(after),
                   strlen(pos.epoch),
                   strlen(count),
                   strlen(rid)};
  load_ctx *lc = malloc(sizeof *lc + len);
  if (lc) {
    lc->rb = rb;
    lc->gen = t->load_gen;
    lc->len = len;
    memcpy(lc->topic, topic, len);
  }
  if (!lc || !c || !*rid || hub_router_command(c, kmeta, lm, on_loaded, lc, 11, argv, lens) != 0) {
    free(lc);
    t->load_sent = false; /* the tick tries again */
  }
}

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
    send_load(rb, t);
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
  size_t lc = key(rb, ch, sizeof ch, topic, len, "");
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
  queue_clear(t);
  hub_core_forget(rb->hub->core, t->item.key, t->item.key_len);
  free(t);
}

/* Bring every topic's subscription in line with its interest (loop 0). */
static void reconcile(redis_broker *rb) {
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
      send_load(rb, t);
    }
  }
}

static void run_kick(dx_loop *loop, void *arg) {
  (void)loop;
  redis_broker *rb = arg;
  pthread_mutex_lock(&rb->mu);
  rb->kick_posted = false;
  reconcile(rb);
  pthread_mutex_unlock(&rb->mu);
}

/* Have loop 0 reconcile soon (under mu). */
static void kick(redis_broker *rb) {
  if (rb->kick_posted || !rb->hub->nloops) return;
  if (dx_loop_post(rb->hub->loops[0]->loop, run_kick, rb) == 0) rb->kick_posted = true;
}

/* "EPOCH OFFSET TIME SKIP\n" + tail, from channel PREFIX{T}. */
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
    queue_clear(t);
    reconcile(rb);
  }
  pthread_mutex_unlock(&rb->mu);
}

static void on_push(hub_redis_router *r, redisReply *msg, void *user) {
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
    if (apply_msg(rb, hl, topic, len, epoch, offset, time_ms, skip_conn, tail, tail_len) == 2) {
      dx_log_info("hub: redis: '%.*s' is out of step (offset %llu, epoch %s): loading it again",
                  (int)len, topic, offset, epoch);
      send_load(rb, t); /* now T_LOADING: this message waits in the queue */
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

static void on_sub_up(hub_redis_router *r, void *user) {
  (void)r;
  redis_broker *rb = user;
  rb->sub_up = true;
  dx_log_info("hub: redis: subscriber connection up");
  pthread_mutex_lock(&rb->mu);
  reconcile(rb);
  pthread_mutex_unlock(&rb->mu);
}

static void on_sub_down(hub_redis_router *r, const char *why, bool was_up, void *user) {
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
    queue_clear(t);
  }
  pthread_mutex_unlock(&rb->mu);
}

/* ---- command connections (one per loop) ---- */

static void load_scripts(redis_broker *rb, hub_redis_router *c) {
  for (int i = 0; i < NSCRIPTS; i++) {
    const char *a[] = {"SCRIPT", "LOAD", rb->script[i]};
    hub_router_command_all(c, 3, a, NULL);
  }
}

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
  if (cs->index == 0) {
    rb->cmd0_up = true;
    rb->readd = true; /* Redis may have lost this node's presence: add it again now */
    rb->refresh_due = 0;
    char where[256];
    dx_log_info("hub: redis: connected to %s", hub_router_describe(r, where, sizeof where));
    pthread_mutex_lock(&rb->mu);
    reconcile(rb); /* loads that waited for the connection */
    pthread_mutex_unlock(&rb->mu);
  }
}

static void on_cmd_up(hub_redis_router *r, void *user) {
  cmd_state *cs = user;
  cs->replid[0] = '\0';
  load_scripts(cs->rb, r);
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
                       .on_up = pubsub ? on_sub_up : on_cmd_up,
                       .on_down = pubsub ? on_sub_down : on_cmd_down,
                       .on_push = pubsub ? on_push : NULL,
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
  if (hl->index == 0) {
    hub_router_free(rb->sub);
    rb->sub = NULL;
    rb->sub_up = rb->cmd0_up = false;
  }
}

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

static void rb_publish(hub_broker *b, hub_loop *hl, const hub_pub *p, hub_broker_done done,
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
  size_t lm = key(rb, kmeta, sizeof kmeta, p->topic, p->topic_len, ":m");
  size_t ls = key(rb, kstream, sizeof kstream, p->topic, p->topic_len, ":s");
  size_t lc = key(rb, ch, sizeof ch, p->topic, p->topic_len, "");
  char maxlen[16], ttl[24], now[24], skip[64], epoch_new[HUB_EPOCH_LEN + 1], meta_ttl[24];
  snprintf(maxlen, sizeof maxlen, "%u", topic_cap(rb->hub, p->topic, p->topic_len));
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)rb->hub->history_ttl_ms);
  snprintf(now, sizeof now, "%llu", (unsigned long long)wall_ms());
  snprintf(skip, sizeof skip, "%s:%llu", rb->node_id, (unsigned long long)p->skip_conn);
  snprintf(meta_ttl, sizeof meta_ttl, "%llu",
           (unsigned long long)(rb->hub->history_ttl_ms > META_TTL_MS ? rb->hub->history_ttl_ms
                                                                      : META_TTL_MS));
  random_hex(epoch_new, HUB_EPOCH_LEN);
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

static void rb_want(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                    hub_broker_done done, void *ctx) {
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
    *w = (waiter){t->waiters, hl, done, ctx, mono_ms(), 0};
    t->waiters = w;
    kick(rb);
  }
  pthread_mutex_unlock(&rb->mu);
  if (live)
    done(ctx, 0, NULL);
  else if (!w)
    done(ctx, HUB_BROKER_OOM, NULL);
}

static void rb_unwant(hub_broker *b, hub_loop *hl, const char *topic, size_t len) {
  (void)hl;
  redis_broker *rb = rb_of(b);
  pthread_mutex_lock(&rb->mu);
  rtopic *t = (rtopic *)hub_map_get(&rb->topics, topic, len);
  if (t && t->interest && --t->interest == 0) kick(rb);
  pthread_mutex_unlock(&rb->mu);
}

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

static void rb_history(hub_broker *b, hub_loop *hl, const hub_history_query *q,
                       hub_history_done done, void *ctx) {
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
  char kmeta[HUB_TOPIC_MAX + 80], kstream[HUB_TOPIC_MAX + 80];
  size_t lm = key(rb, kmeta, sizeof kmeta, q->topic, q->topic_len, ":m");
  size_t ls = key(rb, kstream, sizeof kstream, q->topic, q->topic_len, ":s");
  char epoch_new[HUB_EPOCH_LEN + 1], ttl[24], after[24], count[24];
  random_hex(epoch_new, HUB_EPOCH_LEN);
  snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)META_TTL_MS);
  snprintf(after, sizeof after, "%lld", q->has_since ? (long long)q->since_offset : -1LL);
  /* With since: everything after it (the answer takes `limit`); without:
   * the newest `limit` plus one, to tell whether the topic's start is in. */
  snprintf(count, sizeof count, "%u", q->has_since ? q->limit : q->limit);
  const char *since_epoch = q->since_epoch ? q->since_epoch : "";
  const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_LOAD], "2",   kmeta, kstream, epoch_new, ttl,
                        after,     since_epoch,          count, rid};
  size_t lens[] = {7,
                   40,
                   1,
                   lm,
                   ls,
                   HUB_EPOCH_LEN,
                   strlen(ttl),
                   strlen(after),
                   strlen(since_epoch),
                   strlen(count),
                   strlen(rid)};
  if (hub_router_command(c, kmeta, lm, on_history, hc, 11, argv, lens) != 0) {
    free(hc);
    res.status = HUB_BROKER_DOWN;
    done(ctx, &res);
  }
}

/* ---- presence ---- */

/* "- 0 TIME NODE:CONN\n" into buf: the head of an event message. */
static int event_head(const redis_broker *rb, char *buf, size_t cap, uint64_t conn) {
  return hub_wire_event_head(buf, cap, wall_ms(), rb->node_id, conn);
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
                         (unsigned long long)(wall_ms() + rb->presence_ttl_ms), leave->data, itext)
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

static void rb_joined(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                      const hub_who *who, hub_blob *join_env) {
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
    size_t lp = key(rb, kp, sizeof kp, topic, len, ":p");
    size_t lc = key(rb, ch, sizeof ch, topic, len, "");
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

static void rb_left(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
                    const hub_who *who) {
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
    size_t lp = key(rb, kp, sizeof kp, topic, len, ":p");
    size_t lc = key(rb, ch, sizeof ch, topic, len, "");
    const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_LEAVE], "1", kp, who->client, ch, msg};
    size_t lens[] = {7, 40, 1, lp, strlen(who->client), lc, (size_t)hn + leave->len};
    hub_router_command(c, kp, lp, NULL, NULL, 7, argv, lens);
  }
  free(msg);
  hub_blob_unref(leave);
}

/* Push on the expiry of this node's entries in a live topic, and let
 * Redis drop (and tell the leave of) the entries of nodes that are gone. */
static void refresh_presence(redis_broker *rb, const char *topic, size_t len, bool readd) {
  hub_redis_router *c = rb->cmd[0];
  hub_presence_list l;
  if (!c || !hub_router_up(c) || hub_core_presence(rb->hub->core, topic, len, &l)) return;
  if (!l.len) return hub_presence_list_free(&l);
  size_t argc = 10 + 2 * l.len;
  const char **argv = calloc(argc, sizeof *argv);
  size_t *lens = calloc(argc, sizeof *lens);
  char **values = calloc(l.len + 1, sizeof *values);
  char kp[HUB_TOPIC_MAX + 80], ch[HUB_TOPIC_MAX + 80], now[24], ttl[24], head[96];
  size_t lp = key(rb, kp, sizeof kp, topic, len, ":p");
  size_t lc = key(rb, ch, sizeof ch, topic, len, "");
  snprintf(now, sizeof now, "%llu", (unsigned long long)wall_ms());
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

static void rb_presence(hub_broker *b, hub_loop *hl, const char *topic, size_t len,
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
  size_t lp = key(rb, kp, sizeof kp, topic, len, ":p");
  snprintf(now, sizeof now, "%llu", (unsigned long long)wall_ms());
  const char *argv[] = {"EVALSHA", rb->sha[SCRIPT_PRESENCE], "1", kp, now};
  size_t lens[] = {7, 40, 1, lp, strlen(now)};
  if (hub_router_command(c, kp, lp, on_presence, pc, 5, argv, lens) != 0) {
    free(pc);
    hub_presence_list l = {.complete = true};
    done(ctx, HUB_BROKER_DOWN, &l);
  }
}

static void rb_tick(hub_broker *b, hub_loop *hl) {
  redis_broker *rb = rb_of(b);
  if (hl->index != 0) return;
  uint64_t now = hub_now_ms(hl);
  uint64_t mono = mono_ms();
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
      post_waiter(rb, w);
    }
  }
  waiter *again = rb->unposted;
  rb->unposted = NULL;
  for (waiter *w = again, *next; w; w = next) {
    next = w->next;
    post_waiter(rb, w);
  }
  reconcile(rb);
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
        refresh_presence(rb, tl.items[i].name, strlen(tl.items[i].name), readd);
      hub_topic_list_free(&tl);
    }
  }
}

static bool rb_up(hub_broker *b) {
  redis_broker *rb = rb_of(b);
  return rb->sub_up && rb->cmd0_up;
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
    queue_clear(t);
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
    .publish = rb_publish,
    .want = rb_want,
    .unwant = rb_unwant,
    .history = rb_history,
    .joined = rb_joined,
    .left = rb_left,
    .presence = rb_presence,
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
  random_hex(rb->node_id, HUB_NODE_ID_LEN);
  for (int i = 0; i < NSCRIPTS; i++) {
    rb->script[i] = script_text(SCRIPTS[i], rb->url.cluster);
    if (!rb->script[i]) {
      rb_free(&rb->b);
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    sha1_hex(rb->script[i], rb->sha[i]);
  }
  rb->presence_ttl_ms = h->o.presence_ttl_ms > 0 ? (uint64_t)h->o.presence_ttl_ms : 30000;
  pthread_mutex_init(&rb->mu, NULL);
  return &rb->b;
}
