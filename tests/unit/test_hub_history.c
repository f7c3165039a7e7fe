/* hub: the history ring at its bounds (count, age, growth, wrap) and the
 * topic-name rule. */
#include <string.h>

#include "hub/history.h"
#include "hub/topic_name.h"
#include "test.h"

static hub_blob *blob(uint64_t n) {
  char s[32];
  int len = snprintf(s, sizeof s, "m%llu", (unsigned long long)n);
  return hub_blob_new(s, (size_t)len);
}

/* Push offsets from..to at time t(offset) = offset * 10. */
static void push(hub_history *h, uint64_t from, uint64_t to) {
  for (uint64_t o = from; o <= to; o++) {
    hub_blob *b = blob(o);
    CHECK_EQ_INT(hub_history_push(h, o, o * 10, b), 0);
    hub_blob_unref(b); /* the ring holds its own reference */
  }
}

static void check_range(const hub_history *h, uint64_t first, uint64_t last) {
  CHECK_EQ_INT(hub_history_first(h), first);
  CHECK_EQ_INT(hub_history_last(h), last);
  CHECK_EQ_INT(h->len, last - first + 1);
  for (uint32_t i = 0; i < h->len; i++) {
    char want[32];
    snprintf(want, sizeof want, "m%llu", (unsigned long long)(first + i));
    CHECK_EQ_INT(hub_history_at(h, i)->offset, first + i);
    CHECK_STR(hub_history_at(h, i)->env->data, want);
  }
}

TEST(keeps_the_latest_cap_entries) {
  hub_history h;
  hub_history_init(&h, 5);
  push(&h, 1, 3);
  check_range(&h, 1, 3);
  push(&h, 4, 5);
  check_range(&h, 1, 5); /* exactly full */
  push(&h, 6, 6);
  check_range(&h, 2, 6); /* oldest dropped */
  push(&h, 7, 23);
  check_range(&h, 19, 23); /* wrapped several times */
  CHECK(h.size <= 5);
  hub_history_free(&h);
}

TEST(grows_on_demand_up_to_cap) {
  hub_history h;
  hub_history_init(&h, 1000);
  CHECK(h.ring == NULL); /* an unused topic costs no ring */
  push(&h, 1, 9);
  CHECK(h.size >= 9 && h.size < 1000);
  push(&h, 10, 1500);
  CHECK_EQ_INT(h.size, 1000);
  check_range(&h, 501, 1500);
  hub_history_free(&h);
}

TEST(growth_while_wrapped_keeps_order) {
  hub_history h;
  hub_history_init(&h, 20);
  push(&h, 1, 8); /* size 8, full */
  /* expire a few so start moves, then push to wrap, then grow */
  hub_history_expire(&h, 35); /* drops 1..3 (times 10..30) */
  check_range(&h, 4, 8);
  push(&h, 9, 30);
  check_range(&h, 11, 30);
  hub_history_free(&h);
}

TEST(zero_capacity_keeps_nothing) {
  hub_history h;
  hub_history_init(&h, 0);
  push(&h, 1, 10);
  CHECK_EQ_INT(h.len, 0);
  CHECK_EQ_INT(hub_history_first(&h), 0);
  CHECK_EQ_INT(hub_history_find(&h, 1), -1);
  hub_history_free(&h);
}

TEST(expire_by_age) {
  hub_history h;
  hub_history_init(&h, 100);
  push(&h, 1, 10); /* times 10..100 */
  hub_history_expire(&h, 10);
  check_range(&h, 1, 10); /* cutoff is exclusive of equal times */
  hub_history_expire(&h, 55);
  check_range(&h, 6, 10);
  hub_history_expire(&h, 1000);
  CHECK_EQ_INT(h.len, 0);
  CHECK(h.ring == NULL); /* an idle topic gives its ring back */
  push(&h, 11, 12);      /* and may start again */
  check_range(&h, 11, 12);
  hub_history_free(&h);
}

TEST(find_by_offset) {
  hub_history h;
  hub_history_init(&h, 4);
  push(&h, 1, 6); /* keeps 3..6 */
  CHECK_EQ_INT(hub_history_find(&h, 2), -1);
  CHECK_EQ_INT(hub_history_find(&h, 3), 0);
  CHECK_EQ_INT(hub_history_find(&h, 6), 3);
  CHECK_EQ_INT(hub_history_find(&h, 7), -1);
  hub_history_free(&h);
}

TEST(a_gap_in_offsets_clears_the_ring) {
  hub_history h;
  hub_history_init(&h, 10);
  push(&h, 1, 3);
  push(&h, 7, 8); /* never expected; offsets must stay consecutive */
  check_range(&h, 7, 8);
  hub_history_free(&h);
}

TEST(topic_names) {
  CHECK(hub_topic_valid("chat:lobby", 10));
  CHECK(hub_topic_valid("a/b.c@d=e_f-G9", 14));
  char longest[HUB_TOPIC_MAX + 2];
  memset(longest, 'x', sizeof longest);
  CHECK(hub_topic_valid(longest, HUB_TOPIC_MAX));
  CHECK(!hub_topic_valid(longest, HUB_TOPIC_MAX + 1));
  CHECK(!hub_topic_valid("", 0));
  CHECK(!hub_topic_valid("a b", 3));
  CHECK(!hub_topic_valid("a*", 2));
  CHECK(!hub_topic_valid("caf\xc3\xa9", 5));
  CHECK(!hub_topic_valid("a\0b", 3));
}

int main(void) {
  RUN(keeps_the_latest_cap_entries);
  RUN(grows_on_demand_up_to_cap);
  RUN(growth_while_wrapped_keeps_order);
  RUN(zero_capacity_keeps_nothing);
  RUN(expire_by_age);
  RUN(find_by_offset);
  RUN(a_gap_in_offsets_clears_the_ring);
  RUN(topic_names);
  return test_report();
}
