/* bench_message — whole-message parsing through dx_proto_feed (server
 * role: masked client frames are unmasked in place, text is validated),
 * for 16-byte and 64 KiB messages, against memcpy of the same bytes.
 *
 *   bench_message [--quick]
 *
 * The frames are masked with the all-zero key, which is legal and costs
 * the same XOR work, so unmasking in place leaves the buffer as it was and
 * it can be fed again and again without being restored. memcpy of the same
 * buffer is the reference. Median of 11 samples (5 with --quick). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duplex/error.h"
#include "duplex/frame.h"
#include "duplex/proto.h"

static int samples = 11;
static double target_ns = 40e6;
static volatile size_t sink;
static void *(*volatile memcpy_fn)(void *, const void *, size_t) = memcpy;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void on_event(void *user, const dx_event *ev) {
  (void)user;
  sink += ev->len;
}
static int on_output(void *user, const dx_output *o) {
  (void)user;
  (void)o;
  return 0;
}

typedef struct {
  uint8_t *buf, *copy;
  size_t len;
  int nmsgs;
  dx_proto *p;
} ctx;

/* Build `n` masked frames of `size` bytes (text: ASCII with some UTF-8). */
static void build(ctx *c, int n, size_t size, unsigned opcode) {
  size_t hdr = dx_frame_header_size(size, true);
  c->len = (size_t)n * (hdr + size);
  c->buf = malloc(c->len);
  c->copy = malloc(c->len);
  uint8_t *payload = malloc(size);
  for (size_t i = 0; i < size; i++) payload[i] = (uint8_t)('a' + i % 26);
  static const uint8_t key[4] = {0, 0, 0, 0};
  uint8_t *o = c->buf;
  for (int i = 0; i < n; i++) {
    o += dx_frame_write_header(o, true, 0, opcode, size, key);
    dx_mask_copy(o, payload, size, key, 0);
    o += size;
  }
  free(payload);
  c->nmsgs = n;
  static const dx_proto_callbacks cb = {on_event, on_output, NULL};
  dx_proto_opts po = {.max_message = 1 << 24};
  c->p = malloc(dx_proto_size());
  dx_proto_init(c->p, DX_ROLE_SERVER, &po, &cb, NULL);
}

static double sample(ctx *c, long iters, bool feed) {
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    if (!feed) {
      memcpy_fn(c->copy, c->buf, c->len);
    } else if (dx_proto_feed(c->p, c->buf, c->len) != 0) {
      fprintf(stderr, "bench_message: feed failed\n");
      exit(1);
    }
  }
  return (now_ns() - t0) / (double)iters;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(ctx *c, bool feed) {
  long iters = 1;
  while (sample(c, iters, feed) * (double)iters < target_ns / 4) iters *= 2;
  double s[32];
  for (int i = 0; i < samples; i++) s[i] = sample(c, iters, feed);
  qsort(s, (size_t)samples, sizeof *s, cmp);
  return s[samples / 2];
}

static void run(const char *name, int n, size_t size, unsigned opcode) {
  ctx c;
  build(&c, n, size, opcode);
  double copy = median(&c, false), feed = median(&c, true);
  printf("%-16s %9.1f ns/msg %8.2f M msg/s %7.2f GB/s   memcpy %8.1f ns/msg  x memcpy %.2f\n", name,
         feed / n, n / feed * 1e3, (double)c.len / feed, copy / n, copy / feed);
  dx_proto_free(c.p);
  free(c.p);
  free(c.buf);
  free(c.copy);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
    samples = 5;
    target_ns = 8e6;
  }
  printf("dx_proto_feed, server role, masked frames fed in one buffer\n");
  run("binary 16 B", 4096, 16, DX_OP_BINARY);
  run("text 16 B", 4096, 16, DX_OP_TEXT);
  run("binary 64 KiB", 16, 65536, DX_OP_BINARY);
  run("text 64 KiB", 16, 65536, DX_OP_TEXT);
  run("binary 1 MiB", 2, 1 << 20, DX_OP_BINARY);
  return 0;
}
