/* Logging: one formatted line per event, written with a single call so
 * that threads never interleave partial lines. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int dx__log_level = DX_LOG_INFO;

void dx_log_set_level(dx_log_level level) {
  atomic_store_explicit(&dx__log_level, (int)level, memory_order_relaxed);
}

dx_log_level dx_log_get_level(void) {
  return (dx_log_level)atomic_load_explicit(&dx__log_level, memory_order_relaxed);
}

bool dx_log_enabled(dx_log_level level) {
  return (int)level <= atomic_load_explicit(&dx__log_level, memory_order_relaxed);
}

int dx_log_parse_level(const char *name, dx_log_level *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  if (!name) return -1;
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(name, names[i]) == 0) {
      *out = (dx_log_level)i;
      return 0;
    }
  }
  return -1;
}

void dx_log(dx_log_level level, const char *fmt, ...) {
  static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  if (!dx_log_enabled(level)) return;
  if ((unsigned)level > DX_LOG_DEBUG) level = DX_LOG_DEBUG;

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);

  char line[1024];
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000L, tags[level]);
  if (n < 0) return;
  size_t len = (size_t)n;

  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  /* Keep room for the newline; mark truncation so a reader knows. */
  if ((size_t)m >= sizeof line - len - 1) {
    len = sizeof line - 5;
    memcpy(line + len, "...", 3);
    len += 3;
  } else {
    len += (size_t)m;
  }
  while (len > 0 && line[len - 1] == '\n') len--;
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}
