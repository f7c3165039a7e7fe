/* hub — one Redis connection on a dx_loop (see redis_client.h for the life of a connection). */
#include "hub/redis_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "duplex/log.h"
#include "hub/redis_resolve.h"

enum state { ST_IDLE, ST_RESOLVING, ST_CONNECTING, ST_TLS, ST_HANDSHAKE, ST_UP };
enum phase { PH_SENTINEL, PH_DATA }; /* talking to a sentinel, or to the data node */

/* Subscription commands on a pubsub connection: their confirmations are matched by name. */
enum { PK_NONE, PK_SUB, PK_SSUB, PK_PSUB, PK_UNSUB, PK_SUNSUB, PK_PUNSUB, PK_COUNT };
static const char *const pk_names[PK_COUNT] = {
    NULL, "subscribe", "ssubscribe", "psubscribe", "unsubscribe", "sunsubscribe", "punsubscribe"};

typedef struct pending {
  hub_redis_reply_fn cb;
  void *priv;
  uint64_t sent_ms;
  uint8_t kind;  /* PK_* */
  uint32_t left; /* confirmations still expected (subscription commands) */
  char *chans;   /* their channels, each [u32 len][bytes][u8 confirmed]; NULL: none named */
  size_t chans_len;
} pending;

struct hub_redis {
  dx_loop *loop;
  hub_redis_url url;
  hub_redis_addr fixed; /* opts.addr */
  bool has_fixed;
  char name[64];
  bool pubsub;
  hub_redis *watch; /* sentinel: subscribed to +switch-master on a sentinel (NULL otherwise) */
  uint32_t connect_timeout_ms, reply_timeout_ms, backoff_min_ms, backoff_max_ms;
  void (*on_up)(hub_redis *r, void *user);
  void (*on_down)(hub_redis *r, const char *why, bool was_up, void *user);
  void (*on_push)(hub_redis *r, redisReply *msg, void *user);
  void *user;

  enum state state;
  enum phase phase;
  int fd;
  SSL_CTX *ssl_ctx;
  SSL *ssl;
  bool ssl_write_wants_read;
  dx_io io;
  dx_timer t_conn;  /* the deadline of an attempt, or the backoff before the next */
  dx_timer t_reply; /* while up: the oldest reply's deadline, or the idle PING */
  dx_deferred d_flush;
  hub_redis_resolve *resolving;
  hub_redis_sockaddrs sa; /* the addresses of this attempt, tried in turn */
  unsigned sa_next;
  redisReader *reader;
  char *out; /* RESP not yet written: [out_off, out_len) */
  size_t out_off, out_len, out_cap;
  pending *q; /* FIFO ring of commands awaiting replies */
  size_t q_head, q_len, q_cap;
  uint64_t last_io_ms;
  hub_redis_addr cur;      /* the node connected to (sentinel: the master's address) */
  unsigned addr_idx;       /* which of url.addrs (sentinels, seeds) is next */
  unsigned sentinel_tried; /* sentinels tried in this round */
  char sentinel_err[200];
  unsigned attempts; /* failed attempts since the last up: the backoff's exponent */
  uint64_t rng;
  unsigned depth; /* nested entry points: free() waits until 0 */
  bool dead;
  uint64_t gen; /* bumped when a connection is closed */
  char last_why[200];
  uint64_t last_log_ms;
  unsigned quiet; /* failed attempts not logged since last_log_ms */
};

static void begin_attempt(hub_redis *r);
static void connect_next(hub_redis *r, int err);
static void fail(hub_redis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int enqueue(hub_redis *r, hub_redis_reply_fn cb, void *priv, int argc, const char **argv,
                   const size_t *lens);

/* ---- helpers ---------------------------------------------------------- */

static const char *errno_reason(int e) {
  switch (e) {
  case ECONNREFUSED:
    return "connection refused";
  case ECONNRESET:
    return "connection reset by peer";
  case ETIMEDOUT:
    return "timed out";
  case EHOSTUNREACH:
    return "host unreachable";
  case ENETUNREACH:
    return "network unreachable";
  case EPIPE:
    return "connection closed by server";
  default:
    return strerror(e);
  }
}

static uint32_t rnd(hub_redis *r) { /* xorshift64*: jitter only */
  r->rng ^= r->rng >> 12;
  r->rng ^= r->rng << 25;
  r->rng ^= r->rng >> 27;
  return (uint32_t)((r->rng * 2685821657736338717ull) >> 32);
}

static void leave(hub_redis *r);

static void enter(hub_redis *r) { r->depth++; }

static void destroy(hub_redis *r) {
  if (r->ssl_ctx) SSL_CTX_free(r->ssl_ctx);
  free(r->q);
  free(r->out);
  free(r);
}

static void leave(hub_redis *r) {
  if (--r->depth == 0 && r->dead) destroy(r);
}

static pending *q_at(hub_redis *r, size_t i) { return &r->q[(r->q_head + i) % r->q_cap]; }

static pending q_pop(hub_redis *r) {
  pending p = r->q[r->q_head];
  r->q_head = (r->q_head + 1) % r->q_cap;
  r->q_len--;
  return p;
}

/* Every pending callback gets NULL (pop first: a callback may free the client, which runs this
 * again for the rest). */
static void fail_pending(hub_redis *r) {
  while (r->q_len) {
    pending p = q_pop(r);
    free(p.chans);
    if (p.cb) p.cb(r, NULL, p.priv);
  }
}

static void close_conn(hub_redis *r) {
  if (r->resolving) hub_redis_resolve_cancel(r->resolving);
  r->resolving = NULL;
  if (r->fd >= 0) {
    dx_io_stop(&r->io);
    if (r->ssl) SSL_free(r->ssl);
    r->ssl = NULL;
    close(r->fd);
    r->fd = -1;
  }
  r->ssl_write_wants_read = false;
  if (r->reader) redisReaderFree(r->reader);
  r->reader = NULL;
  r->out_off = r->out_len = 0;
  dx_deferred_cancel(&r->d_flush);
  dx_timer_stop(&r->t_reply);
  r->gen++;
}

/* One line per change: going down, or a new reason while down; the same reason again is logged
 * at most every 30 s, with the count of the attempts in between. */
static void log_down(hub_redis *r, const char *why, bool was_up, enum phase ph) {
  uint64_t now = dx_loop_now(r->loop);
  if (was_up) {
    dx_log_warn("%s: down (%s:%u: %s); reconnecting", r->name, r->cur.host, r->cur.port, why);
  } else if (strcmp(why, r->last_why) || now - r->last_log_ms >= 30000) {
    char where[300], more[64] = "";
    if (ph == PH_SENTINEL)
      snprintf(where, sizeof where, "the sentinels");
    else
      snprintf(where, sizeof where, "%s:%u", r->cur.host, r->cur.port);
    if (r->quiet) snprintf(more, sizeof more, " (and %u more failed attempts)", r->quiet);
    dx_log_warn("%s: cannot connect to %s (%s)%s", r->name, where, why, more);
    r->quiet = 0;
  } else {
    r->quiet++;
    return;
  }
  snprintf(r->last_why, sizeof r->last_why, "%s", why);
  r->last_log_ms = now;
}

/* The attempt (or the connection) failed: close, fail pending commands, back off, tell. With
 * sentinel, the next sentinel is asked at once until all were tried. */
static void fail(hub_redis *r, const char *fmt, ...) {
  if (r->dead) return;
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  bool was_up = r->state == ST_UP;
  close_conn(r);
  if (r->phase == PH_SENTINEL && r->sentinel_tried + 1 < r->url.naddrs) {
    const hub_redis_addr *a = &r->url.addrs[r->addr_idx % r->url.naddrs];
    snprintf(r->sentinel_err, sizeof r->sentinel_err, "%s:%u: %s", a->host, a->port, why);
    dx_log_debug("%s: sentinel %s", r->name, r->sentinel_err);
    r->sentinel_tried++;
    r->addr_idx++;
    fail_pending(r);
    if (!r->dead) begin_attempt(r);
    return;
  }
  if (r->phase == PH_SENTINEL && r->url.naddrs > 1) {
    char all[256];
    snprintf(all, sizeof all, "no sentinel answered for master '%.64s' (last: %.140s)",
             r->url.master, why);
    memcpy(why, all, sizeof why);
  }
  r->state = ST_IDLE;
  enum phase ph = r->phase;
  if (r->url.sentinel) r->phase = PH_SENTINEL; /* look the master up again */
  r->sentinel_tried = 0;
  if (!r->has_fixed && r->url.naddrs > 1) r->addr_idx++; /* next sentinel / seed */
  uint32_t d = r->backoff_min_ms;
  for (unsigned i = 0; i < r->attempts && d < r->backoff_max_ms; i++) d *= 2;
  if (d > r->backoff_max_ms) d = r->backoff_max_ms;
  d = d / 2 + rnd(r) % (d / 2 + 1);
  if (r->attempts < 32) r->attempts++;
  dx_timer_start(&r->t_conn, d, 0);
  log_down(r, why, was_up, ph);
  fail_pending(r);
  if (!r->dead && r->on_down) r->on_down(r, why, was_up, r->user);
}

/* ---- writing ---------------------------------------------------------- */

static void want_io(hub_redis *r) {
  unsigned ev = DX_READABLE;
  if (r->out_off < r->out_len && !r->ssl_write_wants_read) ev |= DX_WRITABLE;
  if (dx_io_start(&r->io, ev) != 0) fail(r, "epoll: cannot watch the socket");
}

/* Write what is queued; keeps a partial write's rest. */
static void flush(hub_redis *r) {
  r->ssl_write_wants_read = false;
  while (r->out_off < r->out_len) {
    size_t len = r->out_len - r->out_off;
    ssize_t n;
    if (r->ssl) {
      ERR_clear_error();
      int k = SSL_write(r->ssl, r->out + r->out_off, len > INT32_MAX ? INT32_MAX : (int)len);
      if (k > 0) {
        n = k;
      } else {
        int e = SSL_get_error(r->ssl, k);
        if (e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_WANT_READ) {
          r->ssl_write_wants_read = true;
          break;
        }
        char buf[160];
        ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
        fail(r, "TLS write: %s", e == SSL_ERROR_SYSCALL ? errno_reason(errno) : buf);
        return;
      }
    } else {
      n = send(r->fd, r->out + r->out_off, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail(r, "write: %s", errno_reason(errno));
        return;
      }
    }
    r->out_off += (size_t)n;
    r->last_io_ms = dx_loop_now(r->loop);
  }
  if (r->out_off == r->out_len) r->out_off = r->out_len = 0;
  want_io(r);
}

static void on_flush(dx_loop *loop, void *arg) {
  (void)loop;
  hub_redis *r = arg;
  enter(r);
  if (r->fd >= 0 && (r->state == ST_HANDSHAKE || r->state == ST_UP)) flush(r);
  leave(r);
}

static size_t digits(size_t v) {
  size_t n = 1;
  while (v >= 10) v /= 10, n++;
  return n;
}

static int kind_of(const char *cmd, size_t len) {
  for (int k = 1; k < PK_COUNT; k++)
    if (strlen(pk_names[k]) == len && !strncasecmp(cmd, pk_names[k], len)) return k;
  return PK_NONE;
}

/* Format as RESP into the output buffer and queue the callback. */
static int enqueue(hub_redis *r, hub_redis_reply_fn cb, void *priv, int argc, const char **argv,
                   const size_t *lens) {
  if (argc < 1 || !argv) return -1;
  size_t need = 1 + digits((size_t)argc) + 2;
  for (int i = 0; i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    need += 1 + digits(l) + 2 + l + 2;
  }
  if (r->out_len - r->out_off + need > HUB_REDIS_MAX_OUTPUT) return -1;
  if (r->q_len == r->q_cap) {
    size_t cap = r->q_cap ? r->q_cap * 2 : 16;
    pending *nq = malloc(cap * sizeof *nq);
    if (!nq) return -1;
    for (size_t i = 0; i < r->q_len; i++) nq[i] = *q_at(r, i);
    free(r->q);
    r->q = nq;
    r->q_head = 0;
    r->q_cap = cap;
  }
  if (r->out_cap - r->out_len < need) {
    if (r->out_off) { /* compact first */
      memmove(r->out, r->out + r->out_off, r->out_len - r->out_off);
      r->out_len -= r->out_off;
      r->out_off = 0;
    }
    if (r->out_cap - r->out_len < need) {
      size_t cap = r->out_cap ? r->out_cap : 4096;
      while (cap - r->out_len < need) cap *= 2;
      char *no = realloc(r->out, cap);
      if (!no) return -1;
      r->out = no;
      r->out_cap = cap;
    }
  }
  pending p = {.cb = cb, .priv = priv, .sent_ms = dx_loop_now(r->loop)};
  if (r->pubsub) {
    p.kind = (uint8_t)kind_of(argv[0], lens ? lens[0] : strlen(argv[0]));
    if (p.kind) {
      p.left = argc > 1 ? (uint32_t)argc - 1 : 1;
      if (argc > 1) {
        for (int i = 1; i < argc; i++) p.chans_len += 4 + (lens ? lens[i] : strlen(argv[i])) + 1;
        p.chans = malloc(p.chans_len);
        if (!p.chans) return -1;
        char *c = p.chans;
        for (int i = 1; i < argc; i++) {
          uint32_t l = (uint32_t)(lens ? lens[i] : strlen(argv[i]));
          memcpy(c, &l, 4);
          memcpy(c + 4, argv[i], l);
          c[4 + l] = 0;
          c += 4 + l + 1;
        }
      }
    }
  }
  char *o = r->out + r->out_len;
  o += sprintf(o, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    o += sprintf(o, "$%zu\r\n", l);
    memcpy(o, argv[i], l);
    o += l;
    *o++ = '\r';
    *o++ = '\n';
  }
  r->out_len = (size_t)(o - r->out);
  r->q[(r->q_head + r->q_len) % r->q_cap] = p;
  r->q_len++;
  dx_loop_defer(r->loop, &r->d_flush, on_flush, r);
  return 0;
}

/* ---- replies ---------------------------------------------------------- */

static bool str_is(const redisReply *e, const char *s) {
  return e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) &&
         e->len == strlen(s) && !strncasecmp(e->str, s, e->len);
}

/* Does the confirmation for `chan` belong to the head command? Marks its channel confirmed. */
static bool head_takes(pending *p, const redisReply *chan) {
  if (!p->chans) return true; /* (un)subscribe-all: the first confirmation */
  if (!chan || chan->type != REDIS_REPLY_STRING) return false;
  for (char *c = p->chans; c < p->chans + p->chans_len;) {
    uint32_t l;
    memcpy(&l, c, 4);
    if (!c[4 + l] && l == chan->len && !memcmp(c + 4, chan->str, l)) {
      c[4 + l] = 1;
      return true;
    }
    c += 4 + l + 1;
  }
  return false;
}

static void dispatch(hub_redis *r, redisReply *rep) {
  if (r->pubsub && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
      rep->element[0]->type == REDIS_REPLY_STRING) {
    const redisReply *k = rep->element[0];
    if (str_is(k, "message") || str_is(k, "smessage") || str_is(k, "pmessage")) {
      if (r->on_push) r->on_push(r, rep, r->user);
      return;
    }
    int kind = kind_of(k->str, k->len);
    if (kind) {
      pending *h = r->q_len ? q_at(r, 0) : NULL;
      if (h && h->kind == kind && head_takes(h, rep->elements >= 2 ? rep->element[1] : NULL)) {
        if (--h->left) return;
      } else {
        if (r->on_push) r->on_push(r, rep, r->user); /* e.g. a slot moved: sunsubscribe */
        return;
      }
    }
  }
  if (!r->q_len) {
    fail(r, "protocol error: a reply no command waits for");
    return;
  }
  pending p = q_pop(r);
  free(p.chans);
  uint64_t gen = r->gen;
  if (p.cb) p.cb(r, rep, p.priv);
  if (r->dead || gen != r->gen) return;
  if (rep->type == REDIS_REPLY_ERROR &&
      (!strncmp(rep->str, "READONLY", 8) || !strncmp(rep->str, "LOADING", 7) ||
       !strncmp(rep->str, "MASTERDOWN", 10)))
    fail(r, "%s", rep->str); /* the master moved or is not ready: reconnect (and look up) */
}

static void read_some(hub_redis *r) {
  char buf[16384];
  uint64_t gen = r->gen;
  /* Plain: at most 4 MiB per wake-up (level-triggered: the rest comes next turn). TLS: until
   * the socket is drained, since bytes OpenSSL already holds raise no readiness. */
  for (int i = 0; r->ssl || i < 256; i++) {
    ssize_t n;
    if (r->ssl) {
      ERR_clear_error();
      int k = SSL_read(r->ssl, buf, sizeof buf);
      if (k <= 0) {
        int e = SSL_get_error(r->ssl, k);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
          fail(r, "connection closed by server");
        } else {
          char eb[160];
          ERR_error_string_n(ERR_peek_last_error(), eb, sizeof eb);
          fail(r, "TLS read: %s", e == SSL_ERROR_SYSCALL ? errno_reason(errno) : eb);
        }
        return;
      }
      n = k;
    } else {
      n = read(r->fd, buf, sizeof buf);
      if (n == 0) {
        fail(r, "connection closed by server");
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        fail(r, "read: %s", errno_reason(errno));
        return;
      }
    }
    r->last_io_ms = dx_loop_now(r->loop);
    if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) {
      fail(r, "protocol error: %s", r->reader->errstr);
      return;
    }
    for (;;) {
      void *rep = NULL;
      if (redisReaderGetReply(r->reader, &rep) != REDIS_OK) {
        fail(r, "protocol error: %s", r->reader->errstr);
        return;
      }
      if (!rep) break;
      dispatch(r, rep);
      freeReplyObject(rep);
      if (r->dead || gen != r->gen) return;
    }
  }
}

/* ---- the handshake ---------------------------------------------------- */

static void on_ready(hub_redis *r, redisReply *rep, void *priv) {
  (void)priv;
  if (!rep) return;
  if (rep->type == REDIS_REPLY_ERROR) {
    if (!strncmp(rep->str, "NOAUTH", 6))
      fail(r, "auth failed: %s", rep->str);
    else
      fail(r, "PING failed: %s", rep->str);
    return;
  }
  r->state = ST_UP;
  r->attempts = 0;
  r->quiet = 0;
  r->last_why[0] = '\0';
  dx_timer_stop(&r->t_conn);
  r->last_io_ms = dx_loop_now(r->loop);
  dx_timer_start(&r->t_reply, r->reply_timeout_ms, 0);
  if (r->url.sentinel)
    dx_log_info("%s: up (master '%s' at %s:%u)", r->name, r->url.master, r->cur.host, r->cur.port);
  else
    dx_log_info("%s: up (%s:%u)", r->name, r->cur.host, r->cur.port);
  if (r->on_up) r->on_up(r, r->user);
}

static void on_auth(hub_redis *r, redisReply *rep, void *priv) {
  (void)priv;
  if (rep && rep->type == REDIS_REPLY_ERROR) fail(r, "auth failed: %s", rep->str);
}

static void on_select(hub_redis *r, redisReply *rep, void *priv) {
  (void)priv;
  if (rep && rep->type == REDIS_REPLY_ERROR) fail(r, "SELECT %d failed: %s", r->url.db, rep->str);
}

static void on_role(hub_redis *r, redisReply *rep, void *priv) {
  (void)priv;
  if (!rep) return;
  if (rep->type == REDIS_REPLY_ERROR) {
    fail(r, "ROLE failed: %s", rep->str);
  } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
             !str_is(rep->element[0], "master")) {
    const redisReply *e = rep->type == REDIS_REPLY_ARRAY && rep->elements ? rep->element[0] : NULL;
    fail(r, "not a master (ROLE says %.*s)",
         e && e->type == REDIS_REPLY_STRING ? (int)(e->len > 32 ? 32 : e->len) : 1,
         e && e->type == REDIS_REPLY_STRING ? e->str : "?");
  }
}

static void on_master_addr(hub_redis *r, redisReply *rep, void *priv) {
  (void)priv;
  if (!rep) return;
  if (rep->type == REDIS_REPLY_ERROR) {
    fail(r, "sentinel: %s", rep->str);
    return;
  }
  long port = 0;
  if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
      rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
      rep->element[0]->len < sizeof r->cur.host && rep->element[0]->len > 0)
    port = strtol(rep->element[1]->str, NULL, 10);
  if (port <= 0 || port > 65535) {
    fail(r, "sentinel knows no master '%s'", r->url.master);
    return;
  }
  memcpy(r->cur.host, rep->element[0]->str, rep->element[0]->len);
  r->cur.host[rep->element[0]->len] = '\0';
  r->cur.port = (uint16_t)port;
  dx_log_debug("%s: sentinel says master '%s' is at %s:%u", r->name, r->url.master, r->cur.host,
               r->cur.port);
  /* This reply is the only one pending: close the sentinel connection, connect to the master. */
  close_conn(r);
  r->phase = PH_DATA;
  r->sentinel_tried = 0;
  begin_attempt(r);
}

/* hiredis's own reply builders, with the array one bounded. The defaults
 * are static in hiredis: taken from a reader it made (once, any thread:
 * every thread finds the same pointers). */
static redisReplyObjectFunctions bounded_fns;
static void *(*default_create_array)(const redisReadTask *, int);
static pthread_once_t bounded_once = PTHREAD_ONCE_INIT;

static void *bounded_create_array(const redisReadTask *t, int elements) {
  if (elements < 0 || (unsigned)elements > HUB_REDIS_MAX_ELEMENTS)
    return NULL; /* reader: OOM error */
  return default_create_array(t, elements);
}

static void init_bounded(void) {
  redisReader *d = redisReaderCreate();
  if (!d || !d->fn) {
    redisReaderFree(d);
    return;
  }
  bounded_fns = *d->fn;
  default_create_array = d->fn->createArray;
  bounded_fns.createArray = bounded_create_array;
  redisReaderFree(d);
}

redisReader *hub_redis_reader_new(void) {
  pthread_once(&bounded_once, init_bounded);
  if (!default_create_array) return NULL;
  return redisReaderCreateWithFunctions(&bounded_fns);
}

static void start_handshake(hub_redis *r) {
  r->state = ST_HANDSHAKE;
  r->reader = hub_redis_reader_new();
  if (!r->reader) {
    fail(r, "out of memory");
    return;
  }
  if (r->phase == PH_SENTINEL) {
    if (r->url.sentinel_password[0])
      enqueue(r, on_auth, NULL, 2, (const char *[]){"AUTH", r->url.sentinel_password}, NULL);
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->url.master};
    enqueue(r, on_master_addr, NULL, 3, argv, NULL);
  } else {
    if (r->url.password[0]) {
      const char *argv[] = {"AUTH", r->url.user, r->url.password};
      if (r->url.user[0])
        enqueue(r, on_auth, NULL, 3, argv, NULL);
      else
        enqueue(r, on_auth, NULL, 2, (const char *[]){"AUTH", r->url.password}, NULL);
    }
    if (r->url.db && !r->url.cluster) {
      char db[16];
      snprintf(db, sizeof db, "%d", r->url.db);
      enqueue(r, on_select, NULL, 2, (const char *[]){"SELECT", db}, NULL);
    }
    if (r->url.sentinel) enqueue(r, on_role, NULL, 1, (const char *[]){"ROLE"}, NULL);
    enqueue(r, on_ready, NULL, 1, (const char *[]){"PING"}, NULL);
  }
  flush(r);
}

static void tls_step(hub_redis *r) {
  ERR_clear_error();
  int k = SSL_connect(r->ssl);
  if (k == 1) {
    start_handshake(r);
    return;
  }
  int e = SSL_get_error(r->ssl, k);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    if (dx_io_start(&r->io, e == SSL_ERROR_WANT_READ ? DX_READABLE : DX_WRITABLE) != 0)
      fail(r, "epoll: cannot watch the socket");
    return;
  }
  long v = SSL_get_verify_result(r->ssl);
  if (v != X509_V_OK) {
    fail(r, "TLS handshake failed: certificate: %s", X509_verify_cert_error_string(v));
  } else if (e == SSL_ERROR_SYSCALL) {
    fail(r, "TLS handshake failed: %s", errno ? errno_reason(errno) : "connection closed");
  } else {
    char eb[160];
    ERR_error_string_n(ERR_peek_last_error(), eb, sizeof eb);
    fail(r, "TLS handshake failed: %s", eb);
  }
}

static void on_connected(hub_redis *r) {
  if (!(r->url.tls && r->phase == PH_DATA)) {
    start_handshake(r);
    return;
  }
  r->state = ST_TLS;
  r->ssl = SSL_new(r->ssl_ctx);
  if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1) {
    fail(r, "TLS: out of memory");
    return;
  }
  struct in6_addr tmp;
  bool ip = inet_pton(AF_INET, r->cur.host, &tmp) == 1 || inet_pton(AF_INET6, r->cur.host, &tmp);
  if (!r->url.insecure) {
    X509_VERIFY_PARAM *vp = SSL_get0_param(r->ssl);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, r->cur.host) != 1
           : X509_VERIFY_PARAM_set1_host(vp, r->cur.host, 0) != 1) {
      fail(r, "TLS: cannot set the name to verify");
      return;
    }
  }
  if (!ip) SSL_set_tlsext_host_name(r->ssl, r->cur.host);
  tls_step(r);
}

static void on_io(dx_io *io, unsigned events) {
  hub_redis *r = dx_container_of(io, hub_redis, io);
  enter(r);
  uint64_t gen = r->gen;
  switch (r->state) {
  case ST_CONNECTING: {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
      connect_next(r, err);
    } else {
      if (dx_io_start(&r->io, DX_READABLE) == 0)
        on_connected(r);
      else
        fail(r, "epoll: cannot watch the socket");
    }
    break;
  }
  case ST_TLS:
    tls_step(r);
    break;
  case ST_HANDSHAKE:
  case ST_UP:
    if (events & DX_READABLE) read_some(r);
    if (!r->dead && gen == r->gen && r->fd >= 0 &&
        ((events & DX_WRITABLE) || r->ssl_write_wants_read || r->out_off < r->out_len))
      flush(r);
    break;
  default:
    break;
  }
  leave(r);
}

/* Connect to the next address of the attempt; when one refuses, the one after (within the same
 * connect deadline). */
static void connect_next(hub_redis *r, int err) {
  if (r->sa_next >= r->sa.n) {
    fail(r, "%s", errno_reason(err));
    return;
  }
  if (r->fd >= 0) close_conn(r);
  unsigned i = r->sa_next++;
  const struct sockaddr *sa = (const struct sockaddr *)&r->sa.ss[i];
  r->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->fd < 0) {
    fail(r, "socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(r->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  dx_io_init(r->loop, &r->io, r->fd, on_io);
  r->state = ST_CONNECTING;
  if (connect(r->fd, sa, r->sa.len[i]) == 0) {
    if (dx_io_start(&r->io, DX_READABLE) == 0)
      on_connected(r);
    else
      fail(r, "epoll: cannot watch the socket");
  } else if (errno == EINPROGRESS) {
    if (dx_io_start(&r->io, DX_WRITABLE) != 0) fail(r, "epoll: cannot watch the socket");
  } else {
    connect_next(r, errno);
  }
}

static void on_resolved(void *user, const hub_redis_sockaddrs *a, const char *why) {
  hub_redis *r = user;
  enter(r);
  r->resolving = NULL;
  r->sa = *a;
  r->sa_next = 0;
  if (a->n)
    connect_next(r, 0);
  else
    fail(r, "%s", why);
  leave(r);
}

/* One attempt: to the next sentinel, or to the data node. */
static void begin_attempt(hub_redis *r) {
  const hub_redis_addr *a;
  if (r->phase == PH_SENTINEL)
    a = &r->url.addrs[r->addr_idx % r->url.naddrs];
  else if (r->has_fixed)
    a = &r->fixed;
  else if (r->url.sentinel)
    a = &r->cur; /* from the sentinel */
  else
    a = &r->url.addrs[r->addr_idx % r->url.naddrs];
  if (r->phase == PH_DATA && a != &r->cur) r->cur = *a;
  dx_timer_start(&r->t_conn, r->connect_timeout_ms, 0);
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(a->port)};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(a->port)};
  r->sa.n = 1;
  r->sa_next = 0;
  if (inet_pton(AF_INET, a->host, &v4.sin_addr) == 1) {
    memcpy(&r->sa.ss[0], &v4, sizeof v4);
    r->sa.len[0] = sizeof v4;
    connect_next(r, 0);
  } else if (inet_pton(AF_INET6, a->host, &v6.sin6_addr) == 1) {
    memcpy(&r->sa.ss[0], &v6, sizeof v6);
    r->sa.len[0] = sizeof v6;
    connect_next(r, 0);
  } else {
    r->state = ST_RESOLVING;
    r->resolving = hub_redis_resolve_start(r->loop, a->host, a->port, on_resolved, r);
    if (!r->resolving) fail(r, "cannot start a lookup thread: %s", strerror(errno));
  }
}

/* ---- timers ----------------------------------------------------------- */

static void on_conn_timer(dx_timer *t) {
  hub_redis *r = dx_container_of(t, hub_redis, t_conn);
  enter(r);
  if (r->state == ST_IDLE)
    begin_attempt(r); /* the backoff is over */
  else if (r->state != ST_UP)
    fail(r, "timed out");
  leave(r);
}

static void on_ping(hub_redis *r, redisReply *rep, void *priv) { (void)r, (void)rep, (void)priv; }

static void on_reply_timer(dx_timer *t) {
  hub_redis *r = dx_container_of(t, hub_redis, t_reply);
  if (r->state != ST_UP) return;
  enter(r);
  uint64_t now = dx_loop_now(r->loop);
  if (r->q_len) {
    uint64_t age = now - q_at(r, 0)->sent_ms;
    if (age >= r->reply_timeout_ms)
      fail(r, "reply timed out (none in %u ms)", (unsigned)r->reply_timeout_ms);
    else
      dx_timer_start(&r->t_reply, r->reply_timeout_ms - age, 0);
  } else {
    uint64_t idle = now - r->last_io_ms;
    if (idle >= r->reply_timeout_ms) {
      enqueue(r, on_ping, NULL, 1, (const char *[]){"PING"}, NULL);
      idle = 0;
    }
    dx_timer_start(&r->t_reply, r->reply_timeout_ms - idle, 0);
  }
  leave(r);
}

/* ---- sentinel: watching for +switch-master ---------------------------- */

/* Sentinel reconfigures the old master only when it next looks at it (INFO, every 10 s), and a
 * master that was failed over while alive accepts writes until then. Sentinels announce the
 * switch on their +switch-master channel at once: a watcher connection (a pubsub hub_redis to the
 * sentinels in turn) hears it and sends the data connection to look the master up again. */
static void watch_up(hub_redis *w, void *user) {
  (void)user;
  hub_redis_command(w, NULL, NULL, 2, (const char *[]){"SUBSCRIBE", "+switch-master"}, NULL);
}

static void watch_push(hub_redis *w, redisReply *m, void *user) {
  (void)w;
  hub_redis *r = user;
  /* ["message", "+switch-master", "<name> <old-ip> <old-port> <new-ip> <new-port>"] */
  if (m->elements != 3 || !str_is(m->element[0], "message") ||
      m->element[2]->type != REDIS_REPLY_STRING)
    return;
  char name[128], oldip[64], newip[64];
  unsigned oldport, newport;
  char line[512];
  snprintf(line, sizeof line, "%.*s", (int)m->element[2]->len, m->element[2]->str);
  if (sscanf(line, "%127s %63s %u %63s %u", name, oldip, &oldport, newip, &newport) != 5 ||
      strcmp(name, r->url.master))
    return;
  dx_log_info("%s: sentinel: master '%s' switched from %s:%u to %s:%u", r->name, name, oldip,
              oldport, newip, newport);
  if (r->phase == PH_DATA && r->state != ST_IDLE &&
      (strcmp(newip, r->cur.host) || newport != r->cur.port)) {
    enter(r);
    fail(r, "the master moved to %s:%u (sentinel +switch-master)", newip, newport);
    leave(r);
  } else if (r->state == ST_IDLE && !r->dead) {
    dx_timer_start(&r->t_conn, 0, 0); /* down and waiting: a master is there now, go */
  }
}

static hub_redis *watch_new(hub_redis *r) {
  hub_redis_url wu = r->url;
  wu.sentinel = wu.cluster = wu.tls = wu.insecure = false;
  wu.user[0] = wu.ca_file[0] = wu.sentinel_password[0] = '\0';
  memcpy(wu.password, r->url.sentinel_password, sizeof wu.password);
  wu.db = 0;
  char name[80];
  snprintf(name, sizeof name, "%s sentinel watch", r->name);
  hub_redis_opts o = {.url = &wu,
                      .name = name,
                      .pubsub = true,
                      .connect_timeout_ms = r->connect_timeout_ms,
                      .reply_timeout_ms = r->reply_timeout_ms,
                      .backoff_min_ms = r->backoff_min_ms,
                      .backoff_max_ms = r->backoff_max_ms,
                      .on_up = watch_up,
                      .on_push = watch_push,
                      .user = r};
  return hub_redis_new(r->loop, &o);
}

/* ---- the API ---------------------------------------------------------- */

hub_redis *hub_redis_new(dx_loop *loop, const hub_redis_opts *o) {
  if (!o || !o->url || (!o->url->naddrs && !o->addr)) return NULL;
  hub_redis *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->loop = loop;
  r->url = *o->url;
  if (o->addr) {
    r->fixed = *o->addr;
    r->has_fixed = true;
    r->url.sentinel = false;
  }
  snprintf(r->name, sizeof r->name, "%s", o->name ? o->name : "redis");
  r->pubsub = o->pubsub;
  r->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 2000;
  r->reply_timeout_ms = o->reply_timeout_ms ? o->reply_timeout_ms : 5000;
  r->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
  r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
  if (r->backoff_max_ms < r->backoff_min_ms) r->backoff_max_ms = r->backoff_min_ms;
  r->on_up = o->on_up;
  r->on_down = o->on_down;
  r->on_push = o->on_push;
  r->user = o->user;
  r->fd = -1;
  r->phase = r->url.sentinel ? PH_SENTINEL : PH_DATA;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  r->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)r;
  if (!r->rng) r->rng = 1;
  if (r->url.naddrs > 1) r->addr_idx = rnd(r) % r->url.naddrs; /* spread nodes over sentinels */
  dx_timer_init(loop, &r->t_conn, on_conn_timer);
  dx_timer_init(loop, &r->t_reply, on_reply_timer);
  dx_deferred_init(&r->d_flush);
  if (r->url.tls) {
    r->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!r->ssl_ctx) goto fail;
    SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(r->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
    if (r->url.insecure) {
      SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else {
      SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_PEER, NULL);
      if (r->url.ca_file[0] ? SSL_CTX_load_verify_locations(r->ssl_ctx, r->url.ca_file, NULL) != 1
                            : SSL_CTX_set_default_verify_paths(r->ssl_ctx) != 1) {
        char eb[160];
        ERR_error_string_n(ERR_get_error(), eb, sizeof eb);
        dx_log_error("%s: cannot load the CA certificates%s%s: %s", r->name,
                     r->url.ca_file[0] ? " from " : "", r->url.ca_file, eb);
        goto fail;
      }
    }
  }
  if (r->url.sentinel && !(r->watch = watch_new(r))) goto fail;
  if (dx_timer_start(&r->t_conn, 0, 0) != 0) goto fail; /* first attempt: next loop turn */
  return r;
fail:
  hub_redis_free(r->watch);
  destroy(r);
  return NULL;
}

void hub_redis_free(hub_redis *r) {
  if (!r || r->dead) return;
  r->dead = true;
  enter(r);
  hub_redis_free(r->watch);
  r->watch = NULL;
  close_conn(r);
  dx_timer_stop(&r->t_conn);
  r->state = ST_IDLE;
  fail_pending(r);
  leave(r);
}

bool hub_redis_up(const hub_redis *r) { return r && !r->dead && r->state == ST_UP; }

const hub_redis_addr *hub_redis_addr_now(const hub_redis *r) { return &r->cur; }

size_t hub_redis_pending(const hub_redis *r) { return r->q_len; }

int hub_redis_command(hub_redis *r, hub_redis_reply_fn cb, void *priv, int argc, const char **argv,
                      const size_t *lens) {
  if (!hub_redis_up(r)) return -1;
  return enqueue(r, cb, priv, argc, argv, lens);
}
