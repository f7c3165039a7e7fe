/* The per-thread buffer cache: size classes, reuse, the byte cap, and
 * trimming what sat unused for a period. */
#include <stdint.h>
#include <string.h>

#include "common/bufcache.h"
#include "test.h"

/* Start from an empty cache whatever earlier tests left. */
static uint64_t empty_cache(uint64_t t) {
  dx_bufcache_tick(t);
  dx_bufcache_tick(t += 1000);
  dx_bufcache_tick(t += 1000);
  CHECK_EQ_INT(dx_bufcache_bytes(), 0);
  return t;
}

TEST(sizes_round_up_to_classes) {
  CHECK_EQ_INT(dx_buf_size(1), 4096);
  CHECK_EQ_INT(dx_buf_size(4096), 4096);
  CHECK_EQ_INT(dx_buf_size(4097), 8192);
  CHECK_EQ_INT(dx_buf_size(65536 + 16), 131072);
  CHECK_EQ_INT(dx_buf_size(2u << 20), 2u << 20);
  CHECK_EQ_INT(dx_buf_size((2u << 20) + 1), (2u << 20) + 1); /* beyond: exact, not cached */
  size_t n = 5000;
  uint8_t *p = dx_buf_get(&n);
  CHECK(p != NULL);
  CHECK_EQ_INT(n, 8192);
  memset(p, 1, n); /* all of it is usable */
  dx_buf_put(p, n);
}

TEST(freed_buffers_are_reused_then_trimmed) {
  uint64_t t = empty_cache(1u << 30);
  size_t n = 70000;
  void *a = dx_buf_get(&n);
  size_t m = 70000;
  void *b = dx_buf_get(&m);
  dx_buf_put(a, n);
  dx_buf_put(b, m);
  CHECK_EQ_INT(dx_bufcache_bytes(), 2 * 131072);
  size_t k = 100000;
  void *c = dx_buf_get(&k); /* same class: the last one given back */
  CHECK(c == b);
  CHECK_EQ_INT(dx_bufcache_bytes(), 131072);
  dx_buf_put(c, k);
  /* A period starts; one of the two is taken again during it. */
  CHECK(dx_bufcache_tick(t += 1000));
  k = 100000;
  c = dx_buf_get(&k);
  dx_buf_put(c, k);
  CHECK(dx_bufcache_tick(t += 1000)); /* the one never taken goes */
  CHECK_EQ_INT(dx_bufcache_bytes(), 131072);
  CHECK(dx_bufcache_tick(t + 999)); /* not a whole period yet */
  CHECK_EQ_INT(dx_bufcache_bytes(), 131072);
  CHECK(!dx_bufcache_tick(t += 1000)); /* idle for a period: all back */
  CHECK_EQ_INT(dx_bufcache_bytes(), 0);
}

TEST(cap_and_uncached_sizes) {
  uint64_t t = empty_cache(1u << 31);
  enum { N = 20 };
  void *p[N];
  size_t sz[N];
  for (int i = 0; i < N; i++) {
    sz[i] = 2u << 20;
    p[i] = dx_buf_get(&sz[i]);
    CHECK(p[i] != NULL);
  }
  for (int i = 0; i < N; i++) dx_buf_put(p[i], sz[i]);
  CHECK_EQ_INT(dx_bufcache_bytes(), 32u << 20); /* 16 of 20 kept: the cap */
  size_t big = (2u << 20) + 1;
  void *q = dx_buf_get(&big);
  dx_buf_put(q, big); /* beyond the classes: freed */
  CHECK_EQ_INT(dx_bufcache_bytes(), 32u << 20);
  dx_buf_put(NULL, 4096);
  empty_cache(t + 1000);
}

/* The largest class is one huge page, aligned to it (so THP can back it). */
TEST(largest_class_is_huge_page_aligned) {
  for (int i = 0; i < 3; i++) {
    size_t sz = (1u << 20) + 100;
    void *p = dx_buf_get(&sz);
    CHECK(p != NULL);
    CHECK_EQ_INT(sz, 2u << 20);
    CHECK_EQ_INT((uintptr_t)p & ((2u << 20) - 1), 0);
    memset(p, 0xab, sz);
    dx_buf_put(p, sz);
  }
}

int main(void) {
  RUN(sizes_round_up_to_classes);
  RUN(freed_buffers_are_reused_then_trimmed);
  RUN(cap_and_uncached_sizes);
  RUN(largest_class_is_huge_page_aligned);
  return test_report();
}
