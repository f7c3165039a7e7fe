/* Character classes of HTTP/1.1 (RFC 9110 section 5.6.2), shared by the
 * request parser, the handshake checks and the extension grammar. */
#ifndef DX_PROTO_HTTP_CHARS_H
#define DX_PROTO_HTTP_CHARS_H

#include <stdbool.h>
#include <stddef.h>

/* tchar: a byte allowed in a token. */
bool dx__http_is_tchar(unsigned char c);

/* A non-empty run of tchars. */
bool dx__http_is_token(const char *s, size_t n);

#endif
