/* The opening handshake: accept values, upgrade checks, builders, client
 * verification. Parsed input and builder output live in guarded buffers (an
 * over-read or over-write crashes). */
#include "duplex/error.h"
#include "duplex/handshake.h"
#include "test.h"

static int str_is(dx_str s, const char *lit) {
  return s.len == strlen(lit) && (s.len == 0 || memcmp(s.ptr, lit, s.len) == 0);
}

static const char k_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char k_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* ---- accept and key ---- */

static void accept_of(const char *key, size_t len, char out[DX_HANDSHAKE_ACCEPT_LEN + 1]) {
  char *g = guarded_copy(key, len);
  dx_handshake_accept_key(g, len, out);
  guarded_free(g);
}

TEST(accept_rfc_example) {
  char out[DX_HANDSHAKE_ACCEPT_LEN + 1];
  memset(out, 'x', sizeof out);
  accept_of(k_key, 24, out);
  CHECK_STR(out, k_accept);
  CHECK_EQ_INT(strlen(out), DX_HANDSHAKE_ACCEPT_LEN);
  accept_of("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
  CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(accept_any_key_length) {
  /* Short keys hash from a stack buffer, long ones stream: both agree with
   * values computed independently (Python hashlib). */
  static char k[300];
  memset(k, 'k', sizeof k);
  char out[DX_HANDSHAKE_ACCEPT_LEN + 1];
  accept_of(k, 0, out);
  CHECK_STR(out, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
  accept_of(k, 92, out);
  CHECK_STR(out, "LY9EluoxzTck+ySKVLqXrQNaqCc=");
  accept_of(k, 93, out);
  CHECK_STR(out, "OlyDH6wkbrkWbIFLI9V2r4u7Uus=");
  accept_of(k, 300, out);
  CHECK_STR(out, "0epks0nN8rNytIigCrEHZPQGWfI=");
}

TEST(make_key) {
  char out[DX_HANDSHAKE_KEY_LEN + 1];
  memset(out, 'x', sizeof out);
  dx_handshake_make_key((const uint8_t *)"the sample nonce", out);
  CHECK_STR(out, k_key);
  uint8_t nonce[16];
  for (int i = 0; i < 16; i++) nonce[i] = (uint8_t)(i + 1);
  dx_handshake_make_key(nonce, out);
  CHECK_STR(out, "AQIDBAUGBwgJCgsMDQ4PEA==");
  memset(nonce, 0xff, sizeof nonce);
  dx_handshake_make_key(nonce, out);
  CHECK_STR(out, "/////////////////////w==");
}

/* ---- server: dx_upgrade_check ---- */

static dx_http_header g_hdrs[64];
static char *g_in; /* guarded input of the last upgrade() call */

/* test.h tracks one guarded mapping at a time: release the input before
 * making another. */
static void upgrade_done(void) {
  if (g_in) guarded_free(g_in);
  g_in = NULL;
}

/* Parses `text` (a whole head) and runs dx_upgrade_check on it. The input
 * stays mapped until upgrade_done() so *out can be inspected. */
static int upgrade(const char *text, dx_http_request *req, dx_upgrade_request *out) {
  upgrade_done();
  size_t len = strlen(text);
  g_in = guarded_copy(text, len);
  memset(req, 0, sizeof *req);
  req->headers = g_hdrs;
  req->num_headers = 64;
  int r = dx_http_parse_request(g_in, len, req, NULL);
  if (r != (int)len) {
    fprintf(stderr, "  parse: %d (%s)\n", r, dx_errname(r));
    return -999;
  }
  return dx_upgrade_check(req, out);
}

/* The RFC 6455 request with one field replaced: `field` is a header name
 * ("Host") or "line" for the request line; `value` NULL drops the field and
 * `extra` adds lines. */
static int upgrade_with(const char *field, const char *value, const char *extra) {
  static const char *names[] = {"line",
                                "Host",
                                "Upgrade",
                                "Connection",
                                "Sec-WebSocket-Key",
                                "Origin",
                                "Sec-WebSocket-Protocol",
                                "Sec-WebSocket-Version"};
  static const char *values[] = {
      "GET /chat HTTP/1.1",       "server.example.com", "websocket",       "Upgrade",
      "dGhlIHNhbXBsZSBub25jZQ==", "http://example.com", "chat, superchat", "13"};
  static char buf[4096];
  size_t n = 0;
  for (size_t i = 0; i < 8; i++) {
    const char *v = values[i];
    if (field && strcmp(field, names[i]) == 0) v = value;
    if (!v) continue;
    if (i == 0)
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\r\n", v);
    else
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s: %s\r\n", names[i], v);
  }
  n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\r\n", extra ? extra : "");
  dx_http_request req;
  dx_upgrade_request out;
  int r = upgrade(buf, &req, &out);
  upgrade_done();
  return r;
}

TEST(upgrade_rfc_example) {
  static const char in[] = "GET /chat HTTP/1.1\r\n"
                           "Host: server.example.com\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Origin: http://example.com\r\n"
                           "Sec-WebSocket-Protocol: chat, superchat\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           "\r\n";
  dx_http_request req;
  dx_upgrade_request out;
  CHECK_EQ_INT(upgrade(in, &req, &out), 0);
  CHECK(str_is(out.host, "server.example.com"));
  CHECK(str_is(out.origin, "http://example.com"));
  CHECK(str_is(out.key, k_key));
  CHECK(str_is(out.protocols, "chat, superchat"));
  CHECK_EQ_INT(out.num_extensions, 0);
  CHECK_STR(out.accept, k_accept);
  upgrade_done();
  CHECK_EQ_INT(upgrade_with(NULL, NULL, NULL), 0);
}

TEST(upgrade_method_version_target) {
  CHECK_EQ_INT(upgrade_with("line", "POST /chat HTTP/1.1", NULL), DX_EHTTP_METHOD);
  CHECK_EQ_INT(upgrade_with("line", "get /chat HTTP/1.1", NULL), DX_EHTTP_METHOD);
  CHECK_EQ_INT(upgrade_with("line", "GETS /chat HTTP/1.1", NULL), DX_EHTTP_METHOD);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_METHOD), 405);
  CHECK_EQ_INT(upgrade_with("line", "GET /chat HTTP/1.0", NULL), DX_EHTTP_VERSION);
  CHECK_EQ_INT(upgrade_with("line", "GET /chat HTTP/1.2", NULL), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_VERSION), 400);
  CHECK_EQ_INT(upgrade_with("line", "GET * HTTP/1.1", NULL), DX_EHTTP_TARGET);
  CHECK_EQ_INT(upgrade_with("line", "GET chat HTTP/1.1", NULL), DX_EHTTP_TARGET);
  CHECK_EQ_INT(upgrade_with("line", "GET example.com:80 HTTP/1.1", NULL), DX_EHTTP_TARGET);
  CHECK_EQ_INT(upgrade_with("line", "GET http://example.com HTTP/1.1", NULL), DX_EHTTP_TARGET);
  CHECK_EQ_INT(upgrade_with("line", "GET ?x HTTP/1.1", NULL), DX_EHTTP_TARGET);
  CHECK_EQ_INT(upgrade_with("line", "GET http://example.com/chat?x HTTP/1.1", NULL), 0);
  CHECK_EQ_INT(upgrade_with("line", "GET /?x HTTP/1.1", NULL), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_TARGET), 400);
}

TEST(upgrade_host) {
  CHECK_EQ_INT(upgrade_with("Host", NULL, NULL), DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(upgrade_with("Host", "", NULL), DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Host: evil.example\r\n"), DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "host: server.example.com\r\n"), DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(upgrade_with("Host", "localhost:8080", NULL), 0);
}

TEST(upgrade_upgrade_and_connection) {
  CHECK_EQ_INT(upgrade_with("Upgrade", NULL, NULL), DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(upgrade_with("Upgrade", "h2c", NULL), DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(upgrade_with("Upgrade", "websockets", NULL), DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(upgrade_with("Upgrade", "", NULL), DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(upgrade_with("Upgrade", "WebSocket", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Upgrade", "h2c, websocket", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Upgrade", "h2c", "Upgrade: websocket\r\n"), 0);
  CHECK_EQ_INT(upgrade_with("Connection", NULL, NULL), DX_EHTTP_NO_CONNECTION);
  CHECK_EQ_INT(upgrade_with("Connection", "keep-alive", NULL), DX_EHTTP_NO_CONNECTION);
  CHECK_EQ_INT(upgrade_with("Connection", "upgraded", NULL), DX_EHTTP_NO_CONNECTION);
  CHECK_EQ_INT(upgrade_with("Connection", "keep-alive, Upgrade", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Connection", "UPGRADE", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Connection", "keep-alive", "connection: upgrade\r\n"), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_NO_UPGRADE), 400);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EHTTP_NO_CONNECTION), 400);
}

TEST(upgrade_key) {
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", NULL, NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"),
               DX_EWS_KEY); /* duplicate */
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ===", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ", NULL), DX_EWS_KEY);
  /* 24 characters but not 16 bytes: 18 bytes, or padding in the wrong place. */
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQab", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ===", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=a", NULL), DX_EWS_KEY);
  /* Not base64, or the URL-safe alphabet. */
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q==", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j-Q==", NULL), DX_EWS_KEY);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBs ZSBub25jQ==", NULL), DX_EWS_KEY);
  /* Valid: all alphabet characters; surrounding whitespace is trimmed;
   * non-zero padding bits tolerated ('R' instead of 'Q'). */
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "+/9zAZaz09+/9zAZaz09+w==", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", " \tdGhlIHNhbXBsZSBub25jZQ== ", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==", NULL), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_KEY), 400);
}

TEST(upgrade_version) {
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", NULL, NULL), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", "8", NULL), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", "13, 8", NULL), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", "013", NULL), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", "", NULL), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Version: 13\r\n"), DX_EWS_VERSION);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Version", " 13\t", NULL), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_VERSION), 426);
}

TEST(upgrade_extensions) {
  dx_http_request req;
  dx_upgrade_request out;
  static const char two[] =
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
      "Sec-WebSocket-Extensions: x-foo, permessage-deflate\r\n"
      "\r\n";
  CHECK_EQ_INT(upgrade(two, &req, &out), 0);
  CHECK_EQ_INT(out.num_extensions, 3);
  CHECK(str_is(out.extensions[0].name, "permessage-deflate"));
  CHECK_EQ_INT(out.extensions[0].num_params, 1);
  CHECK(str_is(out.extensions[1].name, "x-foo"));
  CHECK(str_is(out.extensions[2].name, "permessage-deflate"));
  CHECK_EQ_INT(out.origin.len, 0);
  CHECK_EQ_INT(out.protocols.len, 0);
  upgrade_done();
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Extensions: permessage-deflate;\r\n"),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(upgrade_with(NULL, NULL,
                            "Sec-WebSocket-Extensions: a\r\n"
                            "Sec-WebSocket-Extensions: b; x=\"y z\"\r\n"),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Extensions: a, b, c, d, e, f, g, h\r\n"), 0);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Extensions: a, b, c, d, e, f, g, h, i\r\n"),
               DX_EWS_EXTENSIONS); /* more than fit: 400, not 500 */
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "Sec-WebSocket-Extensions: \r\n"), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_EXTENSIONS), 400);
}

TEST(upgrade_protocols) {
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "chat superchat", NULL), DX_EWS_PROTOCOL);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "chat; q=1", NULL), DX_EWS_PROTOCOL);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "\"chat\"", NULL), DX_EWS_PROTOCOL);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "chat", "Sec-WebSocket-Protocol: a/b\r\n"),
               DX_EWS_PROTOCOL);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", ",chat,, superchat ,", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "", NULL), 0);
  CHECK_EQ_INT(upgrade_with("Sec-WebSocket-Protocol", "v1.json.api, mqtt", NULL), 0);
  CHECK_EQ_INT(dx_http_status_for_error(DX_EWS_PROTOCOL), 400);
}

TEST(upgrade_origin) {
  CHECK_EQ_INT(upgrade_with("Origin", NULL, NULL), 0);
  CHECK_EQ_INT(upgrade_with(NULL, NULL, "origin: http://evil.example\r\n"), DX_EHTTP_MALFORMED);
}

TEST(upgrade_check_order) {
  /* The first rule broken wins, in the documented order. */
  CHECK_EQ_INT(upgrade("POST / HTTP/1.0\r\n\r\n", &(dx_http_request){0}, &(dx_upgrade_request){0}),
               DX_EHTTP_METHOD);
  CHECK_EQ_INT(upgrade("GET / HTTP/1.0\r\n\r\n", &(dx_http_request){0}, &(dx_upgrade_request){0}),
               DX_EHTTP_VERSION);
  CHECK_EQ_INT(upgrade("GET / HTTP/1.1\r\n\r\n", &(dx_http_request){0}, &(dx_upgrade_request){0}),
               DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(
      upgrade("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &(dx_http_request){0}, &(dx_upgrade_request){0}),
      DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(upgrade("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
                       &(dx_http_request){0}, &(dx_upgrade_request){0}),
               DX_EHTTP_NO_CONNECTION);
  CHECK_EQ_INT(upgrade("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: "
                       "upgrade\r\nSec-WebSocket-Extensions: ;\r\n\r\n",
                       &(dx_http_request){0}, &(dx_upgrade_request){0}),
               DX_EWS_KEY);
  upgrade_done();
  CHECK_EQ_INT(dx_upgrade_check(NULL, &(dx_upgrade_request){0}), DX_EINVAL);
}

TEST(select_protocol) {
  dx_http_request req;
  dx_upgrade_request out;
  static const char in[] = "GET / HTTP/1.1\r\n"
                           "Sec-WebSocket-Protocol: chat, v2.json\r\n"
                           "Sec-WebSocket-Protocol: superchat\r\n"
                           "\r\n";
  CHECK_EQ_INT(upgrade(in, &req, &out), DX_EHTTP_NO_HOST); /* only the parse matters here */
  const char *s1[] = {"superchat", "chat"};
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s1, 2), 0); /* server's preference wins */
  const char *s2[] = {"mqtt", "v2.json"};
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s2, 2), 1);
  const char *s3[] = {"CHAT", "superChat", "cha", "chat,"};
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s3, 4), -1); /* case-sensitive, whole names */
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s1, 0), -1);
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, NULL, 0), -1);
  const char *s4[] = {"", "chat"};
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s4, 2), 1);
  CHECK_EQ_INT(upgrade("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req, &out), DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s1, 2), -1); /* none offered */
  CHECK_EQ_INT(upgrade("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: ,\r\n\r\n", &req, &out),
               DX_EHTTP_NO_HOST);
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, s4, 2), -1); /* empty elements match nothing */
  upgrade_done();
}

/* ---- builders ---- */

typedef struct build_call {
  int kind; /* 0 response, 1 error, 2 request */
  const char *accept, *protocol, *extensions, *extra;
  int status;
  const char *body;
  const dx_client_request *req;
} build_call;

static int do_build(const build_call *c, char *buf, size_t cap) {
  switch (c->kind) {
  case 0:
    return dx_handshake_build_response(buf, cap, c->accept, c->protocol, c->extensions, c->extra);
  case 1:
    return dx_http_build_error(buf, cap, c->status, c->body);
  default:
    return dx_handshake_build_request(buf, cap, c->req);
  }
}

/* Builds into a buffer of every size from 0 to one past the result, each
 * ending at the guard page: DX_ENOSPC below the full length, the exact bytes
 * from there on. */
static void check_build(const build_call *c, const char *expected) {
  static char filler[8192];
  size_t full = strlen(expected);
  CHECK_EQ_INT(do_build(c, NULL, 0), full == 0 ? 0 : DX_ENOSPC);
  for (size_t cap = 0; cap <= full + 1; cap++) {
    char *g = guarded_copy(filler, cap);
    int r = do_build(c, g, cap);
    if (cap < full) {
      if (r != DX_ENOSPC) fprintf(stderr, "  cap %zu: %d\n", cap, r);
      CHECK_EQ_INT(r, DX_ENOSPC);
    } else {
      CHECK_EQ_INT(r, full);
      if (r == (int)full && memcmp(g, expected, full) != 0) {
        fprintf(stderr, "  got:\n%.*s\n  expected:\n%s\n", (int)full, g, expected);
        CHECK(0);
      }
    }
    guarded_free(g);
  }
}

TEST(build_response) {
  build_call c = {.kind = 0, .accept = k_accept};
  check_build(&c, "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                  "\r\n");
  c.protocol = "chat";
  c.extensions = "permessage-deflate; server_no_context_takeover";
  c.extra = "Server: duplex\r\nX-Req: 1\r\n";
  check_build(&c, "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                  "Sec-WebSocket-Protocol: chat\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                  "Server: duplex\r\n"
                  "X-Req: 1\r\n"
                  "\r\n");
  c = (build_call){.kind = 0, .accept = k_accept, .extra = ""};
  check_build(&c, "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                  "\r\n");
  char buf[512];
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, NULL, NULL, NULL, NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, "a\r\nX: y", NULL, NULL, NULL),
               DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, k_accept, "chat\r\nX: y", NULL, NULL),
               DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, k_accept, "a b", NULL, NULL),
               DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, k_accept, "", NULL, NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, k_accept, NULL, "a\nb", NULL),
               DX_EINVAL);
  const char *bad_extra[] = {"X: y",      "X: y\n",  "X: y\r\n\r\n", "\r\n",     "X: y\rz\r\n",
                             " X: y\r\n", "X y\r\n", ": y\r\n",      "X: y\r\nZ"};
  for (size_t i = 0; i < sizeof bad_extra / sizeof bad_extra[0]; i++)
    CHECK_EQ_INT(dx_handshake_build_response(buf, sizeof buf, k_accept, NULL, NULL, bad_extra[i]),
                 DX_EINVAL);
  CHECK_EQ_INT(dx_handshake_build_response(NULL, 5, k_accept, NULL, NULL, NULL), DX_EINVAL);
}

TEST(build_error) {
  build_call c = {.kind = 1, .status = 400};
  check_build(&c, "HTTP/1.1 400 Bad Request\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 12\r\n"
                  "Connection: close\r\n"
                  "\r\n"
                  "Bad Request\n");
  c.status = 405;
  check_build(&c, "HTTP/1.1 405 Method Not Allowed\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 19\r\n"
                  "Connection: close\r\n"
                  "Allow: GET\r\n"
                  "\r\n"
                  "Method Not Allowed\n");
  c.status = 426;
  check_build(&c, "HTTP/1.1 426 Upgrade Required\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 17\r\n"
                  "Connection: close\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "Upgrade: websocket\r\n"
                  "\r\n"
                  "Upgrade Required\n");
  c = (build_call){.kind = 1,
                   .status = 431,
                   .body = "h\xc3\xa9"
                           "aders too large"};
  check_build(&c, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 18\r\n"
                  "Connection: close\r\n"
                  "\r\n"
                  "h\xc3\xa9"
                  "aders too large");
  c = (build_call){.kind = 1, .status = 404, .body = ""};
  check_build(&c, "HTTP/1.1 404 Not Found\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 0\r\n"
                  "Connection: close\r\n"
                  "\r\n");
  c = (build_call){.kind = 1, .status = 599};
  check_build(&c, "HTTP/1.1 599 Unknown\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: 8\r\n"
                  "Connection: close\r\n"
                  "\r\n"
                  "Unknown\n");
  /* A large body: Content-Length with more digits. */
  static char body[2000];
  memset(body, 'b', 1234);
  char expected[2200];
  snprintf(expected, sizeof expected,
           "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Length: 1234\r\nConnection: close\r\n\r\n%s",
           body);
  c = (build_call){.kind = 1, .status = 500, .body = body};
  check_build(&c, expected);
  char buf[256];
  int bad[] = {0, 99, 100, 101, 199, 204, 304, 1000, -400};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_EQ_INT(dx_http_build_error(buf, sizeof buf, bad[i], NULL), DX_EINVAL);
  /* Every error response parses back with the right status. */
  int all[] = {400, 401, 403, 404, 405, 408, 413, 426, 429, 431, 500, 501, 503};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    int n = dx_http_build_error(buf, sizeof buf, all[i], NULL);
    CHECK(n > 0);
    dx_http_header h[8];
    dx_http_response resp = {.headers = h, .num_headers = 8};
    int r = dx_http_parse_response(buf, (size_t)n, &resp, NULL);
    CHECK(r > 0 && r < n);
    CHECK_EQ_INT(resp.status, all[i]);
    CHECK(str_is(resp.reason, dx_http_reason(all[i])));
    CHECK((size_t)(n - r) == strlen(dx_http_reason(all[i])) + 1);
  }
}

TEST(reasons) {
  int codes[] = {101, 200, 204, 301, 304, 400, 401, 403, 404,
                 405, 408, 413, 426, 429, 431, 500, 501, 503};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    CHECK(strcmp(dx_http_reason(codes[i]), "Unknown") != 0);
  CHECK_STR(dx_http_reason(101), "Switching Protocols");
  CHECK_STR(dx_http_reason(404), "Not Found");
  CHECK_STR(dx_http_reason(426), "Upgrade Required");
  CHECK_STR(dx_http_reason(431), "Request Header Fields Too Large");
  CHECK_STR(dx_http_reason(0), "Unknown");
  CHECK_STR(dx_http_reason(299), "Unknown");
  CHECK_STR(dx_http_reason(-1), "Unknown");
}

TEST(build_request) {
  dx_client_request r = {.host = "server.example.com", .path = "/chat", .key = k_key};
  build_call c = {.kind = 2, .req = &r};
  check_build(&c, "GET /chat HTTP/1.1\r\n"
                  "Host: server.example.com\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "\r\n");
  const char *protos[] = {"chat", "superchat"};
  r = (dx_client_request){.host = "example.com:8080",
                          .key = k_key,
                          .protocols = protos,
                          .num_protocols = 2,
                          .extensions = "permessage-deflate; client_max_window_bits",
                          .origin = "http://example.com",
                          .extra_headers = "Authorization: Bearer abc\r\nUser-Agent: duplex\r\n"};
  check_build(&c, "GET / HTTP/1.1\r\n"
                  "Host: example.com:8080\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: chat, superchat\r\n"
                  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                  "Origin: http://example.com\r\n"
                  "Authorization: Bearer abc\r\n"
                  "User-Agent: duplex\r\n"
                  "\r\n");
  r = (dx_client_request){
      .host = "h", .path = "/a?b=1", .key = k_key, .protocols = protos, .num_protocols = 1};
  check_build(&c, "GET /a?b=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n");

  char buf[1024];
  const dx_client_request base = {.host = "h", .path = "/", .key = k_key};
  dx_client_request b = base;
  CHECK(dx_handshake_build_request(buf, sizeof buf, &b) > 0);
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, NULL), DX_EINVAL);
  b.host = NULL;
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b.host = "";
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b.host = "h\r\nX: y";
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b = base;
  b.key = NULL;
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  const char *bad_paths[] = {"", "chat", "/a b", "/a\r\n", "/a\x7f", "http://h/"};
  for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
    b = base;
    b.path = bad_paths[i];
    CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  }
  const char *bad_protos[] = {"chat", "a b"};
  b = base;
  b.protocols = bad_protos;
  b.num_protocols = 2;
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b.protocols = NULL;
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b = base;
  b.origin = "o\n";
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b = base;
  b.extensions = "a\rb";
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
  b = base;
  b.extra_headers = "X: y";
  CHECK_EQ_INT(dx_handshake_build_request(buf, sizeof buf, &b), DX_EINVAL);
}

/* ---- client: dx_upgrade_verify ---- */

static const char *const k_protos[] = {"chat", "superchat"};
static const char *const k_exts[] = {"permessage-deflate", NULL};

static int verify_full(const char *text, const char *key, const char *const *protos, size_t nprotos,
                       const char *const *exts, dx_upgrade_response *out) {
  size_t len = strlen(text);
  char *g = guarded_copy(text, len);
  dx_http_header h[32];
  dx_http_response resp = {.headers = h, .num_headers = 32};
  int r = dx_http_parse_response(g, len, &resp, NULL);
  if (r != (int)len) {
    fprintf(stderr, "  parse: %d\n", r);
    guarded_free(g);
    return -999;
  }
  r = dx_upgrade_verify(&resp, key, protos, nprotos, exts, out);
  guarded_free(g); /* out's extension strings are not used after this */
  return r;
}

/* A 101 answer to k_key with `more` header lines added. */
static int verify(const char *more, dx_upgrade_response *out) {
  char buf[2048];
  snprintf(buf, sizeof buf,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n%s\r\n",
           more);
  return verify_full(buf, k_key, k_protos, 2, k_exts, out);
}

TEST(verify_ok) {
  dx_upgrade_response out;
  CHECK_EQ_INT(verify("", &out), 0);
  CHECK_EQ_INT(out.protocol_index, -1);
  CHECK_EQ_INT(out.num_extensions, 0);
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: superchat\r\n", &out), 0);
  CHECK_EQ_INT(out.protocol_index, 1);
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                      "client_max_window_bits=10\r\n",
                      &out),
               0);
  CHECK_EQ_INT(out.num_extensions, 1);
  CHECK_EQ_INT(out.extensions[0].num_params, 2);
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: Permessage-Deflate\r\n", &out), 0);
  /* Header names and Upgrade/Connection tokens in any case, in lists. */
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
                           "upgrade: WebSocket\r\n"
                           "connection: keep-alive, upgrade\r\n"
                           "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               0);
}

TEST(verify_failures) {
  dx_upgrade_response out;
  CHECK_EQ_INT(verify_full("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_STATUS);
  CHECK_EQ_INT(verify_full("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_STATUS);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_NO_UPGRADE);
  /* RFC 6455 4.1: Upgrade must be "websocket" itself; 101 needs HTTP/1.1. */
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_NO_UPGRADE);
  CHECK_EQ_INT(verify_full("HTTP/1.0 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_VERSION);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EHTTP_NO_CONNECTION);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EWS_ACCEPT);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                           "AQIDBAUGBwgJCgsMDQ4PEA==", NULL, 0, NULL, &out),
               DX_EWS_ACCEPT); /* right accept for a different key */
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EWS_ACCEPT); /* base64 is case-sensitive */
  CHECK_EQ_INT(verify("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", &out),
               DX_EWS_ACCEPT); /* twice */
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: mqtt\r\n", &out), DX_EWS_UNOFFERED_PROTOCOL);
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: Chat\r\n", &out), DX_EWS_UNOFFERED_PROTOCOL);
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: chat, superchat\r\n", &out),
               DX_EWS_UNOFFERED_PROTOCOL);
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n", &out),
               DX_EWS_UNOFFERED_PROTOCOL);
  CHECK_EQ_INT(verify("Sec-WebSocket-Protocol: \r\n", &out), DX_EWS_UNOFFERED_PROTOCOL);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Protocol: chat\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EWS_UNOFFERED_PROTOCOL); /* nothing offered */
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: x-foo\r\n", &out), DX_EWS_UNOFFERED_EXTENSION);
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: permessage-deflate, x-foo\r\n", &out),
               DX_EWS_UNOFFERED_EXTENSION);
  CHECK_EQ_INT(verify_full("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                           k_key, NULL, 0, NULL, &out),
               DX_EWS_UNOFFERED_EXTENSION); /* nothing offered */
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: permessage-deflate;\r\n", &out),
               DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(verify("Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate, "
                      "permessage-deflate, permessage-deflate, permessage-deflate\r\n",
                      &out),
               DX_EWS_EXTENSIONS); /* more than dx_upgrade_response holds */
  dx_http_response resp = {0};
  CHECK_EQ_INT(dx_upgrade_verify(&resp, NULL, NULL, 0, NULL, &out), DX_EINVAL);
  CHECK_EQ_INT(dx_upgrade_verify(NULL, k_key, NULL, 0, NULL, &out), DX_EINVAL);
}

/* ---- real peers ----
 * Captured from Node's ws 8.23.0 and Python's websockets 10.4 (client
 * requests, and their servers' answers to the RFC 6455 example request). */

static const char k_node_ws_request[] =
    "GET /chat?room=1 HTTP/1.1\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: FAy6mPnpT+ygYiL5Mkazeg==\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: chat,superchat\r\n"
    "Host: 127.0.0.1:37623\r\n"
    "\r\n";

static const char k_python_request[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: 127.0.0.1:46183\r\n"
    "Origin: http://localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: KZDsGVjlZIMGYLRIAI0e8A==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "User-Agent: Python/3.11 websockets/10.4\r\n"
    "\r\n";

static const char k_node_ws_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                    "Sec-WebSocket-Protocol: chat\r\n"
                                    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                    "\r\n";

static const char k_python_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                   "Sec-WebSocket-Extensions: permessage-deflate; "
                                   "server_max_window_bits=12; client_max_window_bits=12\r\n"
                                   "Sec-WebSocket-Protocol: superchat\r\n"
                                   "Date: Sat, 21 Nov 2026 13:46:56 GMT\r\n"
                                   "Server: Python/3.11 websockets/10.4\r\n"
                                   "\r\n";

static const char k_node_ws_400[] = "HTTP/1.1 400 Bad Request\r\n"
                                    "Connection: close\r\n"
                                    "Content-Type: text/html\r\n"
                                    "Content-Length: 43\r\n"
                                    "\r\n";

TEST(real_clients) {
  dx_http_request req;
  dx_upgrade_request out;
  CHECK_EQ_INT(upgrade(k_node_ws_request, &req, &out), 0);
  CHECK(str_is(out.host, "127.0.0.1:37623"));
  CHECK(str_is(out.key, "FAy6mPnpT+ygYiL5Mkazeg=="));
  CHECK_EQ_INT(out.num_extensions, 1);
  CHECK(str_is(out.extensions[0].params[0].name, "client_max_window_bits"));
  const char *sup[] = {"superchat", "chat"};
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, sup, 2), 0); /* from "chat,superchat" */
  CHECK(str_is(req.query, "room=1"));
  CHECK_EQ_INT(upgrade(k_python_request, &req, &out), 0);
  CHECK(str_is(out.origin, "http://localhost"));
  CHECK_EQ_INT(dx_handshake_select_protocol(&req, sup, 2), 1);
  upgrade_done();
}

TEST(real_servers) {
  dx_upgrade_response out;
  CHECK_EQ_INT(verify_full(k_node_ws_101, k_key, k_protos, 2, k_exts, &out), 0);
  CHECK_EQ_INT(out.protocol_index, 0);
  CHECK_EQ_INT(out.num_extensions, 1);
  CHECK_EQ_INT(verify_full(k_python_101, k_key, k_protos, 2, k_exts, &out), 0);
  CHECK_EQ_INT(out.protocol_index, 1);
  CHECK_EQ_INT(out.num_extensions, 1);
  CHECK_EQ_INT(out.extensions[0].num_params, 2);
  CHECK_EQ_INT(verify_full(k_node_ws_400, k_key, k_protos, 2, k_exts, &out), DX_EHTTP_STATUS);
}

/* ---- both sides together ---- */

TEST(round_trip) {
  uint8_t nonce[16];
  for (int i = 0; i < 16; i++) nonce[i] = (uint8_t)(i * 37 + 5);
  char key[DX_HANDSHAKE_KEY_LEN + 1];
  dx_handshake_make_key(nonce, key);
  const char *offered[] = {"v1.chat", "v2.chat"};
  const char *const offered_exts[] = {"permessage-deflate", NULL};
  dx_client_request creq = {.host = "localhost:9000",
                            .path = "/ws?room=7",
                            .key = key,
                            .protocols = offered,
                            .num_protocols = 2,
                            .extensions = "permessage-deflate; client_max_window_bits",
                            .origin = "https://app.example"};
  char out[1024];
  int n = dx_handshake_build_request(out, sizeof out, &creq);
  CHECK(n > 0);

  /* Server. */
  char *g = guarded_copy(out, (size_t)n);
  dx_http_header h[16];
  dx_http_request req = {.headers = h, .num_headers = 16};
  CHECK_EQ_INT(dx_http_parse_request(g, (size_t)n, &req, NULL), n);
  CHECK(str_is(req.path, "/ws"));
  CHECK(str_is(req.query, "room=7"));
  dx_upgrade_request up;
  CHECK_EQ_INT(dx_upgrade_check(&req, &up), 0);
  CHECK(str_is(up.host, "localhost:9000"));
  CHECK(str_is(up.origin, "https://app.example"));
  CHECK_EQ_INT(up.num_extensions, 1);
  const char *supported[] = {"v2.chat", "v1.chat"};
  int idx = dx_handshake_select_protocol(&req, supported, 2);
  CHECK_EQ_INT(idx, 0);
  char resp_buf[512];
  int m = dx_handshake_build_response(resp_buf, sizeof resp_buf, up.accept, supported[idx],
                                      "permessage-deflate", NULL);
  CHECK(m > 0);
  guarded_free(g);

  /* Client. */
  g = guarded_copy(resp_buf, (size_t)m);
  dx_http_response resp = {.headers = h, .num_headers = 16};
  CHECK_EQ_INT(dx_http_parse_response(g, (size_t)m, &resp, NULL), m);
  dx_upgrade_response res;
  CHECK_EQ_INT(dx_upgrade_verify(&resp, key, offered, 2, offered_exts, &res), 0);
  CHECK_EQ_INT(res.protocol_index, 1);
  CHECK_EQ_INT(res.num_extensions, 1);
  CHECK(str_is(res.extensions[0].name, "permessage-deflate"));
  guarded_free(g);
}

int main(void) {
  RUN(accept_rfc_example);
  RUN(accept_any_key_length);
  RUN(make_key);
  RUN(upgrade_rfc_example);
  RUN(upgrade_method_version_target);
  RUN(upgrade_host);
  RUN(upgrade_upgrade_and_connection);
  RUN(upgrade_key);
  RUN(upgrade_version);
  RUN(upgrade_extensions);
  RUN(upgrade_protocols);
  RUN(upgrade_origin);
  RUN(upgrade_check_order);
  RUN(select_protocol);
  RUN(build_response);
  RUN(build_error);
  RUN(reasons);
  RUN(build_request);
  RUN(verify_ok);
  RUN(verify_failures);
  RUN(real_clients);
  RUN(real_servers);
  RUN(round_trip);
  return test_report();
}
