#include "hub/map.h"

#include <stdlib.h>
#include <string.h>

uint32_t hub_map_hash(const char *key, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a: names are short, this is plenty */
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)key[i]) * 16777619u;
  return h;
}

hub_map_item *hub_map_get(const hub_map *m, const char *key, size_t len) {
  if (!m->nbuckets) return NULL;
  uint32_t h = hub_map_hash(key, len);
  for (hub_map_item *it = m->buckets[h & (m->nbuckets - 1)]; it; it = it->next)
    if (it->hash == h && it->key_len == len && !memcmp(it->key, key, len)) return it;
  return NULL;
}

static int grow(hub_map *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
  hub_map_item **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < m->nbuckets; i++) {
    hub_map_item *it = m->buckets[i];
    while (it) {
      hub_map_item *next = it->next;
      it->next = b[it->hash & (n - 1)];
      b[it->hash & (n - 1)] = it;
      it = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return 0;
}

int hub_map_put(hub_map *m, hub_map_item *item) {
  int rc = 0;
  if (m->len >= m->nbuckets) rc = grow(m);
  if (!m->nbuckets) return -1;
  item->hash = hub_map_hash(item->key, item->key_len);
  hub_map_item **head = &m->buckets[item->hash & (m->nbuckets - 1)];
  item->next = *head;
  *head = item;
  m->len++;
  return rc;
}

void hub_map_del(hub_map *m, hub_map_item *item) {
  hub_map_item **p = &m->buckets[item->hash & (m->nbuckets - 1)];
  while (*p && *p != item) p = &(*p)->next;
  if (*p) {
    *p = item->next;
    m->len--;
  }
}

void hub_map_free(hub_map *m) {
  free(m->buckets);
  memset(m, 0, sizeof *m);
}

static hub_map_item *scan(const hub_map *m, size_t *pos) {
  for (; *pos < m->nbuckets; ++*pos)
    if (m->buckets[*pos]) return m->buckets[*pos];
  return NULL;
}

hub_map_item *hub_map_first(const hub_map *m, size_t *pos) {
  *pos = 0;
  return scan(m, pos);
}

hub_map_item *hub_map_next(const hub_map *m, hub_map_item *it, size_t *pos) {
  if (it->next) return it->next;
  ++*pos;
  return scan(m, pos);
}
