/* duplex — a tiny unit-test harness for ctest executables.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_MEM(p, q, n); }
 *   int main(void) { RUN(name); ...; return test_report(); }
 *
 * Failures print file:line and the expression; the process exits non-zero
 * if any check failed. guarded_copy() places bytes right before an
 * unreadable page so any over-read crashes the test instead of passing by
 * luck (the picohttpparser trick).
 */
#ifndef DX_TEST_H
#define DX_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int test_checks_failed_;
static int test_current_failed_;
static int tests_passed_, tests_failed_;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      test_checks_failed_++;                                                 \
      test_current_failed_ = 1;                                              \
    }                                                                        \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                        \
  do {                                                                            \
    long long a_ = (long long)(a), b_ = (long long)(b);                           \
    if (a_ != b_) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, \
              __LINE__, #a, #b, a_, b_);                                          \
      test_checks_failed_++;                                                      \
      test_current_failed_ = 1;                                                   \
    }                                                                             \
  } while (0)

#define CHECK_MEM(a, b, n)                                                              \
  do {                                                                                  \
    if (memcmp((a), (b), (n)) != 0) {                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: memory %s == %s (%zu bytes)\n", __FILE__, \
              __LINE__, #a, #b, (size_t)(n));                                           \
      test_checks_failed_++;                                                            \
      test_current_failed_ = 1;                                                         \
    }                                                                                   \
  } while (0)

#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0)

#define TEST(name) static void test_##name(void)
#define RUN(name)                                              \
  do {                                                         \
    test_current_failed_ = 0;                                  \
    test_##name();                                             \
    if (test_current_failed_) {                                \
      tests_failed_++;                                         \
      fprintf(stderr, "FAIL %s\n", #name);                     \
    } else {                                                   \
      tests_passed_++;                                         \
    }                                                          \
  } while (0)

static inline int test_report(void) {
  printf("%d passed, %d failed\n", tests_passed_, tests_failed_);
  return tests_failed_ ? 1 : 0;
}

/* Guarded buffers: data ends exactly at a PROT_NONE page. Free with
 * guarded_free(). */
typedef struct {
  void *map;
  size_t map_len;
} guarded_buf_;
static guarded_buf_ guarded_last_;

static inline void *guarded_copy(const void *data, size_t len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = (len + page - 1) / page + 1;
  size_t map_len = (pages + 1) * page;
  unsigned char *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  unsigned char *guard = m + pages * page;
  if (mprotect(guard, page, PROT_NONE) != 0) {
    perror("mprotect");
    exit(2);
  }
  unsigned char *p = guard - len;
  if (len) memcpy(p, data, len);
  guarded_last_.map = m;
  guarded_last_.map_len = map_len;
  return p;
}

static inline void guarded_free(void *p) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t base = (uintptr_t)p & ~(uintptr_t)(page - 1);
  /* Find the mapping start: walk back to the recorded one if it matches. */
  if (guarded_last_.map && (uintptr_t)guarded_last_.map <= base &&
      base < (uintptr_t)guarded_last_.map + guarded_last_.map_len) {
    munmap(guarded_last_.map, guarded_last_.map_len);
    guarded_last_.map = NULL;
  }
}

#endif
