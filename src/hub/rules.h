/* hub — per-topic rules (dx_hub_topic_rule): the first whose pattern (a
 * name, or a prefix ending in '*') matches a topic applies.
 * Threads: read-only after dx_hub_new; any thread. */
#ifndef DX_HUB_RULES_H
#define DX_HUB_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "duplex/hub.h"

/* The rule for `topic`, or NULL when none matches. */
const dx_hub_topic_rule *hub_rule_for(const dx_hub_topic_rule *rules, size_t n, const char *topic,
                                      size_t len);
bool hub_pattern_match(const char *pattern, const char *topic, size_t len);

/* Deep copies (patterns included); NULL when out of memory. */
dx_hub_topic_rule *hub_rules_copy(const dx_hub_topic_rule *rules, size_t n);
void hub_rules_free(dx_hub_topic_rule *rules, size_t n);

#endif
