/* Reading a request: the head gathered across reads, then sent on its way
 * (the upgrade, or a plain HTTP answer). */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/server_internal.h"

static void answer_request(dx_ws *ws, dx_http_request *req, uint8_t *rest, size_t rest_len) {
  dx_server *srv = ws->owner;
  bool wants_upgrade = dx_http_find(req->headers, req->num_headers, "Upgrade") ||
                       dx_http_find(req->headers, req->num_headers, "Sec-WebSocket-Key");
  dx_ws_route *route = dx__server_find_route(srv, req->path.ptr, req->path.len);
  if (wants_upgrade)
    dx__server_upgrade(ws, req, route, rest, rest_len);
  else
    dx__server_answer_plain(ws, req, route);
}

static void handle_request(dx_ws *ws, dx_http_request *req, uint8_t *rest, size_t rest_len) {
  answer_request(ws, req, rest, rest_len);
  dx__ws_set_request(NULL, NULL, 0); /* the headers live on our caller's stack */
}

void dx__server_on_request_bytes(dx_ws *ws, uint8_t *data, size_t len) {
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
        dx__server_reject(ws, NULL, 500, "out of memory");
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
        dx__server_reject(ws, NULL, 500, "out of memory");
        return;
      }
      memcpy(ws->hs, data, len);
      ws->hs_len = (uint32_t)len;
    }
    return;
  }
  if (rc < 0) {
    dx__server_reject(ws, NULL, dx_http_status_for_error(rc), dx_strerror(rc));
    return;
  }
  handle_request(ws, &req, buf + rc, have - (size_t)rc);
}
