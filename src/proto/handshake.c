/* The WebSocket opening handshake (RFC 6455 section 4): checking a parsed
 * request, building the answers, and the client's side of both.
 *
 * Choices:
 * - The request target must have a path starting with '/' (origin-form, or
 *   absolute-form whose path the parser extracted); anything else is
 *   DX_EHTTP_TARGET. It is checked right after the HTTP version.
 * - Host must appear exactly once and be non-empty. Origin, which servers
 *   use for access checks, must not appear twice (DX_EHTTP_MALFORMED).
 * - Sec-WebSocket-Key must be 22 base64 characters followed by "==" (that is
 *   what 16 bytes encode to). Non-zero padding bits in the 22nd character are
 *   accepted, as Python's and Go's base64 decoders do.
 * - Sec-WebSocket-Version must be a single header whose value is "13".
 * - Subprotocol names are compared byte for byte (the server must echo the
 *   client's string; Node's ws and Python's websockets compare exactly);
 *   Upgrade/Connection tokens and extension names case-insensitively. An
 *   empty Sec-WebSocket-Protocol list offers nothing.
 * - More than 8 extension offers (the size of dx_upgrade_request.extensions)
 *   is answered as DX_EWS_EXTENSIONS (400): it is the client's fault, and
 *   DX_ELIMIT would map to 500.
 * - Error responses: 405 carries "Allow: GET" (RFC 9110 requires Allow, and
 *   GET is all an upgrade accepts); 426 carries the version and Upgrade.
 * - Builders write no NUL terminator; they return DX_ENOSPC without writing
 *   past `cap`, and DX_EINVAL for NULL required arguments or for strings that
 *   would break the message (CR/LF in values, extra_headers not ending in
 *   CRLF, a protocol that is not a token).
 */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "duplex/error.h"
#include "duplex/handshake.h"
#include "proto/http_chars.h"

static const char k_ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static inline char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }
static inline int is_ows(char c) { return c == ' ' || c == '\t'; }

static int ci_eq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (lower(a[i]) != lower(b[i])) return 0;
  return 1;
}

static int str_eq(dx_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static int name_is(const dx_http_header *h, const char *name) {
  size_t n = strlen(name);
  return h->name.len == n && ci_eq(h->name.ptr, name, n);
}

static size_t count_headers(const dx_http_header *h, size_t n, const char *name,
                            const dx_http_header **first) {
  size_t c = 0;
  *first = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&h[i], name)) continue;
    if (!c) *first = &h[i];
    c++;
  }
  return c;
}

/* Iterates the elements of a comma-separated list, OWS trimmed; empty
 * elements are returned too (len 0). Returns 0 when done. */
typedef struct list_iter {
  const char *s, *end;
  int done;
} list_iter;

static list_iter list_begin(dx_str v) { return (list_iter){v.ptr, v.ptr + v.len, 0}; }

static int list_next(list_iter *it, dx_str *elem) {
  if (it->done) return 0;
  const char *comma = memchr(it->s, ',', (size_t)(it->end - it->s));
  const char *e = comma ? comma : it->end;
  const char *a = it->s, *b = e;
  while (a < b && is_ows(*a)) a++;
  while (b > a && is_ows(b[-1])) b--;
  *elem = (dx_str){a, (size_t)(b - a)};
  if (comma)
    it->s = comma + 1;
  else
    it->done = 1;
  return 1;
}

/* ---- Sec-WebSocket-Accept ---- */

void dx_handshake_accept_key(const char *key, size_t key_len,
                             char out[DX_HANDSHAKE_ACCEPT_LEN + 1]) {
  unsigned char md[SHA_DIGEST_LENGTH];
  int ok = 0;
  /* Real keys are 24 bytes: hash them from the stack in one call. */
  char tmp[128];
  if (key_len <= sizeof tmp - (sizeof k_ws_guid - 1)) {
    if (key_len) memcpy(tmp, key, key_len);
    memcpy(tmp + key_len, k_ws_guid, sizeof k_ws_guid - 1);
    ok = SHA1((const unsigned char *)tmp, key_len + sizeof k_ws_guid - 1, md) != NULL;
  } else {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, key_len) &&
         EVP_DigestUpdate(ctx, k_ws_guid, sizeof k_ws_guid - 1) &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == SHA_DIGEST_LENGTH;
    EVP_MD_CTX_free(ctx);
  }
  if (!ok) { /* OpenSSL failed (out of memory): an empty accept never matches */
    out[0] = '\0';
    return;
  }
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH); /* writes 28 + NUL */
}

void dx_handshake_make_key(const uint8_t nonce[16], char out[DX_HANDSHAKE_KEY_LEN + 1]) {
  EVP_EncodeBlock((unsigned char *)out, nonce, 16); /* writes 24 + NUL */
}

static int is_b64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

static int valid_key(dx_str k) {
  if (k.len != DX_HANDSHAKE_KEY_LEN || k.ptr[22] != '=' || k.ptr[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++)
    if (!is_b64(k.ptr[i])) return 0;
  return 1;
}

/* ---- Server side ---- */

/* Every Sec-WebSocket-Protocol element must be a token (or empty). */
static int check_protocols(const dx_http_header *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&h[i], "Sec-WebSocket-Protocol")) continue;
    list_iter it = list_begin(h[i].value);
    dx_str e;
    while (list_next(&it, &e))
      if (e.len && !dx__http_is_token(e.ptr, e.len)) return DX_EWS_PROTOCOL;
  }
  return 0;
}

int dx_upgrade_check(const dx_http_request *req, dx_upgrade_request *out) {
  if (!req || !out || (!req->headers && req->num_headers)) return DX_EINVAL;
  const dx_http_header *h = req->headers, *f;
  size_t n = req->num_headers;
  memset(out, 0, sizeof *out);

  if (!str_eq(req->method, "GET")) return DX_EHTTP_METHOD; /* methods are case-sensitive */
  if (req->minor_version < 1) return DX_EHTTP_VERSION;
  if (req->path.len == 0 || req->path.ptr[0] != '/') return DX_EHTTP_TARGET;

  if (count_headers(h, n, "Host", &f) != 1 || f->value.len == 0) return DX_EHTTP_NO_HOST;
  out->host = f->value;
  if (!dx_http_has_token(h, n, "Upgrade", "websocket")) return DX_EHTTP_NO_UPGRADE;
  if (!dx_http_has_token(h, n, "Connection", "upgrade")) return DX_EHTTP_NO_CONNECTION;

  if (count_headers(h, n, "Sec-WebSocket-Key", &f) != 1 || !valid_key(f->value)) return DX_EWS_KEY;
  out->key = f->value;
  if (count_headers(h, n, "Sec-WebSocket-Version", &f) != 1 || !str_eq(f->value, "13"))
    return DX_EWS_VERSION;

  size_t next = 0;
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&h[i], "Sec-WebSocket-Extensions")) continue;
    size_t cap = sizeof out->extensions / sizeof out->extensions[0];
    int r = dx_ext_parse(h[i].value.ptr, h[i].value.len, out->extensions, &next, cap);
    if (r) return DX_EWS_EXTENSIONS; /* bad syntax, or more offers than fit */
  }
  out->num_extensions = next;

  int r = check_protocols(h, n);
  if (r) return r;
  if (count_headers(h, n, "Sec-WebSocket-Protocol", &f)) out->protocols = f->value;

  size_t origins = count_headers(h, n, "Origin", &f);
  if (origins > 1) return DX_EHTTP_MALFORMED;
  if (origins) out->origin = f->value;

  dx_handshake_accept_key(out->key.ptr, out->key.len, out->accept);
  return 0;
}

int dx_handshake_select_protocol(const dx_http_request *req, const char *const *supported,
                                 size_t n) {
  if (!req || !supported || (!req->headers && req->num_headers)) return -1;
  if (n > INT_MAX) n = INT_MAX;
  for (size_t s = 0; s < n; s++) {
    if (!supported[s] || !supported[s][0]) continue; /* "" would match empty elements */
    size_t slen = strlen(supported[s]);
    for (size_t i = 0; i < req->num_headers; i++) {
      if (!name_is(&req->headers[i], "Sec-WebSocket-Protocol")) continue;
      list_iter it = list_begin(req->headers[i].value);
      dx_str e;
      while (list_next(&it, &e))
        if (e.len == slen && memcmp(e.ptr, supported[s], slen) == 0) return (int)s;
    }
  }
  return -1;
}

/* ---- Building messages ---- */

/* Appends to buf[0..cap) and remembers whether anything did not fit. */
typedef struct writer {
  char *buf;
  size_t cap, len;
  int full;
} writer;

static void put(writer *w, const char *s, size_t n) {
  if (w->full) return;
  if (n > w->cap - w->len) {
    w->full = 1;
    return;
  }
  if (n) memcpy(w->buf + w->len, s, n);
  w->len += n;
}

static void puts_(writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_uint(writer *w, size_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  put(w, tmp + i, sizeof tmp - i);
}

static int finish(writer *w) {
  if (w->full || w->len > INT_MAX) return DX_ENOSPC;
  return (int)w->len;
}

/* Whether s can sit inside a header line: no CR, LF or NUL (the latter is
 * implied by C strings). */
static int safe_value(const char *s) { return strpbrk(s, "\r\n") == NULL; }

/* extra_headers: empty, or whole "Name: value\r\n" lines with no other CR
 * or LF (an empty line would end the head early). */
static int safe_extra(const char *s) {
  while (*s) {
    const char *e = strstr(s, "\r\n");
    if (!e) return 0;
    const char *p = s;
    while (p < e && dx__http_is_tchar((unsigned char)*p)) p++;
    if (p == s || p == e || *p != ':') return 0;
    for (; p < e; p++)
      if (*p == '\r' || *p == '\n') return 0;
    s = e + 2;
  }
  return 1;
}

int dx_handshake_build_response(char *buf, size_t cap, const char *accept, const char *protocol,
                                const char *extensions, const char *extra_headers) {
  if ((!buf && cap) || !accept || !safe_value(accept)) return DX_EINVAL;
  if (protocol && !dx__http_is_token(protocol, strlen(protocol))) return DX_EINVAL;
  if (extensions && !safe_value(extensions)) return DX_EINVAL;
  if (extra_headers && !safe_extra(extra_headers)) return DX_EINVAL;
  writer w = {buf, cap, 0, 0};
  puts_(&w, "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: ");
  puts_(&w, accept);
  puts_(&w, "\r\n");
  if (protocol) {
    puts_(&w, "Sec-WebSocket-Protocol: ");
    puts_(&w, protocol);
    puts_(&w, "\r\n");
  }
  if (extensions) {
    puts_(&w, "Sec-WebSocket-Extensions: ");
    puts_(&w, extensions);
    puts_(&w, "\r\n");
  }
  if (extra_headers) puts_(&w, extra_headers);
  puts_(&w, "\r\n");
  return finish(&w);
}

const char *dx_http_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 417:
    return "Expectation Failed";
  case 421:
    return "Misdirected Request";
  case 426:
    return "Upgrade Required";
  case 428:
    return "Precondition Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

int dx_http_build_error(char *buf, size_t cap, int status, const char *body) {
  /* 1xx, 204 and 304 cannot carry the body this function always sends. */
  if ((!buf && cap) || status < 200 || status > 999 || status == 204 || status == 304)
    return DX_EINVAL;
  const char *reason = dx_http_reason(status);
  size_t body_len = body ? strlen(body) : strlen(reason) + 1; /* reason + "\n" */
  writer w = {buf, cap, 0, 0};
  puts_(&w, "HTTP/1.1 ");
  put_uint(&w, (size_t)status);
  puts_(&w, " ");
  puts_(&w, reason);
  puts_(&w, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  put_uint(&w, body_len);
  puts_(&w, "\r\nConnection: close\r\n");
  /* RFC 9110 15.5.6: a 405 MUST list the allowed methods; an upgrade is GET only. */
  if (status == 405) puts_(&w, "Allow: GET\r\n");
  if (status == 426) puts_(&w, "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
  puts_(&w, "\r\n");
  if (body) {
    puts_(&w, body);
  } else {
    puts_(&w, reason);
    puts_(&w, "\n");
  }
  return finish(&w);
}

/* ---- Client side ---- */

/* Request-target bytes: visible ASCII (no SP, CTL) and bytes >= 0x80. */
static int valid_target(const char *s) {
  if (s[0] != '/') return 0;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f) return 0;
  return 1;
}

int dx_handshake_build_request(char *buf, size_t cap, const dx_client_request *r) {
  if ((!buf && cap) || !r || !r->host || !r->key) return DX_EINVAL;
  const char *path = r->path ? r->path : "/";
  if (!r->host[0] || !safe_value(r->host) || !safe_value(r->key) || !valid_target(path))
    return DX_EINVAL;
  if (r->num_protocols && !r->protocols) return DX_EINVAL;
  for (size_t i = 0; i < r->num_protocols; i++)
    if (!r->protocols[i] || !dx__http_is_token(r->protocols[i], strlen(r->protocols[i])))
      return DX_EINVAL;
  if ((r->extensions && !safe_value(r->extensions)) || (r->origin && !safe_value(r->origin)) ||
      (r->extra_headers && !safe_extra(r->extra_headers)))
    return DX_EINVAL;

  writer w = {buf, cap, 0, 0};
  puts_(&w, "GET ");
  puts_(&w, path);
  puts_(&w, " HTTP/1.1\r\nHost: ");
  puts_(&w, r->host);
  puts_(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
  puts_(&w, r->key);
  puts_(&w, "\r\nSec-WebSocket-Version: 13\r\n");
  if (r->num_protocols) {
    puts_(&w, "Sec-WebSocket-Protocol: ");
    for (size_t i = 0; i < r->num_protocols; i++) {
      if (i) puts_(&w, ", ");
      puts_(&w, r->protocols[i]);
    }
    puts_(&w, "\r\n");
  }
  if (r->extensions) {
    puts_(&w, "Sec-WebSocket-Extensions: ");
    puts_(&w, r->extensions);
    puts_(&w, "\r\n");
  }
  if (r->origin) {
    puts_(&w, "Origin: ");
    puts_(&w, r->origin);
    puts_(&w, "\r\n");
  }
  if (r->extra_headers) puts_(&w, r->extra_headers);
  puts_(&w, "\r\n");
  return finish(&w);
}

static int offered_ext(const char *const *offered, dx_str name) {
  if (!offered) return 0;
  for (; *offered; offered++)
    if (strlen(*offered) == name.len && ci_eq(*offered, name.ptr, name.len)) return 1;
  return 0;
}

int dx_upgrade_verify(const dx_http_response *resp, const char *key, const char *const *protocols,
                      size_t num_protocols, const char *const *offered_extensions,
                      dx_upgrade_response *out) {
  if (!resp || !key || !out || (!resp->headers && resp->num_headers) ||
      (num_protocols && !protocols))
    return DX_EINVAL;
  const dx_http_header *h = resp->headers, *f;
  size_t n = resp->num_headers;
  memset(out, 0, sizeof *out);
  out->protocol_index = -1;

  if (resp->status != 101) return DX_EHTTP_STATUS;
  if (resp->minor_version < 1) return DX_EHTTP_VERSION; /* 101 does not exist in HTTP/1.0 */
  /* RFC 6455 4.1: the value must be "websocket" itself, not a list. */
  if (count_headers(h, n, "Upgrade", &f) != 1 || f->value.len != 9 ||
      !ci_eq(f->value.ptr, "websocket", 9))
    return DX_EHTTP_NO_UPGRADE;
  if (!dx_http_has_token(h, n, "Connection", "upgrade")) return DX_EHTTP_NO_CONNECTION;

  char expect[DX_HANDSHAKE_ACCEPT_LEN + 1];
  dx_handshake_accept_key(key, strlen(key), expect);
  if (count_headers(h, n, "Sec-WebSocket-Accept", &f) != 1 || expect[0] == '\0' ||
      !str_eq(f->value, expect))
    return DX_EWS_ACCEPT;

  /* The server picks at most one protocol, and only one we offered. */
  size_t np = count_headers(h, n, "Sec-WebSocket-Protocol", &f);
  if (np > 1) return DX_EWS_UNOFFERED_PROTOCOL;
  if (np == 1) {
    for (size_t i = 0; i < num_protocols && i < INT_MAX; i++) {
      if (protocols[i] && str_eq(f->value, protocols[i])) {
        out->protocol_index = (int)i;
        break;
      }
    }
    if (out->protocol_index < 0) return DX_EWS_UNOFFERED_PROTOCOL;
  }

  size_t next = 0, cap = sizeof out->extensions / sizeof out->extensions[0];
  for (size_t i = 0; i < n; i++) {
    if (!name_is(&h[i], "Sec-WebSocket-Extensions")) continue;
    if (dx_ext_parse(h[i].value.ptr, h[i].value.len, out->extensions, &next, cap))
      return DX_EWS_EXTENSIONS;
  }
  out->num_extensions = next;
  for (size_t i = 0; i < next; i++)
    if (!offered_ext(offered_extensions, out->extensions[i].name))
      return DX_EWS_UNOFFERED_EXTENSION;
  return 0;
}
