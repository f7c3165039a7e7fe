/* The shared topic table (see core.h). */
#include "hub/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hub/history.h"
#include "hub/map.h"

typedef struct presence_entry {
  hub_map_item item; /* key: client */
  char *user, *info;
  char client[];
} presence_entry;

typedef struct topic {
  hub_map_item item; /* key: name, stored after node_subs */
  char epoch[HUB_EPOCH_LEN + 1];
  uint64_t offset;
  hub_history hist;
  hub_map presence;
  uint32_t presence_overflow; /* subscribers beyond max_presence, not listed */
  uint32_t subscribers;
  uint32_t node_subs[]; /* per node; then the name */
} topic;

struct hub_core {
  hub_core_opts o;
  pthread_mutex_t mu;
  hub_map topics;
  bool *detached; /* per node */
  uint64_t epoch_counter;
  size_t retained; /* sum of the topics' hist.bytes */
};

static void lock(hub_core *c) {
  if (c->o.shared) pthread_mutex_lock(&c->mu);
}
static void unlock(hub_core *c) {
  if (c->o.shared) pthread_mutex_unlock(&c->mu);
}

hub_core *hub_core_new(const hub_core_opts *opts) {
  hub_core *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->o = *opts;
  if (!c->o.nodes) c->o.nodes = 1;
  c->detached = calloc(c->o.nodes, sizeof *c->detached);
  if (!c->detached) {
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  return c;
}

static void presence_clear(hub_map *m) {
  size_t pos;
  for (hub_map_item *it = hub_map_first(m, &pos), *next; it; it = next) {
    next = hub_map_next(m, it, &pos);
    presence_entry *e = (presence_entry *)it;
    free(e->user);
    free(e->info);
    free(e);
  }
  hub_map_free(m);
}

static void topic_free(topic *t) {
  hub_history_free(&t->hist);
  presence_clear(&t->presence);
  free(t);
}

void hub_core_free(hub_core *c) {
  if (!c) return;
  size_t pos;
  for (hub_map_item *it = hub_map_first(&c->topics, &pos), *next; it; it = next) {
    next = hub_map_next(&c->topics, it, &pos);
    topic_free((topic *)it);
  }
  hub_map_free(&c->topics);
  pthread_mutex_destroy(&c->mu);
  free(c->detached);
  free(c);
}

void hub_core_detach_node(hub_core *c, unsigned node) {
  lock(c);
  if (node < c->o.nodes) c->detached[node] = true;
  unlock(c);
}

/* A fresh epoch: random, so a restarted hub never repeats one. */
static void new_epoch(hub_core *c, char out[HUB_EPOCH_LEN + 1]) {
  uint64_t r;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = (uint64_t)(uintptr_t)c ^ ((uint64_t)rand() << 32) ^ (uint64_t)rand();
  r ^= ++c->epoch_counter * 0x9e3779b97f4a7c15ull; /* distinct within one run */
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < HUB_EPOCH_LEN; i++) out[i] = hex[(r >> (4 * i)) & 15];
  out[HUB_EPOCH_LEN] = '\0';
}

static topic *find(hub_core *c, const char *name, size_t len) {
  return (topic *)hub_map_get(&c->topics, name, len);
}

static topic *find_or_create(hub_core *c, const char *name, size_t len) {
  topic *t = find(c, name, len);
  if (t) return t;
  size_t subs = c->o.nodes * sizeof(uint32_t);
  t = calloc(1, sizeof *t + subs + len + 1);
  if (!t) return NULL;
  char *key = (char *)t->node_subs + subs;
  memcpy(key, name, len);
  t->item.key = key;
  t->item.key_len = len;
  new_epoch(c, t->epoch);
  hub_history_init(&t->hist,
                   c->o.history_cap ? c->o.history_cap(name, len, c->o.user) : c->o.history_size);
  hub_map_put(&c->topics, &t->item);
  return t;
}

static void set_pos(const topic *t, hub_position *pos) {
  if (!pos) return;
  pos->offset = t->offset;
  memcpy(pos->epoch, t->epoch, sizeof pos->epoch);
}

static void expire(hub_core *c, topic *t, uint64_t now_ms) {
  size_t before = t->hist.bytes;
  if (c->o.history_ttl_ms && now_ms > c->o.history_ttl_ms)
    hub_history_expire(&t->hist, now_ms - c->o.history_ttl_ms);
  c->retained -= before - t->hist.bytes;
}

/* Over the memory bound: this topic gives up its oldest first (keeping its
 * newest, so a live subscriber's resume of the last message still works). */
static void trim(hub_core *c, topic *t) {
  while (c->o.history_memory && c->retained > c->o.history_memory && t->hist.len > 1) {
    size_t before = t->hist.bytes;
    hub_history_drop_oldest(&t->hist);
    c->retained -= before - t->hist.bytes;
  }
}

/* Fan out to every node with subscribers. Shared: under the lock, so each
 * node's queue sees offsets in order. Not shared: the caller runs it after
 * the table is consistent (see run_pending). */
static void fanout(hub_core *c, const topic *t, uint64_t offset, hub_blob *env, uint64_t skip) {
  if (!env || !t->subscribers || !c->o.fanout) return;
  hub_fanout f = {t->item.key, t->item.key_len, offset, env, skip, NULL};
  for (unsigned n = 0; n < c->o.nodes; n++)
    if (t->node_subs[n] && !c->detached[n]) c->o.fanout(n, &f, c->o.user);
}

int hub_core_publish(hub_core *c, const char *name, size_t len, hub_env_fn make, void *ctx,
                     uint64_t skip_conn, uint64_t now_ms, hub_position *pos) {
  lock(c);
  topic *t = find_or_create(c, name, len);
  hub_blob *env = t ? make(t->offset + 1, ctx) : NULL;
  if (!env) {
    unlock(c);
    return -1;
  }
  t->offset++;
  expire(c, t, now_ms);
  size_t before = t->hist.bytes;
  hub_history_push(&t->hist, t->offset, now_ms, env); /* on failure: resume says too_old */
  c->retained += t->hist.bytes - before;
  trim(c, t);
  set_pos(t, pos);
  if (c->o.shared) {
    fanout(c, t, t->offset, env, skip_conn);
    unlock(c);
  } else {
    /* Unlocked and consistent: deliver now (fanout may re-enter us, so the
     * topic pointer is not used after it). */
    hub_fanout f = {t->item.key, t->item.key_len, t->offset, env, skip_conn, NULL};
    if (t->subscribers && c->o.fanout && !c->detached[0]) c->o.fanout(0, &f, c->o.user);
  }
  hub_blob_unref(env);
  return 0;
}

/* Retain a publication at the next offset and fan it out. Locked, or one
 * loop (then delivered at once: like publish, the topic is not used after). */
static void append(hub_core *c, topic *t, uint64_t offset, hub_blob *env, uint64_t skip,
                   uint64_t time_ms, uint64_t now_ms) {
  t->offset = offset;
  expire(c, t, now_ms);
  size_t before = t->hist.bytes;
  hub_history_push(&t->hist, offset, time_ms, env);
  c->retained += t->hist.bytes - before;
  trim(c, t);
  hub_fanout f = {t->item.key, t->item.key_len, offset, env, skip, NULL};
  if (t->subscribers && c->o.fanout)
    for (unsigned n = 0; n < c->o.nodes; n++)
      if (t->node_subs[n] && !c->detached[n]) c->o.fanout(n, &f, c->o.user);
}

int hub_core_apply(hub_core *c, const char *name, size_t len, const char *epoch, uint64_t offset,
                   hub_blob *env, uint64_t skip_conn, uint64_t time_ms, uint64_t now_ms) {
  lock(c);
  topic *t = find(c, name, len);
  int rc = !t || strcmp(t->epoch, epoch) != 0 ? 2
           : offset <= t->offset              ? 1
           : offset != t->offset + 1          ? 2
                                              : 0;
  if (rc == 0) append(c, t, offset, env, skip_conn, time_ms, now_ms);
  unlock(c);
  return rc;
}

static void history_clear(hub_core *c, topic *t) {
  c->retained -= t->hist.bytes;
  uint32_t cap = t->hist.cap;
  hub_history_free(&t->hist);
  hub_history_init(&t->hist, cap);
}

int hub_core_sync(hub_core *c, const char *name, size_t len, const char *epoch, uint64_t offset,
                  const hub_sync_entry *e, size_t n, hub_gap_fn gap, uint64_t now_ms) {
  lock(c);
  topic *t = find_or_create(c, name, len);
  if (!t) {
    unlock(c);
    return -1;
  }
  bool same = strcmp(t->epoch, epoch) == 0;
  size_t i = 0;
  if (same)
    while (i < n && e[i].offset <= t->offset) i++; /* had those */
  /* The position just before the broker's run (or its newest, if none). */
  uint64_t before = i < n ? e[i].offset - 1 : offset;
  if (!same || before != t->offset) { /* it does not follow on */
    history_clear(c, t);
    snprintf(t->epoch, sizeof t->epoch, "%s", epoch);
    t->offset = before;
    hub_blob *env = NULL;
    if (t->subscribers && gap && c->o.fanout) {
      hub_position pos = {.offset = before};
      memcpy(pos.epoch, t->epoch, sizeof pos.epoch);
      env = gap(name, len, &pos, same ? "too_old" : "epoch_changed");
    }
    hub_fanout f = {t->item.key, t->item.key_len, before, env, 0, t->epoch};
    for (unsigned k = 0; env && k < c->o.nodes; k++)
      if (t->node_subs[k] && !c->detached[k]) c->o.fanout(k, &f, c->o.user);
    hub_blob_unref(env);
  }
  for (; i < n && e[i].offset == t->offset + 1; i++)
    append(c, t, e[i].offset, e[i].env, 0, e[i].time_ms, now_ms);
  unlock(c);
  return 0;
}

void hub_core_event(hub_core *c, const char *name, size_t len, hub_blob *env, uint64_t skip_conn) {
  lock(c);
  topic *t = find(c, name, len);
  if (t && t->subscribers && c->o.fanout) {
    hub_fanout f = {t->item.key, t->item.key_len, 0, env, skip_conn, NULL};
    for (unsigned n = 0; n < c->o.nodes; n++)
      if (t->node_subs[n] && !c->detached[n]) c->o.fanout(n, &f, c->o.user);
  }
  unlock(c);
}

bool hub_core_position(hub_core *c, const char *name, size_t len, hub_position *pos) {
  lock(c);
  topic *t = find(c, name, len);
  bool known = t && t->epoch[0]; /* "": forgotten, not mirrored (hub_core_forget) */
  if (known) set_pos(t, pos);
  unlock(c);
  return known;
}

void hub_core_forget(hub_core *c, const char *name, size_t len) {
  lock(c);
  topic *t = find(c, name, len);
  if (t && !t->subscribers && (t->presence.len || t->presence_overflow)) {
    /* Presence entries (an HTTP session's) stay; the position goes with
     * the history, so the next sync takes the broker's state whole
     * instead of only what follows a stale position. */
    history_clear(c, t);
    t->epoch[0] = '\0';
    t->offset = 0;
  } else if (t && !t->subscribers) {
    c->retained -= t->hist.bytes;
    hub_map_del(&c->topics, &t->item);
    topic_free(t);
  }
  unlock(c);
}

static int replay_add(hub_replay *r, const hub_history *h, uint32_t from, uint32_t n) {
  if (!n) return 0;
  r->envs = malloc(n * sizeof *r->envs);
  if (!r->envs) return -1;
  for (uint32_t i = 0; i < n; i++) r->envs[i] = hub_blob_ref(hub_history_at(h, from + i)->env);
  r->len = n;
  return 0;
}

void hub_replay_free(hub_replay *r) {
  for (uint32_t i = 0; i < r->len; i++) hub_blob_unref(r->envs[i]);
  free(r->envs);
  r->envs = NULL;
  r->len = 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Returns 1 when listed, 0 when not (the topic's list is full), -1 out of
 * memory. */
static int presence_add(hub_core *c, topic *t, const hub_who *w) {
  size_t clen = strlen(w->client);
  if (hub_map_get(&t->presence, w->client, clen)) return 1;
  if (c->o.max_presence && t->presence.len >= c->o.max_presence) {
    t->presence_overflow++;
    return 0;
  }
  presence_entry *e = calloc(1, sizeof *e + clen + 1);
  if (!e) return -1;
  memcpy(e->client, w->client, clen + 1);
  e->user = strdup(w->user ? w->user : "");
  e->info = dup_or_null(w->info);
  if (!e->user || (w->info && !e->info)) {
    free(e->user);
    free(e->info);
    free(e);
    return -1;
  }
  e->item.key = e->client;
  e->item.key_len = clen;
  hub_map_put(&t->presence, &e->item);
  return 1;
}

/* Whether the client was listed. */
static bool presence_del(topic *t, const char *client) {
  presence_entry *e = (presence_entry *)hub_map_get(&t->presence, client, strlen(client));
  if (!e) return false;
  hub_map_del(&t->presence, &e->item);
  free(e->user);
  free(e->info);
  free(e);
  return true;
}

/* Which retained publications a subscribe replays, and how it recovered. */
static hub_recovery plan_replay(const topic *t, const hub_sub_req *req, uint32_t *from,
                                uint32_t *n) {
  const hub_history *h = &t->hist;
  *from = *n = 0;
  if (!req->has_since) {
    uint32_t want = req->history < h->len ? req->history : h->len;
    *from = h->len - want;
    *n = want;
    return HUB_RECOVERY_NONE;
  }
  if (!req->since_epoch || strcmp(req->since_epoch, t->epoch) != 0) return HUB_EPOCH_CHANGED;
  if (req->since_offset > t->offset) return HUB_OFFSET_AHEAD;
  if (req->since_offset == t->offset) return HUB_RECOVERED;
  int64_t i = hub_history_find(h, req->since_offset + 1);
  if (i < 0) return HUB_TOO_OLD; /* the next one is gone */
  *from = (uint32_t)i;
  *n = h->len - (uint32_t)i;
  return HUB_RECOVERED;
}

int hub_core_subscribe(hub_core *c, const hub_sub_req *req, uint64_t now_ms, hub_position *pos,
                       hub_recovery *rec, hub_replay *replay) {
  memset(replay, 0, sizeof *replay);
  lock(c);
  topic *t = find_or_create(c, req->topic, req->topic_len);
  bool no_presence = req->no_presence || req->who.unlisted;
  int listed = !t ? -1 : no_presence ? 0 : presence_add(c, t, &req->who);
  if (listed < 0) {
    unlock(c);
    return -1;
  }
  expire(c, t, now_ms);
  uint32_t from, n;
  *rec = plan_replay(t, req, &from, &n);
  if (replay_add(replay, &t->hist, from, n) != 0) {
    if (listed)
      presence_del(t, req->who.client);
    else if (!no_presence)
      t->presence_overflow--;
    unlock(c);
    return -1;
  }
  set_pos(t, pos);
  if (req->listed) *req->listed = listed == 1;
  /* Join goes to the others before this subscriber counts, so that the
   * non-shared path (which delivers at once) needs no skip either way. */
  hub_blob *join = listed && !c->o.remote_events ? req->join_env : NULL;
  if (c->o.shared) fanout(c, t, 0, join, req->who.conn);
  t->node_subs[req->node]++;
  t->subscribers++;
  if (c->o.shared) {
    unlock(c);
  } else if (join && t->subscribers > 1 && c->o.fanout && !c->detached[0]) {
    hub_fanout f = {t->item.key, t->item.key_len, 0, join, req->who.conn, NULL};
    c->o.fanout(0, &f, c->o.user);
  }
  return 0;
}

void hub_core_unsubscribe(hub_core *c, const char *name, size_t len, unsigned node,
                          const hub_who *who, hub_blob *leave_env) {
  lock(c);
  topic *t = find(c, name, len);
  if (!t || !t->node_subs[node]) {
    unlock(c);
    return;
  }
  t->node_subs[node]--;
  t->subscribers--;
  if (who->unlisted) {
    leave_env = NULL;
  } else if (!presence_del(t, who->client)) {
    if (t->presence_overflow) t->presence_overflow--;
    leave_env = NULL; /* it was never listed: nobody saw it join */
  }
  if (c->o.remote_events) leave_env = NULL; /* the broker carries it */
  if (c->o.shared) {
    fanout(c, t, 0, leave_env, who->conn);
    unlock(c);
  } else if (leave_env && t->subscribers && c->o.fanout && !c->detached[0]) {
    hub_fanout f = {t->item.key, t->item.key_len, 0, leave_env, who->conn, NULL};
    c->o.fanout(0, &f, c->o.user);
  }
}

/* Fan out a presence event of a listed client that holds no subscription
 * here (not shared: after the table is consistent, as for publish). */
static void presence_event(hub_core *c, topic *t, hub_blob *env, uint64_t skip) {
  if (c->o.remote_events) env = NULL; /* the broker carries it */
  if (c->o.shared) {
    fanout(c, t, 0, env, skip);
    unlock(c);
    return;
  }
  unlock(c);
  hub_fanout f = {t->item.key, t->item.key_len, 0, env, skip, NULL};
  if (env && t->subscribers && c->o.fanout && !c->detached[0]) c->o.fanout(0, &f, c->o.user);
}

int hub_core_presence_join(hub_core *c, const char *name, size_t len, const hub_who *who,
                           hub_blob *join_env) {
  lock(c);
  topic *t = find_or_create(c, name, len);
  if (!t) {
    unlock(c);
    return -1;
  }
  if (hub_map_get(&t->presence, who->client, strlen(who->client))) {
    unlock(c);
    return 2;
  }
  int listed = presence_add(c, t, who);
  presence_event(c, t, listed == 1 ? join_env : NULL, who->conn);
  return listed;
}

void hub_core_presence_leave(hub_core *c, const char *name, size_t len, const hub_who *who,
                             hub_blob *leave_env) {
  lock(c);
  topic *t = find(c, name, len);
  if (!t) {
    unlock(c);
    return;
  }
  if (!presence_del(t, who->client)) {
    if (t->presence_overflow) t->presence_overflow--;
    leave_env = NULL;
  }
  presence_event(c, t, leave_env, who->conn);
}

int hub_core_history(hub_core *c, const char *name, size_t len, bool has_since,
                     uint64_t since_offset, const char *since_epoch, uint32_t limit,
                     uint64_t now_ms, hub_position *pos, hub_replay *out, bool *complete) {
  memset(out, 0, sizeof *out);
  memset(pos, 0, sizeof *pos);
  *complete = true;
  lock(c);
  topic *t = find(c, name, len);
  if (!t) { /* never published: an empty history in a fresh epoch */
    unlock(c);
    if (has_since) return 1;
    return 0;
  }
  expire(c, t, now_ms);
  set_pos(t, pos);
  const hub_history *h = &t->hist;
  uint32_t from = 0, n = 0;
  int rc = 0;
  if (has_since) {
    if (!since_epoch || strcmp(since_epoch, t->epoch) != 0) {
      rc = 1;
    } else if (since_offset < t->offset) {
      uint64_t first = hub_history_first(h);
      if (!h->len || first > since_offset + 1) {
        *complete = false;
        from = 0;
      } else {
        from = (uint32_t)(since_offset + 1 - first);
      }
      n = h->len - from;
      if (n > limit) n = limit;
    }
  } else {
    n = h->len < limit ? h->len : limit;
    from = h->len - n;
    /* complete: nothing since the topic's start is lost (older ones that
     * the limit left out are still there to page to) */
    *complete = h->len ? hub_history_first(h) == 1 : t->offset == 0;
  }
  if (!rc && replay_add(out, h, from, n) != 0) rc = -1;
  unlock(c);
  return rc;
}

int hub_core_presence(hub_core *c, const char *name, size_t len, hub_presence_list *out) {
  memset(out, 0, sizeof *out);
  out->complete = true;
  lock(c);
  topic *t = find(c, name, len);
  int rc = 0;
  if (t) out->complete = t->presence_overflow == 0;
  if (t && t->presence.len) {
    out->items = calloc(t->presence.len, sizeof *out->items);
    if (!out->items) rc = -1;
    size_t pos;
    for (hub_map_item *it = rc ? NULL : hub_map_first(&t->presence, &pos); it;
         it = hub_map_next(&t->presence, it, &pos)) {
      presence_entry *e = (presence_entry *)it;
      struct hub_presence_item *p = &out->items[out->len++];
      p->client = strdup(e->client);
      p->user = strdup(e->user);
      p->info = dup_or_null(e->info);
      if (!p->client || !p->user || (e->info && !p->info)) rc = -1;
    }
  }
  unlock(c);
  if (rc) hub_presence_list_free(out);
  return rc;
}

void hub_presence_list_free(hub_presence_list *l) {
  for (size_t i = 0; i < l->len; i++) {
    free(l->items[i].client);
    free(l->items[i].user);
    free(l->items[i].info);
  }
  free(l->items);
  memset(l, 0, sizeof *l);
}

int hub_core_topics(hub_core *c, hub_topic_list *out) {
  memset(out, 0, sizeof *out);
  lock(c);
  int rc = 0;
  if (c->topics.len) {
    out->items = calloc(c->topics.len, sizeof *out->items);
    if (!out->items) rc = -1;
    size_t pos;
    for (hub_map_item *it = rc ? NULL : hub_map_first(&c->topics, &pos); it;
         it = hub_map_next(&c->topics, it, &pos)) {
      topic *t = (topic *)it;
      struct hub_topic_info *i = &out->items[out->len++];
      i->name = strndup(t->item.key, t->item.key_len);
      i->subscribers = t->subscribers;
      i->retained = t->hist.len;
      set_pos(t, &i->pos);
      if (!i->name) rc = -1;
    }
  }
  unlock(c);
  if (rc) hub_topic_list_free(out);
  return rc;
}

void hub_topic_list_free(hub_topic_list *l) {
  for (size_t i = 0; i < l->len; i++) free(l->items[i].name);
  free(l->items);
  memset(l, 0, sizeof *l);
}

size_t hub_core_sweep(hub_core *c, uint64_t now_ms) {
  lock(c);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&c->topics, &pos), *next; it; it = next) {
    next = hub_map_next(&c->topics, it, &pos);
    topic *t = (topic *)it;
    expire(c, t, now_ms);
    /* A mirror (remote_events: a broker numbers) is the broker's until
     * hub_core_forget: a subscribe may be on its way from another loop. */
    bool mirrored = c->o.remote_events && t->epoch[0];
    if (!mirrored && !t->subscribers && !t->presence.len && !t->hist.len && !t->presence_overflow) {
      hub_map_del(&c->topics, it);
      topic_free(t);
    }
  }
  /* Still over the memory bound (topics that stopped publishing hold it):
   * every topic gives up its oldest until under. */
  while (c->o.history_memory && c->retained > c->o.history_memory) {
    size_t was = c->retained;
    for (hub_map_item *it = hub_map_first(&c->topics, &pos);
         it && c->retained > c->o.history_memory; it = hub_map_next(&c->topics, it, &pos)) {
      topic *t = (topic *)it;
      size_t before = t->hist.bytes;
      hub_history_drop_oldest(&t->hist);
      c->retained -= before - t->hist.bytes;
    }
    if (c->retained == was) break;
  }
  size_t n = c->topics.len;
  unlock(c);
  return n;
}

size_t hub_core_retained_bytes(hub_core *c) {
  lock(c);
  size_t n = c->retained;
  unlock(c);
  return n;
}

size_t hub_core_topic_count(hub_core *c) {
  lock(c);
  size_t n = c->topics.len;
  unlock(c);
  return n;
}
