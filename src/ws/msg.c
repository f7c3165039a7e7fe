/* Prepared messages: frame (and compress) once, queue shared references
 * on every connection. */
#include <stdlib.h>
#include <string.h>

#include "io/loop_internal.h"
#include "ws/ws_internal.h"

/* zlib's smallest raw deflate window (dx_pmd_tx_shared_window gives 9..15). */
#define DX_MSG_MIN_BITS 9

struct dx_msg {
  unsigned opcode;
  size_t len;     /* payload bytes */
  size_t hdr_len; /* frame header in front of the payload in plain */
  dx_sbuf *plain; /* header + payload: an unmasked, uncompressed frame */
  /* Header (RSV1) + compressed payload, made on first need, one per window
   * size of the thread's shared compressors (9..15 bits): a peer that
   * limited our window shares bytes with every peer that chose the same. */
  dx_sbuf *deflated[16 - DX_MSG_MIN_BITS];
  uint16_t deflate_failed; /* bit per window */
  uint8_t deflate_count;   /* compressions made (tests) */
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
  for (size_t i = 0; i < sizeof m->deflated / sizeof m->deflated[0]; i++)
    dx_sbuf_unref(m->deflated[i]);
  free(m);
}

/* The compressed frame, made with this connection's shared compressor for
 * its window of `bits`: without context takeover its output depends only on
 * the message and the window. */
static dx_sbuf *deflated(dx_msg *m, dx_pmd *pmd, int bits) {
  int w = bits - DX_MSG_MIN_BITS;
  if (m->deflated[w] || (m->deflate_failed >> w & 1)) return m->deflated[w];
  const uint8_t *z;
  size_t zlen;
  if (dx_pmd_deflate(pmd, m->plain->data + m->hdr_len, m->len, &z, &zlen) != 0) {
    m->deflate_failed |= (uint16_t)(1u << w);
    return NULL;
  }
  size_t hl = dx_frame_header_size(zlen, false);
  dx_sbuf *b = dx_sbuf_new(hl + zlen);
  if (!b) {
    m->deflate_failed |= (uint16_t)(1u << w);
    return NULL;
  }
  dx_frame_write_header(b->data, true, DX_RSV1, m->opcode, zlen, NULL);
  memcpy(b->data + hl, z, zlen);
  b->len = hl + zlen;
  m->deflated[w] = b;
  m->deflate_count++;
  return b;
}

unsigned dx__msg_deflate_count(const dx_msg *m) { return m->deflate_count; }

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
    int bits = dx_pmd_tx_shared_window(pmd);
    if (!bits) return dx_ws_send(ws, m->opcode, payload, m->len);
    frame = deflated(m, pmd, bits);
    if (!frame) return dx_ws_send(ws, m->opcode, payload, m->len);
  }
  rc = dx_stream_write_shared(&ws->stream, frame, 0, frame->len);
  return rc ? rc : dx__ws_sent(ws, m->opcode);
}
