/* Reading requests: each head gathered across reads (proto/head_gather.h),
 * then sent on its way: the upgrade, a handler (which may keep the
 * connection for the next request, pipelined bytes included), or a plain
 * HTTP answer. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/server_internal.h"

typedef struct request_parse {
  dx_http_request req;
  const dx_http_limits *limits;
} request_parse;

static int parse_request(const uint8_t *buf, size_t len, void *arg) {
  request_parse *p = arg;
  p->req.num_headers = DX_MAX_REQUEST_HEADERS;
  return dx_http_parse_request((const char *)buf, len, &p->req, p->limits);
}

/* Answer the request whose head is buf[0..head_len). Returns the bytes it
 * used when the connection stays open for another request, else 0. */
static size_t answer_request(dx_ws *ws, dx_http_request *req, uint8_t *buf, size_t have,
                             size_t head_len) {
  dx_server *srv = ws->owner;
  bool wants_upgrade = dx_http_find(req->headers, req->num_headers, "Upgrade") ||
                       dx_http_find(req->headers, req->num_headers, "Sec-WebSocket-Key");
  dx_ws_route *route = dx__server_find_route(srv, req->path.ptr, req->path.len);
  if (wants_upgrade) {
    dx__server_upgrade(ws, req, route, buf + head_len, have - head_len);
    dx__ws_set_request(NULL, NULL, 0); /* the headers live on our caller's stack */
    return 0;
  }
  const dx_http_route *h = dx__server_find_http(srv, req->path.ptr, req->path.len);
  /* A prefix route ("/") does not hide the built-in /healthz; an exact one does. */
  if (h && h->prefix && !srv->opts.no_healthz && req->path.len == 8 &&
      memcmp(req->path.ptr, "/healthz", 8) == 0)
    h = NULL;
  if (h) return dx__server_serve_http(ws, h, req, buf, have, head_len);
  dx__server_answer_plain(ws, req, route);
  return 0;
}

/* Behind a waiting request: serve this one now? Only a whole request to a
 * pipelined handler route (anything else would answer out of turn). */
static bool may_serve_early(dx_ws *ws, dx_http_request *req, size_t have, size_t head_len) {
  if (dx_http_find(req->headers, req->num_headers, "Upgrade") ||
      dx_http_find(req->headers, req->num_headers, "Sec-WebSocket-Key"))
    return false;
  const dx_http_route *h = dx__server_find_http(ws->owner, req->path.ptr, req->path.len);
  return h && dx__server_http_may_pipeline(ws, h) && dx__server_http_whole(ws, req, have, head_len);
}

void dx__server_on_request_bytes(dx_ws *ws, uint8_t *data, size_t len) {
  dx_server *srv = ws->owner;
  /* A request waits for its answer: the next ones wait behind it (unless pipelined). */
  if (ws->http_deferred && !dx__server_http_may_pipeline(ws, NULL)) {
    dx__server_http_hold(ws, data, len);
    return;
  }
  if (!dx__ws_pre(ws)->hs.len && !ws->http_served && len && data[0] == 0x16 &&
      !dx__stream_is_tls(&ws->stream)) {
    /* A TLS ClientHello on a plain port: no HTTP answer would be read. */
    char peer[64];
    dx_log_info("%s: TLS handshake on the plain ws:// port (the client wants wss://); closing",
                dx__ws_peer(ws, peer, sizeof peer));
    dx_stream_abort(&ws->stream);
    return;
  }
  for (;;) {
    dx_http_header headers[DX_MAX_REQUEST_HEADERS];
    request_parse p = {.req = {.headers = headers}, .limits = &srv->limits};
    uint8_t *buf;
    size_t have;
    int rc = dx__gather_feed(&dx__ws_pre(ws)->hs, data, len, srv->limits.max_size, parse_request,
                             &p, &buf, &have);
    if (rc == DX_EAGAIN) return;
    if (rc < 0) {
      int status = rc == DX_ENOMEM ? 500 : dx_http_status_for_error(rc);
      dx__server_reject(ws, NULL, status, dx_strerror(rc));
      return;
    }
    if (ws->http_deferred && !may_serve_early(ws, &p.req, have, (size_t)rc)) {
      if (buf != dx__ws_pre(ws)->hs.buf) dx__server_http_hold(ws, buf, have);
      return; /* served in turn */
    }
    size_t used = answer_request(ws, &p.req, buf, have, (size_t)rc);
    if (!used) return; /* upgraded, closing, or waiting for a body */
    /* Kept alive: what follows is the next request (pipelined), if any. */
    if (buf == dx__ws_pre(ws)->hs.buf) {
      dx__gather_consume(&dx__ws_pre(ws)->hs, buf, have, used);
      /* Kept until the deferred answer is done (or served now, pipelined). */
      if (ws->http_deferred && !dx__server_http_may_pipeline(ws, NULL)) return;
      data = NULL;
      len = 0;
      if (!dx__ws_pre(ws)->hs.len) return;
    } else {
      data = buf + used;
      len = have - used;
      if (ws->http_deferred && !dx__server_http_may_pipeline(ws, NULL)) {
        dx__server_http_hold(ws, data, len);
        return;
      }
      if (!len) return;
    }
  }
}
