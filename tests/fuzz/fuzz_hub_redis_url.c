/* Fuzz the Redis URL parser (--redis from the operator): whatever comes in, parsing stays in
 * bounds, a refusal says why in one "redis URL: ..." line that never shows the password, and an
 * accepted URL has consistent fields. The hash slot of the input is in range. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/redis_client.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  check(hub_redis_slot((const char *)data, size) < 16384);
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  hub_redis_url u;
  char err[256];
  if (hub_redis_url_parse(s, &u, err, sizeof err) == 0) {
    check(err[0] == '\0');
    check(u.naddrs >= 1 && u.naddrs <= HUB_REDIS_MAX_ADDRS);
    for (unsigned i = 0; i < u.naddrs; i++) {
      check(u.addrs[i].host[0] != '\0' && u.addrs[i].port != 0);
      check(memchr(u.addrs[i].host, '\0', sizeof u.addrs[i].host) != NULL);
    }
    check(!(u.sentinel && u.cluster));
    check(!u.sentinel || u.master[0]);
    check(u.naddrs == 1 || u.sentinel || u.cluster);
    check(!u.cluster || u.db == 0);
    check(u.db >= 0);
    check(u.tls || (!u.insecure && !u.ca_file[0]));
  } else {
    check(!strncmp(err, "redis URL: ", 11));
    check(strchr(err, '\n') == NULL);
    /* The password never shows in the message: with its bytes replaced, the message is the same
     * (skipped when the replacement changes the parse: %-escapes, control characters). */
    const char *auth = strstr(s, "://");
    if (auth) {
      auth += 3;
      const char *end = auth + strcspn(auth, "/?"), *at = NULL;
      for (const char *c = auth; c < end; c++)
        if (*c == '@') at = c;
      const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
      bool plain = colon != NULL;
      for (const char *c = colon ? colon + 1 : at; plain && c < at; c++)
        if (*c == '%' || (unsigned char)*c <= ' ' || *c == 0x7f) plain = false;
      if (plain) {
        char *t = strdup(s);
        for (size_t i = (size_t)(colon + 1 - s); i < (size_t)(at - s); i++)
          if (t[i] != '@') t[i] = 'Q';
        hub_redis_url u2;
        char err2[256];
        check(hub_redis_url_parse(t, &u2, err2, sizeof err2) == -1);
        check(!strcmp(err, err2));
        free(t);
      }
    }
  }
  free(s);
  return 0;
}
