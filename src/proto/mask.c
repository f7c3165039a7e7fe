/* duplex — payload masking (RFC 6455 section 5.3).
 *
 * Masking XORs the payload with a 4-byte key repeated. The key is rotated
 * once to the phase of the first byte and replicated into a 64-bit word, so
 * the bulk of the work is wide XORs: 64 bytes per iteration as four SSE2
 * vectors on x86-64 (baseline there, so no run-time dispatch), or as eight
 * 64-bit words elsewhere. Loads and stores are unaligned-safe (memcpy or
 * loadu/storeu). Byte loops run only on the few bytes before the destination
 * is aligned (large buffers) and after the last whole word.
 */
#include "duplex/frame.h"

#include <stdbool.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline bool little_endian(void) {
  const uint16_t one = 1; /* folded to a constant by the compiler */
  uint8_t first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* The key as 8 bytes in memory order starting at key phase `rot`, so that
 * XOR with a word loaded from a payload offset p (p % 4 == rot) is right.
 * Built with register arithmetic: assembling it in a byte array and
 * reloading it costs a store-forwarding stall, which dominated short
 * payloads. */
static inline uint64_t key_word(const uint8_t key[4], unsigned rot) {
  uint32_t k32;
  memcpy(&k32, key, 4);
  uint64_t k = (uint64_t)k32 << 32 | k32; /* key twice: same bytes on any endianness */
  unsigned s = 8 * rot;                   /* rotate by whole bytes, in memory order */
  if (little_endian()) return (k >> s) | (k << ((64 - s) & 63));
  return (k << s) | (k >> ((64 - s) & 63));
}

/* dst and src are either equal or disjoint: each block is loaded whole
 * before it is stored, which is what makes dst == src work. */
static inline void mask_run(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                            unsigned rot) {
  if (len >= 256) {
    /* Align the stores: one in four unaligned 16-byte stores would straddle
     * two cache lines. Not worth the byte loop on short payloads. */
    size_t head = (size_t)(-(uintptr_t)dst & 15u);
    for (size_t i = 0; i < head; i++) dst[i] = src[i] ^ key[(rot + i) & 3];
    dst += head, src += head, len -= head;
    rot = (unsigned)(rot + head) & 3;
  }
  /* Every step below advances by a multiple of 4, so k stays in phase. */
  uint64_t k = key_word(key, rot);
#if defined(__SSE2__)
  __m128i kv = _mm_set1_epi64x((long long)k);
  while (len >= 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + 48));
    _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
    _mm_storeu_si128((__m128i *)(void *)(dst + 16), _mm_xor_si128(b, kv));
    _mm_storeu_si128((__m128i *)(void *)(dst + 32), _mm_xor_si128(c, kv));
    _mm_storeu_si128((__m128i *)(void *)(dst + 48), _mm_xor_si128(d, kv));
    dst += 64, src += 64, len -= 64;
  }
  while (len >= 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
    _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
    dst += 16, src += 16, len -= 16;
  }
#else
  /* Portable: fixed-size memcpy compiles to plain (possibly vector) moves. */
  while (len >= 64) {
    uint64_t w[8];
    memcpy(w, src, sizeof w);
    for (int j = 0; j < 8; j++) w[j] ^= k;
    memcpy(dst, w, sizeof w);
    dst += 64, src += 64, len -= 64;
  }
#endif
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, src, sizeof w);
    w ^= k;
    memcpy(dst, &w, sizeof w);
    dst += 8, src += 8, len -= 8;
  }
  for (size_t i = 0; i < len; i++) dst[i] = src[i] ^ key[(rot + i) & 3];
}

void dx_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset) {
  mask_run(data, data, len, key, (unsigned)(offset & 3));
}

void dx_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                  uint64_t offset) {
  mask_run(dst, src, len, key, (unsigned)(offset & 3));
}
