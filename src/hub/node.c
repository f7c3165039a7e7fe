#include "hub/node.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void hub_node_init(hub_node *n) { memset(n, 0, sizeof *n); }

void hub_node_free(hub_node *n) {
  size_t pos;
  for (hub_map_item *it = hub_map_first(&n->topics, &pos), *next; it; it = next) {
    next = hub_map_next(&n->topics, it, &pos);
    hub_local_topic *lt = (hub_local_topic *)it;
    free(lt->subs);
    free(lt);
  }
  hub_map_free(&n->topics);
}

int hub_member_find(const hub_member *m, const char *topic, size_t len) {
  for (uint32_t i = 0; i < m->nsubs; i++) {
    const hub_map_item *it = &m->subs[i].lt->item;
    if (it->key_len == len && !memcmp(it->key, topic, len)) return (int)i;
  }
  return -1;
}

static int grow(void **v, uint32_t *cap, size_t elem) {
  uint32_t n = *cap ? *cap * 2 : 4;
  void *p = realloc(*v, n * elem);
  if (!p) return -1;
  *v = p;
  *cap = n;
  return 0;
}

int hub_node_add(hub_node *n, hub_member *m, const char *topic, size_t len, uint64_t last,
                 bool presence) {
  if (m->nsubs == m->cap && grow((void **)&m->subs, &m->cap, sizeof *m->subs) != 0) return -1;
  hub_local_topic *lt = (hub_local_topic *)hub_map_get(&n->topics, topic, len);
  if (!lt) {
    lt = calloc(1, sizeof *lt + len + 1);
    if (!lt) return -1;
    char *key = (char *)(lt + 1);
    memcpy(key, topic, len);
    lt->item.key = key;
    lt->item.key_len = len;
    hub_map_put(&n->topics, &lt->item);
  }
  if (lt->len == lt->cap && grow((void **)&lt->subs, &lt->cap, sizeof *lt->subs) != 0) {
    if (!lt->len) {
      hub_map_del(&n->topics, &lt->item);
      free(lt);
    }
    return -1;
  }
  lt->subs[lt->len] = (hub_local_sub){m, last, m->nsubs, presence};
  m->subs[m->nsubs++] = (hub_msub){lt, lt->len++};
  lt->npresence += presence;
  atomic_fetch_add_explicit(&n->subscriptions, 1, memory_order_relaxed);
  return 0;
}

void hub_node_remove(hub_node *n, hub_member *m, uint32_t i) {
  hub_local_topic *lt = m->subs[i].lt;
  uint32_t j = m->subs[i].idx;
  atomic_fetch_sub_explicit(&n->subscriptions, 1, memory_order_relaxed);
  lt->npresence -= lt->subs[j].presence;
  /* Swap-remove from the topic, fixing the moved entry's back link. */
  lt->subs[j] = lt->subs[--lt->len];
  if (j < lt->len) lt->subs[j].m->subs[lt->subs[j].slot].idx = j;
  /* And from the member, fixing its moved subscription's back link. */
  m->subs[i] = m->subs[--m->nsubs];
  if (i < m->nsubs) m->subs[i].lt->subs[m->subs[i].idx].slot = i;
  if (!lt->len) {
    hub_map_del(&n->topics, &lt->item);
    free(lt->subs);
    free(lt);
  }
  if (!m->nsubs) {
    free(m->subs);
    m->subs = NULL;
    m->cap = 0;
  }
}

void hub_node_deliver(hub_node *n, const hub_fanout *f) {
  hub_local_topic *lt = (hub_local_topic *)hub_map_get(&n->topics, f->topic, f->topic_len);
  if (!lt) return;
  bool gap = f->gap_epoch != NULL;
  bool presence = f->offset == 0 && !gap;
  if (presence && !lt->npresence) return;
  void *prepared = NULL;
  const hub_transport *tr = NULL;
  uint64_t sent = 0, slow = 0, closed = 0;
  for (uint32_t i = 0; i < lt->len; i++) {
    hub_local_sub *s = &lt->subs[i];
    if (s->m->conn == f->skip_conn) {
      if (!presence && s->last < f->offset) s->last = f->offset;
      continue;
    }
    if (gap) {
      s->last = f->offset; /* continue from here, in the new epoch perhaps */
    } else if (presence) {
      if (!s->presence) continue;
    } else {
      if (s->last >= f->offset) continue; /* replayed already */
      s->last = f->offset;
    }
    if (!prepared || s->m->tr != tr) {
      if (prepared) tr->release(prepared);
      tr = s->m->tr;
      prepared = tr->prepare(f->env);
    }
    /* Out of memory for the shared copy: send this one a copy of its own. */
    int rc = prepared ? tr->send_prepared(s->m, prepared, f) : tr->send_one(s->m, f);
    sent += rc == 0;
    slow += rc == HUB_SEND_SLOW;
    closed += rc == HUB_SEND_CLOSED;
  }
  if (prepared) tr->release(prepared);
  atomic_fetch_add_explicit(&n->delivered, sent, memory_order_relaxed);
  atomic_fetch_add_explicit(&n->delivered_bytes, sent * f->env->len, memory_order_relaxed);
  if (slow) atomic_fetch_add_explicit(&n->dropped_slow, slow, memory_order_relaxed);
  if (closed) atomic_fetch_add_explicit(&n->dropped_closed, closed, memory_order_relaxed);
}
