/* Fuzz the topic and position lists of SSE streams and long-polls (query
 * parameters and Last-Event-ID, straight from clients): the input is
 * "TOPICS\nPOSITIONS". Whatever comes in, parsing stays in bounds, every
 * accepted topic is valid, and formatted positions parse back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/stream_topics.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  char *nl = strchr(s, '\n');
  const char *ids = nl ? nl + 1 : "";
  if (nl) *nl = '\0';
  hub_stream_topics st;
  memset(&st, 0, sizeof st);
  if (hub_stream_topics_parse(&st, s) == NULL) {
    check(st.n >= 1 && st.n <= HUB_STREAM_MAX_TOPICS);
    for (size_t i = 0; i < st.n; i++) check(hub_topic_valid(st.t[i].name, st.t[i].len));
    hub_stream_positions_parse(&st, ids);
    char buf[HUB_POSITIONS_MAX];
    hub_stream_positions_format(&st, buf, sizeof buf);
    hub_stream_topics again = st;
    for (size_t i = 0; i < again.n; i++) memset(&again.t[i].pos, 0, sizeof again.t[i].pos);
    hub_stream_positions_parse(&again, buf);
    for (size_t i = 0; i < st.n; i++)
      if (st.t[i].pos.epoch[0]) {
        check(again.t[i].pos.offset == st.t[i].pos.offset);
        check(!strcmp(again.t[i].pos.epoch, st.t[i].pos.epoch));
      }
    char *q = hub_stream_subscribe_request(&st, st.n - 1);
    check(q != NULL);
    free(q);
  }
  free(s);
  return 0;
}
