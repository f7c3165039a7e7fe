/* hub — the topics of an SSE stream or a long-poll, named in the URL, and
 * their positions in the form both carry ("OFFSET.EPOCH,OFFSET.EPOCH" in
 * URL order: SSE event ids, Last-Event-ID, ?since=, a poll's "since").
 * Shared by transport_sse.c and transport_poll.c. Plain data. */
#ifndef DX_HUB_STREAM_TOPICS_H
#define DX_HUB_STREAM_TOPICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hub/core.h"
#include "hub/topic_name.h"

#define HUB_STREAM_MAX_TOPICS 16
/* Room for a position list, with its NUL. */
#define HUB_POSITIONS_MAX (HUB_STREAM_MAX_TOPICS * (20 + 1 + HUB_EPOCH_LEN + 1) + 1)
/* Room for a topics=... list, with its NUL. */
#define HUB_TOPIC_LIST_MAX (HUB_STREAM_MAX_TOPICS * (HUB_TOPIC_MAX + 1))

typedef struct hub_stream_topic {
  char name[HUB_TOPIC_MAX + 1];
  size_t len;
  hub_position pos; /* of the last publication handed over (offset 0: none) */
  bool presence;    /* wants join/leave events */
} hub_stream_topic;

typedef struct hub_stream_topics {
  size_t n;
  hub_stream_topic t[HUB_STREAM_MAX_TOPICS];
  uint32_t history; /* topics without a position first get this many */
  json_t *info;     /* {"topic": presence info, ...} or NULL */
} hub_stream_topics;

/* Room for ?info= (decoded), with its NUL. */
#define HUB_STREAM_INFO_MAX 4096

/* Parse "a,b" (modifies list). Returns NULL, or a message for a 400. */
const char *hub_stream_topics_parse(hub_stream_topics *st, char *list);
/* The subscribe options of the URL: presence=a,b (topics that want
 * join/leave; modified), info={"a":INFO,...} (JSON text), history=N; any
 * may be NULL. Returns NULL, or a message for a 400. */
const char *hub_stream_options_parse(hub_stream_topics *st, char *presence, const char *info,
                                     const char *history);
void hub_stream_topics_clear(hub_stream_topics *st); /* frees info */
/* Positions from a list (malformed entries are ignored: that topic starts
 * from its current position). */
void hub_stream_positions_parse(hub_stream_topics *st, const char *ids);
/* The position list into buf (NUL-terminated; whole entries only, as many
 * as fit in cap); returns its length. */
size_t hub_stream_positions_format(const hub_stream_topics *st, char *buf, size_t cap);
hub_stream_topic *hub_stream_topic_find(hub_stream_topics *st, const char *name, size_t len);
/* A subscription's position (the transport's subscribed hook): a resume
 * keeps the position it came with (the replay advances it); otherwise the
 * topic starts from its current position. */
void hub_stream_subscribed(hub_stream_topics *st, const char *name, size_t len,
                           const hub_position *pos);
/* A publication handed over: its topic's position moves. */
void hub_stream_advance(hub_stream_topics *st, const char *name, size_t len, uint64_t offset);

/* A gap event: the topic continues from pos (perhaps in a new epoch). */
void hub_stream_moved(hub_stream_topics *st, const char *name, size_t len, const hub_position *pos);

/* Build the duplex.v1 subscribe request for topic i (id i+1, `since` when
 * it has a position, else `history`; `presence`, `info`). malloc'd JSON text, or NULL. */
char *hub_stream_subscribe_request(const hub_stream_topics *st, size_t i);

#endif
