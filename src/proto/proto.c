/* The sans-I/O WebSocket connection: frame parsing, reassembly, control
 * frames and the closing handshake (RFC 6455 sections 5-7). */
#include "duplex/proto.h"

#include <stdlib.h>
#include <string.h>

#include "common/bufcache.h"
#include "duplex/deflate.h"
#include "duplex/error.h"
#include "duplex/utf8.h"
#include "proto/pmd_rx.h"
#include "proto/proto_embed.h"

/* Reassembly buffers grow geometrically from this allocation size as bytes
 * arrive, so a peer that merely announces a huge frame cannot make us
 * allocate it. */
#define DX_MSG_MIN_ALLOC 4096

enum rx_phase { RX_HEADER = 0, RX_PAYLOAD = 1 };

/* A buffer allocated only while a message is being gathered: one pointer
 * in the connection instead of three words (idle connections stay small). */
typedef struct growbuf {
  size_t len, cap;
  uint8_t data[];
} growbuf;

/* What a buffer of `cap` bytes really took from the thread's cache. */
static size_t growbuf_alloc_size(size_t cap) { return dx_buf_size(sizeof(growbuf) + cap); }

static void growbuf_free(growbuf *g) {
  if (g) dx_buf_put(g, growbuf_alloc_size(g->cap));
}

static int growbuf_reserve(growbuf **gp, size_t n, uint64_t bound) {
  growbuf *g = *gp;
  size_t len = g ? g->len : 0, cap = g ? g->cap : 0;
  if (len + n <= cap) return 0;
  size_t need = len + n;
  /* x4: a 1 MiB message arriving in 512 KiB reads is copied into its
   * buffer once more at most, not at every doubling. */
  size_t total = g ? growbuf_alloc_size(cap) * 4 : DX_MSG_MIN_ALLOC;
  while (total - sizeof *g < need) total *= 4;
  size_t ncap = total - sizeof *g;
  /* Not a second buffer for the last few bytes of a message. */
  if (bound > ncap && bound - ncap <= ncap / 4) ncap = (size_t)bound;
  if (ncap > bound) ncap = (size_t)bound;
  if (ncap < need) ncap = need;
  size_t size = sizeof *g + ncap;
  growbuf *ng = dx_buf_get(&size);
  if (!ng) return DX_ENOMEM;
  /* Use what the cache's rounding gave, but not beyond the bound:
   * dx_proto_buffered reports what the message may still fill. */
  size_t got = size - sizeof *ng;
  ng->cap = got < bound ? got : (ncap > bound ? ncap : (size_t)bound);
  ng->len = len;
  if (len) memcpy(ng->data, g->data, len);
  growbuf_free(g);
  *gp = ng;
  return 0;
}

/* Append, growing geometrically (allocations of 4 KiB, 16 KiB, ...) but
 * never past `bound` bytes in all (the most the message can still bring).
 * Buffers come from the thread's cache (bufcache.h): large reassembly
 * buffers do not go back to the heap after every message. Bytes that were
 * read straight into the buffer's free room (dx_proto_read_into) are only
 * counted. */
static int growbuf_append(growbuf **gp, const uint8_t *p, size_t n, uint64_t bound) {
  if (n == 0) return 0;
  growbuf *g = *gp;
  if (g && p == g->data + g->len && n <= g->cap - g->len) {
    g->len += n;
    return 0;
  }
  int rc = growbuf_reserve(gp, n, bound);
  if (rc) return rc;
  g = *gp;
  memcpy(g->data + g->len, p, n);
  g->len += n;
  return 0;
}

/* Every connection carries one, so it is packed: the current frame's
 * header is kept as fields (not a padded dx_frame_header), a header split
 * across feeds shares its bytes with the payload counters (only one of
 * them is live at a time), and flags are bits. 104 bytes; 72 embedded in
 * a dx_ws, which ends before cb, user and the limits (proto_embed.h): a
 * connection's callbacks are always the same, its limits its server's or
 * client's. */
struct dx_proto {
  /* Current frame: RX_PAYLOAD uses the counters, RX_HEADER the bytes of a
   * header split across feeds. */
  union {
    struct {
      uint64_t payload_len; /* of the current frame */
      uint64_t frame_done;  /* payload bytes of the current frame processed */
    };
    uint8_t hdr[DX_FRAME_HEADER_MAX];
  };

  /* Current incoming data message. */
  /* Payload bytes of this message so far, as the application sees them
   * (inflated); for an uncompressed message these are also its bytes on
   * the wire. A compressed message's wire bytes are counted in its pmd
   * (pmd_rx.h). */
  uint64_t msg_total;
  growbuf *msg; /* reassembly (only when a message spans feeds/frames) */
  dx_pmd *pmd;  /* permessage-deflate, when negotiated (not owned) */
  growbuf *z;   /* a compressed message gathered for the shared inflater */
  uint8_t *ctl; /* a control frame split across feeds (rare) */

  uint8_t mask[4]; /* of the current frame, when masked */
  dx_utf8 utf8;
  int16_t error;
  uint8_t ctl_len;
  uint8_t hdr_have; /* header bytes buffered across feeds */

  unsigned phase : 1;
  unsigned role : 1;
  unsigned state : 3;
  unsigned allowed_rsv : 3;
  unsigned fh_opcode : 4; /* the current frame's opcode, FIN, MASK */
  unsigned fh_fin : 1;
  unsigned fh_masked : 1;
  unsigned stream_fragments : 1;
  unsigned auto_pong : 1;
  unsigned close_sent : 1;
  unsigned close_received : 1;
  unsigned msg_opcode : 4; /* 0 when no message is in progress */
  unsigned msg_compressed : 1;
  unsigned msg_started : 1;   /* stream mode: a fragment event was already delivered */
  unsigned tx_fragmented : 1; /* we are in the middle of sending a fragmented message */
  unsigned embedded : 1;      /* in a dx_ws: the struct ends here (proto_embed.h) */

  /* Stand-alone protos only (dx_proto_init). */
  const dx_proto_callbacks *cb; /* the caller's; must outlive us */
  void *user;
  uint64_t max_frame;
  uint64_t max_message;
};

size_t dx__proto_embedded_size(void) { return offsetof(struct dx_proto, cb); }

static inline const dx_proto_callbacks *cb_of(const dx_proto *p) {
  return p->embedded ? &dx__embedded_proto_cb : p->cb;
}

static inline void *user_of(const dx_proto *p) {
  return p->embedded ? (char *)(uintptr_t)p - dx__embedded_proto_back : p->user;
}

/* The limits are read where they are needed (at frame headers, for
 * reassembly and inflated output), not per byte. An embedder's may be
 * lowered while a message is in progress (an orphaned connection falls
 * back to the defaults): every check below also fails a message already
 * past its limit rather than let the subtraction wrap. */
static inline uint64_t max_message_of(const dx_proto *p) {
  return p->embedded ? dx__embedded_proto_opts(user_of(p))->max_message : p->max_message;
}

/* Both, with one look-up: every data frame's header checks both. */
typedef struct limits {
  uint64_t frame, message;
} limits;

static inline limits limits_of(const dx_proto *p) {
  if (!p->embedded) return (limits){p->max_frame, p->max_message};
  const dx_proto_opts *o = dx__embedded_proto_opts(user_of(p));
  return (limits){o->max_frame, o->max_message};
}

_Static_assert(sizeof(struct dx_proto) <= 112, "dx_proto grew past 112 bytes");
_Static_assert(offsetof(struct dx_proto, cb) <= 80, "the embedded dx_proto grew past 80 bytes");
_Static_assert(DX_FRAME_HEADER_MAX <= 2 * sizeof(uint64_t), "a split header fits the counters");

size_t dx_proto_size(void) { return sizeof(struct dx_proto); }

/* Everything from cb on is a stand-alone proto's: an embedded one has no
 * room for it. */
static void init_core(dx_proto *p, dx_role role, const dx_proto_opts *opts) {
  memset(p, 0, offsetof(struct dx_proto, cb));
  dx_proto_opts o = {0};
  if (opts) o = *opts;
  p->role = (unsigned)role & 1u;
  p->stream_fragments = o.stream_fragments;
  p->auto_pong = !o.no_auto_pong;
  p->allowed_rsv = o.allowed_rsv & 7;
  p->state = DX_PROTO_OPEN;
}

void dx_proto_init(dx_proto *p, dx_role role, const dx_proto_opts *opts,
                   const dx_proto_callbacks *cb, void *user) {
  init_core(p, role, opts);
  p->cb = cb;
  p->user = user;
  size_t max_message = opts && opts->max_message ? opts->max_message : DX_DEFAULT_MAX_MESSAGE;
  p->max_message = max_message;
  p->max_frame = opts && opts->max_frame ? opts->max_frame : max_message;
}

void dx__proto_init_embedded(dx_proto *p, dx_role role) {
  init_core(p, role, dx__embedded_proto_opts((char *)p - dx__embedded_proto_back));
  p->embedded = 1;
}

static void msg_reset(dx_proto *p) {
  p->msg_opcode = 0;
  p->msg_compressed = false;
  p->msg_started = false;
  p->msg_total = 0;
  growbuf_free(p->z);
  p->z = NULL;
  /* Release reassembly memory after each message: idle connections should
   * cost a few hundred bytes, not the size of their largest message. */
  growbuf_free(p->msg);
  p->msg = NULL;
}

void dx_proto_free(dx_proto *p) {
  msg_reset(p);
  free(p->ctl);
  p->ctl = NULL;
}

dx_proto_state dx_proto_get_state(const dx_proto *p) { return (dx_proto_state)p->state; }
dx_role dx_proto_role(const dx_proto *p) { return (dx_role)p->role; }
int dx_proto_error(const dx_proto *p) { return p->error; }
bool dx_proto_close_received(const dx_proto *p) { return p->close_received; }
bool dx_proto_close_sent(const dx_proto *p) { return p->close_sent; }
void dx_proto_set_allowed_rsv(dx_proto *p, unsigned rsv) { p->allowed_rsv = rsv & 7; }

void dx_proto_set_deflate(dx_proto *p, dx_pmd *pmd) {
  p->pmd = pmd;
  if (pmd)
    p->allowed_rsv |= DX_RSV1;
  else
    p->allowed_rsv &= ~DX_RSV1 & 7u;
}
size_t dx_proto_buffered(const dx_proto *p) {
  return (p->msg ? p->msg->cap : 0) + (p->z ? p->z->cap : 0) + (p->ctl ? DX_CONTROL_MAX : 0);
}

/* ---- sending ---- */

static int emit_frame(dx_proto *p, bool fin, unsigned rsv, unsigned opcode, const void *data,
                      size_t len) {
  uint8_t hdr[DX_FRAME_HEADER_MAX];
  uint8_t key[4];
  const uint8_t *mask = NULL;
  if (p->role == DX_ROLE_CLIENT) {
    cb_of(p)->mask_key(user_of(p), key);
    mask = key;
  }
  dx_output out = {
      .header = hdr,
      .header_len = dx_frame_write_header(hdr, fin, rsv, opcode, len, mask),
      .payload = data,
      .payload_len = len,
      .mask = mask,
  };
  return cb_of(p)->on_output(user_of(p), &out);
}

static int send_close_frame(dx_proto *p, uint16_t code, const char *reason, size_t reason_len) {
  uint8_t payload[DX_CONTROL_MAX];
  size_t n = 0;
  if (code) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason_len) memcpy(payload + 2, reason, reason_len);
    n = 2 + reason_len;
  }
  p->close_sent = true;
  if (p->state == DX_PROTO_OPEN) p->state = p->close_received ? DX_PROTO_CLOSED : DX_PROTO_CLOSING;
  return emit_frame(p, true, 0, DX_OP_CLOSE, payload, n);
}

int dx_proto_close(dx_proto *p, uint16_t code, const char *reason, size_t reason_len) {
  if (p->close_sent) return DX_ECLOSED;
  if (!reason) reason_len = 0;
  if (code == 0 ? reason_len != 0 : !dx_close_code_valid(code)) return DX_EINVAL;
  if (reason_len > DX_CONTROL_MAX - 2) return DX_EINVAL;
  /* The peer must fail a connection whose close reason is not UTF-8. */
  if (reason_len && !dx_utf8_valid((const uint8_t *)reason, reason_len)) return DX_EINVAL;
  return send_close_frame(p, code, reason, reason_len);
}

int dx_proto_send_frame(dx_proto *p, unsigned opcode, const void *data, size_t len,
                        unsigned flags) {
  if (p->close_sent || p->state >= DX_PROTO_CLOSED) return DX_ECLOSED;
  bool more = flags & DX_SEND_MORE;
  if (dx_opcode_is_control(opcode)) {
    if (more || opcode == DX_OP_CLOSE || len > DX_CONTROL_MAX ||
        (opcode != DX_OP_PING && opcode != DX_OP_PONG))
      return DX_EINVAL;
    return emit_frame(p, true, 0, opcode, data, len);
  }
  unsigned rsv = 0;
  if (opcode == DX_OP_CONT) {
    if (!p->tx_fragmented) return DX_ESTATE;
  } else if (opcode == DX_OP_TEXT || opcode == DX_OP_BINARY) {
    if (p->tx_fragmented) return DX_ESTATE;
    if (flags & DX_SEND_RSV1) rsv = DX_RSV1;
  } else {
    return DX_EINVAL;
  }
  int rc = emit_frame(p, !more, rsv, opcode, data, len);
  if (rc == 0) p->tx_fragmented = more;
  return rc;
}

int dx_proto_check_send(const dx_proto *p, unsigned opcode) {
  if (p->close_sent || p->state >= DX_PROTO_CLOSED) return DX_ECLOSED;
  if (opcode != DX_OP_TEXT && opcode != DX_OP_BINARY) return DX_EINVAL;
  if (p->role != DX_ROLE_SERVER) return DX_EINVAL; /* client frames need fresh masks */
  return p->tx_fragmented ? DX_ESTATE : 0;
}

struct dx_pmd *dx_proto_get_deflate(const dx_proto *p) {
  return p->pmd;
}

int dx_proto_send(dx_proto *p, unsigned opcode, const void *data, size_t len) {
  if (p->pmd && (opcode == DX_OP_TEXT || opcode == DX_OP_BINARY) && !p->tx_fragmented &&
      !p->close_sent && dx_pmd_worth_it(p->pmd, len)) {
    const uint8_t *z;
    size_t zlen;
    int rc = dx_pmd_deflate(p->pmd, data, len, &z, &zlen);
    if (rc) return rc;
    return dx_proto_send_frame(p, opcode, z, zlen, DX_SEND_RSV1);
  }
  return dx_proto_send_frame(p, opcode, data, len, 0);
}

/* ---- receiving ---- */

/* Fail the connection: queue a close frame with the code the error calls
 * for (once), remember the error, ignore everything after. */
static int fail(dx_proto *p, int err) {
  if (!p->close_sent) {
    const char *why = dx_strerror(err);
    size_t n = strlen(why);
    if (n > DX_CONTROL_MAX - 2) n = DX_CONTROL_MAX - 2;
    send_close_frame(p, dx_close_code_for_error(err), why, n);
  }
  p->state = DX_PROTO_FAILED;
  p->error = (int16_t)err;
  msg_reset(p);
  free(p->ctl);
  p->ctl = NULL;
  return err;
}

static void deliver(dx_proto *p, dx_event *ev) {
  const dx_proto_callbacks *cb = cb_of(p);
  if (cb->on_event) cb->on_event(user_of(p), ev);
}

/* The most compressed bytes one message may bring (see check_header). */
static uint64_t compressed_limit(uint64_t max_message) {
  return max_message + max_message / 8 + 4096;
}

/* Header-time checks that need connection context. */
static int check_header(dx_proto *p, const dx_frame_header *h) {
  /* Extensions (RFC 7692) may only mark the first frame of a data message. */
  unsigned allowed = (h->opcode == DX_OP_TEXT || h->opcode == DX_OP_BINARY) ? p->allowed_rsv : 0;
  int rc = dx_frame_check(h, allowed, p->role == DX_ROLE_SERVER);
  if (rc) return rc;
  if (dx_opcode_is_control(h->opcode)) return 0;
  if (h->opcode == DX_OP_CONT) {
    if (!p->msg_opcode) return DX_EFRAME_CONTINUATION;
  } else if (p->msg_opcode) {
    return DX_EFRAME_INTERLEAVED;
  }
  limits lim = limits_of(p);
  if (h->payload_len > lim.frame) return DX_EFRAME_TOO_BIG;
  bool compressed = h->opcode == DX_OP_CONT ? p->msg_compressed : (h->rsv & DX_RSV1) != 0;
  /* Compressed bytes are bounded too (a little above the limit: deflate
   * may expand incompressible data); the inflated size is checked as it
   * is produced. */
  uint64_t limit = compressed ? compressed_limit(lim.message) : lim.message;
  /* The message's bytes on the wire before this frame: every earlier
   * frame was processed whole, so uncompressed (or passed through
   * compressed, without a codec) that is msg_total. */
  uint64_t *wire = compressed && p->pmd ? dx__pmd_rx_wire(p->pmd) : NULL;
  if (wire && h->opcode != DX_OP_CONT) *wire = 0;
  uint64_t before = wire ? *wire : p->msg_total;
  if (before > limit || h->payload_len > limit - before) return DX_EMESSAGE_TOO_BIG;
  if (wire) *wire += h->payload_len;
  if (h->opcode != DX_OP_CONT) {
    p->msg_opcode = h->opcode & 15u;
    p->msg_compressed = compressed;
    dx_utf8_init(&p->utf8);
  }
  return 0;
}

static int handle_control(dx_proto *p, const uint8_t *data, size_t len) {
  dx_event ev = {.data = data, .len = len};
  switch (p->fh_opcode) {
  case DX_OP_PING:
    ev.type = DX_EV_PING;
    deliver(p, &ev);
    /* A transport already closing (DX_ECLOSED) needs no pong; anything
     * else (out of memory) fails the connection rather than vanish. */
    if (p->auto_pong && !p->close_sent) {
      int rc = emit_frame(p, true, 0, DX_OP_PONG, data, len);
      if (rc && rc != DX_ECLOSED) return rc;
    }
    return 0;
  case DX_OP_PONG:
    ev.type = DX_EV_PONG;
    deliver(p, &ev);
    return 0;
  default: /* close */
    break;
  }
  uint16_t code = DX_CLOSE_NO_STATUS;
  if (len == 1) return DX_ECLOSE_PAYLOAD;
  if (len >= 2) {
    code = (uint16_t)(data[0] << 8 | data[1]);
    if (!dx_close_code_valid(code)) return DX_ECLOSE_CODE;
    if (!dx_utf8_valid(data + 2, len - 2)) return DX_ECLOSE_REASON_UTF8;
    ev.data = data + 2;
    ev.len = len - 2;
  }
  p->close_received = true;
  /* Nothing may follow a close: a message cut short by it is dropped now
   * rather than held until the connection is freed. */
  msg_reset(p);
  ev.type = DX_EV_CLOSE;
  ev.close_code = (uint16_t)code;
  deliver(p, &ev);
  /* Echo the peer's code and reason unless the user answered with its own
   * in the callback (RFC 6455 section 5.5.1). */
  int rc = 0;
  if (!p->close_sent)
    rc = send_close_frame(p, code == DX_CLOSE_NO_STATUS ? 0 : code, (const char *)ev.data,
                          code == DX_CLOSE_NO_STATUS ? 0 : ev.len);
  if (p->state < DX_PROTO_CLOSED) p->state = DX_PROTO_CLOSED;
  return rc == DX_ECLOSED ? 0 : rc;
}

static int msg_append(dx_proto *p, const uint8_t *data, size_t len) {
  /* Never reserve beyond what this frame and message can still bring
   * (inflated output is only bounded by the message limit). */
  uint64_t bound = p->msg_compressed || !p->fh_fin
                       ? max_message_of(p) /* more frames may follow: grow geometrically */
                       : (p->msg ? p->msg->len : 0) + len + (p->payload_len - p->frame_done);
  return growbuf_append(&p->msg, data, len, bound);
}

/* Message bytes as the application sees them: uncompressed, or already
 * inflated. `msg_end` marks the last piece. */
static int plain_data(dx_proto *p, const uint8_t *data, size_t len, bool msg_end) {
  /* Without a codec (RSV1 allowed by hand) compressed bytes pass through
   * unvalidated: the caller inflates them. */
  bool raw_compressed = p->msg_compressed && !p->pmd;
  bool is_text = p->msg_opcode == DX_OP_TEXT && !raw_compressed;
  if (p->msg_compressed) {
    uint64_t max_message = max_message_of(p);
    uint64_t room = p->msg_total < max_message ? max_message - p->msg_total : 0;
    if (len > room) {
      /* Inflated output comes in pieces whose sizes follow the reads;
       * report whichever error comes first in the byte stream (bad UTF-8
       * before the limit, or the limit), so it does not depend on how
       * bytes arrived. */
      if (is_text && dx_utf8_feed(&p->utf8, data, (size_t)room) != 0) return DX_EUTF8;
      return DX_EMESSAGE_TOO_BIG;
    }
  }
  if (is_text) {
    if (dx_utf8_feed(&p->utf8, data, len) != 0) return DX_EUTF8;
    if (msg_end && !dx_utf8_complete(&p->utf8)) return DX_EUTF8;
  }
  p->msg_total += len;
  dx_event ev = {.opcode = p->msg_opcode, .compressed = raw_compressed};
  if (p->stream_fragments) {
    if (len == 0 && !msg_end) return 0;
    ev.type = DX_EV_FRAGMENT;
    ev.first = !p->msg_started;
    ev.fin = msg_end;
    ev.data = data ? data : (const uint8_t *)"";
    ev.len = len;
    p->msg_started = true;
    if (msg_end) p->msg_opcode = 0; /* allow a new message from the callback on */
    deliver(p, &ev);
    if (msg_end) msg_reset(p);
    return 0;
  }
  ev.type = DX_EV_MESSAGE;
  if (msg_end && !p->msg) {
    /* Zero-copy: the whole message is right here in the caller's buffer. */
    ev.data = data ? data : (const uint8_t *)"";
    ev.len = len;
  } else {
    int rc = msg_append(p, data, len);
    if (rc) return rc;
    if (!msg_end) return 0;
    /* An empty final piece may have no buffer at all (inflate's end). */
    ev.data = p->msg ? p->msg->data : data ? data : (const uint8_t *)"";
    ev.len = p->msg ? p->msg->len : 0;
  }
  p->msg_opcode = 0;
  deliver(p, &ev);
  msg_reset(p);
  return 0;
}

static int inflated(void *arg, const uint8_t *out, size_t n) {
  return plain_data(arg, out, n, false);
}

static int z_append(dx_proto *p, const uint8_t *data, size_t len) {
  return growbuf_append(&p->z, data, len, compressed_limit(max_message_of(p)));
}

/* A chunk of a data frame's (already unmasked) payload. `frame_end` says
 * this chunk completes the frame. */
static int handle_data(dx_proto *p, const uint8_t *data, size_t len, bool frame_end) {
  bool msg_end = frame_end && p->fh_fin;
  if (!p->msg_compressed || !p->pmd) return plain_data(p, data, len, msg_end);
  int rc;
  if (dx_pmd_rx_streaming(p->pmd)) {
    /* Our own inflater: inflate as the bytes arrive (fail-fast UTF-8). */
    rc = dx_pmd_inflate(p->pmd, data, len, msg_end, inflated, p);
  } else if (msg_end && !p->z) {
    rc = dx_pmd_inflate(p->pmd, data, len, true, inflated, p);
  } else {
    /* The shared inflater takes whole messages only. */
    rc = z_append(p, data, len);
    if (rc || !msg_end) return rc;
    rc = dx_pmd_inflate(p->pmd, p->z->data, p->z->len, true, inflated, p);
  }
  if (rc) return rc;
  return msg_end ? plain_data(p, NULL, 0, true) : 0;
}

/* A chunk of the current frame's payload (unmasked in place here). */
static int handle_payload(dx_proto *p, uint8_t *data, size_t len) {
  if (p->fh_masked) dx_mask(data, len, p->mask, p->frame_done);
  bool frame_end = p->frame_done + len == p->payload_len;
  bool whole = p->frame_done == 0 && frame_end;
  p->frame_done += len;
  if (!dx_opcode_is_control(p->fh_opcode)) return handle_data(p, data, len, frame_end);

  if (whole) return handle_control(p, data, len);
  /* A control frame split across feeds: gather it (at most 125 bytes). */
  if (!p->ctl) {
    p->ctl = malloc(DX_CONTROL_MAX);
    if (!p->ctl) return DX_ENOMEM;
    p->ctl_len = 0;
  }
  memcpy(p->ctl + p->ctl_len, data, len);
  p->ctl_len = (uint8_t)(p->ctl_len + len);
  if (!frame_end) return 0;
  int rc = handle_control(p, p->ctl, p->ctl_len);
  free(p->ctl);
  p->ctl = NULL;
  return rc;
}

/* Received bytes worth reading straight into the message buffer. */
#define DX_READ_INTO_MIN (64u * 1024u)

uint8_t *dx_proto_read_into(dx_proto *p, size_t *cap) {
  if (p->state == DX_PROTO_FAILED || p->close_received || p->phase != RX_PAYLOAD || !p->msg ||
      p->msg_compressed || p->stream_fragments || dx_opcode_is_control(p->fh_opcode))
    return NULL;
  uint64_t rest = p->payload_len - p->frame_done;
  if (rest < DX_READ_INTO_MIN) return NULL;
  /* Grow as msg_append would for the next 64 KiB (same bound). */
  uint64_t bound = !p->fh_fin ? max_message_of(p) : p->msg->len + rest;
  if (growbuf_reserve(&p->msg, DX_READ_INTO_MIN, bound) != 0) return NULL;
  growbuf *g = p->msg;
  size_t room = g->cap - g->len;
  *cap = rest < room ? (size_t)rest : room;
  return g->data + g->len;
}

int dx_proto_feed(dx_proto *p, uint8_t *buf, size_t len) {
  if (p->state == DX_PROTO_FAILED) return p->error;
  size_t pos = 0;
  while (pos < len) {
    if (p->close_received) return 0; /* RFC 6455 5.5.1: nothing after close */
    if (p->phase == RX_HEADER) {
      int rc;
      dx_frame_header fh;
      if (p->hdr_have == 0) {
        rc = dx_frame_parse_header(buf + pos, len - pos, &fh);
        if (rc > 0) {
          pos += (size_t)rc;
        } else if (rc == DX_EAGAIN) {
          size_t n = len - pos; /* < 14, or parse would have succeeded */
          memcpy(p->hdr, buf + pos, n);
          p->hdr_have = (uint8_t)n;
          return 0;
        } else {
          return fail(p, rc);
        }
      } else {
        size_t n = DX_FRAME_HEADER_MAX - p->hdr_have;
        if (n > len - pos) n = len - pos;
        memcpy(p->hdr + p->hdr_have, buf + pos, n);
        size_t have = p->hdr_have + n;
        rc = dx_frame_parse_header(p->hdr, have, &fh);
        if (rc == DX_EAGAIN) {
          p->hdr_have = (uint8_t)have;
          return 0;
        }
        if (rc < 0) return fail(p, rc);
        pos += (size_t)rc - p->hdr_have;
        p->hdr_have = 0;
      }
      rc = check_header(p, &fh);
      if (rc) return fail(p, rc);
      p->payload_len = fh.payload_len;
      p->frame_done = 0;
      memcpy(p->mask, fh.mask, 4);
      p->fh_opcode = fh.opcode & 15u;
      p->fh_fin = fh.fin;
      p->fh_masked = fh.masked;
      p->phase = RX_PAYLOAD;
      if (p->payload_len == 0) {
        p->phase = RX_HEADER;
        rc = handle_payload(p, buf + pos, 0);
        if (rc) return fail(p, rc);
      }
      continue;
    }
    uint64_t want = p->payload_len - p->frame_done;
    size_t n = len - pos;
    if (want < n) n = (size_t)want;
    if (n == want) p->phase = RX_HEADER;
    int rc = handle_payload(p, buf + pos, n);
    if (rc) return fail(p, rc);
    pos += n;
  }
  return 0;
}
