#include "hub/rules.h"

#include <stdlib.h>
#include <string.h>

bool hub_pattern_match(const char *p, const char *topic, size_t len) {
  size_t pl = strlen(p);
  if (pl && p[pl - 1] == '*') return len >= pl - 1 && !memcmp(topic, p, pl - 1);
  return pl == len && !memcmp(topic, p, len);
}

const dx_hub_topic_rule *hub_rule_for(const dx_hub_topic_rule *rules, size_t n, const char *topic,
                                      size_t len) {
  for (size_t i = 0; i < n; i++)
    if (rules[i].pattern && hub_pattern_match(rules[i].pattern, topic, len)) return &rules[i];
  return NULL;
}

dx_hub_topic_rule *hub_rules_copy(const dx_hub_topic_rule *rules, size_t n) {
  dx_hub_topic_rule *c = calloc(n ? n : 1, sizeof *c);
  for (size_t i = 0; c && i < n; i++) {
    c[i] = rules[i];
    c[i].pattern = rules[i].pattern ? strdup(rules[i].pattern) : NULL;
    if (rules[i].pattern && !c[i].pattern) {
      hub_rules_free(c, i);
      return NULL;
    }
  }
  return c;
}

void hub_rules_free(dx_hub_topic_rule *rules, size_t n) {
  for (size_t i = 0; rules && i < n; i++) free((char *)rules[i].pattern);
  free(rules);
}
