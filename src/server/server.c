/* The WebSocket server: listening, the opening handshake, routes, plain
 * HTTP on the same port, connection limits and graceful shutdown. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "io/listener.h"
#include "io/loop_internal.h"
#include "server/http_static.h"
#include "ws/ws_internal.h"

#define DX_MAX_REQUEST_HEADERS 64

struct dx_server_group {
  atomic_size_t count;
  size_t max;
};

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
static bool group_take(dx_server_group *g) {
  size_t n = atomic_load(&g->count);
  do {
    if (n >= g->max) return false;
  } while (!atomic_compare_exchange_weak(&g->count, &n, n + 1));
  return true;
}

static void group_give(dx_server_group *g, size_t n) {
  if (g && n) atomic_fetch_sub(&g->count, n);
}

struct dx_server {
  dx_loop *loop;
  dx_server_opts opts;
  dx_ws_config cfg;
  dx_listener *listener;     /* plain ws, or NULL */
  dx_listener *tls_listener; /* wss, or NULL */
  SSL_CTX *tls_ctx;
  char *tls_strs[4]; /* our copies of cert, key, CA paths and ciphers */
  dx_ws_route *routes;
  size_t max_data_size; /* largest per-connection user data of any route */
  /* Every connection, any phase, in a slot table: a slot holds a dx_ws
   * pointer, or (odd values) the index of the next free slot << 1 | 1.
   * A connection's id is its slot and a generation, so a stale id never
   * finds a newer connection that took the slot. */
  uintptr_t *slots;
  uint32_t slots_len, slots_cap;
  uint32_t free_slot; /* head of the free list, or NO_SLOT */
  uint32_t generation;
  size_t nconns;
  struct post_anchor *anchor; /* what posted jobs hold instead of srv */
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

/* Jobs posted from other threads hold this small anchor, not the server:
 * dx_server_free clears srv (the jobs then do nothing) and the server's
 * memory goes at the end of the turn as usual. The anchor goes with the
 * last reference: the server's, or that of the last job to run (a job
 * dropped by dx_loop_free leaks itself and the anchor, nothing more). */
typedef struct post_anchor {
  atomic_size_t refs;
  dx_server *srv; /* NULL once the server is freed; loop thread only */
} post_anchor;

static void anchor_unref(post_anchor *a) {
  if (a && atomic_fetch_sub(&a->refs, 1) == 1) free(a);
}

/* ---- the connection table ---- */

/* Free slots store the next free index << 1 | 1 in a uintptr_t, so indexes
 * stay below 2^31 (the table is capped far below that). */
#define NO_SLOT 0x7fffffffu

static int slot_add(dx_server *srv, dx_ws *ws) {
  uint32_t i = srv->free_slot;
  if (i != NO_SLOT) {
    srv->free_slot = (uint32_t)(srv->slots[i] >> 1);
  } else {
    if (srv->slots_len == srv->slots_cap) {
      if (srv->slots_cap >= NO_SLOT / 2) return DX_ENOMEM;
      uint32_t cap = srv->slots_cap ? srv->slots_cap * 2 : 64;
      uintptr_t *v = realloc(srv->slots, cap * sizeof *v);
      if (!v) return DX_ENOMEM;
      srv->slots = v;
      srv->slots_cap = cap;
    }
    i = srv->slots_len++;
  }
  if (++srv->generation == 0) srv->generation = 1; /* ids are never 0 */
  ws->id = (uint64_t)srv->generation << 32 | i;
  srv->slots[i] = (uintptr_t)ws;
  return 0;
}

static void slot_del(dx_server *srv, dx_ws *ws) {
  uint32_t i = (uint32_t)ws->id;
  srv->slots[i] = (uintptr_t)srv->free_slot << 1 | 1;
  srv->free_slot = i;
}

/* The connection in slot i, or NULL for a free slot. */
static inline dx_ws *slot_ws(const dx_server *srv, uint32_t i) {
  uintptr_t e = srv->slots[i];
  return (e & 1) ? NULL : (dx_ws *)e;
}

/* ---- routes ---- */

static dx_ws_route *find_route(const dx_server *srv, const char *path, size_t len) {
  dx_ws_route *any = NULL;
  for (dx_ws_route *r = srv->routes; r; r = r->next) {
    if (strlen(r->path) == len && memcmp(r->path, path, len) == 0) return r;
    if (strcmp(r->path, "*") == 0) any = r;
  }
  return any;
}

int dx_server_route(dx_server *srv, const char *path, const dx_ws_handlers *handlers, void *user) {
  DX__CHECK_THREAD(srv->loop);
  if (srv->freed) return DX_ESTATE;
  if (!path || !handlers || (path[0] != '/' && strcmp(path, "*") != 0)) return DX_EINVAL;
  /* Connections are allocated at accept, before the route is known. */
  if ((srv->listener || srv->tls_listener) && handlers->data_size > srv->max_data_size)
    return DX_ESTATE;
  dx_ws_route *r = find_route(srv, path, strlen(path));
  if (!r || strcmp(r->path, path) != 0) {
    r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
      free(r);
      return DX_ENOMEM;
    }
    r->next = srv->routes;
    srv->routes = r;
  }
  r->h = *handlers;
  r->user = user;
  if (handlers->data_size > srv->max_data_size) srv->max_data_size = handlers->data_size;
  return 0;
}

static void free_protocols(char **p) {
  for (size_t i = 0; p && p[i]; i++) free(p[i]);
  free(p);
}

int dx_server_route_protocols(dx_server *srv, const char *path, const char *const *protocols) {
  DX__CHECK_THREAD(srv->loop);
  dx_ws_route *r = find_route(srv, path, strlen(path));
  if (!r || strcmp(r->path, path) != 0) return DX_EINVAL;
  size_t n = 0;
  while (protocols && protocols[n]) n++;
  char **copy = calloc(n + 1, sizeof *copy);
  if (!copy) return DX_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!(copy[i] = strdup(protocols[i]))) {
      free_protocols(copy);
      return DX_ENOMEM;
    }
  }
  free_protocols(r->protocols);
  r->protocols = copy;
  return 0;
}

/* ---- connections ---- */

static void maybe_finish_shutdown(dx_server *srv);
static void shutdown_timeout(dx_timer *t);

static void on_released(dx_ws *ws) {
  dx_server *srv = ws->owner;
  slot_del(srv, ws);
  srv->nconns--;
  group_give(srv->opts.group, 1);
  if (ws->http_body_held) {
    dx__static_body_free(ws->http_body);
    ws->http_body = NULL;
  }
  free(ws->strs);
  ws->strs = NULL;
  /* Callers up the stack may still hold ws this turn. */
  dx_loop_free_later(srv->loop, ws, free);
  if (srv->shutting_down) maybe_finish_shutdown(srv);
}

static void on_handshake_read(dx_ws *ws, uint8_t *data, size_t len);

/* A large static file: the next chunk once the connection drained. */
static void on_http_drain(dx_ws *ws) {
  int rc = dx__static_body_pump(&ws->stream, ws->http_body);
  if (rc == 0) return;
  ws->http_body = NULL; /* sent whole, or failed: either way it is freed */
  dx__ws_finish(ws);
}

static const dx_ws_owner_ops server_ops = {on_handshake_read, on_released, true, on_http_drain};

/* Answer with a complete HTTP response, then close. */
static void respond(dx_ws *ws, int status, const char *body) {
  char buf[512];
  int n = dx_http_build_error(buf, sizeof buf, status, body);
  if (n > 0) dx_stream_write(&ws->stream, buf, (size_t)n);
  dx__ws_begin_http(ws);
  dx__ws_finish(ws);
}

static void reject(dx_ws *ws, const dx_http_request *req, int status, const char *why) {
  char peer[64];
  dx_log_info("%s: %.*s %.*s: %d %s (%s)", dx__ws_peer(ws, peer, sizeof peer),
              req ? (int)req->method.len : 1, req ? req->method.ptr : "-",
              req ? (int)req->target.len : 1, req ? req->target.ptr : "-", status,
              dx_http_reason(status), why);
  respond(ws, status, why);
}

static bool origin_allowed(const dx_server *srv, const dx_upgrade_request *up) {
  if (!srv->opts.origins) return true;
  for (size_t i = 0; srv->opts.origins[i]; i++) {
    const char *o = srv->opts.origins[i];
    if (strlen(o) == up->origin.len && strncasecmp(o, up->origin.ptr, up->origin.len) == 0)
      return true;
  }
  return false;
}

/* Keep "path\0query\0protocol\0" for the connection's lifetime. The
 * protocol slot has room for any subprotocol the client offered (the total
 * length of its Sec-WebSocket-Protocol values), so that dx_ws_set_protocol
 * can replace the choice in place without moving path and query, whose
 * pointers the application may already hold. */
static int keep_strings(dx_ws *ws, const dx_http_request *req, const char *protocol) {
  size_t pl = protocol ? strlen(protocol) : 0;
  size_t room = pl;
  for (size_t i = 0, offered = 0; i < req->num_headers; i++) {
    if (req->headers[i].name.len == 22 &&
        strncasecmp(req->headers[i].name.ptr, "Sec-WebSocket-Protocol", 22) == 0)
      offered += req->headers[i].value.len;
    if (offered > room) room = offered;
  }
  char *s = malloc(req->path.len + req->query.len + room + 3);
  if (!s) return DX_ENOMEM;
  memcpy(s, req->path.ptr, req->path.len);
  s[req->path.len] = 0;
  char *q = s + req->path.len + 1;
  memcpy(q, req->query.ptr, req->query.len);
  q[req->query.len] = 0;
  char *p = q + req->query.len + 1;
  if (protocol) memcpy(p, protocol, pl);
  p[pl] = 0;
  free(ws->strs);
  ws->strs = s;
  return 0;
}

/* Server only, inside on_upgrade: `proto` must be one of the client's
 * offers; it is copied into the slot keep_strings reserved. */
int dx_ws_set_protocol(dx_ws *ws, const char *proto) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  if (!ws->in_upgrade || !ws->strs) return DX_ESTATE;
  if (!proto || !proto[0]) return DX_EINVAL;
  size_t n;
  const dx_http_header *h = dx__ws_request(ws, &n);
  dx_http_request req = {.headers = (dx_http_header *)h, .num_headers = n};
  if (dx_ws_select_protocol(&req, &proto, 1) != 0) return DX_EINVAL;
  char *slot = ws->strs + strlen(ws->strs) + 1; /* query */
  slot += strlen(slot) + 1;                     /* protocol: room for any offer */
  memcpy(slot, proto, strlen(proto) + 1);
  return 0;
}

/* The upgrade failed after the route was chosen. If on_upgrade accepted
 * it, it may have attached resources: on_error and on_close release them
 * (on_open never comes), as ws.h promises. Otherwise no handler saw the
 * connection, and none will. Then answer `why` with a 500. */
static void fail_upgrade(dx_ws *ws, const dx_http_request *req, bool accepted, int err,
                         const char *why) {
  if (accepted) dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, err, why);
  ws->route = NULL;
  reject(ws, req, 500, why);
}

static void answer_request(dx_ws *ws, dx_http_request *req, uint8_t *rest, size_t rest_len) {
  dx_server *srv = ws->owner;
  bool wants_upgrade = dx_http_find(req->headers, req->num_headers, "Upgrade") ||
                       dx_http_find(req->headers, req->num_headers, "Sec-WebSocket-Key");
  dx_ws_route *route = find_route(srv, req->path.ptr, req->path.len);

  if (!wants_upgrade) {
    bool get = req->method.len == 3 && memcmp(req->method.ptr, "GET", 3) == 0;
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    if (!srv->opts.no_healthz && (get || head) && req->path.len == 8 &&
        memcmp(req->path.ptr, "/healthz", 8) == 0) {
      const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                        "Cache-Control: no-store\r\nConnection: close\r\n\r\nok\n";
      /* HEAD: everything but the 3-byte body "ok\n". (This was
       * sizeof ok - 5, which also cut the last LF of the blank line that
       * ends the head, so HEAD /healthz got a truncated response.) */
      dx_stream_write(&ws->stream, ok, get ? sizeof ok - 1 : sizeof ok - 1 - 3);
      dx__ws_begin_http(ws);
      dx__ws_finish(ws);
      return;
    }
    if (srv->static_dir && (get || head)) {
      dx_static_body *body;
      int status = dx__http_serve_static(&ws->stream, srv->static_dir, req, head, &body);
      if (status != 404) {
        if (status >= 400) {
          char peer[64];
          dx_log_debug("%s: %.*s %.*s: %d", dx__ws_peer(ws, peer, sizeof peer),
                       (int)req->method.len, req->method.ptr, (int)req->target.len, req->target.ptr,
                       status);
        }
        dx__ws_begin_http(ws);
        if (body) {
          ws->http_body = body; /* more on each drain (on_http_drain) */
          ws->http_body_held = true;
          dx__ws_arm_http(ws);
        } else {
          dx__ws_finish(ws);
        }
        return;
      }
    }
    /* With static files, "*" is the WebSocket fallback, not a claim on
     * every path: a missing file is 404 for a browser. */
    if (route && !(srv->static_dir && strcmp(route->path, "*") == 0)) {
      reject(ws, req, 426, "this is a WebSocket endpoint: connect with a WebSocket client");
      return;
    }
    reject(ws, req, 404, "not found");
    return;
  }

  dx_upgrade_request up;
  int rc = dx_upgrade_check(req, &up);
  if (rc) {
    reject(ws, req, dx_http_status_for_error(rc), dx_strerror(rc));
    return;
  }
  if (!route) {
    reject(ws, req, 404, "no WebSocket endpoint at this path");
    return;
  }
  if (!origin_allowed(srv, &up)) {
    reject(ws, req, 403, "origin not allowed");
    return;
  }
  dx__http_terminate(req->headers, req->num_headers);
  dx__ws_set_request(ws, req->headers, req->num_headers);

  const char *protocol = NULL;
  if (route->protocols) {
    size_t n = 0;
    while (route->protocols[n]) n++;
    int i = dx_ws_select_protocol(req, (const char *const *)route->protocols, n);
    if (i >= 0) protocol = route->protocols[i];
  }
  if (keep_strings(ws, req, protocol)) {
    reject(ws, req, 500, "out of memory");
    return;
  }
  ws->route = route; /* so dx_ws_data works in on_upgrade */
  bool accepted = false;
  if (route->h.on_upgrade) {
    ws->in_upgrade = true;
    int status = route->h.on_upgrade(ws, route->user);
    ws->in_upgrade = false;
    if (status != 0) {
      ws->route = NULL;
      if (status < 400 || status > 599) status = 500;
      reject(ws, req, status, "rejected by the application");
      return;
    }
    accepted = true;
  }
  char ext[160];
  const char *ext_resp = NULL;
  if (srv->opts.deflate.enable) {
    dx_pmd_params pp;
    if (dx_pmd_negotiate_server(up.extensions, up.num_extensions, &srv->opts.deflate, &pp, ext,
                                sizeof ext) == 1) {
      if ((!srv->pmd_shared && !(srv->pmd_shared = dx_pmd_shared_new())) ||
          !(ws->pmd = dx_pmd_new(&pp, &srv->opts.deflate, srv->pmd_shared))) {
        fail_upgrade(ws, req, accepted, DX_ENOMEM, "out of memory");
        return;
      }
      ext_resp = ext;
    }
  }
  char resp[512];
  int n = dx_ws_build_response(resp, sizeof resp, up.accept, dx_ws_protocol(ws), ext_resp, NULL);
  rc = n < 0 ? n : dx_stream_write(&ws->stream, resp, (size_t)n);
  if (rc != 0) {
    fail_upgrade(ws, req, accepted, rc, "could not build the response");
    return;
  }
  char peer[64];
  dx_log_debug("%s: upgraded %s%s%s", dx__ws_peer(ws, peer, sizeof peer), dx_ws_path(ws),
               dx_ws_protocol(ws) ? " protocol " : "",
               dx_ws_protocol(ws) ? dx_ws_protocol(ws) : "");
  /* rest points into the read buffer or hs; hs is only freed after. */
  dx__ws_open(ws, DX_ROLE_SERVER, route, rest, rest_len);
  dx__ws_drop_handshake(ws);
}

static void handle_request(dx_ws *ws, dx_http_request *req, uint8_t *rest, size_t rest_len) {
  answer_request(ws, req, rest, rest_len);
  dx__ws_set_request(NULL, NULL, 0); /* the headers live on our caller's stack */
}

static void on_handshake_read(dx_ws *ws, uint8_t *data, size_t len) {
  dx_server *srv = ws->owner;
  if (!ws->hs && len && data[0] == 0x16 && !dx__stream_is_tls(&ws->stream)) {
    /* A TLS ClientHello on a plain port: no HTTP answer would be read. */
    char peer[64];
    dx_log_info("%s: TLS handshake on the plain ws:// port (the client wants wss://); closing",
                dx__ws_peer(ws, peer, sizeof peer));
    dx_stream_abort(&ws->stream);
    return;
  }
  uint8_t *buf = data;
  size_t have = len;
  if (ws->hs) {
    /* Gather across reads, up to the limit (the parser reports 431). */
    /* Keep every byte: frames may follow the head in the same read. The
     * head stays bounded (the parser fails past max_size), so this grows
     * at most once, by one read. */
    if (ws->hs_len + len > srv->limits.max_size + 1) {
      uint8_t *grown = realloc(ws->hs, ws->hs_len + len);
      if (!grown) {
        reject(ws, NULL, 500, "out of memory");
        return;
      }
      ws->hs = grown;
    }
    memcpy(ws->hs + ws->hs_len, data, len);
    ws->hs_len += (uint32_t)len;
    buf = ws->hs;
    have = ws->hs_len;
    /* The head can only end with a new line: a client dribbling bytes
     * costs one parse per line, not one per read (which made a slow head
     * quadratic). The size limit is still enforced as bytes arrive. */
    if (!memchr(data, '\n', len) && have < srv->limits.max_size) return;
  }
  dx_http_header headers[DX_MAX_REQUEST_HEADERS];
  dx_http_request req = {.headers = headers, .num_headers = DX_MAX_REQUEST_HEADERS};
  int rc = dx_http_parse_request((const char *)buf, have, &req, &srv->limits);
  if (rc == DX_EAGAIN) {
    if (!ws->hs) {
      ws->hs = malloc(srv->limits.max_size + 1);
      if (!ws->hs) {
        reject(ws, NULL, 500, "out of memory");
        return;
      }
      memcpy(ws->hs, data, len);
      ws->hs_len = (uint32_t)len;
    }
    return;
  }
  if (rc < 0) {
    reject(ws, NULL, dx_http_status_for_error(rc), dx_strerror(rc));
    return;
  }
  handle_request(ws, &req, buf + rc, have - (size_t)rc);
}

static void accept_conn(dx_server *srv, int fd, SSL_CTX *tls);

static void on_accept(void *user, int fd, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addr;
  (void)addrlen;
  accept_conn(user, fd, NULL);
}

static void on_accept_tls(void *user, int fd, const struct sockaddr *addr, socklen_t addrlen) {
  (void)addr;
  (void)addrlen;
  dx_server *srv = user;
  accept_conn(srv, fd, srv->tls_ctx);
}

static void accept_conn(dx_server *srv, int fd, SSL_CTX *tls) {
  if (srv->shutting_down) {
    close(fd);
    return;
  }
  dx_server_group *g = srv->opts.group;
  size_t limit = srv->opts.max_connections;
  bool full = srv->nconns >= limit;
  if (!full && g && !group_take(g)) {
    full = true;
    limit = g->max;
  }
  if (full) {
    /* No room: answer 503 without allocating anything and close. */
    char buf[256];
    int n = dx_http_build_error(buf, sizeof buf, 503, "server is at its connection limit");
    if (n > 0 && write(fd, buf, (size_t)n) < 0) { /* best effort */
    }
    close(fd);
    uint64_t now = dx_loop_now(srv->loop);
    if (now - srv->limit_warned > 10000 || !srv->limit_warned) {
      dx_log_warn("connection limit (%zu) reached: answering 503", limit);
      srv->limit_warned = now;
    }
    return;
  }
  dx_ws *ws = calloc(1, dx__ws_alloc_size(srv->max_data_size));
  if (!ws || slot_add(srv, ws) != 0) {
    close(fd);
    free(ws);
    group_give(g, 1);
    return;
  }
  if (dx__ws_init(ws, srv->loop, fd, &server_ops, srv, &srv->cfg, tls, NULL) != 0) {
    slot_del(srv, ws);
    close(fd);
    free(ws);
    group_give(g, 1);
    return;
  }
  srv->nconns++;
}

/* ---- lifecycle ---- */

dx_server *dx_server_new(dx_loop *loop, const dx_server_opts *opts) {
  dx_server *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->loop = loop;
  srv->free_slot = NO_SLOT;
  if (!(srv->anchor = calloc(1, sizeof *srv->anchor))) goto fail;
  atomic_init(&srv->anchor->refs, 1);
  srv->anchor->srv = srv;
  if (opts) srv->opts = *opts;
  dx_server_opts *o = &srv->opts;
  if (o->host && !(srv->host = strdup(o->host))) goto fail;
  o->host = srv->host;
  if (o->static_dir && !(srv->static_dir = strdup(o->static_dir))) goto fail;
  o->static_dir = srv->static_dir;
  const char **strs[4] = {&o->tls.cert_file, &o->tls.key_file, &o->tls.ca_file, &o->tls.ciphers};
  for (int i = 0; i < 4; i++) {
    if (*strs[i] && !(srv->tls_strs[i] = strdup(*strs[i]))) goto fail;
    *strs[i] = srv->tls_strs[i];
  }
  if (!o->port) o->port = 8080;
  if (o->port < 0) o->port = 0; /* negative asks for an ephemeral port too */
  if (!o->backlog) o->backlog = 1024;
  if (!o->max_connections) o->max_connections = 100000;
  if (!o->max_handshake) o->max_handshake = 8192;
  srv->limits.max_size = o->max_handshake;
  srv->limits.max_line = o->max_handshake < 4096 ? o->max_handshake : 4096;
  srv->limits.max_headers = DX_MAX_REQUEST_HEADERS;
  dx__ws_config_from(&srv->cfg, o);
  dx_timer_init(loop, &srv->shutdown_timer, shutdown_timeout);
  dx_deferred_init(&srv->shutdown_done);
  return srv;
fail:
  free(srv->anchor);
  free(srv->host);
  free(srv->static_dir);
  for (int i = 0; i < 4; i++) free(srv->tls_strs[i]);
  free(srv);
  return NULL;
}

int dx_server_listen(dx_server *srv) {
  DX__CHECK_THREAD(srv->loop);
  if (srv->freed) return DX_ESTATE;
  if (srv->listener || srv->tls_listener) return DX_ESTATE;
  dx_server_opts *o = &srv->opts;
  dx_listener_opts lo = {.backlog = o->backlog, .reuseport = o->reuseport};
  const char *host = o->host ? o->host : "0.0.0.0";
  bool tls = o->tls.cert_file != NULL;
  if (tls) {
    char err[300];
    if (!(srv->tls_ctx = dx__tls_server_ctx(&o->tls, err, sizeof err))) {
      dx_log_error("%s", err);
      return DX_ETLS;
    }
  }
  /* Plain ws on `port` unless TLS took it (TLS without a separate port). */
  if (!tls || o->tls_port) {
    int rc =
        dx_listener_open(srv->loop, host, (uint16_t)o->port, &lo, on_accept, srv, &srv->listener);
    if (rc) return rc;
  }
  if (tls) {
    int port = o->tls_port ? (o->tls_port < 0 ? 0 : o->tls_port) : o->port;
    int rc = dx_listener_open(srv->loop, host, (uint16_t)port, &lo, on_accept_tls, srv,
                              &srv->tls_listener);
    if (rc) {
      if (srv->listener) dx_listener_close(srv->listener);
      srv->listener = NULL;
      return rc;
    }
  }
  return 0;
}

int dx_server_port(const dx_server *srv) {
  if (srv->listener) return dx_listener_port(srv->listener);
  if (srv->tls_listener) return dx_listener_port(srv->tls_listener);
  return srv->opts.port;
}

int dx_server_tls_port(const dx_server *srv) {
  return srv->tls_listener ? dx_listener_port(srv->tls_listener) : 0;
}

int dx_server_reload_tls(dx_server *srv) {
  DX__CHECK_THREAD(srv->loop);
  if (!srv->tls_ctx) return DX_ESTATE;
  char err[300];
  SSL_CTX *ctx = dx__tls_server_ctx(&srv->opts.tls, err, sizeof err);
  if (!ctx) {
    dx_log_error("TLS reload failed, keeping the old certificate: %s", err);
    return DX_ETLS;
  }
  /* Open connections hold their own reference to the old context. */
  SSL_CTX_free(srv->tls_ctx);
  srv->tls_ctx = ctx;
  dx_log_info("TLS certificate reloaded from %s", srv->opts.tls.cert_file);
  return 0;
}

size_t dx_server_connections(const dx_server *srv) {
  if (dx__loop_assert_thread(srv->loop)) return 0;
  return srv->nconns;
}

void dx_server_each(dx_server *srv, void (*fn)(dx_ws *ws, void *arg), void *arg) {
  DX__CHECK_THREAD_VOID(srv->loop);
  /* fn may close connections (their slots free up; none is added). */
  for (uint32_t i = 0; i < srv->slots_len && !srv->freed; i++) {
    dx_ws *ws = slot_ws(srv, i);
    if (ws && ws->phase == DX_WS_OPEN) fn(ws, arg);
  }
}

int dx_server_broadcast(dx_server *srv, unsigned opcode, const void *data, size_t len) {
  DX__CHECK_THREAD(srv->loop);
  dx_msg *m = dx_msg_new(opcode, data, len);
  if (!m) return opcode == DX_OP_TEXT || opcode == DX_OP_BINARY ? DX_ENOMEM : DX_EINVAL;
  int n = 0;
  for (uint32_t i = 0; i < srv->slots_len; i++) {
    dx_ws *ws = slot_ws(srv, i); /* a slow connection may be closed by the send */
    if (ws && ws->phase == DX_WS_OPEN && dx_ws_send_msg(ws, m) >= 0) n++;
  }
  dx_msg_free(m);
  return n;
}

dx_ws *dx_server_find(dx_server *srv, uint64_t id) {
  if (dx__loop_assert_thread(srv->loop)) return NULL;
  uint32_t i = (uint32_t)id;
  if (i >= srv->slots_len) return NULL;
  dx_ws *ws = slot_ws(srv, i);
  return ws && ws->id == id && ws->phase == DX_WS_OPEN ? ws : NULL;
}

/* ---- work handed over from other threads ---- */

typedef struct post_job {
  post_anchor *anchor;
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
  anchor_unref(j->anchor);
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
    anchor_unref(j->anchor);
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

static void run_done(dx_loop *loop, void *arg) {
  dx_server *srv = arg;
  (void)loop;
  if (srv->freed) return;
  dx_timer_stop(&srv->shutdown_timer);
  if (srv->done) {
    void (*done)(dx_server *, void *) = srv->done;
    srv->done = NULL;
    done(srv, srv->done_arg);
  }
}

static void maybe_finish_shutdown(dx_server *srv) {
  /* A handler may have freed the server (which cancelled run_done): do not
   * queue it again on memory that goes at the end of the turn. */
  if (srv->freed) return;
  if (srv->nconns == 0 && !dx_deferred_pending(&srv->shutdown_done))
    dx_loop_defer(srv->loop, &srv->shutdown_done, run_done, srv);
}

static void shutdown_timeout(dx_timer *t) {
  dx_server *srv = dx_container_of(t, dx_server, shutdown_timer);
  if (srv->nconns)
    dx_log_info("shutdown: %zu connection(s) did not close in time; dropping them", srv->nconns);
  /* on_close may free the server, which delivers the rest itself. */
  for (uint32_t i = 0; i < srv->slots_len && !srv->freed; i++) {
    dx_ws *ws = slot_ws(srv, i);
    if (!ws) continue;
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, 0, NULL);
    dx_stream_abort(&ws->stream);
  }
  maybe_finish_shutdown(srv);
}

void dx_server_shutdown(dx_server *srv, int timeout_ms, void (*done)(dx_server *, void *),
                        void *arg) {
  DX__CHECK_THREAD_VOID(srv->loop);
  if (srv->freed) return; /* from an on_close that dx_server_free delivered */
  srv->done = done;
  srv->done_arg = arg;
  if (!srv->shutting_down) {
    srv->shutting_down = true;
    if (srv->listener) {
      dx_listener_close(srv->listener);
      srv->listener = NULL;
    }
    if (srv->tls_listener) {
      dx_listener_close(srv->tls_listener);
      srv->tls_listener = NULL;
    }
    size_t open = 0;
    for (uint32_t i = 0; i < srv->slots_len; i++) {
      dx_ws *ws = slot_ws(srv, i);
      if (!ws) continue;
      if (ws->phase == DX_WS_OPEN) {
        dx_ws_close(ws, DX_CLOSE_GOING_AWAY, "server shutting down");
        open++;
      } else if (ws->phase == DX_WS_HANDSHAKE) {
        dx_stream_abort(&ws->stream);
      }
    }
    dx_log_info("shutting down: closing %zu WebSocket connection(s) with 1001", open);
    dx_timer_start(&srv->shutdown_timer, timeout_ms > 0 ? (uint64_t)timeout_ms : 0, 0);
  }
  maybe_finish_shutdown(srv);
}

/* What the server owns, released at the end of the loop turn so that
 * dx_server_free may run inside a handler (the code that called it still
 * reads the server and its routes until it returns). */
static void free_server_memory(void *p) {
  dx_server *srv = p;
  for (dx_ws_route *r = srv->routes, *next; r; r = next) {
    next = r->next;
    free(r->path);
    free_protocols(r->protocols);
    free(r);
  }
  free(srv->host);
  free(srv->static_dir);
  dx_pmd_shared_free(srv->pmd_shared);
  SSL_CTX_free(srv->tls_ctx);
  for (int i = 0; i < 4; i++) free(srv->tls_strs[i]);
  free(srv->slots);
  free(srv);
}

void dx_server_free(dx_server *srv) {
  if (!srv) return;
  DX__CHECK_THREAD_VOID(srv->loop);
  if (srv->freed) return; /* again within the turn (from on_close, say) */
  srv->freed = true;
  srv->done = NULL; /* never called once freed */
  dx_timer_stop(&srv->shutdown_timer);
  dx_deferred_cancel(&srv->shutdown_done);
  if (srv->listener) dx_listener_close(srv->listener);
  if (srv->tls_listener) dx_listener_close(srv->tls_listener);
  srv->listener = srv->tls_listener = NULL;
  /* Connections still open hear on_close (1006) once, then finish on their
   * own without the server. */
  for (uint32_t i = 0; i < srv->slots_len; i++) {
    dx_ws *ws = slot_ws(srv, i);
    if (!ws) continue;
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, 0, NULL);
    if (ws->http_body_held && ws->http_body) { /* a static download cut short */
      dx__static_body_free(ws->http_body);
      ws->http_body = NULL;
    }
    dx__ws_orphan(ws, srv->loop);
    srv->slots[i] = (uintptr_t)NO_SLOT << 1 | 1; /* gone from the table */
  }
  srv->slots_len = 0;
  srv->free_slot = NO_SLOT;
  group_give(srv->opts.group, srv->nconns); /* dropped: their slots are free */
  srv->nconns = 0;
  srv->anchor->srv = NULL; /* posted jobs still queued do nothing */
  anchor_unref(srv->anchor);
  srv->anchor = NULL;
  dx_loop_free_later(srv->loop, srv, free_server_memory);
}
