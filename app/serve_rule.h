/* duplex serve --rule 'PATTERN:key=value,...': one topic rule from a flag
 * (the configuration file's "rules" use the same keys). */
#ifndef DX_APP_SERVE_RULE_H
#define DX_APP_SERVE_RULE_H

#include <stddef.h>

#include "duplex/hub.h"

#define SERVE_RULE_HELP                                                                            \
  "      --rule 'PATTERN:K=V,...'  a rule for topics matching PATTERN (a name or a\n"              \
  "                             prefix ending in '*'; first match wins; repeatable):\n"            \
  "                             publish=api (only the HTTP API publishes),\n"                      \
  "                             presence=off, history=N, max-publication=SIZE,\n"                  \
  "                             anonymous=none|read|write\n"

/* Parse one rule (PATTERN points into spec's copy in *out; keep spec alive).
 * Returns 0, or -1 with a message in err. */
int serve_rule_parse(char *spec, dx_hub_topic_rule *out, char *err, size_t cap);
/* One key=value into a rule (shared with the configuration file). */
int serve_rule_set(dx_hub_topic_rule *r, const char *key, const char *value, char *err, size_t cap);

#endif
