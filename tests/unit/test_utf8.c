/* Tests for the streaming UTF-8 validator (src/proto/utf8.c).
 *
 * Every verdict is compared with a reference written in a different way: a
 * plain decoder that builds each code point and range-checks it, and, for
 * the fail-fast position, a check that the set of code points a partial
 * sequence could still complete to is not empty. All input is placed right
 * before an unreadable page, so the vectorised ASCII scan cannot over-read.
 */
#include "duplex/error.h"
#include "duplex/utf8.h"

#include "fuzz/utf8_ref.h"
#include "unit/test.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- reference ---------------------------------------------------------- */

/* Is some valid code point of an encoding with minimum `min` in [lo, hi]? */
static bool ref_reachable(uint32_t lo, uint32_t hi, uint32_t min) {
  if (lo < min) lo = min;
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo > hi) return false;
  return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Index of the first byte after which p[0..] can no longer be the prefix of
 * a valid string, or -1 if there is none. */
static long ref_first_bad(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned b = p[i];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) {
      i++;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return (long)i;
    }
    for (size_t k = 0; k < len; k++) {
      if (k > 0) {
        if (i + k >= n) return -1;
        if ((p[i + k] & 0xC0) != 0x80) return (long)(i + k);
        cp = cp << 6 | (p[i + k] & 0x3F);
      }
      unsigned rest = 6 * (unsigned)(len - 1 - k);
      uint32_t lo = cp << rest, hi = lo | ((1u << rest) - 1);
      if (!ref_reachable(lo, hi, min)) return (long)(i + k);
    }
    i += len;
  }
  return -1;
}

/* ---- guarded input -------------------------------------------------------- */

/* Three regions that each end at a PROT_NONE page; a piece of length k is
 * fed from end - k. Made once with guarded_copy() and kept for the run. */
#define REGION 8192
static uint8_t *region_end[3];

static void regions_init(void) {
  static uint8_t zero[REGION];
  for (int r = 0; r < 3; r++) region_end[r] = (uint8_t *)guarded_copy(zero, REGION) + REGION;
}

static const uint8_t *place(int r, const uint8_t *p, size_t n) {
  uint8_t *dst = region_end[r] - n;
  if (n) memmove(dst, p, n);
  return dst;
}

/* Feed p[0..n) in pieces cut at cuts[0..ncuts) (ascending). Returns the
 * index of the first call that failed (-1 if none) and sets *complete. */
static int feed_pieces(const uint8_t *p, size_t n, const size_t *cuts, int ncuts, bool *complete) {
  dx_utf8 v;
  dx_utf8_init(&v);
  int failed_at = -1;
  size_t start = 0;
  for (int k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] : n;
    const uint8_t *q = place(k % 3, p + start, end - start);
    int rc = dx_utf8_feed(&v, q, end - start);
    if (rc != 0 && rc != DX_EUTF8) failed_at = -2; /* wrong code: never matches */
    if (rc == DX_EUTF8 && failed_at == -1) failed_at = k;
    if (failed_at >= 0 && rc != DX_EUTF8) failed_at = -3; /* not sticky */
    start = end;
  }
  *complete = dx_utf8_complete(&v);
  return failed_at;
}

/* Which piece holds byte `bad` given the cuts. */
static int piece_of(long bad, const size_t *cuts, int ncuts) {
  if (bad < 0) return -1;
  int k = 0;
  while (k < ncuts && (size_t)bad >= cuts[k]) k++;
  return k;
}

static int cases_checked;

/* Check one input whole, one byte at a time, and in every split into 2 and
 * 3 pieces (empty pieces included). */
static void check_case_depth(const uint8_t *p, size_t n, bool splits) {
  bool exp_valid = ref_valid(p, n);
  long bad = ref_first_bad(p, n);
  cases_checked++;

  /* The two references must agree: valid iff never bad and ends complete. */
  if (exp_valid) CHECK_EQ_INT(bad, -1);
  if (bad >= 0) CHECK(!exp_valid);

  CHECK_EQ_INT(dx_utf8_valid(place(0, p, n), n), exp_valid);

  bool complete;
  int f = feed_pieces(p, n, NULL, 0, &complete);
  CHECK_EQ_INT(f, bad >= 0 ? 0 : -1);
  if (bad < 0) CHECK_EQ_INT(complete, exp_valid);

  if (!splits) return;
  for (size_t a = 0; a <= n; a++) {
    size_t c1[1] = {a};
    f = feed_pieces(p, n, c1, 1, &complete);
    CHECK_EQ_INT(f, piece_of(bad, c1, 1));
    if (bad < 0) CHECK_EQ_INT(complete, exp_valid);
    for (size_t b = a; b <= n; b++) {
      size_t c2[2] = {a, b};
      f = feed_pieces(p, n, c2, 2, &complete);
      CHECK_EQ_INT(f, piece_of(bad, c2, 2));
      if (bad < 0) CHECK_EQ_INT(complete, exp_valid);
    }
  }
  /* One byte per call: the failing call is the offending byte itself. */
  size_t cuts[64] = {0};
  if (n <= 64 && n > 0) {
    for (size_t k = 0; k + 1 < n; k++) cuts[k] = k + 1;
    f = feed_pieces(p, n, cuts, (int)n - 1, &complete);
    CHECK_EQ_INT(f, bad);
  }
}

static void check_case(const uint8_t *p, size_t n) { check_case_depth(p, n, true); }

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

/* An explicit expectation on top of the reference comparison. `bad` is the
 * index of the offending byte, or -1 for valid input. */
static void expect(const uint8_t *p, size_t n, long bad, bool valid) {
  CHECK_EQ_INT(ref_first_bad(p, n), bad);
  CHECK_EQ_INT(ref_valid(p, n), valid);
  CHECK_EQ_INT(dx_utf8_valid(place(0, p, n), n), valid);
  check_case(p, n);
}

#define VALID(...) expect(BYTES(__VA_ARGS__), -1, true)
#define TRUNCATED(...) expect(BYTES(__VA_ARGS__), -1, false)
#define BAD_AT(i, ...) expect(BYTES(__VA_ARGS__), (i), false)

/* ---- tests ---------------------------------------------------------------- */

TEST(valid_boundaries) {
  expect((const uint8_t *)"", 0, -1, true);
  VALID(0x00);
  VALID(0x7F);                   /* U+007F */
  VALID(0xC2, 0x80);             /* U+0080 */
  VALID(0xDF, 0xBF);             /* U+07FF */
  VALID(0xE0, 0xA0, 0x80);       /* U+0800 */
  VALID(0xED, 0x9F, 0xBF);       /* U+D7FF, last before the surrogates */
  VALID(0xEE, 0x80, 0x80);       /* U+E000, first after them */
  VALID(0xEF, 0xBF, 0xBD);       /* U+FFFD */
  VALID(0xEF, 0xBF, 0xBF);       /* U+FFFF */
  VALID(0xF0, 0x90, 0x80, 0x80); /* U+10000 */
  VALID(0xF4, 0x8F, 0xBF, 0xBF); /* U+10FFFF */
  VALID(0xF1, 0x80, 0x80, 0x80); /* U+40000 */
  VALID(0xF3, 0xBF, 0xBF, 0xBF); /* U+FFFFF */
}

TEST(noncharacters_are_valid) {
  VALID(0xEF, 0xBF, 0xBE);       /* U+FFFE */
  VALID(0xEF, 0xBF, 0xBF);       /* U+FFFF */
  VALID(0xEF, 0xB7, 0x90);       /* U+FDD0 */
  VALID(0xEF, 0xB7, 0xAF);       /* U+FDEF */
  VALID(0xF0, 0x9F, 0xBF, 0xBE); /* U+1FFFE */
  VALID(0xF4, 0x8F, 0xBF, 0xBE); /* U+10FFFE */
}

TEST(autobahn_texts) {
  /* 6.2.1: "Hello-µ@ßöäüàá-UTF-8!!" */
  const char *hello = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
  expect((const uint8_t *)hello, strlen(hello), -1, true);
  /* 6.5.1: "κόσμε" */
  VALID(0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5);
  /* 6.3.1: "κόσμε" + a surrogate + "edited" */
  BAD_AT(12, 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
         0x65, 0x64, 0x69, 0x74, 0x65, 0x64);
  /* 6.4.x: valid text, then a code point above U+10FFFF */
  BAD_AT(12, 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xF4, 0x90, 0x80,
         0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64);
  VALID('a', 0xF0, 0x9F, 0x98, 0x80, 'b'); /* emoji between ASCII */
}

TEST(overlongs) {
  BAD_AT(0, 0xC0, 0x80);                   /* NUL */
  BAD_AT(0, 0xC0, 0xAF);                   /* '/' */
  BAD_AT(0, 0xC1, 0xBF);                   /* largest 2-byte overlong */
  BAD_AT(1, 0xE0, 0x80, 0x80);             /* NUL */
  BAD_AT(1, 0xE0, 0x80, 0xAF);             /* '/' */
  BAD_AT(1, 0xE0, 0x9F, 0xBF);             /* largest 3-byte overlong */
  BAD_AT(1, 0xF0, 0x80, 0x80, 0x80);       /* NUL */
  BAD_AT(1, 0xF0, 0x80, 0x80, 0xAF);       /* '/' */
  BAD_AT(1, 0xF0, 0x8F, 0xBF, 0xBF);       /* largest 4-byte overlong */
  BAD_AT(0, 0xF8, 0x80, 0x80, 0x80, 0xAF); /* old 5-byte form */
  BAD_AT(0, 0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF);
  BAD_AT(0, 0xC0);
  BAD_AT(0, 0xC1);
}

TEST(surrogates) {
  BAD_AT(1, 0xED, 0xA0, 0x80);                   /* U+D800 */
  BAD_AT(1, 0xED, 0xAD, 0xBF);                   /* U+DB7F */
  BAD_AT(1, 0xED, 0xAE, 0x80);                   /* U+DB80 */
  BAD_AT(1, 0xED, 0xAF, 0xBF);                   /* U+DBFF */
  BAD_AT(1, 0xED, 0xB0, 0x80);                   /* U+DC00 */
  BAD_AT(1, 0xED, 0xBE, 0x80);                   /* U+DF80 */
  BAD_AT(1, 0xED, 0xBF, 0xBF);                   /* U+DFFF */
  BAD_AT(1, 0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80); /* a "valid" UTF-16 pair */
  BAD_AT(1, 0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF);
  BAD_AT(4, 'a', 'b', 'c', 0xED, 0xA0, 0x80);
  TRUNCATED(0xED); /* could still be U+D000..U+D7FF */
  TRUNCATED(0xED, 0x9F);
}

TEST(above_max) {
  BAD_AT(1, 0xF4, 0x90, 0x80, 0x80); /* U+110000 */
  BAD_AT(1, 0xF4, 0xBF, 0xBF, 0xBF);
  BAD_AT(0, 0xF5, 0x80, 0x80, 0x80);
  BAD_AT(0, 0xF7, 0xBF, 0xBF, 0xBF); /* U+1FFFFF */
  BAD_AT(0, 0xF8, 0x88, 0x80, 0x80, 0x80);
  BAD_AT(0, 0xFC, 0x84, 0x80, 0x80, 0x80, 0x80);
  BAD_AT(0, 0xFE);
  BAD_AT(0, 0xFF);
  BAD_AT(0, 0xFE, 0xFE, 0xFF, 0xFF);
  BAD_AT(3, 'a', 'b', 'c', 0xFF, 'd');
}

TEST(stray_continuations) {
  BAD_AT(0, 0x80);
  BAD_AT(0, 0xBF);
  BAD_AT(0, 0x80, 0xBF);
  BAD_AT(0, 0x80, 0xBF, 0x80);
  BAD_AT(2, 0xC2, 0x80, 0x80); /* one too many */
  BAD_AT(3, 0xE2, 0x82, 0xAC, 0xAC);
  BAD_AT(4, 0xF0, 0x9F, 0x98, 0x80, 0x80);
  uint8_t all[64];
  for (int i = 0; i < 64; i++) all[i] = (uint8_t)(0x80 + i);
  expect(all, sizeof all, 0, false);
}

TEST(lonely_starts_and_truncation) {
  /* Autobahn 6.14-6.19 style: a lead followed by a space. */
  BAD_AT(1, 0xC2, 0x20);
  BAD_AT(1, 0xDF, 0x20);
  BAD_AT(1, 0xE0, 0x20);
  BAD_AT(1, 0xEF, 0x20);
  BAD_AT(1, 0xF0, 0x20);
  BAD_AT(1, 0xF4, 0x20);
  BAD_AT(0, 0xF8, 0x20);
  BAD_AT(0, 0xFC, 0x20);
  /* Sequences with the last byte missing, at the end of the message. */
  TRUNCATED(0xC2);
  TRUNCATED(0xDF);
  TRUNCATED(0xE0, 0xA0);
  TRUNCATED(0xEF, 0xBF);
  TRUNCATED(0xF0, 0x90, 0x80);
  TRUNCATED(0xF4, 0x8F, 0xBF);
  TRUNCATED('a', 'b', 0xE2, 0x82);
  /* ... and in the middle: the next lead or ASCII byte is the offender. */
  BAD_AT(2, 0xE2, 0x82, 'x');
  BAD_AT(3, 0xF0, 0x9F, 0x98, 0xF0, 0x9F, 0x98, 0x80);
  BAD_AT(1, 0xC2, 0xC2, 0x80);
}

/* Fail-fast across calls exactly as the brief states it. */
TEST(fail_fast_across_calls) {
  dx_utf8 v;
  dx_utf8_init(&v);
  CHECK_EQ_INT(dx_utf8_feed(&v, place(0, BYTES(0xE0)), 1), 0);
  CHECK(!dx_utf8_complete(&v));
  CHECK_EQ_INT(dx_utf8_feed(&v, place(1, BYTES(0x80)), 1), DX_EUTF8);
  /* Sticky until re-initialised, even for valid input. */
  CHECK_EQ_INT(dx_utf8_feed(&v, place(2, BYTES('a')), 1), DX_EUTF8);
  CHECK_EQ_INT(dx_utf8_feed(&v, NULL, 0), DX_EUTF8);
  CHECK(!dx_utf8_complete(&v));

  dx_utf8_init(&v);
  CHECK_EQ_INT(dx_utf8_feed(&v, place(0, BYTES(0xF4)), 1), 0);
  CHECK_EQ_INT(dx_utf8_feed(&v, place(1, BYTES(0x90)), 1), DX_EUTF8);

  dx_utf8_init(&v);
  CHECK_EQ_INT(dx_utf8_feed(&v, place(0, BYTES('o', 'k', 0xF0, 0x9F)), 4), 0);
  CHECK_EQ_INT(dx_utf8_feed(&v, place(1, BYTES(0x98)), 1), 0);
  CHECK(!dx_utf8_complete(&v));
  CHECK_EQ_INT(dx_utf8_feed(&v, NULL, 0), 0); /* empty pieces are fine */
  CHECK_EQ_INT(dx_utf8_feed(&v, place(2, BYTES(0x80, 'x')), 2), 0);
  CHECK(dx_utf8_complete(&v));
}

/* Every 1- and 2-byte string, and every 3-byte string, against the
 * reference: whole and one byte per call. */
TEST(exhaustive_1_2_3_bytes) {
  uint8_t s[3];
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (uint8_t)a;
    check_case(s, 1);
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (uint8_t)b;
      check_case(s, 2);
    }
  }
  /* 16M strings: compare directly, without the split machinery. Each is
   * fed from right before the guard page. */
  uint8_t *g3 = region_end[0] - 3;
  uint8_t *g1[3] = {region_end[0] - 1, region_end[1] - 1, region_end[2] - 1};
  long mismatches = 0;
  for (uint32_t x = 0; x < (1u << 24); x++) {
    s[0] = (uint8_t)(x >> 16), s[1] = (uint8_t)(x >> 8), s[2] = (uint8_t)x;
    bool ref = ref_valid(s, 3);
    long bad = ref_first_bad(s, 3);
    memcpy(g3, s, 3);
    bool ok = dx_utf8_valid(g3, 3) == ref;
    dx_utf8 v;
    dx_utf8_init(&v);
    long failed = -1;
    for (int k = 0; k < 3; k++) {
      *g1[k] = s[k];
      if (dx_utf8_feed(&v, g1[k], 1) != 0 && failed < 0) failed = k;
    }
    ok = ok && failed == bad && (bad >= 0 || dx_utf8_complete(&v) == ref);
    if (!ok && mismatches++ < 10) fprintf(stderr, "mismatch on %02x %02x %02x\n", s[0], s[1], s[2]);
  }
  CHECK_EQ_INT(mismatches, 0);
}

/* All 4-byte strings whose lead is F0..FF and whose tail bytes come from a
 * set that covers every range edge. */
TEST(four_byte_edges) {
  static const uint8_t tail[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0x8E, 0x8F, 0x90, 0x91, 0x9E,
                                 0x9F, 0xA0, 0xA1, 0xBE, 0xBF, 0xC0, 0xC2, 0xF0, 0xFF};
  size_t nt = sizeof tail;
  uint8_t s[4];
  for (unsigned lead = 0xE0; lead < 0x100; lead++)
    for (size_t a = 0; a < nt; a++)
      for (size_t b = 0; b < nt; b++)
        for (size_t c = 0; c < nt; c++) {
          s[0] = (uint8_t)lead, s[1] = tail[a], s[2] = tail[b], s[3] = tail[c];
          check_case_depth(s, 4, (a + b + c) % 7 == 0); /* splits on a sample */
        }
}

/* The vector ASCII scan must find a non-ASCII byte wherever it sits in a
 * 16/64-byte block, and must stop exactly at the end of the input. */
TEST(ascii_scan_positions) {
  static uint8_t buf[300];
  static const struct {
    uint8_t b[4];
    size_t n;
  } ins[] = {
      {{0x80}, 1},                   /* stray continuation */
      {{0xFF}, 1},                   /* impossible byte */
      {{0xC3, 0xA9}, 2},             /* é */
      {{0xE2, 0x82, 0xAC}, 3},       /* € */
      {{0xF0, 0x9F, 0x98, 0x80}, 4}, /* emoji */
      {{0xED, 0xA0, 0x80}, 3},       /* surrogate */
      {{0xE2, 0x82}, 2},             /* truncated */
  };
  for (size_t n = 0; n <= 200; n++) {
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)(' ' + (k * 7) % 95);
    if (n) buf[n - 1] = 0x7F;
    check_case_depth(buf, n, false);
    for (size_t t = 0; t < sizeof ins / sizeof ins[0]; t++) {
      for (size_t at = 0; at + ins[t].n <= n; at++) {
        uint8_t save[4];
        memcpy(save, buf + at, ins[t].n);
        memcpy(buf + at, ins[t].b, ins[t].n);
        check_case_depth(buf, n, n <= 24);
        memcpy(buf + at, save, ins[t].n);
      }
    }
  }
}

/* ---- random ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng(void) {
  /* xorshift64*: small, deterministic, good enough to pick bytes. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Du;
}

/* Bytes drawn to hit the interesting classes often. */
static uint8_t random_byte(void) {
  uint64_t r = rng();
  switch (r % 8) {
  case 0:
  case 1:
    return (uint8_t)((r >> 8) % 0x80); /* ASCII */
  case 2:
  case 3:
    return (uint8_t)(0x80 + (r >> 8) % 0x40); /* continuation */
  case 4:
    return (uint8_t)(0xC0 + (r >> 8) % 0x20); /* 2-byte leads */
  case 5:
    return (uint8_t)(0xE0 + (r >> 8) % 0x10); /* 3-byte leads */
  case 6:
    return (uint8_t)(0xF0 + (r >> 8) % 0x10); /* 4-byte leads and worse */
  default:
    return (uint8_t)(r >> 8);
  }
}

/* Append the UTF-8 encoding of a random code point (any plane, biased to
 * edges), or sometimes a deliberately broken one. */
static size_t random_char(uint8_t *out) {
  static const uint32_t edges[] = {0x7F,   0x80,   0x7FF,  0x800,   0xD7FF,   0xE000,
                                   0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF, 0x3FFFF};
  uint64_t r = rng();
  uint32_t cp;
  switch (r % 6) {
  case 0:
    cp = edges[(r >> 8) % (sizeof edges / sizeof edges[0])];
    break;
  case 1:
    cp = (uint32_t)(0x80 + (r >> 8) % 0x780);
    break;
  case 2:
    cp = (uint32_t)(0x800 + (r >> 8) % 0xF800);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800;
    break;
  case 3:
    cp = (uint32_t)(0x10000 + (r >> 8) % 0x100000);
    break;
  default:
    out[0] = (uint8_t)(' ' + (r >> 8) % 95);
    return 1;
  }
  size_t n;
  if (cp < 0x80) {
    out[0] = (uint8_t)cp, n = 1;
  } else if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6), out[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12), out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    out[0] = (uint8_t)(0xF0 | cp >> 18), out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return n;
}

TEST(random_short_strings) {
  uint8_t s[12];
  for (int iter = 0; iter < 300000; iter++) {
    size_t n = (size_t)(rng() % 13);
    for (size_t k = 0; k < n; k++) s[k] = random_byte();
    /* Full split checks on a sample keep the run short. */
    check_case_depth(s, n, iter % 16 == 0);
  }
}

/* Long, mostly valid text with rare corruption, fed in random pieces. */
TEST(random_long_texts) {
  static uint8_t s[4096 + 8];
  for (int iter = 0; iter < 3000; iter++) {
    size_t target = (size_t)(rng() % 4096), n = 0;
    unsigned ascii_pct = (unsigned)(rng() % 101);
    while (n < target) {
      if (rng() % 100 < ascii_pct)
        s[n++] = (uint8_t)(rng() % 0x80);
      else
        n += random_char(s + n);
    }
    if (n && rng() % 3 == 0) s[rng() % n] = random_byte();     /* corrupt one byte */
    if (n && rng() % 5 == 0) n -= 1 + rng() % (n < 3 ? n : 3); /* maybe truncate */

    long bad = ref_first_bad(s, n);
    bool valid = ref_valid(s, n);
    CHECK_EQ_INT(dx_utf8_valid(place(0, s, n), n), valid);
    size_t cuts[8];
    int ncuts = (int)(rng() % 9);
    for (int k = 0; k < ncuts; k++) cuts[k] = n ? (size_t)(rng() % (n + 1)) : 0;
    for (int a = 1; a < ncuts; a++) /* insertion sort: the cuts must ascend */
      for (int b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
        size_t t = cuts[b];
        cuts[b] = cuts[b - 1], cuts[b - 1] = t;
      }
    bool complete;
    int f = feed_pieces(s, n, cuts, ncuts, &complete);
    CHECK_EQ_INT(f, piece_of(bad, cuts, ncuts));
    if (bad < 0) CHECK_EQ_INT(complete, valid);
  }
}

/* ---- the vector path (non-ASCII text of 64 bytes and more) ---------------- */

/* Bytes at the edges of every class and range in the table at the top of
 * src/proto/utf8.c. */
static const uint8_t edge_bytes[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                     0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                     0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};

/* 96 bytes of valid 2-byte characters with `k` bytes replaced at `at`. */
static size_t text_with(uint8_t *buf, size_t at, const uint8_t *b, size_t k) {
  for (size_t i = 0; i < 96; i += 2) buf[i] = 0xC3, buf[i + 1] = 0xA9;
  memcpy(buf + at, b, k);
  return 96;
}

/* Every byte pair, and every sequence of 4 edge bytes, inside non-ASCII
 * text (which the vector check takes), at block starts, ends and across
 * block boundaries: the verdict matches the reference decoder. */
TEST(vector_path_pairs_and_edge_quads) {
  uint8_t buf[96];
  static const size_t at[] = {0, 14, 15, 16, 29, 31, 46, 93};
  int wrong = 0;
  for (unsigned a = 0; a < 256; a++) {
    for (unsigned b = 0; b < 256; b++) {
      uint8_t pair[2] = {(uint8_t)a, (uint8_t)b};
      for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        size_t n = text_with(buf, at[k], pair, 2);
        if (dx_utf8_valid(place(0, buf, n), n) != ref_valid(buf, n) && wrong++ < 5)
          fprintf(stderr, "pair %02x %02x at %zu\n", a, b, at[k]);
      }
    }
  }
  size_t ne = sizeof edge_bytes;
  for (size_t q = 0; q < ne * ne * ne * ne; q++) {
    uint8_t quad[4] = {edge_bytes[q % ne], edge_bytes[q / ne % ne], edge_bytes[q / ne / ne % ne],
                       edge_bytes[q / ne / ne / ne]};
    for (size_t k = 1; k < 4; k++) { /* 13..16: across the first block boundary */
      size_t n = text_with(buf, 12 + k, quad, 4);
      if (dx_utf8_valid(place(0, buf, n), n) != ref_valid(buf, n) && wrong++ < 10)
        fprintf(stderr, "quad %02x %02x %02x %02x at %zu\n", quad[0], quad[1], quad[2], quad[3],
                12 + k);
    }
  }
  CHECK_EQ_INT(wrong, 0);
  /* The last sequence open at the end of a piece, finished (or broken) by
   * the next piece. */
  static const uint8_t open[][4] = {{0xC3}, {0xE2, 0x82}, {0xF0, 0x9F, 0x98}, {0xE2}, {0xF0}};
  static const uint8_t close[][3] = {{0xA9}, {0xAC}, {0x80}, {0x82, 0xAC}, {0x9F, 0x98, 0x80}};
  static const size_t nopen[] = {1, 2, 3, 1, 1}, nclose[] = {1, 1, 1, 2, 3};
  for (size_t c = 0; c < 5; c++) {
    for (size_t len = 64; len < 96; len++) {
      uint8_t msg[100];
      size_t k = len - nopen[c], n = 0;
      while (n + 2 <= k) msg[n++] = 0xC3, msg[n++] = 0xA9;
      if (n < k) msg[n++] = 'x';
      memcpy(msg + n, open[c], nopen[c]);
      n += nopen[c];
      for (int broken = 0; broken < 2; broken++) {
        dx_utf8 v;
        dx_utf8_init(&v);
        CHECK_EQ_INT(dx_utf8_feed(&v, place(0, msg, n), n), 0);
        CHECK(!dx_utf8_complete(&v));
        uint8_t tail[3];
        memcpy(tail, close[c], nclose[c]);
        if (broken) tail[nclose[c] - 1] = 'A';
        CHECK_EQ_INT(dx_utf8_feed(&v, place(1, tail, nclose[c]), nclose[c]), broken ? DX_EUTF8 : 0);
        if (!broken) CHECK(dx_utf8_complete(&v));
      }
    }
  }
}

int main(void) {
  regions_init();
  RUN(valid_boundaries);
  RUN(noncharacters_are_valid);
  RUN(autobahn_texts);
  RUN(overlongs);
  RUN(surrogates);
  RUN(above_max);
  RUN(stray_continuations);
  RUN(lonely_starts_and_truncation);
  RUN(fail_fast_across_calls);
  RUN(exhaustive_1_2_3_bytes);
  RUN(four_byte_edges);
  RUN(ascii_scan_positions);
  RUN(random_short_strings);
  RUN(random_long_texts);
  RUN(vector_path_pairs_and_edge_quads);
  printf("%d cases checked against the reference\n", cases_checked);
  return test_report();
}
