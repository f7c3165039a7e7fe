/* ws:// and wss:// URL parsing (RFC 6455 section 3). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duplex/client.h"

static int bad(const char **why, const char *msg) {
  if (why) *why = msg;
  return DX_EINVAL;
}

int dx_url_parse(const char *url, dx_url *out, const char **why) {
  memset(out, 0, sizeof *out);
  if (!url) return bad(why, "no URL given");
  const char *p;
  if (strncasecmp(url, "ws://", 5) == 0) {
    p = url + 5;
  } else if (strncasecmp(url, "wss://", 6) == 0) {
    p = url + 6;
    out->tls = true;
  } else if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
    return bad(why, "use ws:// or wss:// (not http:// or https://)");
  } else {
    return bad(why, "the URL must start with ws:// or wss://");
  }
  /* Authority ends at the first '/', '?' or '#'. */
  size_t alen = strcspn(p, "/?#");
  const char *auth = p, *rest = p + alen;
  if (memchr(auth, '@', alen))
    return bad(why, "user names or passwords in the URL are not supported");
  const char *host = auth, *port = NULL;
  size_t hlen;
  if (alen && auth[0] == '[') {
    const char *close = memchr(auth, ']', alen);
    if (!close) return bad(why, "unterminated '[' in an IPv6 address");
    host = auth + 1;
    hlen = (size_t)(close - host);
    out->ipv6 = true;
    if (close + 1 < auth + alen) {
      if (close[1] != ':') return bad(why, "junk after the IPv6 address");
      port = close + 2;
    }
    /* Only an IPv6 address goes in brackets (RFC 3986 3.2.2; no zone
     * IDs): "[1]" would otherwise be looked up as a name. */
    char a6[64];
    struct in6_addr in6;
    if (!hlen || hlen >= sizeof a6) return bad(why, "bad IPv6 address");
    memcpy(a6, host, hlen);
    a6[hlen] = 0;
    if (inet_pton(AF_INET6, a6, &in6) != 1) return bad(why, "bad IPv6 address in brackets");
  } else {
    const char *colon = memchr(auth, ':', alen);
    hlen = colon ? (size_t)(colon - auth) : alen;
    if (colon) port = colon + 1;
  }
  if (!hlen) return bad(why, "the URL has no host");
  if (hlen >= sizeof out->host) return bad(why, "host name too long");
  memcpy(out->host, host, hlen);
  if (!out->ipv6) {
    /* A name (RFC 1123: letters, digits, '-', '.'; '_' is common enough)
     * with no empty labels but a final one ("example.com."), or an IPv4
     * address: a host that ends in a number must be a dotted quad, since
     * the resolver reads "1" as 0.0.0.1 and "127.1" as 127.0.0.1. */
    const char *h = out->host;
    if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") < hlen)
      return bad(why, "bad character in host (letters, digits, '-', '.' and '_' only)");
    if (h[0] == '.' || strstr(h, "..")) return bad(why, "bad host name: empty label");
    size_t end = hlen - (h[hlen - 1] == '.');
    size_t last = end;
    while (last > 0 && h[last - 1] != '.') last--;
    if (last < end && strspn(h + last, "0123456789") == end - last) {
      struct in_addr in4;
      if (inet_pton(AF_INET, h, &in4) != 1)
        return bad(why, "bad IPv4 address in host (expected four numbers 0-255)");
    }
  }
  out->port = out->tls ? 443 : 80;
  if (port) {
    size_t plen = (size_t)(auth + alen - port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen) return bad(why, "bad port");
    long v = strtol(port, NULL, 10);
    if (v < 1 || v > 65535) return bad(why, "port out of range (1-65535)");
    out->port = (uint16_t)v;
  }
  if (*rest == '#' || strchr(rest, '#'))
    return bad(why, "fragments (#...) are not allowed in WebSocket URLs");
  size_t tlen = strlen(rest);
  if (tlen + 2 > sizeof out->target) return bad(why, "path too long");
  for (size_t i = 0; i < tlen; i++) {
    unsigned char c = (unsigned char)rest[i];
    if (c <= ' ' || c == 0x7f)
      return bad(why, "spaces or control characters in the path (percent-encode them)");
  }
  if (*rest == '?') {
    out->target[0] = '/';
    memcpy(out->target + 1, rest, tlen + 1);
  } else if (*rest == 0) {
    strcpy(out->target, "/");
  } else {
    memcpy(out->target, rest, tlen + 1);
  }
  return 0;
}
