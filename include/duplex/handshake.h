/* duplex — the WebSocket opening handshake (RFC 6455 section 4), sans-I/O.
 *
 * HTTP/1.1 parsing is incremental and allocation-free: call the parser with
 * everything received so far; it returns "need more" (DX_EAGAIN), the number
 * of bytes the message head occupied, or an error naming the broken rule.
 * Parsed strings point into the caller's buffer and stay valid as long as it
 * does. Nothing here allocates, reads a clock or touches global state (the
 * client key's randomness is supplied by the caller), so all functions may
 * be called from any thread on distinct data.
 */
#ifndef DUPLEX_HANDSHAKE_H
#define DUPLEX_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A counted string pointing into someone else's buffer (not NUL-terminated). */
typedef struct dx_str {
  const char *ptr;
  size_t len;
} dx_str;

typedef struct dx_http_header {
  dx_str name;  /* as sent; compare case-insensitively */
  dx_str value; /* leading/trailing whitespace removed */
} dx_http_header;

/* Limits for parsing a message head. Zero fields take the defaults. */
typedef struct dx_http_limits {
  size_t max_line;    /* request/status line; default 4096 */
  size_t max_size;    /* whole head including the blank line; default 8192 */
  size_t max_headers; /* header fields; default 64, never above the array size */
} dx_http_limits;

typedef struct dx_http_request {
  dx_str method;
  dx_str target;           /* request-target as sent: path and optional ?query */
  dx_str path;             /* target up to '?' */
  dx_str query;            /* after '?' (without it); len 0 if none */
  int minor_version;       /* HTTP/1.x */
  dx_http_header *headers; /* in: caller's array; out: filled */
  size_t num_headers;      /* in: array capacity; out: count */
} dx_http_request;

typedef struct dx_http_response {
  int minor_version;
  int status;
  dx_str reason;
  dx_http_header *headers; /* in: caller's array; out: filled */
  size_t num_headers;      /* in: array capacity; out: count */
} dx_http_response;

/* Parse an HTTP/1.x request head from buf[0..len). Returns the head's length
 * (through the blank line) when complete; DX_EAGAIN when more bytes are
 * needed (and the limits are not yet exceeded); DX_EHTTP_MALFORMED,
 * DX_EHTTP_LINE_TOO_LONG, DX_EHTTP_TOO_MANY_HEADERS or DX_EHTTP_TOO_LARGE.
 * `limits` may be NULL. Never reads past buf[len-1]. */
DX_API int dx_http_parse_request(const char *buf, size_t len, dx_http_request *req,
                                 const dx_http_limits *limits);

/* Same for a response head (client side). */
DX_API int dx_http_parse_response(const char *buf, size_t len, dx_http_response *resp,
                                  const dx_http_limits *limits);

/* First header named `name` (case-insensitive), or NULL. */
DX_API const dx_http_header *dx_http_find(const dx_http_header *h, size_t n, const char *name);

/* True if the comma-separated list in the header(s) named `name` contains
 * `token` (case-insensitive), e.g. Connection: keep-alive, Upgrade. All
 * headers of that name are searched. */
DX_API bool dx_http_has_token(const dx_http_header *h, size_t n, const char *name,
                              const char *token);

/* ---- Sec-WebSocket-Accept ---- */

/* The 24-character base64 form of a client key plus NUL. */
#define DX_HANDSHAKE_KEY_LEN 24
/* Sec-WebSocket-Accept: 28 characters plus NUL. */
#define DX_HANDSHAKE_ACCEPT_LEN 28

/* accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). */
DX_API void dx_handshake_accept_key(const char *key, size_t key_len,
                                    char out[DX_HANDSHAKE_ACCEPT_LEN + 1]);

/* Base64 of 16 caller-supplied random bytes (use a CSPRNG). */
DX_API void dx_handshake_make_key(const uint8_t nonce[16], char out[DX_HANDSHAKE_KEY_LEN + 1]);

/* ---- Extensions (Sec-WebSocket-Extensions, RFC 6455 section 9.1) ---- */

#define DX_EXT_MAX_PARAMS 8

typedef struct dx_ext_param {
  dx_str name;
  dx_str value; /* ptr == NULL when the parameter has no value; quotes stripped */
} dx_ext_param;

typedef struct dx_ext_offer {
  dx_str name;
  dx_ext_param params[DX_EXT_MAX_PARAMS];
  size_t num_params;
} dx_ext_offer;

/* Parse one Sec-WebSocket-Extensions value into offers[*n..cap), appending
 * (so several header lines accumulate). Returns 0, DX_EWS_EXTENSIONS for bad
 * syntax (including a quoted value that is not a token, or more than
 * DX_EXT_MAX_PARAMS parameters), or DX_ELIMIT when `cap` is too small. */
DX_API int dx_ext_parse(const char *value, size_t len, dx_ext_offer *offers, size_t *n, size_t cap);

/* ---- Server side ---- */

typedef struct dx_upgrade_request {
  dx_str host;
  dx_str origin;    /* len 0 when absent */
  dx_str key;       /* Sec-WebSocket-Key as sent */
  dx_str protocols; /* raw Sec-WebSocket-Protocol values; see dx_handshake_select_protocol */
  dx_ext_offer extensions[8];
  size_t num_extensions;
  char accept[DX_HANDSHAKE_ACCEPT_LEN + 1];
} dx_upgrade_request;

/* Validate a parsed request as a WebSocket upgrade: GET, HTTP/1.1+, one
 * Host, Upgrade containing "websocket", Connection containing "Upgrade",
 * exactly one Sec-WebSocket-Key decoding to 16 bytes, Sec-WebSocket-Version
 * 13, well-formed extension and protocol headers. Fills *out (including the
 * accept value) and returns 0, or the DX_E* code for the first rule broken;
 * dx_http_status_for_error() turns it into the status to answer. */
DX_API int dx_upgrade_check(const dx_http_request *req, dx_upgrade_request *out);

/* Pick the first of the server's `supported` subprotocols (in the server's
 * order of preference) that the client offered in any Sec-WebSocket-Protocol
 * header. Returns its index, or -1 if none matches or none was offered. */
DX_API int dx_handshake_select_protocol(const dx_http_request *req, const char *const *supported,
                                        size_t n);

/* Write a "101 Switching Protocols" response. `protocol` and `extensions`
 * (a ready Sec-WebSocket-Extensions value) may be NULL; `extra_headers` may be
 * NULL or whole "Name: value\r\n" lines. Returns the length written or
 * DX_ENOSPC. */
DX_API int dx_handshake_build_response(char *buf, size_t cap, const char *accept,
                                       const char *protocol, const char *extensions,
                                       const char *extra_headers);

/* Write an error response with a short text/plain body and
 * "Connection: close". 426 carries "Sec-WebSocket-Version: 13" and
 * "Upgrade: websocket"; `body` may be NULL for the status's reason phrase.
 * Returns the length written or DX_ENOSPC. */
DX_API int dx_http_build_error(char *buf, size_t cap, int status, const char *body);

/* Reason phrase for an HTTP status ("Not Found"), "Unknown" if not known. */
DX_API const char *dx_http_reason(int status);

/* ---- Client side ---- */

typedef struct dx_client_request {
  const char *host;             /* Host header value, with ":port" when not the default */
  const char *path;             /* request-target, "/" if NULL */
  const char *key;              /* from dx_handshake_make_key() */
  const char *const *protocols; /* offered subprotocols, may be NULL */
  size_t num_protocols;
  const char *extensions;    /* ready Sec-WebSocket-Extensions value, or NULL */
  const char *origin;        /* or NULL */
  const char *extra_headers; /* whole "Name: value\r\n" lines, or NULL */
} dx_client_request;

/* Write the client's upgrade request. Returns its length or DX_ENOSPC. */
DX_API int dx_handshake_build_request(char *buf, size_t cap, const dx_client_request *r);

/* Check the parts of `r` an application chooses (protocols, origin,
 * extra_headers) before building requests with them: each subprotocol one
 * token, offered once; an Origin that is not empty and holds no control
 * characters; extra headers as whole "Name: value\r\n" lines with token
 * names, no control characters in values, and none of the headers the
 * request sets itself (Host, Upgrade, Connection, Sec-WebSocket-*).
 * Returns 0, or DX_EINVAL with a sentence naming the offending value in
 * why[0..cap) (cap may be 0). */
DX_API int dx_handshake_check_request(const dx_client_request *r, char *why, size_t cap);

typedef struct dx_upgrade_response {
  int protocol_index;         /* index into the offered protocols, -1 if none chosen */
  dx_ext_offer extensions[4]; /* what the server accepted */
  size_t num_extensions;
} dx_upgrade_response;

/* Verify the server's answer: status 101, Upgrade: websocket, Connection:
 * Upgrade, the right Sec-WebSocket-Accept for `key`, a chosen subprotocol
 * that was offered (and at most one), and only extensions whose names are in
 * `offered_extensions` (NULL-terminated array of names; NULL = none).
 * Fills *out, returns 0 or DX_EHTTP_STATUS, DX_EHTTP_NO_UPGRADE,
 * DX_EHTTP_NO_CONNECTION, DX_EWS_ACCEPT, DX_EWS_UNOFFERED_PROTOCOL,
 * DX_EWS_UNOFFERED_EXTENSION, DX_EWS_EXTENSIONS. */
DX_API int dx_upgrade_verify(const dx_http_response *resp, const char *key,
                             const char *const *protocols, size_t num_protocols,
                             const char *const *offered_extensions, dx_upgrade_response *out);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_HANDSHAKE_H */
