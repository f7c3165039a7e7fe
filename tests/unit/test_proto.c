/* The sans-I/O connection: reassembly, control frames, closing handshake,
 * and every protocol violation mapped to its error and close code. */
#include <stdint.h>

#include "duplex/deflate.h"
#include "duplex/error.h"
#include "duplex/proto.h"
#include "test.h"

/* ---- a recorder for events and output ---- */

typedef struct {
  int type, opcode, first, fin, code;
  size_t len;
  uint8_t data[300];
  int zero_copy; /* data pointed into the fed buffer */
  uint64_t hash; /* FNV-1a of all of data */
} rec_event;

typedef struct {
  rec_event ev[64];
  int nev;
  uint8_t out[8192]; /* wire bytes produced, mask applied */
  size_t out_len;
  const uint8_t *feed_lo, *feed_hi; /* bounds of the buffer being fed */
  uint8_t next_key;
  dx_proto *p;
  int reply_close; /* close from inside the close event with this code */
} recorder;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void on_event(void *user, const dx_event *e) {
  recorder *r = user;
  if (r->nev >= 64) return;
  rec_event *x = &r->ev[r->nev++];
  memset(x, 0, sizeof *x);
  x->type = e->type;
  x->opcode = e->opcode;
  x->first = e->first;
  x->fin = e->fin;
  x->code = e->close_code;
  x->len = e->len;
  memcpy(x->data, e->data, e->len < sizeof x->data ? e->len : sizeof x->data);
  x->zero_copy = e->len && e->data >= r->feed_lo && e->data < r->feed_hi;
  x->hash = fnv(e->data, e->len);
  if (e->type == DX_EV_CLOSE && r->reply_close)
    dx_proto_close(r->p, (unsigned)r->reply_close, "mine", 4);
}

static int on_output(void *user, const dx_output *o) {
  recorder *r = user;
  if (r->out_len + o->header_len + o->payload_len > sizeof r->out) return DX_ENOSPC;
  memcpy(r->out + r->out_len, o->header, o->header_len);
  r->out_len += o->header_len;
  if (o->mask)
    dx_mask_copy(r->out + r->out_len, o->payload, o->payload_len, o->mask, 0);
  else
    memcpy(r->out + r->out_len, o->payload, o->payload_len);
  r->out_len += o->payload_len;
  return 0;
}

static void mask_key(void *user, uint8_t key[4]) {
  recorder *r = user;
  for (int i = 0; i < 4; i++) key[i] = (uint8_t)(0x37 + r->next_key++ * 13);
}

static const dx_proto_callbacks cbs = {on_event, on_output, mask_key};

static dx_proto *new_proto(recorder *r, dx_role role, const dx_proto_opts *o) {
  memset(r, 0, sizeof *r);
  dx_proto *p = malloc(dx_proto_size());
  dx_proto_init(p, role, o, &cbs, r);
  r->p = p;
  return p;
}

static void free_proto(dx_proto *p) {
  dx_proto_free(p);
  free(p);
}

/* Feed bytes through a guarded copy (over-reads crash). */
static int feed(recorder *r, dx_proto *p, const uint8_t *bytes, size_t n) {
  uint8_t *g = guarded_copy(bytes, n);
  r->feed_lo = g;
  r->feed_hi = g + n;
  int rc = dx_proto_feed(p, g, n);
  r->feed_lo = r->feed_hi = NULL;
  guarded_free(g);
  return rc;
}

/* Independent frame builder (deliberately not dx_frame_write_header). */
static size_t frame(uint8_t *out, int fin, int rsv, int op, const void *payload, size_t n,
                    const uint8_t *key) {
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
  uint8_t m = key ? 0x80 : 0;
  if (n < 126) {
    out[h++] = (uint8_t)(m | n);
  } else if (n < 65536) {
    out[h++] = m | 126;
    out[h++] = (uint8_t)(n >> 8);
    out[h++] = (uint8_t)n;
  } else {
    out[h++] = m | 127;
    for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  if (key) memcpy(out + h, key, 4), h += 4;
  for (size_t i = 0; i < n; i++)
    out[h + i] = ((const uint8_t *)payload)[i] ^ (key ? key[i & 3] : 0);
  return h + n;
}

static const uint8_t K[4] = {0x37, 0xfa, 0x21, 0x3d};

/* The close frame (code) found at the start of r->out, or -1. */
static int out_close_code(const recorder *r) {
  for (size_t i = 0; i + 1 < r->out_len;) {
    int op = r->out[i] & 0x0f;
    size_t len = r->out[i + 1] & 0x7f; /* our control frames are < 126 */
    size_t hl = 2 + ((r->out[i + 1] & 0x80) ? 4 : 0);
    if (op == DX_OP_CLOSE) {
      if (len < 2) return 0;
      uint8_t b0 = r->out[i + hl], b1 = r->out[i + hl + 1];
      if (r->out[i + 1] & 0x80) b0 ^= r->out[i + 2], b1 ^= r->out[i + 3];
      return b0 << 8 | b1;
    }
    i += hl + len;
  }
  return -1;
}

/* ---- RFC 6455 section 5.7 examples ---- */

TEST(rfc_single_unmasked_text_to_client) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_CLIENT, NULL);
  const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ_INT(feed(&r, p, f, sizeof f), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_MESSAGE);
  CHECK_EQ_INT(r.ev[0].opcode, DX_OP_TEXT);
  CHECK_EQ_INT(r.ev[0].len, 5);
  CHECK_MEM(r.ev[0].data, "Hello", 5);
  CHECK(r.ev[0].zero_copy);
  free_proto(p);
}

TEST(rfc_single_masked_text_to_server) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  CHECK_EQ_INT(feed(&r, p, f, sizeof f), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_MEM(r.ev[0].data, "Hello", 5);
  free_proto(p);
}

TEST(rfc_fragmented_unmasked_text) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_CLIENT, NULL);
  const uint8_t f[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  CHECK_EQ_INT(feed(&r, p, f, sizeof f), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].len, 5);
  CHECK_MEM(r.ev[0].data, "Hello", 5);
  CHECK(!r.ev[0].zero_copy);
  free_proto(p);
}

TEST(rfc_ping_gets_pong_with_same_payload) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_CLIENT, NULL);
  const uint8_t f[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  CHECK_EQ_INT(feed(&r, p, f, sizeof f), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_PING);
  /* Client pong is masked: 0x8a 0x85 key payload^key. */
  CHECK_EQ_INT(r.out_len, 11);
  CHECK_EQ_INT(r.out[0], 0x8a);
  CHECK_EQ_INT(r.out[1], 0x85);
  uint8_t un[5];
  dx_mask_copy(un, r.out + 6, 5, r.out + 2, 0);
  CHECK_MEM(un, "Hello", 5);
  free_proto(p);
}

TEST(no_auto_pong_option) {
  recorder r;
  dx_proto_opts o = {.no_auto_pong = true};
  dx_proto *p = new_proto(&r, DX_ROLE_CLIENT, &o);
  const uint8_t f[] = {0x89, 0x00};
  CHECK_EQ_INT(feed(&r, p, f, sizeof f), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.out_len, 0);
  free_proto(p);
}

TEST(pong_event) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[32];
  size_t n = frame(f, 1, 0, DX_OP_PONG, "hb", 2, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_PONG);
  CHECK_MEM(r.ev[0].data, "hb", 2);
  CHECK_EQ_INT(r.out_len, 0);
  free_proto(p);
}

TEST(length_boundaries) {
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = sizes[i];
    uint8_t *payload = malloc(n + 1), *f = malloc(n + 14);
    for (size_t j = 0; j < n; j++) payload[j] = (uint8_t)(j * 7);
    size_t fl = frame(f, 1, 0, DX_OP_BINARY, payload, n, K);
    recorder r;
    dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
    CHECK_EQ_INT(feed(&r, p, f, fl), 0);
    CHECK_EQ_INT(r.nev, 1);
    CHECK_EQ_INT(r.ev[0].len, n);
    CHECK_EQ_INT(r.ev[0].opcode, DX_OP_BINARY);
    CHECK_MEM(r.ev[0].data, payload, n < 300 ? n : 300);
    free_proto(p);
    free(payload);
    free(f);
  }
}

/* ---- fragmentation ---- */

TEST(fragments_with_interleaved_pings) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[256];
  size_t n = 0;
  n += frame(f + n, 0, 0, DX_OP_TEXT, "frag", 4, K);
  n += frame(f + n, 1, 0, DX_OP_PING, "p1", 2, K);
  n += frame(f + n, 0, 0, DX_OP_CONT, "men", 3, K);
  n += frame(f + n, 1, 0, DX_OP_PING, "p2", 2, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "ted", 3, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 3);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_PING);
  CHECK_EQ_INT(r.ev[1].type, DX_EV_PING);
  CHECK_MEM(r.ev[1].data, "p2", 2);
  CHECK_EQ_INT(r.ev[2].type, DX_EV_MESSAGE);
  CHECK_EQ_INT(r.ev[2].len, 10);
  CHECK_MEM(r.ev[2].data, "fragmented", 10);
  /* Two pongs, unmasked (server). */
  CHECK_EQ_INT(r.out_len, 8);
  CHECK_EQ_INT(r.out[0], 0x8a);
  CHECK_MEM(r.out + 6, "p2", 2);
  free_proto(p);
}

TEST(empty_fragments_and_empty_message) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[64];
  size_t n = 0;
  n += frame(f + n, 1, 0, DX_OP_TEXT, "", 0, K);
  n += frame(f + n, 0, 0, DX_OP_BINARY, "", 0, K);
  n += frame(f + n, 0, 0, DX_OP_CONT, "", 0, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "", 0, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 2);
  CHECK_EQ_INT(r.ev[0].opcode, DX_OP_TEXT);
  CHECK_EQ_INT(r.ev[0].len, 0);
  CHECK_EQ_INT(r.ev[1].opcode, DX_OP_BINARY);
  CHECK_EQ_INT(r.ev[1].len, 0);
  free_proto(p);
}

TEST(stream_fragments_mode) {
  recorder r;
  dx_proto_opts o = {.stream_fragments = true};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  uint8_t f[128];
  size_t n = 0;
  n += frame(f + n, 0, 0, DX_OP_BINARY, "abc", 3, K);
  n += frame(f + n, 0, 0, DX_OP_CONT, "", 0, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "de", 2, K);
  n += frame(f + n, 1, 0, DX_OP_TEXT, "x", 1, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 3);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_FRAGMENT);
  CHECK(r.ev[0].first && !r.ev[0].fin);
  CHECK_EQ_INT(r.ev[0].opcode, DX_OP_BINARY);
  CHECK(!r.ev[1].first && r.ev[1].fin);
  CHECK_MEM(r.ev[1].data, "de", 2);
  CHECK(r.ev[2].first && r.ev[2].fin);
  CHECK_EQ_INT(r.ev[2].opcode, DX_OP_TEXT);
  /* Byte at a time: pieces arrive as they come, same bytes in total. */
  free_proto(p);
  p = new_proto(&r, DX_ROLE_SERVER, &o);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(feed(&r, p, f + i, 1), 0);
  for (int i = 0; i < r.nev; i++) total += r.ev[i].len;
  CHECK_EQ_INT(total, 6);
  CHECK(r.ev[r.nev - 1].fin);
  free_proto(p);
}

TEST(continuation_without_start_is_1002) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[32];
  size_t n = frame(f, 1, 0, DX_OP_CONT, "x", 1, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EFRAME_CONTINUATION);
  CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_FAILED);
  CHECK_EQ_INT(out_close_code(&r), 1002);
  CHECK_EQ_INT(r.nev, 0);
  free_proto(p);
}

TEST(new_message_during_fragmented_is_1002) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[64];
  size_t n = frame(f, 0, 0, DX_OP_TEXT, "a", 1, K);
  n += frame(f + n, 1, 0, DX_OP_BINARY, "b", 1, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EFRAME_INTERLEAVED);
  CHECK_EQ_INT(out_close_code(&r), 1002);
  free_proto(p);
}

/* ---- framing violations ---- */

static void expect_fail(dx_role role, const uint8_t *f, size_t n, int err, int code) {
  recorder r;
  dx_proto *p = new_proto(&r, role, NULL);
  int rc = feed(&r, p, f, n);
  if (rc != err) fprintf(stderr, "  got %s, want %s\n", dx_errname(rc), dx_errname(err));
  CHECK_EQ_INT(rc, err);
  CHECK_EQ_INT(dx_proto_error(p), err);
  CHECK_EQ_INT(out_close_code(&r), code);
  CHECK(dx_proto_close_sent(p));
  /* Everything after a failure is refused with the same error. */
  CHECK_EQ_INT(dx_proto_feed(p, (uint8_t *)"\x81\x00", 2), err);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_TEXT, "x", 1), DX_ECLOSED);
  free_proto(p);
}

TEST(framing_violations) {
  uint8_t f[300];
  size_t n;
  n = frame(f, 1, 0, DX_OP_TEXT, "hi", 2, NULL);
  expect_fail(DX_ROLE_SERVER, f, n, DX_EFRAME_UNMASKED, 1002);
  n = frame(f, 1, 0, DX_OP_TEXT, "hi", 2, K);
  expect_fail(DX_ROLE_CLIENT, f, n, DX_EFRAME_MASKED, 1002);
  for (int rsv = 1; rsv < 8; rsv++) {
    n = frame(f, 1, rsv, DX_OP_TEXT, "hi", 2, K);
    expect_fail(DX_ROLE_SERVER, f, n, DX_EFRAME_RSV, 1002);
  }
  for (int op = 3; op < 16; op++) {
    if (op >= 8 && op <= 10) continue;
    n = frame(f, 1, 0, op, "", 0, K);
    expect_fail(DX_ROLE_SERVER, f, n, DX_EFRAME_OPCODE, 1002);
  }
  n = frame(f, 0, 0, DX_OP_PING, "", 0, K);
  expect_fail(DX_ROLE_SERVER, f, n, DX_EFRAME_CONTROL_FRAGMENTED, 1002);
  uint8_t big[126] = {0};
  n = frame(f, 1, 0, DX_OP_PING, big, 126, K);
  expect_fail(DX_ROLE_SERVER, f, n, DX_EFRAME_CONTROL_TOO_LONG, 1002);
  /* Non-minimal 16-bit length (5 encoded in 2 bytes). */
  const uint8_t nm[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0, 0, 0};
  expect_fail(DX_ROLE_SERVER, nm, sizeof nm, DX_EFRAME_LENGTH, 1002);
}

TEST(rsv1_allowed_only_on_first_data_frame) {
  recorder r;
  dx_proto_opts o = {.allowed_rsv = DX_RSV1};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  uint8_t f[64];
  size_t n = frame(f, 0, 4, DX_OP_BINARY, "ab", 2, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  n = frame(f, 1, 4, DX_OP_CONT, "cd", 2, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EFRAME_RSV);
  free_proto(p);
  p = new_proto(&r, DX_ROLE_SERVER, &o);
  n = frame(f, 1, 4, DX_OP_PING, "", 0, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EFRAME_RSV);
  free_proto(p);
  p = new_proto(&r, DX_ROLE_SERVER, &o);
  n = frame(f, 1, 4, DX_OP_TEXT, "\xff", 1, K); /* compressed: not validated here */
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 1);
  free_proto(p);
}

/* ---- UTF-8 ---- */

TEST(invalid_utf8_fails_fast_with_1007) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[64];
  /* First fragment already invalid: fail before the message ends. */
  size_t n = frame(f, 0, 0, DX_OP_TEXT, "ok\xc0\xaf", 4, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EUTF8);
  CHECK_EQ_INT(out_close_code(&r), 1007);
  free_proto(p);

  /* Invalid inside a single frame delivered in two reads: the first read
   * (which holds the bad byte) fails, not the end of the frame. */
  p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t payload[40];
  memset(payload, 'a', sizeof payload);
  payload[10] = 0xed, payload[11] = 0xa0, payload[12] = 0x80; /* surrogate */
  n = frame(f, 1, 0, DX_OP_TEXT, payload, sizeof payload, K);
  CHECK_EQ_INT(feed(&r, p, f, 6 + 13), DX_EUTF8);
  free_proto(p);

  /* Truncated sequence at the end of the message. */
  p = new_proto(&r, DX_ROLE_SERVER, NULL);
  n = frame(f, 1, 0, DX_OP_TEXT, "a\xe2\x82", 3, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EUTF8);
  free_proto(p);

  /* A sequence split across fragments is fine. */
  p = new_proto(&r, DX_ROLE_SERVER, NULL);
  n = frame(f, 0, 0, DX_OP_TEXT, "\xe2\x82", 2, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "\xac", 1, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_MEM(r.ev[0].data, "\xe2\x82\xac", 3);
  free_proto(p);

  /* Binary messages are not validated. */
  p = new_proto(&r, DX_ROLE_SERVER, NULL);
  n = frame(f, 1, 0, DX_OP_BINARY, "\xff\xfe", 2, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  free_proto(p);
}

/* ---- limits ---- */

TEST(limits_close_with_1009_at_header_time) {
  recorder r;
  dx_proto_opts o = {.max_message = 100, .max_frame = 60};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  uint8_t f[256] = {0};
  uint8_t payload[128] = {0};
  /* Only the header: the frame is refused before its payload arrives. */
  frame(f, 1, 0, DX_OP_BINARY, payload, 61, K);
  CHECK_EQ_INT(feed(&r, p, f, 6), DX_EFRAME_TOO_BIG);
  CHECK_EQ_INT(out_close_code(&r), 1009);
  free_proto(p);

  p = new_proto(&r, DX_ROLE_SERVER, &o);
  size_t n = frame(f, 0, 0, DX_OP_BINARY, payload, 60, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  n = frame(f, 1, 0, DX_OP_CONT, payload, 41, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EMESSAGE_TOO_BIG);
  CHECK_EQ_INT(out_close_code(&r), 1009);
  free_proto(p);

  /* Exactly at the limit is fine. */
  p = new_proto(&r, DX_ROLE_SERVER, &o);
  n = frame(f, 0, 0, DX_OP_BINARY, payload, 60, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, payload, 40, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].len, 100);
  free_proto(p);
}

TEST(announced_huge_frame_does_not_allocate_it) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL); /* 16 MiB limit */
  uint8_t f[64];
  /* Announce 16 MiB, send 10 bytes. */
  f[0] = 0x82, f[1] = 0xff;
  uint64_t len = 16u << 20;
  for (int i = 0; i < 8; i++) f[2 + i] = (uint8_t)(len >> (56 - 8 * i));
  memcpy(f + 10, K, 4);
  memset(f + 14, 0, 10);
  CHECK_EQ_INT(feed(&r, p, f, 24), 0);
  CHECK(dx_proto_buffered(p) <= 4096);
  free_proto(p);
}

/* dx_proto_read_into: inside a large frame being reassembled, the next
 * bytes may be read straight into the message buffer (never past the
 * frame), and the message comes out the same as when fed from outside. */
TEST(read_into_message_buffer) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  enum { A = 100000, B = 200000 };
  uint8_t *msg = malloc(A + B), *wire = malloc(A + B + 64);
  for (size_t i = 0; i < A + B; i++) msg[i] = (uint8_t)('a' + i % 26);
  size_t n = frame(wire, 0, 0, DX_OP_TEXT, msg, A, K);
  n += frame(wire + n, 1, 0, DX_OP_CONT, msg + A, B, K);
  size_t cap = 1;
  CHECK(dx_proto_read_into(p, &cap) == NULL); /* no frame yet */
  size_t pos = 0, in_place = 0;
  CHECK_EQ_INT(feed(&r, p, wire, 1000), 0);
  pos = 1000;
  while (pos < n) {
    uint8_t *dst = dx_proto_read_into(p, &cap);
    if (dst) {
      size_t k = cap < 50000 ? cap : 50000;
      CHECK(k <= n - pos);
      memcpy(dst, wire + pos, k); /* as a read into it would */
      CHECK_EQ_INT(dx_proto_feed(p, dst, k), 0);
      pos += k;
      in_place += k;
    } else {
      size_t k = n - pos < 70000 ? n - pos : 70000;
      CHECK_EQ_INT(feed(&r, p, wire + pos, k), 0);
      pos += k;
    }
    CHECK(dx_proto_buffered(p) <= A + B);
  }
  printf("300,000-byte message in two frames: %zu bytes read in place\n", in_place);
  CHECK(in_place > 100000);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_MESSAGE);
  CHECK_EQ_INT(r.ev[0].opcode, DX_OP_TEXT);
  CHECK_EQ_INT(r.ev[0].len, A + B);
  CHECK(r.ev[0].hash == fnv(msg, A + B));
  CHECK(dx_proto_read_into(p, &cap) == NULL); /* between messages */
  CHECK_EQ_INT(dx_proto_buffered(p), 0);
  /* A small frame never asks for it. */
  n = frame(wire, 1, 0, DX_OP_BINARY, msg, 5000, K);
  CHECK_EQ_INT(feed(&r, p, wire, 10), 0);
  CHECK(dx_proto_read_into(p, &cap) == NULL);
  CHECK_EQ_INT(feed(&r, p, wire + 10, n - 10), 0);
  CHECK_EQ_INT(r.nev, 2);
  free(msg);
  free(wire);
  free_proto(p);
}

/* ---- closing handshake ---- */

static void close_frame(uint8_t *f, size_t *n, int code, const char *reason, size_t rlen) {
  uint8_t pl[130] = {0}; /* gcc -O3 cannot see that frame() reads only pn bytes */
  size_t pn = 0;
  if (code >= 0) {
    pl[0] = (uint8_t)(code >> 8), pl[1] = (uint8_t)code;
    memcpy(pl + 2, reason, rlen);
    pn = 2 + rlen;
  }
  *n = frame(f, 1, 0, DX_OP_CLOSE, pl, pn, K);
}

TEST(close_valid_codes_are_echoed) {
  static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                           1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    recorder r;
    dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
    uint8_t f[160];
    size_t n;
    close_frame(f, &n, ok[i], "bye", 3);
    CHECK_EQ_INT(feed(&r, p, f, n), 0);
    CHECK_EQ_INT(r.nev, 1);
    CHECK_EQ_INT(r.ev[0].type, DX_EV_CLOSE);
    CHECK_EQ_INT(r.ev[0].code, ok[i]);
    CHECK_MEM(r.ev[0].data, "bye", 3);
    CHECK_EQ_INT(out_close_code(&r), ok[i]);
    CHECK_EQ_INT(r.out_len, 2 + 2 + 3); /* code and reason echoed */
    CHECK_MEM(r.out + 4, "bye", 3);
    CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSED);
    CHECK(dx_proto_close_received(p));
    free_proto(p);
  }
}

TEST(close_invalid_codes_are_1002) {
  static const int bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint8_t f[160];
    size_t n;
    close_frame(f, &n, bad[i], "", 0);
    expect_fail(DX_ROLE_SERVER, f, n, DX_ECLOSE_CODE, 1002);
  }
  uint8_t f[16];
  size_t n = frame(f, 1, 0, DX_OP_CLOSE, "\x03", 1, K);
  expect_fail(DX_ROLE_SERVER, f, n, DX_ECLOSE_PAYLOAD, 1002);
  uint8_t g[160];
  close_frame(g, &n, 1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 14);
  expect_fail(DX_ROLE_SERVER, g, n, DX_ECLOSE_REASON_UTF8, 1007);
}

TEST(close_empty_payload_reports_1005_and_echoes_empty) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[16];
  size_t n;
  close_frame(f, &n, -1, NULL, 0);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.ev[0].code, 1005);
  CHECK_EQ_INT(r.out_len, 2);
  CHECK_EQ_INT(r.out[0], 0x88);
  CHECK_EQ_INT(r.out[1], 0x00);
  free_proto(p);
}

TEST(close_initiated_locally) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_CLIENT, NULL);
  CHECK_EQ_INT(dx_proto_close(p, 1000, "done", 4), 0);
  CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSING);
  CHECK_EQ_INT(out_close_code(&r), 1000);
  CHECK_EQ_INT(dx_proto_close(p, 1000, NULL, 0), DX_ECLOSED);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_TEXT, "late", 4), DX_ECLOSED);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_PING, "", 0), DX_ECLOSED);
  size_t before = r.out_len;
  /* Data may still arrive before the peer's close; then the close itself. */
  uint8_t f[64];
  size_t n = frame(f, 1, 0, DX_OP_TEXT, "still", 5, NULL);
  n += frame(f + n, 1, 0, DX_OP_PING, "", 0, NULL); /* no pong after our close */
  n += frame(f + n, 1, 0, DX_OP_CLOSE, "\x03\xe8", 2, NULL);
  n += frame(f + n, 1, 0, DX_OP_TEXT, "ignored", 7, NULL);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 3);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_MESSAGE);
  CHECK_EQ_INT(r.ev[2].type, DX_EV_CLOSE);
  CHECK_EQ_INT(r.ev[2].code, 1000);
  CHECK_EQ_INT(r.out_len, before); /* nothing more sent */
  CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSED);
  free_proto(p);
}

TEST(close_argument_validation) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  char longr[200];
  memset(longr, 'x', sizeof longr);
  CHECK_EQ_INT(dx_proto_close(p, 1005, NULL, 0), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_close(p, 999, NULL, 0), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_close(p, 0, "r", 1), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_close(p, 1000, longr, 124), DX_EINVAL);
  /* A reason the peer would have to reject (RFC 6455 7.1.6: UTF-8). */
  CHECK_EQ_INT(dx_proto_close(p, 1000, "\xff\xfe", 2), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_close(p, 1000, "caf\xc3", 4), DX_EINVAL);
  CHECK_EQ_INT(r.out_len, 0);
  CHECK_EQ_INT(dx_proto_close(p, 4000, longr, 123), 0);
  CHECK_EQ_INT(r.out_len, 2 + 125);
  free_proto(p);
}

TEST(user_replies_to_close_with_own_code) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  r.reply_close = 4001;
  uint8_t f[32];
  size_t n;
  close_frame(f, &n, 1000, "", 0);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(out_close_code(&r), 4001);
  CHECK_EQ_INT(r.out_len, 2 + 6); /* exactly one close frame */
  free_proto(p);
}

/* ---- sending ---- */

TEST(send_rules) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t big[126] = {0};
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_PING, big, 126), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_CLOSE, "", 0), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_send(p, 3, "", 0), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_CONT, "", 0), DX_ESTATE);
  CHECK_EQ_INT(dx_proto_send_frame(p, DX_OP_TEXT, "a", 1, DX_SEND_MORE), 0);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_BINARY, "b", 1), DX_ESTATE);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_PING, "", 0), 0); /* control in between */
  CHECK_EQ_INT(dx_proto_send_frame(p, DX_OP_CONT, "b", 1, 0), 0);
  const uint8_t want[] = {0x01, 0x01, 'a', 0x89, 0x00, 0x80, 0x01, 'b'};
  CHECK_EQ_INT(r.out_len, sizeof want);
  CHECK_MEM(r.out, want, sizeof want);
  free_proto(p);
}

/* Client output decoded by a server-role dx_proto: masking round trip. */
TEST(client_to_server_round_trip) {
  recorder rc, rs;
  dx_proto *c = new_proto(&rc, DX_ROLE_CLIENT, NULL);
  dx_proto *s = new_proto(&rs, DX_ROLE_SERVER, NULL);
  uint8_t msg[1000];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)('a' + i % 26);
  CHECK_EQ_INT(dx_proto_send(c, DX_OP_TEXT, msg, sizeof msg), 0);
  CHECK_EQ_INT(dx_proto_send_frame(c, DX_OP_BINARY, "xy", 2, DX_SEND_MORE | DX_SEND_RSV1), 0);
  CHECK_EQ_INT(dx_proto_send_frame(c, DX_OP_CONT, "z", 1, 0), 0);
  CHECK_EQ_INT(dx_proto_close(c, 1001, "away", 4), 0);
  CHECK(rc.out[1] & 0x80);
  dx_proto_set_allowed_rsv(s, DX_RSV1);
  CHECK_EQ_INT(feed(&rs, s, rc.out, rc.out_len), 0);
  CHECK_EQ_INT(rs.nev, 3);
  CHECK_EQ_INT(rs.ev[0].len, 1000);
  CHECK_MEM(rs.ev[0].data, msg, 300);
  CHECK_EQ_INT(rs.ev[1].len, 3);
  CHECK_MEM(rs.ev[1].data, "xyz", 3);
  CHECK_EQ_INT(rs.ev[2].code, 1001);
  /* Server's echo back to the client closes the client cleanly. */
  CHECK_EQ_INT(feed(&rc, c, rs.out, rs.out_len), 0);
  CHECK_EQ_INT(dx_proto_get_state(c), DX_PROTO_CLOSED);
  CHECK_EQ_INT(rc.ev[rc.nev - 1].code, 1001);
  free_proto(c);
  free_proto(s);
}

/* ---- whole versus byte-at-a-time ---- */

static size_t build_mixed_stream(uint8_t *f) {
  size_t n = 0;
  uint8_t mid[300];
  for (size_t i = 0; i < sizeof mid; i++) mid[i] = (uint8_t)(i & 0x7f);
  n += frame(f + n, 1, 0, DX_OP_TEXT, "h\xc3\xa9llo w\xf0\x9f\x98\x80rld", 15, K);
  n += frame(f + n, 0, 0, DX_OP_BINARY, mid, 200, K);
  n += frame(f + n, 1, 0, DX_OP_PING, "ping!", 5, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, mid, 300, K);
  n += frame(f + n, 0, 0, DX_OP_TEXT, "\xe2", 1, K);
  n += frame(f + n, 0, 0, DX_OP_CONT, "\x82", 1, K);
  n += frame(f + n, 1, 0, DX_OP_PONG, "", 0, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "\xac!", 2, K);
  n += frame(f + n, 1, 0, DX_OP_BINARY, mid, 126, K);
  n += frame(f + n, 1, 0, DX_OP_CLOSE, "\x0f\xa0ok", 4, K);
  return n;
}

static void check_same(const recorder *a, const recorder *b) {
  CHECK_EQ_INT(a->nev, b->nev);
  for (int i = 0; i < a->nev && i < b->nev; i++) {
    CHECK_EQ_INT(a->ev[i].type, b->ev[i].type);
    CHECK_EQ_INT(a->ev[i].opcode, b->ev[i].opcode);
    CHECK_EQ_INT(a->ev[i].len, b->ev[i].len);
    CHECK_EQ_INT(a->ev[i].code, b->ev[i].code);
    CHECK_MEM(a->ev[i].data, b->ev[i].data, a->ev[i].len < 300 ? a->ev[i].len : 300);
  }
  CHECK_EQ_INT(a->out_len, b->out_len);
  CHECK_MEM(a->out, b->out, a->out_len);
}

TEST(byte_at_a_time_equals_whole) {
  uint8_t f[2048];
  size_t n = build_mixed_stream(f);
  recorder whole, bytes, split;
  dx_proto *p = new_proto(&whole, DX_ROLE_SERVER, NULL);
  CHECK_EQ_INT(feed(&whole, p, f, n), 0);
  CHECK_EQ_INT(whole.nev, 7);
  CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSED);
  free_proto(p);

  p = new_proto(&bytes, DX_ROLE_SERVER, NULL);
  for (size_t i = 0; i < n; i++) CHECK_EQ_INT(feed(&bytes, p, f + i, 1), 0);
  check_same(&whole, &bytes);
  free_proto(p);

  /* Every two-way split point. */
  for (size_t cut = 1; cut < n; cut++) {
    p = new_proto(&split, DX_ROLE_SERVER, NULL);
    CHECK_EQ_INT(feed(&split, p, f, cut), 0);
    CHECK_EQ_INT(feed(&split, p, f + cut, n - cut), 0);
    check_same(&whole, &split);
    free_proto(p);
  }
}

/* Stream mode hands text over piece by piece: a piece holding invalid
 * UTF-8 is never delivered, the connection fails with 1007. */
TEST(stream_mode_never_delivers_invalid_utf8) {
  recorder r;
  dx_proto_opts o = {.stream_fragments = true};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  uint8_t f[64];
  size_t n = frame(f, 0, 0, DX_OP_TEXT, "good", 4, K);
  n += frame(f + n, 1, 0, DX_OP_CONT,
             "ba\xc3\x28"
             "d",
             5, K);
  CHECK_EQ_INT(feed(&r, p, f, n), DX_EUTF8);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_MEM(r.ev[0].data, "good", 4);
  CHECK_EQ_INT(out_close_code(&r), 1007);
  free_proto(p);
}

/* A close frame between fragments ends the connection; the partial
 * message is dropped, never delivered. */
TEST(close_in_the_middle_of_a_fragmented_message) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  uint8_t f[64];
  size_t n = frame(f, 0, 0, DX_OP_TEXT, "part", 4, K);
  n += frame(f + n, 1, 0, DX_OP_CLOSE, "\x03\xe8", 2, K);
  n += frame(f + n, 1, 0, DX_OP_CONT, "rest", 4, K); /* after close: ignored */
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK_EQ_INT(r.nev, 1);
  CHECK_EQ_INT(r.ev[0].type, DX_EV_CLOSE);
  CHECK_EQ_INT(r.ev[0].code, 1000);
  CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSED);
  CHECK_EQ_INT(out_close_code(&r), 1000);
  CHECK_EQ_INT(dx_proto_buffered(p), 0); /* partial message released */
  free_proto(p);
}

/* max_frame applies to continuation frames too, at header time. */
TEST(max_frame_on_continuations) {
  recorder r;
  dx_proto_opts o = {.max_message = 1000, .max_frame = 50};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  uint8_t f[128], payload[64] = {0};
  size_t n = frame(f, 0, 0, DX_OP_BINARY, payload, 50, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  n = frame(f, 1, 0, DX_OP_CONT, payload, 51, K);
  CHECK_EQ_INT(feed(&r, p, f, 2 + 4), DX_EFRAME_TOO_BIG);
  CHECK_EQ_INT(out_close_code(&r), 1009);
  CHECK_EQ_INT(r.nev, 0);
  free_proto(p);
}

TEST(check_send_states) {
  recorder r;
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, NULL);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_TEXT), 0);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_BINARY), 0);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_PING), DX_EINVAL);
  CHECK_EQ_INT(dx_proto_send_frame(p, DX_OP_TEXT, "a", 1, DX_SEND_MORE), 0);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_TEXT), DX_ESTATE);
  CHECK_EQ_INT(dx_proto_send_frame(p, DX_OP_CONT, "b", 1, 0), 0);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_TEXT), 0);
  CHECK_EQ_INT(dx_proto_close(p, 1000, NULL, 0), 0);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_TEXT), DX_ECLOSED);
  free_proto(p);
  /* Client frames need a fresh mask each: no pre-framed sends. */
  p = new_proto(&r, DX_ROLE_CLIENT, NULL);
  CHECK_EQ_INT(dx_proto_check_send(p, DX_OP_TEXT), DX_EINVAL);
  free_proto(p);
}

/* The client role (unmasked frames from a server) is split-invariant too. */
TEST(client_byte_at_a_time_equals_whole) {
  uint8_t f[2048];
  size_t n = 0;
  uint8_t mid[300];
  for (size_t i = 0; i < sizeof mid; i++) mid[i] = (uint8_t)(i & 0x7f);
  n += frame(f + n, 1, 0, DX_OP_TEXT, "h\xc3\xa9llo", 6, NULL);
  n += frame(f + n, 0, 0, DX_OP_BINARY, mid, 200, NULL);
  n += frame(f + n, 1, 0, DX_OP_PING, "ping!", 5, NULL);
  n += frame(f + n, 1, 0, DX_OP_CONT, mid, 300, NULL);
  n += frame(f + n, 1, 0, DX_OP_CLOSE, "\x0f\xa0ok", 4, NULL);
  for (int stream = 0; stream < 2; stream++) {
    dx_proto_opts o = {.stream_fragments = stream};
    recorder whole, bytes;
    dx_proto *p = new_proto(&whole, DX_ROLE_CLIENT, &o);
    CHECK_EQ_INT(feed(&whole, p, f, n), 0);
    CHECK_EQ_INT(dx_proto_get_state(p), DX_PROTO_CLOSED);
    free_proto(p);
    p = new_proto(&bytes, DX_ROLE_CLIENT, &o);
    /* One byte at a time; 50 at a time in stream mode (one event per read
     * would overflow the recorder). */
    size_t step = stream ? 50 : 1;
    for (size_t i = 0; i < n; i += step)
      CHECK_EQ_INT(feed(&bytes, p, f + i, n - i < step ? n - i : step), 0);
    if (!stream) {
      check_same(&whole, &bytes);
    } else {
      /* Fragment events follow the reads; the bytes and the wire match. */
      size_t tw = 0, tb = 0;
      for (int i = 0; i < whole.nev; i++) tw += whole.ev[i].len;
      for (int i = 0; i < bytes.nev; i++) tb += bytes.ev[i].len;
      CHECK_EQ_INT(tw, tb);
      CHECK_EQ_INT(whole.out_len, bytes.out_len);
      CHECK_MEM(whole.out, bytes.out, whole.out_len);
    }
    free_proto(p);
  }
}

/* A compressed message gathered for the shared inflater is bounded by the
 * same wire limit check_header enforces, not by doubling past it. */
TEST(gathered_compressed_message_stays_within_its_limit) {
  recorder r;
  dx_proto_opts o = {.max_message = 8192};
  dx_proto *p = new_proto(&r, DX_ROLE_SERVER, &o);
  dx_pmd_shared *sh = dx_pmd_shared_new();
  dx_pmd_params pp = {true, true, 15, 15}; /* no takeover: whole messages */
  dx_deflate_opts dopts = {.enable = true};
  dx_pmd *pmd = dx_pmd_new(&pp, &dopts, sh);
  dx_proto_set_deflate(p, pmd);
  const size_t limit = 8192 + 8192 / 8 + 4096;
  static uint8_t junk[9000], f[9100];
  memset(junk, 0x55, sizeof junk);
  size_t n = frame(f, 0, 4, DX_OP_BINARY, junk, 8000, K); /* RSV1 */
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  n = frame(f, 0, 0, DX_OP_CONT, junk, 5000, K);
  CHECK_EQ_INT(feed(&r, p, f, n), 0);
  CHECK(dx_proto_buffered(p) <= limit);
  /* One byte more than the limit is refused at header time. */
  n = frame(f, 0, 0, DX_OP_CONT, junk, limit - 13000 + 1, K);
  CHECK_EQ_INT(feed(&r, p, f, 2 + 2 + 4), DX_EMESSAGE_TOO_BIG);
  free_proto(p);
  dx_pmd_free(pmd);
  dx_pmd_shared_free(sh);
}

TEST(error_mapping) {
  CHECK_EQ_INT(dx_close_code_for_error(DX_EUTF8), 1007);
  CHECK_EQ_INT(dx_close_code_for_error(DX_EMESSAGE_TOO_BIG), 1009);
  CHECK_EQ_INT(dx_close_code_for_error(DX_EFRAME_RSV), 1002);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_VERSION), 426);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_METHOD), 405);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_TOO_LARGE), 431);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_KEY), 400);
  CHECK_STR(dx_errname(DX_EUTF8), "DX_EUTF8");
  CHECK_STR(dx_strerror(12345), "unknown error");
}

int main(void) {
  RUN(read_into_message_buffer);
  RUN(rfc_single_unmasked_text_to_client);
  RUN(rfc_single_masked_text_to_server);
  RUN(rfc_fragmented_unmasked_text);
  RUN(rfc_ping_gets_pong_with_same_payload);
  RUN(no_auto_pong_option);
  RUN(pong_event);
  RUN(length_boundaries);
  RUN(fragments_with_interleaved_pings);
  RUN(empty_fragments_and_empty_message);
  RUN(stream_fragments_mode);
  RUN(continuation_without_start_is_1002);
  RUN(new_message_during_fragmented_is_1002);
  RUN(framing_violations);
  RUN(rsv1_allowed_only_on_first_data_frame);
  RUN(invalid_utf8_fails_fast_with_1007);
  RUN(limits_close_with_1009_at_header_time);
  RUN(announced_huge_frame_does_not_allocate_it);
  RUN(close_valid_codes_are_echoed);
  RUN(close_invalid_codes_are_1002);
  RUN(close_empty_payload_reports_1005_and_echoes_empty);
  RUN(close_initiated_locally);
  RUN(close_argument_validation);
  RUN(user_replies_to_close_with_own_code);
  RUN(send_rules);
  RUN(client_to_server_round_trip);
  RUN(byte_at_a_time_equals_whole);
  RUN(stream_mode_never_delivers_invalid_utf8);
  RUN(close_in_the_middle_of_a_fragmented_message);
  RUN(max_frame_on_continuations);
  RUN(check_send_states);
  RUN(client_byte_at_a_time_equals_whole);
  RUN(gathered_compressed_message_stays_within_its_limit);
  RUN(error_mapping);
  return test_report();
}
