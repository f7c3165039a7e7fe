/* Fuzz what Redis Cluster tells the router (redis_slots.h): the input is RESP, read by hiredis's
 * reader as the client does; each reply goes through hub_slots_parse, and an error reply's text
 * (or the raw input) through hub_redirect_parse. Whatever comes in, parsing stays in bounds and
 * what is accepted holds: ranges inside the 16384 slots, start <= end, a known master has a port,
 * hosts are NUL-terminated; a redirect's slot and port are in range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/redis_client.h"
#include "hub/redis_slots.h"

static void check(int cond) {
  if (!cond) abort();
}

static void check_redirect(const char *s, size_t len) {
  unsigned slot = 99999;
  hub_redis_addr a;
  int k = hub_redirect_parse(s, len, &slot, &a);
  if (k == HUB_REDIRECT_MOVED || k == HUB_REDIRECT_ASK) {
    check(slot < HUB_CLUSTER_SLOTS && a.port > 0);
    check(memchr(a.host, 0, sizeof a.host) != NULL);
  } else {
    check(k == HUB_REDIRECT_NONE || k == HUB_REDIRECT_BAD);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384) return 0;
  char *copy = malloc(size ? size : 1); /* a read past the end is caught */
  memcpy(copy, data, size);
  check_redirect(copy, size);
  redisReader *rd = hub_redis_reader_new();
  redisReaderFeed(rd, copy, size);
  void *rep = NULL;
  while (redisReaderGetReply(rd, &rep) == REDIS_OK && rep) {
    redisReply *r = rep;
    size_t cap = r->type == REDIS_REPLY_ARRAY && r->elements ? r->elements : 1, n = 12345;
    hub_slot_range *g = malloc(cap * sizeof *g);
    char why[200];
    if (hub_slots_parse(r, g, cap, &n, why, sizeof why) == 0) {
      check(n > 0 && n <= cap);
      for (size_t i = 0; i < n; i++) {
        check(g[i].start <= g[i].end && g[i].end < HUB_CLUSTER_SLOTS);
        check(memchr(g[i].master.host, 0, sizeof g[i].master.host) != NULL);
        check(!g[i].known || g[i].master.port > 0);
      }
    } else {
      check(n == 0 && !strncmp(why, "CLUSTER SLOTS: ", 15));
    }
    if (r->type == REDIS_REPLY_ERROR && r->str) check_redirect(r->str, r->len);
    free(g);
    freeReplyObject(rep);
    rep = NULL;
  }
  redisReaderFree(rd);
  free(copy);
  return 0;
}
