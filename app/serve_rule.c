#include "serve_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int serve_rule_set(dx_hub_topic_rule *r, const char *key, const char *v, char *err, size_t cap) {
  long n;
  size_t sz;
  if (!strcmp(key, "publish")) {
    if (!strcmp(v, "api")) r->api_only = true;
    else if (!strcmp(v, "clients")) r->api_only = false;
    else return snprintf(err, cap, "publish=%s: use api or clients", v), -1;
  } else if (!strcmp(key, "presence")) {
    if (!strcmp(v, "off")) r->no_presence = true;
    else if (!strcmp(v, "on")) r->no_presence = false;
    else return snprintf(err, cap, "presence=%s: use on or off", v), -1;
  } else if (!strcmp(key, "history")) {
    if (!cli_parse_int(v, 0, 10000000, &n))
      return snprintf(err, cap, "history=%s: a count from 0 to 10000000", v), -1;
    r->history_size = n ? (int)n : -1;
  } else if (!strcmp(key, "max-publication") || !strcmp(key, "max_publication")) {
    if (!cli_parse_size(v, &sz) || !sz) return snprintf(err, cap, "%s=%s: a size such as 4K", key, v), -1;
    r->max_publication = sz;
  } else if (!strcmp(key, "anonymous")) {
    if (!strcmp(v, "none")) r->anonymous = DX_HUB_ANON_NONE;
    else if (!strcmp(v, "read")) r->anonymous = DX_HUB_ANON_READ;
    else if (!strcmp(v, "write")) r->anonymous = DX_HUB_ANON_WRITE;
    else return snprintf(err, cap, "anonymous=%s: use none, read or write", v), -1;
  } else {
    return snprintf(err, cap,
                    "unknown rule key '%s' (publish, presence, history, max-publication, "
                    "anonymous)",
                    key),
           -1;
  }
  return 0;
}

int serve_rule_parse(char *spec, dx_hub_topic_rule *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  char *colon = strchr(spec, ':');
  /* Topic names may contain ':' themselves: the options start after the
   * last ':' that is followed by key=value. */
  for (char *c = colon; c; c = strchr(c + 1, ':'))
    if (strchr(c + 1, '=') && !strchr(c + 1, ':')) colon = c;
  if (!colon || colon == spec || !strchr(colon, '=')) {
    snprintf(err, cap, "'%s': expected PATTERN:key=value[,key=value...]", spec);
    return -1;
  }
  *colon = '\0';
  out->pattern = spec;
  char *save = NULL;
  for (char *kv = strtok_r(colon + 1, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) return snprintf(err, cap, "'%s': expected key=value", kv), -1;
    *eq = '\0';
    if (serve_rule_set(out, kv, eq + 1, err, cap) != 0) return -1;
  }
  return 0;
}
