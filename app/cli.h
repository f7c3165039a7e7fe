/* Shared pieces of the duplex command: argument helpers and subcommands. */
#ifndef DX_APP_CLI_H
#define DX_APP_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Subcommands: argc/argv start at the subcommand name. Return the exit
 * status. */
int cmd_echo(int argc, char **argv);
int cmd_connect(int argc, char **argv);

/* Parse "123", "64K", "16M", "1G" (powers of 1024). Returns false on junk. */
bool cli_parse_size(const char *s, size_t *out);
/* Parse an integer in [min, max]. */
bool cli_parse_int(const char *s, long min, long max, long *out);
/* Parse a duration: "500ms", "30s", "5m", or plain milliseconds; "off" or
 * "0" gives -1 (disabled). */
bool cli_parse_ms(const char *s, int *out);

/* Print "duplex CMD: MSG" and a hint to stderr; returns 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
