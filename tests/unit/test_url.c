/* dx_url_parse: ws:// and wss:// URLs (RFC 6455 section 3). */
#include <string.h>

#include "duplex/client.h"
#include "test.h"

/* Parse `s`, expecting success. */
static dx_url ok(const char *s) {
  dx_url u;
  const char *why = "(not set)";
  int rc = dx_url_parse(s, &u, &why);
  if (rc != 0) {
    fprintf(stderr, "unexpected failure for '%s': %s\n", s, why);
    CHECK_EQ_INT(rc, 0);
  }
  return u;
}

/* Parse `s`, expecting DX_EINVAL with a reason containing `needle`. */
static void bad(const char *s, const char *needle) {
  dx_url u;
  const char *why = NULL;
  int rc = dx_url_parse(s, &u, &why);
  CHECK_EQ_INT(rc, DX_EINVAL);
  CHECK(why != NULL);
  if (why && needle && !strstr(why, needle)) {
    fprintf(stderr, "reason for '%s' is '%s', expected it to mention '%s'\n", s, why, needle);
    CHECK(strstr(why, needle) != NULL);
  }
}

TEST(schemes_and_default_ports) {
  dx_url u = ok("ws://example.com");
  CHECK(!u.tls);
  CHECK_STR(u.host, "example.com");
  CHECK_EQ_INT(u.port, 80);
  CHECK(!u.ipv6);
  CHECK_STR(u.target, "/");

  u = ok("wss://example.com/");
  CHECK(u.tls);
  CHECK_EQ_INT(u.port, 443);
  CHECK_STR(u.target, "/");

  /* Schemes are case-insensitive (RFC 3986 3.1). */
  u = ok("WS://Example.COM/chat");
  CHECK(!u.tls);
  CHECK_STR(u.host, "Example.COM");
  CHECK_STR(u.target, "/chat");
  u = ok("WsS://h");
  CHECK(u.tls);
  CHECK_EQ_INT(u.port, 443);
}

TEST(other_schemes_rejected) {
  bad("http://example.com/", "ws://");
  bad("https://example.com/", "ws://");
  bad("HTTP://example.com/", "ws://");
  bad("ftp://example.com/", "ws://");
  bad("example.com:80/", "ws://");
  bad("", "ws://");
  bad("ws:/example.com", NULL);
  bad("ws:example.com", NULL);
  /* why may be NULL */
  dx_url u;
  CHECK_EQ_INT(dx_url_parse("http://x/", &u, NULL), DX_EINVAL);
  CHECK_EQ_INT(dx_url_parse(NULL, &u, NULL), DX_EINVAL);
}

TEST(http_scheme_message_is_helpful) {
  dx_url u;
  const char *why = NULL;
  CHECK_EQ_INT(dx_url_parse("http://127.0.0.1:9001/", &u, &why), DX_EINVAL);
  CHECK(why && strstr(why, "ws://") && strstr(why, "http://"));
}

TEST(host_names) {
  dx_url u = ok("ws://localhost:9001/");
  CHECK_STR(u.host, "localhost");
  CHECK_EQ_INT(u.port, 9001);
  u = ok("ws://a-b.c_d.example.org/x");
  CHECK_STR(u.host, "a-b.c_d.example.org");
  CHECK_STR(u.target, "/x");
  u = ok("ws://h");
  CHECK_STR(u.host, "h");
  u = ok("ws://Example.COM./");
  CHECK_STR(u.host, "Example.COM.");
  u = ok("ws://xn--bcher-kva.example:1/");
  CHECK_STR(u.host, "xn--bcher-kva.example");
  u = ok("ws://3com.example/");
  CHECK_STR(u.host, "3com.example");
  /* Host names are letters, digits, '-', '.' and '_' (RFC 1123, and '_'
   * as found in the wild); anything else was passed to the resolver. */
  static const char *const bad_hosts[] = {
      "ws://a]b/",  "ws://a{b}/", "ws://a|b/", "ws://a[b/", "ws://a<b>/",
      "ws://a\"b/", "ws://a'b/",  "ws://a,b/", "ws://a;b/", "ws://a=b/",
      "ws://a!b/",  "ws://a$b/",  "ws://a*b/", "ws://a~b/", "ws://a+b/",
      "ws://a(b)/", "ws://a^b/",  "ws://a`b/", "ws://a&b/", "ws://h\xc3\xa9/"};
  for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) bad(bad_hosts[i], "host");
  /* and no empty labels */
  bad("ws://a..b/", "host");
  bad("ws://.a/", "host");
  bad("ws://./", "host");
}

TEST(ipv4) {
  dx_url u = ok("ws://127.0.0.1:9001/chat");
  CHECK_STR(u.host, "127.0.0.1");
  CHECK_EQ_INT(u.port, 9001);
  CHECK(!u.ipv6);
  CHECK_STR(u.target, "/chat");
  u = ok("wss://10.0.0.255");
  CHECK_STR(u.host, "10.0.0.255");
  CHECK_EQ_INT(u.port, 443);
  /* A host that ends in a number is an IPv4 address, and only the dotted
   * quad is accepted (getaddrinfo would take "1" as 0.0.0.1, "127.1" as
   * 127.0.0.1). */
  bad("ws://1/", "IPv4");
  bad("ws://127.1:9001/", "IPv4");
  bad("ws://256.0.0.1/", "IPv4");
  bad("ws://1.2.3.4.5/", "IPv4");
  bad("ws://example.123/", "IPv4");
  bad("ws://0x7f.0.0.1/", "IPv4");
}

TEST(ipv6) {
  dx_url u = ok("ws://[::1]:9001");
  CHECK(u.ipv6);
  CHECK_STR(u.host, "::1");
  CHECK_EQ_INT(u.port, 9001);
  CHECK_STR(u.target, "/");

  u = ok("wss://[2001:db8::1]/p?q=1");
  CHECK(u.ipv6);
  CHECK(u.tls);
  CHECK_STR(u.host, "2001:db8::1");
  CHECK_EQ_INT(u.port, 443);
  CHECK_STR(u.target, "/p?q=1");

  u = ok("ws://[::ffff:127.0.0.1]:80/");
  CHECK_STR(u.host, "::ffff:127.0.0.1");
  CHECK_EQ_INT(u.port, 80);

  bad("ws://[::1:9001/", "IPv6");
  bad("ws://[::1]x/", NULL);
  bad("ws://[]/", NULL);
  bad("ws://[zz::1]/", "IPv6");
  bad("ws://[::1]:/", "port");
  /* Brackets hold an IPv6 address and nothing else: "[1]" was looked up
   * as the name "1" (0.0.0.1), "[127.0.0.1]" accepted. */
  bad("ws://[1]:19001/", "IPv6");
  bad("ws://[127.0.0.1]:9001/", "IPv6");
  bad("ws://[localhost]/", "IPv6");
  bad("ws://[::1::2]/", "IPv6");
  bad("ws://[1:2:3:4:5:6:7:8:9]/", "IPv6");
  bad("ws://[:::]/", "IPv6");
  bad("ws://[fe80::1%25eth0]/", "IPv6");
  u = ok("ws://[1:2:3:4:5:6:7:8]/");
  CHECK_STR(u.host, "1:2:3:4:5:6:7:8");
  u = ok("ws://[FE80::A]:1/");
  CHECK_STR(u.host, "FE80::A");
}

TEST(ports) {
  CHECK_EQ_INT(ok("ws://h:1/").port, 1);
  CHECK_EQ_INT(ok("ws://h:65535/").port, 65535);
  CHECK_EQ_INT(ok("ws://h:08080/").port, 8080);
  CHECK_EQ_INT(ok("wss://h:80").port, 80); /* explicit beats the default */
  bad("ws://h:0/", "port");
  bad("ws://h:65536/", "port");
  bad("ws://h:99999/", "port");
  bad("ws://h:123456/", "port");
  bad("ws://h:http/", "port");
  bad("ws://h:12a/", "port");
  bad("ws://h:-1/", "port");
  bad("ws://h:+80/", "port");
  bad("ws://h:/", "port");
  bad("ws://h: 80/", NULL);
  bad("ws://:80/", "host");
  bad("ws:///path", "host");
  bad("ws://", "host");
}

TEST(paths_and_queries) {
  CHECK_STR(ok("ws://h/a/b/c").target, "/a/b/c");
  CHECK_STR(ok("ws://h/a%20b").target, "/a%20b");
  CHECK_STR(ok("ws://h:81/chat?room=1&x=%41").target, "/chat?room=1&x=%41");
  /* A query right after the authority gets the "/" path (RFC 6455 3). */
  dx_url u = ok("ws://h?x=1");
  CHECK_STR(u.host, "h");
  CHECK_EQ_INT(u.port, 80);
  CHECK_STR(u.target, "/?x=1");
  u = ok("ws://h:9001?x=1&y=2");
  CHECK_EQ_INT(u.port, 9001);
  CHECK_STR(u.target, "/?x=1&y=2");
  CHECK_STR(ok("ws://h/?").target, "/?");
  CHECK_STR(ok("ws://h//double").target, "//double");
}

TEST(fragments_rejected) {
  bad("ws://h/#frag", "fragment");
  bad("ws://h/path#frag", "fragment");
  bad("ws://h/path?q=1#frag", "fragment");
  bad("ws://h#frag", "fragment");
  bad("ws://h:80#", "fragment");
}

TEST(userinfo_rejected) {
  bad("ws://user@h/", "user");
  bad("ws://user:pass@h:80/", "user");
  bad("wss://@h/", "user");
  /* '@' after the authority is just a path character */
  CHECK_STR(ok("ws://h/a@b").target, "/a@b");
}

TEST(too_long) {
  char url[3000];
  /* A 255-byte host fits (host[256]); 256 does not. */
  strcpy(url, "ws://");
  memset(url + 5, 'a', 255);
  strcpy(url + 5 + 255, ":9/");
  dx_url u = ok(url);
  CHECK_EQ_INT(strlen(u.host), 255);
  memset(url + 5, 'a', 256);
  strcpy(url + 5 + 256, "/");
  bad(url, "too long");
  memset(url + 5, 'a', 1000);
  strcpy(url + 5 + 1000, "/");
  bad(url, "too long");

  /* A path of up to 2046 bytes fits target[2048]. */
  strcpy(url, "ws://h/");
  memset(url + 7, 'p', 2045); /* "/" + 2045 = 2046 */
  url[7 + 2045] = 0;
  u = ok(url);
  CHECK_EQ_INT(strlen(u.target), 2046);
  memset(url + 7, 'p', 2500);
  url[7 + 2500] = 0;
  bad(url, "too long");
  /* "?..." gets a "/" prepended: room for it counts. */
  strcpy(url, "ws://h?");
  memset(url + 7, 'q', 2100);
  url[7 + 2100] = 0;
  bad(url, "too long");
}

TEST(spaces_and_controls) {
  bad("ws://h/a b", "space");
  bad("ws://h/a\tb", NULL);
  bad("ws://h/a\r\nX-Injected: 1", NULL);
  bad("ws://h/?q= 1", "space");
  bad("ws://ho st/", NULL);
  bad("ws://h\x7f/", NULL);
  bad("ws://h\\x/", NULL);
  bad("ws://h%41/", NULL);
  bad(" ws://h/", NULL);
}

int main(void) {
  RUN(schemes_and_default_ports);
  RUN(other_schemes_rejected);
  RUN(http_scheme_message_is_helpful);
  RUN(host_names);
  RUN(ipv4);
  RUN(ipv6);
  RUN(ports);
  RUN(paths_and_queries);
  RUN(fragments_rejected);
  RUN(userinfo_rejected);
  RUN(too_long);
  RUN(spaces_and_controls);
  return test_report();
}
