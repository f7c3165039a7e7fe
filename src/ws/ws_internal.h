/* duplex — the WebSocket connection object shared by server and client:
 * a dx_stream glued to a dx_proto, with heartbeat, timeouts, backpressure
 * and the user's handlers. server/ and client/ create connections and run
 * the opening handshake; from then on everything is here. */
#ifndef DX_WS_INTERNAL_H
#define DX_WS_INTERNAL_H

#include <stdalign.h>
#include <stddef.h>

#include "duplex/deflate.h"
#include "duplex/handshake.h"
#include "duplex/proto.h"
#include "duplex/ws.h"
#include "io/stream.h"
#include "io/tls.h"
#include "proto/head_gather.h"

/* A set of handlers with its user pointer (a server route, or a client). */
typedef struct dx_ws_route {
  struct dx_ws_route *next;
  char *path;
  dx_ws_handlers h;
  void *user;
  char **protocols; /* NULL-terminated, or NULL */
} dx_ws_route;

/* Options shared by every connection of a server or client: the ws
 * layer's own, which either role fills from its options and then resolves
 * with dx__ws_config_resolve (zero = default, a negative time = off). */
typedef struct dx_ws_config {
  dx_proto_opts proto;
  int handshake_timeout, ping_interval, pong_timeout, idle_timeout, close_timeout;
  size_t max_buffered, low_water;
  dx_backpressure_policy backpressure;
} dx_ws_config;

enum dx_ws_phase {
  DX_WS_HANDSHAKE = 0, /* reading the request (server) or response (client) */
  DX_WS_HTTP,          /* answered a plain HTTP request; closing */
  DX_WS_OPEN,
  DX_WS_CLOSING, /* our close frame is out; waiting for the peer's */
  DX_WS_CLOSED,  /* on_close delivered; the transport is finishing */
};

/* Server or client side hooks called by the shared code. */
typedef struct dx_ws_owner_ops {
  /* Bytes during DX_WS_HANDSHAKE. */
  void (*on_handshake_read)(dx_ws *ws, uint8_t *data, size_t len);
  /* The stream ended and on_close was delivered: unlink and free. */
  void (*on_released)(dx_ws *ws);
  /* TLS streams accept (server) rather than connect. */
  bool tls_server;
  /* The connection drained while answering plain HTTP (DX_WS_HTTP). */
  void (*on_http_drain)(dx_ws *ws);
  /* Where the owner keeps the dx_ws_config of its connections: at this
   * offset in the owner (one word less in every connection). */
  size_t cfg_offset;
  /* Start (ms >= 0) or stop (ms < 0) the connection's one timeout, kept
   * by the owner (a server: a deadline per slot and one sweep, no timer
   * per connection); when it comes, the owner calls dx__ws_timeout. NULL:
   * no timeouts (orphans). */
  void (*arm)(dx_ws *ws, int ms);
} dx_ws_owner_ops;

/* What every owner (a server, a client, the orphans' stand-in) begins
 * with: a connection keeps one pointer, to its owner, and finds the ops
 * through it (one word less in every connection). */
typedef struct dx_ws_owner {
  const dx_ws_owner_ops *ws_ops;
} dx_ws_owner;

/* Every connection carries one: 128 bytes, then the dx_proto (embedded,
 * without callback and user pointers and limits: 80, proto/proto_embed.h),
 * then the
 * user's data. What only a connection that is not open yet needs (the
 * request gathered across reads, a plain HTTP answer's state, the
 * negotiated deflate before the proto takes it) lives where the dx_proto
 * goes (dx_ws_pre): the proto is set up only when the connection opens. */
struct dx_ws {
  dx_stream stream;
  void *owner; /* a dx_ws_owner: the dx_server, the dx_client */
  const dx_ws_route *route;
  uint64_t id; /* server: slot | generation << 32 (dx_ws_id); client: 0 */
  char *strs;  /* "path\0query\0protocol\0", kept while open */
  /* Loop ms, truncated: 32 bits are plenty for differences (wrap-safe),
   * and every connection carries them. */
  uint32_t last_rx; /* last bytes received */
  /* The heartbeat's stamps, or, for plain HTTP (DX_WS_HTTP), byte counts
   * for stall detection (mod 2^32: only compared for change). */
  union {
    uint32_t last_msg;    /* last message either way (idle) */
    uint32_t http_queued; /* response bytes queued so far */
  };
  union {
    uint32_t ping_sent; /* when ping_outstanding */
    uint32_t http_sent; /* response bytes sent at the last stall check */
  };
  uint16_t close_code; /* as given to on_close */
  unsigned phase : 3;  /* enum dx_ws_phase */
  bool ping_outstanding : 1;
  bool closed_notified : 1; /* on_close delivered */
  bool stream_done : 1;     /* the stream's on_close ran */
  bool in_upgrade : 1;      /* dx_ws_set_protocol allowed */
  bool finishing : 1;       /* the transport is being closed */
  bool proto_ready : 1;     /* dx_proto_init ran (the connection was opened) */
  bool http_body_held : 1;  /* dx_ws_pre holds http_body, not pmd */
  bool http_served : 1;     /* server: answered a handler's request; kept alive */
  bool http_deferred : 1;   /* server: http_body is a deferred dx_http_req, not a file */
  /* dx_proto (or, until it is set up, dx_ws_pre), then the user's data. */
  alignas(8) unsigned char tail[];
};

/* Until the connection opens (proto_ready), in place of the dx_proto. */
typedef struct dx_ws_pre {
  dx_gather hs; /* the request (server) or response (client) gathered across reads */
  /* A connection is a WebSocket or answers plain HTTP, never both: one
   * word serves both uses (http_body_held says which). */
  union {
    dx_pmd *pmd;     /* permessage-deflate state, when negotiated */
    void *http_body; /* the owner's: the rest of a plain HTTP response */
  };
} dx_ws_pre;

static inline dx_ws_pre *dx__ws_pre(const dx_ws *ws) { return (dx_ws_pre *)(uintptr_t)ws->tail; }

static inline const dx_ws_owner_ops *dx__ws_ops(const dx_ws *ws) {
  return ((const dx_ws_owner *)ws->owner)->ws_ops;
}

static inline const dx_ws_config *dx__ws_cfg(const dx_ws *ws) {
  return (const dx_ws_config *)(const void *)((const char *)ws->owner + dx__ws_ops(ws)->cfg_offset);
}

static inline dx_proto *dx__ws_proto(dx_ws *ws) { return (dx_proto *)(void *)ws->tail; }

/* Bytes to allocate for a connection with `data_size` bytes of user data. */
size_t dx__ws_alloc_size(size_t data_size);

/* Initialise a freshly zeroed connection of `owner` over an accepted/connected fd and
 * start its handshake timer; with `tls`, over TLS (client: verifying and
 * sending SNI for `tls_host`). Returns 0 or a DX_E* code (the fd then still
 * belongs to the caller). */
int dx__ws_init(dx_ws *ws, dx_loop *loop, int fd, dx_ws_owner *owner, SSL_CTX *tls,
                const char *tls_host);

/* The handshake is done: set up the proto, start heartbeat timers, call
 * on_open, then feed `rest` (bytes that followed the handshake). */
void dx__ws_open(dx_ws *ws, dx_role role, const dx_ws_route *route, uint8_t *rest, size_t rest_len);

/* Deliver on_error (if err) and on_close once. */
void dx__ws_notify_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len,
                         bool clean, int err, const char *errmsg);

/* The owner (client or server) is going away: no more handler calls, the
 * timer stops, the stream is dropped, and the memory frees itself once the
 * stream is done. Safe inside the connection's own callbacks. */
void dx__ws_orphan(dx_ws *ws, dx_loop *loop);

/* The owner queued a plain HTTP response (instead of an upgrade): enter
 * DX_WS_HTTP, drop the handshake bytes and start counting response bytes.
 * Call after queuing the response and before the loop flushes. Later bytes
 * are queued only from ops->on_http_drain, where they are counted. */
void dx__ws_begin_http(dx_ws *ws);

/* A plain HTTP response is being sent in pieces: time out only on stalls
 * (a whole close timeout in which no byte was sent). */
void dx__ws_arm_http(dx_ws *ws);

/* Start the handshake timeout again: a kept-alive HTTP connection waits
 * for its next request (server). */
void dx__ws_arm_handshake(dx_ws *ws);

/* The connection's timeout came (handshake, heartbeat/idle, HTTP stall
 * or close, by phase). */
void dx__ws_timeout(dx_ws *ws);

/* Stop the connection's timeout. */
void dx__ws_disarm(dx_ws *ws);

/* Graceful transport close bounded by the close timeout. */
void dx__ws_finish(dx_ws *ws);

/* Release the handshake buffer. */
void dx__ws_drop_handshake(dx_ws *ws);

/* Before queuing a message of `len` bytes: phase and the max_buffered
 * policy (the caller checked the thread). Returns 0 or what dx_ws_send
 * should return. */
int dx__ws_admit(dx_ws *ws, unsigned opcode, size_t len);

/* After queuing: stamp activity; DX_SENT or DX_BUFFERED. */
int dx__ws_sent(dx_ws *ws, unsigned opcode);

/* How many compressed variants of m were made (one per window size used
 * by shared compressors): for tests. */
unsigned dx__msg_deflate_count(const dx_msg *m);

/* The request (server) or response (client) headers of the handshake this
 * thread is handling, readable with dx_ws_header only while it is: during
 * on_upgrade and on_open. Kept out of dx_ws (every open connection would
 * carry two dead words). Set with ws, clear with ws = NULL. */
void dx__ws_set_request(const dx_ws *ws, const dx_http_header *h, size_t n);
const dx_http_header *dx__ws_request(const dx_ws *ws, size_t *n);

/* Put the defaults in place of zeros: max_message 16 MiB, max_frame =
 * max_message, handshake 10 s, ping every 30 s, pong within 30 s, no idle
 * timeout, close within 5 s, max_buffered 4 MiB, low water 64 KiB. */
void dx__ws_config_resolve(dx_ws_config *cfg);

/* End every header name and value with a NUL in place (the byte after each
 * is a ':', CR, LF or whitespace the parser already consumed), so handlers
 * get C strings without copies. */
void dx__http_terminate(const dx_http_header *h, size_t n);

/* Keep "path\0query\0protocol\0" for the connection's lifetime (read by
 * dx_ws_path, dx_ws_query and dx_ws_protocol), with room for `room`
 * protocol bytes (at least protocol's own) so that a later choice can
 * replace it in place without moving path and query, whose pointers the
 * application may hold. Both roles. The strings are reference counted:
 * with `cache` (a server's), connections with the same strings and no
 * spare room share one block (most connections of a server ask for the
 * same path: 32 bytes each saved). Returns 0 or DX_ENOMEM. */
int dx__ws_keep_strings(dx_ws *ws, dx_str path, dx_str query, const char *protocol, size_t room,
                        char **cache);

/* Drop a reference to strings kept by dx__ws_keep_strings (NULL: none). */
void dx__strs_unref(char *s);

/* "ip:port" of the peer into buf. */
const char *dx__ws_peer(const dx_ws *ws, char *buf, size_t cap);

#endif /* DX_WS_INTERNAL_H */
