#include "hub/stream_topics.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

hub_stream_topic *hub_stream_topic_find(hub_stream_topics *st, const char *name, size_t len) {
  for (size_t i = 0; i < st->n; i++)
    if (st->t[i].len == len && !memcmp(st->t[i].name, name, len)) return &st->t[i];
  return NULL;
}

const char *hub_stream_topics_parse(hub_stream_topics *st, char *list) {
  char *save = NULL;
  for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    size_t len = strlen(t);
    if (!hub_topic_valid(t, len)) return HUB_TOPIC_RULE "\n";
    if (st->n == HUB_STREAM_MAX_TOPICS) return "at most 16 topics\n";
    if (hub_stream_topic_find(st, t, len)) continue;
    memcpy(st->t[st->n].name, t, len + 1);
    st->t[st->n++].len = len;
  }
  return st->n ? NULL : "name the topics: ?topics=a,b (at most 16)\n";
}

const char *hub_stream_options_parse(hub_stream_topics *st, char *presence, const char *info,
                                     const char *history) {
  char *save = NULL;
  for (char *t = presence ? strtok_r(presence, ",", &save) : NULL; t;
       t = strtok_r(NULL, ",", &save)) {
    hub_stream_topic *x = hub_stream_topic_find(st, t, strlen(t));
    if (!x) return "presence: topics of the topics list, comma-separated\n";
    x->presence = true;
  }
  if (info) {
    json_t *o = json_loads(info, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
      json_decref(o);
      return "info: a JSON object of presence info by topic, {\"topic\": info}\n";
    }
    json_decref(st->info);
    st->info = o;
  }
  if (history) {
    char *end;
    long v = strtol(history, &end, 10);
    if (end == history || *end || v < 0 || v > 1000000) return "history: a count, 0 or more\n";
    st->history = (uint32_t)v;
  }
  return NULL;
}

void hub_stream_topics_clear(hub_stream_topics *st) {
  json_decref(st->info);
  st->info = NULL;
}

void hub_stream_positions_parse(hub_stream_topics *st, const char *p) {
  for (size_t i = 0; p && *p && i < st->n; i++) {
    unsigned long long off;
    char epoch[HUB_EPOCH_LEN + 1];
    if (sscanf(p, "%llu.%16[0-9a-f]", &off, epoch) == 2) {
      st->t[i].pos.offset = off;
      memcpy(st->t[i].pos.epoch, epoch, sizeof epoch);
    }
    p = strchr(p, ',');
    if (p) p++;
  }
}

/* The decimal digits of v at p; returns their count. */
static size_t put_u64(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

/* By hand, not snprintf: an SSE stream formats this once per delivery. */
size_t hub_stream_positions_format(const hub_stream_topics *st, char *buf, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < st->n; i++) {
    size_t elen = strnlen(st->t[i].pos.epoch, HUB_EPOCH_LEN);
    if (n + 1 + 20 + 1 + elen + 1 > cap) break; /* whole entries only */
    if (i) buf[n++] = ',';
    n += put_u64(buf + n, st->t[i].pos.offset);
    buf[n++] = '.';
    memcpy(buf + n, st->t[i].pos.epoch, elen);
    n += elen;
  }
  if (cap) buf[n] = '\0';
  return n;
}

void hub_stream_subscribed(hub_stream_topics *st, const char *name, size_t len,
                           const hub_position *pos) {
  hub_stream_topic *t = hub_stream_topic_find(st, name, len);
  if (t && (strcmp(t->pos.epoch, pos->epoch) != 0 || t->pos.offset > pos->offset)) t->pos = *pos;
}

void hub_stream_advance(hub_stream_topics *st, const char *name, size_t len, uint64_t offset) {
  hub_stream_topic *t = hub_stream_topic_find(st, name, len);
  if (t) t->pos.offset = offset;
}

void hub_stream_moved(hub_stream_topics *st, const char *name, size_t len,
                      const hub_position *pos) {
  hub_stream_topic *t = hub_stream_topic_find(st, name, len);
  if (t) t->pos = *pos;
}

char *hub_stream_subscribe_request(const hub_stream_topics *st, size_t i) {
  const hub_stream_topic *t = &st->t[i];
  json_t *q = json_pack("{s:s,s:s%,s:I}", "op", "subscribe", "topic", t->name, t->len, "id",
                        (json_int_t)i + 1);
  if (q && t->pos.epoch[0])
    json_object_set_new(
        q, "since",
        json_pack("{s:I,s:s}", "offset", (json_int_t)t->pos.offset, "epoch", t->pos.epoch));
  else if (q && st->history)
    json_object_set_new(q, "history", json_integer(st->history));
  if (q && t->presence) json_object_set_new(q, "presence", json_true());
  json_t *info = st->info ? json_object_get(st->info, t->name) : NULL;
  if (q && info) json_object_set(q, "info", info);
  char *text = q ? json_dumps(q, JSON_COMPACT) : NULL;
  json_decref(q);
  return text;
}
