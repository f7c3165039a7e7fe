/* duplex — a tiny logging facility shared by every layer.
 *
 * One line per event on stderr:
 *
 *   2026-11-21T13:41:56.123Z WARN  accept: Too many open files; pausing 100 ms
 *
 * The timestamp is ISO-8601 UTC with milliseconds. Lines are formatted into
 * a local buffer and written with one fwrite(), so lines from different
 * threads never interleave (stdio locks the stream per call). Lines longer
 * than 1 KiB are truncated and end in "...".
 *
 * Thread-safety: every function may be called from any thread. The level
 * is an atomic; dx_log_enabled() is a relaxed load, cheap enough to guard
 * expensive argument computation on hot paths.
 */
#ifndef DX_COMMON_LOG_H
#define DX_COMMON_LOG_H

#include <stdbool.h>

typedef enum dx_log_level {
  DX_LOG_ERROR = 0,
  DX_LOG_WARN = 1,
  DX_LOG_INFO = 2, /* default */
  DX_LOG_DEBUG = 3,
} dx_log_level;

/* Lines above `level` are dropped. */
void dx_log_set_level(dx_log_level level);
dx_log_level dx_log_get_level(void);
bool dx_log_enabled(dx_log_level level);

/* Parse "error", "warn", "info" or "debug" (case-insensitive). Returns 0 and
 * stores the level, or -1 for anything else. */
int dx_log_parse_level(const char *name, dx_log_level *out);

/* Log one line (a trailing newline in `fmt` is not needed). */
void dx_log(dx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dx_log_error(...) dx_log(DX_LOG_ERROR, __VA_ARGS__)
#define dx_log_warn(...) dx_log(DX_LOG_WARN, __VA_ARGS__)
#define dx_log_info(...) dx_log(DX_LOG_INFO, __VA_ARGS__)
/* Debug lines skip formatting entirely when disabled. */
#define dx_log_debug(...)                                                                          \
  do {                                                                                             \
    if (dx_log_enabled(DX_LOG_DEBUG)) dx_log(DX_LOG_DEBUG, __VA_ARGS__);                           \
  } while (0)

#endif /* DX_COMMON_LOG_H */
