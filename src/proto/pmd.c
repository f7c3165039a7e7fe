/* permessage-deflate codec on zlib (RFC 7692 section 7.2). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "duplex/deflate.h"
#include "duplex/error.h"
#include "proto/pmd_rx.h"

/* One compressor per window size (9..15 bits), made on first use: a peer
 * that limits our window (server_max_window_bits / client_max_window_bits
 * below 15) still gets no zlib state of its own, and every connection with
 * the same window compresses with the same stream. */
#define DX_PMD_MIN_BITS 9
#define DX_PMD_NDEF (15 - DX_PMD_MIN_BITS + 1)

struct dx_pmd_shared {
  z_stream def[DX_PMD_NDEF];  /* [bits - 9] */
  int def_level[DX_PMD_NDEF]; /* 0 = not initialised */
  z_stream inf;
  bool inf_ok;
  uint8_t *out; /* compression output, reused */
  size_t cap;
};

struct dx_pmd {
  dx_pmd_params params;
  dx_pmd_shared *shared;
  z_stream *def; /* own stream (context takeover), or NULL for the shared one */
  z_stream *inf;
  size_t threshold;
  int level;
  int mem_level;
  uint64_t rx_wire; /* the proto's: compressed bytes of the incoming message (pmd_rx.h) */
};

uint64_t *dx__pmd_rx_wire(dx_pmd *pmd) { return &pmd->rx_wire; }

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

dx_pmd_shared *dx_pmd_shared_new(void) { return calloc(1, sizeof(dx_pmd_shared)); }

void dx_pmd_shared_free(dx_pmd_shared *s) {
  if (!s) return;
  for (int i = 0; i < DX_PMD_NDEF; i++)
    if (s->def_level[i]) deflateEnd(&s->def[i]);
  if (s->inf_ok) inflateEnd(&s->inf);
  free(s->out);
  free(s);
}

dx_pmd *dx_pmd_new(const dx_pmd_params *params, const dx_deflate_opts *opts,
                   dx_pmd_shared *shared) {
  dx_pmd *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->params = *params;
  p->shared = shared;
  p->threshold = opts->threshold ? opts->threshold : 64;
  p->level = opts->level >= 1 && opts->level <= 9 ? opts->level : 6;
  p->mem_level = opts->mem_level >= 1 && opts->mem_level <= 9 ? opts->mem_level : 8;
  /* Own streams only where context must survive between messages; without
   * context takeover the shared compressor of the negotiated window size
   * serves. An 8-bit window means no compressor at all: zlib cannot make
   * raw deflate with a 256-byte window, so such messages go uncompressed. */
  if (!params->tx_no_context_takeover && params->tx_window_bits >= DX_PMD_MIN_BITS) {
    p->def = calloc(1, sizeof *p->def);
    if (!p->def || deflateInit2(p->def, p->level, Z_DEFLATED, -params->tx_window_bits, p->mem_level,
                                Z_DEFAULT_STRATEGY) != Z_OK) {
      free(p->def);
      free(p);
      return NULL;
    }
  }
  if (!params->rx_no_context_takeover) {
    p->inf = calloc(1, sizeof *p->inf);
    /* zlib senders round a window of 8 bits up to 9: inflate with at
     * least 9 so they still decode. */
    int bits = params->rx_window_bits < DX_PMD_MIN_BITS ? DX_PMD_MIN_BITS : params->rx_window_bits;
    if (!p->inf || inflateInit2(p->inf, -bits) != Z_OK) {
      free(p->inf);
      if (p->def) deflateEnd(p->def);
      free(p->def);
      free(p);
      return NULL;
    }
  }
  return p;
}

void dx_pmd_free(dx_pmd *p) {
  if (!p) return;
  if (p->def) {
    deflateEnd(p->def);
    free(p->def);
  }
  if (p->inf) {
    inflateEnd(p->inf);
    free(p->inf);
  }
  free(p);
}

bool dx_pmd_rx_streaming(const dx_pmd *p) { return p->inf != NULL; }

bool dx_pmd_tx_shared(const dx_pmd *p) { return p->def == NULL && p->params.tx_window_bits == 15; }

int dx_pmd_tx_shared_window(const dx_pmd *p) {
  return p->def == NULL && p->params.tx_window_bits >= DX_PMD_MIN_BITS ? p->params.tx_window_bits
                                                                       : 0;
}

bool dx_pmd_worth_it(const dx_pmd *p, size_t len) {
  return p->params.tx_window_bits >= DX_PMD_MIN_BITS && len >= p->threshold &&
         len <= ((size_t)1 << 30); /* zlib counts in uInt */
}

size_t dx_pmd_memory(const dx_pmd *p) {
  size_t m = 0;
  if (p->def)
    m += ((size_t)1 << (p->params.tx_window_bits + 2)) + ((size_t)1 << (p->mem_level + 9));
  if (p->inf) {
    int bits =
        p->params.rx_window_bits < DX_PMD_MIN_BITS ? DX_PMD_MIN_BITS : p->params.rx_window_bits;
    m += ((size_t)1 << bits) + 7160;
  }
  return m;
}

static z_stream *inflater(dx_pmd *p) {
  if (p->inf) return p->inf;
  dx_pmd_shared *s = p->shared;
  if (!s->inf_ok) {
    /* A 15-bit window inflates anything a peer may send. */
    if (inflateInit2(&s->inf, -15) != Z_OK) return NULL;
    s->inf_ok = true;
  }
  return &s->inf;
}

static z_stream *deflater(dx_pmd *p) {
  if (p->def) return p->def;
  int bits = p->params.tx_window_bits;
  if (bits < DX_PMD_MIN_BITS || bits > 15) return NULL;
  dx_pmd_shared *s = p->shared;
  int i = bits - DX_PMD_MIN_BITS;
  if (s->def_level[i] && s->def_level[i] != p->level) {
    deflateEnd(&s->def[i]);
    s->def_level[i] = 0;
  }
  if (!s->def_level[i]) {
    if (deflateInit2(&s->def[i], p->level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return NULL;
    s->def_level[i] = p->level;
  }
  return &s->def[i];
}

static int inflate_some(z_stream *z, const uint8_t *in, size_t n, dx_pmd_sink sink, void *arg) {
  uint8_t buf[16384];
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  for (;;) {
    z->next_out = buf;
    z->avail_out = sizeof buf;
    int rc = inflate(z, Z_SYNC_FLUSH);
    /* Output made before an error goes out first, so the first problem
     * reported (bad UTF-8, too big, corrupt data) does not depend on how
     * the input was split. */
    size_t got = sizeof buf - z->avail_out;
    if (got) {
      int s = sink(arg, buf, got);
      if (s) return s;
    }
    if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR)
      return DX_EDEFLATE;
    if (rc == Z_STREAM_END) {
      /* A final (BFINAL) block ends the zlib stream; what follows, like
       * the appended tail, starts afresh. */
      inflateReset(z);
      if (z->avail_in == 0) return 0;
      continue;
    }
    if (z->avail_in == 0 && z->avail_out != 0) return 0;
    if (rc == Z_BUF_ERROR && got == 0) return z->avail_in ? DX_EDEFLATE : 0;
  }
}

int dx_pmd_inflate(dx_pmd *p, const uint8_t *in, size_t n, bool fin, dx_pmd_sink sink, void *arg) {
  z_stream *z = inflater(p);
  if (!z) return DX_ENOMEM;
  int rc = 0;
  /* Feed in bounded slices: avail_in is a uInt. */
  while (n && !rc) {
    size_t k = n > (1u << 30) ? (1u << 30) : n;
    rc = inflate_some(z, in, k, sink, arg);
    in += k;
    n -= k;
  }
  if (!rc && fin) rc = inflate_some(z, tail, sizeof tail, sink, arg);
  if (rc || (fin && (!p->inf || p->params.rx_no_context_takeover))) inflateReset(z);
  return rc;
}

int dx_pmd_deflate(dx_pmd *p, const uint8_t *in, size_t n, const uint8_t **out, size_t *out_len) {
  if (p->params.tx_window_bits < DX_PMD_MIN_BITS) return DX_EINVAL; /* 8 bits: never compressed */
  z_stream *z = deflater(p);
  dx_pmd_shared *s = p->shared;
  if (!z) return DX_ENOMEM;
  size_t need = deflateBound(z, n) + 64;
  if (need > s->cap) {
    uint8_t *nb = realloc(s->out, need);
    if (!nb) return DX_ENOMEM;
    s->out = nb;
    s->cap = need;
  }
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  z->next_out = s->out;
  z->avail_out = (uInt)s->cap;
  int rc = deflate(z, Z_SYNC_FLUSH);
  if ((rc != Z_OK && rc != Z_BUF_ERROR) || z->avail_in != 0 || z->avail_out == 0) {
    deflateReset(z);
    return DX_EDEFLATE;
  }
  size_t len = s->cap - z->avail_out;
  if (len >= 4 && memcmp(s->out + len - 4, tail, 4) == 0) len -= 4;
  /* Nothing left (an empty message right after a flush): send one empty
   * stored-block header so the receiver's appended tail parses (RFC 7692
   * section 7.2.3.6). */
  if (len == 0) s->out[len++] = 0x00;
  if (!p->def || p->params.tx_no_context_takeover) deflateReset(z);
  *out = s->out;
  *out_len = len;
  return 0;
}
