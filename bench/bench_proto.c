/* bench_proto — microbenchmarks for the protocol hot paths: masking,
 * UTF-8 validation and frame header parsing, with memcpy as the yardstick.
 *
 *   bench_proto [--quick]
 *
 * Method: each case is calibrated to run ~20 ms per sample (~4 ms with
 * --quick), then sampled 11 times (5 with --quick); the median sample is
 * reported. Buffers are 64-byte aligned and warm in cache (the same buffer
 * is processed over and over), so this measures the code, not DRAM.
 * memcpy is called through a volatile pointer so that, like the library
 * calls, it is never inlined or elided.
 */
#include "duplex/error.h"
#include "duplex/frame.h"
#include "duplex/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double target_ns = 20e6;
static int samples = 11;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct {
  uint8_t *dst;
  uint8_t *src;
  size_t len;
  const uint8_t **hdrs; /* header parse: inputs */
  size_t *hdr_lens;
  size_t nhdrs;
} bench_ctx;

typedef void (*bench_fn)(bench_ctx *c, long iters);

static void *(*volatile memcpy_fn)(void *, const void *, size_t) = memcpy;
static volatile unsigned sink;

static void run_memcpy(bench_ctx *c, long iters) {
  for (long i = 0; i < iters; i++) memcpy_fn(c->dst, c->src, c->len);
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

static void run_mask(bench_ctx *c, long iters) {
  for (long i = 0; i < iters; i++) dx_mask(c->dst, c->len, KEY, 0);
}

static void run_mask_copy(bench_ctx *c, long iters) {
  for (long i = 0; i < iters; i++) dx_mask_copy(c->dst, c->src, c->len, KEY, 0);
}

static void run_utf8(bench_ctx *c, long iters) {
  unsigned bad = 0;
  for (long i = 0; i < iters; i++) {
    dx_utf8 v;
    dx_utf8_init(&v);
    bad += dx_utf8_feed(&v, c->src, c->len) != 0 || !dx_utf8_complete(&v);
  }
  sink = bad;
}

static void run_parse(bench_ctx *c, long iters) {
  unsigned acc = 0;
  size_t k = 0;
  for (long i = 0; i < iters; i++) {
    dx_frame_header h;
    acc += (unsigned)dx_frame_parse_header(c->hdrs[k], c->hdr_lens[k], &h);
    acc += (unsigned)h.payload_len;
    if (++k == c->nhdrs) k = 0;
  }
  sink = acc;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median nanoseconds per call. */
static double measure(bench_fn fn, bench_ctx *c) {
  long iters = 1;
  for (;;) { /* calibrate: grow until one sample takes target_ns */
    double t0 = now_ns();
    fn(c, iters);
    double dt = now_ns() - t0;
    if (dt >= target_ns / 4) {
      iters = (long)((double)iters * target_ns / dt) + 1;
      break;
    }
    iters *= 4;
  }
  double s[64];
  for (int r = 0; r < samples; r++) {
    double t0 = now_ns();
    fn(c, iters);
    s[r] = (now_ns() - t0) / (double)iters;
  }
  qsort(s, (size_t)samples, sizeof s[0], cmp_double);
  return s[samples / 2];
}

static void print_row(const char *name, size_t len, double ns, double ref_ns) {
  char size[32];
  if (len >= (1u << 20))
    snprintf(size, sizeof size, "%zu MiB", len >> 20);
  else if (len >= 1024)
    snprintf(size, sizeof size, "%zu KiB", len >> 10);
  else
    snprintf(size, sizeof size, "%zu B", len);
  printf("%-28s %8s %12.1f %9.2f", name, size, ns, (double)len / ns);
  if (ref_ns > 0)
    printf(" %9.2f\n", ref_ns / ns);
  else
    printf(" %9s\n", "-");
}

static uint64_t rng_state = 0x853C49E6748FEA9Bu;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Du;
}

static size_t put_utf8(uint8_t *o, uint32_t cp) {
  if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
  if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
  if (cp < 0x10000)
    return o[0] = (uint8_t)(0xE0 | cp >> 12), o[1] = (uint8_t)(0x80 | ((cp >> 6) & 63)),
           o[2] = (uint8_t)(0x80 | (cp & 63)), 3;
  return o[0] = (uint8_t)(0xF0 | cp >> 18), o[1] = (uint8_t)(0x80 | ((cp >> 12) & 63)),
         o[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)), o[3] = (uint8_t)(0x80 | (cp & 63)), 4;
}

/* n bytes of valid text: 60% of the characters ASCII, the rest spread
 * evenly over 2-, 3- and 4-byte characters. */
static void fill_mixed(uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned r = (unsigned)(rng() % 100);
    uint32_t cp;
    if (r < 60)
      cp = (uint32_t)(0x20 + rng() % 0x5F);
    else if (r < 74)
      cp = (uint32_t)(0x80 + rng() % 0x780);
    else if (r < 87)
      cp = (uint32_t)(0x800 + rng() % (0xD800 - 0x800));
    else
      cp = (uint32_t)(0x10000 + rng() % 0x100000);
    uint8_t tmp[4];
    size_t k = put_utf8(tmp, cp);
    if (i + k > n) k = put_utf8(tmp, 'x');
    memcpy(p + i, tmp, k);
    i += k;
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      target_ns = 4e6;
      samples = 5;
    } else {
      fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  size_t maxlen = 1u << 20;
  uint8_t *a = aligned_alloc(64, maxlen + 64), *b = aligned_alloc(64, maxlen + 64);
  if (!a || !b) return 1;
  for (size_t i = 0; i < maxlen + 64; i++) a[i] = (uint8_t)rng(), b[i] = (uint8_t)rng();

  printf("%-28s %8s %12s %9s %9s\n", "benchmark", "size", "ns/op", "GB/s", "x memcpy");
  static const size_t sizes[] = {16, 1024, 64 * 1024, 1024 * 1024};
  double ref[4];
  for (int s = 0; s < 4; s++) {
    bench_ctx c = {.dst = a, .src = b, .len = sizes[s]};
    ref[s] = measure(run_memcpy, &c);
    print_row("memcpy", sizes[s], ref[s], 0);
  }
  for (int s = 0; s < 4; s++) {
    bench_ctx c = {.dst = a, .src = b, .len = sizes[s]};
    print_row("dx_mask (in place)", sizes[s], measure(run_mask, &c), ref[s]);
  }
  {
    /* Misaligned start, as a payload after a 6- or 8-byte header would be. */
    bench_ctx c = {.dst = a + 6, .src = b + 6, .len = 64 * 1024};
    print_row("dx_mask (in place, +6)", c.len, measure(run_mask, &c), ref[2]);
  }
  for (int s = 0; s < 4; s++) {
    bench_ctx c = {.dst = a, .src = b, .len = sizes[s]};
    print_row("dx_mask_copy", sizes[s], measure(run_mask_copy, &c), ref[s]);
  }

  size_t tl = 64 * 1024;
  for (size_t i = 0; i < tl; i++) b[i] = (uint8_t)(0x20 + rng() % 0x5F);
  {
    bench_ctx c = {.src = b, .len = tl};
    print_row("dx_utf8_feed ASCII", tl, measure(run_utf8, &c), ref[2]);
    c.len = 1024;
    print_row("dx_utf8_feed ASCII", c.len, measure(run_utf8, &c), ref[1]);
  }
  /* Mostly ASCII with a rare accented letter or symbol, like English text
   * or JSON: about one 2-3 byte character per 100. */
  {
    size_t i = 0;
    while (i + 3 <= tl) {
      if (rng() % 100 == 0)
        i += put_utf8(b + i, (uint32_t)(rng() % 2 ? 0xE9 : 0x20AC));
      else
        b[i++] = (uint8_t)(0x20 + rng() % 0x5F);
    }
    while (i < tl) b[i++] = ' ';
    bench_ctx c = {.src = b, .len = tl};
    print_row("dx_utf8_feed 99% ASCII", tl, measure(run_utf8, &c), ref[2]);
  }
  fill_mixed(b, tl);
  if (!dx_utf8_valid(b, tl)) {
    fprintf(stderr, "mixed text generator produced invalid UTF-8\n");
    return 1;
  }
  {
    bench_ctx c = {.src = b, .len = tl};
    print_row("dx_utf8_feed mixed 60% ASCII", tl, measure(run_utf8, &c), ref[2]);
  }
  /* Non-ASCII only: Cyrillic-like 2-byte text and CJK-like 3-byte text. */
  {
    size_t i = 0;
    while (i + 2 <= tl) i += put_utf8(b + i, (uint32_t)(0x400 + rng() % 0x100));
    while (i < tl) b[i++] = ' ';
    bench_ctx c = {.src = b, .len = tl};
    print_row("dx_utf8_feed 2-byte text", tl, measure(run_utf8, &c), ref[2]);
    i = 0;
    while (i + 3 <= tl) i += put_utf8(b + i, (uint32_t)(0x4E00 + rng() % 0x5000));
    while (i < tl) b[i++] = ' ';
    print_row("dx_utf8_feed 3-byte text", tl, measure(run_utf8, &c), ref[2]);
  }

  /* Header parse: a rotating mix of the common shapes. */
  {
    static uint8_t hb[6][DX_FRAME_HEADER_MAX + 8];
    static const uint64_t lens[6] = {5, 5, 300, 300, 100000, 100000};
    const uint8_t *hdrs[6];
    size_t hls[6];
    for (int i = 0; i < 6; i++) {
      hls[i] = dx_frame_write_header(hb[i], true, 0, DX_OP_BINARY, lens[i], i % 2 ? KEY : NULL);
      hdrs[i] = hb[i];
    }
    bench_ctx c = {.hdrs = hdrs, .hdr_lens = hls, .nhdrs = 6};
    double ns = measure(run_parse, &c);
    printf("%-28s %8s %12.1f %9s %9s\n", "dx_frame_parse_header", "2-14 B", ns, "-", "-");
    c.nhdrs = 1;
    ns = measure(run_parse, &c);
    printf("%-28s %8s %12.1f %9s %9s\n", "dx_frame_parse_header", "2 B", ns, "-", "-");
  }
  free(a);
  free(b);
  return 0;
}
