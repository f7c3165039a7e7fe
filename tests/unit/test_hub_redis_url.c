/* hub: Redis URLs (hub_redis_url_parse) — every accepted form, and bad inputs with the message an
 * operator sees; the cluster hash slot (hub_redis_slot) against values from CLUSTER KEYSLOT. */
#include <string.h>

#include "hub/redis_client.h"
#include "test.h"

static hub_redis_url ok(const char *s) {
  hub_redis_url u;
  char err[256] = "";
  int rc = hub_redis_url_parse(s, &u, err, sizeof err);
  if (rc != 0) fprintf(stderr, "'%s' refused: %s\n", s, err);
  CHECK_EQ_INT(rc, 0);
  CHECK_STR(err, "");
  return u;
}

static void bad(const char *s, const char *want) {
  hub_redis_url u;
  char err[256] = "";
  CHECK_EQ_INT(hub_redis_url_parse(s, &u, err, sizeof err), -1);
  if (strcmp(err, want)) fprintf(stderr, "'%s':\n  got  '%s'\n  want '%s'\n", s, err, want);
  CHECK_STR(err, want);
}

TEST(plain) {
  hub_redis_url u = ok("redis://localhost");
  CHECK(!u.tls && !u.sentinel && !u.cluster);
  CHECK_EQ_INT(u.naddrs, 1);
  CHECK_STR(u.addrs[0].host, "localhost");
  CHECK_EQ_INT(u.addrs[0].port, 6379);
  CHECK_EQ_INT(u.db, 0);
  CHECK_STR(u.password, "");
  CHECK_STR(u.user, "");
  u = ok("redis://10.0.0.5:6380/");
  CHECK_STR(u.addrs[0].host, "10.0.0.5");
  CHECK_EQ_INT(u.addrs[0].port, 6380);
  u = ok("redis://127.0.0.1:6379/15");
  CHECK_EQ_INT(u.db, 15);
  u = ok("redis://[::1]:7000/2");
  CHECK_STR(u.addrs[0].host, "::1");
  CHECK_EQ_INT(u.addrs[0].port, 7000);
  CHECK_EQ_INT(u.db, 2);
  u = ok("redis://[fe80::1]");
  CHECK_STR(u.addrs[0].host, "fe80::1");
  CHECK_EQ_INT(u.addrs[0].port, 6379);
  u = ok("redis://redis-0.redis_svc.default.svc:65535");
  CHECK_EQ_INT(u.addrs[0].port, 65535);
}

TEST(credentials) {
  hub_redis_url u = ok("redis://:secret@h:1/3");
  CHECK_STR(u.user, "");
  CHECK_STR(u.password, "secret");
  CHECK_EQ_INT(u.db, 3);
  u = ok("redis://alice:pw@h");
  CHECK_STR(u.user, "alice");
  CHECK_STR(u.password, "pw");
  /* %-escapes; a literal '@' in the password is taken up to the last '@'. */
  u = ok("redis://:p%40ss%3Aw%2Fd@h");
  CHECK_STR(u.password, "p@ss:w/d");
  u = ok("redis://:a@b@h:2");
  CHECK_STR(u.password, "a@b");
  CHECK_STR(u.addrs[0].host, "h");
  u = ok("redis://us%65r:x@h");
  CHECK_STR(u.user, "user");
}

TEST(tls) {
  hub_redis_url u = ok("rediss://h:6380");
  CHECK(u.tls && !u.insecure);
  CHECK_STR(u.ca_file, "");
  u = ok("rediss://:pw@h/1?ca=/etc/ssl/redis%20ca.pem");
  CHECK_STR(u.ca_file, "/etc/ssl/redis ca.pem");
  CHECK_EQ_INT(u.db, 1);
  u = ok("rediss://h?insecure=1");
  CHECK(u.insecure);
  u = ok("rediss://h?ca=/x.pem&insecure=0");
  CHECK(!u.insecure);
  CHECK_STR(u.ca_file, "/x.pem");
}

TEST(sentinel) {
  hub_redis_url u = ok("redis+sentinel://s1,s2:5000,[::1]/mymaster");
  CHECK(u.sentinel && !u.tls);
  CHECK_EQ_INT(u.naddrs, 3);
  CHECK_STR(u.addrs[0].host, "s1");
  CHECK_EQ_INT(u.addrs[0].port, 26379);
  CHECK_EQ_INT(u.addrs[1].port, 5000);
  CHECK_STR(u.addrs[2].host, "::1");
  CHECK_STR(u.master, "mymaster");
  CHECK_EQ_INT(u.db, 0);
  u = ok("rediss+sentinel://u:p@127.0.0.1:26379/my%20master/4?ca=/c.pem");
  CHECK(u.sentinel && u.tls);
  CHECK_STR(u.master, "my master");
  CHECK_EQ_INT(u.db, 4);
  CHECK_STR(u.user, "u");
  CHECK_STR(u.password, "p");
  CHECK_STR(u.ca_file, "/c.pem");
  CHECK_STR(u.sentinel_password, "");
  u = ok("redis+sentinel://s1/m?sentinel_password=s%20p%26w");
  CHECK_STR(u.sentinel_password, "s p&w");
  CHECK_STR(u.password, "");
}

TEST(cluster) {
  hub_redis_url u = ok("redis+cluster://a:7000,b:7001,c:7002");
  CHECK(u.cluster && !u.sentinel);
  CHECK_EQ_INT(u.naddrs, 3);
  CHECK_EQ_INT(u.addrs[2].port, 7002);
  u = ok("rediss+cluster://:pw@a/0?insecure=1");
  CHECK(u.cluster && u.tls && u.insecure);
  CHECK_EQ_INT(u.naddrs, 1);
  char many[1024] = "redis+cluster://";
  for (int i = 0; i < HUB_REDIS_MAX_ADDRS; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%sh%d:%d", i ? "," : "", i,
             7000 + i);
  u = ok(many);
  CHECK_EQ_INT(u.naddrs, HUB_REDIS_MAX_ADDRS);
  strcat(many, ",one:1");
  bad(many, "redis URL: more than 16 hosts (expected redis+cluster://host:port,host:port)");
}

TEST(bad_inputs) {
  bad("", "redis URL: empty (expected redis://host:port/db)");
  bad("localhost:6379", "redis URL: no scheme (expected redis://host:port/db)");
  bad("http://h",
      "redis URL: unknown scheme 'http' (redis, rediss, redis+sentinel, redis+cluster) (expected "
      "redis://host:port/db)");
  bad("redis://", "redis URL: no host (expected redis://host:port/db)");
  bad("redis:///3", "redis URL: no host (expected redis://host:port/db)");
  bad("redis://:6379", "redis URL: no host (expected redis://host:port/db)");
  bad("redis://h:0", "redis URL: bad port '0' (1-65535) (expected redis://host:port/db)");
  bad("redis://h:65536", "redis URL: bad port '65536' (1-65535) (expected redis://host:port/db)");
  bad("redis://h:", "redis URL: bad port '' (1-65535) (expected redis://host:port/db)");
  bad("redis://h:12x", "redis URL: bad port '12x' (1-65535) (expected redis://host:port/db)");
  bad("redis://h/x", "redis URL: bad database 'x' (a number) (expected redis://host:port/db)");
  bad("redis://h/-1", "redis URL: bad database '-1' (a number) (expected redis://host:port/db)");
  bad("redis://h/1/2", "redis URL: bad database '1/2' (a number) (expected redis://host:port/db)");
  bad("redis://h o", "redis URL: space or control character at offset 9 (expected "
                     "redis://host:port/db)");
  bad("redis://h$x", "redis URL: bad character in host 'h$x' (expected redis://host:port/db)");
  bad("redis://secret@h", "redis URL: user without password (write :password@ or "
                          "user:password@) (expected redis://host:port/db)");
  bad("redis://u:@h", "redis URL: empty password before '@' (expected redis://host:port/db)");
  bad("redis://:p%4@h", "redis URL: bad %-escape in password (expected redis://host:port/db)");
  bad("redis://:p%00@h", "redis URL: bad %-escape in password (expected redis://host:port/db)");
  bad("redis://a,b", "redis URL: several hosts need redis+sentinel:// or redis+cluster:// "
                     "(expected redis://host:port/db)");
  bad("redis://[::1", "redis URL: unclosed '[' in host '[::1' (expected redis://host:port/db)");
  bad("redis://[nope]", "redis URL: bad IPv6 address 'nope' (expected redis://host:port/db)");
  bad("redis://[::1]x", "redis URL: junk after ']' in '[::1]x' (expected redis://host:port/db)");
  bad("redis://h?ca=/x", "redis URL: ca= and insecure= need TLS (rediss://) (expected "
                         "redis://host:port/db)");
  bad("rediss://h?verify=0", "redis URL: unknown option 'verify' (known: ca, insecure, "
                             "sentinel_password) (expected rediss://host:port/db)");
  bad("redis://h?sentinel_password=x",
      "redis URL: sentinel_password= needs redis+sentinel:// (expected redis://host:port/db)");
  bad("redis+sentinel://s/m?sentinel_password=",
      "redis URL: bad sentinel_password= (expected "
      "redis+sentinel://host:port,host:port/mastername)");
  bad("rediss://h?insecure=yes",
      "redis URL: insecure= takes 0 or 1 (expected rediss://host:port/db)");
  bad("rediss://h?ca=", "redis URL: bad ca= path (expected rediss://host:port/db)");
  bad("redis+sentinel://s1,s2", "redis URL: no master name (expected "
                                "redis+sentinel://host:port,host:port/mastername)");
  bad("redis+sentinel://s1//2", "redis URL: empty master name (expected "
                                "redis+sentinel://host:port,host:port/mastername)");
  bad("redis+sentinel://s1,/m", "redis URL: empty host after ',' (expected "
                                "redis+sentinel://host:port,host:port/mastername)");
  bad("redis+cluster://a,b/2", "redis URL: a cluster has only database 0 (expected "
                               "redis+cluster://host:port,host:port)");
  char longhost[400] = "redis://";
  memset(longhost + 8, 'h', 300);
  bad(longhost, "redis URL: host longer than 255 bytes (expected redis://host:port/db)");
  /* The password never appears in a message. */
  hub_redis_url u;
  char err[256];
  CHECK_EQ_INT(hub_redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof err), -1);
  CHECK(strstr(err, "hunter2") == NULL);
  /* A short err buffer is cut, not overrun; NULL err is allowed. */
  char tiny[8];
  CHECK_EQ_INT(hub_redis_url_parse("nope", &u, tiny, sizeof tiny), -1);
  CHECK_EQ_INT(strlen(tiny), 7);
  CHECK_EQ_INT(hub_redis_url_parse("nope", &u, NULL, 0), -1);
  CHECK_EQ_INT(hub_redis_url_parse(NULL, &u, NULL, 0), -1);
}

TEST(slots) {
  /* Values from redis-server 7.0 CLUSTER KEYSLOT (and the spec's CRC16 check value). */
  CHECK_EQ_INT(hub_redis_slot("123456789", 9), 0x31c3 & 16383);
  CHECK_EQ_INT(hub_redis_slot("foo", 3), 12182);
  CHECK_EQ_INT(hub_redis_slot("bar", 3), 5061);
  CHECK_EQ_INT(hub_redis_slot("{user1000}.following", 20), hub_redis_slot("user1000", 8));
  CHECK_EQ_INT(hub_redis_slot("{user1000}.followers", 20), hub_redis_slot("user1000", 8));
  CHECK_EQ_INT(hub_redis_slot("foo{}{bar}", 10), hub_redis_slot("foo{}{bar}", 10)); /* whole */
  CHECK_EQ_INT(hub_redis_slot("foo{{bar}}zap", 13), hub_redis_slot("{bar", 4));
  CHECK_EQ_INT(hub_redis_slot("foo{bar}{zap}", 13), hub_redis_slot("bar", 3));
  CHECK_EQ_INT(hub_redis_slot("", 0), 0);
  CHECK(hub_redis_slot("{}", 2) == hub_redis_slot("{}", 2) && hub_redis_slot("{}", 2) < 16384);
}

int main(void) {
  RUN(plain);
  RUN(credentials);
  RUN(tls);
  RUN(sentinel);
  RUN(cluster);
  RUN(bad_inputs);
  RUN(slots);
  return test_report();
}
