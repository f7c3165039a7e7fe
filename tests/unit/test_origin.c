/* The server's Origin allowlist entries: exact and subdomain wildcards. */
#include <string.h>

#include "server/server_internal.h"
#include "test.h"

static bool m(const char *pattern, const char *origin) {
  return dx__origin_match(pattern, origin, strlen(origin));
}

TEST(exact) {
  CHECK(m("https://example.com", "https://example.com"));
  CHECK(m("https://example.com", "HTTPS://EXAMPLE.COM"));
  CHECK(!m("https://example.com", "http://example.com"));
  CHECK(!m("https://example.com", "https://example.com.evil.org"));
  CHECK(!m("https://example.com", "https://example.co"));
}

TEST(wildcards) {
  CHECK(m("https://*.example.com", "https://app.example.com"));
  CHECK(m("https://*.example.com", "https://a.b.example.com"));
  CHECK(!m("https://*.example.com", "https://example.com")); /* not the apex */
  CHECK(!m("https://*.example.com", "http://app.example.com"));
  CHECK(!m("https://*.example.com", "https://app.example.com.evil.org"));
  CHECK(!m("https://*.example.com", "https://evilexample.com"));
  CHECK(!m("https://*.example.com", "https://x/.example.com"));
  CHECK(!m("https://*.example.com", "https://.example.com"));
  CHECK(m("https://*.example.com:8443", "https://app.example.com:8443"));
  CHECK(!m("https://*.example.com:8443", "https://app.example.com"));
  CHECK(!m("https://*.example.com", "https://app.example.com:8443"));
  CHECK(m("*.example.com", "http://a.example.com"));
  CHECK(m("*.example.com", "https://a.example.com"));
  CHECK(!m("*.example.com", "ftp://a.example.com"));
  CHECK(!m("*.example.com", "null"));
}

int main(void) {
  RUN(exact);
  RUN(wildcards);
  return test_report();
}
