/* duplex — gathering an HTTP message head (and, for the server's HTTP
 * handlers, a body of known length) across reads, for both roles. Sans-I/O:
 * the caller hands in each read and a parser; nothing here reads a socket.
 *
 * A head can only end with a new line, so bytes kept from earlier reads are
 * parsed again only when a read brings a '\n' (or the size limit is
 * reached): a peer dribbling its head one byte per packet costs one parse
 * per line, not one per read. The first read is parsed in place, zero-copy;
 * bytes are copied only when a head spans reads. */
#ifndef DX_PROTO_HEAD_GATHER_H
#define DX_PROTO_HEAD_GATHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct dx_gather {
  uint8_t *buf;  /* bytes kept from earlier reads; NULL when none */
  uint32_t len;  /* bytes kept */
  uint32_t cap;  /* size of buf */
  uint32_t want; /* 0: gathering a head; else gather this many bytes, then parse */
} dx_gather;

/* Parse (buf, len): the head's length when complete, DX_EAGAIN for "need
 * more", or a negative DX_E* error (a request or response parser bound to
 * the caller's struct). */
typedef int (*dx_gather_parse_fn)(const uint8_t *buf, size_t len, void *arg);

/* Take one read (len may be 0: parse what is kept again, e.g. pipelined
 * bytes left by the previous request). Returns the head's length with
 * *buf and *have set to the bytes, head first and then whatever followed it:
 * `data` itself when nothing was kept (parsed in place), else g->buf (which
 * stays g's). Returns DX_EAGAIN when the bytes were kept and more are
 * needed, or a negative error from `parse`, or DX_ENOMEM. `max` is the
 * head size limit (the parser enforces it; here it sizes the buffer). */
int dx__gather_feed(dx_gather *g, uint8_t *data, size_t len, size_t max, dx_gather_parse_fn parse,
                    void *arg, uint8_t **buf, size_t *have);

/* After a complete head whose message needs `total` bytes (head and body)
 * and has only `have` of them: keep (buf, have) as returned by
 * dx__gather_feed and gather until `total` bytes are kept; dx__gather_feed
 * answers DX_EAGAIN until then, and parses once more when they are.
 * Returns 0 or DX_ENOMEM. */
int dx__gather_until(dx_gather *g, uint8_t *buf, size_t have, size_t total);

/* The first `used` of the `have` bytes returned by dx__gather_feed are
 * done with. Bytes that were g's and are left move to the front of g (the
 * buffer is freed when none are left): call dx__gather_feed with len 0 to
 * parse them. Bytes that were the caller's `data` are left to the caller
 * (buf + used). */
void dx__gather_consume(dx_gather *g, const uint8_t *buf, size_t have, size_t used);

void dx__gather_free(dx_gather *g);

/* Parses done by dx__gather_feed on this thread (for tests). */
extern _Thread_local unsigned long dx__gather_parses;

#endif /* DX_PROTO_HEAD_GATHER_H */
