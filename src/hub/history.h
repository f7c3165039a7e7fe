/* hub — a topic's retained publications: a ring of the latest ones, bounded
 * by count (the capacity) and by age (expire). Offsets in the ring are
 * consecutive, so finding "everything after offset N" is arithmetic, not a
 * search. Plain data: the caller passes the time in.
 *
 * Threads: none of its own (the topic table's lock covers it). */
#ifndef DX_HUB_HISTORY_H
#define DX_HUB_HISTORY_H

#include <stdint.h>

#include "hub/blob.h"

typedef struct hub_hist_entry {
  uint64_t offset;
  uint64_t time_ms;
  hub_blob *env; /* the envelope exactly as delivered (one reference) */
} hub_hist_entry;

typedef struct hub_history {
  hub_hist_entry *ring; /* grows to cap on demand; NULL while empty */
  uint32_t size;        /* allocated entries */
  uint32_t cap;         /* most entries kept (0: no history) */
  uint32_t start;       /* index of the oldest */
  uint32_t len;
  size_t bytes; /* envelope bytes retained */
} hub_history;

void hub_history_init(hub_history *h, uint32_t cap);
void hub_history_free(hub_history *h);

/* Append (taking a new reference to env), dropping the oldest when full.
 * `offset` must follow the newest one; if it does not (never expected), the
 * ring is cleared first so offsets stay consecutive. Returns 0 or -1 when
 * out of memory (then nothing is retained: the ring is cleared, so a resume
 * answers "too old" rather than replaying with a hole). */
int hub_history_push(hub_history *h, uint64_t offset, uint64_t time_ms, hub_blob *env);

/* Drop entries published before `cutoff_ms`. */
void hub_history_expire(hub_history *h, uint64_t cutoff_ms);

/* Drop the oldest entry (memory pressure). */
void hub_history_drop_oldest(hub_history *h);

/* Oldest and newest retained offsets; 0 when empty. */
uint64_t hub_history_first(const hub_history *h);
uint64_t hub_history_last(const hub_history *h);

/* The i-th retained entry, oldest first (i < len). */
static inline const hub_hist_entry *hub_history_at(const hub_history *h, uint32_t i) {
  uint32_t j = h->start + i;
  if (j >= h->size) j -= h->size;
  return &h->ring[j];
}

/* Index of the entry with this offset, or -1 when not retained. */
int64_t hub_history_find(const hub_history *h, uint64_t offset);

#endif
