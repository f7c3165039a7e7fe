/* hub: what Redis Cluster tells the router (redis_slots.h) — CLUSTER SLOTS replies as Redis 7
 * sends them (hostnames, unknown endpoints, replicas) and malformed ones; -MOVED / -ASK. Replies
 * are built by hiredis's reader from RESP text, as the client gets them. */
#include <string.h>

#include "hub/redis_client.h"
#include "hub/redis_slots.h"
#include "test.h"

static redisReply *resp_n(const char *text, size_t len) {
  redisReader *rd = hub_redis_reader_new();
  void *rep = NULL;
  redisReaderFeed(rd, text, len);
  CHECK_EQ_INT(redisReaderGetReply(rd, &rep), REDIS_OK);
  CHECK(rep != NULL);
  redisReaderFree(rd);
  return rep;
}

static int parse_n(const char *text, size_t len, hub_slot_range *g, size_t cap, size_t *n,
                   char *why) {
  redisReply *rep = resp_n(text, len);
  int rc = hub_slots_parse(rep, g, cap, n, why, 256);
  freeReplyObject(rep);
  return rc;
}

static int parse(const char *text, hub_slot_range *g, size_t cap, size_t *n, char *why) {
  return parse_n(text, strlen(text), g, cap, n, why);
}

TEST(three_masters) {
  /* Two ranges on one master, one with a replica (and Redis 7's hostname metadata). */
  const char *t =
      "*3\r\n"
      "*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\naa\r\n"
      "*4\r\n:5461\r\n:10922\r\n"
      "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nbb\r\n*2\r\n$8\r\nhostname\r\n$2\r\nh1\r\n"
      "*3\r\n$9\r\n127.0.0.1\r\n:7101\r\n$2\r\ncc\r\n"
      "*3\r\n:10923\r\n:16383\r\n*3\r\n$0\r\n\r\n:7002\r\n$2\r\ndd\r\n";
  hub_slot_range g[3];
  size_t n = 99;
  char why[256] = "";
  CHECK_EQ_INT(parse(t, g, 3, &n, why), 0);
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(g[0].start, 0);
  CHECK_EQ_INT(g[0].end, 5460);
  CHECK_STR(g[0].master.host, "127.0.0.1");
  CHECK_EQ_INT(g[0].master.port, 7000);
  CHECK(g[0].known && g[1].known && g[2].known);
  CHECK_EQ_INT(g[1].master.port, 7001); /* the master, not the replica */
  CHECK_STR(g[2].master.host, "");      /* not announced: the node that answered */
  CHECK_EQ_INT(g[2].end, 16383);
  /* Too many ranges for cap. */
  CHECK_EQ_INT(parse(t, g, 2, &n, why), -1);
  CHECK_STR(why, "CLUSTER SLOTS: 3 ranges (at most 2)");
}

TEST(unknown_endpoint) {
  const char *t = "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7000\r\n$2\r\naa\r\n";
  hub_slot_range g[1];
  size_t n;
  char why[256];
  CHECK_EQ_INT(parse(t, g, 1, &n, why), 0);
  CHECK_EQ_INT(n, 1);
  CHECK(!g[0].known);
}

static void bad(const char *t, const char *want) {
  hub_slot_range g[4];
  size_t n = 7;
  char why[256] = "";
  CHECK_EQ_INT(parse(t, g, 4, &n, why), -1);
  CHECK_EQ_INT(n, 0);
  if (strcmp(why, want)) fprintf(stderr, "got '%s' want '%s'\n", why, want);
  CHECK_STR(why, want);
}

TEST(malformed) {
  bad("-ERR This instance has cluster support disabled\r\n",
      "CLUSTER SLOTS: ERR This instance has cluster support disabled");
  bad("+OK\r\n", "CLUSTER SLOTS: not an array");
  bad("*0\r\n", "CLUSTER SLOTS: no slot is assigned");
  const char *m = "CLUSTER SLOTS: range 0 is malformed";
  bad("*1\r\n:1\r\n", m);                                         /* not a range */
  bad("*1\r\n*2\r\n:0\r\n:1\r\n", m);                             /* no master */
  bad("*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", m);      /* end < start */
  bad("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", m);  /* past the last */
  bad("*1\r\n*3\r\n:-1\r\n:3\r\n*2\r\n$1\r\nh\r\n:1\r\n", m);     /* negative */
  bad("*1\r\n*3\r\n$1\r\n0\r\n:3\r\n*2\r\n$1\r\nh\r\n:1\r\n", m); /* a string */
  bad("*1\r\n*3\r\n:0\r\n:3\r\n*2\r\n$1\r\nh\r\n:0\r\n", m);      /* port 0 */
  bad("*1\r\n*3\r\n:0\r\n:3\r\n*2\r\n$1\r\nh\r\n:65536\r\n", m);  /* port */
  bad("*1\r\n*3\r\n:0\r\n:3\r\n*1\r\n$1\r\nh\r\n", m);            /* no port */
  bad("*1\r\n*3\r\n:0\r\n:3\r\n*2\r\n:1\r\n:1\r\n", m);           /* host int */
  /* A NUL inside the host. */
  const char nul[] = "*1\r\n*3\r\n:0\r\n:3\r\n*2\r\n$3\r\na\0b\r\n:1\r\n";
  hub_slot_range g[1];
  size_t n;
  char why[256];
  CHECK_EQ_INT(parse_n(nul, sizeof nul - 1, g, 1, &n, why), -1);
  bad("*2\r\n*3\r\n:0\r\n:3\r\n*2\r\n$1\r\nh\r\n:1\r\n*1\r\n:0\r\n",
      "CLUSTER SLOTS: range 1 is malformed");
}

static int redir(const char *s, unsigned *slot, hub_redis_addr *a) {
  return hub_redirect_parse(s, strlen(s), slot, a);
}

TEST(redirects) {
  unsigned slot = 0;
  hub_redis_addr a;
  CHECK_EQ_INT(redir("MOVED 3999 127.0.0.1:6381", &slot, &a), HUB_REDIRECT_MOVED);
  CHECK_EQ_INT(slot, 3999);
  CHECK_STR(a.host, "127.0.0.1");
  CHECK_EQ_INT(a.port, 6381);
  CHECK_EQ_INT(redir("ASK 16383 redis-2.example:7000", &slot, &a), HUB_REDIRECT_ASK);
  CHECK_EQ_INT(slot, 16383);
  CHECK_STR(a.host, "redis-2.example");
  CHECK_EQ_INT(redir("MOVED 0 ::1:7000", &slot, &a), HUB_REDIRECT_MOVED); /* IPv6 */
  CHECK_STR(a.host, "::1");
  CHECK_EQ_INT(a.port, 7000);
  CHECK_EQ_INT(redir("MOVED 12 :7002", &slot, &a), HUB_REDIRECT_MOVED); /* same host */
  CHECK_STR(a.host, "");
  CHECK_EQ_INT(redir("ERR unknown command", &slot, &a), HUB_REDIRECT_NONE);
  CHECK_EQ_INT(redir("TRYAGAIN Multiple keys request during rehashing of slot", &slot, &a),
               HUB_REDIRECT_NONE);
  CHECK_EQ_INT(redir("MOVEDX 1 h:1", &slot, &a), HUB_REDIRECT_NONE);
  const char *bads[] = {"MOVED ",          "MOVED 1",         "MOVED 1 ",     "MOVED x h:1",
                        "MOVED 16384 h:1", "MOVED 1 h",       "MOVED 1 h:",   "MOVED 1 h:0",
                        "MOVED 1 h:65536", "MOVED 1 h:12a",   "MOVED -1 h:1", "MOVED 1  h:1",
                        "ASK 1 h:1234567", "MOVED 123456 h:1"};
  for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
    if (redir(bads[i], &slot, &a) != HUB_REDIRECT_BAD) fprintf(stderr, "'%s'\n", bads[i]);
    CHECK_EQ_INT(redir(bads[i], &slot, &a), HUB_REDIRECT_BAD);
  }
  /* A host that would not fit. */
  char longer[400] = "MOVED 1 ";
  memset(longer + 8, 'h', 300);
  strcpy(longer + 308, ":1");
  CHECK_EQ_INT(redir(longer, &slot, &a), HUB_REDIRECT_BAD);
}

int main(void) {
  RUN(three_masters);
  RUN(unknown_endpoint);
  RUN(malformed);
  RUN(redirects);
  return test_report();
}
