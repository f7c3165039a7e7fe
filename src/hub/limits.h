/* hub — limits that keep one client from hurting the rest: token buckets
 * (publishes and subscribes per connection, new connections per address)
 * and connection counts per address and per user.
 *
 * Threads: a bucket belongs to its owner's thread; the peer table is
 * shared by the loops and locks itself. */
#ifndef DX_HUB_LIMITS_H
#define DX_HUB_LIMITS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/map.h"

/* rate tokens per second, burst = rate; full when last_ms is 0. */
typedef struct hub_bucket {
  float tokens;
  uint32_t last_ms; /* wraps every 49 days: only differences are used */
} hub_bucket;

/* Take one token at now_ms. Returns 0, or the milliseconds until one is
 * available. rate <= 0 means unlimited. */
uint32_t hub_bucket_take(hub_bucket *b, double rate, uint64_t now_ms);

typedef struct hub_peer hub_peer; /* an address or a user, counted */

typedef struct hub_peers {
  pthread_mutex_t mu;
  hub_map map;
  unsigned max_conns;  /* per key (0: no bound) */
  double connect_rate; /* new connections per second per key (0: no bound) */
} hub_peers;

void hub_peers_init(hub_peers *p, unsigned max_conns, double connect_rate);
void hub_peers_free(hub_peers *p);

/* Count a new connection of `key`. Returns its entry, or NULL with *why
 * ("too many connections", "connecting too fast", "out of memory"). */
hub_peer *hub_peers_admit(hub_peers *p, const char *key, uint64_t now_ms, const char **why);
/* The connection is gone. NULL ok. */
void hub_peers_release(hub_peers *p, hub_peer *e);
/* Forget keys with no connection whose rate bucket refilled. */
void hub_peers_sweep(hub_peers *p, uint64_t now_ms);
/* Keys tracked (for metrics and tests). */
size_t hub_peers_size(hub_peers *p);

#endif
