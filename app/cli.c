/* Argument helpers shared by the subcommands. */
#include "cli.h"

#include "duplex/deflate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse_int(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max) return false;
  *out = v;
  return true;
}

bool cli_parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return false;
  unsigned shift = 0;
  switch (*end) {
  case 0:
    break;
  case 'k':
  case 'K':
    shift = 10;
    end++;
    break;
  case 'm':
  case 'M':
    shift = 20;
    end++;
    break;
  case 'g':
  case 'G':
    shift = 30;
    end++;
    break;
  default:
    return false;
  }
  if (*end == 'B' || *end == 'b') end++;
  if (*end || (v << shift) >> shift != v) return false;
  *out = (size_t)(v << shift);
  return true;
}

bool cli_parse_ms(const char *s, int *out) {
  if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0) {
    *out = -1;
    return true;
  }
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return false;
  double mult = 1;
  if (strcmp(end, "ms") == 0 || *end == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else
    return false;
  double ms = v * mult;
  if (ms < 1 || ms > 2147483647.0) return false;
  *out = (int)ms;
  return true;
}

static const char *current_usage;
static const char *current_context;

void cli_set_usage(const char *usage) { current_usage = usage; }

void cli_set_context(const char *context) { current_context = context; }

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "duplex %s: ", cmd);
  if (current_context) fprintf(stderr, "%s: ", current_context);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (current_context) return 2;
  /* The usage lines (up to the first blank line), not the whole help: the
   * error stays on screen. */
  if (current_usage) {
    const char *end = strstr(current_usage, "\n\n");
    int n = end ? (int)(end - current_usage) : (int)strlen(current_usage);
    fprintf(stderr, "%.*s\n", n, current_usage);
  }
  fprintf(stderr, "Try 'duplex %s --help' for the options.\n", cmd);
  return 2;
}

int cli_parse_deflate(const char *cmd, int which, const char *arg, dx_deflate_opts *d) {
  long v;
  d->enable = true; /* any deflate flag turns it on */
  switch (which) {
  case 0:
    return -1;
  case 1:
    if (!strcmp(arg, "shared"))
      d->mode = DX_DEFLATE_SHARED;
    else if (!strcmp(arg, "takeover"))
      d->mode = DX_DEFLATE_TAKEOVER;
    else
      return cli_usage_error(cmd, "bad --deflate-mode '%s' (shared or takeover)", arg);
    return -1;
  case 2:
    if (!cli_parse_int(arg, 8, 15, &v))
      return cli_usage_error(cmd, "--deflate-window-bits takes 8-15");
    d->window_bits = (int)v;
    return -1;
  case 3:
    if (!cli_parse_int(arg, 1, 9, &v)) return cli_usage_error(cmd, "--deflate-mem-level takes 1-9");
    d->mem_level = (int)v;
    return -1;
  case 4:
    if (!cli_parse_int(arg, 1, 9, &v)) return cli_usage_error(cmd, "--deflate-level takes 1-9");
    d->level = (int)v;
    return -1;
  default:
    if (!cli_parse_size(arg, &d->threshold))
      return cli_usage_error(cmd, "bad size '%s' for --deflate-threshold", arg);
    if (d->threshold == 0) d->threshold = 1; /* 0 in the options means "default" */
    return -1;
  }
}
