/* Fuzz the topic and position lists of SSE streams and long-polls (query
 * parameters and Last-Event-ID, straight from clients) and their subscribe
 * options: the input is "TOPICS\nPOSITIONS\nPRESENCE\nINFO\nHISTORY".
 * Whatever comes in, parsing stays in bounds, every accepted topic is
 * valid, formatted positions parse back the same, accepted options only
 * mark topics of the list, and every subscribe request built is JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hub/stream_topics.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  char *part[5] = {s, NULL, NULL, NULL, NULL};
  for (int i = 1; i < 5 && part[i - 1]; i++) {
    char *nl = strchr(part[i - 1], '\n');
    if (nl) *nl = '\0', part[i] = nl + 1;
  }
  const char *ids = part[1] ? part[1] : "";
  hub_stream_topics st;
  memset(&st, 0, sizeof st);
  if (hub_stream_topics_parse(&st, s) == NULL) {
    check(st.n >= 1 && st.n <= HUB_STREAM_MAX_TOPICS);
    for (size_t i = 0; i < st.n; i++) check(hub_topic_valid(st.t[i].name, st.t[i].len));
    hub_stream_positions_parse(&st, ids);
    char buf[HUB_POSITIONS_MAX];
    check(hub_stream_positions_format(&st, buf, sizeof buf) == strlen(buf));
    hub_stream_topics again = st;
    for (size_t i = 0; i < again.n; i++) memset(&again.t[i].pos, 0, sizeof again.t[i].pos);
    hub_stream_positions_parse(&again, buf);
    for (size_t i = 0; i < st.n; i++)
      if (st.t[i].pos.epoch[0]) {
        check(again.t[i].pos.offset == st.t[i].pos.offset);
        check(!strcmp(again.t[i].pos.epoch, st.t[i].pos.epoch));
      }
    if (hub_stream_options_parse(&st, part[2], part[3], part[4]) == NULL) {
      check(!st.info || json_is_object(st.info));
    }
    for (size_t i = 0; i < st.n; i++) {
      char *q = hub_stream_subscribe_request(&st, i);
      json_t *j = q ? json_loads(q, 0, NULL) : NULL;
      check(json_is_object(j));
      json_decref(j);
      free(q);
    }
    hub_stream_topics_clear(&st);
  }
  free(s);
  return 0;
}
