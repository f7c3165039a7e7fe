/* The server's connections: the slot table behind connection ids, the
 * connection limit shared by a group of servers, and iteration and
 * broadcast over the open connections. */
#include <stdlib.h>

#include "server/server_internal.h"

/* ---- the group limit ---- */

dx_server_group *dx_server_group_new(size_t max_connections) {
  dx_server_group *g = malloc(sizeof *g);
  if (!g) return NULL;
  atomic_init(&g->count, 0);
  g->max = max_connections ? max_connections : 100000;
  return g;
}

void dx_server_group_free(dx_server_group *g) { free(g); }

size_t dx_server_group_connections(const dx_server_group *g) {
  return atomic_load(&((dx_server_group *)g)->count);
}

/* Take a slot unless the group is full. A compare-and-swap, not add then
 * undo: a failed attempt on one thread must not make another thread's
 * attempt see the group full. */
bool dx__server_group_take(dx_server_group *g) {
  size_t n = atomic_load(&g->count);
  do {
    if (n >= g->max) return false;
  } while (!atomic_compare_exchange_weak(&g->count, &n, n + 1));
  return true;
}

void dx__server_group_give(dx_server_group *g, size_t n) {
  if (g && n) atomic_fetch_sub(&g->count, n);
}

/* ---- the connection table ---- */

int dx__server_slot_add(dx_server *srv, dx_ws *ws) {
  uint32_t i = srv->free_slot;
  if (i != DX_NO_SLOT) {
    srv->free_slot = (uint32_t)(srv->slots[i] >> 1);
  } else {
    if (srv->slots_len == srv->slots_cap) {
      if (srv->slots_cap >= DX_NO_SLOT / 2) return DX_ENOMEM;
      uint32_t cap = srv->slots_cap ? srv->slots_cap * 2 : 64;
      uintptr_t *v = realloc(srv->slots, cap * sizeof *v);
      if (!v) return DX_ENOMEM;
      srv->slots = v;
      uint32_t *d = realloc(srv->due, cap * sizeof *d);
      if (!d) return DX_ENOMEM; /* slots grew; the next try grows due */
      srv->due = d;
      srv->slots_cap = cap;
    }
    i = srv->slots_len++;
  }
  if (++srv->generation == 0) srv->generation = 1; /* ids are never 0 */
  ws->id = (uint64_t)srv->generation << 32 | i;
  srv->slots[i] = (uintptr_t)ws;
  srv->due[i] = 0;
  return 0;
}

void dx__server_slot_del(dx_server *srv, dx_ws *ws) {
  uint32_t i = (uint32_t)ws->id;
  srv->slots[i] = (uintptr_t)srv->free_slot << 1 | 1;
  srv->due[i] = 0;
  srv->free_slot = i;
}

/* ---- open connections ---- */

size_t dx_server_connections(const dx_server *srv) {
  if (dx__loop_assert_thread(srv->loop)) return 0;
  return srv->nconns;
}

void dx_server_each(dx_server *srv, void (*fn)(dx_ws *ws, void *arg), void *arg) {
  DX__CHECK_THREAD_VOID(srv->loop);
  /* fn may close connections (their slots free up; none is added). */
  for (uint32_t i = 0; i < srv->slots_len && !srv->freed; i++) {
    dx_ws *ws = dx__server_slot_ws(srv, i);
    if (ws && ws->phase == DX_WS_OPEN) fn(ws, arg);
  }
}

int dx_server_broadcast(dx_server *srv, unsigned opcode, const void *data, size_t len) {
  DX__CHECK_THREAD(srv->loop);
  dx_msg *m = dx_msg_new(opcode, data, len);
  if (!m) return opcode == DX_OP_TEXT || opcode == DX_OP_BINARY ? DX_ENOMEM : DX_EINVAL;
  int n = 0;
  for (uint32_t i = 0; i < srv->slots_len; i++) {
    dx_ws *ws = dx__server_slot_ws(srv, i); /* a slow connection may be closed by the send */
    if (ws && ws->phase == DX_WS_OPEN && dx_ws_send_msg(ws, m) >= 0) n++;
  }
  dx_msg_free(m);
  return n;
}

dx_ws *dx_server_find(dx_server *srv, uint64_t id) {
  if (dx__loop_assert_thread(srv->loop)) return NULL;
  uint32_t i = (uint32_t)id;
  if (i >= srv->slots_len) return NULL;
  dx_ws *ws = dx__server_slot_ws(srv, i);
  return ws && ws->id == id && ws->phase == DX_WS_OPEN ? ws : NULL;
}
