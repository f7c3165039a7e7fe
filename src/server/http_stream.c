/* Deferred and streamed answers of plain HTTP handlers (duplex/http.h):
 * dx_http_defer keeps the request past its handler (long-polling), the
 * dx_http_stream_* functions send a chunked (HTTP/1.1) or close-delimited
 * (HTTP/1.0) body in pieces (Server-Sent Events).
 *
 * A deferred request is held by its connection (dx__ws_pre(ws)->http_body with
 * ws->http_deferred), which stays in DX_WS_HANDSHAKE with its timer
 * stopped. Bytes read meanwhile (pipelined requests) are kept in ws->hs
 * unparsed and served once the answer is complete (from a deferred call,
 * never inside the caller's dx_http_respond). Every way the connection
 * goes (on_released, dx_server_free, dx_server_shutdown) goes through
 * dx__server_http_gone, which runs on_gone once unless answered. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/server_internal.h"

static dx_http_req *held(const dx_ws *ws) {
  return ws->http_deferred ? (dx_http_req *)dx__ws_pre(ws)->http_body : NULL;
}

void dx__server_http_detach(dx_ws *ws) {
  dx_http_req *req = held(ws);
  if (!req) return;
  dx_deferred_cancel(&req->resume);
  dx__ws_pre(ws)->http_body = NULL;
  ws->http_body_held = false;
  ws->http_deferred = false;
}

static void req_free(void *p) {
  dx_http_req *req = p;
  free(req->out);
  free(req);
}

/* The request will get no (more) answer: on_gone unless answered; freed at
 * the end of the turn, since callers up the stack (the handler, a stream
 * write) may still hold it. */
static void give_up(dx_ws *ws, dx_http_req *req) {
  bool tell = !req->finished && req->on_gone && !req->gone;
  req->gone = true;
  req->finished = true; /* no more answers */
  if (tell) req->on_gone(req, req->user);
  dx_loop_free_later(dx_stream_loop(&ws->stream), req, req_free);
}

/* Give up the requests waiting behind `req`, in order. */
static void drop_line(dx_ws *ws, dx_http_req *req) {
  dx_http_req *n = req->next_in_line;
  req->next_in_line = NULL;
  while (n) {
    dx_http_req *next = n->next_in_line;
    n->next_in_line = NULL;
    give_up(ws, n);
    n = next;
  }
}

void dx__server_http_gone(dx_ws *ws) {
  dx_http_req *req = held(ws);
  if (!req) return;
  dx__server_http_detach(ws);
  give_up(ws, req);
  drop_line(ws, req);
}

void dx__server_http_queue(dx_ws *ws, dx_http_req *req) {
  dx_http_req *t = held(ws);
  while (t->next_in_line) t = t->next_in_line;
  t->next_in_line = req;
  req->waits_turn = true;
}

bool dx__server_http_may_pipeline(const dx_ws *ws, const dx_http_route *next) {
  const dx_http_req *t = held(ws);
  const dx_server *srv = ws->owner;
  if (!t || (next && !next->pipelined) || srv->shutting_down) return false;
  for (int n = 1; t; t = t->next_in_line, n++)
    if (!t->pipelined || !t->keep_alive || t->gone || n >= DX_HTTP_PIPELINE_MAX) return false;
  return !dx_stream_closing(&ws->stream);
}

int dx__server_http_out(dx_http_req *req, const void *data, size_t len) {
  if (req->gone) return DX_ECLOSED;
  if (!req->waits_turn) return dx_stream_write(&req->ws->stream, data, len);
  if (req->out_cap - req->out_len < len) {
    size_t cap = req->out_cap ? req->out_cap : 256;
    while (cap - req->out_len < len) cap *= 2;
    uint8_t *b = realloc(req->out, cap);
    if (!b) return DX_ENOMEM;
    req->out = b;
    req->out_cap = cap;
  }
  memcpy(req->out + req->out_len, data, len);
  req->out_len += len;
  return 0;
}

size_t dx__server_http_unsent(const dx_http_req *req) {
  return req->waits_turn ? req->out_len : dx_stream_buffered(&req->ws->stream);
}

void dx__server_http_hold(dx_ws *ws, const uint8_t *data, size_t len) {
  if (!len) return;
  dx_gather *g = &dx__ws_pre(ws)->hs;
  size_t total = (size_t)g->len + len;
  if (total > g->cap) {
    uint8_t *b = total <= UINT32_MAX ? realloc(g->buf, total) : NULL;
    if (!b) {
      dx_stream_abort(&ws->stream);
      return;
    }
    g->buf = b;
    g->cap = (uint32_t)total;
  }
  memcpy(g->buf + g->len, data, len);
  g->len = (uint32_t)total;
  g->want = 0;
  /* Enough for a request head and a body waiting: read no more until the
   * answer is done (the peer's sends then block). */
  dx_server *srv = ws->owner;
  if (total > srv->limits.max_size + srv->opts.max_body) dx_stream_pause_read(&ws->stream);
}

/* The connection waits for its next request; serve those already read. */
static void resume(dx_loop *loop, void *arg) {
  (void)loop;
  dx_http_req *req = arg;
  dx_ws *ws = req->ws;
  dx_http_req *n = req->next_in_line;
  dx__server_http_detach(ws);
  free(req);
  if (n) { /* the next in line is first now: its answer so far goes out */
    n->waits_turn = false;
    dx__ws_pre(ws)->http_body = n;
    ws->http_body_held = true;
    ws->http_deferred = true;
    int rc = n->out_len ? dx_stream_write(&ws->stream, n->out, n->out_len) : 0;
    free(n->out);
    n->out = NULL;
    n->out_len = n->out_cap = 0;
    if (rc) {
      dx_stream_abort(&ws->stream); /* the connection goes: gone() gives up the line */
      return;
    }
    if (n->finished) {
      dx__server_http_complete(n);
      return;
    }
    /* Still waiting: there may be room in the line for what was kept. */
  } else {
    dx__ws_arm_handshake(ws);
  }
  if (!dx_stream_reading(&ws->stream)) dx_stream_resume_read(&ws->stream);
  if (dx__ws_pre(ws)->hs.len) dx__server_on_request_bytes(ws, NULL, 0);
}

void dx__server_http_complete(dx_http_req *req) {
  dx_ws *ws = req->ws;
  dx_server *srv = ws->owner;
  if (req->waits_turn) return; /* kept until the answers before it are complete */
  if (!req->keep_alive || srv->shutting_down || dx_stream_closing(&ws->stream)) {
    dx__server_http_detach(ws);
    req->gone = true;
    drop_line(ws, req);
    dx_loop_free_later(dx_stream_loop(&ws->stream), req, free);
    if (!dx_stream_closing(&ws->stream)) {
      dx__ws_begin_http(ws);
      dx__ws_finish(ws);
    }
    return;
  }
  /* Still held (bytes keep being kept, in order) until resume runs. */
  dx_loop_defer(srv->loop, &req->resume, resume, req);
}

int dx_http_defer(dx_http_req *req, void (*on_gone)(dx_http_req *req, void *user), void *user) {
  dx_ws *ws = req->ws;
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  if (!req->in_handler || req->deferred || req->status || req->finished) return DX_ESTATE;
  if (dx_stream_closing(&ws->stream)) return DX_ECLOSED;
  req->deferred = true;
  req->on_gone = on_gone;
  req->user = user;
  if (req->waits_turn) return 0; /* in line behind the connection's first request */
  dx__ws_pre(ws)->http_body = req;
  ws->http_body_held = true;
  ws->http_deferred = true;
  return 0;
}

int dx_http_stream_start(dx_http_req *req, int status, const char *content_type,
                         const char *extra_headers) {
  dx_ws *ws = req->ws;
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  if (req->status || req->finished) return DX_ESTATE;
  if (status == 204 || status == 304) return DX_EINVAL;
  /* HTTP/1.0 has no chunked encoding: the body ends with the connection. */
  if (req->http10) req->keep_alive = false;
  bool chunked = !req->http10;
  int rc = dx__server_http_head(req, status, content_type, extra_headers,
                                chunked ? "Transfer-Encoding: chunked\r\n" : "");
  if (rc) return rc;
  req->chunked = chunked;
  return 0;
}

static int write_state(const dx_http_req *req) {
  if (req->gone) return DX_ECLOSED;
  if (!req->status || req->finished) return DX_ESTATE;
  if (dx_stream_closing(&req->ws->stream)) return DX_ECLOSED;
  return 0;
}

/* "<hex len>\r\n" into p (room for 16 + 2); returns its length. By hand:
 * a stream of small events (SSE) pays this once per event. */
static int chunk_size_line(char *p, size_t len) {
  static const char hex[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = hex[len & 15];
    len >>= 4;
  } while (len);
  for (int i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  p[n] = '\r';
  p[n + 1] = '\n';
  return n + 2;
}

int dx_http_stream_write(dx_http_req *req, const void *data, size_t len) {
  dx_ws *ws = req->ws;
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  int rc = write_state(req);
  if (rc) return rc;
  if (len && !data) return DX_EINVAL;
  if (len && !req->head) {
    char size[24] = "";
    int n = req->chunked ? chunk_size_line(size, len) : 0;
    size_t add = len + (size_t)n + (req->chunked ? 2 : 0);
    /* As dx_ws_send: a piece into an empty queue always goes. */
    size_t unsent = dx__server_http_unsent(req);
    if (unsent && unsent + add > dx__ws_cfg(ws)->max_buffered) {
      char peer[64];
      dx_log_info("%s: streamed response past max_buffered (%zu bytes unsent); closing",
                  dx__ws_peer(ws, peer, sizeof peer), unsent);
      dx_stream_abort(&ws->stream);
      return DX_EBACKPRESSURE;
    }
    if ((n && dx__server_http_out(req, size, (size_t)n) != 0) ||
        dx__server_http_out(req, data, len) != 0 ||
        (req->chunked && dx__server_http_out(req, "\r\n", 2) != 0)) {
      dx_stream_abort(&ws->stream); /* a piece cut short cannot be taken back */
      return DX_ENOMEM;
    }
  }
  return dx__server_http_unsent(req) > dx__ws_cfg(ws)->low_water ? DX_BUFFERED : DX_SENT;
}

int dx_http_stream_end(dx_http_req *req) {
  dx_ws *ws = req->ws;
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  int rc = write_state(req);
  if (rc) return rc;
  if (req->chunked && !req->head && dx__server_http_out(req, "0\r\n\r\n", 5) != 0) {
    dx_stream_abort(&ws->stream);
    return DX_ENOMEM;
  }
  req->finished = true;
  if (req->deferred && !req->in_handler) dx__server_http_complete(req);
  return 0;
}

size_t dx_http_buffered(const dx_http_req *req) {
  return req->gone ? 0 : dx__server_http_unsent(req);
}

const char *dx_http_peer_str(const dx_http_req *req, char *buf, size_t cap) {
  return dx__ws_peer(req->ws, buf, cap);
}
