/* Messages on the Redis broker's channels (see broker_wire.h). */
#include "hub/broker_wire.h"

#include <stdio.h>
#include <string.h>

#include "hub/topic_name.h"

/* A decimal number of at most 20 digits up to `end` or a space. */
static const char *number(const char *p, const char *end, uint64_t *out) {
  uint64_t v = 0;
  const char *start = p;
  while (p < end && *p >= '0' && *p <= '9' && p - start < 20) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return NULL;
    v = v * 10 + d;
    p++;
  }
  if (p == start) return NULL;
  *out = v;
  return p;
}

/* A word of 1..max bytes of [0-9a-f] (or "-" when dash) up to a space. */
static const char *word(const char *p, const char *end, char *out, size_t max, bool dash,
                        char stop) {
  size_t n = 0;
  if (dash && p < end && *p == '-' && p + 1 < end && p[1] == stop) {
    out[0] = '-';
    out[1] = '\0';
    return p + 1;
  }
  while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
    if (n == max) return NULL;
    out[n++] = *p++;
  }
  if (!n) return NULL;
  out[n] = '\0';
  return p;
}

int hub_wire_parse(const char *prefix, const char *ch, size_t ch_len, const char *msg, size_t len,
                   hub_wire_msg *out) {
  memset(out, 0, sizeof *out);
  size_t plen = strlen(prefix);
  if (ch_len < plen + 3 || memcmp(ch, prefix, plen) != 0 || ch[plen] != '{' ||
      ch[ch_len - 1] != '}')
    return -1;
  out->topic = ch + plen + 1;
  out->topic_len = ch_len - plen - 2;
  if (!hub_topic_valid(out->topic, out->topic_len)) return -1;
  const char *p = msg, *end = msg + len;
  const char *nl = memchr(msg, '\n', len);
  if (!nl) return -1;
  if (!(p = word(p, nl, out->epoch, HUB_EPOCH_LEN, true, ' ')) || p == nl || *p++ != ' ' ||
      !(p = number(p, nl, &out->offset)) || p == nl || *p++ != ' ' ||
      !(p = number(p, nl, &out->time_ms)) || p == nl || *p++ != ' ')
    return -1;
  bool event = !strcmp(out->epoch, "-");
  if (event != (out->offset == 0)) return -1; /* an event has no offset, a publication one */
  if (p < nl && *p == '-' && p + 1 == nl) {
    p++; /* nobody to skip */
  } else {
    if (!(p = word(p, nl, out->node, HUB_NODE_ID_LEN, false, ':')) || p == nl || *p++ != ':' ||
        !(p = number(p, nl, &out->conn)))
      return -1;
  }
  if (p != nl) return -1;
  out->body = nl + 1;
  out->body_len = (size_t)(end - out->body);
  return 0;
}

int hub_wire_event_head(char *buf, size_t cap, uint64_t time_ms, const char *node, uint64_t conn) {
  int n = snprintf(buf, cap, "- 0 %llu %s:%llu\n", (unsigned long long)time_ms, node,
                   (unsigned long long)conn);
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

int hub_wire_replid(const char *info, size_t len, char out[HUB_REPLID_LEN + 1]) {
  static const char key[] = "master_replid:";
  const size_t klen = sizeof key - 1;
  for (size_t i = 0; i + klen + HUB_REPLID_LEN <= len; i++) {
    if ((i && info[i - 1] != '\n') || memcmp(info + i, key, klen)) continue;
    const char *id = info + i + klen;
    size_t n = 0;
    while (n < HUB_REPLID_LEN && ((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
      n++;
    /* exactly 40 hex digits, then the end of the line */
    if (n != HUB_REPLID_LEN || (i + klen + n < len && id[n] != '\r' && id[n] != '\n')) return -1;
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
  }
  return -1;
}
