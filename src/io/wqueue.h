/* duplex — write queue: bytes waiting to go out on one stream.
 *
 * A FIFO of nodes, each either
 *   - a copy block: bytes copied in by dx_wq_write/dx_wq_reserve. Small
 *     writes are packed into the tail block. A new block is small (1 KiB)
 *     unless it follows a full copy block (then 16 KiB); a write larger
 *     than that gets one block of its own size. Blocks are freed as soon as
 *     they are sent, so an idle queue holds no memory at all;
 *   - a reference to a shared, reference-counted buffer (dx_sbuf), for
 *     broadcast: encode once, queue a 32-byte reference on every receiver.
 *     References queued right after a reference go into 1 KiB chunks of 62
 *     (from the block cache): a slow receiver's backlog costs one
 *     allocation per 62 deliveries and gathers from contiguous memory.
 *
 * dx_wq_iov() gathers the queue into an iovec array for one writev, and
 * dx_wq_consume() drops what the kernel took.
 *
 * Thread-safety: none; a queue and the sbufs it references belong to one
 * thread (the loop's).
 */
#ifndef DX_IO_WQUEUE_H
#define DX_IO_WQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "duplex/error.h"

/* ---- shared buffers ------------------------------------------------- */

/* A reference-counted byte buffer with the data inline after the header.
 * Create with refs == 1, fill data[0..size), queue it on any number of
 * streams with dx_stream_write_shared (each holds a reference until sent),
 * then drop your own reference. The count is NOT atomic: all refs/unrefs
 * must happen on one thread (use one sbuf per loop when broadcasting across
 * loops). Writing into data after queuing it is a bug. */
typedef struct dx_sbuf {
  uint32_t refs;
  uint32_t reserved;
  size_t size; /* capacity of data[], as given to dx_sbuf_new */
  size_t len;  /* for the owner's bookkeeping; the queue never reads it */
  uint8_t data[];
} dx_sbuf;

/* A new buffer with room for `size` bytes and one reference, or NULL. */
dx_sbuf *dx_sbuf_new(size_t size);
/* Take another reference; returns b. */
dx_sbuf *dx_sbuf_ref(dx_sbuf *b);
/* Drop a reference; the last one frees the buffer. NULL is a no-op. */
void dx_sbuf_unref(dx_sbuf *b);

/* ---- the queue ------------------------------------------------------ */

typedef struct dx_wq_node dx_wq_node;

/* 16 bytes: the nodes form a ring and the queue keeps only its tail (the
 * head is tail->next), one word less in every connection. */
typedef struct dx_wqueue {
  dx_wq_node *tail; /* the newest node, NULL when empty */
  size_t bytes;     /* unsent bytes in the queue */
} dx_wqueue;

/* Sizes of copy blocks, allocation included. */
#define DX_WQ_FIRST_BLOCK 1024u
#define DX_WQ_BLOCK (16u * 1024u)

static inline void dx_wq_init(dx_wqueue *q) {
  q->tail = NULL;
  q->bytes = 0;
}

static inline size_t dx_wq_bytes(const dx_wqueue *q) { return q->bytes; }
static inline bool dx_wq_empty(const dx_wqueue *q) { return q->tail == NULL; }

/* Copy n bytes to the tail. Returns 0 or DX_ENOMEM (then nothing was
 * queued). */
int dx_wq_write(dx_wqueue *q, const void *p, size_t n);

/* Queue b->data[off, off+n) by reference, taking a reference on b. Returns
 * 0, DX_ENOMEM, or DX_EINVAL when the range is outside b->size. */
int dx_wq_write_shared(dx_wqueue *q, dx_sbuf *b, size_t off, size_t n);

/* n contiguous writable bytes at the tail, or NULL (out of memory, or n >
 * 1 GiB). Nothing is queued until dx_wq_commit(q, m) with m <= n; no other
 * queue call may come in between, and commit only follows a successful
 * reserve. */
#define DX_WQ_MAX_RESERVE ((size_t)1 << 30)
uint8_t *dx_wq_reserve(dx_wqueue *q, size_t n);
void dx_wq_commit(dx_wqueue *q, size_t n);

/* Fill up to `max` iovecs from the head. Returns the count; *total gets
 * their byte sum. */
int dx_wq_iov(const dx_wqueue *q, struct iovec *iov, int max, size_t *total);

/* Drop the first n bytes (n <= bytes), freeing sent blocks and releasing
 * sent references. */
void dx_wq_consume(dx_wqueue *q, size_t n);

/* Heap bytes the queue holds (blocks and reference nodes, not the shared
 * buffers themselves). Walks the queue: for diagnostics and tests. */
size_t dx_wq_memory(const dx_wqueue *q);

/* Drop everything. */
void dx_wq_clear(dx_wqueue *q);

/* The calling thread's cache of freed blocks: the loop calls this once per
 * turn with its clock. Once a period (1 s) it frees the blocks that stayed
 * unused in the cache for the whole period. Returns true while the cache
 * holds blocks, so the loop wakes within a period to trim again. */
bool dx_wq_cache_tick(uint64_t now_ms);

/* Bytes the calling thread's cache holds (tests, diagnostics). */
size_t dx_wq_cache_bytes(void);

#endif /* DX_IO_WQUEUE_H */
