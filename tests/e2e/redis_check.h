/* What the Redis e2e check programs (redis_client_check.c,
 * redis_router_check.c) share: TAP-style checks, bounded loop runs, URL
 * parsing and a push rendered as text. One program includes it once. */
#ifndef DX_TESTS_REDIS_CHECK_H
#define DX_TESTS_REDIS_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "duplex/loop.h"
#include "hub/redis_client.h"

static dx_loop *loop __attribute__((unused));
static int failures;

static inline void check(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void check(bool ok, const char *name, const char *fmt, ...) {
  if (ok) {
    printf("ok - %s\n", name);
  } else {
    char why[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("not ok - %s: %s\n", name, why);
    failures++;
  }
  fflush(stdout);
}

/* Run the loop until *flag or ms passed. */
static inline bool run_until(volatile bool *flag, uint64_t ms) {
  uint64_t end = dx_loop_now(loop) + ms;
  while (!*flag && dx_loop_now(loop) < end) dx_loop_run_once(loop, 20);
  return *flag;
}

static inline void run_for(uint64_t ms) {
  uint64_t end = dx_loop_now(loop) + ms;
  while (dx_loop_now(loop) < end) dx_loop_run_once(loop, 20);
}

static inline void parse_url(const char *s, hub_redis_url *u) {
  char err[256];
  if (hub_redis_url_parse(s, u, err, sizeof err) != 0) {
    printf("not ok - url %s: %s\n", s, err);
    exit(1);
  }
}

/* A push's strings and integers joined by "|" into o (cap bytes). */
static inline void push_text(const redisReply *m, char *o, size_t cap) {
  size_t n = 0;
  o[0] = '\0';
  for (size_t i = 0; i < m->elements && n + 8 < cap; i++) {
    const redisReply *e = m->element[i];
    if (e->type == REDIS_REPLY_STRING)
      n += (size_t)snprintf(o + n, cap - n, "%s%.*s", i ? "|" : "", (int)e->len, e->str);
    else if (e->type == REDIS_REPLY_INTEGER)
      n += (size_t)snprintf(o + n, cap - n, "%s%lld", i ? "|" : "", e->integer);
  }
}

#endif
