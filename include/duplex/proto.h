/* duplex — the sans-I/O WebSocket connection (RFC 6455 sections 5-7).
 *
 * A dx_proto is one side (client or server) of an established WebSocket
 * connection, after the opening handshake. It does no I/O and reads no
 * clock: bytes received from the peer go in through dx_proto_feed(), which
 * reports messages, pings, pongs and close through the `on_event` callback;
 * frames to send come out through the `on_output` callback as (header,
 * payload, optional mask) pieces that the caller writes to its transport.
 *
 * What it does for you: reassembles fragmented messages (bounded by
 * max_message) or streams fragments, validates UTF-8 of text messages as the
 * bytes arrive (fail-fast), lets control frames interleave with fragments,
 * answers ping with pong (unless disabled), runs the closing handshake and
 * turns every protocol violation into a close frame with the right code
 * (1002, 1007, 1009) plus a specific DX_E* error.
 *
 * Thread-safety: none. A dx_proto belongs to one thread at a time.
 */
#ifndef DUPLEX_PROTO_H
#define DUPLEX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"
#include "duplex/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dx_role { DX_ROLE_SERVER = 0, DX_ROLE_CLIENT = 1 } dx_role;

typedef enum dx_event_type {
  DX_EV_MESSAGE = 1, /* a whole text/binary message */
  DX_EV_FRAGMENT,    /* a piece of a message (stream_fragments mode) */
  DX_EV_PING,
  DX_EV_PONG,
  DX_EV_CLOSE, /* peer's close frame (code, reason) */
} dx_event_type;

typedef struct dx_event {
  dx_event_type type;
  uint8_t opcode;      /* DX_OP_TEXT or DX_OP_BINARY for messages/fragments */
  bool first;          /* fragments: first piece of the message */
  bool fin;            /* fragments: last piece of the message */
  bool compressed;     /* RSV1 message delivered still compressed (no codec set) */
  uint16_t close_code; /* DX_EV_CLOSE: code, or 1005 when none was sent */
  const uint8_t *data; /* payload (close: the reason); valid only during the callback */
  size_t len;
} dx_event;

/* One frame to send: write header, then payload; when `mask` is non-NULL
 * (client role) the payload must be masked with it while being copied, e.g.
 * with dx_mask_copy(dst, payload, payload_len, mask, 0). All pointers are
 * valid only during the callback. Return 0, or a negative code to make the
 * sending call fail with it. */
typedef struct dx_output {
  const uint8_t *header;
  size_t header_len;
  const uint8_t *payload;
  size_t payload_len;
  const uint8_t *mask;
} dx_output;

/* The default largest message (and frame): 16 MiB. */
#define DX_DEFAULT_MAX_MESSAGE ((size_t)16 << 20)

typedef struct dx_proto_opts {
  size_t max_frame;      /* largest frame payload accepted; default = max_message */
  size_t max_message;    /* largest reassembled message; default 16 MiB */
  bool stream_fragments; /* deliver DX_EV_FRAGMENT pieces instead of whole messages */
  bool no_auto_pong;     /* do not answer pings automatically */
  unsigned allowed_rsv;  /* RSV bits negotiated extensions may set (DX_RSV1 for deflate) */
} dx_proto_opts;

typedef struct dx_proto_callbacks {
  void (*on_event)(void *user, const dx_event *ev);
  int (*on_output)(void *user, const dx_output *out);
  /* Client role only: fill key[4] with a fresh masking key from a strong
   * random source. Required for clients. */
  void (*mask_key)(void *user, uint8_t key[4]);
} dx_proto_callbacks;

typedef enum dx_proto_state {
  DX_PROTO_OPEN = 0,
  DX_PROTO_CLOSING, /* we sent close, waiting for the peer's */
  DX_PROTO_CLOSED,  /* close frames exchanged both ways: close the transport */
  DX_PROTO_FAILED,  /* protocol error: close frame sent, close the transport */
} dx_proto_state;

typedef struct dx_proto dx_proto;

/* Size of a dx_proto, for callers that embed it in their own allocation. */
DX_API size_t dx_proto_size(void);

/* Initialise a dx_proto in caller-provided memory of dx_proto_size() bytes
 * (suitably aligned for any type). `opts` may be NULL and is copied. `cb`
 * is NOT copied (it costs every connection three words): it must outlive
 * the dx_proto, e.g. a static const struct. `user` is passed back to the
 * callbacks. Never fails. */
DX_API void dx_proto_init(dx_proto *p, dx_role role, const dx_proto_opts *opts,
                          const dx_proto_callbacks *cb, void *user);

/* Release memory held for reassembly. The dx_proto's own memory is the
 * caller's. */
DX_API void dx_proto_free(dx_proto *p);

/* Feed received bytes. Payloads are unmasked in place in buf, so it must be
 * writable; events may point into it. Returns 0 when every byte was consumed
 * (partial frames are buffered internally), or a negative DX_E* code when the
 * peer broke the protocol: the connection is then DX_PROTO_FAILED, a close
 * frame with dx_close_code_for_error(err) has been sent through on_output,
 * and the caller should flush and close the transport. Bytes after the
 * peer's close frame are ignored. Callbacks may call dx_proto_send* and
 * dx_proto_close, but must not free the dx_proto. */
DX_API int dx_proto_feed(dx_proto *p, uint8_t *buf, size_t len);

/* Where the next received bytes may go to skip a copy: inside a large
 * uncompressed frame that is being reassembled (64 KiB or more of it still
 * to come), the free room of the message's buffer, growing it as
 * dx_proto_feed would (geometrically, never past the frame). Returns the
 * pointer and sets *cap to at most the rest of the frame's payload, so no
 * byte of the next header lands there; then pass exactly the bytes
 * received there to dx_proto_feed. Returns NULL (read into your own buffer)
 * otherwise, or when growing failed. */
DX_API uint8_t *dx_proto_read_into(dx_proto *p, size_t *cap);

/* Flags for dx_proto_send_frame. */
enum {
  DX_SEND_MORE = 1, /* not the last fragment */
  DX_SEND_RSV1 = 2  /* set RSV1 (compressed) on the first fragment */
};

/* Send a whole text or binary message (or ping/pong with `opcode`; payload
 * at most 125 bytes). Text payloads are not validated here. Returns 0,
 * DX_ECLOSED once a close frame was sent, DX_EINVAL for a bad opcode or a
 * control payload over 125 bytes, DX_ESTATE for a data message while a
 * fragmented one is being sent, or what on_output returned. */
DX_API int dx_proto_send(dx_proto *p, unsigned opcode, const void *data, size_t len);

/* Send one fragment: first call with DX_OP_TEXT/DX_OP_BINARY, later calls
 * with DX_OP_CONT; DX_SEND_MORE on all but the last. Control frames may be
 * sent in between with dx_proto_send(). */
DX_API int dx_proto_send_frame(dx_proto *p, unsigned opcode, const void *data, size_t len,
                               unsigned flags);

/* Start the closing handshake: send a close frame with `code` (0 = no code)
 * and `reason` (UTF-8, at most 123 bytes; NULL = none). Returns 0,
 * DX_EINVAL for a code that may not be sent or a reason too long,
 * DX_ECLOSED if a close frame was already sent. */
DX_API int dx_proto_close(dx_proto *p, uint16_t code, const char *reason, size_t reason_len);

/* May a whole, pre-encoded server frame (a broadcast's shared bytes) be
 * written now? Returns 0, DX_ECLOSED, DX_ESTATE (a fragmented message is
 * being sent), or DX_EINVAL (not a data opcode, or the client role, whose
 * frames must be masked with fresh keys). */
DX_API int dx_proto_check_send(const dx_proto *p, unsigned opcode);

/* The permessage-deflate codec set with dx_proto_set_deflate, or NULL. */
struct dx_pmd *dx_proto_get_deflate(const dx_proto *p);

DX_API dx_proto_state dx_proto_get_state(const dx_proto *p);
DX_API dx_role dx_proto_role(const dx_proto *p);

/* The error that failed the connection (DX_PROTO_FAILED), else 0. */
DX_API int dx_proto_error(const dx_proto *p);

/* True once the peer's close frame has been received. */
DX_API bool dx_proto_close_received(const dx_proto *p);
/* True once our close frame has been sent. */
DX_API bool dx_proto_close_sent(const dx_proto *p);

/* Change the RSV bits the peer may use (after negotiating an extension). */
DX_API void dx_proto_set_allowed_rsv(dx_proto *p, unsigned rsv);

/* Use permessage-deflate (duplex/deflate.h) negotiated for this connection:
 * RSV1 messages are inflated (bounded by max_message, UTF-8 checked on the
 * inflated text), and dx_proto_send compresses messages the codec deems
 * worth it. `pmd` is not owned and must outlive its use; NULL turns it off. */
struct dx_pmd;
DX_API void dx_proto_set_deflate(dx_proto *p, struct dx_pmd *pmd);

/* Bytes currently held for reassembly (for memory accounting). */
DX_API size_t dx_proto_buffered(const dx_proto *p);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_PROTO_H */
