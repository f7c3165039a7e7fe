/* hub — reference-counted immutable bytes: an envelope built once and shared
 * by the history, every loop's fan-out and every resume that replays it.
 *
 * Threads: the count is atomic, so a blob may be referenced and released on
 * any thread; the bytes never change after hub_blob_new. */
#ifndef DX_HUB_BLOB_H
#define DX_HUB_BLOB_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct hub_blob {
  atomic_uint refs;
  size_t len;
  char data[]; /* len bytes, then a NUL (so JSON text can be parsed in place) */
} hub_blob;

/* A copy of `data` with one reference; NULL when out of memory. */
hub_blob *hub_blob_new(const void *data, size_t len);
/* Take ownership of a malloc'd NUL-terminated string (json_dumps' result):
 * copies it into a blob and frees it. NULL (and `s` freed) on failure. */
hub_blob *hub_blob_take(char *s);
static inline hub_blob *hub_blob_ref(hub_blob *b) {
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  return b;
}
void hub_blob_unref(hub_blob *b); /* NULL is ok */

#endif
