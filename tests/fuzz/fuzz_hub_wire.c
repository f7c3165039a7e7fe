/* Fuzz the Redis broker's channel messages (broker_wire.h): they come from
 * Redis, so from anyone who can publish there. The input is
 * "CHANNEL\nMESSAGE". Whatever comes in, parsing stays in bounds, an
 * accepted message names a valid topic, and its fields agree (an event has
 * epoch "-" and offset 0; the body lies inside the message). The same
 * bytes are read as an INFO answer for the replication ID. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/broker_wire.h"
#include "hub/topic_name.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  const char *s = (const char *)data;
  const char *nl = memchr(s, '\n', size);
  if (!nl) return 0;
  size_t ch_len = (size_t)(nl - s);
  /* copies, so a read past either end is caught */
  char *ch = malloc(ch_len ? ch_len : 1), *msg = malloc(size - ch_len);
  memcpy(ch, s, ch_len);
  memcpy(msg, nl + 1, size - ch_len - 1);
  hub_wire_msg m;
  if (hub_wire_parse("duplex:", ch, ch_len, msg, size - ch_len - 1, &m) == 0) {
    check(hub_topic_valid(m.topic, m.topic_len));
    check(m.topic >= ch && m.topic + m.topic_len <= ch + ch_len);
    check(m.body >= msg && m.body + m.body_len <= msg + (size - ch_len - 1));
    check((strcmp(m.epoch, "-") == 0) == (m.offset == 0));
    check(strlen(m.epoch) <= HUB_EPOCH_LEN && strlen(m.node) <= HUB_NODE_ID_LEN);
    if (m.offset == 0 && m.node[0]) { /* an event head formats back to the same fields */
      char head[128];
      int n = hub_wire_event_head(head, sizeof head, m.time_ms, m.node, m.conn);
      check(n > 0);
      hub_wire_msg again;
      check(hub_wire_parse("duplex:", ch, ch_len, head, (size_t)n, &again) == 0);
      check(again.time_ms == m.time_ms && again.conn == m.conn && !strcmp(again.node, m.node));
    }
  }
  /* The whole input as an INFO replication answer: an ID found is 40 hex digits. */
  char id[HUB_REPLID_LEN + 1];
  char *info = malloc(size ? size : 1);
  memcpy(info, s, size);
  if (hub_wire_replid(info, size, id) == 0) check(strlen(id) == HUB_REPLID_LEN);
  free(info);
  free(ch);
  free(msg);
  return 0;
}
