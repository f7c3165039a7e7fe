/* permessage-deflate: negotiation (RFC 7692 section 7) and the codec,
 * alone and inside dx_proto (split frames, context takeover, zip bombs). */
#include <zlib.h>

#include "duplex/deflate.h"
#include "duplex/error.h"
#include "duplex/proto.h"
#include "test.h"

/* Parse an extension header value into offers. */
static size_t offers_of(const char *hdr, dx_ext_offer *o, size_t cap) {
  size_t n = 0;
  int rc = dx_ext_parse(hdr, strlen(hdr), o, &n, cap);
  if (rc) fprintf(stderr, "dx_ext_parse(%s) = %d\n", hdr, rc);
  return n;
}

static int negotiate(const char *hdr, dx_deflate_mode mode, int wbits, dx_pmd_params *pp,
                     char *resp) {
  dx_ext_offer o[8];
  size_t n = offers_of(hdr, o, 8);
  dx_deflate_opts opts = {.enable = true, .mode = mode, .window_bits = wbits};
  return dx_pmd_negotiate_server(o, n, &opts, pp, resp, 200);
}

TEST(server_accepts_plain_offer_shared_mode) {
  dx_pmd_params pp;
  char resp[200];
  CHECK_EQ_INT(negotiate("permessage-deflate", DX_DEFLATE_SHARED, 0, &pp, resp), 1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  CHECK(pp.tx_no_context_takeover && pp.rx_no_context_takeover);
  CHECK_EQ_INT(pp.tx_window_bits, 15);
}

TEST(server_chrome_offer) {
  dx_pmd_params pp;
  char resp[200];
  CHECK_EQ_INT(
      negotiate("permessage-deflate; client_max_window_bits", DX_DEFLATE_TAKEOVER, 0, &pp, resp),
      1);
  CHECK_STR(resp, "permessage-deflate");
  CHECK(!pp.tx_no_context_takeover && !pp.rx_no_context_takeover);
  CHECK_EQ_INT(pp.rx_window_bits, 15);
  /* With a smaller window configured, the client is limited too. */
  CHECK_EQ_INT(
      negotiate("permessage-deflate; client_max_window_bits", DX_DEFLATE_TAKEOVER, 10, &pp, resp),
      1);
  CHECK_STR(resp, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10");
  CHECK_EQ_INT(pp.tx_window_bits, 10);
  CHECK_EQ_INT(pp.rx_window_bits, 10);
}

TEST(server_honours_requested_parameters) {
  dx_pmd_params pp;
  char resp[200];
  CHECK_EQ_INT(
      negotiate("permessage-deflate; server_no_context_takeover; server_max_window_bits=11;"
                " client_max_window_bits=12",
                DX_DEFLATE_TAKEOVER, 0, &pp, resp),
      1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=11; "
                  "client_max_window_bits=12");
  CHECK(pp.tx_no_context_takeover);
  CHECK(!pp.rx_no_context_takeover);
  CHECK_EQ_INT(pp.tx_window_bits, 11);
  CHECK_EQ_INT(pp.rx_window_bits, 12);
  CHECK_EQ_INT(negotiate("permessage-deflate; client_no_context_takeover", DX_DEFLATE_TAKEOVER, 0,
                         &pp, resp),
               1);
  CHECK_STR(resp, "permessage-deflate; client_no_context_takeover");
  CHECK(pp.rx_no_context_takeover && !pp.tx_no_context_takeover);
}

TEST(server_declines_bad_offers_and_takes_the_next) {
  static const char *bad[] = {
      "permessage-deflate; server_max_window_bits",       /* value required */
      "permessage-deflate; server_max_window_bits=16",    /* out of range */
      "permessage-deflate; server_max_window_bits=7",     /* out of range */
      "permessage-deflate; server_max_window_bits=010",   /* leading zero */
      "permessage-deflate; client_max_window_bits=abc",   /* not a number */
      "permessage-deflate; server_no_context_takeover=1", /* takes no value */
      "permessage-deflate; client_no_context_takeover; client_no_context_takeover", /* dup */
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",   /* dup */
      "permessage-deflate; mystery",                                                /* unknown */
      "x-webkit-deflate-frame", /* another extension */
  };
  dx_pmd_params pp;
  char resp[200];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = negotiate(bad[i], DX_DEFLATE_SHARED, 0, &pp, resp);
    if (rc != 0) fprintf(stderr, "  accepted: %s\n", bad[i]);
    CHECK_EQ_INT(rc, 0);
    /* Followed by a good offer, the good one is taken. */
    char both[300];
    snprintf(both, sizeof both, "%s, permessage-deflate; client_max_window_bits=9", bad[i]);
    CHECK_EQ_INT(negotiate(both, DX_DEFLATE_TAKEOVER, 0, &pp, resp), 1);
    CHECK_EQ_INT(pp.rx_window_bits, 9);
  }
}

TEST(server_response_needs_room) {
  dx_pmd_params pp;
  dx_ext_offer o[2];
  size_t n = offers_of("permessage-deflate", o, 2);
  dx_deflate_opts opts = {.enable = true};
  char small[10];
  CHECK_EQ_INT(dx_pmd_negotiate_server(o, n, &opts, &pp, small, sizeof small), DX_ENOSPC);
}

static int client_accept(const char *hdr, dx_deflate_mode mode, dx_pmd_params *pp) {
  dx_ext_offer o[2];
  size_t n = offers_of(hdr, o, 2);
  if (n != 1) return -999;
  dx_deflate_opts opts = {.enable = true, .mode = mode};
  return dx_pmd_client_accept(&o[0], &opts, pp);
}

TEST(client_offer_and_accept) {
  char buf[300];
  dx_deflate_opts opts = {.enable = true};
  CHECK(dx_pmd_client_offer(&opts, buf, sizeof buf) > 0);
  CHECK(strstr(buf, "client_max_window_bits") != NULL);
  CHECK_EQ_INT(dx_pmd_client_offer(&opts, buf, 5), DX_ENOSPC);
  dx_pmd_params pp;
  CHECK_EQ_INT(client_accept("permessage-deflate", DX_DEFLATE_TAKEOVER, &pp), 0);
  CHECK(!pp.rx_no_context_takeover);
  CHECK_EQ_INT(client_accept("permessage-deflate; server_no_context_takeover; "
                             "client_no_context_takeover; server_max_window_bits=10; "
                             "client_max_window_bits=11",
                             DX_DEFLATE_TAKEOVER, &pp),
               0);
  CHECK(pp.rx_no_context_takeover && pp.tx_no_context_takeover);
  CHECK_EQ_INT(pp.rx_window_bits, 10);
  CHECK_EQ_INT(pp.tx_window_bits, 11);
  /* Refused: duplicates, unknown parameters, bad values, a value-less
   * client_max_window_bits in a response. */
  CHECK_EQ_INT(client_accept("permessage-deflate; server_no_context_takeover; "
                             "server_no_context_takeover",
                             DX_DEFLATE_SHARED, &pp),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(client_accept("permessage-deflate; foo=1", DX_DEFLATE_SHARED, &pp),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(
      client_accept("permessage-deflate; server_max_window_bits=99", DX_DEFLATE_SHARED, &pp),
      DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(client_accept("permessage-deflate; client_max_window_bits", DX_DEFLATE_SHARED, &pp),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(client_accept("other-extension", DX_DEFLATE_SHARED, &pp), DX_EWS_EXTENSIONS);
}

/* ---- codec ---- */

typedef struct {
  uint8_t buf[1 << 20];
  size_t len;
  size_t limit;
} sinkbuf;

static int sink(void *arg, const uint8_t *out, size_t n) {
  sinkbuf *s = arg;
  if (s->len + n > s->limit) return DX_EMESSAGE_TOO_BIG;
  memcpy(s->buf + s->len, out, n);
  s->len += n;
  return 0;
}

static void fill_text(uint8_t *p, size_t n, unsigned seed) {
  static const char *words[] = {"alpha ", "beta ", "gamma ", "delta ", "epsilon "};
  size_t i = 0;
  while (i < n) {
    const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 3];
    for (size_t k = 0; w[k] && i < n; k++) p[i++] = (uint8_t)w[k];
  }
}

static void round_trip(dx_pmd_params tx, dx_pmd_params rx) {
  static sinkbuf out;
  dx_pmd_shared *s1 = dx_pmd_shared_new(), *s2 = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true, .threshold = 1};
  dx_pmd *a = dx_pmd_new(&tx, &o, s1), *b = dx_pmd_new(&rx, &o, s2);
  CHECK(a && b);
  static uint8_t msg[100000];
  size_t sizes[] = {1, 10, 1000, 100000, 0, 5000};
  size_t prev_len = 0;
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      fill_text(msg, sizes[i], (unsigned)i);
      const uint8_t *z;
      size_t zlen;
      CHECK_EQ_INT(dx_pmd_deflate(a, msg, sizes[i], &z, &zlen), 0);
      if (sizes[i] == 1000 && round == 1 && !tx.tx_no_context_takeover)
        CHECK(zlen < prev_len); /* context takeover: the repeat is cheaper */
      if (sizes[i] == 1000 && round == 0) prev_len = zlen;
      out.len = 0;
      out.limit = sizeof out.buf;
      /* Inflate in two pieces to exercise streaming. */
      size_t half = zlen / 2;
      if (dx_pmd_rx_streaming(b)) {
        CHECK_EQ_INT(dx_pmd_inflate(b, z, half, false, sink, &out), 0);
        CHECK_EQ_INT(dx_pmd_inflate(b, z + half, zlen - half, true, sink, &out), 0);
      } else {
        CHECK_EQ_INT(dx_pmd_inflate(b, z, zlen, true, sink, &out), 0);
      }
      CHECK_EQ_INT(out.len, sizes[i]);
      CHECK_MEM(out.buf, msg, sizes[i]);
    }
  }
  dx_pmd_free(a);
  dx_pmd_free(b);
  dx_pmd_shared_free(s1);
  dx_pmd_shared_free(s2);
}

TEST(codec_round_trips_in_every_mode) {
  dx_pmd_params shared = {true, true, 15, 15}, takeover = {false, false, 15, 15};
  dx_pmd_params small = {false, false, 9, 9};
  round_trip(shared, shared);
  round_trip(takeover, takeover);
  round_trip(small, small);
  /* Sender without takeover, receiver keeping context: still fine. */
  dx_pmd_params tx = {true, false, 15, 15}, rx = {false, true, 15, 15};
  round_trip(tx, rx);
}

TEST(codec_memory_accounting) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true};
  dx_pmd_params shared = {true, true, 15, 15}, takeover = {false, false, 15, 15};
  dx_pmd *a = dx_pmd_new(&shared, &o, s), *b = dx_pmd_new(&takeover, &o, s);
  CHECK_EQ_INT(dx_pmd_memory(a), 0);
  CHECK(dx_pmd_memory(b) > 200000);
  CHECK(!dx_pmd_rx_streaming(a));
  CHECK(dx_pmd_rx_streaming(b));
  dx_pmd_free(a);
  dx_pmd_free(b);
  dx_pmd_shared_free(s);
}

TEST(codec_rejects_garbage) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true};
  dx_pmd_params p = {true, true, 15, 15};
  dx_pmd *d = dx_pmd_new(&p, &o, s);
  static sinkbuf out;
  out.len = 0;
  out.limit = sizeof out.buf;
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x12};
  CHECK_EQ_INT(dx_pmd_inflate(d, junk, sizeof junk, true, sink, &out), DX_EDEFLATE);
  /* The shared stream recovers for the next message. */
  const uint8_t *z;
  size_t zlen;
  CHECK_EQ_INT(dx_pmd_deflate(d, (const uint8_t *)"hello", 5, &z, &zlen), 0);
  out.len = 0;
  CHECK_EQ_INT(dx_pmd_inflate(d, z, zlen, true, sink, &out), 0);
  CHECK_EQ_INT(out.len, 5);
  dx_pmd_free(d);
  dx_pmd_shared_free(s);
}

/* ---- inside dx_proto ---- */

typedef struct {
  int events, opcode;
  size_t len;
  uint8_t first[64];
  uint8_t out[1 << 16];
  size_t out_len;
} rec;

static void on_event(void *user, const dx_event *e) {
  rec *r = user;
  r->events++;
  r->opcode = e->type == DX_EV_MESSAGE ? e->opcode : -e->type;
  r->len = e->len;
  memcpy(r->first, e->data, e->len < 64 ? e->len : 64);
}

static int on_output(void *user, const dx_output *o) {
  rec *r = user;
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

static void key(void *user, uint8_t k[4]) { memcpy(k, "\x11\x22\x33\x44", 4); }

/* Compress `msg` raw (zlib, sync flush, tail removed) for hand-made frames. */
static size_t compress_raw(const uint8_t *msg, size_t n, uint8_t *out, size_t cap) {
  z_stream z = {0};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)msg;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_SYNC_FLUSH);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len - 4;
}

static size_t frame(uint8_t *out, int fin, int rsv1, int op, const uint8_t *p, size_t n) {
  size_t h = 0;
  out[h++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op);
  if (n < 126) {
    out[h++] = (uint8_t)(0x80 | n);
  } else {
    out[h++] = 0x80 | 126;
    out[h++] = (uint8_t)(n >> 8);
    out[h++] = (uint8_t)n;
  }
  memcpy(out + h, "\x11\x22\x33\x44", 4);
  h += 4;
  for (size_t i = 0; i < n; i++) out[h + i] = p[i] ^ (uint8_t)("\x11\x22\x33\x44"[i & 3]);
  return h + n;
}

static dx_proto *server_with_pmd(rec *r, dx_pmd **pmd, dx_pmd_shared *s, bool takeover,
                                 size_t max_message) {
  memset(r, 0, sizeof *r);
  static const dx_proto_callbacks cb = {on_event, on_output, key};
  dx_proto_opts po = {.max_message = max_message};
  dx_proto *p = malloc(dx_proto_size());
  dx_proto_init(p, DX_ROLE_SERVER, &po, &cb, r);
  dx_pmd_params pp = {!takeover, !takeover, 15, 15};
  dx_deflate_opts o = {.enable = true, .threshold = 16};
  *pmd = dx_pmd_new(&pp, &o, s);
  dx_proto_set_deflate(p, *pmd);
  return p;
}

/* Undo server_with_pmd (and the shared state it was given). */
static void free_server(dx_proto *p, dx_pmd *pmd, dx_pmd_shared *s) {
  dx_proto_free(p);
  free(p);
  dx_pmd_free(pmd);
  dx_pmd_shared_free(s);
}

TEST(proto_inflates_split_compressed_message) {
  for (int takeover = 0; takeover < 2; takeover++) {
    dx_pmd_shared *s = dx_pmd_shared_new();
    rec r;
    dx_pmd *pmd;
    dx_proto *p = server_with_pmd(&r, &pmd, s, takeover, 0);
    static uint8_t msg[5000], z[6000], f[7000];
    fill_text(msg, sizeof msg, 7);
    size_t zl = compress_raw(msg, sizeof msg, z, sizeof z);
    /* Three frames: RSV1 only on the first; fed one byte at a time. */
    size_t a = zl / 3, b = 2 * zl / 3, n = 0;
    n += frame(f + n, 0, 1, DX_OP_TEXT, z, a);
    n += frame(f + n, 0, 0, DX_OP_CONT, z + a, b - a);
    n += frame(f + n, 1, 0, DX_OP_CONT, z + b, zl - b);
    for (size_t i = 0; i < n; i++) CHECK_EQ_INT(dx_proto_feed(p, f + i, 1), 0);
    CHECK_EQ_INT(r.events, 1);
    CHECK_EQ_INT(r.opcode, DX_OP_TEXT);
    CHECK_EQ_INT(r.len, sizeof msg);
    CHECK_MEM(r.first, msg, 64);
    free_server(p, pmd, s);
  }
}

/* A compressed message's wire bytes are counted from zero at each new
 * message (they live in the pmd, pmd_rx.h): two fragmented messages that
 * each fit the limit are both delivered, though together they pass it. */
TEST(proto_counts_compressed_bytes_per_message) {
  for (int takeover = 0; takeover < 2; takeover++) {
    dx_pmd_shared *s = dx_pmd_shared_new();
    rec r;
    dx_pmd *pmd;
    dx_proto *p = server_with_pmd(&r, &pmd, s, takeover, 8192);
    static uint8_t msg[8000], z[9000], f[9100];
    unsigned seed = 99; /* incompressible: about 8,000 compressed bytes */
    for (size_t i = 0; i < sizeof msg; i++)
      msg[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 16);
    size_t zl = compress_raw(msg, sizeof msg, z, sizeof z);
    CHECK(zl > 8192 + 8192 / 8 + 4096 - zl); /* two are past the compressed limit */
    for (int m = 1; m <= 2; m++) {
      size_t n = frame(f, 0, 1, DX_OP_BINARY, z, zl / 2);
      n += frame(f + n, 1, 0, DX_OP_CONT, z + zl / 2, zl - zl / 2);
      CHECK_EQ_INT(dx_proto_feed(p, f, n), 0);
      CHECK_EQ_INT(r.events, m);
      CHECK_EQ_INT(r.len, sizeof msg);
      CHECK_MEM(r.first, msg, 64);
    }
    free_server(p, pmd, s);
  }
}

TEST(proto_zip_bomb_closes_1009) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  rec r;
  dx_pmd *pmd;
  dx_proto *p = server_with_pmd(&r, &pmd, s, false, 1 << 20);
  /* 64 MiB of zeros compresses to ~64 KiB; a 1 MiB limit must stop it
   * without inflating everything. */
  size_t big = 64u << 20;
  uint8_t *zeros = calloc(1, big);
  static uint8_t z[200000];
  size_t zl = compress_raw(zeros, big, z, sizeof z);
  free(zeros);
  CHECK(zl < 100000);
  uint8_t *f = malloc(zl + 14);
  size_t n = 0;
  f[n++] = 0xc2; /* FIN, RSV1, binary */
  if (zl < 65536) {
    f[n++] = 0x80 | 126;
    f[n++] = (uint8_t)(zl >> 8);
    f[n++] = (uint8_t)zl;
  } else {
    f[n++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) f[n++] = (uint8_t)((uint64_t)zl >> (8 * i));
  }
  memcpy(f + n, "\x11\x22\x33\x44", 4);
  n += 4;
  for (size_t i = 0; i < zl; i++) f[n + i] = z[i] ^ (uint8_t)("\x11\x22\x33\x44"[i & 3]);
  n += zl;
  CHECK_EQ_INT(dx_proto_feed(p, f, n), DX_EMESSAGE_TOO_BIG);
  CHECK_EQ_INT(r.events, 0);
  /* The close frame says 1009. */
  CHECK_EQ_INT(r.out[0], 0x88);
  CHECK_EQ_INT(r.out[2] << 8 | r.out[3], 1009);
  free(f);
  free_server(p, pmd, s);
}

TEST(proto_invalid_utf8_inside_compressed_text_is_1007) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  rec r;
  dx_pmd *pmd;
  dx_proto *p = server_with_pmd(&r, &pmd, s, true, 0);
  const uint8_t bad[] = "valid text then \xed\xa0\x80 a surrogate";
  uint8_t z[200], f[300];
  size_t zl = compress_raw(bad, sizeof bad - 1, z, sizeof z);
  size_t n = frame(f, 1, 1, DX_OP_TEXT, z, zl);
  CHECK_EQ_INT(dx_proto_feed(p, f, n), DX_EUTF8);
  CHECK_EQ_INT(r.out[2] << 8 | r.out[3], 1007);
  free_server(p, pmd, s);
}

/* Which error comes first must not depend on read sizes: the inflater
 * hands over output in pieces that follow the input, so a piece may cross
 * the message limit with bad UTF-8 before it (found by fuzz_proto). */
TEST(proto_first_error_in_inflated_stream_wins_whatever_the_reads) {
  static uint8_t bad[600], good[600], z[1200], f[1300];
  fill_text(bad, sizeof bad, 3);
  fill_text(good, sizeof good, 3);
  bad[100] = 0xff; /* invalid at offset 100, limit at 300 */
  const struct {
    const uint8_t *msg;
    int want;
    unsigned code;
  } cases[] = {{bad, DX_EUTF8, 1007}, {good, DX_EMESSAGE_TOO_BIG, 1009}};
  for (size_t c = 0; c < 2; c++) {
    size_t zl = compress_raw(cases[c].msg, 600, z, sizeof z);
    size_t n = frame(f, 1, 1, DX_OP_TEXT, z, zl);
    for (int takeover = 0; takeover < 2; takeover++) {
      for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
        dx_pmd_shared *s = dx_pmd_shared_new();
        rec r;
        dx_pmd *pmd;
        dx_proto *p = server_with_pmd(&r, &pmd, s, takeover, 300);
        static uint8_t copy[1300];
        memcpy(copy, f, n);
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i += step)
          rc = dx_proto_feed(p, copy + i, n - i < step ? n - i : step);
        CHECK_EQ_INT(rc, cases[c].want);
        CHECK_EQ_INT(r.out[2] << 8 | r.out[3], cases[c].code);
        free_server(p, pmd, s);
      }
    }
  }
}

TEST(proto_corrupt_compressed_data_is_1007) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  rec r;
  dx_pmd *pmd;
  dx_proto *p = server_with_pmd(&r, &pmd, s, false, 0);
  const uint8_t junk[] = {0xff, 0xfe, 0xfd, 0xfc, 0xfb};
  uint8_t f[64];
  size_t n = frame(f, 1, 1, DX_OP_BINARY, junk, sizeof junk);
  CHECK_EQ_INT(dx_proto_feed(p, f, n), DX_EDEFLATE);
  CHECK_EQ_INT(r.out[2] << 8 | r.out[3], 1007);
  free_server(p, pmd, s);
}

TEST(proto_sends_compressed_above_threshold_only) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  rec r;
  dx_pmd *pmd;
  dx_proto *p = server_with_pmd(&r, &pmd, s, false, 0);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_TEXT, "tiny", 4), 0);
  CHECK_EQ_INT(r.out[0], 0x81); /* no RSV1 below the threshold */
  r.out_len = 0;
  static uint8_t msg[4000];
  fill_text(msg, sizeof msg, 3);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_TEXT, msg, sizeof msg), 0);
  CHECK_EQ_INT(r.out[0], 0xc1); /* FIN + RSV1 + text */
  CHECK(r.out_len < 1000);      /* it did compress */
  /* Control frames are never compressed. */
  r.out_len = 0;
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_PING, msg, 100), 0);
  CHECK_EQ_INT(r.out[0], 0x89);
  free_server(p, pmd, s);
}

/* A zlib peer asked for an 8-bit window compresses with 9 bits (zlib
 * cannot do 8): we must still inflate its messages. */
TEST(inflates_a_zlib_peer_that_negotiated_8_bits) {
  dx_pmd_params pp;
  CHECK_EQ_INT(
      client_accept("permessage-deflate; server_max_window_bits=8", DX_DEFLATE_TAKEOVER, &pp), 0);
  CHECK_EQ_INT(pp.rx_window_bits, 8);
  dx_pmd_shared *s = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true};
  dx_pmd *d = dx_pmd_new(&pp, &o, s);
  static uint8_t msg[40000], z[65536];
  /* Repeats 400 bytes apart, longer than one 16 KiB inflate output step:
   * only a window above 256 bytes decodes them. */
  unsigned seed = 7;
  for (size_t i = 0; i < 400; i++) msg[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 16);
  for (size_t i = 400; i < sizeof msg; i++) msg[i] = msg[i - 400];
  z_stream zs = {0};
  /* What such a peer does: zlib refuses raw 8, so it compresses with 9. */
  CHECK_EQ_INT(deflateInit2(&zs, 9, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
  zs.next_in = msg;
  zs.avail_in = sizeof msg;
  zs.next_out = z;
  zs.avail_out = sizeof z;
  deflate(&zs, Z_SYNC_FLUSH);
  CHECK_EQ_INT(zs.avail_in, 0);
  size_t zl = sizeof z - zs.avail_out - 4;
  deflateEnd(&zs);
  static sinkbuf out;
  out.len = 0;
  out.limit = sizeof out.buf;
  CHECK_EQ_INT(dx_pmd_inflate(d, z, zl, true, sink, &out), 0);
  CHECK_EQ_INT(out.len, sizeof msg);
  dx_pmd_free(d);
  dx_pmd_shared_free(s);
}

/* A raw inflater limited to `bits` (what a peer that asked for that window
 * may use): inflate z (tail appended) and compare with msg. */
static bool inflates_with_window(int bits, const uint8_t *z, size_t zl, const uint8_t *msg,
                                 size_t n) {
  static uint8_t in[1 << 17], out[1 << 17];
  if (zl + 4 > sizeof in || n > sizeof out) return false;
  memcpy(in, z, zl);
  memcpy(in + zl, "\x00\x00\xff\xff", 4);
  z_stream zs = {0};
  if (inflateInit2(&zs, -bits) != Z_OK) return false;
  zs.next_in = in;
  zs.avail_in = (uInt)(zl + 4);
  zs.next_out = out;
  /* Out in 64-byte steps: zlib lets a match reach back anywhere in the
   * current output buffer, so only small steps hold it to its window. */
  int rc = Z_OK;
  zs.avail_out = 0;
  while (rc == Z_OK && (zs.avail_in || !zs.avail_out) && (size_t)(zs.next_out - out) < n) {
    zs.avail_out = 64;
    rc = inflate(&zs, Z_SYNC_FLUSH);
  }
  size_t got = (size_t)(zs.next_out - out);
  inflateEnd(&zs);
  return rc != Z_DATA_ERROR && got == n && memcmp(out, msg, n) == 0;
}

/* Repeats `dist` bytes apart: only a window larger than dist finds them. */
static void fill_repeats(uint8_t *p, size_t n, size_t dist, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] =
        i < dist ? (uint8_t)('a' + ((seed = seed * 1103515245 + 12345) >> 16) % 26) : p[i - dist];
}

/* Shared mode must stay shared whatever window the client asks for: a
 * client offering server_max_window_bits < 15 gets the thread's compressor
 * for that window size, not a private ~130 KiB one. */
TEST(shared_mode_small_server_window_uses_a_shared_compressor) {
  dx_pmd_params p9, p15, p12;
  char resp[200];
  CHECK_EQ_INT(
      negotiate("permessage-deflate; server_max_window_bits=9", DX_DEFLATE_SHARED, 0, &p9, resp),
      1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  "server_max_window_bits=9");
  CHECK_EQ_INT(p9.tx_window_bits, 9);
  CHECK_EQ_INT(negotiate("permessage-deflate", DX_DEFLATE_SHARED, 0, &p15, resp), 1);
  CHECK_EQ_INT(
      negotiate("permessage-deflate; server_max_window_bits=12", DX_DEFLATE_SHARED, 0, &p12, resp),
      1);
  dx_pmd_shared *s = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true};
  dx_pmd *a = dx_pmd_new(&p9, &o, s), *b = dx_pmd_new(&p9, &o, s), *c = dx_pmd_new(&p15, &o, s),
         *d = dx_pmd_new(&p12, &o, s);
  CHECK(a && b && c && d);
  CHECK_EQ_INT(dx_pmd_memory(a), 0);
  CHECK_EQ_INT(dx_pmd_memory(b), 0);
  CHECK_EQ_INT(dx_pmd_memory(c), 0);
  CHECK_EQ_INT(dx_pmd_memory(d), 0);
  CHECK(dx_pmd_tx_shared(c));
  CHECK(!dx_pmd_tx_shared(a)); /* not the full-window copy broadcast shares */
  CHECK_EQ_INT(dx_pmd_tx_shared_window(a), 9);
  CHECK_EQ_INT(dx_pmd_tx_shared_window(c), 15);
  CHECK_EQ_INT(dx_pmd_tx_shared_window(d), 12);
  static uint8_t msg[20000], first[20000];
  /* Repeats 1000 bytes apart: a 15-bit compressor would reach back past
   * what a 9-bit (512-byte) inflater holds. */
  fill_repeats(msg, sizeof msg, 1000, 3);
  dx_pmd *order[] = {a, c, d, b, c, a, d, b};
  size_t first_len = 0;
  for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
    const uint8_t *z;
    size_t zl;
    CHECK_EQ_INT(dx_pmd_deflate(order[i], msg, sizeof msg, &z, &zl), 0);
    int bits = dx_pmd_tx_shared_window(order[i]);
    CHECK(inflates_with_window(bits, z, zl, msg, sizeof msg));
    if (bits == 9) {
      /* Same parameters, same bytes: broadcast can share them. */
      if (!first_len) {
        memcpy(first, z, zl);
        first_len = zl;
      } else {
        CHECK_EQ_INT(zl, first_len);
        CHECK_MEM(z, first, zl);
      }
    }
    if (bits == 15) CHECK(!inflates_with_window(9, z, zl, msg, sizeof msg)); /* the test bites */
  }
  /* The peer's messages still inflate through the shared decompressor. */
  static sinkbuf out;
  const uint8_t *z;
  size_t zl;
  CHECK_EQ_INT(dx_pmd_deflate(a, msg, sizeof msg, &z, &zl), 0);
  out.len = 0;
  out.limit = sizeof out.buf;
  CHECK_EQ_INT(dx_pmd_inflate(b, z, zl, true, sink, &out), 0);
  CHECK_EQ_INT(out.len, sizeof msg);
  dx_pmd_free(a);
  dx_pmd_free(b);
  dx_pmd_free(c);
  dx_pmd_free(d);
  dx_pmd_shared_free(s);
}

static int client_accept_opts(const char *hdr, const dx_deflate_opts *opts, dx_pmd_params *pp) {
  dx_ext_offer o[2];
  size_t n = offers_of(hdr, o, 2);
  if (n != 1) return -999;
  return dx_pmd_client_accept(&o[0], opts, pp);
}

/* RFC 7692 allows 8-bit windows; zlib cannot compress with one. Agreed,
 * and then we send uncompressed while still inflating the peer's. */
TEST(window_bits_8_is_agreed_and_we_send_uncompressed) {
  dx_pmd_params pp;
  char resp[200];
  /* Server, client asks for server_max_window_bits=8: both modes. */
  CHECK_EQ_INT(
      negotiate("permessage-deflate; server_max_window_bits=8", DX_DEFLATE_SHARED, 0, &pp, resp),
      1);
  CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  "server_max_window_bits=8");
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  CHECK_EQ_INT(negotiate("permessage-deflate; server_max_window_bits=8; client_max_window_bits",
                         DX_DEFLATE_TAKEOVER, 0, &pp, resp),
               1);
  CHECK_STR(resp, "permessage-deflate; server_max_window_bits=8");
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  CHECK_EQ_INT(pp.rx_window_bits, 15);
  /* Server configured with window_bits 8 (takeover): the client is
   * limited to 8 too, and we say we use 8. */
  CHECK_EQ_INT(
      negotiate("permessage-deflate; client_max_window_bits", DX_DEFLATE_TAKEOVER, 8, &pp, resp),
      1);
  CHECK_STR(resp, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8");
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  CHECK_EQ_INT(pp.rx_window_bits, 8);
  /* Such a connection holds no compressor, only its inflater. */
  dx_pmd_shared *s = dx_pmd_shared_new();
  dx_deflate_opts o = {.enable = true, .threshold = 16};
  dx_pmd *d = dx_pmd_new(&pp, &o, s);
  CHECK(d != NULL);
  CHECK_EQ_INT(dx_pmd_memory(d), (1 << 9) + 7160);
  CHECK(!dx_pmd_worth_it(d, 4000));
  CHECK(!dx_pmd_tx_shared(d));
  CHECK_EQ_INT(dx_pmd_tx_shared_window(d), 0);
  const uint8_t *z;
  size_t zl;
  CHECK_EQ_INT(dx_pmd_deflate(d, (const uint8_t *)"hello hello hello", 17, &z, &zl), DX_EINVAL);
  dx_pmd_free(d);

  /* Client: offers 8 with window_bits 8, accepts 8 in the response. */
  dx_deflate_opts c8 = {.enable = true, .mode = DX_DEFLATE_TAKEOVER, .window_bits = 8};
  char buf[300];
  CHECK(dx_pmd_client_offer(&c8, buf, sizeof buf) > 0);
  CHECK_STR(buf, "permessage-deflate; client_max_window_bits=8");
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=8", &c8, &pp), 0);
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=9", &c8, &pp),
               DX_EWS_EXTENSIONS); /* more than offered */
  CHECK_EQ_INT(client_accept_opts("permessage-deflate", &c8, &pp), 0);
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  /* A default client told client_max_window_bits=8 by the server. */
  dx_deflate_opts def = {.enable = true};
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; server_no_context_takeover; "
                                  "client_no_context_takeover; client_max_window_bits=8",
                                  &def, &pp),
               0);
  CHECK_EQ_INT(pp.tx_window_bits, 8);
  d = dx_pmd_new(&pp, &def, s);
  CHECK(d != NULL);
  CHECK_EQ_INT(dx_pmd_memory(d), 0);
  CHECK(!dx_pmd_worth_it(d, 100000));
  dx_pmd_free(d);
  dx_pmd_shared_free(s);
}

/* Client offers with a window value and refuses a larger one back. */
TEST(client_offer_with_window_bits_refuses_larger) {
  dx_deflate_opts c10 = {.enable = true, .mode = DX_DEFLATE_TAKEOVER, .window_bits = 10};
  char buf[300];
  CHECK(dx_pmd_client_offer(&c10, buf, sizeof buf) > 0);
  CHECK_STR(buf, "permessage-deflate; client_max_window_bits=10");
  dx_pmd_params pp;
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=10", &c10, &pp), 0);
  CHECK_EQ_INT(pp.tx_window_bits, 10);
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=9", &c10, &pp), 0);
  CHECK_EQ_INT(pp.tx_window_bits, 9);
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=11", &c10, &pp),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(client_accept_opts("permessage-deflate; client_max_window_bits=15", &c10, &pp),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(client_accept_opts("permessage-deflate", &c10, &pp), 0);
  CHECK_EQ_INT(pp.tx_window_bits, 10);
}

/* In dx_proto: an 8-bit connection sends RSV1-clear frames and inflates. */
TEST(proto_with_8_bit_window_sends_plain_and_inflates) {
  dx_pmd_shared *s = dx_pmd_shared_new();
  rec r;
  memset(&r, 0, sizeof r);
  static const dx_proto_callbacks cb = {on_event, on_output, key};
  dx_proto_opts po = {0};
  dx_proto *p = malloc(dx_proto_size());
  dx_proto_init(p, DX_ROLE_SERVER, &po, &cb, &r);
  dx_pmd_params pp = {true, true, 8, 15};
  dx_deflate_opts o = {.enable = true, .threshold = 16};
  dx_pmd *pmd = dx_pmd_new(&pp, &o, s);
  dx_proto_set_deflate(p, pmd);
  static uint8_t msg[4000], z[5000], f[6000];
  fill_text(msg, sizeof msg, 5);
  CHECK_EQ_INT(dx_proto_send(p, DX_OP_TEXT, msg, sizeof msg), 0);
  CHECK_EQ_INT(r.out[0], 0x81); /* FIN + text, RSV1 clear */
  CHECK_EQ_INT(r.out_len, 4 + sizeof msg);
  size_t zl = compress_raw(msg, sizeof msg, z, sizeof z);
  size_t n = frame(f, 1, 1, DX_OP_TEXT, z, zl);
  CHECK_EQ_INT(dx_proto_feed(p, f, n), 0);
  CHECK_EQ_INT(r.events, 1);
  CHECK_EQ_INT(r.len, sizeof msg);
  CHECK_MEM(r.first, msg, 64);
  free_server(p, pmd, s);
}

int main(void) {
  RUN(server_accepts_plain_offer_shared_mode);
  RUN(server_chrome_offer);
  RUN(server_honours_requested_parameters);
  RUN(server_declines_bad_offers_and_takes_the_next);
  RUN(server_response_needs_room);
  RUN(client_offer_and_accept);
  RUN(codec_round_trips_in_every_mode);
  RUN(codec_memory_accounting);
  RUN(codec_rejects_garbage);
  RUN(proto_inflates_split_compressed_message);
  RUN(proto_counts_compressed_bytes_per_message);
  RUN(proto_zip_bomb_closes_1009);
  RUN(proto_invalid_utf8_inside_compressed_text_is_1007);
  RUN(proto_first_error_in_inflated_stream_wins_whatever_the_reads);
  RUN(proto_corrupt_compressed_data_is_1007);
  RUN(proto_sends_compressed_above_threshold_only);
  RUN(inflates_a_zlib_peer_that_negotiated_8_bits);
  RUN(shared_mode_small_server_window_uses_a_shared_compressor);
  RUN(window_bits_8_is_agreed_and_we_send_uncompressed);
  RUN(client_offer_with_window_bits_refuses_larger);
  RUN(proto_with_8_bit_window_sends_plain_and_inflates);
  return test_report();
}
