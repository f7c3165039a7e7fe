/* duplex tests — a reference UTF-8 verdict written differently from
 * src/proto/utf8.c: decode each code point and range-check it. Shared by
 * the unit tests (tests/unit/test_utf8.c) and the fuzz target
 * (tests/fuzz/fuzz_utf8.c). */
#ifndef DX_TEST_UTF8_REF_H
#define DX_TEST_UTF8_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Complete-string verdict by decoding code points. */
static inline bool ref_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned b = p[i];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) {
      i++;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

#endif /* DX_TEST_UTF8_REF_H */
