/* The sessions of the HTTP transports (see poll_session.h). */
#include "hub/poll_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "duplex/http.h"
#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/stream_topics.h"

typedef struct ps_topic {
  char *name;
  size_t len;
  bool joined; /* hub_core_presence_join said 0 or 1: leave undoes it */
} ps_topic;

struct hub_psession {
  hub_map_item item; /* key: sid */
  char sid[HUB_SID_LEN + 1];
  char client[HUB_CLIENT_ID_MAX];
  uint64_t conn;
  char *user;
  hub_peer *user_peer, *ip;
  hub_bucket pub_rate, sub_rate;
  unsigned active;     /* requests holding it */
  uint64_t idle_since; /* ms, when active fell to 0 */
  ps_topic *topics;
  uint32_t ntopics, cap;
};

/* One clock for every loop's requests (loops cache their own times). */
static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void hub_psessions_init(hub_psessions *t, uint64_t idle_ms) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  t->idle_ms = idle_ms;
}

static void ps_free(dx_hub *h, hub_psession *ps) {
  hub_peers_release(&h->users, ps->user_peer);
  hub_peers_release(&h->ips, ps->ip);
  for (uint32_t i = 0; i < ps->ntopics; i++) free(ps->topics[i].name);
  free(ps->topics);
  free(ps->user);
  free(ps);
}

void hub_psessions_free(dx_hub *h) {
  hub_psessions *t = &h->psessions;
  size_t pos;
  for (hub_map_item *it = hub_map_first(&t->map, &pos), *next; it; it = next) {
    next = hub_map_next(&t->map, it, &pos);
    ps_free(h, (hub_psession *)it);
  }
  hub_map_free(&t->map);
  pthread_mutex_destroy(&t->mu);
}

hub_psession *hub_psession_find(dx_hub *h, const char *sid) {
  hub_psessions *t = &h->psessions;
  pthread_mutex_lock(&t->mu);
  hub_psession *ps = (hub_psession *)hub_map_get(&t->map, sid, strlen(sid));
  if (ps) ps->active++;
  pthread_mutex_unlock(&t->mu);
  return ps;
}

hub_psession *hub_psession_new(dx_hub *h, const char *client, uint64_t conn, const char *user,
                               hub_peer **user_peer, hub_peer *ip) {
  uint8_t r[HUB_SID_LEN / 2];
  hub_psession *ps = calloc(1, sizeof *ps);
  if (!ps || getrandom(r, sizeof r, 0) != (ssize_t)sizeof r || !(ps->user = strdup(user))) {
    if (ps) free(ps->user);
    free(ps);
    return NULL;
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof r; i++) {
    ps->sid[2 * i] = hex[r[i] >> 4];
    ps->sid[2 * i + 1] = hex[r[i] & 15];
  }
  snprintf(ps->client, sizeof ps->client, "%s", client);
  ps->conn = conn;
  ps->user_peer = *user_peer;
  *user_peer = NULL;
  ps->ip = ip;
  ps->active = 1;
  ps->item.key = ps->sid;
  ps->item.key_len = HUB_SID_LEN;
  hub_psessions *t = &h->psessions;
  pthread_mutex_lock(&t->mu);
  hub_map_put(&t->map, &ps->item); /* 128 random bits: no collision to handle */
  pthread_mutex_unlock(&t->mu);
  atomic_fetch_add_explicit(&t->open, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&t->opened, 1, memory_order_relaxed);
  return ps;
}

void hub_psession_release(dx_hub *h, hub_psession *ps) {
  hub_psessions *t = &h->psessions;
  pthread_mutex_lock(&t->mu);
  if (ps->active && !--ps->active) ps->idle_since = mono_ms();
  pthread_mutex_unlock(&t->mu);
}

const char *hub_psession_id(const hub_psession *ps) { return ps->sid; }
const char *hub_psession_client(const hub_psession *ps) { return ps->client; }
uint64_t hub_psession_conn(const hub_psession *ps) { return ps->conn; }
const char *hub_psession_user(const hub_psession *ps) { return ps->user; }

static ps_topic *topic_find(hub_psession *ps, const char *name, size_t len) {
  for (uint32_t i = 0; i < ps->ntopics; i++)
    if (ps->topics[i].len == len && !memcmp(ps->topics[i].name, name, len)) return &ps->topics[i];
  return NULL;
}

uint32_t hub_psession_rate(dx_hub *h, hub_psession *ps, bool publish, double rate,
                           const char *topic, size_t topic_len) {
  hub_psessions *t = &h->psessions;
  pthread_mutex_lock(&t->mu);
  uint32_t wait = 0;
  if (publish || !topic_find(ps, topic, topic_len))
    wait = hub_bucket_take(publish ? &ps->pub_rate : &ps->sub_rate, rate, mono_ms());
  pthread_mutex_unlock(&t->mu);
  return wait;
}

static hub_who who(const hub_psession *ps) {
  return (hub_who){ps->conn, ps->client, ps->user, NULL, false};
}

void hub_psession_join(dx_hub *h, hub_psession *ps, const char *topic, size_t len, const char *info,
                       bool presence_off) {
  hub_psessions *t = &h->psessions;
  pthread_mutex_lock(&t->mu);
  bool known = topic_find(ps, topic, len) != NULL;
  char *name = known ? NULL : strndup(topic, len);
  if (name && ps->ntopics == ps->cap) {
    uint32_t cap = ps->cap ? ps->cap * 2 : 4;
    ps_topic *v = realloc(ps->topics, cap * sizeof *v);
    if (v) ps->topics = v, ps->cap = cap;
  }
  if (name && ps->ntopics < ps->cap) {
    ps->topics[ps->ntopics++] = (ps_topic){name, len, false};
  } else {
    free(name);
    name = NULL;
  }
  pthread_mutex_unlock(&t->mu);
  if (!name || presence_off) return; /* known (listed already), or no memory */
  hub_who w = who(ps);
  w.info = info;
  hub_blob *env = hub_env_presence("join", topic, len, ps->client, ps->user, info);
  int listed = env ? hub_core_presence_join(h->core, topic, len, &w, env) : -1;
  if (listed == 1) h->broker->ops->joined(h->broker, NULL, topic, len, &w, env); /* Redis */
  hub_blob_unref(env);
  pthread_mutex_lock(&t->mu);
  ps_topic *pt = topic_find(ps, topic, len);
  if (pt) pt->joined = listed == 0 || listed == 1;
  pthread_mutex_unlock(&t->mu);
}

static void leave_topic(dx_hub *h, const hub_psession *ps, const char *name, size_t len) {
  hub_who w = who(ps);
  hub_blob *env = hub_env_presence("leave", name, len, ps->client, ps->user, NULL);
  hub_core_presence_leave(h->core, name, len, &w, env);
  h->broker->ops->left(h->broker, NULL, name, len, &w); /* Redis */
  hub_blob_unref(env);
}

void hub_psession_keep(dx_hub *h, hub_psession *ps, const hub_stream_topics *st) {
  hub_psessions *t = &h->psessions;
  for (;;) {
    pthread_mutex_lock(&t->mu);
    ps_topic gone = {0};
    for (uint32_t i = 0; i < ps->ntopics; i++) {
      if (hub_stream_topic_find((hub_stream_topics *)st, ps->topics[i].name, ps->topics[i].len))
        continue;
      gone = ps->topics[i];
      ps->topics[i] = ps->topics[--ps->ntopics];
      break;
    }
    pthread_mutex_unlock(&t->mu);
    if (!gone.name) return;
    if (gone.joined) leave_topic(h, ps, gone.name, gone.len);
    free(gone.name);
  }
}

void hub_psessions_sweep(dx_hub *h) {
  hub_psessions *t = &h->psessions;
  uint64_t now = mono_ms();
  hub_psession *expired = NULL;
  pthread_mutex_lock(&t->mu);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&t->map, &pos), *next; it; it = next) {
    next = hub_map_next(&t->map, it, &pos);
    hub_psession *ps = (hub_psession *)it;
    if (ps->active || now - ps->idle_since < t->idle_ms) continue;
    hub_map_del(&t->map, it); /* from here on nobody finds it: it leaves once */
    ps->item.next = (hub_map_item *)expired;
    expired = ps;
  }
  pthread_mutex_unlock(&t->mu);
  while (expired) {
    hub_psession *ps = expired;
    expired = (hub_psession *)ps->item.next;
    dx_log_debug("hub: session of client %s%s%s expired (idle %llu ms); %u topic%s left",
                 ps->client, *ps->user ? " user " : "", ps->user, (unsigned long long)t->idle_ms,
                 ps->ntopics, ps->ntopics == 1 ? "" : "s");
    for (uint32_t i = 0; i < ps->ntopics; i++)
      if (ps->topics[i].joined) leave_topic(h, ps, ps->topics[i].name, ps->topics[i].len);
    atomic_fetch_sub_explicit(&t->open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->expired, 1, memory_order_relaxed);
    ps_free(h, ps);
  }
}

int hub_psession_param(dx_http_req *req, char *out) {
  char buf[HUB_SID_LEN + 2];
  const char *v = NULL;
  int n = dx_http_query_param(req, "session", buf, sizeof buf);
  if (n > 0)
    v = buf;
  else if (n == 0)
    return 0;
  else if (n == DX_EINVAL)
    return -1;
  else
    v = dx_http_get_header(req, "X-Duplex-Session");
  if (!v) return 0;
  if (strlen(v) != HUB_SID_LEN || strspn(v, "0123456789abcdef") != HUB_SID_LEN) return -1;
  memcpy(out, v, HUB_SID_LEN + 1);
  return 1;
}

void hub_psession_gone(dx_http_req *req) {
  static const char msg[] =
      "{\"ok\":false,\"error\":{\"code\":\"unknown_session\",\"message\":\"no such session "
      "(it expired, or it is not yours): start a new one without session=\"}}";
  dx_http_respond(req, 410, "application/json", "Cache-Control: no-store\r\n", msg, sizeof msg - 1);
}

int hub_psession_from_request(dx_http_req *req, dx_hub *h, hub_psession **ps, bool or_new) {
  char sid[HUB_SID_LEN + 1];
  *ps = NULL;
  int has = hub_psession_param(req, sid);
  if (has < 0) {
    static const char msg[] = "session: the 32 hex digits the hub gave\n";
    dx_http_respond(req, 400, "text/plain; charset=utf-8", NULL, msg, sizeof msg - 1);
    return -1;
  }
  if (has && !(*ps = hub_psession_find(h, sid)) && !or_new) {
    hub_psession_gone(req);
    return -1;
  }
  return 0;
}
