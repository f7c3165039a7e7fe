/* hub: duplex.v1 request parsing (every shape rule of PROTOCOL.md) and the
 * envelopes' exact bytes. */
#include <string.h>

#include "hub/codec.h"
#include "test.h"

static hub_request req;
static hub_error err;

static void ok(const char *text) {
  int rc = hub_request_parse(text, strlen(text), &req, &err);
  if (rc != 0) fprintf(stderr, "'%s' refused: %s: %s\n", text, err.code, err.message);
  CHECK_EQ_INT(rc, 0);
}

/* Expect a refusal with `code` whose message mentions `needle`. */
static void refused(const char *text, const char *code, const char *needle) {
  int rc = hub_request_parse(text, strlen(text), &req, &err);
  CHECK_EQ_INT(rc, -1);
  if (rc == 0) return hub_request_free(&req);
  CHECK_STR(err.code, code);
  if (needle && !strstr(err.message, needle)) {
    fprintf(stderr, "'%s': message '%s' lacks '%s'\n", text, err.message, needle);
    CHECK(strstr(err.message, needle) != NULL);
  }
  hub_request_free(&req);
}

TEST(subscribe_fields) {
  ok("{\"id\":1,\"op\":\"subscribe\",\"topic\":\"chat:lobby\",\"since\":{\"offset\":41,\"epoch\":"
     "\"e5\"},\"presence\":true,\"info\":{\"name\":\"ana\"}}");
  CHECK_EQ_INT(req.op, HUB_OP_SUBSCRIBE);
  CHECK_EQ_INT(json_integer_value(req.id), 1);
  CHECK_EQ_INT(req.topic_len, 10);
  CHECK(req.has_since);
  CHECK_EQ_INT(req.since_offset, 41);
  CHECK_STR(req.since_epoch, "e5");
  CHECK(req.presence);
  CHECK(json_is_object(req.info));
  hub_request_free(&req);
  ok("{\"op\":\"subscribe\",\"topic\":\"t\",\"history\":20,\"since\":null}");
  CHECK(!req.has_since);
  CHECK_EQ_INT(req.history, 20);
  CHECK(req.id == NULL);
  hub_request_free(&req);
}

TEST(ids) {
  ok("{\"id\":\"abc\",\"op\":\"ping\"}");
  CHECK_STR(json_string_value(req.id), "abc");
  hub_request_free(&req);
  ok("{\"id\":9007199254740991,\"op\":\"ping\"}");
  hub_request_free(&req);
  refused("{\"id\":9007199254740992,\"op\":\"ping\"}", "bad_request", "id");
  refused("{\"id\":-1,\"op\":\"ping\"}", "bad_request", "id");
  refused("{\"id\":1.5,\"op\":\"ping\"}", "bad_request", "id");
  refused("{\"id\":[1],\"op\":\"ping\"}", "bad_request", "id");
  refused("{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123x\","
          "\"op\":\"ping\"}",
          "bad_request", "id");
}

TEST(an_error_keeps_a_valid_id_for_the_reply) {
  int rc = hub_request_parse("{\"id\":7,\"op\":\"dance\"}", 21, &req, &err);
  CHECK_EQ_INT(rc, -1);
  CHECK_STR(err.code, "unknown_op");
  CHECK(strstr(err.message, "dance") != NULL);
  CHECK_EQ_INT(json_integer_value(req.id), 7);
  hub_request_free(&req);
}

TEST(malformed_envelopes) {
  refused("not json", "bad_request", "not a JSON object");
  refused("[1,2]", "bad_request", "not a JSON object");
  refused("\"op\"", "bad_request", "not a JSON object");
  refused("{}", "bad_request", "op");
  refused("{\"op\":5}", "bad_request", "op");
  refused("{\"op\":\"subscribe\"}", "bad_request", "topic");
  refused("{\"op\":\"subscribe\",\"topic\":7}", "bad_request", "topic");
  refused("{\"op\":\"subscribe\",\"topic\":\"t\",\"since\":5}", "bad_request", "since");
  refused("{\"op\":\"subscribe\",\"topic\":\"t\",\"since\":{\"offset\":-1,\"epoch\":\"e\"}}",
          "bad_request", "since");
  refused("{\"op\":\"subscribe\",\"topic\":\"t\",\"since\":{\"offset\":1}}", "bad_request", "since");
  refused("{\"op\":\"subscribe\",\"topic\":\"t\",\"presence\":1}", "bad_request", "presence");
  refused("{\"op\":\"subscribe\",\"topic\":\"t\",\"history\":\"5\"}", "bad_request", "history");
  refused("{\"op\":\"history\",\"topic\":\"t\",\"limit\":0}", "bad_request", "limit");
  refused("{\"op\":\"history\",\"topic\":\"t\",\"limit\":1001}", "bad_request", "limit");
  refused("{\"op\":\"publish\",\"topic\":\"t\"}", "bad_request", "data");
  refused("{\"op\":\"publish\",\"topic\":\"t\",\"data\":1,\"b64\":\"AA==\"}", "bad_request", "data");
  refused("{\"op\":\"publish\",\"topic\":\"t\",\"b64\":\"AA=\"}", "bad_request", "base64");
  refused("{\"op\":\"publish\",\"topic\":\"t\",\"b64\":5}", "bad_request", "base64");
  refused("{\"op\":\"publish\",\"topic\":\"t\",\"data\":1,\"skip_self\":\"yes\"}", "bad_request",
          "skip_self");
  refused("{\"op\":\"subscribe\",\"topic\":\"a\\u0000b\"}", "bad_request", NULL);
}

TEST(publish_fields) {
  ok("{\"op\":\"publish\",\"topic\":\"t\",\"data\":null,\"skip_self\":true}");
  CHECK(json_is_null(req.data)); /* null is a payload too */
  CHECK(req.skip_self);
  hub_request_free(&req);
  ok("{\"op\":\"publish\",\"topic\":\"t\",\"b64\":\"AAECAw==\"}");
  CHECK_EQ_INT(req.b64_len, 8);
  hub_request_free(&req);
}

TEST(base64_rules) {
  CHECK_EQ_INT(hub_b64_decoded_len("", 0), 0);
  CHECK_EQ_INT(hub_b64_decoded_len("AAECAw==", 8), 4);
  CHECK_EQ_INT(hub_b64_decoded_len("AAECAwQ=", 8), 5);
  CHECK_EQ_INT(hub_b64_decoded_len("AAECAwQF", 8), 6);
  CHECK_EQ_INT(hub_b64_decoded_len("AAE", 3), -1);
  CHECK_EQ_INT(hub_b64_decoded_len("A=AA", 4), -1);
  CHECK_EQ_INT(hub_b64_decoded_len("AA=A", 4), -1);
  CHECK_EQ_INT(hub_b64_decoded_len("A===", 4), -1);
  CHECK_EQ_INT(hub_b64_decoded_len("AA-_", 4), -1); /* url-safe alphabet is not standard */
}

TEST(envelopes_are_exact) {
  json_t *data = json_loads("{\"text\":\"h\\u00e9\"}", 0, NULL);
  hub_blob *b = hub_env_message("chat:lobby", 10, 42, data, NULL, 0, "k3-1f");
  CHECK_STR(b->data, "{\"type\":\"message\",\"topic\":\"chat:lobby\",\"offset\":42,"
                     "\"data\":{\"text\":\"h\xc3\xa9\"},\"from\":\"k3-1f\"}");
  hub_blob_unref(b);
  b = hub_env_message("cam", 3, 7, NULL, "AAECAw==", 8, NULL);
  CHECK_STR(b->data, "{\"type\":\"message\",\"topic\":\"cam\",\"offset\":7,\"b64\":\"AAECAw==\"}");
  hub_blob_unref(b);
  b = hub_env_presence("join", "room", 4, "c1", "", "{\"name\":\"bo\"}");
  CHECK_STR(b->data, "{\"type\":\"join\",\"topic\":\"room\",\"client\":\"c1\",\"user\":\"\","
                     "\"info\":{\"name\":\"bo\"}}");
  hub_blob_unref(b);
  b = hub_env_broadcast(data, NULL, 0);
  CHECK_STR(b->data, "{\"type\":\"broadcast\",\"data\":{\"text\":\"h\xc3\xa9\"}}");
  hub_blob_unref(b);
  CHECK_EQ_INT(hub_json_size(data), strlen("{\"text\":\"h\xc3\xa9\"}"));
  json_decref(data);
}

TEST(replies) {
  json_t *id = json_integer(3);
  char *s = hub_reply_ok(id, json_pack("{s:I}", "offset", (json_int_t)10));
  CHECK_STR(s, "{\"type\":\"reply\",\"id\":3,\"ok\":true,\"offset\":10}");
  free(s);
  hub_error e;
  hub_error_set(&e, "bad_topic", "no %s", "way");
  s = hub_reply_error(NULL, &e);
  CHECK_STR(s, "{\"type\":\"reply\",\"ok\":false,\"error\":{\"code\":\"bad_topic\",\"message\":"
               "\"no way\"}}");
  free(s);
  json_decref(id);
}

int main(void) {
  RUN(subscribe_fields);
  RUN(ids);
  RUN(an_error_keeps_a_valid_id_for_the_reply);
  RUN(malformed_envelopes);
  RUN(publish_fields);
  RUN(base64_rules);
  RUN(envelopes_are_exact);
  RUN(replies);
  return test_report();
}
