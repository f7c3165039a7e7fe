/* duplex.v1 requests and envelopes (docs/PROTOCOL.md), with jansson. */
#include "hub/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/topic_name.h"

#define ID_MAX_STRING 64
#define MAX_SAFE_INT ((json_int_t)9007199254740991LL) /* 2^53 - 1 */
#define HISTORY_LIMIT_MAX 1000

void hub_error_set(hub_error *e, const char *code, const char *fmt, ...) {
  e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

static const struct {
  const char *name;
  hub_op op;
} ops[] = {
    {"subscribe", HUB_OP_SUBSCRIBE}, {"unsubscribe", HUB_OP_UNSUBSCRIBE},
    {"publish", HUB_OP_PUBLISH},     {"presence", HUB_OP_PRESENCE},
    {"history", HUB_OP_HISTORY},     {"ping", HUB_OP_PING},
    {"connect", HUB_OP_CONNECT},     {"refresh", HUB_OP_REFRESH},
};

static int bad(hub_error *err, const char *fmt, const char *field) {
  hub_error_set(err, "bad_request", fmt, field);
  return -1;
}

/* An optional non-negative integer field. */
static int get_uint(json_t *o, const char *key, json_int_t max, json_int_t *out, bool *present,
                    hub_error *err) {
  json_t *v = json_object_get(o, key);
  *present = v != NULL;
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
    hub_error_set(err, "bad_request", "\"%s\" must be an integer from 0 to %lld", key,
                  (long long)max);
    return -1;
  }
  *out = json_integer_value(v);
  return 0;
}

static int get_bool(json_t *o, const char *key, bool *out, hub_error *err) {
  json_t *v = json_object_get(o, key);
  if (!v) return 0;
  if (!json_is_boolean(v)) return bad(err, "\"%s\" must be true or false", key);
  *out = json_is_true(v);
  return 0;
}

int hub_parse_since(json_t *since, uint64_t *offset, const char **epoch, hub_error *err) {
  json_t *off = json_is_object(since) ? json_object_get(since, "offset") : NULL;
  json_t *ep = json_is_object(since) ? json_object_get(since, "epoch") : NULL;
  if (!json_is_integer(off) || json_integer_value(off) < 0 || !json_is_string(ep) ||
      json_string_length(ep) > 32) {
    hub_error_set(err, "bad_request",
                  "\"since\" must be {\"offset\": integer >= 0, \"epoch\": string of at most 32 "
                  "bytes}");
    return -1;
  }
  *offset = (uint64_t)json_integer_value(off);
  *epoch = json_string_value(ep);
  return 0;
}

long hub_b64_decoded_len(const char *s, size_t len) {
  if (len % 4) return -1;
  size_t pad = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '+' || ch == '/';
    if (ch == '=' && i >= len - 2) {
      pad++;
      continue;
    }
    if (!alpha || pad) return -1; /* '=' only at the end */
  }
  return (long)(len / 4 * 3 - pad);
}

static int parse_fields(hub_request *r, hub_error *err) {
  json_t *o = r->root;
  bool needs_topic = r->op != HUB_OP_PING && r->op != HUB_OP_CONNECT && r->op != HUB_OP_REFRESH;
  if (needs_topic) {
    json_t *t = json_object_get(o, "topic");
    if (!json_is_string(t)) return bad(err, "\"%s\" (a string) is required", "topic");
    r->topic = json_string_value(t);
    r->topic_len = json_string_length(t);
  }
  json_int_t v;
  bool present;
  switch (r->op) {
  case HUB_OP_SUBSCRIBE:
  case HUB_OP_HISTORY: {
    json_t *since = json_object_get(o, "since");
    if (since && !json_is_null(since)) {
      if (hub_parse_since(since, &r->since_offset, &r->since_epoch, err) != 0) return -1;
      r->has_since = true;
    }
    if (r->op == HUB_OP_HISTORY) {
      if (get_uint(o, "limit", HISTORY_LIMIT_MAX, &v, &present, err) != 0) return -1;
      if (present && v == 0) return bad(err, "\"%s\" must be from 1 to 1000", "limit");
      r->limit = present ? (uint32_t)v : 100;
      break;
    }
    if (get_uint(o, "history", 1000000, &v, &present, err) != 0) return -1;
    r->history = present ? (uint32_t)v : 0;
    if (get_bool(o, "presence", &r->presence, err) != 0) return -1;
    r->info = json_object_get(o, "info");
    if (json_is_null(r->info)) r->info = NULL;
    break;
  }
  case HUB_OP_PUBLISH: {
    r->data = json_object_get(o, "data");
    json_t *b = json_object_get(o, "b64");
    if (!r->data == !b) return bad(err, "exactly one of \"data\" and \"%s\" is required", "b64");
    if (b) {
      if (!json_is_string(b) ||
          hub_b64_decoded_len(json_string_value(b), json_string_length(b)) < 0)
        return bad(err, "\"%s\" must be a base64 string (standard alphabet, padded)", "b64");
      r->b64 = json_string_value(b);
      r->b64_len = json_string_length(b);
    }
    if (get_bool(o, "skip_self", &r->skip_self, err) != 0) return -1;
    break;
  }
  case HUB_OP_CONNECT:
  case HUB_OP_REFRESH: {
    json_t *t = json_object_get(o, "token");
    if (!json_is_string(t)) return bad(err, "\"%s\" (a string) is required", "token");
    r->token = json_string_value(t);
    break;
  }
  default:
    break;
  }
  return 0;
}

int hub_request_parse(const char *text, size_t len, hub_request *r, hub_error *err) {
  memset(r, 0, sizeof *r);
  json_error_t jerr;
  r->root = json_loadb(text, len, 0, &jerr);
  if (!r->root) {
    hub_error_set(err, "bad_request", "not a JSON object: %s (at byte %d)", jerr.text,
                  jerr.position);
    return -1;
  }
  if (!json_is_object(r->root)) {
    hub_error_set(err, "bad_request", "not a JSON object: a request is {\"op\": ..., ...}");
    return -1;
  }
  json_t *id = json_object_get(r->root, "id");
  if (id) {
    bool ok = (json_is_integer(id) && json_integer_value(id) >= 0 &&
               json_integer_value(id) <= MAX_SAFE_INT) ||
              (json_is_string(id) && json_string_length(id) <= ID_MAX_STRING);
    if (!ok)
      return bad(err, "\"%s\" must be an integer from 0 to 2^53-1 or a string of at most 64 bytes",
                 "id");
    r->id = id;
  }
  json_t *op = json_object_get(r->root, "op");
  if (!json_is_string(op)) return bad(err, "\"%s\" (a string) is required", "op");
  const char *name = json_string_value(op);
  size_t i;
  for (i = 0; i < sizeof ops / sizeof *ops; i++)
    if (!strcmp(ops[i].name, name)) break;
  if (i == sizeof ops / sizeof *ops) {
    hub_error_set(err, "unknown_op", "unknown op \"%.64s\"", name);
    return -1;
  }
  r->op = ops[i].op;
  return parse_fields(r, err);
}

void hub_request_free(hub_request *r) {
  json_decref(r->root);
  r->root = NULL;
}

size_t hub_json_size(const json_t *data) {
  return json_dumpb(data, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static hub_blob *dump(json_t *o) {
  if (!o) return NULL;
  hub_blob *b = hub_blob_take(json_dumps(o, JSON_COMPACT));
  json_decref(o);
  return b;
}

static int set_payload(json_t *o, json_t *data, const char *b64, size_t b64_len) {
  if (data) return json_object_set(o, "data", data);
  return json_object_set_new(o, "b64", json_stringn(b64, b64_len));
}

hub_blob *hub_env_message(const char *topic, size_t topic_len, uint64_t offset, json_t *data,
                          const char *b64, size_t b64_len, const char *from) {
  json_t *o = json_pack("{s:s,s:s%,s:I}", "type", "message", "topic", topic, topic_len, "offset",
                        (json_int_t)offset);
  if (!o || set_payload(o, data, b64, b64_len) != 0 ||
      (from && json_object_set_new(o, "from", json_string(from)) != 0)) {
    json_decref(o);
    return NULL;
  }
  return dump(o);
}

/* What precedes the offset in a message envelope (json_pack keeps the
 * order; topic names need no escaping). */
static int message_head(char *buf, size_t cap, const char *topic, size_t topic_len) {
  return snprintf(buf, cap, "{\"type\":\"message\",\"topic\":\"%.*s\",\"offset\":", (int)topic_len,
                  topic);
}

hub_blob *hub_env_message_tail(const char *topic, size_t topic_len, json_t *data, const char *b64,
                               size_t b64_len, const char *from) {
  hub_blob *env = hub_env_message(topic, topic_len, 0, data, b64, b64_len, from);
  char head[HUB_TOPIC_MAX + 48];
  int n = message_head(head, sizeof head, topic, topic_len);
  if (!env || n < 0 || (size_t)n + 1 > env->len || memcmp(env->data, head, (size_t)n) != 0 ||
      env->data[n] != '0') {
    hub_blob_unref(env);
    return NULL;
  }
  hub_blob *tail = hub_blob_new(env->data + n + 1, env->len - (size_t)n - 1);
  hub_blob_unref(env);
  return tail;
}

hub_blob *hub_env_message_join(const char *topic, size_t topic_len, uint64_t offset,
                               const char *tail, size_t tail_len) {
  char head[HUB_TOPIC_MAX + 72];
  int n = message_head(head, sizeof head, topic, topic_len);
  if (n < 0 || (size_t)n + 21 > sizeof head) return NULL;
  n += snprintf(head + n, sizeof head - (size_t)n, "%llu", (unsigned long long)offset);
  char *buf = malloc((size_t)n + tail_len + 1);
  if (!buf) return NULL;
  memcpy(buf, head, (size_t)n);
  memcpy(buf + n, tail, tail_len);
  buf[(size_t)n + tail_len] = '\0';
  return hub_blob_take(buf);
}

hub_blob *hub_env_gap(const char *topic, size_t topic_len, const hub_position *pos,
                      const char *why) {
  json_t *o = json_pack("{s:s,s:s%,s:I,s:s,s:s}", "type", "gap", "topic", topic, topic_len,
                        "offset", (json_int_t)pos->offset, "epoch", pos->epoch, "reason", why);
  return dump(o);
}

hub_blob *hub_env_presence(const char *type, const char *topic, size_t topic_len,
                           const char *client, const char *user, const char *info) {
  json_t *o = json_pack("{s:s,s:s%,s:s,s:s}", "type", type, "topic", topic, topic_len, "client",
                        client, "user", user ? user : "");
  if (o && info) {
    json_t *i = json_loads(info, JSON_DECODE_ANY, NULL);
    if (!i || json_object_set_new(o, "info", i) != 0) {
      json_decref(o);
      return NULL;
    }
  }
  return dump(o);
}

hub_blob *hub_env_broadcast(json_t *data, const char *b64, size_t b64_len) {
  json_t *o = json_pack("{s:s}", "type", "broadcast");
  if (!o || set_payload(o, data, b64, b64_len) != 0) {
    json_decref(o);
    return NULL;
  }
  return dump(o);
}

static json_t *reply_head(json_t *id, bool ok) {
  json_t *o = json_pack("{s:s}", "type", "reply");
  if (o && id) json_object_set(o, "id", id);
  if (o) json_object_set_new(o, "ok", json_boolean(ok));
  return o;
}

char *hub_reply_ok(json_t *id, json_t *fields) {
  json_t *o = reply_head(id, true);
  if (o && fields) json_object_update(o, fields);
  json_decref(fields);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

char *hub_reply_error(json_t *id, const hub_error *err) {
  json_t *o = reply_head(id, false);
  if (o)
    json_object_set_new(o, "error",
                        json_pack("{s:s,s:s}", "code", err->code, "message", err->message));
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

json_t *hub_envs_array(hub_blob *const *envs, uint32_t n) {
  json_t *a = json_array();
  for (uint32_t i = 0; a && i < n; i++) {
    json_t *m = json_loadb(envs[i]->data, envs[i]->len, 0, NULL);
    if (!m || json_array_append_new(a, m) != 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}
