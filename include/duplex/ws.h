/* duplex — a WebSocket connection (server or client side).
 *
 * A dx_ws is created by the library (by a server when a client upgrades, by
 * dx_connect for a client) and handed to your handlers. You never free it:
 *
 *   lifetime   valid from on_upgrade/on_open until on_close returns. After
 *              on_close the library frees it at the end of the loop turn, so
 *              a handler that closes a connection may keep using the pointer
 *              until it returns; any later use is a bug.
 *   threads    every dx_ws_* function must be called on the thread running
 *              the connection's loop (debug builds abort otherwise). From
 *              another thread, hand the work over with dx_loop_post().
 *   errors     negative DX_E* codes (duplex/error.h), dx_strerror() for text.
 */
#ifndef DUPLEX_WS_H
#define DUPLEX_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "duplex/common.h"
#include "duplex/error.h"
#include "duplex/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_ws dx_ws;
typedef struct dx_loop dx_loop;

/* Handlers for a route (server) or a connection (client). Every member may
 * be NULL. `user` is the pointer given with the handlers. */
typedef struct dx_ws_handlers {
  /* Server only, before the 101 response: inspect the request with
   * dx_ws_path/query/header/origin, choose a subprotocol with
   * dx_ws_set_protocol, fill dx_ws_data(). Return 0 to accept, or an HTTP
   * status (400-599, e.g. 401 or 403) to reject the upgrade.
   * Releasing what you attach here: once you accept, on_close is certain to
   * come, even if the upgrade then fails (out of memory, a 101 that cannot
   * be sent): then on_error and on_close follow and on_open never runs.
   * After a rejection no other handler runs: release before returning. */
  int (*on_upgrade)(dx_ws *ws, void *user);
  /* The connection is open: messages may be sent. */
  void (*on_open)(dx_ws *ws, void *user);
  /* A whole message (opcode DX_OP_TEXT or DX_OP_BINARY). Text is valid
   * UTF-8. `data` is valid only during the call. */
  void (*on_message)(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user);
  /* Control frames, for information (pongs are sent automatically). */
  void (*on_ping)(dx_ws *ws, const void *data, size_t len, void *user);
  void (*on_pong)(dx_ws *ws, const void *data, size_t len, void *user);
  /* Buffered outgoing bytes fell back to the low-water mark. */
  void (*on_drain)(dx_ws *ws, void *user);
  /* Something went wrong; `err` is a DX_E* code and `msg` a sentence a person
   * understands. on_close always follows. */
  void (*on_error)(dx_ws *ws, int err, const char *msg, void *user);
  /* Called exactly once, last, for every connection that opened or that
   * on_upgrade accepted: the place to release per-connection resources.
   * (Without on_upgrade, a server connection whose upgrade fails before
   * on_open is never seen by any handler.) `code` is the peer's close code
   * (1005 when it sent none), the code we sent when we failed the
   * connection, or 1006 when the connection dropped without a closing
   * handshake; `clean` says whether close frames were exchanged both ways. */
  void (*on_close)(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                   void *user);
  /* Bytes of per-connection user data allocated inline with the connection
   * (zeroed); see dx_ws_data(). */
  size_t data_size;
} dx_ws_handlers;

/* What to do with a connection whose unsent bytes would exceed
 * max_buffered (dx_server_opts.backpressure). */
typedef enum dx_backpressure_policy {
  DX_BP_CLOSE = 0,  /* default: drop the message and close with 1008 (logged) */
  DX_BP_CLOSE_1013, /* drop the message and close with 1013 "try again later" */
  DX_BP_DROP,       /* drop the message, keep the connection; send returns DX_EBACKPRESSURE */
} dx_backpressure_policy;

/* What dx_ws_send did with the message. */
typedef enum dx_send_result {
  DX_SENT = 0,     /* queued; it will be written before the loop sleeps */
  DX_BUFFERED = 1, /* queued, but the socket is not keeping up (above low water):
                      slow down until on_drain */
} dx_send_result;

/* Send a whole message (DX_OP_TEXT, DX_OP_BINARY) or a ping/pong (<= 125
 * bytes). The bytes are copied; `data` may be reused at once. Returns
 * DX_SENT or DX_BUFFERED, or a negative error: DX_ECLOSED (closing or
 * closed), DX_EINVAL, DX_EBACKPRESSURE (the per-connection buffer cap was hit:
 * the message was dropped, and with the default policy the connection is
 * being closed with 1008). */
DX_API int dx_ws_send(dx_ws *ws, unsigned opcode, const void *data, size_t len);

/* Convenience: text from a NUL-terminated string. */
DX_API int dx_ws_send_text(dx_ws *ws, const char *text);

/* Send one fragment of a message (see dx_proto_send_frame for the rules):
 * DX_OP_TEXT/BINARY first, then DX_OP_CONT, with `more` on all but the
 * last. */
DX_API int dx_ws_send_fragment(dx_ws *ws, unsigned opcode, const void *data, size_t len, bool more);

/* ---- prepared messages: encode once, send to many (broadcast) ----
 *
 * A dx_msg holds a message framed once (and, on first need, compressed
 * once). dx_ws_send_msg queues a reference to those shared bytes instead of
 * copying them, on every server connection it can (a connection compressing
 * with its own context, or a client connection, gets its own copy as with
 * dx_ws_send). Create it, send it to any number of connections of the same
 * loop thread, then free it: queued references keep the bytes alive until
 * they are written. Not thread-safe: one loop thread. */
typedef struct dx_msg dx_msg;

/* Copy `data` into a new prepared message. NULL when out of memory or for
 * an opcode other than DX_OP_TEXT/DX_OP_BINARY. */
DX_API dx_msg *dx_msg_new(unsigned opcode, const void *data, size_t len);

/* Send it: the same results as dx_ws_send. */
DX_API int dx_ws_send_msg(dx_ws *ws, dx_msg *msg);

/* Drop your reference (connections still sending keep theirs). NULL ok. */
DX_API void dx_msg_free(dx_msg *msg);

/* Start the closing handshake with `code` (1000, 1001, 1008, 3000-4999, ...;
 * 0 for none) and an optional UTF-8 `reason` (<= 123 bytes; NULL for none).
 * on_close follows when the peer answers, or after the close timeout. */
DX_API int dx_ws_close(dx_ws *ws, uint16_t code, const char *reason);

/* Drop the connection now, without a closing handshake. on_close (1006)
 * runs before this returns, unless it already ran; no handler runs after. */
DX_API void dx_ws_abort(dx_ws *ws);

/* Bytes queued but not yet written to the socket (like the browser's
 * bufferedAmount). */
DX_API size_t dx_ws_buffered(const dx_ws *ws);

/* The inline per-connection data (dx_ws_handlers.data_size bytes), or NULL if
 * data_size was 0. */
DX_API void *dx_ws_data(dx_ws *ws);

/* A number naming this server connection: never 0, and never given to
 * another connection of the same server while it lives (the slot part is
 * reused, the 32-bit generation part makes stale ids miss). Unlike the
 * dx_ws pointer, an id may be kept after on_close and handed to other
 * threads: dx_server_find() and dx_server_post_send() (server.h) check that
 * the connection is still there. 0 for dx_connect connections. Any time. */
DX_API uint64_t dx_ws_id(const dx_ws *ws);

/* Request details. path and query stay valid for the connection's lifetime;
 * dx_ws_header only during on_upgrade and on_open (NULL afterwards). Strings
 * are NUL-terminated. query is "" when absent. */
DX_API const char *dx_ws_path(const dx_ws *ws);
DX_API const char *dx_ws_query(const dx_ws *ws);
DX_API const char *dx_ws_header(const dx_ws *ws, const char *name);
DX_API const char *dx_ws_origin(const dx_ws *ws);

/* Choose the subprotocol (server, in on_upgrade). `proto` must be one of the
 * client's offers; returns DX_EINVAL otherwise. */
DX_API int dx_ws_set_protocol(dx_ws *ws, const char *proto);

/* The negotiated subprotocol, or NULL. */
DX_API const char *dx_ws_protocol(const dx_ws *ws);

/* The peer's address. Returns 0 or DX_ESYS. */
DX_API int dx_ws_peer(const dx_ws *ws, struct sockaddr_storage *addr, socklen_t *len);

/* The peer's address as "ip:port" ("[v6]:port"), into buf. */
DX_API const char *dx_ws_peer_str(const dx_ws *ws, char *buf, size_t cap);

/* The loop the connection runs on. */
DX_API dx_loop *dx_ws_loop(const dx_ws *ws);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_WS_H */
