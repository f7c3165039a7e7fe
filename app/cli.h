/* Shared pieces of the duplex command: argument helpers and subcommands. */
#ifndef DX_APP_CLI_H
#define DX_APP_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Subcommands: argc/argv start at the subcommand name. Return the exit
 * status. */
int cmd_serve(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_echo(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Parse "123", "64K", "16M", "1G" (powers of 1024). Returns false on junk. */
bool cli_parse_size(const char *s, size_t *out);
/* Parse an integer in [min, max]. */
bool cli_parse_int(const char *s, long min, long max, long *out);
/* Parse a duration: "500ms", "30s", "5m", or plain milliseconds; "off" or
 * "0" gives -1 (disabled). */
bool cli_parse_ms(const char *s, int *out);

/* permessage-deflate flags shared by servers and `connect`; `which` is the
 * flag's index in DEFLATE_FLAGS order: --deflate, --deflate-mode,
 * --deflate-window-bits, --deflate-mem-level, --deflate-level,
 * --deflate-threshold. Returns -1 to go on, or 2 after a usage error. */
struct dx_deflate_opts;
int cli_parse_deflate(const char *cmd, int which, const char *arg, struct dx_deflate_opts *d);

#define DEFLATE_OPTIONS_HELP                                                                       \
  "      --deflate              negotiate permessage-deflate compression (RFC 7692)\n"             \
  "      --deflate-mode MODE    shared (default: no context takeover, one compressor\n"            \
  "                             per thread, no zlib memory per connection) or\n"                   \
  "                             takeover (per-connection windows, best ratio)\n"                   \
  "      --deflate-window-bits N  8-15, window of our compressor in takeover mode\n"               \
  "                             (8: zlib cannot honour it; such messages go uncompressed)\n"      \
  "      --deflate-mem-level N  1-9, zlib memLevel in takeover mode (default 8)\n"                 \
  "      --deflate-level N      1-9, zlib compression level (default 6)\n"                         \
  "      --deflate-threshold SIZE  send smaller messages uncompressed (default 64)\n"

/* The running command's help text, for cli_usage_error: its usage lines
 * are those before the first blank line. Call before parsing. */
void cli_set_usage(const char *usage);

/* Print "duplex CMD: MSG", the usage lines of the text given to
 * cli_set_usage, and a pointer to --help, all to stderr; returns 2 (the
 * exit status for usage errors). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* While a context is set (e.g. "duplex.json:3:11: port", for a value from a
 * configuration file), cli_usage_error prints "duplex CMD: CONTEXT: MSG"
 * alone, without the usage lines. NULL clears it. */
void cli_set_context(const char *context);

#endif
