/* duplex — TLS options for wss:// (OpenSSL 3).
 *
 * Servers: dx_server_opts.tls; clients: dx_client_opts.tls. Defaults are
 * the safe ones: TLS 1.2 minimum, forward-secret AEAD suites only
 * ("ECDHE+AESGCM:ECDHE+CHACHA20" for TLS 1.2; OpenSSL's TLS 1.3 suites),
 * ALPN "http/1.1", and on clients certificate and host name verification
 * against the system CA store (Debian: ca-certificates). Host names match
 * a certificate's DNS names with whole-label wildcards only ("*.example.com",
 * never "w*.example.com"); IP addresses match IP names.
 */
#ifndef DUPLEX_TLS_H
#define DUPLEX_TLS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_tls_opts {
  /* Server: the certificate chain (PEM, leaf first) and its private key.
   * Client: an optional client certificate and key. */
  const char *cert_file;
  const char *key_file;
  /* Server: CA file to request and verify client certificates (mutual
   * TLS); NULL = none. Client: CA file to trust instead of the system
   * store (a private CA). */
  const char *ca_file;
  /* Client only: skip certificate and host name verification (testing
   * only; a warning is logged). */
  bool insecure;
  /* OpenSSL cipher list for TLS 1.2 (NULL = the default above). Servers
   * pick DH parameters automatically if the list has DHE suites. */
  const char *ciphers;
} dx_tls_opts;

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_TLS_H */
