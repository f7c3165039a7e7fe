/* HTTP CONNECT proxies: the proxy address and its credentials, the
 * CONNECT request, and the proxy's answer (then TLS, if wss://, and the
 * upgrade through the tunnel). */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client_internal.h"
#include "io/tls.h"

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* "http://[user:pass@]host:port[/]": the proxy's address into c->proxy and
 * any credentials into c->proxy_auth ("Basic base64(user:pass)", the
 * userinfo percent-decoded). Returns NULL or the reason. */
const char *dx__client_parse_proxy(dx_client *c, const char *proxy) {
  static const char expected[] = "bad proxy address (expected http://[user:pass@]host:port)";
  const char *p = proxy;
  if (strncasecmp(p, "http://", 7) == 0) {
    p += 7;
  } else if (strstr(p, "://")) {
    return "bad proxy address: only http:// proxies (HTTP CONNECT) are supported";
  }
  size_t alen = strcspn(p, "/?#");
  if (p[alen] && strcmp(p + alen, "/") != 0) return expected; /* no path */
  const char *at = NULL;
  for (const char *q = p; q < p + alen; q++)
    if (*q == '@') at = q;
  if (at) {
    size_t ulen = (size_t)(at - p);
    if (ulen > 255) return "bad proxy address: user name and password too long";
    char user[256];
    size_t n = 0;
    for (size_t i = 0; i < ulen; i++) {
      int ch = (unsigned char)p[i];
      if (ch == '%') {
        int hi = i + 2 < ulen ? hexval(p[i + 1]) : -1, lo = i + 2 < ulen ? hexval(p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
          return "bad proxy address: bad %-escape in the user name or password";
        ch = hi << 4 | lo;
        i += 2;
      }
      user[n++] = (char)ch;
    }
    /* base64 of 255 bytes is 340 characters and a NUL */
    unsigned char b64[4 * ((sizeof user + 2) / 3) + 1];
    int bn = EVP_EncodeBlock(b64, (const unsigned char *)user, (int)n);
    if (bn < 0 || !(c->proxy_auth = malloc((size_t)bn + 7))) return "out of memory";
    memcpy(c->proxy_auth, "Basic ", 6);
    memcpy(c->proxy_auth + 6, b64, (size_t)bn + 1);
    alen -= ulen + 1;
    p = at + 1;
  }
  char purl[300];
  if (alen >= sizeof purl - 6) return expected;
  snprintf(purl, sizeof purl, "ws://%.*s", (int)alen, p);
  const char *reason = NULL;
  if (dx_url_parse(purl, &c->proxy, &reason)) {
    static _Thread_local char why[300];
    snprintf(why, sizeof why, "bad proxy address: %s", reason ? reason : "invalid");
    return why;
  }
  /* The port is required: an explicit ":N" after the host. */
  const char *port = c->proxy.ipv6 ? strstr(purl, "]:") : strrchr(purl + 5, ':');
  if (!port) return expected;
  return NULL;
}

void dx__client_write_connect(dx_client *c, dx_ws *ws) {
  char req[1400];
  const char *l = c->url.ipv6 ? "[" : "", *r = c->url.ipv6 ? "]" : "";
  int n = snprintf(req, sizeof req, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s\r\n",
                   l, c->url.host, r, c->url.port, l, c->url.host, r, c->url.port,
                   c->proxy_auth ? "Proxy-Authorization: " : "", c->proxy_auth ? c->proxy_auth : "",
                   c->proxy_auth ? "\r\n" : "");
  /* dx_connect bounds the credentials so that this fits. */
  dx_stream_write(&ws->stream, req, (size_t)n < sizeof req ? (size_t)n : sizeof req - 1);
}

void dx__client_proxy_answered(dx_client *c, dx_ws *ws, const dx_http_response *resp, uint8_t *rest,
                               size_t rest_len) {
  char msg[512];
  /* Any 2xx opens the tunnel (RFC 9110 section 9.3.6). */
  if (resp->status < 200 || resp->status > 299) {
    snprintf(msg, sizeof msg, "the proxy refused CONNECT to %s:%u with HTTP status %d", c->url.host,
             c->url.port, resp->status);
    dx__client_attempt_fail(c, DX_EPROXY, msg);
    return;
  }
  c->hs_step = HS_UPGRADE;
  /* `rest` may point into ws->hs (a 200 that came in pieces): keep that
   * buffer until `rest` was used; the call below gathers into a new one.
   * (Dropping it first was a use-after-free.) */
  uint8_t *old_hs = dx__ws_pre(ws)->hs.buf;
  dx__ws_pre(ws)->hs = (dx_gather){0};
  if (c->tls_ctx && dx_stream_start_tls(&ws->stream, c->tls_ctx, false, c->url.host) != 0) {
    free(old_hs);
    dx__client_attempt_fail(c, DX_ETLS, "could not start TLS through the proxy tunnel");
    return;
  }
  int wr = dx__client_write_upgrade(c, ws);
  if (wr) {
    free(old_hs);
    dx__client_attempt_fail(c, wr, "could not write the upgrade request");
    return;
  }
  if (rest_len) dx__client_on_handshake_read(ws, rest, rest_len);
  free(old_hs);
}
