/* duplex — streaming, fail-fast UTF-8 validation (RFC 3629 section 4).
 *
 * Well-formed sequences, by lead byte (only the second byte's range varies
 * with the lead; later bytes are always 80..BF):
 *
 *   00..7F                         ASCII
 *   C2..DF  80..BF                 (C0, C1 would be overlong)
 *   E0      A0..BF  80..BF         (E0 80..9F would be overlong)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF         (ED A0..BF would be a UTF-16 surrogate)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF 80..BF  (F0 80..8F would be overlong)
 *   F1..F3  80..BF  80..BF 80..BF
 *   F4      80..8F  80..BF 80..BF  (F4 90.. would be > U+10FFFF)
 *   80..BF and F5..FF never start a sequence.
 *
 * That table is a 9-state automaton: "at a boundary", "1/2/3 continuation
 * bytes to go", the four special second-byte ranges (after E0, ED, F0, F4)
 * and "rejected". Every ill-formed input reaches "rejected" at the first
 * byte that makes it ill-formed, and the state is all that needs to be
 * carried from one piece to the next.
 *
 * Speed. A table-driven automaton is normally a chain of dependent loads
 * (state -> table -> state), several cycles per byte. Here each state is
 * encoded as a bit offset (a multiple of 6) and each input byte selects a
 * 64-bit row that holds every state's successor at that state's offset:
 * next = row[byte] >> state. The row load depends only on the input, so the
 * loop-carried chain is one shift per byte. "Rejected" is absorbing, so it is
 * tested once per 16-byte block rather than per byte; a bad piece still fails
 * on the call that delivers the offending byte.
 *
 * Pure ASCII is the common case for text messages: while at a boundary,
 * ASCII is skipped 64 bytes per iteration with SSE2 (or 8 bytes per word in
 * the portable build), and the automaton runs only from the first non-ASCII
 * byte.
 */
#include "duplex/utf8.h"

#include "duplex/error.h"

#include <string.h>

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define DX_UTF8_SSE2 1
#endif

/* States, as bit offsets into a row. ACC must be 0: dx_utf8_complete()
 * tests state == 0. */
enum {
  S_ACC = 0 * 6, /* at a code point boundary */
  S_C1 = 1 * 6,  /* one more 80..BF byte to go */
  S_C2 = 2 * 6,  /* two more */
  S_C3 = 3 * 6,  /* three more */
  S_E0 = 4 * 6,  /* after E0: A0..BF, then one more */
  S_ED = 5 * 6,  /* after ED: 80..9F, then one more */
  S_F0 = 6 * 6,  /* after F0: 90..BF, then two more */
  S_F4 = 7 * 6,  /* after F4: 80..8F, then two more */
  S_REJ = 8 * 6, /* ill-formed; absorbing */
};

/* One row: the successor of each state on a given byte. */
#define T(from, to) ((uint64_t)(to) << (from))
#define ROW(acc, c1, c2, c3, e0, ed, f0, f4)                                                       \
  (T(S_ACC, acc) | T(S_C1, c1) | T(S_C2, c2) | T(S_C3, c3) | T(S_E0, e0) | T(S_ED, ed) |           \
   T(S_F0, f0) | T(S_F4, f4) | T(S_REJ, S_REJ))

#define R_ASC ROW(S_ACC, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* 00..7F */
#define R_K8 ROW(S_REJ, S_ACC, S_C1, S_C2, S_REJ, S_C1, S_REJ, S_C2)      /* 80..8F */
#define R_K9 ROW(S_REJ, S_ACC, S_C1, S_C2, S_REJ, S_C1, S_C2, S_REJ)      /* 90..9F */
#define R_KA ROW(S_REJ, S_ACC, S_C1, S_C2, S_C1, S_REJ, S_C2, S_REJ)      /* A0..BF */
#define R_L2 ROW(S_C1, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* C2..DF */
#define R_E0 ROW(S_E0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* E0 */
#define R_L3 ROW(S_C2, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* E1..EC, EE, EF */
#define R_ED ROW(S_ED, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* ED */
#define R_F0 ROW(S_F0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* F0 */
#define R_L4 ROW(S_C3, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* F1..F3 */
#define R_F4 ROW(S_F4, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)   /* F4 */
#define R_BAD ROW(S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* C0, C1, F5..FF */

#define R16(r) r, r, r, r, r, r, r, r, r, r, r, r, r, r, r, r
static const uint64_t row[256] = {
    R16(R_ASC), R16(R_ASC), R16(R_ASC), R16(R_ASC),                             /* 00..3F */
    R16(R_ASC), R16(R_ASC), R16(R_ASC), R16(R_ASC),                             /* 40..7F */
    R16(R_K8),  R16(R_K9),  R16(R_KA),  R16(R_KA),                              /* 80..BF */
    R_BAD,      R_BAD,      R_L2,       R_L2,       R_L2,  R_L2,  R_L2,  R_L2,  /* C0.. */
    R_L2,       R_L2,       R_L2,       R_L2,       R_L2,  R_L2,  R_L2,  R_L2,  /* ..CF */
    R16(R_L2),                                                                  /* D0..DF */
    R_E0,       R_L3,       R_L3,       R_L3,       R_L3,  R_L3,  R_L3,  R_L3,  /* E0.. */
    R_L3,       R_L3,       R_L3,       R_L3,       R_L3,  R_ED,  R_L3,  R_L3,  /* ..EF */
    R_F0,       R_L4,       R_L4,       R_L4,       R_F4,  R_BAD, R_BAD, R_BAD, /* F0.. */
    R_BAD,      R_BAD,      R_BAD,      R_BAD,      R_BAD, R_BAD, R_BAD, R_BAD, /* ..FF */
};

/* The state lives in the low 6 bits of s; the bits above are left-overs of
 * the row and are never looked at. Not masking them keeps the chain at one
 * shift per byte, and `& 63` on the count is free: x86-64 and AArch64
 * shifts take the count mod 64 anyway, it only tells the C compiler that
 * the shift is in range. */
static inline uint64_t step(uint64_t s, uint8_t b) { return row[b] >> (s & 63); }

/* Non-zero when p[0..16) holds a byte >= 0x80. */
static inline unsigned non_ascii16(const uint8_t *p) {
#if DX_UTF8_SSE2
  return (unsigned)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)p));
#else
  uint64_t a, b;
  memcpy(&a, p, 8);
  memcpy(&b, p + 8, 8);
  return ((a | b) & 0x8080808080808080u) != 0;
#endif
}

/* Index of the first non-ASCII byte in p[i..n), or n. */
static size_t skip_ascii(const uint8_t *p, size_t i, size_t n) {
#if DX_UTF8_SSE2
  while (n - i >= 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 48));
    /* One test for 64 bytes; the top bit of each byte says non-ASCII. */
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) {
      uint64_t m = (uint64_t)(unsigned)_mm_movemask_epi8(a) |
                   (uint64_t)(unsigned)_mm_movemask_epi8(b) << 16 |
                   (uint64_t)(unsigned)_mm_movemask_epi8(c) << 32 |
                   (uint64_t)(unsigned)_mm_movemask_epi8(d) << 48;
      return i + (size_t)__builtin_ctzll(m);
    }
    i += 64;
  }
  while (n - i >= 16) {
    unsigned m = non_ascii16(p + i);
    if (m) return i + (size_t)__builtin_ctz(m);
    i += 16;
  }
#else
  while (n - i >= 16 && !non_ascii16(p + i)) i += 16;
#endif
  while (i < n && p[i] < 0x80) i++;
  return i;
}

int dx_utf8_feed(dx_utf8 *v, const uint8_t *p, size_t n) {
  uint64_t s = v->state; /* stored masked: 0..S_REJ */
  if (s == S_REJ) return DX_EUTF8;
  size_t i = 0;

  while (n - i >= 16) {
    /* The block test first: in mixed text it is predictably false, while
     * "at a boundary" is a coin toss. */
    if (!non_ascii16(p + i) && (s & 63) == S_ACC) {
      i = skip_ascii(p, i + 16, n);
      if (n - i >= 16) {
        /* Often a lone character between ASCII runs: step through one
         * sequence's worth of bytes, then test for ASCII again. */
        s = step(step(step(step(s, p[i]), p[i + 1]), p[i + 2]), p[i + 3]);
        i += 4;
        if ((s & 63) == S_REJ) goto fail;
      }
      continue;
    }
    /* 16 bytes through the automaton; the shift chain is the only
     * dependency between iterations. */
    for (int k = 0; k < 16; k++) s = step(s, p[i + k]);
    i += 16;
    if ((s & 63) == S_REJ) goto fail;
  }
  for (; i < n; i++) s = step(s, p[i]);
  s &= 63;
  if (s == S_REJ) goto fail;
  v->state = (uint32_t)s;
  return 0;

fail:
  v->state = S_REJ;
  return DX_EUTF8;
}

bool dx_utf8_valid(const uint8_t *p, size_t n) {
  dx_utf8 v;
  dx_utf8_init(&v);
  return dx_utf8_feed(&v, p, n) == 0 && dx_utf8_complete(&v);
}
