#include "hub/history.h"

#include <stdlib.h>
#include <string.h>

void hub_history_init(hub_history *h, uint32_t cap) {
  memset(h, 0, sizeof *h);
  h->cap = cap;
}

static void clear(hub_history *h) {
  for (uint32_t i = 0; i < h->len; i++) hub_blob_unref(hub_history_at(h, i)->env);
  h->start = h->len = 0;
  h->bytes = 0;
}

/* Drop the oldest entry; the ring is given back when it empties. */
void hub_history_drop_oldest(hub_history *h) {
  if (!h->len) return;
  h->bytes -= h->ring[h->start].env->len;
  hub_blob_unref(h->ring[h->start].env);
  h->start = h->start + 1 == h->size ? 0 : h->start + 1;
  h->len--;
  if (!h->len) {
    free(h->ring);
    h->ring = NULL;
    h->size = h->start = 0;
  }
}

void hub_history_free(hub_history *h) {
  clear(h);
  free(h->ring);
  h->ring = NULL;
  h->size = 0;
}

/* Grow the ring (up to cap), straightening it so the oldest is at 0. */
static int grow(hub_history *h) {
  uint32_t n = h->size ? h->size * 2 : 8;
  if (n > h->cap) n = h->cap;
  hub_hist_entry *r = malloc((size_t)n * sizeof *r);
  if (!r) return -1;
  for (uint32_t i = 0; i < h->len; i++) r[i] = *hub_history_at(h, i);
  free(h->ring);
  h->ring = r;
  h->size = n;
  h->start = 0;
  return 0;
}

int hub_history_push(hub_history *h, uint64_t offset, uint64_t time_ms, hub_blob *env) {
  if (!h->cap) return 0;
  if (h->len && offset != hub_history_last(h) + 1) clear(h);
  if (h->len == h->size && h->size < h->cap && grow(h) != 0) {
    clear(h);
    return -1;
  }
  if (h->len == h->cap) { /* full: overwrite the oldest */
    h->bytes -= h->ring[h->start].env->len;
    hub_blob_unref(h->ring[h->start].env);
    h->start = h->start + 1 == h->size ? 0 : h->start + 1;
    h->len--;
  }
  uint32_t j = h->start + h->len;
  if (j >= h->size) j -= h->size;
  h->ring[j] = (hub_hist_entry){offset, time_ms, hub_blob_ref(env)};
  h->len++;
  h->bytes += env->len;
  return 0;
}

void hub_history_expire(hub_history *h, uint64_t cutoff_ms) {
  while (h->len && h->ring[h->start].time_ms < cutoff_ms) hub_history_drop_oldest(h);
  if (!h->len) { /* an idle topic gives its ring back */
    free(h->ring);
    h->ring = NULL;
    h->size = h->start = 0;
  }
}

uint64_t hub_history_first(const hub_history *h) {
  return h->len ? hub_history_at(h, 0)->offset : 0;
}

uint64_t hub_history_last(const hub_history *h) {
  return h->len ? hub_history_at(h, h->len - 1)->offset : 0;
}

int64_t hub_history_find(const hub_history *h, uint64_t offset) {
  uint64_t first = hub_history_first(h);
  if (!h->len || offset < first || offset - first >= h->len) return -1;
  return (int64_t)(offset - first);
}
