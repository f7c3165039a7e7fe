/* hub — the CLUSTER SLOTS map and -MOVED/-ASK redirects (see redis_slots.h). */
#include "hub/redis_slots.h"

#include <stdio.h>
#include <string.h>

static bool int_in(const redisReply *e, long long lo, long long hi) {
  return e && e->type == REDIS_REPLY_INTEGER && e->integer >= lo && e->integer <= hi;
}

static bool range_parse(const redisReply *e, hub_slot_range *out) {
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
      !int_in(e->element[0], 0, HUB_CLUSTER_SLOTS - 1) ||
      !int_in(e->element[1], e->element[0]->integer, HUB_CLUSTER_SLOTS - 1))
    return false;
  const redisReply *m = e->element[2];
  if (!m || m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !m->element[0] ||
      m->element[0]->type != REDIS_REPLY_STRING || !int_in(m->element[1], 1, 65535) ||
      m->element[0]->len >= sizeof out->master.host ||
      memchr(m->element[0]->str, 0, m->element[0]->len))
    return false;
  memset(out, 0, sizeof *out);
  out->start = (unsigned)e->element[0]->integer;
  out->end = (unsigned)e->element[1]->integer;
  out->known = !(m->element[0]->len == 1 && m->element[0]->str[0] == '?');
  if (out->known) {
    memcpy(out->master.host, m->element[0]->str, m->element[0]->len);
    out->master.port = (uint16_t)m->element[1]->integer;
  }
  return true;
}

int hub_slots_parse(const redisReply *rep, hub_slot_range *ranges, size_t cap, size_t *n, char *why,
                    size_t whylen) {
  *n = 0;
  if (rep->type == REDIS_REPLY_ERROR) {
    snprintf(why, whylen, "CLUSTER SLOTS: %.150s", rep->str ? rep->str : "");
    return -1;
  }
  if (rep->type != REDIS_REPLY_ARRAY) {
    snprintf(why, whylen, "CLUSTER SLOTS: not an array");
    return -1;
  }
  if (!rep->elements) {
    snprintf(why, whylen, "CLUSTER SLOTS: no slot is assigned");
    return -1;
  }
  if (rep->elements > cap) {
    snprintf(why, whylen, "CLUSTER SLOTS: %zu ranges (at most %zu)", rep->elements, cap);
    return -1;
  }
  for (size_t i = 0; i < rep->elements; i++)
    if (!range_parse(rep->element[i], &ranges[i])) {
      snprintf(why, whylen, "CLUSTER SLOTS: range %zu is malformed", i);
      return -1;
    }
  *n = rep->elements;
  return 0;
}

/* "SLOT host:port" after "MOVED " or "ASK ". */
static bool target_parse(const char *s, const char *end, unsigned *slot, hub_redis_addr *a) {
  unsigned v = 0;
  const char *p = s;
  for (; p < end && *p >= '0' && *p <= '9' && p - s < 5; p++) v = v * 10 + (unsigned)(*p - '0');
  if (p == s || p == end || *p != ' ' || v >= HUB_CLUSTER_SLOTS) return false;
  const char *host = p + 1, *colon = NULL;
  for (const char *q = host; q < end; q++)
    if (*q == ':') colon = q;
  if (!colon || (size_t)(colon - host) >= sizeof a->host || colon + 1 == end || end - colon > 6)
    return false;
  unsigned port = 0;
  for (const char *q = colon + 1; q < end; q++) {
    if (*q < '0' || *q > '9') return false;
    port = port * 10 + (unsigned)(*q - '0');
  }
  if (port < 1 || port > 65535) return false;
  for (const char *q = host; q < colon; q++)
    if (*q == ' ' || *q == 0) return false;
  memset(a, 0, sizeof *a);
  memcpy(a->host, host, (size_t)(colon - host));
  a->port = (uint16_t)port;
  *slot = v;
  return true;
}

int hub_redirect_parse(const char *s, size_t len, unsigned *slot, hub_redis_addr *a) {
  const char *end = s + len;
  if (len >= 6 && !memcmp(s, "MOVED ", 6))
    return target_parse(s + 6, end, slot, a) ? HUB_REDIRECT_MOVED : HUB_REDIRECT_BAD;
  if (len >= 4 && !memcmp(s, "ASK ", 4))
    return target_parse(s + 4, end, slot, a) ? HUB_REDIRECT_ASK : HUB_REDIRECT_BAD;
  return HUB_REDIRECT_NONE;
}
