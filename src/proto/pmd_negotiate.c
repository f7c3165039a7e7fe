/* permessage-deflate negotiation (RFC 7692 section 7). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "duplex/deflate.h"
#include "duplex/error.h"

static bool str_is(dx_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

/* "8".."15" exactly (RFC 7692 7.1.2: decimal, no leading zeros). */
static int window_bits(dx_str v) {
  if (!v.ptr || v.len == 0 || v.len > 2 || v.ptr[0] == '0') return -1;
  int x = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9') return -1;
    x = x * 10 + (v.ptr[i] - '0');
  }
  return x >= 8 && x <= 15 ? x : -1;
}

/* Parsed parameters of one offer or response; -1 = absent, 0 = present
 * without value (max_window_bits only), else the value. */
typedef struct {
  bool snct, cnct;
  int smwb, cmwb;
} pmd_params;

static bool parse_params(const dx_ext_offer *o, pmd_params *p) {
  *p = (pmd_params){false, false, -1, -1};
  bool seen[4] = {0};
  for (size_t i = 0; i < o->num_params; i++) {
    dx_str n = o->params[i].name, v = o->params[i].value;
    int k;
    if (str_is(n, "server_no_context_takeover"))
      k = 0;
    else if (str_is(n, "client_no_context_takeover"))
      k = 1;
    else if (str_is(n, "server_max_window_bits"))
      k = 2;
    else if (str_is(n, "client_max_window_bits"))
      k = 3;
    else
      return false;            /* unknown parameter */
    if (seen[k]) return false; /* duplicate */
    seen[k] = true;
    switch (k) {
    case 0:
      if (v.ptr) return false;
      p->snct = true;
      break;
    case 1:
      if (v.ptr) return false;
      p->cnct = true;
      break;
    case 2:
      if ((p->smwb = window_bits(v)) < 0) return false; /* value required */
      break;
    default:
      if (v.ptr && (p->cmwb = window_bits(v)) < 0) return false;
      if (!v.ptr) p->cmwb = 0;
      break;
    }
  }
  return true;
}

/* Our compressor's window: window_bits in TAKEOVER mode, else 15. 8 is
 * kept (RFC 7692 allows it) and means we send uncompressed: zlib cannot
 * make raw deflate with a 256-byte window (it uses 512). */
static int opt_window(const dx_deflate_opts *o) {
  return o->mode == DX_DEFLATE_TAKEOVER && o->window_bits >= 8 && o->window_bits <= 15
             ? o->window_bits
             : 15;
}

int dx_pmd_negotiate_server(const dx_ext_offer *offers, size_t n, const dx_deflate_opts *opts,
                            dx_pmd_params *params, char *resp, size_t cap) {
  bool shared = opts->mode == DX_DEFLATE_SHARED;
  for (size_t i = 0; i < n; i++) {
    if (!str_is(offers[i].name, "permessage-deflate")) continue;
    pmd_params p;
    if (!parse_params(&offers[i], &p)) continue; /* decline this offer */
    dx_pmd_params r = {0};
    r.tx_no_context_takeover = p.snct || shared;
    /* Asking the client not to keep context lets one decompressor per
     * thread serve every connection (a server may always ask). */
    r.rx_no_context_takeover = p.cnct || shared;
    /* A client asking for server_max_window_bits=8 gets it: we then send
     * every message uncompressed (zlib cannot compress with 256 bytes). */
    r.tx_window_bits = opt_window(opts);
    if (p.smwb > 0 && p.smwb < r.tx_window_bits) r.tx_window_bits = p.smwb;
    r.rx_window_bits = 15;
    int cmwb = -1; /* client_max_window_bits to answer with */
    if (p.cmwb >= 0) {
      int want = shared ? 15 : opt_window(opts);
      cmwb = p.cmwb > 0 && p.cmwb < want ? p.cmwb : want;
      r.rx_window_bits = cmwb;
      if (!shared && cmwb == 15 && p.cmwb == 0) cmwb = -1; /* the default: no need to say */
    }
    int len = snprintf(resp, cap, "permessage-deflate%s%s",
                       r.tx_no_context_takeover ? "; server_no_context_takeover" : "",
                       r.rx_no_context_takeover ? "; client_no_context_takeover" : "");
    if (len < 0 || (size_t)len >= cap) return DX_ENOSPC;
    if (p.smwb > 0 || r.tx_window_bits < 15) {
      int m =
          snprintf(resp + len, cap - (size_t)len, "; server_max_window_bits=%d", r.tx_window_bits);
      if (m < 0 || (size_t)m >= cap - (size_t)len) return DX_ENOSPC;
      len += m;
    }
    if (cmwb > 0) {
      int m = snprintf(resp + len, cap - (size_t)len, "; client_max_window_bits=%d", cmwb);
      if (m < 0 || (size_t)m >= cap - (size_t)len) return DX_ENOSPC;
    }
    *params = r;
    return 1;
  }
  return 0;
}

int dx_pmd_client_offer(const dx_deflate_opts *opts, char *buf, size_t cap) {
  int n;
  if (opts->mode == DX_DEFLATE_SHARED)
    n = snprintf(buf, cap,
                 "permessage-deflate; client_no_context_takeover; "
                 "server_no_context_takeover; client_max_window_bits, "
                 "permessage-deflate; client_max_window_bits");
  else if (opt_window(opts) < 15)
    n = snprintf(buf, cap, "permessage-deflate; client_max_window_bits=%d", opt_window(opts));
  else
    n = snprintf(buf, cap, "permessage-deflate; client_max_window_bits");
  return n < 0 || (size_t)n >= cap ? DX_ENOSPC : n;
}

int dx_pmd_client_accept(const dx_ext_offer *accepted, const dx_deflate_opts *opts,
                         dx_pmd_params *params) {
  pmd_params p;
  if (!str_is(accepted->name, "permessage-deflate") || !parse_params(accepted, &p))
    return DX_EWS_EXTENSIONS;
  /* We always offer client_max_window_bits; a value means "at most". 8 is
   * accepted: we then send uncompressed (zlib cannot compress with a
   * 256-byte window) and still inflate what the server sends. */
  if (p.cmwb == 0) return DX_EWS_EXTENSIONS; /* the response must carry a value */
  dx_pmd_params r = {0};
  r.tx_no_context_takeover = p.cnct || opts->mode == DX_DEFLATE_SHARED;
  r.rx_no_context_takeover = p.snct;
  r.tx_window_bits = opt_window(opts);
  if (p.cmwb > 0 && p.cmwb < r.tx_window_bits) r.tx_window_bits = p.cmwb;
  if (opts->mode == DX_DEFLATE_TAKEOVER && opt_window(opts) < 15 && p.cmwb > opt_window(opts))
    return DX_EWS_EXTENSIONS; /* larger than we offered */
  r.rx_window_bits = p.smwb > 0 ? p.smwb : 15;
  *params = r;
  return 0;
}
