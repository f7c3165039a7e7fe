/* --log-format json: each log line becomes
 *   {"time":"2026-11-21T13:41:56.123Z","level":"warn","msg":"..."}
 * written with one fwrite, through the library's public log handler. The
 * message is escaped as JSON; bytes that are not UTF-8 become U+FFFD so
 * that every line parses. */
#include "log_format.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "duplex/log.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min, cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, min = 0x800, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000, cp = c & 0x07;
  else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static void json_line(dx_log_level level, const char *msg, void *user) {
  (void)user;
  char buf[8192];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, sizeof buf, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(buf + n, sizeof buf - n, ".%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                        ts.tv_nsec / 1000000, dx_log_level_name(level));
  const unsigned char *p = (const unsigned char *)msg;
  size_t left = strlen(msg);
  /* Room for the longest escape (6 bytes) and the closing "}\n. */
  while (left && n + 16 < sizeof buf) {
    size_t k = utf8_len(p, left);
    unsigned c = *p;
    if (k == 0) {
      memcpy(buf + n, "\\ufffd", 6), n += 6, k = 1;
    } else if (k > 1) {
      memcpy(buf + n, p, k), n += k;
    } else if (c == '"' || c == '\\') {
      buf[n++] = '\\', buf[n++] = (char)c;
    } else if (c == '\n') {
      buf[n++] = '\\', buf[n++] = 'n';
    } else if (c == '\t') {
      buf[n++] = '\\', buf[n++] = 't';
    } else if (c < 0x20 || c == 0x7F) {
      n += (size_t)snprintf(buf + n, sizeof buf - n, "\\u%04x", c);
    } else {
      buf[n++] = (char)c;
    }
    p += k;
    left -= k;
  }
  memcpy(buf + n, "\"}\n", 3);
  n += 3;
  fwrite(buf, 1, n, stderr);
}

int log_format_set(const char *name) {
  if (!strcmp(name, "json"))
    dx_log_set_handler(json_line, NULL);
  else if (!strcmp(name, "text"))
    dx_log_set_handler(NULL, NULL);
  else
    return -1;
  return 0;
}
