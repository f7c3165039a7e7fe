/* Fuzz the hub's request decoder (duplex.v1 envelopes): any bytes give a
 * request or a named error from PROTOCOL.md; an accepted publish builds an
 * envelope that is valid JSON carrying the same topic and payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/codec.h"

static void check(int cond) {
  if (!cond) abort();
}

static const char *const codes[] = {"bad_request", "unknown_op", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hub_request r;
  hub_error err;
  int rc = hub_request_parse((const char *)data, size, &r, &err);
  if (rc != 0) {
    bool known = false;
    for (int i = 0; codes[i]; i++) known |= !strcmp(err.code, codes[i]);
    check(known);
    check(err.message[0] != '\0');
    char *reply = hub_reply_error(r.id, &err);
    check(reply != NULL);
    json_t *back = json_loads(reply, 0, NULL);
    check(json_is_object(back) && json_is_false(json_object_get(back, "ok")));
    json_decref(back);
    free(reply);
    hub_request_free(&r);
    return 0;
  }
  check(r.op == HUB_OP_PING || (r.topic != NULL));
  if (r.op == HUB_OP_PUBLISH) {
    check(!r.data != !r.b64);
    hub_blob *env = hub_env_message(r.topic, r.topic_len, 1, r.data, r.b64, r.b64_len, "c");
    check(env != NULL);
    json_t *back = json_loadb(env->data, env->len, JSON_ALLOW_NUL, NULL);
    check(back != NULL);
    json_t *t = json_object_get(back, "topic");
    check(json_string_length(t) == r.topic_len && !memcmp(json_string_value(t), r.topic, r.topic_len));
    if (r.data) check(json_equal(json_object_get(back, "data"), r.data));
    json_decref(back);
    hub_blob_unref(env);
  }
  if (r.op == HUB_OP_HISTORY) check(r.limit >= 1 && r.limit <= 1000);
  hub_request_free(&r);
  return 0;
}
