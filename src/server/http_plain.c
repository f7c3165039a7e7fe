/* Plain HTTP on the WebSocket port: error answers, /healthz, static files,
 * and 426/404 for requests that are not upgrades. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/http_static.h"
#include "server/server_internal.h"

void dx__server_respond(dx_ws *ws, int status, const char *body) {
  char buf[512];
  int n = dx_http_build_error(buf, sizeof buf, status, body);
  if (n > 0) dx_stream_write(&ws->stream, buf, (size_t)n);
  dx__ws_begin_http(ws);
  dx__ws_finish(ws);
}

void dx__server_reject(dx_ws *ws, const dx_http_request *req, int status, const char *why) {
  char peer[64];
  dx_log_info("%s: %.*s %.*s: %d %s (%s)", dx__ws_peer(ws, peer, sizeof peer),
              req ? (int)req->method.len : 1, req ? req->method.ptr : "-",
              req ? (int)req->target.len : 1, req ? req->target.ptr : "-", status,
              dx_http_reason(status), why);
  dx__server_respond(ws, status, why);
}

void dx__server_on_http_drain(dx_ws *ws) {
  int rc = dx__static_body_pump(&ws->stream, dx__ws_pre(ws)->http_body);
  if (rc == 0) return;
  dx__ws_pre(ws)->http_body = NULL; /* sent whole, or failed: either way it is freed */
  dx__ws_finish(ws);
}

void dx__server_answer_plain(dx_ws *ws, const dx_http_request *req, const dx_ws_route *route) {
  dx_server *srv = ws->owner;
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
        dx_log_debug("%s: %.*s %.*s: %d", dx__ws_peer(ws, peer, sizeof peer), (int)req->method.len,
                     req->method.ptr, (int)req->target.len, req->target.ptr, status);
      }
      dx__ws_begin_http(ws);
      if (body) {
        dx__ws_pre(ws)->http_body = body; /* more on each drain (dx__server_on_http_drain) */
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
    dx__server_reject(ws, req, 426,
                      "this is a WebSocket endpoint: connect with a WebSocket client");
    return;
  }
  dx__server_reject(ws, req, 404, "not found");
}
