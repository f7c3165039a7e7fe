/* duplex — streaming, fail-fast UTF-8 validation (RFC 3629).
 *
 * A validator is a small value (no allocation). Feed it a text message's
 * bytes in as many pieces as they arrive; it reports an invalid sequence as
 * soon as the byte that makes it invalid is seen, even when the sequence is
 * split across pieces. Rejects overlong encodings, UTF-16 surrogates
 * (U+D800..U+DFFF), code points above U+10FFFF, stray continuation bytes and
 * the bytes 0xC0, 0xC1, 0xF5..0xFF. Pure ASCII runs are checked a machine word
 * (or vector) at a time; on x86-64 CPUs with SSSE3 (detected at run time),
 * non-ASCII text is checked 16 bytes at a time too.
 *
 * Thread-safety: a validator is a plain value; distinct validators may be
 * used from distinct threads.
 */
#ifndef DUPLEX_UTF8_H
#define DUPLEX_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_utf8 {
  uint32_t state; /* 0 = between code points; opaque otherwise */
} dx_utf8;

/* Start (or restart) validation of a new message. */
static inline void dx_utf8_init(dx_utf8 *v) { v->state = 0; }

/* Validate the next piece. Returns 0 if every byte so far can still begin a
 * valid message, DX_EUTF8 as soon as it cannot. After DX_EUTF8 the validator
 * stays failed until re-initialised. */
DX_API int dx_utf8_feed(dx_utf8 *v, const uint8_t *p, size_t n);

/* True when the bytes fed so far end on a code point boundary (so the
 * message is complete and valid). */
static inline bool dx_utf8_complete(const dx_utf8 *v) { return v->state == 0; }

/* One-shot: true if p[0..n) is a complete, valid UTF-8 string. */
DX_API bool dx_utf8_valid(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_UTF8_H */
