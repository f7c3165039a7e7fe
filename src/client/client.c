/* The WebSocket client: resolve, connect (optionally through an HTTP
 * CONNECT proxy), opening handshake, then the shared connection code; and
 * reconnect with exponential backoff and full jitter. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/resolve.h"
#include "common/log.h"
#include "duplex/client.h"
#include "duplex/utf8.h"
#include "io/loop_internal.h"
#include "proto/http_chars.h"
#include "ws/ws_internal.h"

#define DX_CLIENT_MAX_RESPONSE 16384
#define DX_CLIENT_MAX_HEADERS 64

enum { HS_PROXY = 1, HS_UPGRADE = 2 };

struct dx_client {
  dx_loop *loop;
  dx_url url;
  dx_url proxy;
  bool use_proxy;
  dx_ws_route route;
  dx_ws_config cfg;
  dx_client_opts opts; /* strings below are our copies */
  char *origin, *headers;
  char *proxy_auth; /* "Basic ..." from user:pass@ in the proxy URL, or NULL */
  /* The user's on_close: ours runs first (see client_on_close). */
  void (*user_on_close)(dx_ws *ws, int code, const char *reason, size_t reason_len, bool clean,
                        void *user);
  char **protocols;
  size_t nprotocols;
  uint16_t *final_codes;
  char ext_offer[200]; /* Sec-WebSocket-Extensions we send, or "" */
  dx_pmd_shared *pmd_shared;
  SSL_CTX *tls_ctx;  /* wss:// */
  dx_deferred first; /* the first attempt starts after dx_connect returns */

  dx_ws *ws;      /* current attempt, any phase */
  dx_timer timer; /* connect deadline, then reconnect wait */
  dx_resolve *resolving;
  struct addrinfo *addrs, *next_addr;
  int fd; /* socket while TCP-connecting, else -1 */
  dx_io conn_io;
  int last_connect_errno;
  uint8_t hs_step;
  char key[DX_WS_KEY_LEN + 1];

  int attempt;        /* failed attempts in a row */
  uint64_t opened_at; /* loop ms the current connection opened, 0 if not */
  uint64_t deadline;  /* loop ms: end of the current attempt's connect_timeout */
  bool waiting;       /* reconnect timer running */
  bool user_closed;   /* dx_client_close, or a close this side started: no reconnect */
  bool done;
  bool freed;
};

static void start_attempt(dx_client *c);

/* The client is finished: tell the user once. */
static void set_done(dx_client *c) {
  if (c->done) return;
  c->done = true;
  if (c->opts.on_done && !c->freed) c->opts.on_done(c, c->route.user);
}
static void schedule_reconnect(dx_client *c);

/* ---- helpers ---- */

static void drop_addrs(dx_client *c) {
  if (c->addrs) freeaddrinfo(c->addrs);
  c->addrs = c->next_addr = NULL;
}

static void stop_connecting(dx_client *c) {
  if (c->resolving) {
    dx_resolve_cancel(c->resolving);
    c->resolving = NULL;
  }
  if (c->fd >= 0) {
    dx_io_stop(&c->conn_io);
    close(c->fd);
    c->fd = -1;
  }
  drop_addrs(c);
}

static void release_ws_memory(dx_client *c, dx_ws *ws) {
  free(ws->strs);
  ws->strs = NULL;
  dx_loop_free_later(c->loop, ws, free);
}

/* The attempt is over (its on_close was delivered and the stream, if any,
 * is gone): decide whether to try again. */
static void attempt_over(dx_client *c, dx_ws *ws) {
  int code = ws->close_code;
  if (c->ws == ws) c->ws = NULL;
  release_ws_memory(c, ws);
  if (c->freed) return;
  uint64_t now = dx_loop_now(c->loop);
  if (c->opened_at && now - c->opened_at >= (uint64_t)c->opts.reconnect_reset) c->attempt = 0;
  c->opened_at = 0;
  bool final = false;
  for (const uint16_t *f = c->final_codes; f && *f; f++)
    if (*f == code) final = true;
  if (c->user_closed || !c->opts.reconnect || final) {
    if (final && c->opts.reconnect && !c->user_closed)
      dx_log_info("%s: closed with %d, a final code: not reconnecting", c->url.host, code);
    set_done(c);
    return;
  }
  schedule_reconnect(c);
}

/* Fail the attempt in progress with err/msg. */
static void attempt_fail(dx_client *c, int err, const char *msg) {
  dx_ws *ws = c->ws;
  stop_connecting(c);
  dx_timer_stop(&c->timer);
  if (!ws) return;
  dx_log_debug("%s:%u: %s", c->url.host, c->url.port, msg);
  dx__ws_notify_close(ws, DX_CLOSE_ABNORMAL, NULL, 0, false, err, msg);
  if (c->freed) return;
  if (ws->stream.tp) {
    dx_stream_abort(&ws->stream); /* on_released finishes the attempt */
  } else {
    attempt_over(c, ws);
  }
}

/* ---- handshake ---- */

static int write_upgrade_request(dx_client *c, dx_ws *ws) {
  uint8_t nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return DX_ESYS;
  dx_ws_make_key(nonce, c->key);
  char host[300];
  bool default_port = c->url.port == (c->url.tls ? 443 : 80);
  snprintf(host, sizeof host, "%s%s%s", c->url.ipv6 ? "[" : "", c->url.host,
           c->url.ipv6 ? "]" : "");
  if (!default_port) snprintf(host + strlen(host), sizeof host - strlen(host), ":%u", c->url.port);
  dx_client_request r = {
      .host = host,
      .path = c->url.target,
      .key = c->key,
      .protocols = (const char *const *)c->protocols,
      .num_protocols = c->nprotocols,
      .origin = c->origin,
      .extra_headers = c->headers,
      .extensions = c->ext_offer[0] ? c->ext_offer : NULL,
  };
  size_t cap = 1024 + strlen(c->url.target) + (c->headers ? strlen(c->headers) : 0) +
               (c->origin ? strlen(c->origin) : 0) + strlen(c->ext_offer);
  for (size_t i = 0; i < c->nprotocols; i++) cap += strlen(c->protocols[i]) + 2;
  uint8_t *buf = dx_stream_reserve(&ws->stream, cap);
  if (!buf) return DX_ENOMEM;
  int n = dx_ws_build_request((char *)buf, cap, &r);
  dx_stream_commit(&ws->stream, n > 0 ? (size_t)n : 0);
  return n > 0 ? 0 : n;
}

static void write_connect_request(dx_client *c, dx_ws *ws) {
  char req[1400];
  const char *l = c->url.ipv6 ? "[" : "", *r = c->url.ipv6 ? "]" : "";
  int n = snprintf(req, sizeof req, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s\r\n",
                   l, c->url.host, r, c->url.port, l, c->url.host, r, c->url.port,
                   c->proxy_auth ? "Proxy-Authorization: " : "", c->proxy_auth ? c->proxy_auth : "",
                   c->proxy_auth ? "\r\n" : "");
  /* dx_connect bounds the credentials so that this fits. */
  dx_stream_write(&ws->stream, req, (size_t)n < sizeof req ? (size_t)n : sizeof req - 1);
}

typedef struct response_parse {
  dx_http_response resp;
  dx_http_limits lim;
} response_parse;

static int parse_response(const uint8_t *buf, size_t len, void *arg) {
  response_parse *p = arg;
  p->resp.num_headers = DX_CLIENT_MAX_HEADERS;
  return dx_http_parse_response((const char *)buf, len, &p->resp, &p->lim);
}

static void on_handshake_read(dx_ws *ws, uint8_t *data, size_t len) {
  dx_client *c = ws->owner;
  dx_http_header headers[DX_CLIENT_MAX_HEADERS];
  response_parse p = {
      .resp = {.headers = headers},
      .lim = {.max_size = DX_CLIENT_MAX_RESPONSE, .max_headers = DX_CLIENT_MAX_HEADERS},
  };
  dx_http_response resp;
  uint8_t *buf;
  size_t have;
  int rc =
      dx__gather_feed(&ws->hs, data, len, DX_CLIENT_MAX_RESPONSE, parse_response, &p, &buf, &have);
  if (rc == DX_EAGAIN) return;
  if (rc == DX_ENOMEM) {
    attempt_fail(c, DX_ENOMEM, "out of memory");
    return;
  }
  resp = p.resp;
  char msg[512];
  if (rc < 0) {
    snprintf(msg, sizeof msg, "bad handshake response from the %s: %s",
             c->hs_step == HS_PROXY ? "proxy" : "server", dx_strerror(rc));
    attempt_fail(c, rc, msg);
    return;
  }
  uint8_t *rest = buf + rc;
  size_t rest_len = have - (size_t)rc;

  if (c->hs_step == HS_PROXY) {
    /* Any 2xx opens the tunnel (RFC 9110 section 9.3.6). */
    if (resp.status < 200 || resp.status > 299) {
      snprintf(msg, sizeof msg, "the proxy refused CONNECT to %s:%u with HTTP status %d",
               c->url.host, c->url.port, resp.status);
      attempt_fail(c, DX_EPROXY, msg);
      return;
    }
    c->hs_step = HS_UPGRADE;
    /* `rest` may point into ws->hs (a 200 that came in pieces): keep that
     * buffer until `rest` was used; the call below gathers into a new one.
     * (Dropping it first was a use-after-free.) */
    uint8_t *old_hs = ws->hs.buf;
    ws->hs = (dx_gather){0};
    if (c->tls_ctx && dx_stream_start_tls(&ws->stream, c->tls_ctx, false, c->url.host) != 0) {
      free(old_hs);
      attempt_fail(c, DX_ETLS, "could not start TLS through the proxy tunnel");
      return;
    }
    int wr = write_upgrade_request(c, ws);
    if (wr) {
      free(old_hs);
      attempt_fail(c, wr, "could not write the upgrade request");
      return;
    }
    if (rest_len) on_handshake_read(ws, rest, rest_len);
    free(old_hs);
    return;
  }

  const char *offered_ext[] = {c->ext_offer[0] ? "permessage-deflate" : NULL, NULL};
  dx_upgrade_response up;
  rc = dx_upgrade_verify(&resp, c->key, (const char *const *)c->protocols, c->nprotocols,
                         offered_ext, &up);
  if (rc) {
    if (rc == DX_EHTTP_STATUS)
      snprintf(msg, sizeof msg, "handshake rejected with HTTP status %d", resp.status);
    else
      snprintf(msg, sizeof msg, "bad handshake response: %s", dx_strerror(rc));
    attempt_fail(c, rc, msg);
    return;
  }
  if (up.num_extensions) {
    dx_pmd_params pp;
    if (up.num_extensions > 1 || dx_pmd_client_accept(&up.extensions[0], &c->opts.deflate, &pp)) {
      attempt_fail(c, DX_EWS_EXTENSIONS,
                   "bad handshake response: the server's permessage-deflate parameters "
                   "were not offered or are invalid");
      return;
    }
    if ((!c->pmd_shared && !(c->pmd_shared = dx_pmd_shared_new())) ||
        !(ws->pmd = dx_pmd_new(&pp, &c->opts.deflate, c->pmd_shared))) {
      attempt_fail(c, DX_ENOMEM, "out of memory");
      return;
    }
  }
  /* Keep "path\0query\0protocol\0" like the server side does. */
  const char *target = c->url.target, *q = strchr(target, '?');
  size_t plen = q ? (size_t)(q - target) : strlen(target);
  const char *query = q ? q + 1 : "";
  const char *proto = up.protocol_index >= 0 ? c->protocols[up.protocol_index] : NULL;
  size_t ql = strlen(query), pl = proto ? strlen(proto) : 0;
  char *s = malloc(plen + ql + pl + 3);
  if (!s) {
    attempt_fail(c, DX_ENOMEM, "out of memory");
    return;
  }
  memcpy(s, target, plen);
  s[plen] = 0;
  memcpy(s + plen + 1, query, ql + 1);
  char *ps = s + plen + 1 + ql + 1;
  if (proto) memcpy(ps, proto, pl);
  ps[pl] = 0;
  ws->strs = s;
  /* Response headers are readable with dx_ws_header during on_open. */
  dx__http_terminate(headers, resp.num_headers);
  dx__ws_set_request(ws, headers, resp.num_headers);
  c->opened_at = dx_loop_now(c->loop);
  dx_log_debug("%s:%u: connected%s%s", c->url.host, c->url.port, proto ? ", protocol " : "",
               proto ? proto : "");
  dx__ws_open(ws, DX_ROLE_CLIENT, &c->route, rest, rest_len);
  dx__ws_set_request(NULL, NULL, 0); /* the headers live on this stack */
  dx__ws_drop_handshake(ws);
}

static void on_released(dx_ws *ws) { attempt_over(ws->owner, ws); }

/* Runs before the user's on_close. A close this side started -- the
 * application's dx_ws_close on the client's connection, not only
 * dx_client_close -- means "no reconnect", like a close by the user: our
 * close frame went out before the peer's arrived (when the peer closes
 * first, our echo is only sent after this notification) and the protocol
 * did not fail (a protocol error sends a close frame too). */
static void client_on_close(dx_ws *ws, int code, const char *reason, size_t reason_len, bool clean,
                            void *user) {
  dx_client *c = ws->owner;
  if (ws->proto_ready) {
    dx_proto *p = dx__ws_proto(ws);
    if (dx_proto_close_sent(p) && dx_proto_get_state(p) != DX_PROTO_FAILED) c->user_closed = true;
  }
  if (c->user_on_close) c->user_on_close(ws, code, reason, reason_len, clean, user);
}

static const dx_ws_owner_ops client_ops = {on_handshake_read, on_released, false, NULL};

dx_client *dx_ws_client(const dx_ws *ws) {
  return ws->ops == &client_ops ? (dx_client *)ws->owner : NULL;
}

/* ---- TCP connect ---- */

static void try_next_address(dx_client *c);

static void connected(dx_client *c) {
  int fd = c->fd;
  dx_io_stop(&c->conn_io);
  c->fd = -1;
  drop_addrs(c);
  dx_timer_stop(&c->timer);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  dx_ws *ws = c->ws;
  /* Through a proxy, TLS starts once the tunnel is up. */
  SSL_CTX *tls = c->use_proxy ? NULL : c->tls_ctx;
  if (dx__ws_init(ws, c->loop, fd, &client_ops, c, &c->cfg, tls, c->url.host) != 0) {
    close(fd);
    attempt_fail(c, DX_ESYS, "could not set up the connection");
    return;
  }
  /* connect_timeout bounds DNS + TCP + handshake together: the handshake
   * gets what is left, not a fresh period (dx__ws_init armed a full one). */
  uint64_t now = dx_loop_now(c->loop);
  if (c->opts.connect_timeout > 0)
    dx_timer_start(&ws->timer, c->deadline > now ? c->deadline - now : 0, 0);
  if (c->use_proxy) {
    c->hs_step = HS_PROXY;
    write_connect_request(c, ws);
  } else {
    c->hs_step = HS_UPGRADE;
    int rc = write_upgrade_request(c, ws);
    if (rc) attempt_fail(c, rc, "could not write the upgrade request");
  }
}

static void on_connect_io(dx_io *io, unsigned events) {
  (void)events;
  dx_client *c = dx_container_of(io, dx_client, conn_io);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) {
    connected(c);
    return;
  }
  c->last_connect_errno = err;
  dx_io_stop(&c->conn_io);
  close(c->fd);
  c->fd = -1;
  try_next_address(c);
}

static void try_next_address(dx_client *c) {
  while (c->next_addr) {
    struct addrinfo *ai = c->next_addr;
    c->next_addr = ai->ai_next;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      c->last_connect_errno = errno;
      continue;
    }
    c->fd = fd;
    /* Before connect: a connect that completes at once goes straight to
     * connected(), which stops this watcher (it was never set up on the
     * first attempt, and dx_io_stop dereferenced its NULL loop). */
    dx_io_init(c->loop, &c->conn_io, fd, on_connect_io);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      connected(c);
      return;
    }
    if (errno == EINPROGRESS && dx_io_start(&c->conn_io, DX_WRITABLE) == 0) return;
    c->last_connect_errno = errno;
    close(fd);
    c->fd = -1;
  }
  const dx_url *target = c->use_proxy ? &c->proxy : &c->url;
  char msg[400];
  int e = c->last_connect_errno;
  snprintf(msg, sizeof msg, "%s %s:%u: %s",
           c->use_proxy ? "cannot reach the proxy at" : "cannot connect to", target->host,
           target->port, e == ECONNREFUSED ? "connection refused" : strerror(e));
  attempt_fail(c, e == ECONNREFUSED ? DX_ECONNREFUSED : DX_ECONNECT, msg);
}

static void on_resolved(void *user, struct addrinfo *res, int gai_err, int sys_err) {
  dx_client *c = user;
  c->resolving = NULL;
  if (!res) {
    const dx_url *target = c->use_proxy ? &c->proxy : &c->url;
    char msg[400];
    snprintf(msg, sizeof msg, "DNS lookup failed for %s: %s", target->host,
             gai_err == EAI_SYSTEM ? strerror(sys_err) : gai_strerror(gai_err));
    attempt_fail(c, DX_ERESOLVE, msg);
    return;
  }
  c->addrs = c->next_addr = res;
  c->last_connect_errno = ECONNREFUSED;
  try_next_address(c);
}

/* ---- attempts and reconnect ---- */

static void on_timer(dx_timer *t) {
  dx_client *c = dx_container_of(t, dx_client, timer);
  if (c->waiting) {
    c->waiting = false;
    start_attempt(c);
    return;
  }
  char msg[300];
  snprintf(msg, sizeof msg, "timed out connecting to %s:%u after %d ms", c->url.host, c->url.port,
           c->opts.connect_timeout);
  attempt_fail(c, DX_ETIMEDOUT, msg);
}

static void start_attempt(dx_client *c) {
  dx_ws *ws = calloc(1, dx__ws_alloc_size(c->route.h.data_size));
  if (!ws) {
    dx_log_error("%s: out of memory", c->url.host);
    schedule_reconnect(c);
    return;
  }
  ws->ops = &client_ops;
  ws->owner = c;
  ws->cfg = &c->cfg;
  ws->route = &c->route;
  ws->phase = DX_WS_HANDSHAKE;
  c->ws = ws;
  c->hs_step = 0;
  if (c->opts.connect_timeout > 0) {
    dx_timer_start(&c->timer, (uint64_t)c->opts.connect_timeout, 0);
    c->deadline = dx_loop_now(c->loop) + (uint64_t)c->opts.connect_timeout;
  }
  const dx_url *target = c->use_proxy ? &c->proxy : &c->url;
  c->resolving = dx_resolve_start(c->loop, target->host, target->port, on_resolved, c);
}

static void start_first(dx_loop *loop, void *arg) {
  (void)loop;
  start_attempt(arg);
}

static void schedule_reconnect(dx_client *c) {
  c->attempt++;
  if (c->opts.reconnect_attempts > 0 && c->attempt > c->opts.reconnect_attempts) {
    dx_log_info("%s: giving up after %d attempts", c->url.host, c->attempt - 1);
    set_done(c);
    return;
  }
  double cap = c->opts.reconnect_initial;
  for (int i = 1; i < c->attempt && cap < c->opts.reconnect_max; i++)
    cap *= c->opts.reconnect_factor;
  if (cap > c->opts.reconnect_max) cap = c->opts.reconnect_max;
  uint32_t r = 0;
  RAND_bytes((unsigned char *)&r, sizeof r);
  int delay = (int)((double)r / 4294967296.0 * (cap + 1)); /* uniform in [0, cap] */
  if (c->opts.on_reconnecting) c->opts.on_reconnecting(c, c->attempt, delay, c->route.user);
  if (c->freed || c->user_closed) {
    set_done(c);
    return;
  }
  c->waiting = true;
  dx_timer_start(&c->timer, (uint64_t)delay, 0);
}

/* ---- public API ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Reasons that name the offending value live here until the next call. */
static _Thread_local char why_buf[300];

static const char *bad_value(const char *what, const char *v, const char *rule) {
  char shown[60];
  size_t i = 0;
  for (; v[i] && i < 40; i++) shown[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
  shown[i] = 0;
  snprintf(why_buf, sizeof why_buf, "bad %s '%s%s': %s", what, shown, v[i] ? "..." : "", rule);
  return why_buf;
}

/* A header value: visible ASCII, UTF-8 or tabs/spaces, no other control
 * characters (a CR or LF would end the line; the rest are refused by
 * RFC 9110 section 5.5 and by servers). */
static bool field_value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
  }
  return true;
}

/* Headers the client writes itself: a second copy breaks the handshake. */
static const char *const own_headers[] = {"Host",
                                          "Upgrade",
                                          "Connection",
                                          "Sec-WebSocket-Key",
                                          "Sec-WebSocket-Version",
                                          "Sec-WebSocket-Protocol",
                                          "Sec-WebSocket-Extensions",
                                          NULL};

/* Check what goes into the upgrade request now, so that a bad option is
 * a clear error from dx_connect, not a failure of every attempt. */
static const char *check_request_options(const dx_client *c) {
  for (size_t i = 0; i < c->nprotocols; i++) {
    const char *p = c->protocols[i];
    if (!dx__http_is_token(p, strlen(p)))
      return bad_value("subprotocol", p,
                       "a name is one token (letters, digits and !#$%&'*+-.^_`|~, "
                       "no spaces or commas)");
    for (size_t j = 0; j < i; j++)
      if (strcmp(c->protocols[j], p) == 0) return bad_value("subprotocol", p, "offered twice");
  }
  if (c->origin && (!c->origin[0] || !field_value_ok(c->origin, strlen(c->origin))))
    return bad_value("Origin", c->origin,
                     c->origin[0] ? "control characters are not allowed" : "empty");
  for (const char *h = c->headers; h && *h;) {
    const char *end = strstr(h, "\r\n");
    size_t n = end ? (size_t)(end - h) : strlen(h);
    char line[80];
    snprintf(line, sizeof line, "%.*s", (int)(n < 70 ? n : 70), h);
    if (!end) return bad_value("header", line, "each line must end in \\r\\n");
    const char *colon = memchr(h, ':', n);
    if (!colon || colon == h || !dx__http_is_token(h, (size_t)(colon - h)))
      return bad_value("header", line,
                       n ? "expected 'Name: value' with a name of letters, digits and -"
                         : "empty line");
    if (!field_value_ok(colon + 1, n - (size_t)(colon + 1 - h)))
      return bad_value("header", line, "control characters (CR, LF, ...) in the value");
    for (const char *const *o = own_headers; *o; o++)
      if (strlen(*o) == (size_t)(colon - h) && strncasecmp(*o, h, (size_t)(colon - h)) == 0)
        return bad_value("header", line,
                         "the client sets this header itself (use the options for "
                         "subprotocols and extensions)");
    h = end + 2;
  }
  return NULL;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* "http://[user:pass@]host:port[/]": the proxy's address into c->proxy and
 * any credentials into c->proxy_auth ("Basic base64(user:pass)", the
 * userinfo percent-decoded). Returns NULL or the reason. */
static const char *parse_proxy(dx_client *c, const char *proxy) {
  static const char expected[] = "bad proxy address (expected http://[user:pass@]host:port)";
  const char *p = proxy;
  if (strncasecmp(p, "http://", 7) == 0) {
    p += 7;
  } else if (strstr(p, "://")) {
    return "bad proxy address: only http:// proxies (HTTP CONNECT) are supported";
  }
  size_t alen = strcspn(p, "/?#");
  if (p[alen] && strcmp(p + alen, "/") != 0) return expected; /* no path */
  const char *at = NULL;
  for (const char *q = p; q < p + alen; q++)
    if (*q == '@') at = q;
  if (at) {
    size_t ulen = (size_t)(at - p);
    if (ulen > 255) return "bad proxy address: user name and password too long";
    char user[256];
    size_t n = 0;
    for (size_t i = 0; i < ulen; i++) {
      int ch = (unsigned char)p[i];
      if (ch == '%') {
        int hi = i + 2 < ulen ? hexval(p[i + 1]) : -1, lo = i + 2 < ulen ? hexval(p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
          return "bad proxy address: bad %-escape in the user name or password";
        ch = hi << 4 | lo;
        i += 2;
      }
      user[n++] = (char)ch;
    }
    /* base64 of 255 bytes is 340 characters and a NUL */
    unsigned char b64[4 * ((sizeof user + 2) / 3) + 1];
    int bn = EVP_EncodeBlock(b64, (const unsigned char *)user, (int)n);
    if (bn < 0 || !(c->proxy_auth = malloc((size_t)bn + 7))) return "out of memory";
    memcpy(c->proxy_auth, "Basic ", 6);
    memcpy(c->proxy_auth + 6, b64, (size_t)bn + 1);
    alen -= ulen + 1;
    p = at + 1;
  }
  char purl[300];
  if (alen >= sizeof purl - 6) return expected;
  snprintf(purl, sizeof purl, "ws://%.*s", (int)alen, p);
  const char *reason = NULL;
  if (dx_url_parse(purl, &c->proxy, &reason)) {
    snprintf(why_buf, sizeof why_buf, "bad proxy address: %s", reason ? reason : "invalid");
    return why_buf;
  }
  /* The port is required: an explicit ":N" after the host. */
  const char *port = c->proxy.ipv6 ? strstr(purl, "]:") : strrchr(purl + 5, ':');
  if (!port) return expected;
  return NULL;
}

static void free_client(void *p) {
  dx_client *c = p;
  for (size_t i = 0; i < c->nprotocols; i++) free(c->protocols[i]);
  free(c->protocols);
  free(c->origin);
  free(c->headers);
  free(c->proxy_auth);
  free(c->final_codes);
  dx_pmd_shared_free(c->pmd_shared);
  SSL_CTX_free(c->tls_ctx);
  free(c);
}

dx_client *dx_connect(dx_loop *loop, const char *url, const dx_client_opts *opts,
                      const dx_ws_handlers *handlers, void *user, const char **why) {
  if (dx__loop_assert_thread(loop)) return NULL;
  const char *reason = NULL;
  dx_client *c = calloc(1, sizeof *c);
  if (!c) {
    if (why) *why = "out of memory";
    return NULL;
  }
  c->loop = loop;
  c->fd = -1;
  if (dx_url_parse(url, &c->url, &reason)) goto fail;
  if (opts) c->opts = *opts;
  if (c->url.tls) {
    static _Thread_local char tls_err[300];
    if (!(c->tls_ctx = dx__tls_client_ctx(&c->opts.tls, tls_err, sizeof tls_err))) {
      reason = tls_err;
      goto fail;
    }
  }
  dx_client_opts *o = &c->opts;
  if (o->proxy) {
    if ((reason = parse_proxy(c, o->proxy))) goto fail;
    c->use_proxy = true;
  }
  /* Copy what the caller may free after this call. */
  while (o->protocols && o->protocols[c->nprotocols]) c->nprotocols++;
  if (c->nprotocols) {
    c->protocols = calloc(c->nprotocols + 1, sizeof *c->protocols);
    if (!c->protocols) goto oom;
    for (size_t i = 0; i < c->nprotocols; i++)
      if (!(c->protocols[i] = strdup(o->protocols[i]))) goto oom;
  }
  if ((o->origin && !(c->origin = dup_or_null(o->origin))) ||
      (o->headers && !(c->headers = dup_or_null(o->headers))))
    goto oom;
  if ((reason = check_request_options(c))) goto fail;
  size_t nf = 0;
  static const uint16_t default_final[] = {DX_CLOSE_POLICY, 0};
  const uint16_t *finals = o->final_codes ? o->final_codes : default_final;
  while (finals[nf]) nf++;
  if (!(c->final_codes = calloc(nf + 1, sizeof *c->final_codes))) goto oom;
  memcpy(c->final_codes, finals, nf * sizeof *finals);
  o->protocols = NULL;
  o->origin = o->headers = o->proxy = NULL;
  o->final_codes = NULL;

  if (!o->connect_timeout) o->connect_timeout = 10000;
  if (!o->reconnect_initial) o->reconnect_initial = 500;
  if (!o->reconnect_max) o->reconnect_max = 30000;
  if (o->reconnect_factor < 1.0) o->reconnect_factor = 2.0;
  if (!o->reconnect_reset) o->reconnect_reset = 10000;
  dx_server_opts so = {
      .max_message = o->max_message,
      .max_buffered = o->max_buffered,
      .low_water = o->low_water,
      .handshake_timeout = o->connect_timeout,
      .ping_interval = o->ping_interval ? o->ping_interval : -1,
      .pong_timeout = o->pong_timeout ? o->pong_timeout : 10000,
      .close_timeout = o->close_timeout,
  };
  dx__ws_config_from(&c->cfg, &so);
  if (o->deflate.enable && dx_pmd_client_offer(&o->deflate, c->ext_offer, sizeof c->ext_offer) < 0)
    c->ext_offer[0] = 0;
  c->route.h = *handlers;
  c->user_on_close = handlers->on_close;
  c->route.h.on_close = client_on_close;
  c->route.user = user;
  dx_timer_init(loop, &c->timer, on_timer);
  /* The loop's clock is cached per turn and dx_connect is often called
   * before the loop runs (after slow setup): refresh it so the connect
   * deadline counts from now, not from the last wake-up. */
  dx_loop_update_time(loop);
  /* Not now: a failure (refused at once, no file descriptors) would call
   * the handlers before the caller even has the client pointer. */
  dx_deferred_init(&c->first);
  dx_loop_defer(loop, &c->first, start_first, c);
  return c;
oom:
  reason = "out of memory";
fail:
  if (why) *why = reason;
  free_client(c);
  return NULL;
}

dx_ws *dx_client_ws(const dx_client *c) {
  return c->ws && c->ws->phase == DX_WS_OPEN ? c->ws : NULL;
}

int dx_client_send(dx_client *c, unsigned opcode, const void *data, size_t len) {
  DX__CHECK_THREAD(c->loop);
  dx_ws *ws = dx_client_ws(c);
  return ws ? dx_ws_send(ws, opcode, data, len) : DX_ECLOSED;
}

int dx_client_close(dx_client *c, unsigned code, const char *reason) {
  DX__CHECK_THREAD(c->loop);
  if (c->user_closed) return DX_ECLOSED;
  /* The arguments are checked in every state, and before anything
   * changes: a refused close leaves the client as it was. */
  size_t rlen = reason ? strlen(reason) : 0;
  if ((code == 0 ? rlen != 0 : !dx_close_code_valid(code)) || rlen > 123 ||
      (rlen && !dx_utf8_valid((const uint8_t *)reason, rlen)))
    return DX_EINVAL;
  dx_ws *ws = c->ws;
  if (ws && ws->phase == DX_WS_OPEN) {
    int rc = dx_ws_close(ws, code, reason);
    if (rc == 0) c->user_closed = true;
    return rc;
  }
  c->user_closed = true;
  if (c->waiting) {
    c->waiting = false;
    dx_timer_stop(&c->timer);
    set_done(c);
    return 0;
  }
  if (!ws) {
    dx_deferred_cancel(&c->first);
    set_done(c);
    return 0;
  }
  if (ws->phase == DX_WS_HANDSHAKE) attempt_fail(c, 0, "closed by the application");
  return 0;
}

bool dx_client_done(const dx_client *c) { return c->done; }

void dx_client_free(dx_client *c) {
  if (!c) return;
  DX__CHECK_THREAD_VOID(c->loop);
  c->freed = true;
  dx_deferred_cancel(&c->first);
  stop_connecting(c);
  dx_timer_stop(&c->timer);
  dx_ws *ws = c->ws;
  c->ws = NULL;
  /* No handler calls from here on (not on_close, and not on_message for
   * frames already read this turn: this may run inside on_open,
   * on_message, on_error or on_close). */
  if (ws) dx__ws_orphan(ws, c->loop);
  dx_loop_free_later(c->loop, c, free_client);
}
