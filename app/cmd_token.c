/* duplex token: mint a connection token (HS256 JWT) for tests and demos. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "duplex/hub.h"

static const char usage[] =
    "usage: duplex token --secret S --sub USER [OPTIONS]\n"
    "\n"
    "Print a connection token (an HS256 JWT) for `duplex serve --token-secret S`.\n"
    "For tests and demos: in production your backend mints tokens with its own\n"
    "JWT library and the same secret.\n"
    "\n"
    "Options:\n"
    "  -s, --secret S         the shared secret, at least 16 bytes (also\n"
    "                         DUPLEX_TOKEN_SECRET)\n"
    "  -u, --sub USER         the user id (claim \"sub\")\n"
    "      --ttl T            valid for this long (default 1h; e.g. 30s, 15m, 24h;\n"
    "                         0 for no expiry)\n"
    "      --topics P         may subscribe to and publish on topics matching P\n"
    "                         (a name, or a prefix ending in '*'); repeatable\n"
    "      --subscribe P      may subscribe to P only (repeatable)\n"
    "      --publish P        may publish on P only (repeatable)\n"
    "      --claim K=JSON     any other claim, e.g. --claim aud='\"app\"' (repeatable)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Without --topics/--subscribe/--publish the token grants no topic list and\n"
    "the server's topic rules decide alone.\n"
    "\n"
    "Example:\n"
    "  duplex token --secret \"$SECRET\" --sub alice --topics 'chat:*' --ttl 1h\n";

/* "1h", "30m", "45s", "2d", or plain seconds. */
static bool parse_ttl(const char *s, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || v < 0) return false;
  long mul = !*end ? 1 : !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
             : !strcmp(end, "d") ? 86400 : -1;
  if (mul < 0 || v > 10L * 365 * 86400 / mul) return false;
  *out = v * mul;
  return true;
}

static int add_pattern(json_t *claims, const char *key, const char *p) {
  json_t *a = json_object_get(claims, key);
  if (!a) json_object_set_new(claims, key, a = json_array());
  return json_array_append_new(a, json_string(p));
}

int cmd_token(int argc, char **argv) {
  static const struct option opts[] = {
      {"secret", required_argument, 0, 's'}, {"sub", required_argument, 0, 'u'},
      {"ttl", required_argument, 0, 't'},    {"topics", required_argument, 0, 'T'},
      {"subscribe", required_argument, 0, 'S'}, {"publish", required_argument, 0, 'P'},
      {"claim", required_argument, 0, 'c'},  {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  cli_set_usage(usage);
  const char *secret = getenv("DUPLEX_TOKEN_SECRET"), *sub = NULL;
  long ttl = 3600;
  json_t *claims = json_object();
  int rc = -1, opt;
  optind = 1;
  opterr = 0;
  while (rc < 0 && (opt = getopt_long(argc, argv, ":s:u:h", opts, NULL)) != -1) {
    switch (opt) {
    case 's':
      secret = optarg;
      break;
    case 'u':
      sub = optarg;
      break;
    case 't':
      if (!parse_ttl(optarg, &ttl)) rc = cli_usage_error("token", "bad --ttl '%s' (try 30s, 15m, 1h, 2d or 0)", optarg);
      break;
    case 'T':
      add_pattern(claims, "subscribe", optarg);
      add_pattern(claims, "publish", optarg);
      break;
    case 'S':
    case 'P':
      add_pattern(claims, opt == 'S' ? "subscribe" : "publish", optarg);
      break;
    case 'c': {
      const char *eq = strchr(optarg, '=');
      json_t *v = eq ? json_loads(eq + 1, JSON_DECODE_ANY, NULL) : NULL;
      if (!v || eq == optarg) {
        json_decref(v);
        rc = cli_usage_error("token", "bad --claim '%s' (KEY=JSON, e.g. aud='\"app\"')", optarg);
        break;
      }
      char key[128];
      snprintf(key, sizeof key, "%.*s", (int)(eq - optarg), optarg);
      json_object_set_new(claims, key, v);
      break;
    }
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      break;
    case ':':
      rc = cli_usage_error("token", "option '%s' needs a value", argv[optind - 1]);
      break;
    default:
      rc = cli_usage_error("token", "unknown option '%s'", argv[optind - 1]);
      break;
    }
  }
  if (rc < 0 && optind < argc) rc = cli_usage_error("token", "unexpected argument '%s'", argv[optind]);
  if (rc < 0 && (!secret || !*secret)) rc = cli_usage_error("token", "--secret (or DUPLEX_TOKEN_SECRET) is required");
  if (rc < 0 && strlen(secret) < 16) rc = cli_usage_error("token", "the secret must be at least 16 bytes");
  if (rc < 0 && (!sub || !*sub)) rc = cli_usage_error("token", "--sub USER is required");
  if (rc < 0) {
    char *c = json_object_size(claims) ? json_dumps(claims, JSON_COMPACT) : NULL;
    char *tok = dx_hub_token_mint(secret, sub, ttl, c);
    free(c);
    if (tok) {
      puts(tok);
      free(tok);
      rc = 0;
    } else {
      fprintf(stderr, "duplex token: could not mint the token (out of memory?)\n");
      rc = 1;
    }
  }
  json_decref(claims);
  return rc;
}
