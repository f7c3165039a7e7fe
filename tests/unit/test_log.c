/* The public log facility (duplex/log.h): the default stderr format, levels,
 * a user handler, restoring the default, a handler that logs, and swapping
 * handlers while other threads log. Uses the public header only. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "duplex/log.h"
#include "test.h"

static size_t capture_stderr(void (*fn)(void), char *out, size_t cap) {
  fflush(stderr);
  int p[2];
  if (pipe(p) != 0) return 0;
  int saved = dup(2);
  dup2(p[1], 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  size_t len = 0;
  ssize_t n;
  while (len < cap - 1 && (n = read(p[0], out + len, cap - 1 - len)) > 0) len += (size_t)n;
  out[len] = 0;
  close(p[0]);
  return len;
}

static void log_some(void) {
  dx_log_set_level(DX_LOG_WARN);
  dx_log_warn("hello %d", 42);
  dx_log_info("hidden");
  dx_log_debug("hidden %s", "too");
  dx_log_error("bye\n");
  dx_log_set_level(DX_LOG_INFO);
}

static void log_long(void) {
  char big[3000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  dx_log_error("%s", big);
}

TEST(default_format) {
  char out[4096];
  capture_stderr(log_some, out, sizeof out);
  /* 2026-11-21T13:41:56.123Z WARN  hello 42 */
  char *nl = strchr(out, '\n');
  CHECK(nl != NULL);
  CHECK_EQ_INT(nl - out, 24 + 1 + 5 + 1 + 8);
  CHECK(out[4] == '-' && out[7] == '-' && out[10] == 'T' && out[13] == ':' && out[16] == ':' &&
        out[19] == '.' && out[23] == 'Z' && out[24] == ' ');
  CHECK(strncmp(out + 25, "WARN  hello 42\n", 15) == 0);
  CHECK(strstr(out, "hidden") == NULL);
  CHECK(strstr(nl + 1, " ERROR bye\n") != NULL);
  CHECK(strstr(nl + 1, "bye\n\n") == NULL);

  size_t len = capture_stderr(log_long, out, sizeof out);
  CHECK_EQ_INT(len, 1023);
  CHECK(strcmp(out + len - 4, "...\n") == 0);
}

TEST(levels) {
  dx_log_level lv = DX_LOG_WARN;
  CHECK_EQ_INT(dx_log_parse_level("DEBUG", &lv), 0);
  CHECK_EQ_INT(lv, DX_LOG_DEBUG);
  CHECK_EQ_INT(dx_log_parse_level("Error", &lv), 0);
  CHECK_EQ_INT(lv, DX_LOG_ERROR);
  CHECK_EQ_INT(dx_log_parse_level("loud", &lv), -1);
  CHECK_EQ_INT(dx_log_parse_level(NULL, &lv), -1);
  CHECK_EQ_INT(lv, DX_LOG_ERROR);
  CHECK_STR(dx_log_level_name(DX_LOG_WARN), "warn");
  CHECK_STR(dx_log_level_name(DX_LOG_INFO), "info");
  CHECK_STR(dx_log_level_name((dx_log_level)9), "debug");

  CHECK_EQ_INT(dx_log_get_level(), DX_LOG_INFO); /* the default */
  CHECK(dx_log_enabled(DX_LOG_INFO) && !dx_log_enabled(DX_LOG_DEBUG));
  dx_log_set_level(DX_LOG_ERROR);
  CHECK_EQ_INT(dx_log_get_level(), DX_LOG_ERROR);
  CHECK(dx_log_enabled(DX_LOG_ERROR) && !dx_log_enabled(DX_LOG_WARN));
  dx_log_set_level(DX_LOG_DEBUG);
  CHECK(dx_log_enabled(DX_LOG_DEBUG));
  dx_log_set_level(DX_LOG_INFO);
}

typedef struct captured {
  int calls;
  dx_log_level level;
  char msg[2048];
} captured;

static void capture(dx_log_level level, const char *msg, void *user) {
  captured *c = user;
  c->calls++;
  c->level = level;
  snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static int debug_args_evaluated;
static int count_eval(void) { return ++debug_args_evaluated; }

static void log_to_handler(void) {
  captured c = {0};
  dx_log_set_handler(capture, &c);
  dx_log_warn("to the handler %s\n\n", "only");
  dx_log_info("info %d", 1);
  dx_log_debug("skipped %d", count_eval()); /* below the level: not evaluated */
  dx_log_set_handler(NULL, &c);              /* back to stderr */
  dx_log_error("after the handler");
  CHECK_EQ_INT(c.calls, 2);
  CHECK_EQ_INT(c.level, DX_LOG_INFO);
  CHECK_STR(c.msg, "info 1");
  CHECK_EQ_INT(debug_args_evaluated, 0);

  c.calls = 0;
  dx_log_set_handler(capture, &c);
  dx_log_set_level(DX_LOG_DEBUG);
  dx_log_debug("now %d", count_eval());
  dx_log_set_level(DX_LOG_INFO);
  CHECK_EQ_INT(c.calls, 1);
  CHECK_EQ_INT(c.level, DX_LOG_DEBUG);
  CHECK_STR(c.msg, "now 1");

  /* The handler gets the message cut to 1 KiB with "...", no newline. */
  char big[3000];
  memset(big, 'b', sizeof big - 1);
  big[sizeof big - 1] = 0;
  dx_log_error("%s", big);
  CHECK_EQ_INT(strlen(c.msg), 1023);
  CHECK(strcmp(c.msg + 1020, "...") == 0);
  dx_log_set_handler(NULL, NULL);
}

TEST(handler) {
  char out[4096];
  capture_stderr(log_to_handler, out, sizeof out);
  /* Only the line logged after NULL restored the default reached stderr. */
  CHECK(strstr(out, "to the handler") == NULL);
  CHECK(strstr(out, "info 1") == NULL);
  char *line = strstr(out, " ERROR after the handler\n");
  CHECK(line != NULL);
  CHECK(line && line == out + 24 && out[23] == 'Z');
}

/* A handler that logs: its own line goes to stderr, not back into it. */
static void relogging(dx_log_level level, const char *msg, void *user) {
  (*(int *)user)++;
  dx_log_warn("relogged: %s", msg);
}

static void log_relogging(void) {
  int calls = 0;
  dx_log_set_handler(relogging, &calls);
  dx_log_info("first");
  dx_log_set_handler(NULL, NULL);
  CHECK_EQ_INT(calls, 1);
}

TEST(handler_that_logs) {
  char out[4096];
  capture_stderr(log_relogging, out, sizeof out);
  CHECK(strstr(out, " WARN  relogged: first\n") != NULL);
  CHECK(strstr(out, "relogged: relogged") == NULL);
}

/* Four threads log while the main thread swaps between two handlers and
 * the default: every line reaches exactly one of them, with its own user
 * pointer, and no line reaches a handler after the swap away from it
 * returned. */
typedef struct counter {
  atomic_int lines;
  atomic_int after_retired;
  atomic_bool retired;
} counter;

static void counting(dx_log_level level, const char *msg, void *user) {
  counter *c = user;
  if (atomic_load(&c->retired)) atomic_fetch_add(&c->after_retired, 1);
  atomic_fetch_add(&c->lines, 1);
}

static atomic_bool stop_logging;
static atomic_int lines_logged;

static void *logger(void *arg) {
  while (!atomic_load(&stop_logging)) {
    dx_log_warn("thread %d line", *(int *)arg);
    atomic_fetch_add(&lines_logged, 1);
  }
  return NULL;
}

TEST(swap_handler_while_threads_log) {
  counter a = {0}, b = {0};
  dx_log_set_handler(counting, &a);
  pthread_t th[4];
  int ids[4];
  for (int i = 0; i < 4; i++) {
    ids[i] = i;
    pthread_create(&th[i], NULL, logger, &ids[i]);
  }
  for (int round = 0; round < 200; round++) {
    counter *next = round % 2 ? &a : &b, *prev = round % 2 ? &b : &a;
    atomic_store(&next->retired, false);
    int before = atomic_load(&next->lines);
    dx_log_set_handler(counting, next);
    atomic_store(&prev->retired, true); /* no call to prev may start now */
    while (atomic_load(&next->lines) == before) sched_yield(); /* let lines reach it */
  }
  /* Park the writers on a third handler before stopping them. */
  counter sink = {0};
  dx_log_set_handler(counting, &sink);
  atomic_store(&a.retired, true);
  atomic_store(&b.retired, true);
  struct timespec ts = {0, 2 * 1000000};
  nanosleep(&ts, NULL);
  atomic_store(&stop_logging, true);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  dx_log_set_handler(NULL, NULL);
  CHECK_EQ_INT(atomic_load(&a.after_retired), 0);
  CHECK_EQ_INT(atomic_load(&b.after_retired), 0);
  /* Each line went to exactly one handler (none to stderr meanwhile). */
  CHECK_EQ_INT(atomic_load(&a.lines) + atomic_load(&b.lines) + atomic_load(&sink.lines),
               atomic_load(&lines_logged));
  CHECK(atomic_load(&a.lines) > 0 && atomic_load(&b.lines) > 0);
}

int main(void) {
  RUN(default_format);
  RUN(levels);
  RUN(handler);
  RUN(handler_that_logs);
  RUN(swap_handler_while_threads_log);
  return test_report();
}
