#include "hub/blob.h"

#include <stdlib.h>
#include <string.h>

hub_blob *hub_blob_new(const void *data, size_t len) {
  hub_blob *b = malloc(sizeof *b + len + 1);
  if (!b) return NULL;
  atomic_init(&b->refs, 1);
  b->len = len;
  if (len) memcpy(b->data, data, len);
  b->data[len] = '\0';
  return b;
}

hub_blob *hub_blob_take(char *s) {
  if (!s) return NULL;
  hub_blob *b = hub_blob_new(s, strlen(s));
  free(s);
  return b;
}

void hub_blob_unref(hub_blob *b) {
  if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}
