/* hub: the replication ID in an INFO replication answer (hub_wire_replid), which the Redis broker
 * compares with the one a topic's epoch began under to notice a failover. */
#include <string.h>

#include "hub/broker_wire.h"
#include "test.h"

#define ID "8d2c7dafa08ca9d7182af34e72fdb7900871019c"

static int parse(const char *info, char out[HUB_REPLID_LEN + 1]) {
  return hub_wire_replid(info, strlen(info), out);
}

TEST(redis_answer) {
  /* As Redis 7 answers (CRLF lines), master_replid2 after it. */
  const char *info = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
                     "master_failover_state:no-failover\r\nmaster_replid:" ID "\r\n"
                     "master_replid2:0000000000000000000000000000000000000000\r\n"
                     "master_repl_offset:0\r\n";
  char out[HUB_REPLID_LEN + 1] = "";
  CHECK_EQ_INT(parse(info, out), 0);
  CHECK_STR(out, ID);
  /* at the very start, and with nothing after it */
  CHECK_EQ_INT(parse("master_replid:" ID, out), 0);
  CHECK_STR(out, ID);
  CHECK_EQ_INT(parse("role:master\nmaster_replid:" ID "\n", out), 0);
  CHECK_STR(out, ID);
}

TEST(not_there_or_malformed) {
  char out[HUB_REPLID_LEN + 1] = "unchanged";
  CHECK_EQ_INT(parse("", out), -1);
  CHECK_EQ_INT(parse("# Replication\r\nrole:master\r\n", out), -1);
  /* only master_replid2, or the key inside another line */
  CHECK_EQ_INT(parse("master_replid2:" ID "\r\n", out), -1);
  CHECK_EQ_INT(parse("x_master_replid:" ID "\r\n", out), -1);
  /* too short, too long, not lower-case hex */
  CHECK_EQ_INT(parse("master_replid:8d2c7daf\r\n", out), -1);
  CHECK_EQ_INT(parse("master_replid:" ID "0\r\n", out), -1);
  CHECK_EQ_INT(parse("master_replid:8D2C7DAFA08CA9D7182AF34E72FDB7900871019C\r\n", out), -1);
  CHECK_STR(out, "unchanged");
  /* the length bounds the search: a cut answer has no ID */
  const char *info = "master_replid:" ID "\r\n";
  CHECK_EQ_INT(hub_wire_replid(info, strlen(info) - 3, out), -1);
  CHECK_EQ_INT(hub_wire_replid(info, 14 + HUB_REPLID_LEN, out), 0);
}

int main(void) {
  RUN(redis_answer);
  RUN(not_there_or_malformed);
  return test_report();
}
