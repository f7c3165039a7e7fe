/* hub: the topic list and position list of SSE streams and long-polls. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/stream_topics.h"
#include "test.h"

TEST(topics_and_positions_round_trip) {
  hub_stream_topics st = {0};
  char list[] = "chat:a,news,chat:a";
  CHECK(hub_stream_topics_parse(&st, list) == NULL);
  CHECK_EQ_INT(st.n, 2); /* duplicates once */
  hub_stream_positions_parse(&st, "12.0123456789abcdef,3.fedcba9876543210");
  CHECK_EQ_INT(st.t[0].pos.offset, 12);
  CHECK_STR(st.t[1].pos.epoch, "fedcba9876543210");
  char buf[HUB_POSITIONS_MAX];
  hub_stream_advance(&st, "news", 4, 4);
  hub_stream_positions_format(&st, buf, sizeof buf);
  CHECK_STR(buf, "12.0123456789abcdef,4.fedcba9876543210");
  char *q = hub_stream_subscribe_request(&st, 1);
  CHECK_STR(q,
            "{\"op\":\"subscribe\",\"topic\":\"news\",\"id\":2,\"since\":{\"offset\":4,\"epoch\":"
            "\"fedcba9876543210\"}}");
  free(q);
}

TEST(malformed_input) {
  hub_stream_topics st = {0};
  char bad[] = "ok,not ok";
  CHECK(hub_stream_topics_parse(&st, bad) != NULL);
  hub_stream_topics empty = {0};
  char none[] = ",,";
  CHECK(hub_stream_topics_parse(&empty, none) != NULL);
  hub_stream_topics many = {0};
  char lots[200] = "t0";
  for (int i = 1; i <= HUB_STREAM_MAX_TOPICS; i++) snprintf(lots + strlen(lots), 8, ",t%d", i);
  CHECK(hub_stream_topics_parse(&many, lots) != NULL);
  hub_stream_topics ab = {0};
  char two[] = "a,b";
  CHECK(hub_stream_topics_parse(&ab, two) == NULL);
  hub_stream_positions_parse(&ab, "junk,7.0123456789abcdef,9.x");
  CHECK_EQ_INT(ab.t[0].pos.offset, 0); /* ignored: starts from the current position */
  CHECK_EQ_INT(ab.t[1].pos.offset, 7);
}

TEST(subscribed_keeps_a_resume_position) {
  hub_stream_topics st = {0};
  char l[] = "a";
  hub_stream_topics_parse(&st, l);
  hub_position now = {10, "0123456789abcdef"};
  hub_stream_subscribed(&st, "a", 1, &now);
  CHECK_EQ_INT(st.t[0].pos.offset, 10); /* fresh: from the current position */
  st.t[0].pos.offset = 7;               /* a resume from 7: the replay moves it */
  hub_stream_subscribed(&st, "a", 1, &now);
  CHECK_EQ_INT(st.t[0].pos.offset, 7);
  hub_position other = {2, "fedcba9876543210"}; /* new epoch: start over */
  hub_stream_subscribed(&st, "a", 1, &other);
  CHECK_EQ_INT(st.t[0].pos.offset, 2);
  CHECK_STR(st.t[0].pos.epoch, "fedcba9876543210");
}

TEST(subscribe_options) {
  hub_stream_topics st = {0};
  char list[] = "a,b";
  CHECK(hub_stream_topics_parse(&st, list) == NULL);
  char pres[] = "b";
  CHECK(hub_stream_options_parse(&st, pres, "{\"a\":{\"name\":\"ana\"}}", "5") == NULL);
  char *q = hub_stream_subscribe_request(&st, 0);
  CHECK_STR(q, "{\"op\":\"subscribe\",\"topic\":\"a\",\"id\":1,\"history\":5,\"info\":{\"name\":"
               "\"ana\"}}");
  free(q);
  q = hub_stream_subscribe_request(&st, 1);
  CHECK_STR(q, "{\"op\":\"subscribe\",\"topic\":\"b\",\"id\":2,\"history\":5,\"presence\":true}");
  free(q);
  char other[] = "c";
  CHECK(hub_stream_options_parse(&st, other, NULL, NULL) != NULL); /* not in the list */
  CHECK(hub_stream_options_parse(&st, NULL, "[1]", NULL) != NULL); /* not an object */
  CHECK(hub_stream_options_parse(&st, NULL, "{\"a\":1,\"a\":2}", NULL) != NULL);
  CHECK(hub_stream_options_parse(&st, NULL, NULL, "-1") != NULL);
  CHECK(hub_stream_options_parse(&st, NULL, NULL, "x") != NULL);
  hub_stream_topics_clear(&st);
  CHECK(st.info == NULL);
}

TEST(positions_format_edges) {
  hub_stream_topics st = {0};
  char l[] = "a,b,c";
  hub_stream_topics_parse(&st, l);
  st.t[0].pos = (hub_position){UINT64_MAX, "0123456789abcdef"};
  st.t[1].pos = (hub_position){0, ""}; /* no position yet */
  st.t[2].pos = (hub_position){10, "fedcba9876543210"};
  char buf[HUB_POSITIONS_MAX];
  size_t n = hub_stream_positions_format(&st, buf, sizeof buf);
  CHECK_STR(buf, "18446744073709551615.0123456789abcdef,0.,10.fedcba9876543210");
  CHECK_EQ_INT(n, strlen(buf));
  char small[50]; /* room for the first entry only: whole entries, terminated */
  n = hub_stream_positions_format(&st, small, sizeof small);
  CHECK_STR(small, "18446744073709551615.0123456789abcdef");
  CHECK_EQ_INT(n, strlen(small));
  n = hub_stream_positions_format(&st, small, 10);
  CHECK_STR(small, "");
  CHECK_EQ_INT(n, 0);
}

int main(void) {
  RUN(topics_and_positions_round_trip);
  RUN(malformed_input);
  RUN(subscribed_keeps_a_resume_position);
  RUN(subscribe_options);
  RUN(positions_format_edges);
  return test_report();
}
