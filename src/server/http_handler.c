/* Plain HTTP handlers (duplex/http.h): routes, request bodies by
 * Content-Length, the handler call, the response, and the keep-alive
 * decision. request.c reads the requests and calls dx__server_serve_http;
 * the connection stays in DX_WS_HANDSHAKE ("reading a request") between
 * kept-alive requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "server/server_internal.h"

/* ---- routes ---- */

int dx_server_http(dx_server *srv, const char *path, dx_http_handler fn, void *user) {
  DX__CHECK_THREAD(srv->loop);
  if (srv->freed) return DX_ESTATE;
  if (!path || path[0] != '/' || !fn) return DX_EINVAL;
  size_t len = strlen(path);
  for (dx_http_route *r = srv->http_routes; r; r = r->next) {
    if (r->len == len && memcmp(r->path, path, len) == 0) {
      r->fn = fn;
      r->user = user;
      return 0;
    }
  }
  dx_http_route *r = calloc(1, sizeof *r);
  if (!r || !(r->path = strdup(path))) {
    free(r);
    return DX_ENOMEM;
  }
  r->len = len;
  r->prefix = path[len - 1] == '/';
  r->fn = fn;
  r->user = user;
  r->next = srv->http_routes;
  srv->http_routes = r;
  return 0;
}

int dx_server_http_pipelined(dx_server *srv, const char *path) {
  DX__CHECK_THREAD(srv->loop);
  if (!path) return DX_EINVAL;
  size_t len = strlen(path);
  for (dx_http_route *r = srv->http_routes; r; r = r->next) {
    if (r->len == len && memcmp(r->path, path, len) == 0) {
      r->pipelined = true;
      return 0;
    }
  }
  return DX_ENOENT;
}

const dx_http_route *dx__server_find_http(const dx_server *srv, const char *path, size_t len) {
  const dx_http_route *best = NULL;
  for (const dx_http_route *r = srv->http_routes; r; r = r->next) {
    if (r->len > len || memcmp(r->path, path, r->len) != 0) continue;
    if (!r->prefix) {
      if (r->len == len) return r;
    } else if (!best || r->len > best->len) {
      best = r;
    }
  }
  return best;
}

void dx__server_free_http_routes(dx_server *srv) {
  for (dx_http_route *r = srv->http_routes, *next; r; r = next) {
    next = r->next;
    free(r->path);
    free(r);
  }
  srv->http_routes = NULL;
}

/* ---- the request ---- */

/* Content-Length: digits only; several headers must agree. Returns 0 with
 * *len (0 when absent) or DX_EINVAL. */
static int content_length(const dx_http_request *req, size_t *len) {
  bool seen = false;
  *len = 0;
  for (size_t i = 0; i < req->num_headers; i++) {
    const dx_http_header *h = &req->headers[i];
    if (h->name.len != 14 || strncasecmp(h->name.ptr, "Content-Length", 14) != 0) continue;
    if (!h->value.len || h->value.len > 18) return DX_EINVAL;
    size_t v = 0;
    for (size_t j = 0; j < h->value.len; j++) {
      char c = h->value.ptr[j];
      if (c < '0' || c > '9') return DX_EINVAL;
      v = v * 10 + (size_t)(c - '0');
    }
    if (seen && v != *len) return DX_EINVAL;
    seen = true;
    *len = v;
  }
  return 0;
}

static bool wants_keep_alive(const dx_http_request *req) {
  const dx_http_header *h = req->headers;
  size_t n = req->num_headers;
  if (req->minor_version >= 1) return !dx_http_has_token(h, n, "Connection", "close");
  return dx_http_has_token(h, n, "Connection", "keep-alive");
}

static bool is(const dx_str *s, const char *lit) {
  size_t n = strlen(lit);
  return s->len == n && memcmp(s->ptr, lit, n) == 0;
}

/* NUL-terminate method, path, query and the headers in place (each is
 * followed by a separator the parser consumed), so the accessors return C
 * strings without copies. */
static void terminate(const dx_http_request *req) {
  ((char *)req->method.ptr)[req->method.len] = 0;
  ((char *)req->path.ptr)[req->path.len] = 0;
  if (req->query.ptr) ((char *)req->query.ptr)[req->query.len] = 0;
  dx__http_terminate(req->headers, req->num_headers);
}

/* After terminate(): the target's '?' is a NUL now. */
static void log_request(dx_ws *ws, const dx_http_request *req, int status) {
  char peer[64];
  dx_log_debug("%s: %s %s%s%s: %d", dx__ws_peer(ws, peer, sizeof peer), req->method.ptr,
               req->path.ptr, req->query.len ? "?" : "", req->query.len ? req->query.ptr : "",
               status);
}

bool dx__server_http_whole(const dx_ws *ws, const dx_http_request *req, size_t have,
                           size_t head_len) {
  const dx_server *srv = ws->owner;
  size_t body_len;
  return !dx_http_find(req->headers, req->num_headers, "Transfer-Encoding") &&
         content_length(req, &body_len) == 0 && body_len <= srv->opts.max_body &&
         body_len <= have - head_len;
}

size_t dx__server_serve_http(dx_ws *ws, const dx_http_route *route, dx_http_request *req,
                             uint8_t *buf, size_t have, size_t head_len) {
  dx_server *srv = ws->owner;
  const dx_http_header *h = req->headers;
  size_t n = req->num_headers, body_len;
  if (dx_http_find(h, n, "Transfer-Encoding")) {
    dx__server_reject(ws, req, 411,
                      "chunked request bodies are not supported: send a Content-Length");
    return 0;
  }
  if (content_length(req, &body_len) != 0) {
    dx__server_reject(ws, req, 400, "bad Content-Length");
    return 0;
  }
  if (body_len > srv->opts.max_body) {
    dx__server_reject(ws, req, 413, "request body too large");
    return 0;
  }
  size_t total = head_len + body_len;
  if (have < total) {
    /* Parsed again once `total` bytes are in; the handshake timeout
     * bounds the wait. */
    if (dx__gather_until(&dx__ws_pre(ws)->hs, buf, have, total) != 0) {
      dx__server_reject(ws, req, 500, "out of memory");
      return 0;
    }
    if (req->minor_version >= 1 && dx_http_has_token(h, n, "Expect", "100-continue"))
      dx_stream_write(&ws->stream, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
  }

  terminate(req);
  dx_http_req *r = calloc(1, sizeof *r);
  if (!r) {
    dx__server_reject(ws, req, 500, "out of memory");
    return 0;
  }
  *r = (dx_http_req){
      .ws = ws,
      .r = req,
      .body = buf + head_len,
      .body_len = body_len,
      .keep_alive =
          wants_keep_alive(req) && dx_stream_buffered(&ws->stream) <= dx__ws_cfg(ws)->max_buffered,
      .head = is(&req->method, "HEAD"),
      .http10 = req->minor_version == 0,
      .in_handler = true,
  };
  dx_deferred_init(&r->resume);
  r->pipelined = route->pipelined;
  if (ws->http_deferred) dx__server_http_queue(ws, r); /* served early: its answer waits */
  ws->http_served = true;
  dx_ws *outer = srv->in_handler;
  srv->in_handler = ws;
  route->fn(r, route->user);
  srv->in_handler = outer;
  r->in_handler = false;
  r->r = NULL; /* the request's strings are the connection's buffer: valid during the call */
  /* The handler may have freed the server (the connection is then
   * dropped) or shut it down. A deferred request is the connection's
   * (http_stream.c): the paths that drop the connection end it. */
  if (srv->freed || dx_stream_closing(&ws->stream)) {
    if (!r->deferred && !r->waits_turn) free(r); /* else the connection's line frees it */
    return 0;
  }
  if (r->waits_turn) { /* answered or not, it stays in line until its turn */
    if (!r->finished && !r->deferred && !r->status) {
      static const char msg[] = "the request handler did not respond\n";
      dx_http_respond(r, 500, "text/plain", NULL, msg, sizeof msg - 1);
    }
    log_request(ws, req, r->status);
    return total;
  }
  if (r->deferred && !r->finished) {
    /* Answered later: no timeout while it waits, pipelined bytes wait too. */
    log_request(ws, req, 0);
    dx__ws_disarm(ws);
    if (srv->shutting_down) {
      dx__server_http_gone(ws);
      dx__ws_begin_http(ws);
      dx__ws_finish(ws);
      return 0;
    }
    return total;
  }
  if (r->deferred) dx__server_http_detach(ws); /* answered within the handler after all */
  int status = r->status;
  bool keep_alive = r->keep_alive;
  if (!status) {
    char peer[64];
    dx_log_error("%s: %s %s: the handler did not respond; answering 500",
                 dx__ws_peer(ws, peer, sizeof peer), req->method.ptr, req->path.ptr);
    static const char msg[] = "the request handler did not respond\n";
    int rc = dx_http_respond(r, 500, "text/plain", NULL, msg, sizeof msg - 1);
    status = r->status;
    keep_alive = r->keep_alive;
    if (rc != 0) {
      free(r);
      dx_stream_abort(&ws->stream);
      return 0;
    }
  }
  free(r);
  log_request(ws, req, status);
  if (!keep_alive) {
    dx__ws_begin_http(ws);
    dx__ws_finish(ws);
    return 0;
  }
  dx__ws_arm_handshake(ws); /* bounds the next request, and an idle wait for it */
  return total;
}

/* ---- accessors ---- */

/* After the handler returned (a deferred request), the request's strings
 * are gone: the accessors answer "" (NULL for headers, an empty body). */
const char *dx_http_method(const dx_http_req *req) { return req->r ? req->r->method.ptr : ""; }

const char *dx_http_path(const dx_http_req *req) { return req->r ? req->r->path.ptr : ""; }

const char *dx_http_query(const dx_http_req *req) {
  return req->r && req->r->query.ptr ? req->r->query.ptr : "";
}

const char *dx_http_get_header(const dx_http_req *req, const char *name) {
  if (!req->r || !name) return NULL;
  const dx_http_header *h = dx_http_find(req->r->headers, req->r->num_headers, name);
  return h ? h->value.ptr : NULL;
}

const void *dx_http_body(const dx_http_req *req, size_t *len) {
  bool have = req->r && req->body_len;
  if (len) *len = have ? req->body_len : 0;
  return have ? (const void *)req->body : "";
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decode one byte of a query component at s[*i] (s[0..n)): returns it
 * and advances *i, or -1 for a bad escape. */
static int decode_byte(const char *s, size_t n, size_t *i) {
  char c = s[*i];
  if (c == '+') {
    (*i)++;
    return ' ';
  }
  if (c != '%') {
    (*i)++;
    return (unsigned char)c;
  }
  if (*i + 2 >= n) return -1;
  int hi = hexval(s[*i + 1]), lo = hexval(s[*i + 2]);
  if (hi < 0 || lo < 0) return -1;
  *i += 3;
  return hi << 4 | lo;
}

/* Does the encoded name s[0..n) decode to `name`? -1 for a bad escape. */
static int name_is(const char *s, size_t n, const char *name) {
  size_t i = 0, k = 0;
  while (i < n) {
    int c = decode_byte(s, n, &i);
    if (c < 0) return -1;
    if (!name[k] || (unsigned char)name[k] != c) return 0;
    k++;
  }
  return name[k] == 0;
}

int dx_http_query_param(const dx_http_req *req, const char *name, char *out, size_t cap) {
  if (!name || !out || !cap) return DX_EINVAL;
  const char *q = dx_http_query(req);
  size_t qn = strlen(q);
  for (size_t start = 0; start <= qn;) {
    const char *amp = memchr(q + start, '&', qn - start);
    size_t end = amp ? (size_t)(amp - q) : qn;
    const char *eq = memchr(q + start, '=', end - start);
    size_t name_end = eq ? (size_t)(eq - q) : end;
    int m = name_is(q + start, name_end - start, name);
    if (m < 0) return DX_EINVAL;
    if (m) {
      const char *v = eq ? eq + 1 : q + end;
      size_t vn = (size_t)(q + end - v), i = 0, len = 0;
      while (i < vn) {
        int c = decode_byte(v, vn, &i);
        if (c <= 0 || len + 1 >= cap) return DX_EINVAL; /* bad escape, %00, or no room */
        out[len++] = (char)c;
      }
      out[len] = 0;
      return len > INT32_MAX ? DX_EINVAL : (int)len;
    }
    if (!amp) break;
    start = end + 1;
  }
  return DX_ENOENT;
}

/* ---- the response ---- */

static bool header_text_ok(const char *s, bool lines) {
  if (!s) return true;
  if (!lines) return !strpbrk(s, "\r\n");
  size_t n = strlen(s);
  if (!n) return true;
  return n >= 2 && memcmp(s + n - 2, "\r\n", 2) == 0 && memcmp(s, "\r\n", 2) != 0 &&
         !strstr(s, "\r\n\r\n");
}

/* Queue the status line and headers; `framing` is the Content-Length or
 * Transfer-Encoding line, or "". Checks the arguments (DX_EINVAL), the
 * state (DX_ESTATE, DX_ECLOSED); sets req->status. */
int dx__server_http_head(dx_http_req *req, int status, const char *content_type,
                         const char *extra_headers, const char *framing) {
  dx_ws *ws = req->ws;
  if (req->status || req->finished) return DX_ESTATE;
  if (status < 200 || status > 599 || !header_text_ok(content_type, false) ||
      !header_text_ok(extra_headers, true))
    return DX_EINVAL;
  if (req->gone || dx_stream_closing(&ws->stream)) return DX_ECLOSED;
  dx_server *srv = ws->owner;
  if (srv->shutting_down) req->keep_alive = false;
  const char *conn = !req->keep_alive ? "Connection: close\r\n"
                     : !req->http10   ? ""
                                      : "Connection: keep-alive\r\n";
  size_t cap = 128 + strlen(framing) + (content_type ? strlen(content_type) : 0) +
               (extra_headers ? strlen(extra_headers) : 0);
  /* Into the stream's queue, or (waiting its turn) a copy kept with the answer. */
  uint8_t *dst = req->waits_turn ? malloc(cap) : dx_stream_reserve(&ws->stream, cap);
  if (!dst) return dx_stream_closing(&ws->stream) ? DX_ECLOSED : DX_ENOMEM;
  int n = snprintf((char *)dst, cap, "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s\r\n", status,
                   dx_http_reason(status), content_type ? "Content-Type: " : "",
                   content_type ? content_type : "", content_type ? "\r\n" : "", framing, conn,
                   extra_headers ? extra_headers : "");
  bool ok = n > 0 && (size_t)n < cap; /* cannot fail: cap counts every part */
  if (req->waits_turn) {
    int rc = ok ? dx__server_http_out(req, dst, (size_t)n) : DX_ENOMEM;
    free(dst);
    if (rc) return rc;
  } else {
    dx_stream_commit(&ws->stream, ok ? (size_t)n : 0);
    if (!ok) return DX_ENOMEM;
  }
  req->status = status;
  return 0;
}

int dx_http_respond(dx_http_req *req, int status, const char *content_type,
                    const char *extra_headers, const void *body, size_t len) {
  dx_ws *ws = req->ws;
  DX__CHECK_THREAD(dx_stream_loop(&ws->stream));
  if (req->status || req->finished) return DX_ESTATE;
  bool no_body = status == 204 || status == 304;
  if ((no_body && len) || (len && !body)) return DX_EINVAL;
  char clen[48] = "";
  if (!no_body) snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", len);
  int rc = dx__server_http_head(req, status, content_type, extra_headers, clen);
  if (rc) return rc;
  if (len && !req->head && dx__server_http_out(req, body, len) != 0) {
    dx_stream_abort(&ws->stream); /* the head went out without its body */
    return DX_ENOMEM;
  }
  req->finished = true;
  if (req->deferred && !req->in_handler) dx__server_http_complete(req);
  return 0;
}
