/* Per-thread cache of power-of-two buffers (see bufcache.h). */
#include "common/bufcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MIN_SHIFT 12 /* 4 KiB */
#define MAX_SHIFT 21 /* 2 MiB */
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)
#define MAX_BYTES ((size_t)32 << 20)
#define PERIOD_MS 1000

/* A cached buffer's first bytes link it into its class's list. */
typedef struct free_buf {
  struct free_buf *next;
} free_buf;

typedef struct bufcache {
  free_buf *list[NCLASS];
  unsigned count[NCLASS];
  unsigned low[NCLASS]; /* fewest cached since the last trim */
  size_t bytes;
  uint64_t last_trim;
  bool registered;
} bufcache;

static _Thread_local bufcache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void drain(void *arg) {
  bufcache *c = arg;
  for (int i = 0; i < NCLASS; i++) {
    while (c->list[i]) {
      free_buf *b = c->list[i];
      c->list[i] = b->next;
      free(b);
    }
    c->count[i] = c->low[i] = 0;
  }
  c->bytes = 0;
}

static void key_init(void) { pthread_key_create(&cache_key, drain); }

/* The class whose size is the smallest power of two >= n, or -1. */
static int class_of(size_t n) {
  if (n > ((size_t)1 << MAX_SHIFT)) return -1;
  int c = 0;
  while (((size_t)1 << (MIN_SHIFT + c)) < n) c++;
  return c;
}

size_t dx_buf_size(size_t n) {
  int c = class_of(n);
  return c < 0 ? n : (size_t)1 << (MIN_SHIFT + c);
}

/* The largest class is one transparent huge page, aligned, and asked to be
 * backed by one (THP "madvise" mode, Debian's default): a 1 MiB message
 * read straight into its buffer otherwise walks 256 small pages, and the
 * TLB misses (dearer still in a VM) made the kernel's copy into it the
 * largest cost at 10 x 1 MiB x 4 in flight. Echoes per server CPU-second
 * there went up about 15%. The price: the whole 2 MiB is resident while
 * the buffer is in use, not only the pages a message touched. */
#define HUGE_SIZE ((size_t)1 << MAX_SHIFT)
static void *buf_alloc(size_t sz) {
  if (sz < HUGE_SIZE) return malloc(sz);
  void *p = aligned_alloc(HUGE_SIZE, sz);
  if (p) (void)madvise(p, sz, MADV_HUGEPAGE);
  return p;
}

void *dx_buf_get(size_t *size) {
  int c = class_of(*size);
  if (c < 0) return malloc(*size);
  size_t sz = (size_t)1 << (MIN_SHIFT + c);
  *size = sz;
  free_buf *b = cache.list[c];
  if (!b) return buf_alloc(sz);
  cache.list[c] = b->next;
  if (--cache.count[c] < cache.low[c]) cache.low[c] = cache.count[c];
  cache.bytes -= sz;
  return b;
}

void dx_buf_put(void *p, size_t size) {
  if (!p) return;
  int c = class_of(size);
  if (c < 0 || ((size_t)1 << (MIN_SHIFT + c)) != size || cache.bytes + size > MAX_BYTES) {
    free(p);
    return;
  }
  if (!cache.registered) { /* so the thread's exit frees the cache */
    pthread_once(&cache_once, key_init);
    pthread_setspecific(cache_key, &cache);
    cache.registered = true;
  }
  free_buf *b = p;
  b->next = cache.list[c];
  cache.list[c] = b;
  cache.count[c]++;
  cache.bytes += size;
}

bool dx_bufcache_tick(uint64_t now_ms) {
  bufcache *c = &cache;
  if (c->bytes == 0) {
    c->last_trim = now_ms;
    return false;
  }
  if (now_ms - c->last_trim >= PERIOD_MS) {
    /* Buffers that were never taken during the period are not needed. */
    for (int i = 0; i < NCLASS; i++) {
      for (unsigned k = c->low[i]; k > 0 && c->list[i]; k--) {
        free_buf *b = c->list[i];
        c->list[i] = b->next;
        c->count[i]--;
        c->bytes -= (size_t)1 << (MIN_SHIFT + i);
        free(b);
      }
      c->low[i] = c->count[i];
    }
    c->last_trim = now_ms;
  }
  return c->bytes != 0;
}

size_t dx_bufcache_bytes(void) { return cache.bytes; }
