/* Tests for the frame header codec and close codes (src/proto/frame.c).
 * Every parser input is placed right before an unreadable page. */
#include "duplex/error.h"
#include "duplex/frame.h"

#include "unit/test.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

static int parse_g(const uint8_t *bytes, size_t len, dx_frame_header *h) {
  uint8_t *p = guarded_copy(bytes, len);
  int rc = dx_frame_parse_header(p, len, h);
  guarded_free(p);
  return rc;
}

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* Parse every prefix of bytes[0..len): shorter than `decided` must be
 * DX_EAGAIN, from `decided` on the result must be `want`. */
static void check_prefixes(const uint8_t *bytes, size_t len, size_t decided, int want) {
  for (size_t k = 0; k <= len; k++) {
    dx_frame_header h;
    int rc = parse_g(bytes, k, &h);
    if (k < decided)
      CHECK_EQ_INT(rc, DX_EAGAIN);
    else
      CHECK_EQ_INT(rc, want);
  }
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- RFC 6455 section 5.7 examples ---------------------------------------- */

/* Header then payload, masked in the copy when a key is given. */
static size_t build_frame(uint8_t *out, bool fin, unsigned op, const void *payload, size_t n,
                          const uint8_t *mask) {
  size_t hl = dx_frame_write_header(out, fin, 0, op, n, mask);
  if (mask)
    dx_mask_copy(out + hl, payload, n, mask, 0);
  else
    memcpy(out + hl, payload, n);
  return hl + n;
}

TEST(rfc_examples_encode) {
  uint8_t out[32];
  size_t n;

  n = build_frame(out, true, DX_OP_TEXT, "Hello", 5, NULL);
  const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ_INT(n, sizeof unmasked);
  CHECK_MEM(out, unmasked, sizeof unmasked);

  n = build_frame(out, true, DX_OP_TEXT, "Hello", 5, KEY);
  const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  CHECK_EQ_INT(n, sizeof masked);
  CHECK_MEM(out, masked, sizeof masked);

  n = build_frame(out, false, DX_OP_TEXT, "Hel", 3, NULL);
  const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  CHECK_EQ_INT(n, sizeof frag1);
  CHECK_MEM(out, frag1, sizeof frag1);
  n = build_frame(out, true, DX_OP_CONT, "lo", 2, NULL);
  const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
  CHECK_EQ_INT(n, sizeof frag2);
  CHECK_MEM(out, frag2, sizeof frag2);

  n = build_frame(out, true, DX_OP_PING, "Hello", 5, NULL);
  const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ_INT(n, sizeof ping);
  CHECK_MEM(out, ping, sizeof ping);

  n = build_frame(out, true, DX_OP_PONG, "Hello", 5, KEY);
  const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  CHECK_EQ_INT(n, sizeof pong);
  CHECK_MEM(out, pong, sizeof pong);

  CHECK_EQ_INT(dx_frame_write_header(out, true, 0, DX_OP_BINARY, 256, NULL), 4);
  CHECK_MEM(out, ((const uint8_t[]){0x82, 0x7E, 0x01, 0x00}), 4);

  CHECK_EQ_INT(dx_frame_write_header(out, true, 0, DX_OP_BINARY, 65536, NULL), 10);
  CHECK_MEM(out, ((const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0}), 10);
}

TEST(rfc_examples_parse) {
  dx_frame_header h;

  CHECK_EQ_INT(parse_g(B(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &h), 2);
  CHECK(h.fin && !h.masked && h.rsv == 0);
  CHECK_EQ_INT(h.opcode, DX_OP_TEXT);
  CHECK_EQ_INT(h.payload_len, 5);
  CHECK_EQ_INT(h.header_len, 2);

  const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  CHECK_EQ_INT(parse_g(masked, sizeof masked, &h), 6);
  CHECK(h.fin && h.masked);
  CHECK_EQ_INT(h.opcode, DX_OP_TEXT);
  CHECK_EQ_INT(h.payload_len, 5);
  CHECK_EQ_INT(h.header_len, 6);
  CHECK_MEM(h.mask, KEY, 4);
  uint8_t pl[5];
  memcpy(pl, masked + 6, 5);
  dx_mask(pl, 5, h.mask, 0);
  CHECK_MEM(pl, "Hello", 5);

  CHECK_EQ_INT(parse_g(B(0x01, 0x03, 0x48, 0x65, 0x6c), &h), 2);
  CHECK(!h.fin);
  CHECK_EQ_INT(h.opcode, DX_OP_TEXT);
  CHECK_EQ_INT(h.payload_len, 3);
  CHECK_EQ_INT(parse_g(B(0x80, 0x02, 0x6c, 0x6f), &h), 2);
  CHECK(h.fin);
  CHECK_EQ_INT(h.opcode, DX_OP_CONT);
  CHECK_EQ_INT(h.payload_len, 2);

  CHECK_EQ_INT(parse_g(B(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f), &h), 2);
  CHECK_EQ_INT(h.opcode, DX_OP_PING);
  CHECK_EQ_INT(parse_g(B(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58), &h), 6);
  CHECK_EQ_INT(h.opcode, DX_OP_PONG);
  CHECK(h.masked);

  CHECK_EQ_INT(parse_g(B(0x82, 0x7E, 0x01, 0x00), &h), 4);
  CHECK_EQ_INT(h.opcode, DX_OP_BINARY);
  CHECK_EQ_INT(h.payload_len, 256);
  CHECK_EQ_INT(parse_g(B(0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0), &h), 10);
  CHECK_EQ_INT(h.payload_len, 65536);
  CHECK_EQ_INT(h.header_len, 10);
}

/* ---- incomplete input ----------------------------------------------------- */

TEST(eagain_at_every_byte) {
  uint8_t hdr[DX_FRAME_HEADER_MAX + 4];
  static const uint64_t lens[] = {0, 5, 125, 126, 300, 65535, 65536, (uint64_t)1 << 40};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
    for (int m = 0; m < 2; m++) {
      size_t hl = dx_frame_write_header(hdr, true, 0, DX_OP_BINARY, lens[li], m ? KEY : NULL);
      memset(hdr + hl, 0xEE, 4); /* payload bytes after the header are not read */
      CHECK_EQ_INT(hl, dx_frame_header_size(lens[li], m));
      check_prefixes(hdr, hl + 4, hl, (int)hl);
      dx_frame_header h;
      CHECK_EQ_INT(parse_g(hdr, hl, &h), (int)hl);
      CHECK_EQ_INT(h.payload_len, lens[li]);
      CHECK_EQ_INT(h.header_len, hl);
      CHECK_EQ_INT(h.masked, m);
      if (m) CHECK_MEM(h.mask, KEY, 4);
    }
  /* Sizes seen: 2, 6, 4, 8, 10, 14. */
  dx_frame_header h;
  CHECK_EQ_INT(parse_g(NULL, 0, &h), DX_EAGAIN);
}

/* ---- length encoding ------------------------------------------------------ */

TEST(length_boundaries) {
  static const struct {
    uint64_t len;
    size_t hl;
  } cases[] = {
      {0, 2},          {1, 2},           {125, 2},
      {126, 4},        {127, 4},         {65535, 4},
      {65536, 10},     {UINT32_MAX, 10}, {(uint64_t)1 << 32, 10},
      {INT64_MAX, 10}, /* 2^63 - 1, the largest legal length */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t out[DX_FRAME_HEADER_MAX];
    uint64_t len = cases[i].len;
    size_t hl = dx_frame_write_header(out, true, 0, DX_OP_BINARY, len, NULL);
    CHECK_EQ_INT(hl, cases[i].hl);
    CHECK_EQ_INT(dx_frame_header_size(len, false), cases[i].hl);
    CHECK_EQ_INT(dx_frame_header_size(len, true), cases[i].hl + 4);
    CHECK_EQ_INT(out[0], 0x82);
    if (hl == 2) CHECK_EQ_INT(out[1], len);
    if (hl == 4) {
      CHECK_EQ_INT(out[1], 126);
      CHECK_EQ_INT((out[2] << 8) | out[3], len);
    }
    if (hl == 10) {
      CHECK_EQ_INT(out[1], 127);
      uint64_t v = 0;
      for (int k = 0; k < 8; k++) v = v << 8 | out[2 + k];
      CHECK(v == len);
    }
    dx_frame_header h;
    CHECK_EQ_INT(parse_g(out, hl, &h), (int)hl);
    CHECK(h.payload_len == len);
  }
  uint8_t out[DX_FRAME_HEADER_MAX];
  dx_frame_write_header(out, true, 0, DX_OP_BINARY, (uint64_t)1 << 32, NULL);
  CHECK_MEM(out, ((const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0x01, 0, 0, 0, 0}), 10);
  dx_frame_write_header(out, true, 0, DX_OP_BINARY, INT64_MAX, NULL);
  CHECK_MEM(out, ((const uint8_t[]){0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
            10);
}

TEST(non_minimal_lengths) {
  /* 16-bit form holding 0..125: decided when both length bytes are in. */
  for (unsigned v = 0; v <= 126; v++) {
    const uint8_t hdr[] = {0x82, 0xFE, (uint8_t)(v >> 8), (uint8_t)v, 1, 2, 3, 4};
    check_prefixes(hdr, sizeof hdr, v < 126 ? 4 : 8, v < 126 ? DX_EFRAME_LENGTH : 8);
  }
  /* 64-bit form holding less than 65536: decided at the last length byte. */
  static const uint64_t small[] = {0, 1, 125, 126, 127, 256, 65535};
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
    uint8_t hdr[10] = {0x82, 0x7F};
    for (int k = 0; k < 8; k++) hdr[2 + k] = (uint8_t)(small[i] >> (56 - 8 * k));
    check_prefixes(hdr, sizeof hdr, 10, DX_EFRAME_LENGTH);
  }
  /* Smallest legal 64-bit value. */
  check_prefixes(B(0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0), 10, 10);
  /* Values whose high bytes are non-zero are minimal whatever the low ones. */
  check_prefixes(B(0x82, 0x7F, 0, 0, 0, 0, 0x01, 0, 0, 0), 10, 10);
  check_prefixes(B(0x82, 0x7F, 0x01, 0, 0, 0, 0, 0, 0, 0), 10, 10);
}

TEST(length_msb) {
  /* Top bit set: known from the first extended length byte. */
  check_prefixes(B(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0), 3, DX_EFRAME_LENGTH_MSB);
  check_prefixes(B(0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4), 3,
                 DX_EFRAME_LENGTH_MSB);
  /* 0x80 in a 16-bit length is just a large value. */
  dx_frame_header h;
  CHECK_EQ_INT(parse_g(B(0x82, 0x7E, 0x80, 0x00), &h), 4);
  CHECK_EQ_INT(h.payload_len, 0x8000);
}

/* ---- opcode and control-frame rules ---------------------------------------- */

TEST(reserved_opcodes) {
  for (unsigned op = 0; op < 16; op++) {
    bool reserved = (op >= 3 && op <= 7) || op >= 0xB;
    for (unsigned fin = 0; fin < 2; fin++)
      for (unsigned rsv = 0; rsv < 8; rsv++) {
        uint8_t b0 = (uint8_t)(fin << 7 | rsv << 4 | op);
        /* Decided from the first byte, before any length rule. */
        if (reserved) {
          check_prefixes(B(b0, 0x05, 1, 2, 3, 4, 5), 1, DX_EFRAME_OPCODE);
          check_prefixes(B(b0, 0x7E, 0x00, 0x01), 1, DX_EFRAME_OPCODE); /* non-minimal */
          check_prefixes(B(b0, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0), 1, DX_EFRAME_OPCODE); /* MSB */
        }
      }
    dx_frame_header h;
    int rc = parse_g(B((uint8_t)(0x80 | op), 0x05), &h);
    if (reserved)
      CHECK_EQ_INT(rc, DX_EFRAME_OPCODE);
    else
      CHECK_EQ_INT(rc, 2);
    CHECK_EQ_INT(dx_opcode_is_control(op), op >= 8);
  }
}

TEST(control_frames) {
  static const uint8_t ctl[] = {DX_OP_CLOSE, DX_OP_PING, DX_OP_PONG};
  for (size_t i = 0; i < 3; i++) {
    uint8_t op = ctl[i];
    dx_frame_header h;
    /* FIN = 0: known from the first byte, before the (also bad) length. */
    check_prefixes(B(op, 0x05, 1, 2), 1, DX_EFRAME_CONTROL_FRAGMENTED);
    check_prefixes(B(op, 0x7E, 0x01, 0x00), 1, DX_EFRAME_CONTROL_FRAGMENTED);
    /* Length 125 is the maximum; 126/127 in the 7-bit field is too long,
     * decided at byte 1 whatever the extended length says. */
    CHECK_EQ_INT(parse_g(B((uint8_t)(0x80 | op), 125), &h), 2);
    CHECK_EQ_INT(h.payload_len, 125);
    CHECK_EQ_INT(parse_g(B((uint8_t)(0x80 | op), 0x80 | 125, 1, 2, 3, 4), &h), 6);
    check_prefixes(B((uint8_t)(0x80 | op), 0x7E, 0x00, 0x7E), 2, DX_EFRAME_CONTROL_TOO_LONG);
    check_prefixes(B((uint8_t)(0x80 | op), 0x7E, 0x00, 0x05), 2, DX_EFRAME_CONTROL_TOO_LONG);
    check_prefixes(B((uint8_t)(0x80 | op), 0xFF, 0, 0, 0, 0, 0, 0x01, 0, 0), 2,
                   DX_EFRAME_CONTROL_TOO_LONG);
    check_prefixes(B((uint8_t)(0x80 | op), 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0), 2,
                   DX_EFRAME_CONTROL_TOO_LONG);
  }
  /* Data frames may be fragmented and long. */
  dx_frame_header h;
  CHECK_EQ_INT(parse_g(B(0x02, 0x7E, 0x01, 0x00), &h), 4);
  CHECK(!h.fin);
  CHECK_EQ_INT(parse_g(B(0x00, 0x05), &h), 2);
}

/* All 65536 first-two-byte combinations, against the rules written as a
 * direct predicate: alone (2 bytes), and followed by a valid remainder. */
TEST(exhaustive_first_two_bytes) {
  for (unsigned b0 = 0; b0 < 256; b0++)
    for (unsigned b1 = 0; b1 < 256; b1++) {
      unsigned op = b0 & 15, len7 = b1 & 127;
      bool fin = b0 & 0x80, masked = b1 & 0x80;
      bool control = op >= 8;
      int want;
      size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
      size_t hl = 2 + ext + (masked ? 4 : 0);
      if ((op >= 3 && op <= 7) || op >= 11)
        want = DX_EFRAME_OPCODE;
      else if (control && !fin)
        want = DX_EFRAME_CONTROL_FRAGMENTED;
      else if (control && len7 > 125)
        want = DX_EFRAME_CONTROL_TOO_LONG;
      else
        want = (int)hl;

      uint8_t buf[DX_FRAME_HEADER_MAX] = {(uint8_t)b0, (uint8_t)b1};
      /* A minimal extended length: 0x0100 or 2^32; then the key. */
      if (ext == 2) buf[2] = 0x01;
      if (ext == 8) buf[5] = 0x01;
      memcpy(buf + 2 + ext, KEY, 4);

      dx_frame_header h;
      int rc2 = parse_g(buf, 2, &h);
      CHECK_EQ_INT(rc2, want < 0 ? want : hl == 2 ? 2 : DX_EAGAIN);
      int rc = parse_g(buf, hl, &h);
      CHECK_EQ_INT(rc, want);
      if (rc > 0) {
        CHECK_EQ_INT(h.fin, fin);
        CHECK_EQ_INT(h.rsv, (b0 >> 4) & 7);
        CHECK_EQ_INT(h.opcode, op);
        CHECK_EQ_INT(h.masked, masked);
        CHECK_EQ_INT(h.header_len, hl);
        CHECK(h.payload_len == (ext == 0 ? len7 : ext == 2 ? 256 : (uint64_t)1 << 32));
      }
      if (test_current_failed_) {
        fprintf(stderr, "  bytes %02x %02x\n", b0, b1);
        return;
      }
    }
}

/* ---- connection-level checks ------------------------------------------- */

TEST(frame_check) {
  for (unsigned rsv = 0; rsv < 8; rsv++)
    for (unsigned allowed = 0; allowed < 8; allowed++)
      for (int masked = 0; masked < 2; masked++)
        for (int from_client = 0; from_client < 2; from_client++) {
          dx_frame_header h = {.payload_len = 1,
                               .opcode = DX_OP_TEXT,
                               .rsv = (uint8_t)rsv,
                               .header_len = 2,
                               .fin = true,
                               .masked = masked};
          int want = 0;
          if (rsv & ~allowed)
            want = DX_EFRAME_RSV;
          else if (from_client && !masked)
            want = DX_EFRAME_UNMASKED;
          else if (!from_client && masked)
            want = DX_EFRAME_MASKED;
          CHECK_EQ_INT(dx_frame_check(&h, allowed, from_client), want);
        }
  /* The named bits mean what they say. */
  dx_frame_header h = {.opcode = DX_OP_TEXT, .rsv = DX_RSV1, .fin = true, .masked = true};
  CHECK_EQ_INT(dx_frame_check(&h, DX_RSV1, true), 0);
  CHECK_EQ_INT(dx_frame_check(&h, DX_RSV2 | DX_RSV3, true), DX_EFRAME_RSV);
  /* A parsed RSV1 frame lands in DX_RSV1. */
  CHECK_EQ_INT(parse_g(B(0xC1, 0x80, 1, 2, 3, 4), &h), 6);
  CHECK_EQ_INT(h.rsv, DX_RSV1);
  CHECK_EQ_INT(parse_g(B(0xA1, 0x00), &h), 2);
  CHECK_EQ_INT(h.rsv, DX_RSV2);
  CHECK_EQ_INT(parse_g(B(0x91, 0x00), &h), 2);
  CHECK_EQ_INT(h.rsv, DX_RSV3);
}

/* ---- round trip ------------------------------------------------------------ */

TEST(round_trip) {
  static const unsigned ops[] = {DX_OP_CONT,  DX_OP_TEXT, DX_OP_BINARY,
                                 DX_OP_CLOSE, DX_OP_PING, DX_OP_PONG};
  static const uint64_t lens[] = {0,
                                  1,
                                  124,
                                  125,
                                  126,
                                  127,
                                  65535,
                                  65536,
                                  UINT32_MAX,
                                  (uint64_t)1 << 32,
                                  ((uint64_t)1 << 63) - 1};
  int n = 0;
  for (size_t oi = 0; oi < 6; oi++)
    for (int fin = 0; fin < 2; fin++)
      for (unsigned rsv = 0; rsv < 8; rsv++)
        for (int m = 0; m < 2; m++)
          for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            unsigned op = ops[oi];
            uint64_t len = lens[li];
            uint8_t out[DX_FRAME_HEADER_MAX];
            uint8_t key[4] = {(uint8_t)li, (uint8_t)rsv, (uint8_t)op, 0xA5};
            size_t hl = dx_frame_write_header(out, fin, rsv, op, len, m ? key : NULL);
            CHECK_EQ_INT(hl, dx_frame_header_size(len, m));
            dx_frame_header h;
            int rc = parse_g(out, hl, &h);
            n++;
            if (dx_opcode_is_control(op) && !fin) {
              CHECK_EQ_INT(rc, DX_EFRAME_CONTROL_FRAGMENTED);
              continue;
            }
            if (dx_opcode_is_control(op) && len > DX_CONTROL_MAX) {
              CHECK_EQ_INT(rc, DX_EFRAME_CONTROL_TOO_LONG);
              continue;
            }
            CHECK_EQ_INT(rc, (int)hl);
            CHECK_EQ_INT(h.fin, fin);
            CHECK_EQ_INT(h.rsv, rsv);
            CHECK_EQ_INT(h.opcode, op);
            CHECK_EQ_INT(h.masked, m);
            CHECK(h.payload_len == len);
            CHECK_EQ_INT(h.header_len, hl);
            if (m) CHECK_MEM(h.mask, key, 4);
          }
  CHECK_EQ_INT(n, 6 * 2 * 8 * 2 * 11);
}

TEST(write_header_keeps_fields_apart) {
  /* Stray high bits in rsv/opcode must not leak into FIN or each other. */
  uint8_t out[DX_FRAME_HEADER_MAX];
  dx_frame_write_header(out, false, 0xF8 | DX_RSV3, 0xF0 | DX_OP_TEXT, 5, NULL);
  CHECK_EQ_INT(out[0], 0x11);
  CHECK_EQ_INT(out[1], 5);
}

/* ---- close codes ---------------------------------------------------------- */

TEST(close_codes) {
  /* Every class and every boundary by name. */
  static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                   1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                     1016, 1100, 2000, 2999, 5000, 5001, 65535};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    CHECK(dx_close_code_valid(valid[i]));
    if (!dx_close_code_valid(valid[i])) fprintf(stderr, "  %u\n", valid[i]);
  }
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    CHECK(!dx_close_code_valid(invalid[i]));
    if (dx_close_code_valid(invalid[i])) fprintf(stderr, "  %u\n", invalid[i]);
  }
  /* And every code (close codes are uint16_t, the wire type) against the
   * ranges. */
  for (unsigned c = 0; c <= UINT16_MAX; c++) {
    bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    if (dx_close_code_valid((uint16_t)c) != want) {
      CHECK(dx_close_code_valid((uint16_t)c) == want);
      fprintf(stderr, "  code %u\n", c);
    }
  }
  /* The named constants agree. */
  CHECK(dx_close_code_valid(DX_CLOSE_NORMAL) && dx_close_code_valid(DX_CLOSE_BAD_GATEWAY));
  CHECK(!dx_close_code_valid(DX_CLOSE_NO_STATUS) && !dx_close_code_valid(DX_CLOSE_ABNORMAL));
  CHECK(!dx_close_code_valid(DX_CLOSE_TLS));
}

int main(void) {
  RUN(rfc_examples_encode);
  RUN(rfc_examples_parse);
  RUN(eagain_at_every_byte);
  RUN(length_boundaries);
  RUN(non_minimal_lengths);
  RUN(length_msb);
  RUN(reserved_opcodes);
  RUN(control_frames);
  RUN(exhaustive_first_two_bytes);
  RUN(frame_check);
  RUN(round_trip);
  RUN(write_header_keeps_fields_apart);
  RUN(close_codes);
  return test_report();
}
