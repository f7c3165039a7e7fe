/* dx_connect's options: checked (the request's parts by
 * dx_handshake_check_request in proto/), copied (the caller may free its
 * strings after dx_connect), and completed with the defaults. */
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "io/tls.h"

const char *dx__client_take_options(dx_client *c, const dx_client_opts *opts) {
  if (opts) c->opts = *opts;
  if (c->url.tls) {
    static _Thread_local char tls_err[300];
    if (!(c->tls_ctx = dx__tls_client_ctx(&c->opts.tls, tls_err, sizeof tls_err))) return tls_err;
  }
  dx_client_opts *o = &c->opts;
  if (o->proxy) {
    const char *reason = dx__client_parse_proxy(c, o->proxy);
    if (reason) return reason;
    c->use_proxy = true;
  }
  /* Copy what the caller may free after this call. */
  while (o->protocols && o->protocols[c->nprotocols]) c->nprotocols++;
  if (c->nprotocols) {
    c->protocols = calloc(c->nprotocols + 1, sizeof *c->protocols);
    if (!c->protocols) return "out of memory";
    for (size_t i = 0; i < c->nprotocols; i++)
      if (!(c->protocols[i] = strdup(o->protocols[i]))) return "out of memory";
  }
  if ((o->origin && !(c->origin = strdup(o->origin))) ||
      (o->headers && !(c->headers = strdup(o->headers))))
    return "out of memory";
  dx_client_request r = {
      .protocols = (const char *const *)c->protocols,
      .num_protocols = c->nprotocols,
      .origin = c->origin,
      .extra_headers = c->headers,
  };
  static _Thread_local char why[300];
  if (dx_handshake_check_request(&r, why, sizeof why) != 0) return why;
  size_t nf = 0;
  static const uint16_t default_final[] = {DX_CLOSE_POLICY, 0};
  const uint16_t *finals = o->final_codes ? o->final_codes : default_final;
  while (finals[nf]) nf++;
  if (!(c->final_codes = calloc(nf + 1, sizeof *c->final_codes))) return "out of memory";
  memcpy(c->final_codes, finals, nf * sizeof *finals);
  o->protocols = NULL;
  o->origin = o->headers = o->proxy = NULL;
  o->final_codes = NULL;

  if (!o->connect_timeout) o->connect_timeout = 10000;
  if (!o->reconnect_initial) o->reconnect_initial = 500;
  if (!o->reconnect_max) o->reconnect_max = 30000;
  if (o->reconnect_factor < 1.0) o->reconnect_factor = 2.0;
  if (!o->reconnect_reset) o->reconnect_reset = 10000;
  c->cfg = (dx_ws_config){
      .proto = {.max_message = o->max_message},
      .max_buffered = o->max_buffered,
      .low_water = o->low_water,
      .handshake_timeout = o->connect_timeout,
      .ping_interval = o->ping_interval ? o->ping_interval : -1, /* a client does not ping */
      .pong_timeout = o->pong_timeout ? o->pong_timeout : 10000,
      .close_timeout = o->close_timeout,
  };
  dx__ws_config_resolve(&c->cfg);
  if (o->deflate.enable && dx_pmd_client_offer(&o->deflate, c->ext_offer, sizeof c->ext_offer) < 0)
    c->ext_offer[0] = 0;
  return NULL;
}

void dx__client_free_options(dx_client *c) {
  for (size_t i = 0; i < c->nprotocols; i++) free(c->protocols[i]);
  free(c->protocols);
  free(c->origin);
  free(c->headers);
  free(c->proxy_auth);
  free(c->final_codes);
  SSL_CTX_free(c->tls_ctx);
}
