/* hub — the topic table shared by every loop: stream positions (offset +
 * epoch), retained history and presence. It is the in-memory broker: plain
 * data in, plain data out, no sockets and no clock reads (times are passed
 * in), so tests drive it directly.
 *
 * Delivery is not its business: after each change that subscribers must
 * hear of, it calls `fanout` once for every loop ("node") that has local
 * subscribers of the topic, and each node delivers to its own connections.
 *
 * Threads: with `shared` set every call takes the table's mutex and
 * `fanout` runs under it, so deliveries are queued to the nodes in offset
 * order whichever thread published (fanout must only queue work, e.g.
 * dx_loop_post). Without `shared` (one loop) there is no lock and fanout
 * runs last, after the table is consistent, so it may deliver directly and
 * even re-enter the core. */
#ifndef DX_HUB_CORE_H
#define DX_HUB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/blob.h"

#define HUB_EPOCH_LEN 16     /* hex digits */
#define HUB_CLIENT_ID_MAX 32 /* with its NUL */

typedef struct hub_core hub_core;

/* One thing to deliver to a node's subscribers of `topic`. */
typedef struct hub_fanout {
  const char *topic;
  size_t topic_len;
  uint64_t offset;    /* a publication's offset; 0 for a presence event */
  hub_blob *env;      /* the envelope (borrowed: take a reference to keep it) */
  uint64_t skip_conn; /* do not deliver to this connection (0: none) */
  /* A gap event (not NULL): the broker lost publications this node's
   * subscribers have not seen; they continue after (gap_epoch, offset). */
  const char *gap_epoch;
} hub_fanout;

typedef void (*hub_fanout_fn)(unsigned node, const hub_fanout *f, void *user);

typedef struct hub_core_opts {
  uint32_t history_size;   /* publications kept per topic (0: none) */
  uint64_t history_ttl_ms; /* and for at most this long (0: forever) */
  unsigned nodes;          /* loops, numbered 0..nodes-1 */
  bool shared;             /* called from several threads: lock (see above) */
  /* A topic's own history size (its rule), or history_size when NULL. */
  uint32_t (*history_cap)(const char *topic, size_t len, void *user);
  size_t history_memory; /* envelope bytes retained in all (0: no bound) */
  uint32_t max_presence; /* presence entries per topic (0: no bound) */
  /* Join and leave events are the broker's to carry (Redis: to every
   * node): subscribe and unsubscribe keep the presence list but fan out
   * nothing; hub_core_event delivers what the broker brings. */
  bool remote_events;
  hub_fanout_fn fanout;
  void *user;
} hub_core_opts;

hub_core *hub_core_new(const hub_core_opts *opts); /* NULL when out of memory */
void hub_core_free(hub_core *c);

/* Stop fanning out to `node` (its loop is going away). */
void hub_core_detach_node(hub_core *c, unsigned node);

typedef struct hub_position {
  uint64_t offset;
  char epoch[HUB_EPOCH_LEN + 1];
} hub_position;

/* Builds the envelope of a publication once its offset is known (called
 * under the lock: keep it short). NULL means out of memory. */
typedef hub_blob *(*hub_env_fn)(uint64_t offset, void *ctx);

/* Publish: assign the next offset, retain the envelope, fan it out.
 * Returns 0 with *pos set, or -1 when out of memory (nothing happened). */
int hub_core_publish(hub_core *c, const char *topic, size_t topic_len, hub_env_fn make, void *ctx,
                     uint64_t skip_conn, uint64_t now_ms, hub_position *pos);

/* Who a subscriber is, for presence. */
typedef struct hub_who {
  uint64_t conn;      /* unique per hub, never 0 */
  const char *client; /* its client id */
  const char *user;   /* "" when anonymous */
  const char *info;   /* presence info as JSON text, or NULL */
  bool unlisted;      /* a subscription that is not in presence: its HTTP
                         session holds the entry (hub_core_presence_join) */
} hub_who;

typedef struct hub_sub_req {
  const char *topic;
  size_t topic_len;
  unsigned node;
  hub_who who;
  bool has_since;
  uint64_t since_offset;
  const char *since_epoch;
  uint32_t history;   /* without since: replay up to this many latest */
  hub_blob *join_env; /* presence event to fan out, or NULL */
  bool no_presence;   /* the topic has presence off: no entry, no join */
  bool *listed;       /* out, if not NULL: whether it entered the presence list
                         (not when off, unlisted, or past max_presence) */
} hub_sub_req;

typedef enum hub_recovery {
  HUB_RECOVERY_NONE = 0, /* no `since` given */
  HUB_RECOVERED,
  HUB_TOO_OLD,
  HUB_EPOCH_CHANGED,
  HUB_OFFSET_AHEAD,
} hub_recovery;

typedef struct hub_replay {
  hub_blob **envs; /* publications to deliver first, oldest first (references) */
  uint32_t len;
} hub_replay;
void hub_replay_free(hub_replay *r);

/* Subscribe: count the node's interest, add presence, fan out join_env,
 * and return the current position and what to replay, atomically with
 * respect to publishes. Returns 0 or -1 (out of memory; nothing changed). */
int hub_core_subscribe(hub_core *c, const hub_sub_req *req, uint64_t now_ms, hub_position *pos,
                       hub_recovery *rec, hub_replay *replay);

/* Undo a subscribe; fans out leave_env (if not NULL and the subscriber was
 * in the presence list) to the others. */
void hub_core_unsubscribe(hub_core *c, const char *topic, size_t topic_len, unsigned node,
                          const hub_who *who, hub_blob *leave_env);

/* Presence without a subscription: a long-poll or SSE session is listed
 * between its requests too, while its deliveries come and go as unlisted
 * subscriptions. Join returns 1 when newly listed (join_env fanned out),
 * 2 when it already was (nothing sent), 0 when the list is full (counted
 * as not listed), -1 out of memory. Leave undoes a join that returned 0
 * or 1 and fans out leave_env if it was listed. */
int hub_core_presence_join(hub_core *c, const char *topic, size_t topic_len, const hub_who *who,
                           hub_blob *join_env);
void hub_core_presence_leave(hub_core *c, const char *topic, size_t topic_len, const hub_who *who,
                             hub_blob *leave_env);

/* History query (see PROTOCOL.md `history`). Returns 0, or 1 when since's
 * epoch is not the topic's (nothing returned), or -1 out of memory. */
int hub_core_history(hub_core *c, const char *topic, size_t topic_len, bool has_since,
                     uint64_t since_offset, const char *since_epoch, uint32_t limit,
                     uint64_t now_ms, hub_position *pos, hub_replay *out, bool *complete);

typedef struct hub_presence_list {
  struct hub_presence_item {
    char *client, *user, *info; /* info may be NULL */
  } * items;
  size_t len;
  bool complete; /* false: more subscribers than max_presence */
} hub_presence_list;
int hub_core_presence(hub_core *c, const char *topic, size_t topic_len, hub_presence_list *out);
void hub_presence_list_free(hub_presence_list *l);

typedef struct hub_topic_list {
  struct hub_topic_info {
    char *name;
    uint32_t subscribers, retained;
    hub_position pos;
  } * items;
  size_t len;
} hub_topic_list;
int hub_core_topics(hub_core *c, hub_topic_list *out);
void hub_topic_list_free(hub_topic_list *l);

/* Drop expired history, bring retained memory back under history_memory,
 * and forget topics with no subscriber, presence or history left (with
 * remote_events, only those hub_core_forget let go: a mirror is the
 * broker's). Returns how many topics remain. */
size_t hub_core_sweep(hub_core *c, uint64_t now_ms);

/* ---- mirroring a broker that numbers publications elsewhere (Redis) ----
 * The topic's position and history come from the broker; the core keeps
 * the same for the topics that have subscribers here and fans out. */

/* A publication numbered by the broker: retained and fanned out like a
 * publish when it follows the topic's newest in the same epoch. Returns 0
 * (applied), 1 (had it already: ignored), 2 (it does not follow: another
 * epoch, or a hole; nothing done, the caller resyncs the topic), or -1
 * (out of memory). */
int hub_core_apply(hub_core *c, const char *topic, size_t len, const char *epoch, uint64_t offset,
                   hub_blob *env, uint64_t skip_conn, uint64_t time_ms, uint64_t now_ms);

/* One retained publication of the broker's. */
typedef struct hub_sync_entry {
  uint64_t offset, time_ms;
  hub_blob *env; /* borrowed */
} hub_sync_entry;

/* The gap event for subscribers who continue after pos (why: "too_old",
 * "epoch_changed"). */
typedef hub_blob *(*hub_gap_fn)(const char *topic, size_t len, const hub_position *pos,
                                const char *why);

/* Bring a topic to the broker's state: its epoch, its newest offset and
 * the publications it retains (oldest first, consecutive offsets ending at
 * `offset`; those the topic has already are skipped). A topic without
 * subscribers here just takes that state. With subscribers, publications
 * that follow on from the topic's position are applied (fanned out); if
 * they do not (another epoch, or the broker no longer has what this node
 * missed), subscribers first get a gap event saying where they continue.
 * Returns 0, or -1 out of memory. */
int hub_core_sync(hub_core *c, const char *topic, size_t len, const char *epoch, uint64_t offset,
                  const hub_sync_entry *e, size_t n, hub_gap_fn gap, uint64_t now_ms);

/* An event that is not a publication (a join or leave from another node)
 * to this core's subscribers of the topic, except skip_conn. */
void hub_core_event(hub_core *c, const char *topic, size_t len, hub_blob *env, uint64_t skip_conn);

/* The topic's position, when the core knows the topic (and mirrors it:
 * not after hub_core_forget). */
bool hub_core_position(hub_core *c, const char *topic, size_t len, hub_position *pos);

/* Forget a topic that nobody here subscribes to (its mirror would go
 * stale); presence entries without a subscription (an HTTP session's)
 * stay, with the history and the position dropped (the next sync takes
 * the broker's whole state). */
void hub_core_forget(hub_core *c, const char *topic, size_t len);

/* Envelope bytes retained in all topics' history. */
size_t hub_core_retained_bytes(hub_core *c);
/* Topics known now. */
size_t hub_core_topic_count(hub_core *c);

#endif
