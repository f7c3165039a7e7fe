/* duplex — permessage-deflate (RFC 7692): negotiation and codec, sans-I/O.
 *
 * Servers and clients turn it on with dx_deflate_opts in their options; the
 * functions below are what they use, exposed for people driving dx_proto
 * themselves.
 *
 * Memory, the reason other servers turn compression off: a zlib deflate
 * stream with a 32 KiB window costs ~256 KiB, an inflate stream ~40 KiB.
 * Two modes:
 *   DX_DEFLATE_SHARED (default)   no context takeover in either direction:
 *       every message is compressed on its own, so the streams are shared
 *       by every connection of a thread: one decompressor, and one
 *       compressor per window size a peer asked for (15 unless it sent
 *       server_max_window_bits / client_max_window_bits 9..14; each made on
 *       first use). Zero zlib memory per connection whatever the peer
 *       offers; a somewhat lower ratio on streams of similar messages.
 *   DX_DEFLATE_TAKEOVER           sliding windows kept per connection
 *       (window_bits, mem_level tune the cost): best ratio, about
 *       (1 << (bits + 2)) + (1 << (mem_level + 9)) bytes to compress and
 *       (1 << bits) + 7 KiB to inflate, per connection.
 * Messages shorter than `threshold` are sent uncompressed in both modes.
 *
 * Window bits 8 (RFC 7692 allows 8..15): zlib cannot produce raw deflate
 * with a 256-byte window (it rounds 8 up to 9), so when our compressor's
 * window is 8 bits -- window_bits = 8 in TAKEOVER mode, or a peer asking
 * for server_max_window_bits=8 (server) / answering client_max_window_bits=8
 * (client) -- the extension is agreed but every message we send goes
 * uncompressed (RSV1 clear, which RFC 7692 allows); the peer's compressed
 * messages are still inflated (with a 512-byte window, since zlib peers
 * asked for 8 bits use 9).
 *
 * Thread-safety: a dx_pmd belongs to one connection (one thread); the
 * shared streams are per thread.
 */
#ifndef DUPLEX_DEFLATE_H
#define DUPLEX_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"
#include "duplex/handshake.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dx_deflate_mode {
  DX_DEFLATE_SHARED = 0,
  DX_DEFLATE_TAKEOVER = 1,
} dx_deflate_mode;

typedef struct dx_deflate_opts {
  bool enable;
  dx_deflate_mode mode;
  int window_bits;  /* 8..15, our compressor's window in TAKEOVER mode (and the most we let
                       the peer use); default 15; 8 = we send uncompressed (see above) */
  int mem_level;    /* 1..9, default 8 (TAKEOVER) */
  int level;        /* zlib level 1..9; default 6 */
  size_t threshold; /* send messages shorter than this uncompressed; default 64 */
} dx_deflate_opts;

/* Negotiated parameters, from our side's point of view. */
typedef struct dx_pmd_params {
  bool tx_no_context_takeover; /* we reset our compressor after each message */
  bool rx_no_context_takeover; /* the peer resets its compressor: ours to inflate may reset too */
  int tx_window_bits;          /* our compressor's window: 8..15 (8: we never compress) */
  int rx_window_bits;          /* the peer's window we must inflate with: 8..15 */
} dx_pmd_params;

/* Server: pick the first acceptable permessage-deflate offer (RFC 7692
 * section 7: offers with unknown, duplicate or invalid parameters are
 * declined, not errors). On success fills *params, writes the response
 * extension value into resp (NUL-terminated) and returns 1; returns 0 when
 * no offer is acceptable (send no extension), DX_ENOSPC if resp is too small. */
DX_API int dx_pmd_negotiate_server(const dx_ext_offer *offers, size_t n,
                                   const dx_deflate_opts *opts, dx_pmd_params *params, char *resp,
                                   size_t cap);

/* Client: the Sec-WebSocket-Extensions offer for `opts` into buf. Returns
 * its length or DX_ENOSPC. */
DX_API int dx_pmd_client_offer(const dx_deflate_opts *opts, char *buf, size_t cap);

/* Client: check the server's accepted permessage-deflate extension against
 * what we offered (parameters we did not offer, duplicates and bad values
 * are refused). Returns 0 and fills *params, or DX_EWS_EXTENSIONS. */
DX_API int dx_pmd_client_accept(const dx_ext_offer *accepted, const dx_deflate_opts *opts,
                                dx_pmd_params *params);

/* ---- codec ---- */

typedef struct dx_pmd dx_pmd;

/* Streams and scratch shared by connections of one thread: the compressor
 * and decompressor used for directions without context takeover, and the
 * output buffer (which keeps the size of the largest message compressed).
 * A server owns one for all its connections; each dx_client owns its own
 * (created on first use). Not thread-safe. */
typedef struct dx_pmd_shared dx_pmd_shared;
DX_API dx_pmd_shared *dx_pmd_shared_new(void);
DX_API void dx_pmd_shared_free(dx_pmd_shared *s);

/* Create the per-connection state using `shared` (which must outlive it).
 * Directions without context takeover use the shared streams and hold no
 * zlib memory here. Returns NULL when out of memory. */
DX_API dx_pmd *dx_pmd_new(const dx_pmd_params *params, const dx_deflate_opts *opts,
                          dx_pmd_shared *shared);
DX_API void dx_pmd_free(dx_pmd *pmd);

/* True when this connection inflates with its own stream, so a message can
 * be inflated piece by piece as it arrives; false when the shared
 * decompressor is used, which needs the whole message at once (a message
 * split across reads would otherwise interleave with other connections'). */
DX_API bool dx_pmd_rx_streaming(const dx_pmd *pmd);

/* Receives inflated output: return 0 to go on, or a negative code to stop
 * inflating with it. */
typedef int (*dx_pmd_sink)(void *arg, const uint8_t *out, size_t n);

/* Inflate the next piece of a compressed message; `fin` marks the last
 * piece (the 00 00 ff ff tail is appended then). Output goes to `sink` in
 * chunks. Returns 0, DX_EDEFLATE for corrupt data, or what sink returned. */
DX_API int dx_pmd_inflate(dx_pmd *pmd, const uint8_t *in, size_t n, bool fin, dx_pmd_sink sink,
                          void *arg);

/* Compress a whole message. On success returns 0 and points *out at the
 * compressed bytes (without the 00 00 ff ff tail; valid until the next call
 * on this thread) and *out_len at their length. Returns DX_ENOMEM,
 * DX_EDEFLATE, or DX_EINVAL when our window is 8 bits (dx_pmd_worth_it is
 * then false for every length: send the message uncompressed). */
DX_API int dx_pmd_deflate(dx_pmd *pmd, const uint8_t *in, size_t n, const uint8_t **out,
                          size_t *out_len);

/* True when this connection compresses with the shared compressor (no
 * context takeover, full window): then the compressed bytes of a message
 * depend only on the message, and one compressed copy can be sent to every
 * such connection (broadcast: compress once). */
DX_API bool dx_pmd_tx_shared(const dx_pmd *pmd);

/* The window bits (9..15) of the shared compressor this connection uses,
 * or 0 when it has its own (context takeover) or never compresses (8
 * bits). Connections with the same non-zero value (and the same level, as
 * set by one server's options) produce the same compressed bytes for a
 * message; bytes made with a window of w bits are also valid for any
 * connection whose value is at least w. */
DX_API int dx_pmd_tx_shared_window(const dx_pmd *pmd);

/* Should a message of `len` bytes be compressed? (Never when our window is
 * 8 bits.) */
DX_API bool dx_pmd_worth_it(const dx_pmd *pmd, size_t len);

/* zlib memory held by this connection (0 in SHARED mode). */
DX_API size_t dx_pmd_memory(const dx_pmd *pmd);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_DEFLATE_H */
