/* The configuration file of the server commands (duplex serve --config):
 * a JSON object whose keys are the flags' names. Loading it gives the same
 * (flag, value) list the command line gives, so one handler applies both:
 * the file first, the command line second (flags override the file). */
#ifndef DX_APP_SERVER_CONFIG_H
#define DX_APP_SERVER_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* How a flag appears in a configuration file. */
typedef enum server_flag_kind {
  SF_TEXT = 1, /* a string */
  SF_SECRET,   /* a string, masked ("********") when the configuration is printed */
  SF_NUMBER,   /* a number, or a string such as "4K", "30s" or "off" */
  SF_SWITCH,   /* no value on the command line; true or false in a file */
  SF_LIST,     /* repeatable: an array of strings (or one string) in a file; given
                  on the command line, the flag replaces the file's list */
  SF_CLI,      /* command line only (--help, --config) */
} server_flag_kind;

typedef struct server_flag {
  const char *name; /* --name, and the key in a configuration file */
  int code;         /* what the handler receives */
  server_flag_kind kind;
} server_flag;

/* One flag with its value, from the command line or from a file. */
typedef struct cfg_entry {
  const server_flag *flag;
  char *arg;   /* the value as the command line gives it (NULL for a switch); the
                  handler may keep pointers into it, and modify it */
  char *text;  /* an untouched copy, for printing */
  char *where; /* "FILE:LINE:COL" of the value in a file; NULL from the command line */
} cfg_entry;

typedef struct cfg_list {
  cfg_entry *v;
  size_t n, cap;
} cfg_list;

/* What a configuration file may hold: the flag tables (each ending with a
 * zeroed entry) and the flag the file's "rules" objects become
 * ("PATTERN:key=value,...", as --rule takes; 0 when there is none). */
typedef struct cfg_schema {
  const server_flag *tables[2];
  int rules_code;
} cfg_schema;

/* Append a flag (arg copied; NULL for a switch). Returns 0 or -1 (memory). */
int cfg_push(cfg_list *l, const server_flag *flag, const char *arg, const char *where);
void cfg_list_free(cfg_list *l);

/* The flag named `name` in the schema's tables, or NULL. */
const server_flag *cfg_find_flag(const cfg_schema *s, const char *name);

/* Read `path` into `out` (appended). Each problem (unreadable file, bad
 * JSON, unknown key, wrong type, bad rule) goes to report() as one message
 * that starts with FILE:LINE:COL where the file has a position. Messages
 * never quote a value of a secret flag, nor the text around a JSON syntax
 * error (it may be a secret). Returns the number of problems (0: all good;
 * the entries read are in `out` either way). */
typedef void (*cfg_report_fn)(void *user, const char *msg);
int cfg_load(const char *path, const cfg_schema *s, cfg_list *out, cfg_report_fn report,
             void *user);

/* The names of the flags whose values differ between two lists (all of a
 * flag's values, in order; flag `skip` aside), comma-separated into buf.
 * Returns how many differ. */
size_t cfg_changed(const cfg_list *a, const cfg_list *b, int skip, char *buf, size_t cap);

/* The effective configuration as a JSON object: the file's entries, then
 * the command line's (which replace a key's value, or a list flag's whole
 * list), with secrets masked and the rules as "rules" objects. A new
 * reference, or NULL (memory). */
json_t *cfg_to_json(const cfg_list *file, const cfg_list *cli, const cfg_schema *s);

#endif
