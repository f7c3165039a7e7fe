/* Connection ids and the thread-safe sends: dx_ws_id, dx_server_find,
 * dx_server_post_send and dx_server_post_broadcast. Other threads name
 * connections by id; an id that outlived its connection finds nothing, and
 * a posted message to it is dropped, never sent to a newer connection that
 * took the same slot. */
#include <pthread.h>

#include "server_helpers.h"
#include "test.h"

#define N 3

static uint64_t ids[N + 2];
static int nids;

static void note_open(dx_ws *ws, void *user) {
  (void)user;
  if (nids < N + 2) ids[nids++] = dx_ws_id(ws);
}

static dx_ws_handlers handlers(void) { return (dx_ws_handlers){.on_open = note_open}; }

TEST(ids_name_open_connections_only) {
  nids = 0;
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = handlers();
  CHECK_EQ_INT(dx_server_route(srv, "/", &h, NULL), 0);
  int port = start_listening(srv);
  raw *r[N];
  for (int i = 0; i < N; i++) r[i] = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, nids == N, 5000);
  CHECK_EQ_INT(nids, N);
  for (int i = 0; i < N; i++) {
    CHECK(ids[i] != 0);
    dx_ws *ws = dx_server_find(srv, ids[i]);
    CHECK(ws != NULL);
    if (ws) CHECK(dx_ws_id(ws) == ids[i]);
    for (int k = 0; k < i; k++) CHECK(ids[k] != ids[i]);
  }
  CHECK(dx_server_find(srv, 0) == NULL);
  CHECK(dx_server_find(srv, ids[0] + 12345) == NULL);

  /* The first client leaves; its id stops matching. */
  raw_close(r[0]);
  RUN_UNTIL(loop, dx_server_connections(srv) == N - 1, 5000);
  CHECK(dx_server_find(srv, ids[0]) == NULL);
  /* A newcomer may take the freed slot, but not the old id. */
  raw *again = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, nids == N + 1, 5000);
  CHECK(ids[N] != ids[0]);
  CHECK((uint32_t)ids[N] == (uint32_t)ids[0]); /* the same slot, reused */
  CHECK(dx_server_find(srv, ids[0]) == NULL);
  CHECK(dx_server_find(srv, ids[N]) != NULL);
  /* A message posted to the stale id reaches nobody. */
  CHECK_EQ_INT(dx_server_post_send(srv, ids[0], DX_OP_TEXT, "stale", 5), 0);
  CHECK_EQ_INT(dx_server_post_send(srv, ids[N], DX_OP_TEXT, "fresh", 5), 0);
  ws_frame f;
  CHECK(raw_ws_next(loop, again, &f, 3000));
  CHECK_EQ_INT(f.len, 5);
  CHECK_MEM(f.data, "fresh", 5);
  ws_frame_free(&f);
  run_for(loop, 50);
  CHECK_EQ_INT(again->len, 0); /* nothing more */
  /* Bad arguments. */
  CHECK_EQ_INT(dx_server_post_send(srv, 0, DX_OP_TEXT, "x", 1), DX_EINVAL);
  CHECK_EQ_INT(dx_server_post_send(srv, ids[1], DX_OP_PING, "x", 1), DX_EINVAL);
  CHECK_EQ_INT(dx_server_post_broadcast(srv, DX_OP_CLOSE, "", 0), DX_EINVAL);
  teardown(loop, srv);
}

/* A worker thread sends to every connection by id and broadcasts, while
 * the loop thread closes one of the connections midway. The open ones get
 * every message, in order; ASan checks that nothing touched freed memory. */
typedef struct worker_arg {
  dx_server *srv;
  uint64_t ids[N];
  int per_conn;
  int errors;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  char buf[32];
  for (int k = 0; k < a->per_conn; k++) {
    for (int i = 0; i < N; i++) {
      int n = snprintf(buf, sizeof buf, "%d:%d", i, k);
      if (dx_server_post_send(a->srv, a->ids[i], DX_OP_TEXT, buf, (size_t)n) != 0) a->errors++;
    }
    if (k % 50 == 0 && dx_server_post_broadcast(a->srv, DX_OP_BINARY, "all", 3) != 0) a->errors++;
  }
  return NULL;
}

TEST(worker_thread_sends_by_id_while_connections_close) {
  nids = 0;
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = handlers();
  CHECK_EQ_INT(dx_server_route(srv, "/", &h, NULL), 0);
  int port = start_listening(srv);
  raw *r[N];
  for (int i = 0; i < N; i++) r[i] = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, nids == N, 5000);
  CHECK_EQ_INT(nids, N);
  worker_arg a = {.srv = srv, .per_conn = 500};
  memcpy(a.ids, ids, sizeof a.ids);
  pthread_t t;
  pthread_create(&t, NULL, worker, &a);
  /* Close connection 0 from the server side while messages pour in. */
  for (int i = 0; i < 3; i++) pump(loop);
  dx_ws *first = dx_server_find(srv, ids[0]);
  if (first) dx_ws_close(first, 1000, "bye");
  pthread_join(t, NULL);
  CHECK_EQ_INT(a.errors, 0);
  /* Connections 1 and 2: text k arrives in order, with the broadcasts
   * interleaved where they were posted. */
  for (int i = 1; i < N; i++) {
    int next = 0, bcasts = 0;
    ws_frame f;
    while (next < a.per_conn && raw_ws_next(loop, r[i], &f, 5000)) {
      if (f.opcode == DX_OP_BINARY) {
        bcasts++;
      } else {
        char want[32];
        snprintf(want, sizeof want, "%d:%d", i, next);
        if (f.len != strlen(want) || memcmp(f.data, want, f.len) != 0) {
          fprintf(stderr, "conn %d: got '%s', want '%s'\n", i, (char *)f.data, want);
          CHECK(0);
          ws_frame_free(&f);
          break;
        }
        next++;
      }
      ws_frame_free(&f);
    }
    CHECK_EQ_INT(next, a.per_conn);
    CHECK(bcasts >= 9); /* 10 posted; the last may follow the last text */
  }
  CHECK(dx_server_find(srv, ids[0]) == NULL);
  teardown(loop, srv);
}

/* Messages still queued when the loop thread frees the server keep its
 * memory alive until they have run, and are dropped. */
TEST(posts_queued_before_free_are_dropped_safely) {
  nids = 0;
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = handlers();
  CHECK_EQ_INT(dx_server_route(srv, "/", &h, NULL), 0);
  int port = start_listening(srv);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  RUN_UNTIL(loop, nids == 1, 5000);
  for (int i = 0; i < 20; i++) {
    CHECK_EQ_INT(dx_server_post_send(srv, ids[0], DX_OP_TEXT, "late", 4), 0);
    CHECK_EQ_INT(dx_server_post_broadcast(srv, DX_OP_TEXT, "late", 4), 0);
  }
  dx_server_free(srv); /* before the posts run */
  for (int i = 0; i < 10; i++) dx_loop_run_once(loop, 10);
  raw_read(r);
  /* Only what the dying server may send (a close, or nothing), no text. */
  ws_frame f;
  while (raw_ws_take(r, &f)) {
    CHECK(f.opcode != DX_OP_TEXT);
    ws_frame_free(&f);
  }
  raw_close(r);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

int main(void) {
  RUN(ids_name_open_connections_only);
  RUN(worker_thread_sends_by_id_while_connections_close);
  RUN(posts_queued_before_free_are_dropped_safely);
  return test_report();
}
