/* duplex — the WebSocket client, with optional automatic reconnect.
 *
 *   dx_client *c = dx_connect(loop, "ws://127.0.0.1:9001/chat",
 *       &(dx_client_opts){ .reconnect = true },
 *       &(dx_ws_handlers){ .on_open = on_open, .on_message = on_message }, app);
 *   ...
 *   dx_client_send(c, DX_OP_TEXT, "hi", 2);   // or dx_ws_send(ws, ...) in handlers
 *   dx_client_close(c, 1000, "bye");          // no reconnect after this
 *
 * A dx_client is one logical connection to one URL. Each attempt is its own
 * dx_ws: the handlers see on_open when an attempt succeeds and on_close when
 * it ends (or fails: then on_error comes first, with a sentence such as
 * "connection refused", "DNS lookup failed: ...", "handshake rejected with
 * HTTP status 403"). With reconnect on, the client then waits (exponential
 * backoff with full jitter, reported through on_reconnecting) and tries
 * again, until dx_client_close, a close code marked final, or max_attempts.
 *
 * Ownership: you own the dx_client and free it with dx_client_free (which
 * drops any connection without calling handlers). Threads: loop thread only.
 */
#ifndef DUPLEX_CLIENT_H
#define DUPLEX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"
#include "duplex/deflate.h"
#include "duplex/tls.h"
#include "duplex/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_client dx_client;

/* A parsed ws:// or wss:// URL. */
typedef struct dx_url {
  bool tls;          /* wss */
  char host[256];    /* name or address, without brackets */
  uint16_t port;     /* explicit, or 80 / 443 */
  bool ipv6;         /* host is an IPv6 literal */
  char target[2048]; /* path and query, at least "/" */
} dx_url;

/* Parse `url`. Returns 0, or DX_EINVAL and a reason in `why` (may be NULL):
 * unsupported scheme, missing host, bad port, unterminated IPv6 bracket,
 * user info or fragment present, too long. Brackets hold an IPv6 address
 * only; a host name is letters, digits, '-', '.' and '_' without empty
 * labels, and one that ends in a number must be a dotted-quad IPv4. */
DX_API int dx_url_parse(const char *url, dx_url *out, const char **why);

typedef struct dx_client_opts {
  /* Checked by dx_connect, which fails with the reason: subprotocols are
   * tokens (RFC 9110: no spaces, commas or quotes), each offered once; the
   * Origin and header values have no control characters but tabs; header
   * names are tokens, and not ones the client writes itself (Host,
   * Upgrade, Connection, Sec-WebSocket-*).
   * The proxy: the scheme may be omitted and is case-insensitive; user:pass
   * (percent-decoded) is sent as Proxy-Authorization: Basic; any 2xx answer
   * to CONNECT opens the tunnel. */
  const char *const *protocols; /* NULL-terminated subprotocol offers, or NULL */
  const char *origin;           /* Origin header, or NULL */
  const char *headers;          /* extra request lines "Name: value\r\n...", or NULL */
  const char *proxy;            /* "http://[user:pass@]host:port" (HTTP CONNECT), or NULL */

  int connect_timeout; /* ms for DNS + TCP + handshake; default 10000; < 0: none */
  int ping_interval;   /* default off (-1); e.g. 20000 to notice dead paths */
  int pong_timeout;    /* default 10000 */
  int close_timeout;   /* default 5000 */
  size_t max_message;  /* default 16 MiB */
  size_t max_buffered; /* default 4 MiB */
  size_t low_water;    /* on_drain threshold, default 64 KiB */
  dx_deflate_opts deflate; /* offer permessage-deflate when .enable */
  dx_tls_opts tls;         /* wss://: CA file, insecure, client certificate */

  /* Reconnect: delay before attempt n (n = 1, 2, ...) is uniform in
   * [0, min(reconnect_max, reconnect_initial * factor^(n-1))] ("full
   * jitter"). The count restarts once a connection stayed open for
   * reconnect_reset ms. */
  bool reconnect;
  int reconnect_initial;   /* default 500 ms */
  int reconnect_max;       /* default 30000 ms */
  double reconnect_factor; /* default 2.0 */
  int reconnect_attempts;  /* give up after this many failed attempts in a row; 0 = never */
  int reconnect_reset;     /* default 10000 ms */
  /* Close codes after which the client does not reconnect (0-terminated);
   * NULL means { 1008, 0 } (policy violation: the server does not want us). */
  const uint16_t *final_codes;
  /* Called before each wait; `delay_ms` is the chosen delay. */
  void (*on_reconnecting)(dx_client *c, int attempt, int delay_ms, void *user);
  /* Called once when the client will do nothing more: closed by you, a
   * final close code, reconnect off, or attempts exhausted (after the last
   * on_close). The client may be freed from here. */
  void (*on_done)(dx_client *c, void *user);
} dx_client_opts;

/* Start connecting to `url`. `opts` may be NULL. handlers->on_upgrade is not
 * used by clients. Returns the client, or NULL with a reason in `why` when
 * the URL or options are invalid or memory is short (`why` may be NULL).
 * Connection failures are reported later through the handlers. */
DX_API dx_client *dx_connect(dx_loop *loop, const char *url, const dx_client_opts *opts,
                             const dx_ws_handlers *handlers, void *user, const char **why);

/* The open connection, or NULL while connecting/waiting/closed. */
DX_API dx_ws *dx_client_ws(const dx_client *c);

/* The client a connection belongs to (NULL for server connections). */
DX_API dx_client *dx_ws_client(const dx_ws *ws);

/* Send on the open connection: as dx_ws_send; DX_ECLOSED when not open. */
DX_API int dx_client_send(dx_client *c, unsigned opcode, const void *data, size_t len);

/* Close for good: no more reconnects. If open, runs the closing handshake
 * (on_close follows); if connecting or waiting, stops (on_close follows
 * with 1006 for an attempt in progress). Returns 0; DX_EINVAL for a code
 * that may not be sent (0 means none, then no reason) or a reason that is
 * not UTF-8 or longer than 123 bytes, and then nothing changed (a corrected
 * call may follow); DX_ECLOSED once closed.
 * dx_ws_close on the client's connection also ends the client: a close
 * this side started never reconnects (one the server starts may). */
DX_API int dx_client_close(dx_client *c, uint16_t code, const char *reason);

/* True once the client will do nothing more (closed, gave up, or failed
 * without reconnect) and its last on_close was delivered. */
DX_API bool dx_client_done(const dx_client *c);

/* Free the client, dropping any connection at once (no handlers are
 * called). Safe inside the client's own handlers. NULL is a no-op. */
DX_API void dx_client_free(dx_client *c);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_CLIENT_H */
