/* Gathering a message head across reads (head_gather.h). */
#include "proto/head_gather.h"

#include <stdlib.h>
#include <string.h>

#include "duplex/error.h"

_Thread_local unsigned long dx__gather_parses;

static int parse(dx_gather_parse_fn fn, const uint8_t *buf, size_t len, void *arg) {
  dx__gather_parses++;
  return fn(buf, len, arg);
}

/* Room for `n` bytes in all. */
static int reserve(dx_gather *g, size_t n) {
  if (n > UINT32_MAX) return DX_ENOMEM;
  if (n <= g->cap) return 0;
  uint8_t *b = realloc(g->buf, n);
  if (!b) return DX_ENOMEM;
  g->buf = b;
  g->cap = (uint32_t)n;
  return 0;
}

int dx__gather_feed(dx_gather *g, uint8_t *data, size_t len, size_t max, dx_gather_parse_fn fn,
                    void *arg, uint8_t **buf, size_t *have) {
  if (!g->len) {
    if (!len) return DX_EAGAIN;
    int rc = parse(fn, data, len, arg);
    if (rc != DX_EAGAIN) {
      *buf = data;
      *have = len;
      return rc;
    }
    /* The parser says "need more" only below the limit, so the first
     * buffer holds the whole head; one more read may overshoot it (frames
     * or a body may follow the head in that read), then it grows once. */
    if (reserve(g, (max < len ? len : max) + 1)) return DX_ENOMEM;
    memcpy(g->buf, data, len);
    g->len = (uint32_t)len;
    return DX_EAGAIN;
  }
  if (len) {
    if ((size_t)g->len + len > UINT32_MAX || reserve(g, (size_t)g->len + len)) return DX_ENOMEM;
    memcpy(g->buf + g->len, data, len);
    g->len += (uint32_t)len;
    if (g->want ? g->len < g->want : !memchr(data, '\n', len) && g->len < max) return DX_EAGAIN;
  }
  int rc = parse(fn, g->buf, g->len, arg);
  if (rc != DX_EAGAIN) {
    *buf = g->buf;
    *have = g->len;
  }
  return rc;
}

int dx__gather_until(dx_gather *g, uint8_t *buf, size_t have, size_t total) {
  if (total > UINT32_MAX || reserve(g, total > have ? total : have)) return DX_ENOMEM;
  if (buf != g->buf) {
    memcpy(g->buf, buf, have);
    g->len = (uint32_t)have;
  }
  g->want = (uint32_t)total;
  return 0;
}

void dx__gather_consume(dx_gather *g, const uint8_t *buf, size_t have, size_t used) {
  g->want = 0;
  if (buf != g->buf) return;
  if (used >= have) {
    dx__gather_free(g);
    return;
  }
  memmove(g->buf, g->buf + used, have - used);
  g->len = (uint32_t)(have - used);
}

void dx__gather_free(dx_gather *g) {
  free(g->buf);
  *g = (dx_gather){0};
}
