/* Prepared messages: frame (and compress) once, queue shared references
 * on every connection. */
#include <stdlib.h>
#include <string.h>

#include "io/loop_internal.h"
#include "ws/ws_internal.h"

struct dx_msg {
  unsigned opcode;
  size_t len;        /* payload bytes */
  size_t hdr_len;    /* frame header in front of the payload in plain */
  dx_sbuf *plain;    /* header + payload: an unmasked, uncompressed frame */
  dx_sbuf *deflated; /* header (RSV1) + compressed payload, made on first need */
  bool deflate_failed;
};

dx_msg *dx_msg_new(unsigned opcode, const void *data, size_t len) {
  if (opcode != DX_OP_TEXT && opcode != DX_OP_BINARY) return NULL;
  dx_msg *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  size_t hl = dx_frame_header_size(len, false);
  m->plain = dx_sbuf_new(hl + len);
  if (!m->plain) {
    free(m);
    return NULL;
  }
  dx_frame_write_header(m->plain->data, true, 0, opcode, len, NULL);
  if (len) memcpy(m->plain->data + hl, data, len);
  m->plain->len = hl + len;
  m->opcode = opcode;
  m->len = len;
  m->hdr_len = hl;
  return m;
}

void dx_msg_free(dx_msg *m) {
  if (!m) return;
  dx_sbuf_unref(m->plain);
  dx_sbuf_unref(m->deflated);
  free(m);
}

/* The compressed frame, made with this connection's (shared) compressor:
 * without context takeover its output depends only on the message. */
static dx_sbuf *deflated(dx_msg *m, dx_pmd *pmd) {
  if (m->deflated || m->deflate_failed) return m->deflated;
  const uint8_t *z;
  size_t zlen;
  if (dx_pmd_deflate(pmd, m->plain->data + m->hdr_len, m->len, &z, &zlen) != 0) {
    m->deflate_failed = true;
    return NULL;
  }
  size_t hl = dx_frame_header_size(zlen, false);
  dx_sbuf *b = dx_sbuf_new(hl + zlen);
  if (!b) {
    m->deflate_failed = true;
    return NULL;
  }
  dx_frame_write_header(b->data, true, DX_RSV1, m->opcode, zlen, NULL);
  memcpy(b->data + hl, z, zlen);
  b->len = hl + zlen;
  m->deflated = b;
  return b;
}

int dx_ws_send_msg(dx_ws *ws, dx_msg *m) {
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  const uint8_t *payload = m->plain->data + m->hdr_len;
  dx_proto *p = dx__ws_proto(ws);
  int rc = dx__ws_admit(ws, m->opcode, m->len);
  if (rc) return rc;
  rc = dx_proto_check_send(p, m->opcode);
  if (rc == DX_EINVAL) /* client role: frames need fresh masks */
    return dx_ws_send(ws, m->opcode, payload, m->len);
  if (rc) return rc;
  dx_sbuf *frame = m->plain;
  dx_pmd *pmd = dx_proto_get_deflate(p);
  if (pmd && dx_pmd_worth_it(pmd, m->len)) {
    /* Compressing with its own context: only this connection's compressor
     * can produce its bytes. */
    if (!dx_pmd_tx_shared(pmd)) return dx_ws_send(ws, m->opcode, payload, m->len);
    frame = deflated(m, pmd);
    if (!frame) return dx_ws_send(ws, m->opcode, payload, m->len);
  }
  rc = dx_stream_write_shared(&ws->stream, frame, 0, frame->len);
  return rc ? rc : dx__ws_sent(ws, m->opcode);
}
