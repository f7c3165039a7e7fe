/* The WebSocket server's lifecycle: create, listen, accept (with the
 * connection limits), graceful shutdown and free. The other parts live
 * beside it (server_internal.h lists them). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "server/http_static.h"
#include "server/server_internal.h"

/* ---- connections ---- */

static void maybe_finish_shutdown(dx_server *srv);
static void shutdown_timeout(dx_timer *t);

static void on_released(dx_ws *ws) {
  dx_server *srv = ws->owner;
  dx__server_slot_del(srv, ws);
  srv->nconns--;
  dx__server_group_give(srv->opts.group, 1);
  dx__server_http_gone(ws); /* a deferred handler request: on_gone */
  if (ws->http_body_held) {
    dx__static_body_free(dx__ws_pre(ws)->http_body);
    dx__ws_pre(ws)->http_body = NULL;
  }
  dx__strs_unref(ws->strs);
  ws->strs = NULL;
  /* Callers up the stack may still hold ws this turn. */
  dx_loop_free_later(srv->loop, ws, free);
  if (srv->shutting_down) maybe_finish_shutdown(srv);
}

static const dx_ws_owner_ops server_ops = {
    dx__server_on_request_bytes, on_released,   true, dx__server_on_http_drain,
    offsetof(dx_server, cfg),    dx__server_arm};

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
  if (!full && g && !dx__server_group_take(g)) {
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
  if (!ws || dx__server_slot_add(srv, ws) != 0) {
    close(fd);
    free(ws);
    dx__server_group_give(g, 1);
    return;
  }
  if (dx__ws_init(ws, srv->loop, fd, &srv->ws_owner, tls, NULL) != 0) {
    dx__server_slot_del(srv, ws);
    close(fd);
    free(ws);
    dx__server_group_give(g, 1);
    return;
  }
  srv->nconns++;
}

/* ---- lifecycle ---- */

dx_server *dx_server_new(dx_loop *loop, const dx_server_opts *opts) {
  dx_server *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->ws_owner.ws_ops = &server_ops;
  srv->loop = loop;
  srv->free_slot = DX_NO_SLOT;
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
  if (!o->max_body) o->max_body = (size_t)1 << 20;
  if (o->max_body > (size_t)1 << 30) o->max_body = (size_t)1 << 30;
  srv->limits.max_size = o->max_handshake;
  srv->limits.max_line = o->max_handshake < 4096 ? o->max_handshake : 4096;
  srv->limits.max_headers = DX_MAX_REQUEST_HEADERS;
  srv->cfg = (dx_ws_config){
      .proto = {.max_message = o->max_message, .max_frame = o->max_frame},
      .handshake_timeout = o->handshake_timeout,
      .ping_interval = o->ping_interval,
      .pong_timeout = o->pong_timeout,
      .idle_timeout = o->idle_timeout,
      .close_timeout = o->close_timeout,
      .max_buffered = o->max_buffered,
      .low_water = o->low_water,
      .backpressure = o->backpressure,
  };
  dx__ws_config_resolve(&srv->cfg);
  dx__server_timeouts_init(srv);
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
    dx_ws *ws = dx__server_slot_ws(srv, i);
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
      dx_ws *ws = dx__server_slot_ws(srv, i);
      if (!ws) continue;
      if (ws->phase == DX_WS_OPEN) {
        dx_ws_close(ws, DX_CLOSE_GOING_AWAY, "server shutting down");
        open++;
      } else if (ws->http_deferred && ws != srv->in_handler) {
        /* A deferred or streamed handler answer: on_gone, then let what
         * is queued out (a stream ends without its last chunk). */
        dx__server_http_gone(ws);
        dx__ws_begin_http(ws);
        dx__ws_finish(ws);
      } else if (ws->phase == DX_WS_HANDSHAKE && ws->http_served && !dx__ws_pre(ws)->hs.len) {
        /* An idle kept-alive HTTP connection: let its last response out. */
        dx__ws_begin_http(ws);
        dx__ws_finish(ws);
      } else if (ws->phase == DX_WS_HANDSHAKE && ws != srv->in_handler) {
        /* (A handler running now answers with "Connection: close".) */
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
  dx__server_free_routes(srv);
  dx__server_free_http_routes(srv);
  free(srv->host);
  free(srv->static_dir);
  dx_pmd_shared_free(srv->pmd_shared);
  SSL_CTX_free(srv->tls_ctx);
  for (int i = 0; i < 4; i++) free(srv->tls_strs[i]);
  free(srv->slots);
  free(srv->due);
  dx__strs_unref(srv->strs_cache);
  free(srv);
}

void dx_server_free(dx_server *srv) {
  if (!srv) return;
  DX__CHECK_THREAD_VOID(srv->loop);
  if (srv->freed) return; /* again within the turn (from on_close, say) */
  srv->freed = true;
  srv->done = NULL; /* never called once freed */
  dx_timer_stop(&srv->shutdown_timer);
  dx_timer_stop(&srv->sweep);
  dx_deferred_cancel(&srv->shutdown_done);
  if (srv->listener) dx_listener_close(srv->listener);
  if (srv->tls_listener) dx_listener_close(srv->tls_listener);
  srv->listener = srv->tls_listener = NULL;
  /* Connections still open hear on_close (1006) once, then finish on their
   * own without the server. */
  for (uint32_t i = 0; i < srv->slots_len; i++) {
    dx_ws *ws = dx__server_slot_ws(srv, i);
    if (!ws) continue;
    dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, 0, NULL);
    /* A deferred handler request: on_gone. */
    dx__server_http_gone(ws);
    if (ws->http_body_held && dx__ws_pre(ws)->http_body) { /* a static download cut short */
      dx__static_body_free(dx__ws_pre(ws)->http_body);
      dx__ws_pre(ws)->http_body = NULL;
    }
    dx__ws_orphan(ws, srv->loop);
    srv->slots[i] = (uintptr_t)DX_NO_SLOT << 1 | 1; /* gone from the table */
  }
  srv->slots_len = 0;
  srv->free_slot = DX_NO_SLOT;
  dx__server_group_give(srv->opts.group, srv->nconns); /* dropped: their slots are free */
  srv->nconns = 0;
  srv->anchor->srv = NULL; /* posted jobs still queued do nothing */
  dx__server_anchor_unref(srv->anchor);
  srv->anchor = NULL;
  dx_loop_free_later(srv->loop, srv, free_server_memory);
}
