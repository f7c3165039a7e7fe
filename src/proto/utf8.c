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
 *
 * Non-ASCII text, on x86-64 CPUs with SSSE3 (checked at run time; the build
 * itself assumes only SSE2), goes 16 bytes at a time through a vector
 * check instead: every rule above is a condition on a byte and the one
 * before it (three table lookups, one per nibble, whose AND says which rule
 * a pair breaks), except "this must be a 3rd or 4th byte", which depends on
 * the bytes 2 and 3 back. See utf8_ssse3() below. It runs from a code point
 * boundary over whole blocks, and the automaton replays the last, possibly
 * unfinished, sequence, so the streaming state stays the automaton's.
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

#if DX_UTF8_SSE2 && (defined(__x86_64__) || defined(__i386__))
#include <stdatomic.h>
#include <tmmintrin.h>
#define DX_UTF8_SSSE3 1

/* Rules broken by a pair (previous byte, byte), as bits. A pair breaks rule
 * r when bit r is set in lo_prev_hi[prev >> 4] & lo_prev_lo[prev & 15] &
 * lo_cur_hi[byte >> 4]: each rule is a product of nibble ranges. */
enum {
  E_SHORT = 0x01,    /* lead byte, then no continuation */
  E_LONG = 0x02,     /* continuation after ASCII */
  E_OVER3 = 0x04,    /* E0 80..9F */
  E_SURR = 0x08,     /* ED A0..BF */
  E_OVER2 = 0x10,    /* C0/C1 and a continuation */
  E_BIG = 0x20,      /* F4 90..BF, F5..FF 90..BF */
  E_F8 = 0x40,       /* F0 80..8F (overlong), F5..FF 80..8F (too big) */
  E_TWO_CONT = 0x80, /* two continuations: right only as a 3rd/4th byte */
};

/* Bytes of `in` that end a block badly: a lead with too few bytes after it
 * (only a continuation may follow, so an ASCII block after them is wrong). */
__attribute__((target("ssse3"))) static inline __m128i unfinished(__m128i in) {
  const __m128i max = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, (char)0xEF,
                                    (char)0xDF, (char)0xBF);
  return _mm_subs_epu8(in, max);
}

/* Validate p[0, 16 * blocks) from a code point boundary, without the rule
 * that the last sequence must be finished (the caller replays it). Returns
 * true when no rule is broken. */
__attribute__((target("ssse3"))) static bool utf8_ssse3(const uint8_t *p, size_t blocks) {
  const __m128i prev_hi_tab = _mm_setr_epi8(
      E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG, E_LONG,         /* 0..7: ASCII */
      (char)E_TWO_CONT, (char)E_TWO_CONT, (char)E_TWO_CONT, (char)E_TWO_CONT, /* 8..B */
      E_SHORT | E_OVER2, E_SHORT, E_SHORT | E_OVER3 | E_SURR, E_SHORT | E_BIG | E_F8);
  const char any = (char)(E_SHORT | E_LONG | E_TWO_CONT);
  const __m128i prev_lo_tab = _mm_setr_epi8(
      (char)(any | E_OVER2 | E_OVER3 | E_F8), (char)(any | E_OVER2), any, any, /* 0..3 */
      (char)(any | E_BIG), (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8),
      (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8),
      (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8),
      (char)(any | E_BIG | E_F8 | E_SURR), (char)(any | E_BIG | E_F8), (char)(any | E_BIG | E_F8));
  const char cont = (char)(E_LONG | E_TWO_CONT | E_OVER2);
  const __m128i cur_hi_tab = _mm_setr_epi8(
      E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, E_SHORT, /* ASCII */
      (char)(cont | E_OVER3 | E_F8), (char)(cont | E_OVER3 | E_BIG), (char)(cont | E_SURR | E_BIG),
      (char)(cont | E_SURR | E_BIG), E_SHORT, E_SHORT, E_SHORT, E_SHORT); /* leads */
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m128i zero = _mm_setzero_si128();
  __m128i prev = zero, err = zero;
  for (size_t b = 0; b < blocks; b++, p += 16) {
    __m128i in = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (!_mm_movemask_epi8(in)) {
      /* ASCII: right unless the block before left a sequence open. */
      err = _mm_or_si128(err, unfinished(prev));
      prev = in;
      continue;
    }
    __m128i prev1 = _mm_alignr_epi8(in, prev, 15);
    __m128i rules = _mm_and_si128(
        _mm_and_si128(_mm_shuffle_epi8(prev_hi_tab, _mm_and_si128(_mm_srli_epi16(prev1, 4), nib)),
                      _mm_shuffle_epi8(prev_lo_tab, _mm_and_si128(prev1, nib))),
        _mm_shuffle_epi8(cur_hi_tab, _mm_and_si128(_mm_srli_epi16(in, 4), nib)));
    /* Where the byte 2 back is a 3- or 4-byte lead, or 3 back a 4-byte
     * lead, this byte must be a continuation after a continuation: exactly
     * E_TWO_CONT there, and E_TWO_CONT nowhere else. */
    __m128i prev2 = _mm_alignr_epi8(in, prev, 14);
    __m128i prev3 = _mm_alignr_epi8(in, prev, 13);
    __m128i lead34 = _mm_or_si128(_mm_subs_epu8(prev2, _mm_set1_epi8((char)0xDF)),
                                  _mm_subs_epu8(prev3, _mm_set1_epi8((char)0xEF)));
    __m128i must = _mm_andnot_si128(_mm_cmpeq_epi8(lead34, zero), _mm_set1_epi8((char)0x80));
    err = _mm_or_si128(err, _mm_xor_si128(rules, must));
    prev = in;
  }
  return _mm_movemask_epi8(_mm_cmpeq_epi8(err, zero)) == 0xFFFF;
}

static bool have_ssse3(void) {
  static atomic_int known; /* 0 unknown, 1 no, 2 yes; racing writers agree */
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (!k) {
    k = __builtin_cpu_supports("ssse3") ? 2 : 1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k == 2;
}

/* Start of the last sequence in p[0, end) if it is unfinished, else end. */
static size_t last_open_sequence(const uint8_t *p, size_t end) {
  for (size_t k = 1; k <= 3 && k <= end; k++) {
    uint8_t b = p[end - k];
    if (b < 0x80) return end;
    if (b >= 0xC0) {
      size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      return k < len ? end - k : end;
    }
  }
  return end;
}
#endif

int dx_utf8_feed(dx_utf8 *v, const uint8_t *p, size_t n) {
  uint64_t s = v->state; /* stored masked: 0..S_REJ */
  if (s == S_REJ) return DX_EUTF8;
  size_t i = 0;

  while (n - i >= 16) {
#if DX_UTF8_SSSE3
    /* Enough non-ASCII text from a boundary: the vector check. */
    if ((s & 63) == S_ACC && n - i >= 64 && non_ascii16(p + i) && have_ssse3()) {
      size_t end = i + (n - i) / 16 * 16;
      if (!utf8_ssse3(p + i, (end - i) / 16)) goto fail;
      i = last_open_sequence(p, end); /* the automaton replays it */
      continue;
    }
#endif
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
