/* Tests for payload masking (src/proto/mask.c) against a byte-at-a-time
 * reference: every length 0..300 at every key phase 0..7 and every source
 * alignment 0..15, buffers ending at an unreadable page, canaries around
 * the written range, and random large sizes. */
#include "duplex/frame.h"

#include "unit/test.h"

#include <stdint.h>

static void ref_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                     uint64_t offset) {
  for (size_t i = 0; i < len; i++) dst[i] = src[i] ^ key[(offset + i) % 4];
}

static uint64_t rng_state = 0x243F6A8885A308D3u;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Du;
}

static void fill_random(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng();
}

static const uint8_t KEY[4] = {0x37, 0xFA, 0x21, 0x3D};

#define MAXLEN 300
#define PAD 64
#define CANARY 0xA5

/* In place, in a malloc'd buffer with canaries before and after, at every
 * alignment: catches a write before the start or past the end. */
TEST(in_place_all_lengths_offsets_alignments) {
  static uint8_t buf[PAD + 16 + MAXLEN + PAD], orig[MAXLEN], want[MAXLEN];
  for (size_t len = 0; len <= MAXLEN; len++) {
    fill_random(orig, len);
    for (uint64_t off = 0; off < 8; off++) {
      ref_mask(want, orig, len, KEY, off);
      for (size_t al = 0; al < 16; al++) {
        /* buf + PAD is 16-aligned only by luck; align explicitly. */
        uint8_t *base = (uint8_t *)(((uintptr_t)buf + PAD + 15) & ~(uintptr_t)15);
        uint8_t *p = base + al;
        memset(buf, CANARY, sizeof buf);
        memcpy(p, orig, len);
        dx_mask(p, len, KEY, off);
        CHECK_MEM(p, want, len);
        for (uint8_t *q = buf; q < p; q++) CHECK(*q == CANARY);
        for (uint8_t *q = p + len; q < buf + sizeof buf; q++) CHECK(*q == CANARY);
        if (test_current_failed_) {
          fprintf(stderr, "  len %zu offset %u align %zu\n", len, (unsigned)off, al);
          return;
        }
      }
    }
  }
}

/* In place in a buffer that ends at a PROT_NONE page: an access past the
 * end crashes. The start alignment then follows from the length. */
TEST(in_place_guarded) {
  static uint8_t orig[MAXLEN + 16], want[MAXLEN + 16];
  for (size_t len = 0; len <= MAXLEN + 16; len++) {
    fill_random(orig, len);
    for (uint64_t off = 0; off < 8; off++) {
      uint8_t *p = guarded_copy(orig, len);
      ref_mask(want, orig, len, KEY, off);
      dx_mask(p, len, KEY, off);
      CHECK_MEM(p, want, len);
      guarded_free(p);
    }
  }
}

/* Copy form: source (guarded) and destination (canaried) at independent
 * alignments. */
TEST(copy_all_lengths_offsets_alignments) {
  static uint8_t dbuf[PAD + 16 + MAXLEN + PAD], orig[MAXLEN + 16], want[MAXLEN];
  for (size_t len = 0; len <= MAXLEN; len++) {
    for (uint64_t off = 0; off < 8; off++) {
      for (size_t sal = 0; sal < 16; sal++) {
        /* The source ends at the guard page; put `sal` bytes of slack after
         * the data so that its start alignment varies too. */
        fill_random(orig, len + sal);
        uint8_t *src = guarded_copy(orig, len + sal);
        ref_mask(want, src, len, KEY, off);
        size_t dal = (sal * 7 + len) & 15;
        uint8_t *base = (uint8_t *)(((uintptr_t)dbuf + PAD + 15) & ~(uintptr_t)15);
        uint8_t *dst = base + dal;
        memset(dbuf, CANARY, sizeof dbuf);
        dx_mask_copy(dst, src, len, KEY, off);
        CHECK_MEM(dst, want, len);
        CHECK_MEM(src, orig, len); /* source untouched */
        for (uint8_t *q = dbuf; q < dst; q++) CHECK(*q == CANARY);
        for (uint8_t *q = dst + len; q < dbuf + sizeof dbuf; q++) CHECK(*q == CANARY);
        guarded_free(src);
        if (test_current_failed_) {
          fprintf(stderr, "  len %zu offset %u src align %zu\n", len, (unsigned)off, sal);
          return;
        }
      }
    }
  }
}

/* Source and destination both end at guard pages (separate mappings). */
TEST(copy_guarded_both) {
  static uint8_t orig[MAXLEN], want[MAXLEN];
  for (size_t len = 0; len <= MAXLEN; len++) {
    fill_random(orig, len);
    uint64_t off = rng() % 8;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    /* guarded_free() only releases the latest mapping, so unmap dst by hand. */
    uint8_t *dmap =
        mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(dmap != MAP_FAILED);
    if (dmap == MAP_FAILED) return;
    CHECK(mprotect(dmap + page, page, PROT_NONE) == 0);
    uint8_t *dst = dmap + page - len;
    uint8_t *src = guarded_copy(orig, len);
    ref_mask(want, orig, len, KEY, off);
    dx_mask_copy(dst, src, len, KEY, off);
    CHECK_MEM(dst, want, len);
    guarded_free(src);
    munmap(dmap, 2 * page);
  }
}

/* dst == src is allowed for dx_mask_copy. */
TEST(copy_same_buffer) {
  static uint8_t orig[MAXLEN + 16], want[MAXLEN];
  for (size_t len = 0; len <= MAXLEN; len++)
    for (uint64_t off = 0; off < 8; off++)
      for (size_t al = 0; al < 16; al += 3) {
        fill_random(orig, len + al);
        uint8_t *p = guarded_copy(orig, len + al);
        ref_mask(want, p, len, KEY, off);
        dx_mask_copy(p, p, len, KEY, off);
        CHECK_MEM(p, want, len);
        guarded_free(p);
      }
}

/* Masking twice with the same key and offset is the identity. */
TEST(involution) {
  static uint8_t orig[1000], buf[1000];
  fill_random(orig, sizeof orig);
  memcpy(buf, orig, sizeof buf);
  dx_mask(buf, sizeof buf, KEY, 5);
  CHECK(memcmp(buf, orig, sizeof buf) != 0);
  dx_mask(buf, sizeof buf, KEY, 5);
  CHECK_MEM(buf, orig, sizeof buf);
}

/* A payload unmasked in arbitrary pieces, passing the bytes done so far as
 * the offset, equals the whole payload unmasked at once. Only offset % 4
 * matters, including for offsets beyond 32 bits. */
TEST(pieces_and_large_offsets) {
  static uint8_t orig[5000], whole[5000], piecewise[5000];
  fill_random(orig, sizeof orig);
  for (int iter = 0; iter < 200; iter++) {
    uint64_t base = (iter % 2) ? ((uint64_t)1 << 40) + (rng() % 1000) * 4 : 0;
    memcpy(whole, orig, sizeof whole);
    dx_mask(whole, sizeof whole, KEY, base);
    memcpy(piecewise, orig, sizeof piecewise);
    size_t done = 0;
    while (done < sizeof piecewise) {
      size_t n = (size_t)(rng() % 300);
      if (n > sizeof piecewise - done) n = sizeof piecewise - done;
      dx_mask(piecewise + done, n, KEY, base + done);
      done += n;
    }
    CHECK_MEM(piecewise, whole, sizeof whole);
  }
  uint8_t a[64], b[64], c[64];
  fill_random(a, sizeof a);
  memcpy(b, a, sizeof a);
  memcpy(c, a, sizeof a);
  dx_mask(b, sizeof b, KEY, 3);
  dx_mask(c, sizeof c, KEY, UINT64_MAX); /* UINT64_MAX % 4 == 3 */
  CHECK_MEM(b, c, sizeof b);
}

/* RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d. */
TEST(rfc_example) {
  const uint8_t want[5] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
  uint8_t *p = guarded_copy("Hello", 5);
  dx_mask(p, 5, KEY, 0);
  CHECK_MEM(p, want, 5);
  dx_mask(p, 5, KEY, 0);
  CHECK_MEM(p, "Hello", 5);
  guarded_free(p);
  uint8_t out[5];
  dx_mask_copy(out, (const uint8_t *)"Hello", 5, KEY, 0);
  CHECK_MEM(out, want, 5);
}

/* Random large sizes, odd alignments, random keys and offsets. */
TEST(random_large) {
  size_t maxlen = 3u << 20;
  uint8_t *orig = malloc(maxlen + 64), *buf = malloc(maxlen + 64), *want = malloc(maxlen + 64);
  CHECK(orig && buf && want);
  if (!orig || !buf || !want) return;
  fill_random(orig, maxlen + 64);
  for (int iter = 0; iter < 24; iter++) {
    size_t len = (size_t)(rng() % maxlen);
    size_t sal = (size_t)(rng() % 64), dal = (size_t)(rng() % 64);
    uint64_t off = rng();
    uint8_t key[4];
    fill_random(key, 4);
    ref_mask(want, orig + sal, len, key, off);
    memcpy(buf + dal, orig + sal, len);
    dx_mask(buf + dal, len, key, off);
    CHECK_MEM(buf + dal, want, len);
    dx_mask_copy(buf + dal, orig + sal, len, key, off);
    CHECK_MEM(buf + dal, want, len);
  }
  free(orig);
  free(buf);
  free(want);
}

int main(void) {
  RUN(in_place_all_lengths_offsets_alignments);
  RUN(in_place_guarded);
  RUN(copy_all_lengths_offsets_alignments);
  RUN(copy_guarded_both);
  RUN(copy_same_buffer);
  RUN(involution);
  RUN(pieces_and_large_offsets);
  RUN(rfc_example);
  RUN(random_large);
  return test_report();
}
