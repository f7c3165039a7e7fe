/* duplex — a per-thread cache of large buffers in power-of-two sizes.
 *
 * Reassembling messages that span reads takes one buffer per message. With
 * plain malloc/free, buffers of 64 KiB and more freed at the top of the
 * heap made glibc trim it with brk and the next message fault the pages
 * back in (a quarter of the server's CPU at 100 x 64 KiB echo). Freed
 * buffers wait here for the next message instead, and the loop's tick
 * gives back, once a second, those that sat unused for the whole second,
 * so an idle thread holds nothing after two seconds.
 *
 * Sizes are rounded up to a power of two from 4 KiB to 2 MiB; larger ones
 * are plain malloc/free. At most 32 MiB per thread is kept (ten 1 MiB
 * messages being reassembled at once take 2 MiB buffers). Freed when the
 * thread exits. Thread-safety: each thread has its own cache; a buffer may
 * be given back on any thread (it joins that thread's cache).
 */
#ifndef DX_COMMON_BUFCACHE_H
#define DX_COMMON_BUFCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A buffer of at least *size bytes; *size gets its real size (pass it to
 * dx_buf_put). NULL when out of memory. */
void *dx_buf_get(size_t *size);

/* The size dx_buf_get gives for a request of n bytes. */
size_t dx_buf_size(size_t n);

/* Give back a buffer from dx_buf_get with the size it reported. NULL is a
 * no-op. */
void dx_buf_put(void *p, size_t size);

/* Called once per loop turn with the loop's clock (ms): frees what sat
 * unused for a whole period (1 s). True while the cache holds buffers. */
bool dx_bufcache_tick(uint64_t now_ms);

/* Bytes the calling thread's cache holds (tests, diagnostics). */
size_t dx_bufcache_bytes(void);

#endif /* DX_COMMON_BUFCACHE_H */
