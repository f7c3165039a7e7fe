/* duplex — what the files of src/server/ share: the server struct, the
 * connection table, and the entry points each file offers the others.
 *
 *   server.c      lifecycle: new, listen, accept, shutdown, free
 *   conns.c       the connection table (ids), the shared group limit,
 *                 iteration and broadcast
 *   routes.c      WebSocket routes and their subprotocols
 *   request.c     reading a request head and sending it on its way
 *   http_plain.c  plain HTTP answers: /healthz, static files, 404/426
 *   upgrade.c     the WebSocket upgrade
 *   http_handler.c plain HTTP handlers (dx_server_http): bodies, keep-alive,
 *                 the dx_http_req accessors and dx_http_respond
 *   http_stream.c  deferred and streamed handler answers (dx_http_defer,
 *                 dx_http_stream_*): long-polling and Server-Sent Events
 *   post.c        work handed over from other threads
 *   timeouts.c    connection timeouts: a deadline per slot, one sweep timer
 */
#ifndef DX_SERVER_INTERNAL_H
#define DX_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "duplex/server.h"
#include "io/listener.h"
#include "io/loop_internal.h"
#include "ws/ws_internal.h"

#define DX_MAX_REQUEST_HEADERS 64

/* Jobs posted from other threads hold this small anchor, not the server:
 * dx_server_free clears srv (the jobs then do nothing) and the server's
 * memory goes at the end of the turn as usual. The anchor goes with the
 * last reference: the server's, or that of the last job to run (a job
 * dropped by dx_loop_free leaks itself and the anchor, nothing more). */
typedef struct dx_post_anchor {
  atomic_size_t refs;
  dx_server *srv; /* NULL once the server is freed; loop thread only */
} dx_post_anchor;

/* A dx_server_http route: an exact path, or a prefix ending in '/'. */
typedef struct dx_http_route {
  struct dx_http_route *next;
  char *path;
  size_t len;
  bool prefix;
  bool pipelined; /* dx_server_http_pipelined: served behind deferred requests */
  dx_http_handler fn;
  void *user;
} dx_http_route;

/* Requests of pipelined routes served while the first one on a connection
 * still waits for its answer (each holds its answer until its turn). */
#define DX_HTTP_PIPELINE_MAX 32

struct dx_server {
  dx_ws_owner ws_owner; /* first: its connections find their ops here */
  dx_loop *loop;
  dx_server_opts opts;
  dx_ws_config cfg;
  dx_listener *listener;     /* plain ws, or NULL */
  dx_listener *tls_listener; /* wss, or NULL */
  SSL_CTX *tls_ctx;
  char *tls_strs[4]; /* our copies of cert, key, CA paths and ciphers */
  dx_ws_route *routes;
  size_t max_data_size; /* largest per-connection user data of any route */
  dx_http_route *http_routes;
  dx_ws *in_handler; /* the connection whose HTTP handler is running, or NULL */
  /* Every connection, any phase, in a slot table: a slot holds a dx_ws
   * pointer, or (odd values) the index of the next free slot << 1 | 1.
   * A connection's id is its slot and a generation, so a stale id never
   * finds a newer connection that took the slot. */
  uintptr_t *slots;
  uint32_t slots_len, slots_cap;
  uint32_t free_slot; /* head of the free list, or DX_NO_SLOT */
  uint32_t generation;
  /* Beside each slot, its connection's timeout (timeouts.c): loop ms
   * truncated to 32 bits, 0 = none. Same capacity as slots. */
  uint32_t *due;
  dx_timer sweep;      /* the next sweep over due[] */
  uint64_t sweep_at;   /* when sweep fires, while active */
  uint64_t last_sweep; /* when the last sweep ran */
  uint32_t grain;      /* ms: sweeps at most this often */
  size_t nconns;
  char *strs_cache;       /* the last connection's strings, shared by the next alike */
  dx_post_anchor *anchor; /* what posted jobs hold instead of srv */
  dx_http_limits limits;
  /* Shutdown. */
  bool shutting_down;
  bool freed; /* dx_server_free ran; the memory goes at the end of the turn */
  dx_timer shutdown_timer;
  dx_deferred shutdown_done;
  void (*done)(dx_server *, void *);
  void *done_arg;
  char *host;
  char *static_dir;
  dx_pmd_shared *pmd_shared; /* this loop's shared zlib streams */
  uint64_t limit_warned;     /* loop ms of the last "connection limit" warning */
};

/* ---- conns.c ---- */

/* Free slots store the next free index << 1 | 1 in a uintptr_t, so indexes
 * stay below 2^31 (the table is capped far below that). */
#define DX_NO_SLOT 0x7fffffffu

/* Give ws a slot and its id. Returns 0 or DX_ENOMEM. */
int dx__server_slot_add(dx_server *srv, dx_ws *ws);
void dx__server_slot_del(dx_server *srv, dx_ws *ws);

/* The connection in slot i, or NULL for a free slot. */
static inline dx_ws *dx__server_slot_ws(const dx_server *srv, uint32_t i) {
  uintptr_t e = srv->slots[i];
  return (e & 1) ? NULL : (dx_ws *)e;
}

struct dx_server_group {
  atomic_size_t count;
  size_t max;
};

/* Take a slot in the group unless it is full; give n back. */
bool dx__server_group_take(dx_server_group *g);
void dx__server_group_give(dx_server_group *g, size_t n);

/* ---- timeouts.c ---- */

/* Pick the sweep grain from srv->cfg (resolved) and bind the sweep timer. */
void dx__server_timeouts_init(dx_server *srv);

/* Owner op: start (ms >= 0) or stop (ms < 0) ws's timeout; when it comes,
 * dx__ws_timeout(ws) runs. */
void dx__server_arm(dx_ws *ws, int ms);

/* ---- routes.c ---- */

/* The route for this exact path, else the "*" route, else NULL. */
dx_ws_route *dx__server_find_route(const dx_server *srv, const char *path, size_t len);
void dx__server_free_routes(dx_server *srv);

/* ---- request.c ---- */

/* Bytes of a connection still reading its request (owner ops). */
void dx__server_on_request_bytes(dx_ws *ws, uint8_t *data, size_t len);

/* ---- http_plain.c ---- */

/* Answer with a complete HTTP error response, then close; reject also logs
 * the request (req may be NULL when it could not be parsed). */
void dx__server_respond(dx_ws *ws, int status, const char *body);
void dx__server_reject(dx_ws *ws, const dx_http_request *req, int status, const char *why);

/* A request without an upgrade: /healthz, a static file, or 426/404. */
void dx__server_answer_plain(dx_ws *ws, const dx_http_request *req, const dx_ws_route *route);

/* A large static file: the next chunk once the connection drained. */
void dx__server_on_http_drain(dx_ws *ws);

/* ---- upgrade.c ---- */

/* Answer an upgrade request on `route` (NULL: none matched): 101 and open,
 * or an error response. `rest` holds the bytes after the head. */
void dx__server_upgrade(dx_ws *ws, dx_http_request *req, dx_ws_route *route, uint8_t *rest,
                        size_t rest_len);

/* ---- http_handler.c ---- */

/* The handler route for a path: exact first, then the longest prefix. */
const dx_http_route *dx__server_find_http(const dx_server *srv, const char *path, size_t len);
void dx__server_free_http_routes(dx_server *srv);

/* Serve a request (head of head_len bytes parsed from buf[0..have)) with
 * its handler: gather the body, call the handler, answer. Returns the
 * request's length when the connection stays open for the next request
 * (the bytes after it are the next request's), or 0 when it closes or
 * waits for more of the body. */
size_t dx__server_serve_http(dx_ws *ws, const dx_http_route *route, dx_http_request *req,
                             uint8_t *buf, size_t have, size_t head_len);

/* Is the request valid for a handler and its body all in (have bytes
 * from its head of head_len)? Then serving it answers nothing at once. */
bool dx__server_http_whole(const dx_ws *ws, const dx_http_request *req, size_t have,
                           size_t head_len);

/* A request being served by a handler (http_handler.c); heap-allocated,
 * kept past the handler by dx_http_defer (http_stream.c), then held by the
 * connection in dx__ws_pre(ws)->http_body with ws->http_deferred set. */
struct dx_http_req {
  dx_ws *ws;
  const dx_http_request *r; /* NULL once the handler returned */
  const uint8_t *body;
  size_t body_len;
  int status;      /* as answered (or streamed); 0 until the head is queued */
  bool keep_alive; /* the client asked for it and the server allows it */
  bool head;       /* HEAD: no body in the response */
  bool http10;     /* an HTTP/1.0 request */
  bool in_handler; /* the handler call is running */
  bool deferred;   /* dx_http_defer ran */
  bool chunked;    /* streamed with Transfer-Encoding: chunked */
  bool finished;   /* the answer is complete */
  bool gone;       /* detached from the connection; freed at the end of the turn */
  bool waits_turn; /* behind the connection's first request: the answer is kept in `out` */
  bool pipelined;  /* its route is pipelined */
  void (*on_gone)(dx_http_req *req, void *user);
  void *user;
  dx_deferred resume;               /* after a kept-alive answer: serve the pipelined requests */
  struct dx_http_req *next_in_line; /* the next request served on the connection */
  uint8_t *out;                     /* waits_turn: the answer so far */
  size_t out_len, out_cap;
};

/* Queue the response head (status line, headers, `framing`: the
 * Content-Length or Transfer-Encoding line, or ""). 0 or DX_E*. */
int dx__server_http_head(dx_http_req *req, int status, const char *content_type,
                         const char *extra_headers, const char *framing);

/* ---- http_stream.c ---- */

/* Take the deferred request off the connection (it is answered). */
void dx__server_http_detach(dx_ws *ws);
/* The connection of a deferred request is going away: on_gone (unless
 * answered), detach, free at the end of the turn. */
void dx__server_http_gone(dx_ws *ws);
/* A deferred request was answered after its handler: close, or serve the
 * next request. */
void dx__server_http_complete(dx_http_req *req);
/* Bytes read while a deferred request waits: kept for later, in order. */
void dx__server_http_hold(dx_ws *ws, const uint8_t *data, size_t len);
/* Part of an answer: onto the connection, or kept while the request waits
 * its turn. 0, DX_ENOMEM or DX_ECLOSED. */
int dx__server_http_out(dx_http_req *req, const void *data, size_t len);
/* Bytes of an answer queued or kept (what max_buffered bounds). */
size_t dx__server_http_unsent(const dx_http_req *req);
/* May the next request be served now although one waits (both routes
 * pipelined, line not full)? */
bool dx__server_http_may_pipeline(const dx_ws *ws, const dx_http_route *next);
/* Put a request served behind the connection's first one at the end of the line. */
void dx__server_http_queue(dx_ws *ws, dx_http_req *req);

/* ---- post.c ---- */

void dx__server_anchor_unref(dx_post_anchor *a);

/* Does an Origin value match an allowlist entry (exact, or a subdomain
 * wildcard "*.example.com", optionally after a scheme)? (origin.c) */
bool dx__origin_match(const char *pattern, const char *origin, size_t len);

#endif /* DX_SERVER_INTERNAL_H */
