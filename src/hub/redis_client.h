/* hub — one Redis connection driven by a dx_loop.
 *
 * Built on hiredis's reply reader (redisReaderCreate/Feed/GetReply) over our own non-blocking
 * socket, with OpenSSL for rediss://; commands are written in RESP straight into the output
 * buffer (no allocation per command). Why not hiredis's async API: Debian 12 ships hiredis
 * 0.14.1, whose async layer knows neither sharded pub/sub (SSUBSCRIBE/smessage: it asserts on
 * the unsolicited push) nor TLS. RESP2 only (0.14's reader has no RESP3).
 *
 * Threads: everything on the loop's thread, except the lookup of a host name (getaddrinfo),
 * which runs on a short-lived thread (redis_resolve.c); numeric addresses need none.
 *
 * Life of a connection: resolve -> TCP connect (non-blocking, TCP_NODELAY) -> TLS handshake
 * (rediss) -> handshake commands pipelined: AUTH [user] password, SELECT db, ROLE (sentinel:
 * must say master), PING -> up. Sentinel: before that, the sentinels are asked in turn
 * `SENTINEL get-master-addr-by-name NAME` (plain TCP; AUTH with ?sentinel_password=) and the answer
 * is connected to. Connect and handshake together are bounded by connect_timeout_ms. While up, a
 * reply that does not come within reply_timeout_ms drops the connection; an idle connection sends
 * PING every reply_timeout_ms so a dead peer is noticed (pub/sub connections too). An error reply
 * starting with READONLY, LOADING or MASTERDOWN goes to its callback and then drops the connection
 * (the master moved: reconnect, and look it up again with sentinel). Reconnects follow a doubling
 * backoff with jitter (a random delay in [d/2, d]). */
#ifndef HUB_REDIS_CLIENT_H
#define HUB_REDIS_CLIENT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duplex/loop.h"

#define HUB_REDIS_MAX_ADDRS 16
/* Commands queued but not yet written are bounded: past this, hub_redis_command refuses (-1). */
#define HUB_REDIS_MAX_OUTPUT (64u << 20)
/* An array reply may hold at most this many elements: hiredis 0.14's reader
 * allocates a multi-bulk's element array from the length the server sends
 * ("*600927001" would be 4.8 GB); a longer one is a protocol error. */
#define HUB_REDIS_MAX_ELEMENTS (1u << 20)

/* A hiredis reply reader that refuses arrays past HUB_REDIS_MAX_ELEMENTS
 * (redisReaderGetReply then fails); free with redisReaderFree. NULL: OOM. */
redisReader *hub_redis_reader_new(void);

typedef struct hub_redis_addr {
  char host[256];
  uint16_t port;
} hub_redis_addr;

typedef struct hub_redis_url {
  bool tls;      /* rediss:// (rediss+sentinel: TLS to the data node, not to the sentinels) */
  bool sentinel; /* redis+sentinel://h:p,h:p/mastername[/db] */
  bool cluster;  /* redis+cluster://h:p,h:p (seed nodes) */
  bool insecure; /* ?insecure=1: TLS without certificate checks (tests only) */
  hub_redis_addr addrs[HUB_REDIS_MAX_ADDRS]; /* the server, or the sentinels, or the seeds */
  unsigned naddrs;
  char master[128];            /* sentinel: the master's name */
  char user[128];              /* ACL user ("" for none: AUTH password only) */
  char password[256];          /* "" for none */
  char ca_file[256];           /* ?ca=/path: trust these CAs instead of the system store */
  char sentinel_password[256]; /* ?sentinel_password=: AUTH to the sentinels ("" for none) */
  int db;                      /* SELECT (0: none); not allowed with cluster */
} hub_redis_url;

/* Parse
 *   redis://[[user]:password@]host[:port][/db]            (port 6379)
 *   rediss://...                                          (TLS)
 *   redis+sentinel://[[user]:password@]h[:p],h[:p]/mastername[/db]   (port 26379)
 *   redis+cluster://[[user]:password@]h[:p],h[:p]         (seed nodes)
 * with rediss+sentinel and rediss+cluster for TLS; hosts are names, IPv4 or [IPv6]; user and
 * password may be %-encoded; options as a query: ?ca=/path/ca.pem, ?insecure=1 (TLS),
 * ?sentinel_password=PW (sentinel; %-encoded). Returns 0,
 * or -1 with a message for the operator in err ("redis URL: ... (expected redis://host:port/db)").
 * The password is never copied into err. */
int hub_redis_url_parse(const char *s, hub_redis_url *u, char *err, size_t errlen);

/* Cluster: the hash slot of a key (CRC16 of its {hash tag} if it has a non-empty one, of the whole
 * key otherwise, mod 16384) — the same as CLUSTER KEYSLOT. */
unsigned hub_redis_slot(const char *key, size_t len);

typedef struct hub_redis hub_redis;

/* A command's answer. reply is NULL when the connection was lost (or freed) before it came:
 * the command may or may not have run. The reply is freed after the callback returns. */
typedef void (*hub_redis_reply_fn)(hub_redis *r, redisReply *reply, void *priv);

typedef struct hub_redis_opts {
  const hub_redis_url *url;   /* copied */
  const hub_redis_addr *addr; /* connect here instead of url's (cluster: one per node); NULL */
  const char *name;           /* starts its log lines ("redis pubsub"; NULL: "redis"); copied */
  /* A subscriber connection: message/smessage/pmessage arrays, and (s|p)(un)subscribe
   * confirmations that no queued command waits for (Redis Cluster sends an sunsubscribe when a
   * slot moves), go to on_push. A (un)subscribe command's callback gets the confirmation of its
   * last channel (of the first, for an unsubscribe-all without channels). */
  bool pubsub;
  uint32_t connect_timeout_ms; /* connect + TLS + handshake (0: 2000) */
  uint32_t reply_timeout_ms;   /* no reply for this long: the connection is dropped (0: 5000) */
  uint32_t backoff_min_ms, backoff_max_ms; /* reconnect delays, doubling, jitter (0: 100, 5000) */
  /* Ready: connected, TLS done, AUTH and SELECT done (sentinel: after asking the sentinels for the
   * master and checking ROLE is master). Send subscriptions / scripts again here. */
  void (*on_up)(hub_redis *r, void *user);
  /* Lost (or a connect attempt failed): every pending callback has been called with NULL;
   * a reconnect is scheduled. `why` is for the log ("connection refused", "timed out",
   * "auth failed: WRONGPASS ...", "not a master", ...). Called with was_up=true once per
   * up->down transition, and with was_up=false for each failed attempt while down. */
  void (*on_down)(hub_redis *r, const char *why, bool was_up, void *user);
  void (*on_push)(hub_redis *r, redisReply *msg, void *user); /* pubsub only; msg freed after */
  void *user;
} hub_redis_opts;

/* Start connecting (the first attempt begins at once). NULL: out of memory, or a TLS context
 * could not be made (bad ?ca= file; logged). Callbacks run from loop callbacks only, never from
 * inside hub_redis_new or hub_redis_command. */
hub_redis *hub_redis_new(dx_loop *loop, const hub_redis_opts *o);
/* Pending callbacks are called with NULL first; on_down is not called. Allowed inside any of the
 * client's callbacks (the memory goes once they return). NULL is a no-op. */
void hub_redis_free(hub_redis *r);
bool hub_redis_up(const hub_redis *r);
/* The address connected to (or being connected to): for sentinel, the master's. */
const hub_redis_addr *hub_redis_addr_now(const hub_redis *r);
/* Queue a command (written at the end of the current loop callback, pipelined with the others).
 * 0, or -1 when not up or the output buffer would pass HUB_REDIS_MAX_OUTPUT (cb is not called).
 * lens NULL: the arguments are NUL-terminated strings. cb NULL: the reply is dropped. A blocking
 * command (BLPOP, XREAD BLOCK) needs a reply_timeout_ms above its block time. */
int hub_redis_command(hub_redis *r, hub_redis_reply_fn cb, void *priv, int argc, const char **argv,
                      const size_t *lens);
/* Commands whose replies have not come yet. */
size_t hub_redis_pending(const hub_redis *r);

#endif
