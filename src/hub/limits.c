#include "hub/limits.h"

#include <stdlib.h>
#include <string.h>

uint32_t hub_bucket_take(hub_bucket *b, double rate, uint64_t now_ms) {
  if (rate <= 0) return 0;
  uint32_t now = (uint32_t)now_ms;
  if (!b->last_ms) {
    b->tokens = (float)rate;
  } else {
    double t = b->tokens + (double)(uint32_t)(now - b->last_ms) * rate / 1000.0;
    b->tokens = (float)(t > rate ? rate : t);
  }
  b->last_ms = now ? now : 1;
  if (b->tokens >= 1.0f) {
    b->tokens -= 1.0f;
    return 0;
  }
  double wait = (1.0 - b->tokens) * 1000.0 / rate;
  return (uint32_t)wait + 1;
}

struct hub_peer {
  hub_map_item item; /* key: the address or user id */
  uint32_t conns;
  hub_bucket rate;
  char key[];
};

void hub_peers_init(hub_peers *p, unsigned max_conns, double connect_rate) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  p->max_conns = max_conns;
  p->connect_rate = connect_rate;
}

void hub_peers_free(hub_peers *p) {
  size_t pos;
  for (hub_map_item *it = hub_map_first(&p->map, &pos), *next; it; it = next) {
    next = hub_map_next(&p->map, it, &pos);
    free(it);
  }
  hub_map_free(&p->map);
  pthread_mutex_destroy(&p->mu);
}

hub_peer *hub_peers_admit(hub_peers *p, const char *key, uint64_t now_ms, const char **why) {
  size_t len = strlen(key);
  pthread_mutex_lock(&p->mu);
  hub_peer *e = (hub_peer *)hub_map_get(&p->map, key, len);
  if (!e) {
    e = calloc(1, sizeof *e + len + 1);
    if (!e) {
      pthread_mutex_unlock(&p->mu);
      *why = "out of memory";
      return NULL;
    }
    memcpy(e->key, key, len + 1);
    e->item.key = e->key;
    e->item.key_len = len;
    hub_map_put(&p->map, &e->item);
  }
  if (p->max_conns && e->conns >= p->max_conns) {
    *why = "too many connections";
    e = NULL;
  } else if (hub_bucket_take(&e->rate, p->connect_rate, now_ms)) {
    *why = "connecting too fast";
    e = NULL;
  } else {
    e->conns++;
  }
  pthread_mutex_unlock(&p->mu);
  return e;
}

void hub_peers_release(hub_peers *p, hub_peer *e) {
  if (!e) return;
  pthread_mutex_lock(&p->mu);
  if (e->conns) e->conns--;
  pthread_mutex_unlock(&p->mu);
}

void hub_peers_sweep(hub_peers *p, uint64_t now_ms) {
  pthread_mutex_lock(&p->mu);
  size_t pos;
  for (hub_map_item *it = hub_map_first(&p->map, &pos), *next; it; it = next) {
    next = hub_map_next(&p->map, it, &pos);
    hub_peer *e = (hub_peer *)it;
    bool refilled = !e->rate.last_ms || p->connect_rate <= 0 ||
                    (double)(uint32_t)((uint32_t)now_ms - e->rate.last_ms) * p->connect_rate / 1000.0 +
                            e->rate.tokens >= p->connect_rate;
    if (!e->conns && refilled) {
      hub_map_del(&p->map, it);
      free(e);
    }
  }
  pthread_mutex_unlock(&p->mu);
}

size_t hub_peers_size(hub_peers *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->map.len;
  pthread_mutex_unlock(&p->mu);
  return n;
}
