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

/* 0, or the dx_http_respond error: a deferred request left unanswered
 * (its connection is closing) still gets its on_gone. */
static int answer_json(dx_http_req *req, int status, json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!s) {
    static const char oom[] =
        "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    return dx_http_respond(req, 500, "application/json", NULL, oom, sizeof oom - 1);
  }
  int rc =
      dx_http_respond(req, status, "application/json", "Cache-Control: no-store\r\n", s, strlen(s));
  free(s);
  return rc;
}

static json_t *error_obj(const char *code, const char *message) {
  return json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", code, "message", message);
}

static int status_of(const char *code) {
  if (!strcmp(code, "message_too_big")) return 413;
  if (!strcmp(code, "unavailable")) return 503;
  if (!strcmp(code, "internal")) return 500;
  if (!strcmp(code, "forbidden")) return 403;
  return 400;
}

static int answer_error(dx_http_req *req, const hub_error *err) {
  return answer_json(req, status_of(err->code), error_obj(err->code, err->message));
}

static void respond_json(dx_http_req *req, int status, json_t *o) {
  (void)answer_json(req, status, o);
}

static void respond_error(dx_http_req *req, const hub_error *err) { (void)answer_error(req, err); }

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
    if (!json_is_string(b) ||
        hub_b64_decoded_len(json_string_value(b), json_string_length(b)) < 0) {
      hub_error_set(err, "bad_request",
                    "\"b64\" must be a base64 string (standard alphabet, padded)");
      return -1;
    }
    *b64 = json_string_value(b);
    *b64_len = json_string_length(b);
  }
  return 0;
}

/* A call whose answer waits for the broker (Redis answers later): the
 * request is deferred until every publication of it is answered. */
typedef struct api_call {
  dx_http_req *req; /* NULL once the client has gone */
  unsigned waiting; /* answers still to come, +1 while the handler runs */
  bool batch;
  bool deferred;   /* dx_http_defer took it: on_gone comes unless answered */
  bool left;       /* the answer found the connection closing: on_gone frees the call */
  json_t *results; /* one per publication, in order (batch) */
  json_t *result;  /* the single publication's */
  hub_error err;   /* the single publication's failure */
} api_call;

typedef struct api_slot {
  api_call *call;
  hub_loop *hl;
  size_t index;
} api_slot;

static void call_answer(api_call *c) {
  int rc = 0;
  if (c->req && c->batch) {
    rc = answer_json(c->req, 200, json_pack("{s:b,s:O}", "ok", 1, "results", c->results));
  } else if (c->req) {
    if (c->result)
      rc = answer_json(c->req, 200, json_incref(c->result));
    else
      rc = answer_error(c->req, &c->err);
  }
  json_decref(c->results);
  json_decref(c->result);
  c->results = c->result = NULL;
  if (rc && c->deferred && c->req) {
    c->left = true; /* on_gone still comes (it would find the call freed) */
    return;
  }
  free(c);
}

/* One answer (or the handler's end) less: answer when none is left. */
static void call_settle(api_call *c) {
  if (--c->waiting == 0) call_answer(c);
}

static void call_gone(dx_http_req *req, void *user) {
  (void)req;
  api_call *c = user;
  c->req = NULL;
  if (c->left) free(c);
}

static void set_result(api_call *c, size_t i, json_t *r, const hub_error *err) {
  if (c->batch)
    json_array_set_new(c->results, i, r ? r : error_obj(err->code, err->message));
  else if (r)
    c->result = r;
  else
    c->err = *err;
}

static void on_api_published(void *ctx, int status, const hub_position *pos) {
  api_slot *sl = ctx;
  api_call *c = sl->call;
  hub_error err;
  json_t *r = NULL;
  if (status == 0) hub_stat_add(sl->hl, ST_PUBLISH_API, 1);
  if (status == 0)
    r = json_pack("{s:b,s:I,s:s}", "ok", 1, "offset", (json_int_t)pos->offset, "epoch", pos->epoch);
  else
    hub_broker_error(status, &err);
  if (!r && !status) hub_error_set(&err, "internal", "out of memory");
  set_result(c, sl->index, r, &err);
  free(sl);
  call_settle(c);
}

/* One publication {topic, data|b64}: its result goes to slot i of c. */
static void publish_one(hub_loop *hl, json_t *p, api_call *c, size_t i) {
  hub_error err;
  json_t *t = json_is_object(p) ? json_object_get(p, "topic") : NULL;
  if (!json_is_string(t)) {
    hub_error_set(&err, "bad_request", "\"topic\" (a string) is required");
    return set_result(c, i, NULL, &err);
  }
  const char *topic = json_string_value(t);
  size_t tlen = json_string_length(t);
  if (!hub_topic_valid(topic, tlen)) {
    hub_error_set(&err, "bad_topic", "%s", HUB_TOPIC_RULE);
    return set_result(c, i, NULL, &err);
  }
  json_t *data;
  const char *b64;
  size_t b64_len;
  if (get_payload(p, &data, &b64, &b64_len, &err) ||
      hub_check_payload(hl->hub, topic, tlen, data, b64, b64_len, &err))
    return set_result(c, i, NULL, &err);
  api_slot *sl = malloc(sizeof *sl);
  if (!sl) {
    hub_error_set(&err, "internal", "out of memory");
    return set_result(c, i, NULL, &err);
  }
  *sl = (api_slot){c, hl, i};
  c->waiting++;
  hub_pub pub = {topic, tlen, data, b64, b64_len, NULL, 0};
  hub_publish(hl, &pub, on_api_published, sl);
}

static void api_publish(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  json_t *body = parse_body(req, &err);
  if (!body) return respond_error(req, &err);
  json_t *batch = json_object_get(body, "publications");
  if (batch && (!json_is_array(batch) || json_array_size(batch) > BATCH_MAX)) {
    json_decref(body);
    hub_error_set(&err, "bad_request", "\"publications\" must be an array of at most %d",
                  BATCH_MAX);
    return respond_error(req, &err);
  }
  api_call *c = calloc(1, sizeof *c);
  if (!c || (batch && !(c->results = json_array()))) {
    free(c);
    json_decref(body);
    hub_error_set(&err, "internal", "out of memory");
    return respond_error(req, &err);
  }
  c->req = req;
  c->waiting = 1; /* this handler */
  c->batch = batch != NULL;
  if (!batch) {
    publish_one(hl, body, c, 0);
  } else {
    size_t i;
    json_t *p;
    json_array_foreach(batch, i, p) json_array_append_new(c->results, json_null());
    json_array_foreach(batch, i, p) publish_one(hl, p, c, i);
  }
  json_decref(body);
  if (c->waiting > 1 && !(c->deferred = dx_http_defer(req, call_gone, c) == 0)) {
    /* Cannot wait: the answers that come later go nowhere. */
    c->req = NULL;
    hub_error_set(&err, "internal", "out of memory");
    respond_error(req, &err);
  }
  call_settle(c);
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
    hub_error_set(err, "bad_request",
                  "the query parameter \"%s\" must be an integer from 0 to %llu", name,
                  (unsigned long long)max);
    return -1;
  }
  *out = v;
  *present = true;
  return 0;
}

/* A GET answered by the broker, now (memory) or later (Redis): `later`
 * keeps the request until the answer comes (or the client goes). The
 * handler starts it with later_begin and ends with later_end; the
 * completion answers through later_answer. */
typedef struct later {
  dx_http_req *req; /* NULL once answered or gone */
  bool waiting;     /* the handler still runs (it frees it) */
  bool left;        /* deferred, and the answer found the connection closing: on_gone frees it */
} later;

static void later_gone(dx_http_req *req, void *user) {
  (void)req;
  later *l = user;
  l->req = NULL;
  if (l->left) free(l);
}

/* Answer with the fields (plus "ok": true) or the error; frees l when the
 * handler has returned. */
static void later_answer(later *l, json_t *fields, const hub_error *err) {
  if (l->req) {
    int rc;
    if (fields) {
      json_object_set_new(fields, "ok", json_true());
      rc = answer_json(l->req, 200, fields);
    } else {
      rc = answer_error(l->req, err);
    }
    if (rc && !l->waiting) {
      l->left = true; /* deferred and unanswered: on_gone still comes */
      return;
    }
    l->req = NULL;
  } else {
    json_decref(fields);
  }
  if (!l->waiting) free(l);
}

static void later_begin(later *l, dx_http_req *req) {
  l->req = req;
  l->waiting = true;
}

/* After the broker call: wait for an answer still to come, or free. */
static void later_end(later *l, dx_http_req *req) {
  l->waiting = false;
  if (!l->req) return free(l); /* answered already */
  if (dx_http_defer(req, later_gone, l) != 0) {
    hub_error err;
    hub_error_set(&err, "internal", "out of memory");
    l->req = NULL; /* the answer that comes later goes nowhere, and frees l */
    respond_error(req, &err);
  }
}

typedef struct history_call {
  later l; /* first */
  hub_history_query q;
  char epoch[40];
  char topic[];
} history_call;

static void on_api_history(void *ctx, hub_history_result *r) {
  history_call *c = ctx;
  hub_error err;
  json_t *f = c->l.req ? hub_history_fields(&c->q, r, &err) : NULL;
  later_answer(&c->l, f, &err);
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
  history_call *c = calloc(1, sizeof *c + (size_t)tlen + 1);
  if (!c) {
    hub_error_set(&err, "internal", "out of memory");
    return respond_error(req, &err);
  }
  memcpy(c->topic, topic, (size_t)tlen);
  snprintf(c->epoch, sizeof c->epoch, "%s", epoch);
  c->q = (hub_history_query){c->topic, (size_t)tlen, has_since, since, c->epoch, (uint32_t)limit};
  later_begin(&c->l, req);
  hl->hub->broker->ops->history(hl->hub->broker, hl, &c->q, on_api_history, c);
  later_end(&c->l, req);
}

static void on_api_presence(void *ctx, int status, hub_presence_list *pl) {
  later *l = ctx;
  hub_error err;
  json_t *f = l->req ? hub_presence_fields(status, pl, &err) : NULL;
  later_answer(l, f, &err);
}

static void api_presence(hub_loop *hl, dx_http_req *req) {
  hub_error err;
  char topic[HUB_TOPIC_MAX + 1];
  int tlen = query_topic(req, topic, &err);
  if (tlen < 0) return respond_error(req, &err);
  if (hub_presence_allowed(hl->hub, topic, (size_t)tlen, &err)) return respond_error(req, &err);
  later *l = calloc(1, sizeof *l);
  if (!l) {
    hub_error_set(&err, "internal", "out of memory");
    return respond_error(req, &err);
  }
  later_begin(l, req);
  hl->hub->broker->ops->presence(hl->hub->broker, hl, topic, (size_t)tlen, on_api_presence, l);
  later_end(l, req);
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
                                       l.items[i].pos.epoch, "retained", (int)l.items[i].retained));
  hub_topic_list_free(&l);
  respond_json(req, 200, json_pack("{s:b,s:o}", "ok", 1, "topics", a));
}

typedef struct api_route {
  const char *name, *method;
  void (*fn)(hub_loop *, dx_http_req *);
} api_route;

static const api_route calls[] = {
    {"publish", "POST", api_publish}, {"broadcast", "POST", api_broadcast},
    {"history", "GET", api_history},  {"presence", "GET", api_presence},
    {"topics", "GET", api_topics},
};

static void on_api(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  const char *name = dx_http_path(req) + strlen(API_PREFIX);
  const api_route *c = NULL;
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
    snprintf(allow, sizeof allow, "Allow: %s\r\n",
             strcmp(c->method, "GET") ? c->method : "GET, HEAD");
    json_t *o = error_obj("method_not_allowed", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    dx_http_respond(req, 405, "application/json", allow, s ? s : "", s ? strlen(s) : 0);
    free(s);
    return;
  }
  c->fn(hl, req);
}

/* Pipelined: a client's pipelined calls go to the broker together (with
 * Redis, one round trip each would otherwise pass before the next is read). */
int hub_api_attach(hub_loop *hl) {
  int rc = dx_server_http(hl->srv, API_PREFIX, on_api, hl);
  return rc ? rc : dx_server_http_pipelined(hl->srv, API_PREFIX);
}
