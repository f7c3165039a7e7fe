/* hub — the duplex.v1 wire format (docs/PROTOCOL.md): requests parsed and
 * envelopes built with jansson. Plain data in and out; no sockets.
 *
 * Threads: none of its own; every function may run on any thread. */
#ifndef DX_HUB_CODEC_H
#define DX_HUB_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/blob.h"
#include "hub/core.h"

typedef enum hub_op {
  HUB_OP_SUBSCRIBE,
  HUB_OP_UNSUBSCRIBE,
  HUB_OP_PUBLISH,
  HUB_OP_PRESENCE,
  HUB_OP_HISTORY,
  HUB_OP_PING,
  HUB_OP_CONNECT,
  HUB_OP_REFRESH,
} hub_op;

/* A problem to report: a code from PROTOCOL.md and a sentence. */
typedef struct hub_error {
  const char *code;
  char message[200];
} hub_error;

void hub_error_set(hub_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A parsed request. Strings and json_t pointers are borrowed from `root`. */
typedef struct hub_request {
  json_t *root;
  json_t *id; /* NULL when absent (or invalid: then parse failed) */
  hub_op op;
  const char *topic;
  size_t topic_len;
  bool has_since;
  uint64_t since_offset;
  const char *since_epoch;
  uint32_t history;
  bool presence;
  json_t *info;
  json_t *data; /* publish: exactly one of data and b64 */
  const char *b64;
  size_t b64_len;
  bool skip_self;
  uint32_t limit;    /* history; default 100 */
  const char *token; /* connect, refresh */
} hub_request;

/* Parse one request. Returns 0, or -1 with `err` set; in both cases
 * hub_request_free must be called (req->id is usable for the error reply
 * when it was valid). Checks shapes and types only: topic rules and limits
 * are the caller's. */
int hub_request_parse(const char *text, size_t len, hub_request *req, hub_error *err);
void hub_request_free(hub_request *req);

/* Parse a `since` object {"offset": int, "epoch": string}. */
int hub_parse_since(json_t *since, uint64_t *offset, const char **epoch, hub_error *err);

/* Strict standard base64 (padding required). Returns the decoded size, or
 * -1 when `s` is not base64. */
long hub_b64_decoded_len(const char *s, size_t len);

/* Bytes `data` takes once encoded (as in an envelope). */
size_t hub_json_size(const json_t *data);

/* Envelopes (JSON text in a blob; NULL when out of memory). `data` or `b64`
 * (one of them); `from` may be NULL. */
hub_blob *hub_env_message(const char *topic, size_t topic_len, uint64_t offset, json_t *data,
                          const char *b64, size_t b64_len, const char *from);
/* A message envelope cut after its offset, for a broker that numbers it
 * elsewhere (Redis keeps and carries the tail), and the envelope joined
 * again from the tail at its offset. NULL when out of memory. */
hub_blob *hub_env_message_tail(const char *topic, size_t topic_len, json_t *data, const char *b64,
                               size_t b64_len, const char *from);
hub_blob *hub_env_message_join(const char *topic, size_t topic_len, uint64_t offset,
                               const char *tail, size_t tail_len);
/* {"type":"gap",...}: publications before pos are lost to the subscriber,
 * which continues after pos (why: "too_old", "epoch_changed"). */
hub_blob *hub_env_gap(const char *topic, size_t topic_len, const hub_position *pos,
                      const char *why);
hub_blob *hub_env_presence(const char *type, const char *topic, size_t topic_len,
                           const char *client, const char *user, const char *info);
hub_blob *hub_env_broadcast(json_t *data, const char *b64, size_t b64_len);

/* Replies: {"type":"reply","id":..,"ok":true, fields...}. `fields` is an
 * object whose members are added (stolen reference; may be NULL). */
char *hub_reply_ok(json_t *id, json_t *fields);
char *hub_reply_error(json_t *id, const hub_error *err);

/* Turn publications (envelopes) into a JSON array of their objects. */
json_t *hub_envs_array(hub_blob *const *envs, uint32_t n);

#endif
