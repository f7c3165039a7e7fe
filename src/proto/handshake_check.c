/* Checking what the application asks to put into a client's upgrade
 * request (dx_handshake_check_request), so that a bad option is a clear
 * error up front, not a failed handshake on every attempt. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "duplex/error.h"
#include "duplex/handshake.h"
#include "proto/http_chars.h"

/* "bad <what> '<value, shown safely>': <rule>" into why. */
static int bad_value(char *why, size_t cap, const char *what, const char *v, const char *rule) {
  char shown[60];
  size_t i = 0;
  for (; v[i] && i < 40; i++) shown[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
  shown[i] = 0;
  if (cap) snprintf(why, cap, "bad %s '%s%s': %s", what, shown, v[i] ? "..." : "", rule);
  return DX_EINVAL;
}

/* A header value: visible ASCII, UTF-8 or tabs/spaces, no other control
 * characters (a CR or LF would end the line; the rest are refused by
 * RFC 9110 section 5.5 and by servers). */
static bool field_value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
  }
  return true;
}

/* Headers dx_handshake_build_request writes itself: a second copy breaks
 * the handshake. */
static const char *const own_headers[] = {"Host",
                                          "Upgrade",
                                          "Connection",
                                          "Sec-WebSocket-Key",
                                          "Sec-WebSocket-Version",
                                          "Sec-WebSocket-Protocol",
                                          "Sec-WebSocket-Extensions",
                                          NULL};

int dx_handshake_check_request(const dx_client_request *r, char *why, size_t cap) {
  if (cap) why[0] = 0;
  for (size_t i = 0; i < r->num_protocols; i++) {
    const char *p = r->protocols[i];
    if (!dx__http_is_token(p, strlen(p)))
      return bad_value(why, cap, "subprotocol", p,
                       "a name is one token (letters, digits and !#$%&'*+-.^_`|~, "
                       "no spaces or commas)");
    for (size_t j = 0; j < i; j++)
      if (strcmp(r->protocols[j], p) == 0)
        return bad_value(why, cap, "subprotocol", p, "offered twice");
  }
  const char *o = r->origin;
  if (o && (!o[0] || !field_value_ok(o, strlen(o))))
    return bad_value(why, cap, "Origin", o, o[0] ? "control characters are not allowed" : "empty");
  for (const char *h = r->extra_headers; h && *h;) {
    const char *end = strstr(h, "\r\n");
    size_t n = end ? (size_t)(end - h) : strlen(h);
    char line[80];
    snprintf(line, sizeof line, "%.*s", (int)(n < 70 ? n : 70), h);
    if (!end) return bad_value(why, cap, "header", line, "each line must end in \\r\\n");
    const char *colon = memchr(h, ':', n);
    if (!colon || colon == h || !dx__http_is_token(h, (size_t)(colon - h)))
      return bad_value(why, cap, "header", line,
                       n ? "expected 'Name: value' with a name of letters, digits and -"
                         : "empty line");
    if (!field_value_ok(colon + 1, n - (size_t)(colon + 1 - h)))
      return bad_value(why, cap, "header", line, "control characters (CR, LF, ...) in the value");
    for (const char *const *own = own_headers; *own; own++)
      if (strlen(*own) == (size_t)(colon - h) && strncasecmp(*own, h, (size_t)(colon - h)) == 0)
        return bad_value(why, cap, "header", line,
                         "the client sets this header itself (use the options for "
                         "subprotocols and extensions)");
    h = end + 2;
  }
  return 0;
}
