/* duplex — frame header codec (RFC 6455 section 5.2) and close codes.
 *
 * The parser fails fast: every rule is checked as soon as the bytes that
 * prove a violation are in the buffer, so a peer cannot make us wait for
 * bytes of a header that is already known to be bad. Checks run in wire
 * order, which fixes which error wins when a header breaks several rules:
 *
 *   byte 0   reserved opcode                      DX_EFRAME_OPCODE
 *            control frame with FIN = 0           DX_EFRAME_CONTROL_FRAGMENTED
 *   byte 1   control frame with 7-bit length
 *            field 126 or 127                     DX_EFRAME_CONTROL_TOO_LONG
 *   byte 2   64-bit length with the top bit set   DX_EFRAME_LENGTH_MSB
 *   end of   16-bit length < 126, or
 *   length   64-bit length < 65536                DX_EFRAME_LENGTH
 *   mask key (nothing left to check)
 *
 * So a reserved opcode is reported before any length problem, and with a
 * single byte in the buffer. A control frame that uses an extended length
 * form is rejected at byte 1 as too long without reading the extended
 * length: any value that form can legally hold is > 125. Until a rule can be
 * decided, and until the whole header is present, the result is DX_EAGAIN.
 */
#include "duplex/frame.h"

#include "duplex/error.h"

#include <string.h>

static bool opcode_reserved(unsigned op) {
  /* 0x0-0x2 data, 0x8-0xA control; everything else is reserved. */
  return (op > DX_OP_BINARY && op < DX_OP_CLOSE) || op > DX_OP_PONG;
}

/* Big-endian 64-bit load; compilers turn the pattern into one load and a
 * byte swap. */
static inline uint64_t load_be64(const uint8_t *p) {
  return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
         (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 | (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

int dx_frame_parse_header(const uint8_t *buf, size_t len, dx_frame_header *h) {
  if (len < 1) return DX_EAGAIN;

  unsigned b0 = buf[0];
  unsigned op = b0 & 0x0Fu;
  bool fin = (b0 & 0x80u) != 0;
  if (opcode_reserved(op)) return DX_EFRAME_OPCODE;
  bool control = dx_opcode_is_control(op);
  if (control && !fin) return DX_EFRAME_CONTROL_FRAGMENTED;
  if (len < 2) return DX_EAGAIN;

  unsigned b1 = buf[1];
  unsigned len7 = b1 & 0x7Fu;
  bool masked = (b1 & 0x80u) != 0;
  if (control && len7 > DX_CONTROL_MAX) return DX_EFRAME_CONTROL_TOO_LONG;

  uint64_t plen;
  size_t hlen;
  if (len7 < 126) {
    plen = len7;
    hlen = 2;
  } else if (len7 == 126) {
    if (len < 4) return DX_EAGAIN;
    plen = (uint64_t)buf[2] << 8 | buf[3];
    if (plen < 126) return DX_EFRAME_LENGTH; /* fits the 7-bit form */
    hlen = 4;
  } else {
    if (len >= 3 && (buf[2] & 0x80u)) return DX_EFRAME_LENGTH_MSB;
    if (len < 10) return DX_EAGAIN;
    plen = load_be64(buf + 2);
    if (plen < 65536) return DX_EFRAME_LENGTH; /* fits the 16-bit form */
    hlen = 10;
  }

  size_t key_at = hlen;
  if (masked) hlen += 4;
  if (len < hlen) return DX_EAGAIN;

  h->payload_len = plen;
  if (masked)
    memcpy(h->mask, buf + key_at, 4);
  else
    memset(h->mask, 0, 4);
  h->opcode = (uint8_t)op;
  h->rsv = (uint8_t)((b0 >> 4) & 0x7u);
  h->header_len = (uint8_t)hlen;
  h->fin = fin;
  h->masked = masked;
  return (int)hlen;
}

int dx_frame_check(const dx_frame_header *h, unsigned allowed_rsv, bool from_client) {
  if (h->rsv & ~allowed_rsv & 0x7u) return DX_EFRAME_RSV;
  if (from_client && !h->masked) return DX_EFRAME_UNMASKED;
  if (!from_client && h->masked) return DX_EFRAME_MASKED;
  return 0;
}

size_t dx_frame_header_size(uint64_t payload_len, bool masked) {
  size_t n = payload_len < 126 ? 2 : payload_len <= 0xFFFF ? 4 : 10;
  return n + (masked ? 4 : 0);
}

size_t dx_frame_write_header(uint8_t *out, bool fin, unsigned rsv, unsigned opcode,
                             uint64_t payload_len, const uint8_t *mask) {
  /* Out-of-range rsv/opcode bits are dropped rather than spilling into
   * neighbouring fields. A payload_len >= 2^63 is the caller's bug; it is
   * written as given and the peer will reject it. */
  out[0] = (uint8_t)((fin ? 0x80u : 0u) | ((rsv & 0x7u) << 4) | (opcode & 0x0Fu));
  uint8_t mbit = mask ? 0x80u : 0u;
  size_t n;
  if (payload_len < 126) {
    out[1] = (uint8_t)(mbit | payload_len);
    n = 2;
  } else if (payload_len <= 0xFFFF) {
    out[1] = (uint8_t)(mbit | 126u);
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    n = 4;
  } else {
    out[1] = (uint8_t)(mbit | 127u);
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    n = 10;
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

bool dx_close_code_valid(uint16_t code) {
  if (code >= 3000) return code <= 4999; /* registered (3xxx) and private (4xxx) */
  if (code < 1000 || code > 1014) return false;
  /* 1004 is reserved; 1005 and 1006 are local-only pseudo codes. */
  return code <= 1003 || code >= 1007;
}
