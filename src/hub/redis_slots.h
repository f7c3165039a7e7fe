/* hub — what Redis Cluster tells the router (redis_router.c): the CLUSTER SLOTS map and the
 * -MOVED / -ASK redirects. Parsers only (no I/O): they read what a node sent, so they check
 * everything (fuzz_hub_redis_slots). */
#ifndef HUB_REDIS_SLOTS_H
#define HUB_REDIS_SLOTS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "hub/redis_client.h"

#define HUB_CLUSTER_SLOTS 16384u

typedef struct hub_slot_range {
  unsigned start, end;   /* inclusive, start <= end < HUB_CLUSTER_SLOTS */
  hub_redis_addr master; /* host "" : the node that answered (Redis 7: endpoint not announced) */
  bool known;            /* false: "?" (Redis 7: an unknown endpoint): no owner for now */
} hub_slot_range;

/* CLUSTER SLOTS: [[start, end, [host, port, id, ...], replica...], ...]. Fills ranges[0..*n)
 * (one per element, so cap >= rep->elements is enough). 0, or -1 with why ("CLUSTER SLOTS:
 * ..."): an error reply, not an array, no slot assigned, or a malformed range. */
int hub_slots_parse(const redisReply *rep, hub_slot_range *ranges, size_t cap, size_t *n, char *why,
                    size_t whylen);

enum { HUB_REDIRECT_NONE, HUB_REDIRECT_MOVED, HUB_REDIRECT_ASK, HUB_REDIRECT_BAD };
/* An error reply's text: "MOVED 3999 127.0.0.1:6381", "ASK 3999 host:port" (an IPv6 host has
 * colons: the port follows the last; "" host: the node that answered). HUB_REDIRECT_NONE for
 * any other error, HUB_REDIRECT_BAD for a malformed MOVED/ASK. */
int hub_redirect_parse(const char *s, size_t len, unsigned *slot, hub_redis_addr *a);

#endif
