/* Origin allowlist entries: an exact origin ("https://app.example.com"),
 * or a subdomain wildcard "*.example.com" (http and https), optionally
 * after a scheme to allow only that one. Any subdomain matches, not
 * example.com itself. Compared case-insensitively, as hosts are. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "server/server_internal.h"

static bool starts_with(const char *s, size_t len, const char *p, size_t plen) {
  return len >= plen && strncasecmp(s, p, plen) == 0;
}

bool dx__origin_match(const char *pattern, const char *origin, size_t len) {
  const char *star = strstr(pattern, "*.");
  if (!star) return strlen(pattern) == len && strncasecmp(pattern, origin, len) == 0;
  /* The part before '*': a scheme ("https://") or nothing (either scheme). */
  size_t plen = (size_t)(star - pattern);
  size_t skip;
  if (plen) {
    if (!starts_with(origin, len, pattern, plen)) return false;
    skip = plen;
  } else if (starts_with(origin, len, "https://", 8)) {
    skip = 8;
  } else if (starts_with(origin, len, "http://", 7)) {
    skip = 7;
  } else {
    return false;
  }
  const char *suffix = star + 1; /* ".example.com[:port]" */
  size_t slen = strlen(suffix);
  if (len < skip + slen + 1) return false; /* at least one label before the suffix */
  const char *tail = origin + len - slen;
  if (strncasecmp(tail, suffix, slen) != 0) return false;
  for (const char *p = origin + skip; p < tail; p++) /* labels only: no port, path or user */
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '.'))
      return false;
  return origin[skip] != '.';
}
