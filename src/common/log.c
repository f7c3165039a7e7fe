/* Logging: one formatted line per event, handed to the user's handler or
 * written to stderr with a single call so that threads never interleave
 * partial lines. */
#include "common/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int dx__log_level = DX_LOG_INFO;

/* The handler and its user pointer change together under the write lock;
 * each line holds the read lock while the handler runs, so that
 * dx_log_set_handler() returns only when no thread is in the old handler.
 * Readers never wait for each other. The lock prefers writers, so threads
 * logging without pause cannot starve dx_log_set_handler(); that is safe
 * because a thread never takes the read lock twice (see
 * dx__log_in_handler). Lines are rare; the lock is taken only for lines
 * that pass the level. */
static pthread_rwlock_t dx__log_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static dx_log_handler dx__log_fn;
static void *dx__log_user;
/* Set while this thread runs the user's handler: a line the handler logs
 * itself goes to stderr instead of recursing into the handler. */
static _Thread_local bool dx__log_in_handler;

static const char *const dx__log_names[] = {"error", "warn", "info", "debug"};

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
  if (!name) return -1;
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(name, dx__log_names[i]) == 0) {
      *out = (dx_log_level)i;
      return 0;
    }
  }
  return -1;
}

const char *dx_log_level_name(dx_log_level level) {
  return dx__log_names[(unsigned)level > DX_LOG_DEBUG ? DX_LOG_DEBUG : level];
}

void dx_log_set_handler(dx_log_handler fn, void *user) {
  pthread_rwlock_wrlock(&dx__log_lock);
  dx__log_fn = fn;
  dx__log_user = fn ? user : NULL;
  pthread_rwlock_unlock(&dx__log_lock);
}

/* The default output: "2026-11-21T13:41:56.123Z WARN  msg\n" on stderr. */
static void dx__log_stderr(dx_log_level level, const char *msg) {
  static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);

  char line[1024];
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000L, tags[level], msg);
  if (n < 0) return;
  size_t len = (size_t)n;
  /* Keep room for the newline; mark truncation so a reader knows. */
  if (len >= sizeof line - 1) {
    len = sizeof line - 5;
    memcpy(line + len, "...", 3);
    len += 3;
  }
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}

void dx_logv(dx_log_level level, const char *fmt, va_list ap) {
  if (!dx_log_enabled(level)) return;
  if ((unsigned)level > DX_LOG_DEBUG) level = DX_LOG_DEBUG;

  char msg[1024];
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  if (m < 0) m = 0;
  size_t len = (size_t)m;
  if (len >= sizeof msg) {
    len = sizeof msg - 4;
    memcpy(msg + len, "...", 3);
    len += 3;
  }
  while (len > 0 && msg[len - 1] == '\n') len--;
  msg[len] = 0;

  if (!dx__log_in_handler) {
    pthread_rwlock_rdlock(&dx__log_lock);
    dx_log_handler fn = dx__log_fn;
    if (fn) {
      dx__log_in_handler = true;
      fn(level, msg, dx__log_user);
      dx__log_in_handler = false;
      pthread_rwlock_unlock(&dx__log_lock);
      return;
    }
    pthread_rwlock_unlock(&dx__log_lock);
  }
  dx__log_stderr(level, msg);
}

void dx_log(dx_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dx_logv(level, fmt, ap);
  va_end(ap);
}
