/* duplex — WebSocket frame codec (RFC 6455 section 5), sans-I/O.
 *
 * Pure functions over (pointer, length). Nothing here allocates, reads a
 * clock or touches global state; every function may be called from any
 * thread on distinct data.
 */
#ifndef DUPLEX_FRAME_H
#define DUPLEX_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opcodes (RFC 6455 section 5.2). */
enum dx_opcode {
  DX_OP_CONT = 0x0,
  DX_OP_TEXT = 0x1,
  DX_OP_BINARY = 0x2,
  DX_OP_CLOSE = 0x8,
  DX_OP_PING = 0x9,
  DX_OP_PONG = 0xA,
};

/* Reserved header bits as they appear in dx_frame_header.rsv. */
enum { DX_RSV1 = 0x4, DX_RSV2 = 0x2, DX_RSV3 = 0x1 };

/* Largest possible frame header: 2 + 8 (length) + 4 (mask key). */
#define DX_FRAME_HEADER_MAX 14
/* Largest control frame payload. */
#define DX_CONTROL_MAX 125

typedef struct dx_frame_header {
  uint64_t payload_len;
  uint8_t mask[4];  /* valid when masked */
  uint8_t opcode;   /* enum dx_opcode */
  uint8_t rsv;      /* DX_RSV1 | DX_RSV2 | DX_RSV3 bits */
  uint8_t header_len; /* bytes the header occupied: 2..14 */
  bool fin;
  bool masked;
} dx_frame_header;

static inline bool dx_opcode_is_control(unsigned op) { return (op & 0x8) != 0; }

/* Parse one frame header from buf[0..len).
 * Returns the header length (2..14) on success and fills *h; DX_EAGAIN if
 * more bytes are needed; or a DX_EFRAME_* code when the header breaks a rule
 * that needs no connection context: reserved opcode (DX_EFRAME_OPCODE),
 * non-minimal length (DX_EFRAME_LENGTH), 64-bit length with the top bit set
 * (DX_EFRAME_LENGTH_MSB), fragmented control frame
 * (DX_EFRAME_CONTROL_FRAGMENTED), control payload > 125
 * (DX_EFRAME_CONTROL_TOO_LONG). RSV bits and masking depend on the
 * connection; see dx_frame_check(). Never reads past buf[len-1]. */
DX_API int dx_frame_parse_header(const uint8_t *buf, size_t len, dx_frame_header *h);

/* Connection-level checks on a parsed header: `allowed_rsv` is the set of RSV
 * bits negotiated extensions may use; `from_client` says which side sent the
 * frame (client frames must be masked, server frames must not). Returns 0 or
 * DX_EFRAME_RSV / DX_EFRAME_UNMASKED / DX_EFRAME_MASKED. */
DX_API int dx_frame_check(const dx_frame_header *h, unsigned allowed_rsv, bool from_client);

/* Write a frame header into out (at least DX_FRAME_HEADER_MAX bytes) using the
 * shortest length encoding. `mask` is NULL for an unmasked frame, else the
 * 4-byte key to put in the header (the payload is not touched). Returns the
 * number of bytes written (2..14). */
DX_API size_t dx_frame_write_header(uint8_t *out, bool fin, unsigned rsv, unsigned opcode,
                                    uint64_t payload_len, const uint8_t *mask);

/* Size of the header dx_frame_write_header() would write. */
DX_API size_t dx_frame_header_size(uint64_t payload_len, bool masked);

/* XOR data[0..len) in place with the masking key, as payload bytes starting
 * at payload offset `offset` (so a payload can be unmasked in pieces: pass
 * the number of payload bytes already processed). Works a machine word at a
 * time; any alignment is fine. */
DX_API void dx_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);

/* dst[i] = src[i] ^ key[(offset + i) % 4]; dst and src may be equal but must
 * not otherwise overlap. Used to mask while copying into a send buffer. */
DX_API void dx_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                         uint64_t offset);

/* Close status codes (RFC 6455 section 7.4). */
enum dx_close_code {
  DX_CLOSE_NORMAL = 1000,
  DX_CLOSE_GOING_AWAY = 1001,
  DX_CLOSE_PROTOCOL_ERROR = 1002,
  DX_CLOSE_UNSUPPORTED = 1003,
  DX_CLOSE_NO_STATUS = 1005,   /* never on the wire: "no code received" */
  DX_CLOSE_ABNORMAL = 1006,    /* never on the wire: "connection dropped" */
  DX_CLOSE_INVALID_DATA = 1007,
  DX_CLOSE_POLICY = 1008,
  DX_CLOSE_TOO_BIG = 1009,
  DX_CLOSE_EXTENSION = 1010,
  DX_CLOSE_INTERNAL = 1011,
  DX_CLOSE_RESTART = 1012,
  DX_CLOSE_TRY_AGAIN = 1013,
  DX_CLOSE_BAD_GATEWAY = 1014,
  DX_CLOSE_TLS = 1015,         /* never on the wire */
};

/* True when `code` may appear in a close frame: 1000-1003, 1007-1014 (the
 * IANA-registered codes; 1012-1014 are accepted as browsers and Node `ws`
 * do), and 3000-4999. False for 0-999, 1004-1006, 1015, 1016-2999, 5000+. */
DX_API bool dx_close_code_valid(uint16_t code);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_FRAME_H */
