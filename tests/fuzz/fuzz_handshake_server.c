/* Fuzz the server side of the opening handshake: dx_http_parse_request (whole
 * and fed in random pieces, which must agree), dx_upgrade_check,
 * dx_handshake_select_protocol, dx_handshake_build_response / dx_http_build_error (at the
 * exact size and one byte short), and the client's view of the answer. Any
 * disagreement aborts. Each input is also parsed under small limits, derived
 * from its hash, so the limit paths are exercised. */
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

static int same_req(const dx_http_request *a, const char *ba, const dx_http_request *b,
                    const char *bb) {
  if (!same_str(a->method, ba, b->method, bb) || !same_str(a->target, ba, b->target, bb) ||
      !same_str(a->path, ba, b->path, bb) || !same_str(a->query, ba, b->query, bb) ||
      a->minor_version != b->minor_version || a->num_headers != b->num_headers)
    return 0;
  for (size_t i = 0; i < a->num_headers; i++)
    if (!same_str(a->headers[i].name, ba, b->headers[i].name, bb) ||
        !same_str(a->headers[i].value, ba, b->headers[i].value, bb))
      return 0;
  return 1;
}

/* Builds with cap = exact length (must succeed, same bytes) and exact - 1
 * (must be DX_ENOSPC), in heap buffers of exactly that size so ASan sees any
 * over-write. */
static void check_exact(const char *ref, int n, int (*build)(char *, size_t, const void *),
                        const void *arg) {
  char *b = malloc((size_t)n);
  REQUIRE(b);
  REQUIRE(build(b, (size_t)n, arg) == n);
  REQUIRE(memcmp(b, ref, (size_t)n) == 0);
  REQUIRE(build(b, (size_t)n - 1, arg) == DX_ENOSPC);
  free(b);
}

typedef struct resp_args {
  const char *accept, *protocol, *extensions;
} resp_args;

static int build_resp(char *b, size_t cap, const void *a) {
  const resp_args *r = a;
  return dx_handshake_build_response(b, cap, r->accept, r->protocol, r->extensions, NULL);
}

static int build_err(char *b, size_t cap, const void *a) {
  return dx_http_build_error(b, cap, *(const int *)a, NULL);
}

static void answer(const dx_http_request *req) {
  dx_upgrade_request up;
  int r = dx_upgrade_check(req, &up);
  char out[1024];
  dx_http_header rh[16];
  dx_http_response resp = {.headers = rh, .num_headers = 16};

  if (r != 0) {
    REQUIRE(r < 0 && r != DX_EAGAIN);
    int status = dx_http_status_for_error(r);
    int n = dx_http_build_error(out, sizeof out, status, NULL);
    REQUIRE(n > 0);
    check_exact(out, n, build_err, &status);
    int h = dx_http_parse_response(out, (size_t)n, &resp, NULL);
    REQUIRE(h > 0 && h <= n && resp.status == status);
    return;
  }

  REQUIRE(up.host.len > 0 && up.key.len == DX_HANDSHAKE_KEY_LEN);
  REQUIRE(strlen(up.accept) == DX_HANDSHAKE_ACCEPT_LEN);
  REQUIRE(up.num_extensions <= 8);
  static const char *const supported[] = {"superchat", "chat", "mqtt"};
  int idx = dx_handshake_select_protocol(req, supported, 3);
  REQUIRE(idx >= -1 && idx < 3);

  int deflate = 0;
  for (size_t i = 0; i < up.num_extensions; i++)
    if (up.extensions[i].name.len == 18 &&
        strncmp(up.extensions[i].name.ptr, "permessage-deflate", 18) == 0)
      deflate = 1;
  resp_args ra = {up.accept, idx >= 0 ? supported[idx] : NULL,
                  deflate ? "permessage-deflate" : NULL};
  int n = build_resp(out, sizeof out, &ra);
  REQUIRE(n > 0);
  check_exact(out, n, build_resp, &ra);

  /* The client accepts what the server built. */
  int h = dx_http_parse_response(out, (size_t)n, &resp, NULL);
  REQUIRE(h == n);
  char key[DX_HANDSHAKE_KEY_LEN + 1];
  memcpy(key, up.key.ptr, DX_HANDSHAKE_KEY_LEN);
  key[DX_HANDSHAKE_KEY_LEN] = '\0';
  static const char *const offered_ext[] = {"permessage-deflate", NULL};
  dx_upgrade_response res;
  REQUIRE(dx_upgrade_verify(&resp, key, supported, 3, offered_ext, &res) == 0);
  REQUIRE(res.protocol_index == idx);
  REQUIRE(res.num_extensions == (size_t)deflate);
}

static void run(const uint8_t *data, size_t size, const dx_http_limits *lim, uint64_t seed,
                int full) {
  static dx_http_header wh[64], ph[64];
  dx_http_request whole = {.headers = wh, .num_headers = 64};
  const char *buf = (const char *)data;
  int r = dx_http_parse_request(buf, size, &whole, lim);
  REQUIRE(r == DX_EAGAIN || r == DX_EHTTP_MALFORMED || r == DX_EHTTP_LINE_TOO_LONG ||
          r == DX_EHTTP_TOO_MANY_HEADERS || r == DX_EHTTP_TOO_LARGE ||
          (r > 0 && (size_t)r <= size));
  if (r > 0) REQUIRE(whole.num_headers <= 64);

  /* The same bytes in 1-8 growing pieces, each prefix in an exact-size
   * buffer: DX_EAGAIN until the whole result appears, then that result. */
  size_t cuts = 1 + next_rand(&seed) % 8, at = 0;
  int decided = 0;
  for (size_t c = 0; c <= cuts && at < size; c++) {
    at = c == cuts ? size : at + next_rand(&seed) % (size - at + 1);
    char *p = malloc(at ? at : 1);
    REQUIRE(p);
    memcpy(p, buf, at);
    dx_http_request part = {.headers = ph, .num_headers = 64};
    int rk = dx_http_parse_request(p, at, &part, lim);
    if (rk == DX_EAGAIN) {
      REQUIRE(!decided);
      REQUIRE(part.num_headers == 64);
    } else {
      decided = 1;
      REQUIRE(rk == r);
      if (r > 0) REQUIRE(same_req(&part, p, &whole, buf));
    }
    free(p);
  }

  if (r > 0 && full) answer(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 20000) return 0; /* past max_size the parser never looks */
  uint64_t h = fnv1a(data, size) | 1;
  run(data, size, NULL, h, 1);
  dx_http_limits small = {.max_line = 1 + (h >> 8) % 128,
                          .max_size = 1 + (h >> 16) % 600,
                          .max_headers = (h >> 32) % 12};
  run(data, size, &small, h * 31, 0);
  return 0;
}
