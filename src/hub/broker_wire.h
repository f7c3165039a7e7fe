/* hub — what the Redis broker puts on a topic's channel, and reading it
 * back (broker_redis_sub.c). The channel is PREFIX{TOPIC}; a message is
 *   "EPOCH OFFSET TIME NODE:CONN\n" + BODY
 * a publication: its epoch and offset, the wall-clock ms it was published,
 * the publishing node and connection (skip_self; "-" for none), and the
 * envelope's tail after its offset; or an event (a join or leave): epoch
 * "-", offset 0 and the whole envelope. The publish script writes the
 * head in Lua; this is the one reader. Plain data, any thread. */
#ifndef DX_HUB_BROKER_WIRE_H
#define DX_HUB_BROKER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/core.h"

#define HUB_NODE_ID_LEN 16 /* hex digits */

typedef struct hub_wire_msg {
  const char *topic; /* inside the channel name */
  size_t topic_len;
  char epoch[HUB_EPOCH_LEN + 1]; /* "-" for an event */
  uint64_t offset;               /* 0: an event */
  uint64_t time_ms;
  char node[HUB_NODE_ID_LEN + 1]; /* "" when no connection is to be skipped */
  uint64_t conn;
  const char *body; /* inside the message */
  size_t body_len;
} hub_wire_msg;

/* Parse a message from channel `ch` (which must be PREFIX{TOPIC} with a
 * valid topic name). 0, or -1 when it is not one of ours or malformed. */
int hub_wire_parse(const char *prefix, const char *ch, size_t ch_len, const char *msg, size_t len,
                   hub_wire_msg *out);

/* The head of an event message into buf ("- 0 TIME NODE:CONN\n"); its
 * length, or -1 when it does not fit. */
int hub_wire_event_head(char *buf, size_t cap, uint64_t time_ms, const char *node, uint64_t conn);

/* The replication ID ("master_replid:" line, 40 hex digits) in an INFO
 * replication answer of `len` bytes, into out. 0, or -1 when it has none. */
#define HUB_REPLID_LEN 40
int hub_wire_replid(const char *info, size_t len, char out[HUB_REPLID_LEN + 1]);

#endif
