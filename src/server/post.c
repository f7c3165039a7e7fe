/* Work handed over from other threads: dx_server_post_send and
 * dx_server_post_broadcast copy the message and run on the loop thread. */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

void dx__server_anchor_unref(dx_post_anchor *a) {
  if (a && atomic_fetch_sub(&a->refs, 1) == 1) free(a);
}

typedef struct post_job {
  dx_post_anchor *anchor;
  uint64_t id; /* 0: broadcast */
  unsigned opcode;
  size_t len;
  uint8_t data[];
} post_job;

static void run_post(dx_loop *loop, void *arg) {
  post_job *j = arg;
  (void)loop;
  dx_server *srv = j->anchor->srv;
  if (srv && !srv->freed) {
    if (j->id == 0) {
      dx_server_broadcast(srv, j->opcode, j->data, j->len);
    } else {
      dx_ws *ws = dx_server_find(srv, j->id);
      if (ws) dx_ws_send(ws, j->opcode, j->data, j->len); /* gone: dropped */
    }
  }
  dx__server_anchor_unref(j->anchor);
  free(j);
}

static int post(dx_server *srv, uint64_t id, unsigned opcode, const void *data, size_t len) {
  if (!srv || (opcode != DX_OP_TEXT && opcode != DX_OP_BINARY) || (len && !data)) return DX_EINVAL;
  if (len > SIZE_MAX - sizeof(post_job)) return DX_ENOMEM;
  post_job *j = malloc(sizeof *j + len);
  if (!j) return DX_ENOMEM;
  j->anchor = srv->anchor;
  j->id = id;
  j->opcode = opcode;
  j->len = len;
  if (len) memcpy(j->data, data, len);
  atomic_fetch_add(&j->anchor->refs, 1);
  int rc = dx_loop_post(srv->loop, run_post, j);
  if (rc) {
    dx__server_anchor_unref(j->anchor);
    free(j);
  }
  return rc;
}

int dx_server_post_send(dx_server *srv, uint64_t id, unsigned opcode, const void *data,
                        size_t len) {
  if (id == 0) return DX_EINVAL;
  return post(srv, id, opcode, data, len);
}

int dx_server_post_broadcast(dx_server *srv, unsigned opcode, const void *data, size_t len) {
  return post(srv, 0, opcode, data, len);
}
