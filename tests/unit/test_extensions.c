/* Sec-WebSocket-Extensions parsing (RFC 6455 section 9.1). Inputs sit right
 * before an unreadable page, so an over-read crashes. */
#include "duplex/error.h"
#include "duplex/handshake.h"
#include "test.h"

static int str_is(dx_str s, const char *lit) {
  return s.ptr && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static dx_ext_offer g_offers[16];

/* Parses `value` (guarded) appending to g_offers[*n..cap). The guarded copy
 * stays mapped until the next call so results can be inspected. */
static char *g_last;
static void release(void) { /* test.h tracks one guarded mapping at a time */
  if (g_last) guarded_free(g_last);
  g_last = NULL;
}

static int parse(const char *value, size_t *n, size_t cap) {
  release();
  size_t len = strlen(value);
  g_last = guarded_copy(value, len);
  return dx_ext_parse(g_last, len, g_offers, n, cap);
}

static int parse1(const char *value) {
  size_t n = 0;
  int r = parse(value, &n, 16);
  return r ? r : (int)n;
}

TEST(chrome) {
  size_t n = 0;
  CHECK_EQ_INT(parse("permessage-deflate; client_max_window_bits", &n, 16), 0);
  CHECK_EQ_INT(n, 1);
  CHECK(str_is(g_offers[0].name, "permessage-deflate"));
  CHECK_EQ_INT(g_offers[0].num_params, 1);
  CHECK(str_is(g_offers[0].params[0].name, "client_max_window_bits"));
  CHECK(g_offers[0].params[0].value.ptr == NULL);
  CHECK_EQ_INT(g_offers[0].params[0].value.len, 0);
  /* Strings point into the input. */
  CHECK(g_offers[0].name.ptr == g_last);
}

TEST(firefox) {
  size_t n = 0;
  CHECK_EQ_INT(parse("permessage-deflate", &n, 16), 0);
  CHECK_EQ_INT(n, 1);
  CHECK(str_is(g_offers[0].name, "permessage-deflate"));
  CHECK_EQ_INT(g_offers[0].num_params, 0);
}

TEST(multiple_offers) {
  size_t n = 0;
  CHECK_EQ_INT(parse("permessage-deflate; client_max_window_bits=10; server_no_context_takeover, "
                     "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
                     &n, 16),
               0);
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(g_offers[0].num_params, 2);
  CHECK(str_is(g_offers[0].params[0].name, "client_max_window_bits"));
  CHECK(str_is(g_offers[0].params[0].value, "10"));
  CHECK(str_is(g_offers[0].params[1].name, "server_no_context_takeover"));
  CHECK(g_offers[0].params[1].value.ptr == NULL);
  CHECK(str_is(g_offers[1].name, "permessage-deflate"));
  CHECK_EQ_INT(g_offers[1].num_params, 1);
  CHECK(str_is(g_offers[2].name, "x-webkit-deflate-frame"));
  CHECK_EQ_INT(g_offers[2].num_params, 0);
}

TEST(quoted_values) {
  size_t n = 0;
  CHECK_EQ_INT(parse("foo; bar=\"10\"; baz=\"x-y\"", &n, 16), 0);
  CHECK_EQ_INT(n, 1);
  CHECK(str_is(g_offers[0].params[0].value, "10"));
  CHECK(str_is(g_offers[0].params[1].value, "x-y"));
  CHECK(g_offers[0].params[0].value.ptr == g_last + 10); /* inside the quotes */
  /* Not a token once unquoted, empty, unterminated, escaped: rejected. */
  CHECK_EQ_INT(parse1("foo; bar=\"\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"a b\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"a,b\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"a;b\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"10"), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"1\\0\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"\\10\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"10\"x"), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=\"10\"\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("foo; bar=1\"0\""), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse1("\"foo\""), DX_EWS_EXTENSIONS); /* names are never quoted */
  CHECK_EQ_INT(parse1("foo; \"bar\"=1"), DX_EWS_EXTENSIONS);
}

TEST(whitespace) {
  size_t n = 0;
  CHECK_EQ_INT(parse(" \tfoo \t;\t a \t=\t 1 \t; b = \"2\" ;c\t,\tbar ; d=3 \t", &n, 16), 0);
  CHECK_EQ_INT(n, 2);
  CHECK(str_is(g_offers[0].name, "foo"));
  CHECK_EQ_INT(g_offers[0].num_params, 3);
  CHECK(str_is(g_offers[0].params[0].name, "a"));
  CHECK(str_is(g_offers[0].params[0].value, "1"));
  CHECK(str_is(g_offers[0].params[1].value, "2"));
  CHECK(str_is(g_offers[0].params[2].name, "c"));
  CHECK(str_is(g_offers[1].name, "bar"));
  CHECK(str_is(g_offers[1].params[0].value, "3"));
  n = 0;
  CHECK_EQ_INT(parse("foo;a=1;b", &n, 16), 0);
  CHECK_EQ_INT(g_offers[0].num_params, 2);
}

TEST(empty_elements) {
  size_t n = 0;
  CHECK_EQ_INT(parse(", foo,, ,\tbar ,", &n, 16), 0);
  CHECK_EQ_INT(n, 2);
  CHECK(str_is(g_offers[0].name, "foo"));
  CHECK(str_is(g_offers[1].name, "bar"));
  CHECK_EQ_INT(parse1(""), 0);
  CHECK_EQ_INT(parse1("  \t "), 0);
  CHECK_EQ_INT(parse1(",,,"), 0);
  n = 0;
  CHECK_EQ_INT(dx_ext_parse(NULL, 0, g_offers, &n, 16), 0);
  CHECK_EQ_INT(n, 0);
}

TEST(bad_syntax) {
  const char *bad[] = {
      ";foo",     "foo;",       "foo; ",     "foo;;a",       "foo;=1",         "foo; a=",
      "foo; a= ", "foo; a=;b",  "foo bar",   "foo, bar baz", "fo(o",           "foo; a=b=c",
      "foo; a b", "foo; a=b c", "foo=1",     "foo,;",        "f\xc3\xb6o",     "foo; a=\xc3\xb6",
      "foo\x01",  "foo;a/b",    "foo;a=b/c", "foo: bar",     "foo; a=\"b\" c",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = 3;
    int r = parse(bad[i], &n, 16);
    if (r != DX_EWS_EXTENSIONS) fprintf(stderr, "  accepted: '%s' (%d)\n", bad[i], r);
    CHECK_EQ_INT(r, DX_EWS_EXTENSIONS);
    CHECK_EQ_INT(n, 3); /* unchanged on error */
  }
  /* A NUL inside the counted value is just a bad byte. */
  release();
  char *g = guarded_copy("foo\0bar", 7);
  size_t n = 0;
  CHECK_EQ_INT(dx_ext_parse(g, 7, g_offers, &n, 16), DX_EWS_EXTENSIONS);
  guarded_free(g);
}

TEST(max_params) {
  size_t n = 0;
  CHECK_EQ_INT(DX_EXT_MAX_PARAMS, 8);
  CHECK_EQ_INT(parse("x; a; b; c=1; d; e; f; g; h=\"2\"", &n, 16), 0);
  CHECK_EQ_INT(g_offers[0].num_params, 8);
  CHECK(str_is(g_offers[0].params[7].value, "2"));
  n = 0;
  CHECK_EQ_INT(parse("x; a; b; c=1; d; e; f; g; h; i", &n, 16), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(n, 0);
  /* The limit is per offer. */
  n = 0;
  CHECK_EQ_INT(parse("x; a; b; c; d; e; f; g; h, y; a; b; c; d; e; f; g; h", &n, 16), 0);
  CHECK_EQ_INT(n, 2);
}

TEST(capacity) {
  size_t n = 0;
  CHECK_EQ_INT(parse("a, b, c", &n, 3), 0);
  CHECK_EQ_INT(n, 3);
  n = 0;
  CHECK_EQ_INT(parse("a, b, c, d", &n, 3), DX_ELIMIT);
  CHECK_EQ_INT(n, 0);
  /* Appending: several header lines accumulate. */
  n = 0;
  CHECK_EQ_INT(parse("a; x=1", &n, 3), 0);
  CHECK_EQ_INT(parse("b, c", &n, 3), 0);
  CHECK_EQ_INT(n, 3);
  CHECK(str_is(g_offers[2].name, "c"));
  CHECK_EQ_INT(parse("d", &n, 3), DX_ELIMIT);
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(parse("", &n, 3), 0); /* nothing to add still fits */
  CHECK_EQ_INT(parse(" , ", &n, 3), 0);
  CHECK_EQ_INT(n, 3);
  /* Bad syntax beyond the capacity is still bad syntax. */
  n = 0;
  CHECK_EQ_INT(parse("a, b, c, d;", &n, 3), DX_EWS_EXTENSIONS);
  CHECK_EQ_INT(parse("a, b, c, d, e; a; b; c; d; e; f; g; h; i", &n, 3), DX_EWS_EXTENSIONS);
  /* Zero capacity, no array. */
  n = 0;
  CHECK_EQ_INT(dx_ext_parse("a", 1, NULL, &n, 0), DX_ELIMIT);
  CHECK_EQ_INT(dx_ext_parse(NULL, 1, g_offers, &n, 16), DX_EINVAL);
  CHECK_EQ_INT(dx_ext_parse("a", 1, g_offers, NULL, 16), DX_EINVAL);
  CHECK_EQ_INT(dx_ext_parse("a", 1, NULL, &n, 1), DX_EINVAL);
}

TEST(every_prefix_is_safe) {
  /* Each prefix of a valid value is parsed within its length. */
  release();
  static const char v[] = "permessage-deflate; client_max_window_bits=\"15\"; "
                          "server_max_window_bits=10, permessage-deflate";
  for (size_t k = 0; k <= sizeof v - 1; k++) {
    char *g = guarded_copy(v, k);
    size_t n = 0;
    int r = dx_ext_parse(g, k, g_offers, &n, 16);
    CHECK(r == 0 || r == DX_EWS_EXTENSIONS);
    guarded_free(g);
  }
}

int main(void) {
  RUN(chrome);
  RUN(firefox);
  RUN(multiple_offers);
  RUN(quoted_values);
  RUN(whitespace);
  RUN(empty_elements);
  RUN(bad_syntax);
  RUN(max_params);
  RUN(capacity);
  RUN(every_prefix_is_safe);
  release();
  return test_report();
}
