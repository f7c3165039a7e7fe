/* Write queue: copy blocks packed with small writes, and references to
 * shared buffers, in one FIFO. */
#include "io/wqueue.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/error.h"

/* A node is one of three kinds:
 *  - a copy block: bytes in data[] (cap of them), unsent data[start, end);
 *  - a single reference (32 bytes, the first of a run of references):
 *    unsent sbuf->data[start, end);
 *  - a chunk of references (a 1 KiB block from the cache, 62 of them) that
 *    follows a reference: a slow receiver of a broadcast queues thousands
 *    of references, and one allocation per reference (glibc consolidating
 *    millions of 32-byte chunks) plus a pointer chase per reference when
 *    gathering iovecs took most of the hub's CPU past saturation. Unsent
 *    refs[start, end). */
enum { DX_WQ_COPY = 0, DX_WQ_REF = 1, DX_WQ_CHUNK = 2 };

struct dx_wq_node {
  dx_wq_node *next; /* in a queue: the next node, the tail's is the head */
  uint32_t start, end;
  uint32_t cap; /* bytes of data[]; 0 for a single reference */
  uint8_t kind;
  uint8_t pad[3];
  dx_sbuf *sbuf; /* a single reference */
  uint8_t data[];
};

/* An entry of a chunk: unsent b->data[start, end). */
typedef struct dx_wq_ref {
  dx_sbuf *b;
  uint32_t start, end;
} dx_wq_ref;

static inline dx_wq_ref *dx__refs(const dx_wq_node *n) { return (dx_wq_ref *)(void *)n->data; }

#define DX_WQ_HDR (sizeof(dx_wq_node))
/* Largest copy block; bigger writes are split so offsets fit in 32 bits. */
#define DX_WQ_MAX_BLOCK ((size_t)1 << 30)

/* ---- shared buffers ------------------------------------------------- */

dx_sbuf *dx_sbuf_new(size_t size) {
  if (size > SIZE_MAX - sizeof(dx_sbuf)) return NULL;
  dx_sbuf *b = malloc(sizeof(dx_sbuf) + size);
  if (!b) return NULL;
  b->refs = 1;
  b->reserved = 0;
  b->size = size;
  b->len = 0;
  return b;
}

dx_sbuf *dx_sbuf_ref(dx_sbuf *b) {
  b->refs++;
  return b;
}

void dx_sbuf_unref(dx_sbuf *b) {
  if (b && --b->refs == 0) free(b);
}

/* ---- a per-thread cache of standard blocks ---------------------------
 *
 * Under load, every connection's queue fills and empties each loop turn.
 * Handing freed 1 KiB and 16 KiB blocks back to the next writer avoids the
 * malloc/free churn, and above all glibc trimming the heap top with brk
 * when a turn frees more than 128 KiB and the next turn faulting it back in
 * (a quarter of the CPU with 100 connections echoing 4 KiB messages).
 * The cache keeps up to the working set of a busy loop (bounded per
 * thread: 4096 small + 512 large blocks = 12 MiB), and dx_wq_cache_tick()
 * gives back, once a second, every block that sat unused in it for the
 * whole second, so an idle thread holds nothing after two seconds. Freed
 * when the thread exits. */

#define DX_WQ_SMALL_CAP (DX_WQ_FIRST_BLOCK - DX_WQ_HDR)
#define DX_WQ_LARGE_CAP (DX_WQ_BLOCK - DX_WQ_HDR)
enum { DX_WQ_CACHE_SMALL = 4096, DX_WQ_CACHE_LARGE = 512 };
#define DX_WQ_CACHE_PERIOD_MS 1000

typedef struct dx_wq_cache {
  dx_wq_node *small, *large;
  unsigned nsmall, nlarge;
  unsigned low_small, low_large; /* fewest cached since the last trim */
  uint64_t last_trim;            /* ms, the loop's clock */
  bool registered;
} dx_wq_cache;

static _Thread_local dx_wq_cache wq_cache;
static pthread_key_t wq_cache_key;
static pthread_once_t wq_cache_once = PTHREAD_ONCE_INIT;

static void dx__cache_drain(void *arg) {
  dx_wq_cache *c = arg;
  for (dx_wq_node **list = &c->small; list <= &c->large; list++) {
    while (*list) {
      dx_wq_node *n = *list;
      *list = n->next;
      free(n);
    }
  }
  c->nsmall = c->nlarge = 0;
  c->low_small = c->low_large = 0;
}

static void dx__cache_key_init(void) { pthread_key_create(&wq_cache_key, dx__cache_drain); }

static dx_wq_node *dx__cache_take(size_t cap) {
  dx_wq_node **list = cap == DX_WQ_SMALL_CAP   ? &wq_cache.small
                      : cap == DX_WQ_LARGE_CAP ? &wq_cache.large
                                               : NULL;
  if (!list || !*list) return NULL;
  dx_wq_node *n = *list;
  *list = n->next;
  if (cap == DX_WQ_SMALL_CAP) {
    if (--wq_cache.nsmall < wq_cache.low_small) wq_cache.low_small = wq_cache.nsmall;
  } else {
    if (--wq_cache.nlarge < wq_cache.low_large) wq_cache.low_large = wq_cache.nlarge;
  }
  return n;
}

static void dx__cache_free_some(dx_wq_node **list, unsigned *count, unsigned k) {
  for (; k > 0 && *list; k--) {
    dx_wq_node *n = *list;
    *list = n->next;
    free(n);
    (*count)--;
  }
}

bool dx_wq_cache_tick(uint64_t now_ms) {
  dx_wq_cache *c = &wq_cache;
  if (c->nsmall == 0 && c->nlarge == 0) {
    c->last_trim = now_ms;
    return false;
  }
  if (now_ms - c->last_trim >= DX_WQ_CACHE_PERIOD_MS) {
    /* Blocks that were never taken during the period are not needed. */
    dx__cache_free_some(&c->small, &c->nsmall, c->low_small);
    dx__cache_free_some(&c->large, &c->nlarge, c->low_large);
    c->low_small = c->nsmall;
    c->low_large = c->nlarge;
    c->last_trim = now_ms;
  }
  return c->nsmall || c->nlarge;
}

size_t dx_wq_cache_bytes(void) {
  return wq_cache.nsmall * (size_t)DX_WQ_FIRST_BLOCK + wq_cache.nlarge * (size_t)DX_WQ_BLOCK;
}

static bool dx__cache_give(dx_wq_node *n) {
  bool small = n->cap == DX_WQ_SMALL_CAP, large = n->cap == DX_WQ_LARGE_CAP;
  if ((!small || wq_cache.nsmall >= DX_WQ_CACHE_SMALL) &&
      (!large || wq_cache.nlarge >= DX_WQ_CACHE_LARGE))
    return false;
  if (!wq_cache.registered) { /* so the thread's exit frees the cache */
    pthread_once(&wq_cache_once, dx__cache_key_init);
    pthread_setspecific(wq_cache_key, &wq_cache);
    wq_cache.registered = true;
  }
  dx_wq_node **list = small ? &wq_cache.small : &wq_cache.large;
  n->next = *list;
  *list = n;
  if (small)
    wq_cache.nsmall++;
  else
    wq_cache.nlarge++;
  return true;
}

/* ---- nodes ---------------------------------------------------------- */

static void dx__node_free(dx_wq_node *n) {
  if (n->kind == DX_WQ_REF) {
    dx_sbuf_unref(n->sbuf);
    free(n);
    return;
  }
  if (n->kind == DX_WQ_CHUNK)
    for (uint32_t i = n->start; i < n->end; i++) dx_sbuf_unref(dx__refs(n)[i].b);
  if (!dx__cache_give(n)) free(n);
}

/* Data capacity for a new copy block that must hold at least `need` bytes
 * (need <= DX_WQ_MAX_BLOCK). Only after a copy block filled up do more
 * copies look likely, and then 16 KiB blocks amortise the allocations; a
 * lone write, or one between shared references (a slow receiver of a
 * broadcast with a few pings in between), gets a small block, so memory
 * tracks the bytes queued. A big write gets exactly its size: one
 * allocation, one iovec. */
static size_t dx__block_cap(const dx_wqueue *q, size_t need) {
  bool streaming = q->tail && q->tail->kind == DX_WQ_COPY;
  if (!streaming && need <= DX_WQ_FIRST_BLOCK - DX_WQ_HDR) return DX_WQ_FIRST_BLOCK - DX_WQ_HDR;
  if (need <= DX_WQ_BLOCK - DX_WQ_HDR) return DX_WQ_BLOCK - DX_WQ_HDR;
  return need;
}

static dx_wq_node *dx__block_new(size_t cap) {
  dx_wq_node *n = dx__cache_take(cap);
  if (!n) n = malloc(DX_WQ_HDR + cap);
  if (!n) return NULL;
  n->next = NULL;
  n->start = n->end = 0;
  n->cap = (uint32_t)cap;
  n->kind = DX_WQ_COPY;
  n->sbuf = NULL;
  return n;
}

/* Link the chain first..last in after the tail: last becomes the tail and
 * points to the head. */
static void dx__append(dx_wqueue *q, dx_wq_node *first, dx_wq_node *last) {
  dx_wq_node *t = q->tail;
  if (t) {
    last->next = t->next;
    t->next = first;
  } else {
    last->next = first;
  }
  q->tail = last;
}

static inline size_t dx__tail_room(const dx_wqueue *q) {
  const dx_wq_node *t = q->tail;
  return (t && t->kind == DX_WQ_COPY) ? (size_t)(t->cap - t->end) : 0;
}

/* ---- writes --------------------------------------------------------- */

int dx_wq_write(dx_wqueue *q, const void *p, size_t n) {
  const uint8_t *src = p;
  size_t room = dx__tail_room(q);
  if (n <= room) {
    if (n == 0) return 0;
    memcpy(q->tail->data + q->tail->end, src, n);
    q->tail->end += (uint32_t)n;
    q->bytes += n;
    return 0;
  }

  /* Allocate the whole overflow first so a failure queues nothing. */
  size_t rest = n - room;
  dx_wq_node *first = NULL, *last = NULL;
  for (size_t left = rest; left > 0;) {
    size_t want = left < DX_WQ_MAX_BLOCK ? left : DX_WQ_MAX_BLOCK;
    dx_wq_node *b = dx__block_new(first ? want : dx__block_cap(q, want));
    if (!b) {
      while (first) {
        dx_wq_node *next = first->next;
        free(first);
        first = next;
      }
      return DX_ENOMEM;
    }
    if (last)
      last->next = b;
    else
      first = b;
    last = b;
    left -= want;
  }

  if (room) {
    memcpy(q->tail->data + q->tail->end, src, room);
    q->tail->end += (uint32_t)room;
    src += room;
  }
  for (dx_wq_node *b = first; b; b = b->next) {
    size_t take = rest < b->cap ? rest : b->cap;
    memcpy(b->data, src, take);
    b->end = (uint32_t)take;
    src += take;
    rest -= take;
  }
  dx__append(q, first, last);
  q->bytes += n;
  return 0;
}

#define DX_WQ_CHUNK_REFS (DX_WQ_SMALL_CAP / sizeof(dx_wq_ref))

int dx_wq_write_shared(dx_wqueue *q, dx_sbuf *b, size_t off, size_t n) {
  if (off > b->size || n > b->size - off || off + n > UINT32_MAX) return DX_EINVAL;
  if (n == 0) return 0;
  dx_wq_node *t = q->tail;
  if (t && t->kind == DX_WQ_CHUNK && t->end < DX_WQ_CHUNK_REFS) {
    dx__refs(t)[t->end++] = (dx_wq_ref){dx_sbuf_ref(b), (uint32_t)off, (uint32_t)(off + n)};
    q->bytes += n;
    return 0;
  }
  dx_wq_node *r;
  if (t && t->kind != DX_WQ_COPY) { /* a run of references: chunk them */
    r = dx__block_new(DX_WQ_SMALL_CAP);
    if (!r) return DX_ENOMEM;
    r->kind = DX_WQ_CHUNK;
    dx__refs(r)[0] = (dx_wq_ref){dx_sbuf_ref(b), (uint32_t)off, (uint32_t)(off + n)};
    r->end = 1;
  } else {
    r = malloc(DX_WQ_HDR);
    if (!r) return DX_ENOMEM;
    r->next = NULL;
    r->start = (uint32_t)off;
    r->end = (uint32_t)(off + n);
    r->cap = 0;
    r->kind = DX_WQ_REF;
    r->sbuf = dx_sbuf_ref(b);
  }
  dx__append(q, r, r);
  q->bytes += n;
  return 0;
}

uint8_t *dx_wq_reserve(dx_wqueue *q, size_t n) {
  if (n <= dx__tail_room(q)) return q->tail->data + q->tail->end;
  if (n > DX_WQ_MAX_BLOCK) return NULL;
  dx_wq_node *b = dx__block_new(dx__block_cap(q, n));
  if (!b) return NULL;
  dx__append(q, b, b);
  return b->data;
}

void dx_wq_commit(dx_wqueue *q, size_t n) {
  if (n == 0) return;
  q->tail->end += (uint32_t)n;
  q->bytes += n;
}

/* ---- reads ---------------------------------------------------------- */

int dx_wq_iov(const dx_wqueue *q, struct iovec *iov, int max, size_t *total) {
  int cnt = 0;
  size_t sum = 0;
  const dx_wq_node *t = q->tail;
  for (const dx_wq_node *n = t ? t->next : NULL; n && cnt < max; n = n == t ? NULL : n->next) {
    if (n->kind == DX_WQ_CHUNK) {
      const dx_wq_ref *r = dx__refs(n);
      for (uint32_t i = n->start; i < n->end && cnt < max; i++) {
        size_t len = r[i].end - r[i].start;
        iov[cnt].iov_base = r[i].b->data + r[i].start;
        iov[cnt].iov_len = len;
        sum += len;
        cnt++;
      }
      continue;
    }
    size_t len = n->end - n->start;
    if (len == 0) continue; /* a reserved block that got nothing */
    const uint8_t *base = n->kind == DX_WQ_COPY ? n->data : n->sbuf->data;
    iov[cnt].iov_base = (void *)(base + n->start);
    iov[cnt].iov_len = len;
    sum += len;
    cnt++;
  }
  *total = sum;
  return cnt;
}

/* Drop up to n bytes from the head of chunk h; returns what is left of n
 * (0 when the chunk still holds unsent references). */
static size_t dx__chunk_consume(dx_wq_node *h, size_t n) {
  dx_wq_ref *r = dx__refs(h);
  while (h->start < h->end) {
    dx_wq_ref *e = &r[h->start];
    size_t len = e->end - e->start;
    if (len > n) {
      e->start += (uint32_t)n;
      return 0;
    }
    n -= len;
    dx_sbuf_unref(e->b);
    h->start++;
  }
  return n;
}

void dx_wq_consume(dx_wqueue *q, size_t n) {
  q->bytes -= n;
  dx_wq_node *t = q->tail;
  while (t) {
    dx_wq_node *h = t->next;
    if (h->kind == DX_WQ_CHUNK) {
      n = dx__chunk_consume(h, n);
      if (h->start < h->end) break;
    } else {
      size_t len = h->end - h->start;
      if (len > n) {
        h->start += (uint32_t)n;
        break;
      }
      n -= len;
    }
    if (h == t)
      t = NULL; /* that was the last node */
    else
      t->next = h->next;
    dx__node_free(h);
  }
  q->tail = t;
}

size_t dx_wq_memory(const dx_wqueue *q) {
  size_t sum = 0;
  const dx_wq_node *t = q->tail;
  for (const dx_wq_node *n = t ? t->next : NULL; n; n = n == t ? NULL : n->next)
    sum += DX_WQ_HDR + n->cap;
  return sum;
}

void dx_wq_clear(dx_wqueue *q) {
  dx_wq_node *t = q->tail;
  if (t) {
    dx_wq_node *n = t->next;
    t->next = NULL; /* break the ring: the walk ends after the tail */
    while (n) {
      dx_wq_node *next = n->next;
      dx__node_free(n);
      n = next;
    }
  }
  dx_wq_init(q);
}
