/* HTTP/1.x head parser: requests, responses, limits, incremental feeding.
 * Every parse reads its input from a guarded buffer (ends at an unreadable
 * page), so an over-read crashes instead of passing by luck. */
#include "duplex/error.h"
#include "duplex/handshake.h"
#include "test.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static dx_http_header g_hdrs[128];

static int str_is(dx_str s, const char *lit) {
  return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void req_init(dx_http_request *req, dx_http_header *h, size_t cap) {
  memset(req, 0, sizeof *req);
  req->headers = h;
  req->num_headers = cap;
}

static void resp_init(dx_http_response *resp, dx_http_header *h, size_t cap) {
  memset(resp, 0, sizeof *resp);
  resp->headers = h;
  resp->num_headers = cap;
}

/* Offsets of a parsed field relative to its buffer: results of parses of the
 * same bytes at different addresses must agree on these. */
static int same_str(dx_str a, const char *base_a, dx_str b, const char *base_b) {
  return a.len == b.len && (a.len == 0 || a.ptr - base_a == b.ptr - base_b);
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

/* Parses s whole, then every prefix (every split position), each placed
 * right before the guard page. Checks DX_EAGAIN until the result is known,
 * then exactly the whole-input result (same fields too). Returns the whole
 * result. */
static int splits_req(const char *s, size_t len, const dx_http_limits *lim, size_t cap) {
  static dx_http_header whole_h[128], part_h[128];
  dx_http_request whole, part;
  char *g = guarded_copy(s, len);
  char *end = g + len;
  req_init(&whole, whole_h, cap);
  int r = dx_http_parse_request(g, len, &whole, lim);
  int seen = 0;
  for (size_t k = 0; k <= len; k++) {
    char *p = end - k;
    memmove(p, s, k);
    req_init(&part, part_h, cap);
    int rk = dx_http_parse_request(p, k, &part, lim);
    if (rk == DX_EAGAIN) {
      CHECK(!seen);
      CHECK_EQ_INT(part.num_headers, cap); /* untouched, so a retry works */
      if (seen) break;
      continue;
    }
    seen = 1;
    if (rk != r) {
      fprintf(stderr, "  split at %zu: got %d, whole %d\n", k, rk, r);
      CHECK_EQ_INT(rk, r);
      break;
    }
    if (r > 0) {
      CHECK((size_t)r <= k);
      CHECK(same_req(&part, p, &whole, end - len));
    }
  }
  CHECK(seen || r == DX_EAGAIN);
  guarded_free(g);
  return r;
}

static int splits_resp(const char *s, size_t len, const dx_http_limits *lim, size_t cap) {
  static dx_http_header whole_h[128], part_h[128];
  dx_http_response whole, part;
  char *g = guarded_copy(s, len);
  char *end = g + len;
  resp_init(&whole, whole_h, cap);
  int r = dx_http_parse_response(g, len, &whole, lim);
  int seen = 0;
  for (size_t k = 0; k <= len; k++) {
    char *p = end - k;
    memmove(p, s, k);
    resp_init(&part, part_h, cap);
    int rk = dx_http_parse_response(p, k, &part, lim);
    if (rk == DX_EAGAIN) {
      CHECK(!seen);
      CHECK_EQ_INT(part.num_headers, cap);
      if (seen) break;
      continue;
    }
    seen = 1;
    if (rk != r) {
      fprintf(stderr, "  split at %zu: got %d, whole %d\n", k, rk, r);
      CHECK_EQ_INT(rk, r);
      break;
    }
    if (r > 0) CHECK(same_resp(&part, p, &whole, end - len));
  }
  CHECK(seen || r == DX_EAGAIN);
  guarded_free(g);
  return r;
}

#define REQ(lit) splits_req(S(lit), NULL, 64)
#define RESP(lit) splits_resp(S(lit), NULL, 64)
/* The whole input is one complete head. */
#define REQ_FULL(lit) CHECK_EQ_INT(REQ(lit), sizeof(lit) - 1)
#define RESP_FULL(lit) CHECK_EQ_INT(RESP(lit), sizeof(lit) - 1)

static const char k_rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                    "Host: server.example.com\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    "Origin: http://example.com\r\n"
                                    "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                    "Sec-WebSocket-Version: 13\r\n"
                                    "\r\n";

TEST(request_basic) {
  size_t len = sizeof k_rfc_request - 1;
  char *g = guarded_copy(k_rfc_request, len);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(g, len, &req, NULL), len);
  CHECK(str_is(req.method, "GET"));
  CHECK(str_is(req.target, "/chat"));
  CHECK(str_is(req.path, "/chat"));
  CHECK_EQ_INT(req.query.len, 0);
  CHECK_EQ_INT(req.minor_version, 1);
  CHECK_EQ_INT(req.num_headers, 7);
  CHECK(str_is(req.headers[0].name, "Host"));
  CHECK(str_is(req.headers[0].value, "server.example.com"));
  CHECK(str_is(req.headers[5].name, "Sec-WebSocket-Protocol"));
  CHECK(str_is(req.headers[5].value, "chat, superchat"));
  CHECK(str_is(req.headers[6].value, "13"));
  /* Parsed strings point into the input. */
  CHECK(req.method.ptr == g && req.headers[6].value.ptr > g && req.headers[6].value.ptr < g + len);
  guarded_free(g);
  CHECK_EQ_INT(splits_req(k_rfc_request, len, NULL, 64), len);
}

TEST(request_trailing_bytes_not_consumed) {
  /* Bytes after the blank line (a first frame) are not part of the head. */
  static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85xxxx";
  char *g = guarded_copy(S(in));
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(g, sizeof in - 1, &req, NULL), sizeof in - 1 - 6);
  guarded_free(g);
}

static void check_target(const char *line, const char *path, const char *query) {
  char buf[256];
  snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", line);
  size_t len = strlen(buf);
  char *g = guarded_copy(buf, len);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(g, len, &req, NULL), len);
  if (!str_is(req.target, line) || !str_is(req.path, path) || !str_is(req.query, query)) {
    fprintf(stderr, "  target %s: path '%.*s' query '%.*s'\n", line, (int)req.path.len,
            req.path.ptr, (int)req.query.len, req.query.ptr);
    CHECK(0);
  }
  guarded_free(g);
}

TEST(request_path_and_query) {
  check_target("/", "/", "");
  check_target("/chat?room=1&x=2", "/chat", "room=1&x=2");
  check_target("/chat?", "/chat", "");
  check_target("/a?b?c", "/a", "b?c");
  check_target("/?q", "/", "q");
  check_target("/%7Euser/p%20q;x=1", "/%7Euser/p%20q;x=1", "");
  check_target("/caf\xc3\xa9", "/caf\xc3\xa9", ""); /* raw UTF-8 tolerated */
  /* absolute-form: the URI's path is used */
  check_target("http://example.com/chat?x=1", "/chat", "x=1");
  check_target("ws://example.com:8080/", "/", "");
  check_target("wss://user@h/a/b", "/a/b", "");
  check_target("http://example.com", "", "");
  check_target("http://example.com?x", "", "x");
  /* asterisk- and authority-form: path is the target (upgrade rejects it) */
  check_target("*", "*", "");
  check_target("example.com:443", "example.com:443", "");
  check_target("a:/b", "a:/b", "");
}

TEST(request_line_endings) {
  /* Bare LF tolerated, alone or mixed with CRLF. */
  REQ_FULL("GET / HTTP/1.1\nHost: a\n\n");
  REQ_FULL("GET / HTTP/1.1\r\nHost: a\n\r\n");
  REQ_FULL("GET / HTTP/1.1\nHost: a\r\n\n");
  /* A CR not followed by LF is malformed wherever it is. */
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\rHost: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost: a\r\n\rX"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET /\r HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  /* Incomplete heads. */
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost: a\r\n\r"), DX_EAGAIN);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost: a\r\n"), DX_EAGAIN);
  CHECK_EQ_INT(REQ(""), DX_EAGAIN);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(NULL, 0, &req, NULL), DX_EAGAIN);
  CHECK_EQ_INT(dx_http_parse_request(NULL, 1, &req, NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_http_parse_request("x", 1, NULL, NULL), DX_EINVAL);
}

TEST(request_leading_empty_lines) {
  REQ_FULL("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQ_FULL("\nGET / HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(REQ("\r\n\r"), DX_EAGAIN);
  CHECK_EQ_INT(REQ("\r\rGET / HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  /* Leading whitespace is not an empty line. */
  CHECK_EQ_INT(REQ(" GET / HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
}

TEST(request_no_headers) {
  static dx_http_header none[1];
  REQ_FULL("GET / HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(splits_req(S("GET / HTTP/1.1\r\n\r\n"), NULL, 0), 18);
  /* No array at all. */
  char *g = guarded_copy(S("GET / HTTP/1.1\r\n\r\n"));
  dx_http_request req;
  req_init(&req, NULL, 0);
  CHECK_EQ_INT(dx_http_parse_request(g, 18, &req, NULL), 18);
  CHECK_EQ_INT(req.num_headers, 0);
  guarded_free(g);
  /* NULL array with a capacity: treated as capacity 0. */
  g = guarded_copy(S("GET / HTTP/1.1\r\nA: b\r\n\r\n"));
  req_init(&req, NULL, 5);
  CHECK_EQ_INT(dx_http_parse_request(g, 24, &req, NULL), DX_EHTTP_TOO_MANY_HEADERS);
  guarded_free(g);
  (void)none;
}

TEST(request_obs_fold_rejected) {
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"), DX_EHTTP_MALFORMED);
  /* Whitespace between the request line and the first header. */
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\n \r\n\r\n"), DX_EHTTP_MALFORMED);
}

TEST(request_bad_header_names) {
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHo/st: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nH\xc3\xb6st: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\n: a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost a\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nHost\r\n\r\n"), DX_EHTTP_MALFORMED);
  /* Every tchar is fine in a name. */
  REQ_FULL("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n");
}

TEST(request_header_values) {
  static const char in[] = "GET / HTTP/1.1\r\n"
                           "Host: \t example.com:8080 \t \r\n"
                           "X-Empty:\r\n"
                           "X-Blank: \t \r\n"
                           "X-Inner: a  b\tc\r\n"
                           "x-colon: a:b: c\r\n"
                           "X-Utf8: caf\xc3\xa9\r\n"
                           "\r\n";
  size_t len = sizeof in - 1;
  CHECK_EQ_INT(splits_req(in, len, NULL, 64), len);
  char *g = guarded_copy(in, len);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(g, len, &req, NULL), len);
  CHECK_EQ_INT(req.num_headers, 6);
  CHECK(str_is(req.headers[0].value, "example.com:8080"));
  CHECK(str_is(req.headers[1].name, "X-Empty"));
  CHECK_EQ_INT(req.headers[1].value.len, 0);
  CHECK_EQ_INT(req.headers[2].value.len, 0);
  CHECK(str_is(req.headers[3].value, "a  b\tc"));
  CHECK(str_is(req.headers[4].name, "x-colon"));
  CHECK(str_is(req.headers[4].value, "a:b: c"));
  CHECK(str_is(req.headers[5].value, "caf\xc3\xa9"));
  guarded_free(g);
  /* Control bytes in values. */
  CHECK_EQ_INT(splits_req(S("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), NULL, 64), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1\r\nX: \x1b[31m\r\n\r\n"), DX_EHTTP_MALFORMED);
}

TEST(request_line_rules) {
  REQ_FULL("M-SEARCH / HTTP/1.1\r\n\r\n");
  REQ_FULL("get / HTTP/1.1\r\n\r\n"); /* parses; upgrade check rejects */
  CHECK_EQ_INT(REQ("G(T / HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ(" / HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET  / HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET /  HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET\t/ HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET / HTTP/1.1 \r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET /\r\n\r\n"), DX_EHTTP_MALFORMED); /* HTTP/0.9 */
  CHECK_EQ_INT(REQ("GET\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), DX_EHTTP_MALFORMED); /* TLS */
  CHECK_EQ_INT(REQ("GET /a\x01 HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET /a\x7f HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(REQ("GET /a\tb HTTP/1.1\r\n\r\n"), DX_EHTTP_MALFORMED);
  /* Garbage is rejected as soon as it is seen, not after 4 KiB. */
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  char *g = guarded_copy(S("G{"));
  CHECK_EQ_INT(dx_http_parse_request(g, 2, &req, NULL), DX_EHTTP_MALFORMED);
  guarded_free(g);
}

static int version_of(const char *line) {
  char buf[128];
  snprintf(buf, sizeof buf, "GET / %s\r\n\r\n", line);
  size_t len = strlen(buf);
  int r = splits_req(buf, len, NULL, 64);
  if (r < 0) return r;
  char *g = guarded_copy(buf, len);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  r = dx_http_parse_request(g, len, &req, NULL);
  guarded_free(g);
  return r < 0 ? r : req.minor_version;
}

TEST(request_versions) {
  CHECK_EQ_INT(version_of("HTTP/1.1"), 1);
  CHECK_EQ_INT(version_of("HTTP/1.0"), 0);
  CHECK_EQ_INT(version_of("HTTP/1.9"), 9);
  CHECK_EQ_INT(version_of("HTTP/2.0"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/2"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/0.9"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/1.10"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/1."), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/1"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTP/1.x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("http/1.1"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of("HTTPS/1.1"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(version_of(""), DX_EHTTP_MALFORMED);
}

/* A request whose request line is exactly `line_len` bytes (without CRLF). */
static size_t make_line(char *buf, size_t line_len, const char *eol) {
  /* "GET /" + 'a' * k + " HTTP/1.1" */
  size_t k = line_len - 14;
  memcpy(buf, "GET /", 5);
  memset(buf + 5, 'a', k);
  memcpy(buf + 5 + k, " HTTP/1.1", 9);
  size_t n = line_len;
  n += (size_t)sprintf(buf + n, "%sHost: h%s%s", eol, eol, eol);
  return n;
}

TEST(limit_request_line) {
  static char buf[9000];
  dx_http_limits lim = {.max_line = 40};
  const char *eols[] = {"\r\n", "\n"};
  for (int e = 0; e < 2; e++) {
    size_t n = make_line(buf, 40, eols[e]);
    CHECK_EQ_INT(splits_req(buf, n, &lim, 64), n);
    n = make_line(buf, 41, eols[e]);
    CHECK_EQ_INT(splits_req(buf, n, &lim, 64), DX_EHTTP_LINE_TOO_LONG);
  }
  /* Incomplete but already too long: the limit error, not DX_EAGAIN. */
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  make_line(buf, 60, "\r\n");
  char *g = guarded_copy(buf, 41);
  CHECK_EQ_INT(dx_http_parse_request(g, 41, &req, &lim), DX_EHTTP_LINE_TOO_LONG);
  guarded_free(g);
  /* 40 bytes then CR: may still be a 40-byte line. */
  make_line(buf, 40, "\r\n");
  g = guarded_copy(buf, 41);
  CHECK_EQ_INT(dx_http_parse_request(g, 41, &req, &lim), DX_EAGAIN);
  guarded_free(g);
  /* A malformed byte inside the limit is reported as malformed. */
  make_line(buf, 60, "\r\n");
  buf[10] = '\x01';
  CHECK_EQ_INT(splits_req(buf, 70, &lim, 64), DX_EHTTP_MALFORMED);
  /* The default is 4096; header lines are limited only by max_size. */
  size_t n = make_line(buf, 4096, "\r\n");
  CHECK_EQ_INT(splits_req(buf, n, NULL, 64), n);
  n = make_line(buf, 4097, "\r\n");
  CHECK_EQ_INT(splits_req(buf, n, NULL, 64), DX_EHTTP_LINE_TOO_LONG);
  n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX: ");
  memset(buf + n, 'v', 6000);
  n += 6000;
  n += (size_t)sprintf(buf + n, "\r\n\r\n");
  CHECK_EQ_INT(splits_req(buf, n, NULL, 64), n);
}

/* A request of exactly `total` bytes: padded with one big header. */
static size_t make_sized(char *buf, size_t total) {
  size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX-Pad: ");
  size_t pad = total - n - 4;
  memset(buf + n, 'p', pad);
  n += pad;
  memcpy(buf + n, "\r\n\r\n", 4);
  return n + 4;
}

TEST(limit_size) {
  static char buf[20000];
  size_t n = make_sized(buf, 8192);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 64), 8192);
  n = make_sized(buf, 8193);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 64), DX_EHTTP_TOO_LARGE);
  dx_http_limits lim = {.max_size = 100};
  n = make_sized(buf, 100);
  CHECK_EQ_INT(splits_req(buf, n, &lim, 64), 100);
  n = make_sized(buf, 101);
  CHECK_EQ_INT(splits_req(buf, n, &lim, 64), DX_EHTTP_TOO_LARGE);
  /* Incomplete head that already fills max_size. */
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  n = make_sized(buf, 200);
  char *g = guarded_copy(buf, 100);
  CHECK_EQ_INT(dx_http_parse_request(g, 100, &req, &lim), DX_EHTTP_TOO_LARGE);
  guarded_free(g);
  g = guarded_copy(buf, 99);
  CHECK_EQ_INT(dx_http_parse_request(g, 99, &req, &lim), DX_EAGAIN);
  guarded_free(g);
  /* max_size smaller than max_line: size wins. */
  dx_http_limits small = {.max_size = 20, .max_line = 100};
  CHECK_EQ_INT(splits_req(S("GET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), &small, 64),
               DX_EHTTP_TOO_LARGE);
}

TEST(limit_slowloris) {
  /* Endless small headers, never a blank line: stopped by size. */
  static char buf[16384];
  size_t n = 0;
  n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
  while (n + 8 < sizeof buf) n += (size_t)sprintf(buf + n, "X-a: b\r\n");
  dx_http_limits lim = {.max_headers = 5000};
  static dx_http_header many[5000];
  dx_http_request req;
  req_init(&req, many, 5000);
  char *g = guarded_copy(buf, n);
  CHECK_EQ_INT(dx_http_parse_request(g, n, &req, &lim), DX_EHTTP_TOO_LARGE);
  guarded_free(g);
  /* With the default 64-header limit the count stops it first. */
  req_init(&req, g_hdrs, 128);
  g = guarded_copy(buf, n);
  CHECK_EQ_INT(dx_http_parse_request(g, n, &req, NULL), DX_EHTTP_TOO_MANY_HEADERS);
  guarded_free(g);
  /* Endless leading empty lines, too. */
  memset(buf, '\n', 9000);
  req_init(&req, g_hdrs, 64);
  g = guarded_copy(buf, 9000);
  CHECK_EQ_INT(dx_http_parse_request(g, 9000, &req, NULL), DX_EHTTP_TOO_LARGE);
  guarded_free(g);
}

/* A request with `count` headers. */
static size_t make_headers(char *buf, size_t count) {
  size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
  for (size_t i = 0; i < count; i++) n += (size_t)sprintf(buf + n, "H%zu: %zu\r\n", i, i);
  n += (size_t)sprintf(buf + n, "\r\n");
  return n;
}

TEST(limit_headers) {
  static char buf[8192];
  size_t n = make_headers(buf, 64);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 128), n);
  n = make_headers(buf, 65);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 128), DX_EHTTP_TOO_MANY_HEADERS);
  /* Capped at the array's capacity. */
  n = make_headers(buf, 3);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 3), n);
  n = make_headers(buf, 4);
  CHECK_EQ_INT(splits_req(buf, n, NULL, 3), DX_EHTTP_TOO_MANY_HEADERS);
  dx_http_limits lim = {.max_headers = 100};
  CHECK_EQ_INT(splits_req(buf, n, &lim, 3), DX_EHTTP_TOO_MANY_HEADERS);
  lim.max_headers = 2;
  n = make_headers(buf, 2);
  CHECK_EQ_INT(splits_req(buf, n, &lim, 64), n);
  n = make_headers(buf, 3);
  CHECK_EQ_INT(splits_req(buf, n, &lim, 64), DX_EHTTP_TOO_MANY_HEADERS);
  /* The array is never written past its capacity. */
  dx_http_header arr[4];
  memset(arr, 0xab, sizeof arr);
  dx_http_request req;
  req_init(&req, arr, 3);
  n = make_headers(buf, 10);
  char *g = guarded_copy(buf, n);
  CHECK_EQ_INT(dx_http_parse_request(g, n, &req, NULL), DX_EHTTP_TOO_MANY_HEADERS);
  CHECK_EQ_INT(req.num_headers, 3);
  unsigned char ab[sizeof arr[3]];
  memset(ab, 0xab, sizeof ab);
  CHECK_MEM(&arr[3], ab, sizeof ab);
  guarded_free(g);
}

TEST(retry_after_eagain) {
  /* The same struct is reused across calls, as a server would. */
  size_t len = sizeof k_rfc_request - 1;
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  for (size_t k = 0; k < len; k++) {
    char *g = guarded_copy(k_rfc_request, k);
    CHECK_EQ_INT(dx_http_parse_request(g, k, &req, NULL), DX_EAGAIN);
    guarded_free(g);
  }
  char *g = guarded_copy(k_rfc_request, len);
  CHECK_EQ_INT(dx_http_parse_request(g, len, &req, NULL), len);
  CHECK_EQ_INT(req.num_headers, 7);
  guarded_free(g);
}

TEST(find_and_tokens) {
  static const char in[] = "GET / HTTP/1.1\r\n"
                           "connection: keep-alive\r\n"
                           "X-Dup: one\r\n"
                           "CONNECTION: ,, Upgrade ,\r\n"
                           "x-dup: two\r\n"
                           "Upgrade: websocket2, xwebsocket\r\n"
                           "Tabs:\tfoo\t,\tbar\t\r\n"
                           "\r\n";
  size_t len = sizeof in - 1;
  CHECK_EQ_INT(splits_req(in, len, NULL, 64), len);
  char *g = guarded_copy(in, len);
  dx_http_request req;
  req_init(&req, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_request(g, len, &req, NULL), len);
  const dx_http_header *h = req.headers;
  size_t n = req.num_headers;
  const dx_http_header *f = dx_http_find(h, n, "x-DUP");
  CHECK(f && str_is(f->value, "one"));
  CHECK(f == &h[1]);
  CHECK(dx_http_find(h, n, "X-Du") == NULL);
  CHECK(dx_http_find(h, n, "X-Dupe") == NULL);
  CHECK(dx_http_find(h, n, "Host") == NULL);
  CHECK(dx_http_find(h, 0, "X-Dup") == NULL);
  CHECK(dx_http_has_token(h, n, "Connection", "upgrade"));
  CHECK(dx_http_has_token(h, n, "Connection", "KEEP-ALIVE"));
  CHECK(!dx_http_has_token(h, n, "Connection", "close"));
  CHECK(!dx_http_has_token(h, n, "Connection", ""));
  CHECK(!dx_http_has_token(h, n, "Upgrade", "websocket"));
  CHECK(dx_http_has_token(h, n, "upgrade", "WebSocket2"));
  CHECK(dx_http_has_token(h, n, "Tabs", "foo"));
  CHECK(dx_http_has_token(h, n, "Tabs", "bar"));
  CHECK(dx_http_has_token(h, n, "X-Dup", "two"));
  CHECK(!dx_http_has_token(h, n, "Missing", "x"));
  guarded_free(g);
}

TEST(realistic_requests) {
  static const char chrome[] =
      "GET /chat HTTP/1.1\r\n"
      "Host: localhost:8080\r\n"
      "Connection: Upgrade\r\n"
      "Pragma: no-cache\r\n"
      "Cache-Control: no-cache\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36\r\n"
      "Upgrade: websocket\r\n"
      "Origin: http://localhost:8080\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Accept-Language: en-US,en;q=0.9\r\n"
      "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "\r\n";
  static const char firefox[] =
      "GET /chat HTTP/1.1\r\n"
      "Host: localhost:8080\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
      "Accept: */*\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Origin: http://localhost:8080\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\n"
      "Sec-WebSocket-Key: 7bKPYvwgm6dXB4wDo2fG0Q==\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-Fetch-Dest: empty\r\n"
      "Sec-Fetch-Mode: websocket\r\n"
      "Sec-Fetch-Site: same-origin\r\n"
      "Pragma: no-cache\r\n"
      "Cache-Control: no-cache\r\n"
      "Upgrade: websocket\r\n"
      "\r\n";
  CHECK_EQ_INT(splits_req(chrome, sizeof chrome - 1, NULL, 64), sizeof chrome - 1);
  CHECK_EQ_INT(splits_req(firefox, sizeof firefox - 1, NULL, 64), sizeof firefox - 1);
}

/* ---- responses ---- */

TEST(response_basic) {
  static const char in[] = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "\r\n";
  size_t len = sizeof in - 1;
  CHECK_EQ_INT(splits_resp(in, len, NULL, 64), len);
  char *g = guarded_copy(in, len);
  dx_http_response resp;
  resp_init(&resp, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_response(g, len, &resp, NULL), len);
  CHECK_EQ_INT(resp.status, 101);
  CHECK_EQ_INT(resp.minor_version, 1);
  CHECK(str_is(resp.reason, "Switching Protocols"));
  CHECK_EQ_INT(resp.num_headers, 3);
  CHECK(str_is(resp.headers[2].value, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  guarded_free(g);
}

static int status_of(const char *line) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s\r\nX: y\r\n\r\n", line);
  size_t len = strlen(buf);
  int r = splits_resp(buf, len, NULL, 64);
  if (r < 0) return r;
  char *g = guarded_copy(buf, len);
  dx_http_response resp;
  resp_init(&resp, g_hdrs, 64);
  r = dx_http_parse_response(g, len, &resp, NULL);
  guarded_free(g);
  return r < 0 ? r : resp.status;
}

TEST(response_status_line) {
  CHECK_EQ_INT(status_of("HTTP/1.1 101 Switching Protocols"), 101);
  CHECK_EQ_INT(status_of("HTTP/1.0 200 OK"), 200);
  CHECK_EQ_INT(status_of("HTTP/1.1 101"), 101);  /* reason omitted */
  CHECK_EQ_INT(status_of("HTTP/1.1 101 "), 101); /* empty reason */
  CHECK_EQ_INT(status_of("HTTP/1.1 404 Not\tFound \xc3\xa9"), 404);
  CHECK_EQ_INT(status_of("HTTP/1.1 999 x"), 999);
  CHECK_EQ_INT(status_of("HTTP/1.1 099 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1 20 OK"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1 1010 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1 10a x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1  101 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1 "), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/2 101 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/2.0 101 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("http/1.1 101 x"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("HTTP/1.1 101 a\x01"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(status_of("ICY 200 OK"), DX_EHTTP_MALFORMED);
}

TEST(response_rules) {
  RESP_FULL("HTTP/1.1 101 OK\nUpgrade: websocket\n\n");
  CHECK_EQ_INT(RESP("HTTP/1.1 101 OK\r\n Upgrade: websocket\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(RESP("HTTP/1.1 101 OK\r\nA: b\r\n c\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(RESP("HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(RESP("\r\nHTTP/1.1 101 OK\r\n\r\n"), DX_EHTTP_MALFORMED);
  CHECK_EQ_INT(RESP("HTTP/1.1 101 OK\r\n"), DX_EAGAIN);
  RESP_FULL("HTTP/1.1 101 OK\r\n\r\n");
  dx_http_limits lim = {.max_line = 16};
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 abc\r\n\r\n"), &lim, 64), 20);
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 abcd\r\n\r\n"), &lim, 64), DX_EHTTP_LINE_TOO_LONG);
  lim = (dx_http_limits){.max_size = 30};
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 OK\r\nA: 123456\r\n\r\n"), &lim, 64), 30);
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 OK\r\nA: 1234567\r\n\r\n"), &lim, 64),
               DX_EHTTP_TOO_LARGE);
  lim = (dx_http_limits){.max_headers = 1};
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 OK\r\nA: 1\r\n\r\n"), &lim, 64), 25);
  CHECK_EQ_INT(splits_resp(S("HTTP/1.1 101 OK\r\nA: 1\r\nB: 2\r\n\r\n"), &lim, 64),
               DX_EHTTP_TOO_MANY_HEADERS);
  dx_http_response resp;
  resp_init(&resp, g_hdrs, 64);
  CHECK_EQ_INT(dx_http_parse_response(NULL, 0, &resp, NULL), DX_EAGAIN);
  CHECK_EQ_INT(dx_http_parse_response("x", 1, NULL, NULL), DX_EINVAL);
}

int main(void) {
  RUN(request_basic);
  RUN(request_trailing_bytes_not_consumed);
  RUN(request_path_and_query);
  RUN(request_line_endings);
  RUN(request_leading_empty_lines);
  RUN(request_no_headers);
  RUN(request_obs_fold_rejected);
  RUN(request_bad_header_names);
  RUN(request_header_values);
  RUN(request_line_rules);
  RUN(request_versions);
  RUN(limit_request_line);
  RUN(limit_size);
  RUN(limit_slowloris);
  RUN(limit_headers);
  RUN(retry_after_eagain);
  RUN(find_and_tokens);
  RUN(realistic_requests);
  RUN(response_basic);
  RUN(response_status_line);
  RUN(response_rules);
  return test_report();
}
