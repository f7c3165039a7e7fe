/* duplex — logging.
 *
 * The library logs rare events (a failed accept, a refused handshake, a
 * certificate reload) as one line each. By default a line goes to stderr:
 *
 *   2026-11-21T13:41:56.123Z WARN  accept: Too many open files; pausing 100 ms
 *
 * (ISO-8601 UTC timestamp with milliseconds, a five-column level tag, the
 * message), written with one fwrite() so lines from different threads never
 * interleave. A program can raise or lower the level, or take every line
 * itself with dx_log_set_handler(). Programs built on the library may log
 * through dx_log() too, so their lines and the library's share one level and
 * one destination.
 *
 * A message is formatted into a 1 KiB buffer; a longer one is cut and ends
 * in "...". Trailing newlines in the format are dropped.
 *
 * Thread-safety: every function here may be called from any thread, at any
 * time, including while loops run.
 *  - The level is an atomic; dx_log_enabled() is one relaxed load, cheap
 *    enough to guard expensive argument computation on hot paths.
 *  - The handler is called on the thread that logs, so it runs on several
 *    threads at once when several loops log; it must be thread-safe itself.
 *  - dx_log_set_handler() swaps handler and user pointer together: each line
 *    goes wholly to the old pair or wholly to the new one, and once
 *    dx_log_set_handler() returns, no thread is still inside the old handler
 *    (it waits for calls in progress), so the old `user` may be freed then.
 *    Consequently a handler must not call dx_log_set_handler() itself (that
 *    deadlocks). A line the handler logs itself (through dx_log() or a
 *    library call that logs) goes to stderr in the default format instead
 *    of back into the handler.
 */
#ifndef DUPLEX_LOG_H
#define DUPLEX_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "duplex/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dx_log_level {
  DX_LOG_ERROR = 0,
  DX_LOG_WARN = 1,
  DX_LOG_INFO = 2, /* default */
  DX_LOG_DEBUG = 3,
} dx_log_level;

/* Lines above `level` are dropped before they are formatted. */
DX_API void dx_log_set_level(dx_log_level level);
DX_API dx_log_level dx_log_get_level(void);
DX_API bool dx_log_enabled(dx_log_level level);

/* Parse "error", "warn", "info" or "debug" (case-insensitive). Returns 0 and
 * stores the level, or -1 for anything else (`*out` untouched). */
DX_API int dx_log_parse_level(const char *name, dx_log_level *out);

/* "error", "warn", "info", "debug"; "debug" for values past DX_LOG_DEBUG. */
DX_API const char *dx_log_level_name(dx_log_level level);

/* Receives each line that passes the level: `msg` is the formatted message
 * without timestamp, level tag or trailing newline, NUL-terminated and valid
 * only during the call. `user` is the pointer given to dx_log_set_handler(). */
typedef void (*dx_log_handler)(dx_log_level level, const char *msg, void *user);

/* Send every line to `fn` (see the thread rules above). NULL restores the
 * default stderr format. */
DX_API void dx_log_set_handler(dx_log_handler fn, void *user);

/* Log one line at `level` (a trailing newline in `fmt` is not needed). */
DX_API void dx_log(dx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
DX_API void dx_logv(dx_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define dx_log_error(...) dx_log(DX_LOG_ERROR, __VA_ARGS__)
#define dx_log_warn(...) dx_log(DX_LOG_WARN, __VA_ARGS__)
#define dx_log_info(...) dx_log(DX_LOG_INFO, __VA_ARGS__)
/* Debug lines skip evaluating their arguments entirely when disabled. */
#define dx_log_debug(...)                                                                          \
  do {                                                                                             \
    if (dx_log_enabled(DX_LOG_DEBUG)) dx_log(DX_LOG_DEBUG, __VA_ARGS__);                           \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif /* DUPLEX_LOG_H */
