/* libFuzzer target for the permessage-deflate inflate path.
 *
 * Input: a selector byte, a split byte, then compressed message bytes. The
 * message is inflated whole and in pieces (shared and per-connection
 * streams); both must agree, output is bounded by a 1 MiB limit (zip
 * bombs), and the stream must stay usable for a following message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/deflate.h"
#include "duplex/error.h"

typedef struct {
  uint64_t hash;
  size_t total;
} out_state;

static int sink(void *arg, const uint8_t *out, size_t n) {
  out_state *s = arg;
  s->total += n;
  if (s->total > (1u << 20)) return DX_EMESSAGE_TOO_BIG;
  for (size_t i = 0; i < n; i++) s->hash = (s->hash ^ out[i]) * 0x100000001b3ull;
  return 0;
}

static uint64_t run(const uint8_t *data, size_t size, bool takeover, size_t piece, int *rc) {
  dx_pmd_params pp = {!takeover, !takeover, 15, 15};
  dx_deflate_opts o = {.enable = true};
  dx_pmd_shared *sh = dx_pmd_shared_new();
  dx_pmd *pmd = dx_pmd_new(&pp, &o, sh);
  out_state s = {1469598103934665603ull, 0};
  *rc = 0;
  if (piece && dx_pmd_rx_streaming(pmd)) {
    size_t pos = 0;
    while (*rc == 0 && pos < size) {
      size_t n = size - pos < piece ? size - pos : piece;
      *rc = dx_pmd_inflate(pmd, data + pos, n, pos + n == size, sink, &s);
      pos += n;
    }
    if (size == 0) *rc = dx_pmd_inflate(pmd, data, 0, true, sink, &s);
  } else {
    *rc = dx_pmd_inflate(pmd, data, size, true, sink, &s);
  }
  /* The stream must still work for a next, well-formed message. */
  const uint8_t *z;
  size_t zl;
  out_state t = {0, 0};
  if (dx_pmd_deflate(pmd, (const uint8_t *)"after", 5, &z, &zl) == 0 && !takeover) {
    if (dx_pmd_inflate(pmd, z, zl, true, sink, &t) != 0 || t.total != 5) abort();
  }
  dx_pmd_free(pmd);
  dx_pmd_shared_free(sh);
  return s.hash ^ (uint64_t)s.total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  bool takeover = data[0] & 1;
  size_t piece = (size_t)data[1] + 1;
  data += 2, size -= 2;
  int rc_whole, rc_split;
  uint64_t whole = run(data, size, takeover, 0, &rc_whole);
  uint64_t split = run(data, size, takeover, piece, &rc_split);
  /* Same verdict; the same output when both succeeded. */
  if ((rc_whole == 0) != (rc_split == 0)) abort();
  if (rc_whole == 0 && whole != split) abort();
  return 0;
}
