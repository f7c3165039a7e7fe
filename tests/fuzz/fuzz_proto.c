/* libFuzzer target for the sans-I/O connection state machine.
 *
 * The first input byte picks the role and options; the rest is fed twice:
 * whole, and in pieces whose sizes come from the input itself. Both runs
 * must produce the same events, output and final state (the streaming
 * parser may not depend on how bytes are split). ASan/UBSan catch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/deflate.h"
#include "duplex/error.h"
#include "duplex/proto.h"

typedef struct {
  uint64_t hash;     /* of everything observable */
  int last_close;    /* code of the last close frame we sent, -1 if none */
  uint64_t fragment; /* of the fragments of the message in progress */
  size_t events;     /* non-fragment events */
  dx_proto *p;
  int close_in_callback;
} run_state;

static uint64_t mix(uint64_t h, const void *data, size_t n) {
  const uint8_t *b = data;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static void on_event(void *user, const dx_event *ev) {
  run_state *s = user;
  int t = ev->type, op = ev->opcode;
  if (t == DX_EV_FRAGMENT) {
    /* Fragment boundaries follow read boundaries, and a message that fails
     * midway was partly delivered: hash a message's bytes only at its end. */
    if (ev->first) s->fragment = mix(1, &op, sizeof op);
    s->fragment = mix(s->fragment, ev->data, ev->len);
    if (ev->fin) s->hash = mix(s->hash, &s->fragment, sizeof s->fragment);
    return;
  }
  uint64_t h = s->hash;
  h = mix(h, &t, sizeof t);
  h = mix(h, &op, sizeof op);
  h = mix(h, ev->data, ev->len);
  if (t == DX_EV_CLOSE) h = mix(h, &ev->close_code, sizeof ev->close_code);
  s->hash = h;
  s->events++;
  if (t == DX_EV_MESSAGE && s->close_in_callback && s->events == 3)
    dx_proto_close(s->p, 1000, "enough", 6);
  if (t == DX_EV_MESSAGE && ev->len == 3) dx_proto_send(s->p, DX_OP_TEXT, ev->data, ev->len);
}

static int on_output(void *user, const dx_output *o) {
  run_state *s = user;
  uint8_t tmp[256];
  s->hash = mix(s->hash, o->header, o->header_len - (o->mask ? 4 : 0));
  if ((o->header[0] & 0x0f) == DX_OP_CLOSE) {
    uint8_t code[2] = {0, 0};
    if (o->payload_len >= 2) memcpy(code, o->payload, 2); /* masked later, by the writer */
    s->last_close = code[0] << 8 | code[1];
  }
  /* Check the payload can be masked/copied in full. */
  for (size_t off = 0; off < o->payload_len; off += sizeof tmp) {
    size_t n = o->payload_len - off < sizeof tmp ? o->payload_len - off : sizeof tmp;
    if (o->mask)
      dx_mask_copy(tmp, o->payload + off, n, o->mask, off);
    else
      memcpy(tmp, o->payload + off, n);
  }
  return 0;
}

static void mask_key(void *user, uint8_t key[4]) { memcpy(key, "\x01\x02\x03\x04", 4); }

static uint64_t run(const uint8_t *data, size_t size, const dx_proto_opts *o, dx_role role,
                    const uint8_t *splits, size_t nsplits, int close_cb, bool use_pmd,
                    const uint8_t *pmd_sel, size_t npmd, int *final_state) {
  run_state s = {.hash = 1469598103934665603ull, .close_in_callback = close_cb, .last_close = -1};
  dx_proto_callbacks cb = {on_event, on_output, mask_key};
  dx_proto *p = malloc(dx_proto_size());
  s.p = p;
  dx_proto_init(p, role, o, &cb, &s);
  /* permessage-deflate: the top bit picks it; the second split byte (if
   * any) picks shared or per-connection inflate. */
  dx_pmd_shared *shared = NULL;
  dx_pmd *pmd = NULL;
  if (use_pmd) {
    bool takeover = npmd > 1 ? pmd_sel[1] & 1 : 0;
    dx_pmd_params pp = {!takeover, !takeover, 15, 15};
    dx_deflate_opts dopts = {.enable = true, .threshold = 8};
    shared = dx_pmd_shared_new();
    pmd = dx_pmd_new(&pp, &dopts, shared);
    dx_proto_set_deflate(p, pmd);
  }
  uint8_t *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  size_t pos = 0, k = 0;
  int rc = 0;
  while (pos < size && rc == 0) {
    size_t n = size - pos;
    if (nsplits) {
      size_t want = (size_t)splits[k++ % nsplits] + 1;
      if (want < n) n = want;
    }
    int closes_before = s.last_close;
    rc = dx_proto_feed(p, buf + pos, n);
    pos += n;
    /* Never hold more than the limits allow: a partial message (or its
     * compressed bytes) plus a partial control frame. */
    uint64_t lim = o->max_message ? o->max_message : DX_DEFAULT_MAX_MESSAGE;
    if (dx_proto_buffered(p) > 2 * lim + lim / 8 + 4096 + DX_CONTROL_MAX) abort();
    if (rc < 0) {
      /* A failure names a specific error and, unless a close was already
       * sent, closes with the code that error calls for. */
      if (rc == -1 || strcmp(dx_strerror(rc), "unknown error") == 0) abort();
      if (closes_before < 0 && !close_cb && s.last_close != dx_close_code_for_error(rc)) abort();
      if (dx_proto_get_state(p) != DX_PROTO_FAILED) abort();
    } else if (rc > 0) {
      abort();
    }
  }
  s.hash = mix(s.hash, &rc, sizeof rc);
  *final_state = dx_proto_get_state(p);
  dx_proto_free(p);
  free(p);
  free(buf);
  dx_pmd_free(pmd);
  dx_pmd_shared_free(shared);
  return s.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint8_t sel = data[0], nsplits = data[1] & 15;
  data += 2, size -= 2;
  if (size < nsplits) return 0;
  const uint8_t *splits = data;
  data += nsplits, size -= nsplits;
  dx_proto_opts o = {
      .max_message = (sel & 1) ? 300 : 0,
      .max_frame = (sel & 2) ? 200 : 0,
      .stream_fragments = (sel & 4) != 0,
      .no_auto_pong = (sel & 8) != 0,
      .allowed_rsv = (sel & 16) ? DX_RSV1 : 0,
  };
  dx_role role = (sel & 32) ? DX_ROLE_CLIENT : DX_ROLE_SERVER;
  int close_cb = (sel & 64) != 0;
  int st_whole, st_split;
  bool use_pmd = (sel & 128) != 0;
  uint64_t whole =
      run(data, size, &o, role, NULL, 0, close_cb, use_pmd, splits, nsplits, &st_whole);
  uint64_t split =
      run(data, size, &o, role, splits, nsplits, close_cb, use_pmd, splits, nsplits, &st_split);
  if (whole != split || st_whole != st_split) abort();
  return 0;
}
