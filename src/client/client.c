/* The WebSocket client's attempts: resolve, TCP connect, then the
 * handshake (handshake.c, through a proxy: proxy.c) and the shared
 * connection code; reconnect with exponential backoff and full jitter;
 * dx_connect and the public API. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/log.h"
#include "duplex/utf8.h"

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
  dx__strs_unref(ws->strs);
  ws->strs = NULL;
  dx_loop_free_later(c->loop, ws, free);
}

/* The attempt is over (its on_close was delivered and the stream, if any,
 * is gone): decide whether to try again. */
static void attempt_over(dx_client *c, dx_ws *ws) {
  uint16_t code = ws->close_code;
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
void dx__client_attempt_fail(dx_client *c, int err, const char *msg) {
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

static void on_released(dx_ws *ws) { attempt_over(ws->owner, ws); }

/* The connection's timeout: one client, one connection, one timer. */
static void client_arm(dx_ws *ws, int ms) {
  dx_client *c = ws->owner;
  if (ms < 0) {
    dx_timer_stop(&c->conn_timer);
    return;
  }
  c->timed_ws = ws;
  dx_timer_start(&c->conn_timer, (uint64_t)ms, 0);
}

static void on_conn_timer(dx_timer *t) {
  dx__ws_timeout(dx_container_of(t, dx_client, conn_timer)->timed_ws);
}

/* Runs before the user's on_close. A close this side started -- the
 * application's dx_ws_close on the client's connection, not only
 * dx_client_close -- means "no reconnect", like a close by the user: our
 * close frame went out before the peer's arrived (when the peer closes
 * first, our echo is only sent after this notification) and the protocol
 * did not fail (a protocol error sends a close frame too). */
static void client_on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len,
                            bool clean, void *user) {
  dx_client *c = ws->owner;
  if (ws->proto_ready) {
    dx_proto *p = dx__ws_proto(ws);
    if (dx_proto_close_sent(p) && dx_proto_get_state(p) != DX_PROTO_FAILED) c->user_closed = true;
  }
  if (c->user_on_close) c->user_on_close(ws, code, reason, reason_len, clean, user);
}

static const dx_ws_owner_ops client_ops = {dx__client_on_handshake_read, on_released, false, NULL,
                                           offsetof(dx_client, cfg),     client_arm};

dx_client *dx_ws_client(const dx_ws *ws) {
  return dx__ws_ops(ws) == &client_ops ? (dx_client *)ws->owner : NULL;
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
  if (dx__ws_init(ws, c->loop, fd, &c->ws_owner, tls, c->url.host) != 0) {
    close(fd);
    dx__client_attempt_fail(c, DX_ESYS, "could not set up the connection");
    return;
  }
  /* connect_timeout bounds DNS + TCP + handshake together: the handshake
   * gets what is left, not a fresh period (dx__ws_init armed a full one). */
  uint64_t now = dx_loop_now(c->loop);
  if (c->opts.connect_timeout > 0) client_arm(ws, c->deadline > now ? (int)(c->deadline - now) : 0);
  if (c->use_proxy) {
    c->hs_step = HS_PROXY;
    dx__client_write_connect(c, ws);
  } else {
    c->hs_step = HS_UPGRADE;
    int rc = dx__client_write_upgrade(c, ws);
    if (rc) dx__client_attempt_fail(c, rc, "could not write the upgrade request");
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
  dx__client_attempt_fail(c, e == ECONNREFUSED ? DX_ECONNREFUSED : DX_ECONNECT, msg);
}

static void on_resolved(void *user, struct addrinfo *res, int gai_err, int sys_err) {
  dx_client *c = user;
  c->resolving = NULL;
  if (!res) {
    const dx_url *target = c->use_proxy ? &c->proxy : &c->url;
    char msg[400];
    snprintf(msg, sizeof msg, "DNS lookup failed for %s: %s", target->host,
             gai_err == EAI_SYSTEM ? strerror(sys_err) : gai_strerror(gai_err));
    dx__client_attempt_fail(c, DX_ERESOLVE, msg);
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
  dx__client_attempt_fail(c, DX_ETIMEDOUT, msg);
}

static void start_attempt(dx_client *c) {
  dx_ws *ws = calloc(1, dx__ws_alloc_size(c->route.h.data_size));
  if (!ws) {
    dx_log_error("%s: out of memory", c->url.host);
    schedule_reconnect(c);
    return;
  }
  ws->owner = c;
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

static void free_client(void *p) {
  dx_client *c = p;
  dx__client_free_options(c);
  dx_pmd_shared_free(c->pmd_shared);
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
  c->ws_owner.ws_ops = &client_ops;
  c->loop = loop;
  c->fd = -1;
  if (dx_url_parse(url, &c->url, &reason)) goto fail;
  if ((reason = dx__client_take_options(c, opts))) goto fail;
  c->route.h = *handlers;
  c->user_on_close = handlers->on_close;
  c->route.h.on_close = client_on_close;
  c->route.user = user;
  dx_timer_init(loop, &c->timer, on_timer);
  dx_timer_init(loop, &c->conn_timer, on_conn_timer);
  /* The loop's clock is cached per turn and dx_connect is often called
   * before the loop runs (after slow setup): refresh it so the connect
   * deadline counts from now, not from the last wake-up. */
  dx_loop_update_time(loop);
  /* Not now: a failure (refused at once, no file descriptors) would call
   * the handlers before the caller even has the client pointer. */
  dx_deferred_init(&c->first);
  dx_loop_defer(loop, &c->first, start_first, c);
  return c;
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

int dx_client_close(dx_client *c, uint16_t code, const char *reason) {
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
  if (ws->phase == DX_WS_HANDSHAKE) dx__client_attempt_fail(c, 0, "closed by the application");
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
  /* The orphan stops its timeout (conn_timer) through client_ops. */
  /* No handler calls from here on (not on_close, and not on_message for
   * frames already read this turn: this may run inside on_open,
   * on_message, on_error or on_close). */
  if (ws) dx__ws_orphan(ws, c->loop);
  dx_loop_free_later(c->loop, c, free_client);
}
