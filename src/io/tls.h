/* duplex — the TLS transport for streams (OpenSSL 3, non-blocking).
 *
 * The handshake is driven by the stream's reads and writes (SSL_read /
 * SSL_write perform it implicitly), so it needs no extra states above:
 * the layers over a stream cannot tell TLS from TCP. */
#ifndef DX_IO_TLS_H
#define DX_IO_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "duplex/tls.h"
#include "io/stream.h"

/* Build contexts. On failure return NULL and put a sentence saying what to
 * fix into err (e.g. "cannot read certificate file x.pem: No such file"). */
SSL_CTX *dx__tls_server_ctx(const dx_tls_opts *o, char *err, size_t cap);
SSL_CTX *dx__tls_client_ctx(const dx_tls_opts *o, char *err, size_t cap);

/* Set up `s` over `fd` as a TLS server (accepting) or client (connecting,
 * with SNI and host name verification for `host` unless the context is
 * insecure). Takes a reference on ctx. Returns 0, or a DX_E* code with the
 * fd still owned by the caller. */
int dx_stream_init_tls(dx_stream *s, dx_loop *loop, int fd, SSL_CTX *ctx, bool server,
                       const char *host, const dx_stream_cb *cb, void *user);

/* Switch a plain TCP stream with nothing queued to TLS (after an HTTP
 * CONNECT tunnel is up). Returns 0, DX_ESTATE, DX_ENOMEM. */
int dx_stream_start_tls(dx_stream *s, SSL_CTX *ctx, bool server, const char *host);

/* True when `s` runs over TLS. */
bool dx__stream_is_tls(const dx_stream *s);

#endif
