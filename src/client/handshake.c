/* The opening handshake, client side: the upgrade request, then the
 * server's answer gathered (proto/head_gather.h), verified and opened. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/log.h"

int dx__client_write_upgrade(dx_client *c, dx_ws *ws) {
  uint8_t nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return DX_ESYS;
  dx_handshake_make_key(nonce, c->key);
  char host[300];
  bool default_port = c->url.port == (c->url.tls ? 443 : 80);
  snprintf(host, sizeof host, "%s%s%s", c->url.ipv6 ? "[" : "", c->url.host,
           c->url.ipv6 ? "]" : "");
  if (!default_port) snprintf(host + strlen(host), sizeof host - strlen(host), ":%u", c->url.port);
  dx_client_request r = {
      .host = host,
      .path = c->url.target,
      .key = c->key,
      .protocols = (const char *const *)c->protocols,
      .num_protocols = c->nprotocols,
      .origin = c->origin,
      .extra_headers = c->headers,
      .extensions = c->ext_offer[0] ? c->ext_offer : NULL,
  };
  size_t cap = 1024 + strlen(c->url.target) + (c->headers ? strlen(c->headers) : 0) +
               (c->origin ? strlen(c->origin) : 0) + strlen(c->ext_offer);
  for (size_t i = 0; i < c->nprotocols; i++) cap += strlen(c->protocols[i]) + 2;
  uint8_t *buf = dx_stream_reserve(&ws->stream, cap);
  if (!buf) return DX_ENOMEM;
  int n = dx_handshake_build_request((char *)buf, cap, &r);
  dx_stream_commit(&ws->stream, n > 0 ? (size_t)n : 0);
  return n > 0 ? 0 : n;
}

typedef struct response_parse {
  dx_http_response resp;
  dx_http_limits lim;
} response_parse;

static int parse_response(const uint8_t *buf, size_t len, void *arg) {
  response_parse *p = arg;
  p->resp.num_headers = DX_CLIENT_MAX_HEADERS;
  return dx_http_parse_response((const char *)buf, len, &p->resp, &p->lim);
}

void dx__client_on_handshake_read(dx_ws *ws, uint8_t *data, size_t len) {
  dx_client *c = ws->owner;
  dx_http_header headers[DX_CLIENT_MAX_HEADERS];
  response_parse p = {
      .resp = {.headers = headers},
      .lim = {.max_size = DX_CLIENT_MAX_RESPONSE, .max_headers = DX_CLIENT_MAX_HEADERS},
  };
  dx_http_response resp;
  uint8_t *buf;
  size_t have;
  int rc = dx__gather_feed(&dx__ws_pre(ws)->hs, data, len, DX_CLIENT_MAX_RESPONSE, parse_response,
                           &p, &buf, &have);
  if (rc == DX_EAGAIN) return;
  if (rc == DX_ENOMEM) {
    dx__client_attempt_fail(c, DX_ENOMEM, "out of memory");
    return;
  }
  resp = p.resp;
  char msg[512];
  if (rc < 0) {
    snprintf(msg, sizeof msg, "bad handshake response from the %s: %s",
             c->hs_step == HS_PROXY ? "proxy" : "server", dx_strerror(rc));
    dx__client_attempt_fail(c, rc, msg);
    return;
  }
  uint8_t *rest = buf + rc;
  size_t rest_len = have - (size_t)rc;

  if (c->hs_step == HS_PROXY) {
    dx__client_proxy_answered(c, ws, &resp, rest, rest_len);
    return;
  }

  const char *offered_ext[] = {c->ext_offer[0] ? "permessage-deflate" : NULL, NULL};
  dx_upgrade_response up;
  rc = dx_upgrade_verify(&resp, c->key, (const char *const *)c->protocols, c->nprotocols,
                         offered_ext, &up);
  if (rc) {
    if (rc == DX_EHTTP_STATUS)
      snprintf(msg, sizeof msg, "handshake rejected with HTTP status %d", resp.status);
    else
      snprintf(msg, sizeof msg, "bad handshake response: %s", dx_strerror(rc));
    dx__client_attempt_fail(c, rc, msg);
    return;
  }
  if (up.num_extensions) {
    dx_pmd_params pp;
    if (up.num_extensions > 1 || dx_pmd_client_accept(&up.extensions[0], &c->opts.deflate, &pp)) {
      dx__client_attempt_fail(c, DX_EWS_EXTENSIONS,
                              "bad handshake response: the server's permessage-deflate parameters "
                              "were not offered or are invalid");
      return;
    }
    if ((!c->pmd_shared && !(c->pmd_shared = dx_pmd_shared_new())) ||
        !(dx__ws_pre(ws)->pmd = dx_pmd_new(&pp, &c->opts.deflate, c->pmd_shared))) {
      dx__client_attempt_fail(c, DX_ENOMEM, "out of memory");
      return;
    }
  }
  const char *target = c->url.target, *q = strchr(target, '?');
  dx_str path = {target, q ? (size_t)(q - target) : strlen(target)};
  dx_str query = {q ? q + 1 : "", q ? strlen(q + 1) : 0};
  const char *proto = up.protocol_index >= 0 ? c->protocols[up.protocol_index] : NULL;
  if (dx__ws_keep_strings(ws, path, query, proto, 0, NULL) != 0) {
    dx__client_attempt_fail(c, DX_ENOMEM, "out of memory");
    return;
  }
  /* Response headers are readable with dx_ws_header during on_open. */
  dx__http_terminate(headers, resp.num_headers);
  dx__ws_set_request(ws, headers, resp.num_headers);
  c->opened_at = dx_loop_now(c->loop);
  dx_log_debug("%s:%u: connected%s%s", c->url.host, c->url.port, proto ? ", protocol " : "",
               proto ? proto : "");
  dx__ws_open(ws, DX_ROLE_CLIENT, &c->route, rest, rest_len);
  dx__ws_set_request(NULL, NULL, 0); /* the headers live on this stack */
  dx__ws_drop_handshake(ws);
}
