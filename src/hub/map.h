/* hub — an intrusive hash map from names to entries: the shared topic table
 * and each loop's table of local subscriptions. Entries embed a hub_map_item
 * and own their key bytes. Chained; doubles when the load passes 1, so
 * lookups stay O(1) with any number of topics.
 *
 * Threads: none of its own; the owner serialises access. */
#ifndef DX_HUB_MAP_H
#define DX_HUB_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hub_map_item {
  struct hub_map_item *next;
  const char *key; /* owned by the entry; stays put while the item is in a map */
  size_t key_len;
  uint32_t hash;
} hub_map_item;

typedef struct hub_map {
  hub_map_item **buckets;
  size_t nbuckets; /* a power of two, or 0 before the first insert */
  size_t len;
} hub_map;

uint32_t hub_map_hash(const char *key, size_t len);
hub_map_item *hub_map_get(const hub_map *m, const char *key, size_t len);
/* Insert an item whose key is not in the map yet (set key, key_len first).
 * Returns 0, or -1 when growing failed (the item is inserted anyway; the
 * map is just slower). */
int hub_map_put(hub_map *m, hub_map_item *item);
void hub_map_del(hub_map *m, hub_map_item *item);
void hub_map_free(hub_map *m); /* the table only; entries are the owner's */

/* Iterate: for (it = hub_map_first(m, &pos); it; it = hub_map_next(m, it, &pos)).
 * The current item may be deleted during the walk (take next first). */
hub_map_item *hub_map_first(const hub_map *m, size_t *pos);
hub_map_item *hub_map_next(const hub_map *m, hub_map_item *it, size_t *pos);

#endif
