/* The TLS transport: OpenSSL over a non-blocking socket. */
#include "io/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"

#define DX_TLS_STAGE 16384 /* one TLS record's worth of small writes */

/* A TLS stream's state. It begins with the vtable pointer: the stream's
 * one transport word points here (dx_stream_tstate). */
typedef struct dx_tls {
  const dx_transport *ops; /* &dx_transport_tls; first */
  SSL *ssl;
  bool server;
  bool checked_first_byte; /* server: the client's first byte was looked at */
  size_t retry_len;        /* bytes offered to an SSL_write that must be retried */
  char err[200];
} dx_tls;

static _Thread_local uint8_t stage[DX_TLS_STAGE];

/* ---- contexts ---- */

static void openssl_reason(char *buf, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  if (e) {
    ERR_error_string_n(e, buf, cap);
  } else {
    snprintf(buf, cap, "%s", errno ? strerror(errno) : "unknown error");
  }
  ERR_clear_error();
}

static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  /* A WebSocket client offering only h2: no ALPN rather than a failure. */
  return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *common_ctx(const SSL_METHOD *m, const dx_tls_opts *o, char *err, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(m);
  if (!ctx) {
    char why[160];
    openssl_reason(why, sizeof why);
    snprintf(err, cap, "cannot create a TLS context: %s", why);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* TLS 1.2 suites (1.3 has its own, all fine): forward-secret AEAD only.
   * No DHE: ECDHE covers every current client, and finite-field DH needs
   * parameters (dh_auto is set for servers, for cipher lists that ask). */
  const char *ciphers = o && o->ciphers ? o->ciphers : "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5";
  if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
    snprintf(err, cap, "bad TLS cipher list '%s'", ciphers);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (o && o->cert_file) {
    const char *files[2] = {o->cert_file, o->key_file};
    for (int i = 0; i < 2; i++) {
      if (files[i] && access(files[i], R_OK) != 0) { /* OpenSSL only says "system lib" */
        snprintf(err, cap, "cannot read %s %s: %s", i ? "private key" : "certificate", files[i],
                 strerror(errno));
        SSL_CTX_free(ctx);
        return NULL;
      }
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
      char why[160];
      openssl_reason(why, sizeof why);
      snprintf(err, cap, "cannot load certificate %s: %s", o->cert_file, why);
      SSL_CTX_free(ctx);
      return NULL;
    }
    const char *key = o->key_file ? o->key_file : o->cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
      char why[160];
      openssl_reason(why, sizeof why);
      snprintf(err, cap, "cannot load private key %s: %s", key, why);
      SSL_CTX_free(ctx);
      return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      snprintf(err, cap, "the private key %s does not match the certificate %s", key, o->cert_file);
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  return ctx;
}

SSL_CTX *dx__tls_server_ctx(const dx_tls_opts *o, char *err, size_t cap) {
  if (!o || !o->cert_file) {
    snprintf(err, cap, "a TLS server needs a certificate and a key (--tls-cert, --tls-key)");
    return NULL;
  }
  SSL_CTX *ctx = common_ctx(TLS_server_method(), o, err, cap);
  if (!ctx) return NULL;
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  SSL_CTX_set_dh_auto(ctx, 1); /* DH parameters if a custom cipher list has DHE suites */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  /* Needed for session resumption once client certificates are verified. */
  static const unsigned char sid_ctx[] = "duplex";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  if (o->ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
      char why[160];
      openssl_reason(why, sizeof why);
      snprintf(err, cap, "cannot load CA file %s: %s", o->ca_file, why);
      SSL_CTX_free(ctx);
      return NULL;
    }
    /* Name the acceptable CAs in the CertificateRequest, so clients with
     * several certificates can pick the right one. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  return ctx;
}

SSL_CTX *dx__tls_client_ctx(const dx_tls_opts *o, char *err, size_t cap) {
  SSL_CTX *ctx = common_ctx(TLS_client_method(), o, err, cap);
  if (!ctx) return NULL;
  SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof alpn_http11);
  if (o && o->insecure) {
    dx_log_warn("TLS certificate verification is OFF (--insecure): the connection is "
                "encrypted but the server is not authenticated");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
  }
  int ok = o && o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                           : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    char why[160];
    openssl_reason(why, sizeof why);
    snprintf(err, cap, "cannot load CA certificates %s: %s", o && o->ca_file ? o->ca_file : "",
             why);
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  return ctx;
}

/* ---- transport ---- */

static void record_error(dx_stream *s, const char *what) {
  dx_tls *t = dx_stream_tstate(s);
  if (t->err[0]) return;
  /* The verify result says why only when we verified and that is what
   * failed: with --insecure it still holds the (ignored) chain problem, and
   * other failures (the server wanting a client certificate) are not
   * about the server's certificate. */
  unsigned long e = ERR_peek_last_error();
  long v = SSL_get_verify_result(t->ssl);
  if (!t->server && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE && v != X509_V_OK &&
      ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    snprintf(t->err, sizeof t->err, "TLS certificate verification failed: %s",
             X509_verify_cert_error_string(v));
    ERR_clear_error();
  } else {
    char why[160];
    openssl_reason(why, sizeof why);
    int reason = ERR_GET_REASON(e);
    if (!t->server && !SSL_is_init_finished(t->ssl) &&
        (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING))
      snprintf(t->err, sizeof t->err,
               "TLS handshake failed: the server did not answer with TLS (a plain ws:// port?)");
    else
      snprintf(t->err, sizeof t->err, "TLS %s failed: %s", what, why);
  }
  char peer[80];
  /* A server hears of failed handshakes (bad client certificates, probes)
   * only here: say so. A client's error reaches its on_error instead. */
  if (t->server)
    dx_log_info("%s: %s", dx__peer_str(s->io.fd, peer, sizeof peer), t->err);
  else
    dx_log_debug("%s: %s", dx__peer_str(s->io.fd, peer, sizeof peer), t->err);
}

/* Map an SSL_get_error result; returns DX_EAGAIN or a fatal code. */
static int ssl_status(dx_stream *s, int ret, bool reading) {
  dx_tls *t = dx_stream_tstate(s);
  switch (SSL_get_error(t->ssl, ret)) {
  case SSL_ERROR_WANT_READ:
    if (!reading) dx_stream_want(s, DX_STREAM_WRITE_WANTS_READ);
    return DX_EAGAIN;
  case SSL_ERROR_WANT_WRITE:
    if (reading) dx_stream_want(s, DX_STREAM_READ_WANTS_WRITE);
    return DX_EAGAIN;
  case SSL_ERROR_ZERO_RETURN:
    return 0;
  case SSL_ERROR_SYSCALL:
    if (errno == EAGAIN || errno == EINTR) return DX_EAGAIN;
    snprintf(t->err, sizeof t->err, "TLS connection dropped%s%s", errno ? ": " : "",
             errno ? strerror(errno) : "");
    ERR_clear_error();
    return errno && dx__io_error(errno) == DX_ERESET ? DX_ERESET : DX_ETLS;
  default:
    record_error(s, SSL_is_init_finished(t->ssl) ? "read/write" : "handshake");
    return DX_ETLS;
  }
}

/* A plaintext client on the TLS port: TLS records start with 0x16
 * (handshake). Answer an HTTP request with a readable 400 and hang up. */
static bool plaintext_on_tls_port(dx_stream *s) {
  dx_tls *t = dx_stream_tstate(s);
  uint8_t b;
  ssize_t n = recv(s->io.fd, &b, 1, MSG_PEEK);
  if (n <= 0) return false; /* nothing yet, or EOF/error: SSL_read reports it */
  t->checked_first_byte = true;
  if (b == 0x16) return false;
  snprintf(t->err, sizeof t->err, "plaintext (not TLS) request on the TLS port");
  if (b >= 'A' && b <= 'Z') {
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 37\r\nConnection: close\r\n\r\n"
                               "This port expects TLS (https/wss).\r\n\r\n";
    if (send(s->io.fd, resp, sizeof resp - 1, MSG_NOSIGNAL) < 0) { /* best effort */
    }
  }
  return true;
}

static ssize_t tls_read(dx_stream *s, uint8_t *buf, size_t cap) {
  dx_tls *t = dx_stream_tstate(s);
  if (t->server && !t->checked_first_byte && plaintext_on_tls_port(s)) {
    char peer[80];
    dx_log_info("%s: %s; closing", dx__peer_str(s->io.fd, peer, sizeof peer), t->err);
    return DX_ETLS;
  }
  size_t got = 0;
  ERR_clear_error();
  errno = 0; /* ssl_status reads it after SSL_ERROR_SYSCALL */
  int ret = SSL_read_ex(t->ssl, buf, cap, &got);
  if (ret == 1) return (ssize_t)got;
  return ssl_status(s, ret, true);
}

static ssize_t tls_writev(dx_stream *s, const struct iovec *iov, int iovcnt) {
  dx_tls *t = dx_stream_tstate(s);
  /* Coalesce small pieces into one record; a retry after WANT_* must offer
   * at least the bytes offered before (they are still first in the queue). */
  const uint8_t *p;
  size_t n;
  if (iovcnt == 1 || iov[0].iov_len >= DX_TLS_STAGE / 2) {
    p = iov[0].iov_base;
    n = iov[0].iov_len;
  } else {
    n = 0;
    for (int i = 0; i < iovcnt && n < DX_TLS_STAGE; i++) {
      size_t k = iov[i].iov_len < DX_TLS_STAGE - n ? iov[i].iov_len : DX_TLS_STAGE - n;
      memcpy(stage + n, iov[i].iov_base, k);
      n += k;
    }
    p = stage;
  }
  /* OpenSSL refuses a retry with fewer bytes. It cannot be: nothing was
   * consumed from the queue since (the bytes are still first), and a retry
   * makes the same choice as before or a larger staged copy. Fail rather
   * than report DX_EAGAIN with nothing to wait for (the loop would spin). */
  if (n < t->retry_len) {
    snprintf(t->err, sizeof t->err, "TLS write retry with %zu bytes after %zu were offered", n,
             t->retry_len);
    return DX_ETLS;
  }
  size_t done = 0;
  ERR_clear_error();
  errno = 0;
  int ret = SSL_write_ex(t->ssl, p, n, &done);
  if (ret == 1) {
    t->retry_len = 0;
    return (ssize_t)done;
  }
  int rc = ssl_status(s, ret, false);
  if (rc == DX_EAGAIN) t->retry_len = n;
  return rc == 0 ? DX_ETLS : rc;
}

static int tls_shutdown(dx_stream *s) {
  dx_tls *t = dx_stream_tstate(s);
  if (!SSL_is_init_finished(t->ssl)) return shutdown(s->io.fd, SHUT_WR) == 0 ? 0 : DX_ESYS;
  ERR_clear_error();
  errno = 0;
  int ret = SSL_shutdown(t->ssl); /* sends close_notify; we do not wait for theirs */
  if (ret >= 0) return shutdown(s->io.fd, SHUT_WR) == 0 ? 0 : DX_ESYS;
  int rc = ssl_status(s, ret, false);
  return rc == DX_EAGAIN ? DX_EAGAIN : (shutdown(s->io.fd, SHUT_WR), 0);
}

static void tls_close(dx_stream *s) {
  dx_tls *t = dx_stream_tstate(s);
  if (s->io.fd >= 0 && t->ssl && !SSL_is_init_finished(t->ssl)) {
    /* A failed handshake: the alert we just sent is lost if close() finds
     * unread input (a TLS 1.3 client sends its request right after its
     * Finished) and answers with a reset. Send FIN, drop what is queued. */
    shutdown(s->io.fd, SHUT_WR);
    char junk[4096];
    while (recv(s->io.fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
  }
  if (s->io.fd >= 0) close(s->io.fd);
  SSL_free(t->ssl);
  t->ssl = NULL;
  /* t stays until tls_release: the stream hands its error to on_close. */
}

/* What a stream's transport word points to once its state is freed: a
 * transport that has nothing left to do. */
static ssize_t released_read(dx_stream *s, uint8_t *buf, size_t cap) {
  (void)s, (void)buf, (void)cap;
  return DX_ECLOSED;
}
static ssize_t released_writev(dx_stream *s, const struct iovec *iov, int iovcnt) {
  (void)s, (void)iov, (void)iovcnt;
  return DX_ECLOSED;
}
static int released_shutdown(dx_stream *s) {
  (void)s;
  return DX_ECLOSED;
}
static void released_close(dx_stream *s) { (void)s; }

static const dx_transport dx_transport_tls_released = {
    .name = "tls (released)",
    .read = released_read,
    .writev = released_writev,
    .shutdown = released_shutdown,
    .close = released_close,
};
static const dx_transport *const tls_released_ref = &dx_transport_tls_released;

static void tls_release(dx_stream *s, char *why, size_t cap) {
  dx_tls *t = dx_stream_tstate(s);
  if (t->err[0]) snprintf(why, cap, "%s", t->err);
  s->tp = &tls_released_ref; /* not left pointing at freed memory */
  free(t);
}

static size_t tls_pending(dx_stream *s) {
  dx_tls *t = dx_stream_tstate(s);
  return t->ssl ? (size_t)SSL_pending(t->ssl) : 0;
}

static const dx_transport dx_transport_tls = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .pending = tls_pending,
    .release = tls_release,
};

static dx_tls *tls_new(int fd, SSL_CTX *ctx, bool server, const char *host) {
  dx_tls *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ops = &dx_transport_tls;
  t->server = server;
  t->ssl = SSL_new(ctx);
  if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (host) {
      /* IP literals are checked against IP SANs and, per RFC 6066, not
       * sent as SNI; names go in SNI and are checked against DNS SANs. */
      X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
      if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
        SSL_set_tlsext_host_name(t->ssl, host);
        /* "*.example.com" matches, "w*.example.com" does not (RFC 6125
         * 6.4.3 lets clients refuse partial wildcards; browsers do). */
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(t->ssl, host);
      }
    }
  }
  return t;
}

int dx_stream_start_tls(dx_stream *s, SSL_CTX *ctx, bool server, const char *host) {
  if (s->tp != &dx_transport_tcp_ref || dx_stream_buffered(s)) return DX_ESTATE;
  dx_tls *t = tls_new(dx_stream_fd(s), ctx, server, host);
  if (!t) return DX_ENOMEM;
  s->tp = &t->ops;
  return 0;
}

int dx_stream_init_tls(dx_stream *s, dx_loop *loop, int fd, SSL_CTX *ctx, bool server,
                       const char *host, const dx_stream_cb *cb, void *user) {
  dx_tls *t = tls_new(fd, ctx, server, host);
  if (!t) return DX_ENOMEM;
  int rc = dx_stream_init(s, loop, fd, &t->ops, cb, user);
  if (rc == 0) return 0;
  SSL_free(t->ssl);
  free(t);
  return rc;
}

bool dx__stream_is_tls(const dx_stream *s) {
  return s->tp && dx_stream_transport(s) == &dx_transport_tls;
}
