/* The hub's HTTP API for backends (docs/PROTOCOL.md, "HTTP API"): publish,
 * broadcast, history, presence, topics. JSON in and out; every call needs
 * the API key, compared in constant time and never logged. */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duplex/http.h"
#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/topic_name.h"

#define API_PREFIX "/api/"
#define BATCH_MAX 1000

static void respond_json(dx_http_req *req, int status, json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) {
    static const char oom[] = "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    dx_http_respond(req, 500, "application/json", NULL, oom, sizeof oom - 1);
    return;
  }
  dx_http_respond(req, status, "application/json", "Cache-Control: no-store\r\n", s, strlen(s));
  free(s);
}

static json_t *error_obj(const char *code, const char *message) {
  return json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", code, "message", message);
}

static int status_of(const char *code) {
  if (!strcmp(code, "message_too_big")) return 413;
  if (!strcmp(code, "internal")) return 500;
  if (!strcmp(code, "forbidden")) return 403;
  return 400;
}

static void respond_error(dx_http_req *req, const hub_error *err) {
  respond_json(req, status_of(err->code), error_obj(err->code, err->message));
}

/* The key as given: "Authorization: Bearer K" or "X-API-Key: K". */
static const char *given_key(dx_http_req *req) {
  const char *k = dx_http_get_header(req, "X-API-Key");
  if (k) return k;
  const char *a = dx_http_get_header(req, "Authorization");
  if (a && !strncasecmp(a, "Bearer ", 7)) {
    a += 7;
    while (*a == ' ') a++;
    return a;
  }
  return NULL;
}

/* Compare digests, so neither the content nor the length leaks by timing. */
static bool key_ok(const char *want, const char *got) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)want, strlen(want), a);
  SHA256((const unsigned char *)got, strlen(got), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

static json_t *parse_body(dx_http_req *req, hub_error *err) {
  size_t len;
  const char *body = dx_http_body(req, &len);
  json_error_t jerr;
  json_t *o = json_loadb(body, len, 0, &jerr);
  if (!o) {
    hub_error_set(err, "bad_request", "the body is not JSON: %s (at byte %d)", jerr.text,
                  jerr.position);
    return NULL;
  }
  if (!json_is_object(o)) {
    json_decref(o);
    hub_error_set(err, "bad_request", "the body must be a JSON object");
    return NULL;
  }
  return o;
}

/* data or b64, exactly one. */
static int get_payload(json_t *o, json_t **data, const char **b64, size_t *b64_len,
                       hub_error *err) {
  *data = json_object_get(o, "data");
  json_t *b = json_object_get(o, "b64");
  *b64 = NULL;
  *b64_len = 0;
  if (!*data == !b) {
    hub_error_set(err, "bad_request", "exactly one of \"data\" and \"b64\" is required");
    return -1;
  }
  if (b) {
    if (!json_is_string(b) || hub_b64_decoded_len(json_string_value(b), json_string_length(b)) < 0) {
      hub_error_set(err, "bad_request", "\"b64\" must be a base64 string (standard alphabet, padded)");
      return -1;
    }
    *b64 = json_string_value(b);
    *b64_len = json_string_length(b);
  }
  return 0;
}

/* One publication {topic, data|b64}: its result object, or NULL with err. */
static json_t *publish_one(hub_loop *hl, json_t *p, hub_error *err) {
  json_t *t = json_is_object(p) ? json_object_get(p, "topic") : NULL;
  if (!json_is_string(t)) {
    hub_error_set(err, "bad_request", "\"topic\" (a string) is required");
    return NULL;
  }
  const char *topic = json_string_value(t);
  size_t tlen = json_string_length(t);
  if (!hub_topic_valid(topic, tlen)) {
    hub_error_set(err, "bad_topic", "%s", HUB_TOPIC_RULE);
    return NULL;
  }
  json_t *data;
  const char *b64;
  size_t b64_len;
  if (get_payload(p, &data, &b64, &b64_len, err) ||
      hub_check_payload(hl->hub, topic, tlen, data, b64, b64_len, err))
    return NULL;
  hub_position pos;
  if (hub_publish(hl, topic, tlen, data, b64, b64_len, NULL, 0, &pos) != 0) {
    hub_error_set(err, "internal", "out of memory");
    return NULL;
  }
  hub_stat_add(hl, ST_PUBLISH_API, 1);
  return json_pack("{s:b,s:I,s:s}", "ok", 1, "offset", (json_int_t)pos.offset, "epoch", pos.epoch);
}

static void api_publish(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  json_t *body = parse_body(req, &err);
  if (!body) return respond_error(req, &err);
  json_t *batch = json_object_get(body, "publications");
  if (!batch) {
    json_t *r = publish_one(hl, body, &err);
    json_decref(body);
    if (!r) return respond_error(req, &err);
    return respond_json(req, 200, r);
  }
  if (!json_is_array(batch) || json_array_size(batch) > BATCH_MAX) {
    json_decref(body);
    hub_error_set(&err, "bad_request", "\"publications\" must be an array of at most %d", BATCH_MAX);
    return respond_error(req, &err);
  }
  json_t *results = json_array();
  size_t i;
  json_t *p;
  json_array_foreach(batch, i, p) {
    json_t *r = publish_one(hl, p, &err);
    json_array_append_new(results, r ? r : error_obj(err.code, err.message));
  }
  json_decref(body);
  respond_json(req, 200, json_pack("{s:b,s:o}", "ok", 1, "results", results));
}

static void api_broadcast(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  json_t *body = parse_body(req, &err), *data;
  const char *b64;
  size_t b64_len;
  if (!body) return respond_error(req, &err);
  if (get_payload(body, &data, &b64, &b64_len, &err) ||
      hub_check_payload(hl->hub, NULL, 0, data, b64, b64_len, &err)) {
    json_decref(body);
    return respond_error(req, &err);
  }
  hub_blob *env = hub_env_broadcast(data, b64, b64_len);
  json_decref(body);
  int n = env ? hub_broadcast(hl, env) : DX_ENOMEM;
  hub_blob_unref(env);
  if (n < 0) {
    hub_error_set(&err, "internal", "out of memory");
    return respond_error(req, &err);
  }
  respond_json(req, 200, json_pack("{s:b,s:i}", "ok", 1, "clients", n));
}

/* ?topic=... (required and valid). */
static int query_topic(dx_http_req *req, char *topic, hub_error *err) {
  int n = dx_http_query_param(req, "topic", topic, HUB_TOPIC_MAX + 1);
  if (n < 0) {
    hub_error_set(err, "bad_request", "the query parameter \"topic\" is required");
    return -1;
  }
  if (!hub_topic_valid(topic, (size_t)n)) {
    hub_error_set(err, "bad_topic", "%s", HUB_TOPIC_RULE);
    return -1;
  }
  return n;
}

static int query_uint(dx_http_req *req, const char *name, uint64_t max, uint64_t *out,
                      bool *present, hub_error *err) {
  char buf[32];
  *present = false;
  int n = dx_http_query_param(req, name, buf, sizeof buf);
  if (n < 0) return 0;
  char *end;
  unsigned long long v = strtoull(buf, &end, 10);
  if (!n || *end || buf[0] == '-' || v > max) {
    hub_error_set(err, "bad_request", "the query parameter \"%s\" must be an integer from 0 to %llu",
                  name, (unsigned long long)max);
    return -1;
  }
  *out = v;
  *present = true;
  return 0;
}

static void api_history(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  char topic[HUB_TOPIC_MAX + 1], epoch[40] = "";
  uint64_t since = 0, limit = 100;
  bool has_since, has_limit;
  int tlen = query_topic(req, topic, &err);
  if (tlen < 0 || query_uint(req, "since", UINT64_MAX, &since, &has_since, &err) ||
      query_uint(req, "limit", 1000, &limit, &has_limit, &err))
    return respond_error(req, &err);
  if (has_limit && !limit) {
    hub_error_set(&err, "bad_request", "the query parameter \"limit\" must be from 1 to 1000");
    return respond_error(req, &err);
  }
  if (has_since && dx_http_query_param(req, "epoch", epoch, sizeof epoch) < 0) {
    hub_error_set(&err, "bad_request", "\"since\" needs \"epoch\" (from a reply or a message)");
    return respond_error(req, &err);
  }
  json_t *f = hub_history_fields(hl->hub, hub_now_ms(hl), topic, (size_t)tlen, has_since, since,
                                 epoch, (uint32_t)limit, &err);
  if (!f) return respond_error(req, &err);
  json_object_set_new(f, "ok", json_true());
  respond_json(req, 200, f);
}

static void api_presence(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  char topic[HUB_TOPIC_MAX + 1];
  int tlen = query_topic(req, topic, &err);
  if (tlen < 0) return respond_error(req, &err);
  json_t *f = hub_presence_fields(hl->hub, topic, (size_t)tlen, &err);
  if (!f) return respond_error(req, &err);
  json_object_set_new(f, "ok", json_true());
  respond_json(req, 200, f);
}

static void api_topics(hub_loop *hl, dx_http_req *req) {
  hub_topic_list l;
  hub_error err;
  if (hub_core_topics(hl->hub->core, &l) != 0) {
    hub_error_set(&err, "internal", "out of memory");
    return respond_error(req, &err);
  }
  json_t *a = json_array();
  for (size_t i = 0; i < l.len; i++)
    json_array_append_new(a, json_pack("{s:s,s:i,s:I,s:s,s:i}", "topic", l.items[i].name,
                                       "subscribers", (int)l.items[i].subscribers, "offset",
                                       (json_int_t)l.items[i].pos.offset, "epoch",
                                       l.items[i].pos.epoch, "retained",
                                       (int)l.items[i].retained));
  hub_topic_list_free(&l);
  respond_json(req, 200, json_pack("{s:b,s:o}", "ok", 1, "topics", a));
}

typedef struct api_call {
  const char *name, *method;
  void (*fn)(hub_loop *, dx_http_req *);
} api_call;

static const api_call calls[] = {
    {"publish", "POST", api_publish},   {"broadcast", "POST", api_broadcast},
    {"history", "GET", api_history},    {"presence", "GET", api_presence},
    {"topics", "GET", api_topics},
};

static void on_api(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  const char *name = dx_http_path(req) + strlen(API_PREFIX);
  const api_call *c = NULL;
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
    if (!strcmp(calls[i].name, name)) c = &calls[i];
  if (!c)
    return respond_json(req, 404, error_obj("not_found", "unknown API call; see docs/PROTOCOL.md"));
  const char *key = hl->hub->o.api_key;
  if (!key)
    return respond_json(req, 403,
                        error_obj("forbidden", "the HTTP API is disabled: start duplex serve with "
                                               "--api-key KEY (or DUPLEX_API_KEY)"));
  const char *got = given_key(req);
  if (!got || !key_ok(key, got)) {
    dx_log_info("hub: API call %s %s refused: %s API key", dx_http_method(req), dx_http_path(req),
                got ? "wrong" : "no");
    return respond_json(req, 401,
                        error_obj("unauthorized", got ? "wrong API key"
                                                      : "missing API key: send \"Authorization: "
                                                        "Bearer KEY\" or \"X-API-Key: KEY\""));
  }
  const char *m = dx_http_method(req);
  bool head_ok = !strcmp(c->method, "GET") && !strcmp(m, "HEAD");
  if (strcmp(m, c->method) != 0 && !head_ok) {
    char msg[64], allow[48];
    snprintf(msg, sizeof msg, "use %s for /api/%s", c->method, c->name);
    snprintf(allow, sizeof allow, "Allow: %s\r\n", strcmp(c->method, "GET") ? c->method : "GET, HEAD");
    json_t *o = error_obj("method_not_allowed", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dx_http_respond(req, 405, "application/json", allow, s ? s : "", s ? strlen(s) : 0);
    free(s);
    return;
  }
  c->fn(hl, req);
}

int hub_api_attach(hub_loop *hl) { return dx_server_http(hl->srv, API_PREFIX, on_api, hl); }
