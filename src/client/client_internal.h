/* duplex — what the files of src/client/ share.
 *
 *   client.c     attempts: resolve, TCP connect, reconnect with backoff;
 *                dx_connect and the public API
 *   options.c    dx_connect's options: checks, copies, defaults
 *   proxy.c      HTTP CONNECT proxies: the address and credentials, the
 *                CONNECT request and the proxy's answer
 *   handshake.c  the opening handshake, client side
 */
#ifndef DX_CLIENT_INTERNAL_H
#define DX_CLIENT_INTERNAL_H

#include <netdb.h>

#include "client/resolve.h"
#include "duplex/client.h"
#include "io/loop_internal.h"
#include "ws/ws_internal.h"

#define DX_CLIENT_MAX_RESPONSE 16384
#define DX_CLIENT_MAX_HEADERS 64

enum { HS_PROXY = 1, HS_UPGRADE = 2 };

struct dx_client {
  dx_ws_owner ws_owner; /* first: its connections find their ops here */
  dx_loop *loop;
  dx_url url;
  dx_url proxy;
  bool use_proxy;
  dx_ws_route route;
  dx_ws_config cfg;
  dx_client_opts opts; /* strings below are our copies */
  char *origin, *headers;
  char *proxy_auth; /* "Basic ..." from user:pass@ in the proxy URL, or NULL */
  /* The user's on_close: ours runs first (see client_on_close). */
  void (*user_on_close)(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                        void *user);
  char **protocols;
  size_t nprotocols;
  uint16_t *final_codes;
  char ext_offer[200]; /* Sec-WebSocket-Extensions we send, or "" */
  dx_pmd_shared *pmd_shared;
  SSL_CTX *tls_ctx;  /* wss:// */
  dx_deferred first; /* the first attempt starts after dx_connect returns */

  dx_ws *ws;           /* current attempt, any phase */
  dx_timer timer;      /* connect deadline, then reconnect wait */
  dx_timer conn_timer; /* the connection's timeout (handshake, heartbeat, close) */
  dx_ws *timed_ws;     /* whose it is */
  dx_resolve *resolving;
  struct addrinfo *addrs, *next_addr;
  int fd; /* socket while TCP-connecting, else -1 */
  dx_io conn_io;
  int last_connect_errno;
  uint8_t hs_step;
  char key[DX_HANDSHAKE_KEY_LEN + 1];

  int attempt;        /* failed attempts in a row */
  uint64_t opened_at; /* loop ms the current connection opened, 0 if not */
  uint64_t deadline;  /* loop ms: end of the current attempt's connect_timeout */
  bool waiting;       /* reconnect timer running */
  bool user_closed;   /* dx_client_close, or a close this side started: no reconnect */
  bool done;
  bool freed;
};

/* ---- client.c ---- */

/* Fail the attempt in progress with err and a sentence. */
void dx__client_attempt_fail(dx_client *c, int err, const char *msg);

/* ---- options.c ---- */

/* Take the caller's options (NULL: defaults) into c->opts and c->cfg:
 * strings copied, checks done, defaults filled, the TLS context and the
 * proxy set up. Returns NULL or why they are refused (static or
 * thread-local storage). */
const char *dx__client_take_options(dx_client *c, const dx_client_opts *opts);
/* Free what dx__client_take_options copied. */
void dx__client_free_options(dx_client *c);

/* ---- proxy.c ---- */

/* "http://[user:pass@]host:port[/]" into c->proxy and c->proxy_auth.
 * Returns NULL or the reason. */
const char *dx__client_parse_proxy(dx_client *c, const char *proxy);
/* Queue the CONNECT request. */
void dx__client_write_connect(dx_client *c, dx_ws *ws);
/* The proxy answered CONNECT with `resp`; `rest` followed its head. */
void dx__client_proxy_answered(dx_client *c, dx_ws *ws, const dx_http_response *resp, uint8_t *rest,
                               size_t rest_len);

/* ---- handshake.c ---- */

/* Queue the upgrade request (with a fresh key). Returns 0 or a DX_E* code. */
int dx__client_write_upgrade(dx_client *c, dx_ws *ws);
/* Bytes of a connection still in its handshake (owner ops). */
void dx__client_on_handshake_read(dx_ws *ws, uint8_t *data, size_t len);

#endif /* DX_CLIENT_INTERNAL_H */
