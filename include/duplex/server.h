/* duplex — the WebSocket server.
 *
 *   dx_loop *loop = dx_loop_new(NULL);
 *   dx_server *srv = dx_server_new(loop, &(dx_server_opts){ .port = 8080 });
 *   dx_server_route(srv, "/chat", &(dx_ws_handlers){ .on_message = on_msg }, app);
 *   dx_server_listen(srv);
 *   dx_loop_run(loop);
 *
 * One dx_server serves one loop. For N cores, create N loops on N threads,
 * each with its own dx_server on the same port and `.reuseport = true`; the
 * kernel spreads connections across them.
 *
 * Plain HTTP on the same port: handlers registered with dx_server_http
 * (duplex/http.h), GET/HEAD of files under `static_dir`, `/healthz`, 404
 * for the rest and 426 for a WebSocket route requested without an
 * upgrade.
 *
 * Threads: every function must be called on the loop's thread, EXCEPT
 * dx_server_post_send() and dx_server_post_broadcast(), which any thread may
 * call (they hand the work to the loop with dx_loop_post). Other threads
 * name connections by dx_ws_id(), never by dx_ws pointer: a pointer dangles
 * once the connection closes, an id just stops matching.
 * Errors: negative DX_E* codes (duplex/error.h).
 */
#ifndef DUPLEX_SERVER_H
#define DUPLEX_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"
#include "duplex/deflate.h"
#include "duplex/http.h"
#include "duplex/tls.h"
#include "duplex/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_server dx_server;

/* A connection limit shared by several servers, e.g. one per loop thread
 * serving one port: together they hold at most `max_connections` (0 means
 * 100000); past it a new connection gets 503 and is closed, as with a
 * server's own max_connections, which still applies too. Put it in each
 * server's dx_server_opts.group.
 *
 * Threads: the count is atomic, so servers on different loop threads may
 * share a group, and dx_server_group_connections may be called from any
 * thread. Create the group before its servers and free it after the last
 * of them was freed (dx_server_free gives the slots of a server's
 * remaining connections back at once). Returns NULL when out of memory. */
typedef struct dx_server_group dx_server_group;
DX_API dx_server_group *dx_server_group_new(size_t max_connections);
DX_API void dx_server_group_free(dx_server_group *group); /* NULL is ok */
/* Connections the group's servers hold now (any thread). */
DX_API size_t dx_server_group_connections(const dx_server_group *group);

/* Options; zero means "default" everywhere. Times are milliseconds, and
 * a negative time disables that timer. */
typedef struct dx_server_opts {
  const char *host; /* default "0.0.0.0"; "::" for IPv6 */
  int port;         /* default 8080; 0 picks a free port (see dx_server_port) */
  int backlog;      /* default 1024 */
  bool reuseport;   /* SO_REUSEPORT, for several loops on one port */

  size_t max_connections; /* default 100000 (this server); then 503 and close */
  dx_server_group *group; /* a limit shared with other servers; NULL = none */
  size_t max_message;     /* default 16 MiB; then close 1009 */
  size_t max_frame;       /* default max_message */
  size_t max_handshake;   /* request head size, default 8 KiB; then 431 */
  size_t max_body;        /* request body for dx_server_http handlers, default 1 MiB
                             (at most 1 GiB); then 413 */

  int handshake_timeout; /* default 10000: slow or silent clients are dropped */
  int ping_interval;     /* default 30000: ping a quiet peer this often */
  int pong_timeout;      /* default 30000: no answer to a ping → close as dead */
  int idle_timeout;      /* default off (-1): close 1001 after no message either way */
  int close_timeout;     /* default 5000: wait for the peer's close frame */

  size_t max_buffered; /* unsent bytes per connection, default 4 MiB */
  size_t low_water;    /* on_drain threshold, default 64 KiB */
  dx_backpressure_policy backpressure;

  const char *const *origins; /* NULL-terminated allowlist of Origin values
                                  ("https://example.com"), or subdomain wildcards:
                                  "*.example.com" (http and https), or the same
                                  after a scheme, like the exact values; others get
                                  403. NULL allows all */
  const char *static_dir;     /* serve files from here; NULL = none */
  dx_deflate_opts deflate;    /* permessage-deflate (RFC 7692); off unless .enable */

  /* wss://: with tls.cert_file set, `port` serves TLS; set tls_port too to
   * serve plain ws on `port` and wss on `tls_port` at the same time. */
  dx_tls_opts tls;
  int tls_port;    /* 0 = TLS on `port` (when tls.cert_file is set); -1 = ephemeral */
  bool no_healthz; /* disable GET /healthz */
} dx_server_opts;

/* Create a server on `loop`. `opts` may be NULL. Returns NULL on allocation
 * failure. Nothing listens until dx_server_listen. */
DX_API dx_server *dx_server_new(dx_loop *loop, const dx_server_opts *opts);

/* Register WebSocket handlers for an exact request path ("/chat"); "*"
 * matches every path not otherwise routed. `handlers` is copied; `user` is
 * passed back to each handler. Returns 0, DX_EINVAL, DX_ENOMEM. */
DX_API int dx_server_route(dx_server *srv, const char *path, const dx_ws_handlers *handlers,
                           void *user);

/* Offer these subprotocols (NULL-terminated, in preference order) on the
 * route; the first one the client also offers is chosen unless on_upgrade
 * chooses. */
DX_API int dx_server_route_protocols(dx_server *srv, const char *path,
                                     const char *const *protocols);

/* Bind and listen. Returns 0 or DX_ESYS (the log says why: address in use,
 * permission denied, ...). */
DX_API int dx_server_listen(dx_server *srv);

/* The bound port (useful with port 0): the plain one if the server has
 * one, else the TLS one. */
DX_API int dx_server_port(const dx_server *srv);

/* The loop the server runs on (for components that attach to a server and
 * need its timers or posts). Any thread. */
DX_API dx_loop *dx_server_loop(const dx_server *srv);

/* The bound TLS port, or 0 without TLS. */
DX_API int dx_server_tls_port(const dx_server *srv);

/* Reload the TLS certificate and key from their files (e.g. on SIGHUP):
 * new connections use the new ones, open connections keep theirs. Returns
 * 0, or DX_ETLS with the reason logged (the old certificate stays). */
DX_API int dx_server_reload_tls(dx_server *srv);

/* Open connections (WebSocket and plain HTTP). */
DX_API size_t dx_server_connections(const dx_server *srv);

/* Graceful shutdown: stop accepting, send close 1001 to every WebSocket
 * client, wait up to `timeout_ms` for their close frames, then drop what is
 * left and call `done` (may be NULL) once, never from inside this call. If the
 * server is freed first (say from an on_close), `done` is not called. */
DX_API void dx_server_shutdown(dx_server *srv, int timeout_ms, void (*done)(dx_server *, void *),
                               void *arg);

/* Free the server. Best after dx_server_shutdown's `done` (from inside it
 * is fine); otherwise open connections get on_close (1006) now and are
 * dropped without further handler calls, and a pending `done` is never
 * called. May be called from a handler, on_close included: memory is
 * released at the end of the loop turn, and a second call within that turn
 * does nothing. */
DX_API void dx_server_free(dx_server *srv);

/* Send one message to every open WebSocket connection of this server,
 * framed and compressed once (see dx_msg in ws.h). Returns how many
 * connections took it, or DX_ENOMEM. Slow connections are handled by the
 * backpressure policy as with dx_ws_send. */
DX_API int dx_server_broadcast(dx_server *srv, unsigned opcode, const void *data, size_t len);

/* Call fn for every open WebSocket connection (e.g. to broadcast). fn may
 * close the connection it is given, or any other. */
DX_API void dx_server_each(dx_server *srv, void (*fn)(dx_ws *ws, void *arg), void *arg);

/* The open connection with this id (dx_ws_id), or NULL when it closed (or
 * never existed). O(1). Loop thread. */
DX_API dx_ws *dx_server_find(dx_server *srv, uint64_t id);

/* THREAD-SAFE: send a message to connection `id` (dx_ws_id) from any
 * thread. The bytes are copied now and sent on the loop thread, in posting
 * order, with dx_ws_send (so the backpressure policy applies); if the
 * connection closed in between, the message is dropped silently. Returns 0
 * once handed over, DX_EINVAL (id 0, opcode not text/binary), DX_ENOMEM or
 * DX_ESYS. To learn the outcome, post your own function with dx_loop_post
 * and call dx_server_find + dx_ws_send there.
 *
 * Lifetime: messages still queued when the loop thread calls
 * dx_server_free are dropped safely; but no thread may call these after (or
 * while) the loop thread calls dx_server_free: stop posting threads first.
 * Messages still queued when the loop itself is freed are lost, and leak
 * their copy (run the loop once after the last post). */
DX_API int dx_server_post_send(dx_server *srv, uint64_t id, unsigned opcode, const void *data,
                               size_t len);

/* THREAD-SAFE: dx_server_broadcast from any thread, with the same copy,
 * order and lifetime rules as dx_server_post_send. With several loops
 * (--threads), post to each loop's server. */
DX_API int dx_server_post_broadcast(dx_server *srv, unsigned opcode, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_SERVER_H */
