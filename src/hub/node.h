/* hub — one loop's side of the hub: which of its connections subscribe to
 * which topic, and delivery to them. A delivery arrives once per node
 * (hub_core's fanout) and is turned into one prepared message that every
 * local subscriber shares. Transport-neutral: the transport (WebSocket
 * today; SSE and long-poll later) plugs in through hub_transport.
 *
 * Each subscription remembers the last offset it was given, so a delivery
 * that a resume already replayed is skipped: never a duplicate, even when
 * replay and live deliveries race across threads.
 *
 * Threads: a node and its members belong to one loop thread. */
#ifndef DX_HUB_NODE_H
#define DX_HUB_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "hub/blob.h"
#include "hub/core.h"
#include "hub/map.h"

typedef struct hub_member hub_member;

/* How a transport sends. prepare/release bracket one delivery to many
 * members (e.g. a dx_msg framed once) and send_prepared sends it to one;
 * send_one sends one publication or event to one member (a replay);
 * send_env sends any other message (replies, the welcome). The fan-out
 * record says which topic and offset (0: a presence event) a message is.
 * subscribed (may be NULL) hears of each new subscription's position.
 * Sends must not remove subscriptions synchronously (a failing connection
 * is closed later, as dx_ws_close does). */
/* Sends return 0, HUB_SEND_SLOW (dropped: the member does not keep up and
 * is being closed by the backpressure policy) or HUB_SEND_CLOSED (dropped:
 * the member is closing). */
enum { HUB_SEND_SLOW = 1, HUB_SEND_CLOSED = 2 };
typedef struct hub_transport {
  void *(*prepare)(hub_blob *env);
  int (*send_prepared)(hub_member *m, void *prepared, const hub_fanout *f);
  void (*release)(void *prepared);
  int (*send_one)(hub_member *m, const hub_fanout *f);
  int (*send_env)(hub_member *m, const char *data, size_t len);
  void (*subscribed)(hub_member *m, const char *topic, size_t len, const hub_position *pos);
} hub_transport;

typedef struct hub_local_topic hub_local_topic;

/* A member's link to one of its subscriptions. */
typedef struct hub_msub {
  hub_local_topic *lt;
  uint32_t idx; /* its place in lt->subs */
} hub_msub;

/* One connection, as the node knows it. Embedded in the transport's
 * per-connection state. */
struct hub_member {
  uint64_t conn; /* unique per hub, never 0 */
  const hub_transport *tr;
  hub_msub *subs;
  uint32_t nsubs, cap;
};

typedef struct hub_local_sub {
  hub_member *m;
  uint64_t last; /* offset of the last publication given to m */
  uint32_t slot; /* its place in m->subs */
  bool presence; /* wants join/leave */
} hub_local_sub;

struct hub_local_topic {
  hub_map_item item; /* key: the name, stored after the struct */
  hub_local_sub *subs;
  uint32_t len, cap;
  uint32_t npresence;
};

typedef struct hub_node {
  hub_map topics; /* name -> hub_local_topic */
  /* For metrics, written by the node's thread once per delivery and read
   * by any (relaxed atomics). */
  _Atomic uint64_t delivered, delivered_bytes, dropped_slow, dropped_closed;
  _Atomic uint64_t subscriptions; /* current, on this node */
} hub_node;

void hub_node_init(hub_node *n);
void hub_node_free(hub_node *n); /* members must have left */

/* The member's subscription to `topic`, or -1. */
int hub_member_find(const hub_member *m, const char *topic, size_t len);
/* Add a subscription that has seen up to `last`. Returns 0 or -1 (memory). */
int hub_node_add(hub_node *n, hub_member *m, const char *topic, size_t len, uint64_t last,
                 bool presence);
/* Remove subscription i of the member (swap-removes; the order of a member's
 * subscriptions is not kept). */
void hub_node_remove(hub_node *n, hub_member *m, uint32_t i);
static inline const char *hub_member_topic(const hub_member *m, uint32_t i, size_t *len) {
  *len = m->subs[i].lt->item.key_len;
  return m->subs[i].lt->item.key;
}

/* Deliver a fan-out to the local subscribers of its topic. A gap event
 * (f->gap_epoch) goes to every subscriber and moves its position. */
void hub_node_deliver(hub_node *n, const hub_fanout *f);

/* Send to every member of this node's topics... broadcasts go through the
 * transport's own connection list instead; nothing here. */

#endif
