/* Fuzz the client side of the opening handshake: dx_http_parse_response
 * (whole and in random pieces, which must agree) and dx_upgrade_verify for
 * the key "dGhlIHNhbXBsZSBub25jZQ==" (accept "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
 * having offered "chat", "superchat" and permessage-deflate. The raw input is
 * also fed to dx_ext_parse. Any disagreement aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/error.h"
#include "duplex/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "%s:%d: REQUIRE(%s)\n", __FILE__, __LINE__, #c);                             \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static uint64_t next_rand(uint64_t *s) { /* xorshift64 */
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static int same_str(dx_str a, const char *ba, dx_str b, const char *bb) {
  return a.len == b.len && (a.len == 0 || a.ptr - ba == b.ptr - bb);
}

static int same_resp(const dx_http_response *a, const char *ba, const dx_http_response *b,
                     const char *bb) {
  if (a->minor_version != b->minor_version || a->status != b->status ||
      !same_str(a->reason, ba, b->reason, bb) || a->num_headers != b->num_headers)
    return 0;
  for (size_t i = 0; i < a->num_headers; i++)
    if (!same_str(a->headers[i].name, ba, b->headers[i].name, bb) ||
        !same_str(a->headers[i].value, ba, b->headers[i].value, bb))
      return 0;
  return 1;
}

static void run(const uint8_t *data, size_t size, const dx_http_limits *lim, uint64_t seed,
                int full) {
  static dx_http_header wh[32], ph[32];
  dx_http_response whole = {.headers = wh, .num_headers = 32};
  const char *buf = (const char *)data;
  int r = dx_http_parse_response(buf, size, &whole, lim);
  REQUIRE(r == DX_EAGAIN || r == DX_EHTTP_MALFORMED || r == DX_EHTTP_LINE_TOO_LONG ||
          r == DX_EHTTP_TOO_MANY_HEADERS || r == DX_EHTTP_TOO_LARGE ||
          (r > 0 && (size_t)r <= size));
  if (r > 0) REQUIRE(whole.status >= 100 && whole.status <= 999 && whole.num_headers <= 32);

  size_t cuts = 1 + next_rand(&seed) % 8, at = 0;
  int decided = 0;
  for (size_t c = 0; c <= cuts && at < size; c++) {
    at = c == cuts ? size : at + next_rand(&seed) % (size - at + 1);
    char *p = malloc(at ? at : 1);
    REQUIRE(p);
    memcpy(p, buf, at);
    dx_http_response part = {.headers = ph, .num_headers = 32};
    int rk = dx_http_parse_response(p, at, &part, lim);
    if (rk == DX_EAGAIN) {
      REQUIRE(!decided);
      REQUIRE(part.num_headers == 32);
    } else {
      decided = 1;
      REQUIRE(rk == r);
      if (r > 0) REQUIRE(same_resp(&part, p, &whole, buf));
    }
    free(p);
  }

  if (r <= 0 || !full) return;
  static const char *const protos[] = {"chat", "superchat"};
  static const char *const exts[] = {"permessage-deflate", NULL};
  dx_upgrade_response res;
  int v = dx_upgrade_verify(&whole, "dGhlIHNhbXBsZSBub25jZQ==", protos, 2, exts, &res);
  REQUIRE(v == 0 || v == DX_EHTTP_STATUS || v == DX_EHTTP_VERSION || v == DX_EHTTP_NO_UPGRADE ||
          v == DX_EHTTP_NO_CONNECTION || v == DX_EWS_ACCEPT || v == DX_EWS_UNOFFERED_PROTOCOL ||
          v == DX_EWS_UNOFFERED_EXTENSION || v == DX_EWS_EXTENSIONS);
  if (v == 0) {
    REQUIRE(whole.status == 101 && whole.minor_version >= 1);
    REQUIRE(res.protocol_index >= -1 && res.protocol_index < 2);
    REQUIRE(res.num_extensions <= 4);
    for (size_t i = 0; i < res.num_extensions; i++)
      REQUIRE(res.extensions[i].name.len == 18 &&
              res.extensions[i].num_params <= DX_EXT_MAX_PARAMS);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 20000) return 0;
  uint64_t h = fnv1a(data, size) | 1;
  run(data, size, NULL, h, 1);
  dx_http_limits small = {
      .max_line = 1 + (h >> 8) % 64, .max_size = 1 + (h >> 16) % 400, .max_headers = (h >> 32) % 8};
  run(data, size, &small, h * 31, 0);

  /* The extension grammar on arbitrary bytes. */
  dx_ext_offer offers[4];
  size_t n = 0;
  int e = dx_ext_parse((const char *)data, size, offers, &n, 4);
  REQUIRE(e == 0 || e == DX_EWS_EXTENSIONS || e == DX_ELIMIT);
  REQUIRE(e == 0 ? n <= 4 : n == 0);
  for (size_t i = 0; i < n; i++) {
    REQUIRE(offers[i].name.len > 0 && offers[i].num_params <= DX_EXT_MAX_PARAMS);
    REQUIRE(offers[i].name.ptr >= (const char *)data &&
            offers[i].name.ptr + offers[i].name.len <= (const char *)data + size);
  }
  return 0;
}
