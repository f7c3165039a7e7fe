/* The WebSocket upgrade: checks (RFC 6455, origin allowlist, route,
 * on_upgrade), subprotocol and permessage-deflate negotiation, the 101
 * answer, and the strings a connection keeps (path, query, protocol). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "server/server_internal.h"

static bool origin_allowed(const dx_server *srv, const dx_upgrade_request *up) {
  if (!srv->opts.origins) return true;
  for (size_t i = 0; srv->opts.origins[i]; i++) {
    if (dx__origin_match(srv->opts.origins[i], up->origin.ptr, up->origin.len)) return true;
  }
  return false;
}

/* The connection's strings, with room for any subprotocol the client
 * offered (the total length of its Sec-WebSocket-Protocol values), so that
 * dx_ws_set_protocol can replace the choice in place. */
static int keep_strings(dx_ws *ws, const dx_http_request *req, const char *protocol) {
  size_t room = 0;
  for (size_t i = 0, offered = 0; i < req->num_headers; i++) {
    if (req->headers[i].name.len == 22 &&
        strncasecmp(req->headers[i].name.ptr, "Sec-WebSocket-Protocol", 22) == 0)
      offered += req->headers[i].value.len;
    if (offered > room) room = offered;
  }
  return dx__ws_keep_strings(ws, req->path, req->query, protocol, room,
                             &((dx_server *)ws->owner)->strs_cache);
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
  if (dx_handshake_select_protocol(&req, &proto, 1) != 0) return DX_EINVAL;
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
  dx__server_reject(ws, req, 500, why);
}

void dx__server_upgrade(dx_ws *ws, dx_http_request *req, dx_ws_route *route, uint8_t *rest,
                        size_t rest_len) {
  dx_server *srv = ws->owner;
  dx_upgrade_request up;
  int rc = dx_upgrade_check(req, &up);
  if (rc) {
    dx__server_reject(ws, req, dx_http_status_for_error(rc), dx_strerror(rc));
    return;
  }
  if (!route) {
    dx__server_reject(ws, req, 404, "no WebSocket endpoint at this path");
    return;
  }
  if (!origin_allowed(srv, &up)) {
    dx__server_reject(ws, req, 403, "origin not allowed");
    return;
  }
  dx__http_terminate(req->headers, req->num_headers);
  dx__ws_set_request(ws, req->headers, req->num_headers);

  const char *protocol = NULL;
  if (route->protocols) {
    size_t n = 0;
    while (route->protocols[n]) n++;
    int i = dx_handshake_select_protocol(req, (const char *const *)route->protocols, n);
    if (i >= 0) protocol = route->protocols[i];
  }
  if (keep_strings(ws, req, protocol)) {
    dx__server_reject(ws, req, 500, "out of memory");
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
      dx__server_reject(ws, req, status, "rejected by the application");
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
          !(dx__ws_pre(ws)->pmd = dx_pmd_new(&pp, &srv->opts.deflate, srv->pmd_shared))) {
        fail_upgrade(ws, req, accepted, DX_ENOMEM, "out of memory");
        return;
      }
      ext_resp = ext;
    }
  }
  char resp[512];
  int n =
      dx_handshake_build_response(resp, sizeof resp, up.accept, dx_ws_protocol(ws), ext_resp, NULL);
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
