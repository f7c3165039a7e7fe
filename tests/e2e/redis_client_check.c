/* Checks of the hub's Redis client (src/hub/redis_client.c) against a real redis-server, run by
 * tests/e2e/test_hub_redis_client.sh, which starts the servers (tests/lib.sh) and passes URLs:
 *
 *   redis_client_check basic URL           10k pipelined commands, binary values, SELECT, bound
 *   redis_client_check reentry URL         commands queued from callbacks; free inside callbacks
 *   redis_client_check names PORT          redis://localhost:PORT; an unknown name
 *   redis_client_check pubsub URL          SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE pushes, in order
 *   redis_client_check auth GOOD BAD NONE  a right password, a wrong one, none: clear reasons
 *   redis_client_check restart URL         prints "up 1", waits for the test to kill and restart
 *                                          redis (pending callback -> NULL, on_down), "up 2"
 *   redis_client_check timeout URL         CLIENT PAUSE: reply timeout -> down -> up again
 *   redis_client_check tls URL BADURL      rediss:// with ?ca=; an untrusted server refused
 *   redis_client_check sentinel URL SENTINEL_PORT MASTER_PORT REPLICA_PORT
 *                                          master found, SENTINEL FAILOVER -> the new master
 *   redis_client_check sentinel-auth GOOD BAD NONE   sentinels with requirepass
 *   redis_client_check master-killed URL   prints "up PORT"; the test kills that master; up again
 *                                          on the promoted replica
 *   redis_client_check cluster URL         hub_redis_slot == CLUSTER KEYSLOT; SSUBSCRIBE on the
 *                                          owner, MOVED elsewhere, sunsubscribe when a slot moves
 *
 * One line per check ("ok - NAME" / "not ok - NAME: WHY"); every wait is bounded. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/log.h"
#include "duplex/loop.h"
#include "hub/redis_client.h"
#include "redis_check.h"

/* A client with flags its callbacks set. */
typedef struct tclient {
  hub_redis *r;
  hub_redis_url url;
  bool up, down_seen;
  unsigned ups, downs;
  bool last_was_up;
  char why[256];
  char push_text[256][128]; /* each push: its strings and integers joined by "|" */
  unsigned npush;
} tclient;

static void t_up(hub_redis *r, void *user) {
  tclient *t = user;
  (void)r;
  t->up = true;
  t->ups++;
}

static void t_down(hub_redis *r, const char *why, bool was_up, void *user) {
  tclient *t = user;
  (void)r;
  t->up = false;
  t->down_seen = true;
  t->downs++;
  t->last_was_up = was_up;
  snprintf(t->why, sizeof t->why, "%s", why);
}

static void t_push(hub_redis *r, redisReply *m, void *user) {
  tclient *t = user;
  (void)r;
  if (t->npush >= 256) return;
  push_text(m, t->push_text[t->npush], sizeof t->push_text[t->npush]);
  t->npush++;
}

static void tclient_start(tclient *t, const char *url, const hub_redis_addr *addr, bool pubsub,
                          uint32_t reply_timeout) {
  memset(t, 0, sizeof *t);
  parse_url(url, &t->url);
  hub_redis_opts o = {.url = &t->url,
                      .addr = addr,
                      .name = pubsub ? "redis test pubsub" : "redis test",
                      .pubsub = pubsub,
                      .connect_timeout_ms = 1000,
                      .reply_timeout_ms = reply_timeout ? reply_timeout : 5000,
                      .backoff_min_ms = 50,
                      .backoff_max_ms = 400,
                      .on_up = t_up,
                      .on_down = t_down,
                      .on_push = t_push,
                      .user = t};
  t->r = hub_redis_new(loop, &o);
  if (!t->r) {
    printf("not ok - hub_redis_new %s\n", url);
    exit(1);
  }
}

/* A command whose reply is kept (copied to text) for synchronous-looking checks. */
typedef struct result {
  bool done, null;
  int type;
  long long integer;
  char str[512];
  size_t len, elements;
  char elem[8][128];
} result;

static void keep(hub_redis *r, redisReply *rep, void *priv) {
  (void)r;
  result *res = priv;
  res->done = true;
  if (!rep) {
    res->null = true;
    return;
  }
  res->type = rep->type;
  res->integer = rep->integer;
  if (rep->str) {
    res->len = rep->len;
    memcpy(res->str, rep->str, rep->len < sizeof res->str - 1 ? rep->len : sizeof res->str - 1);
  }
  res->elements = rep->elements;
  for (size_t i = 0; i < rep->elements && i < 8; i++)
    if (rep->element[i]->str)
      snprintf(res->elem[i], sizeof res->elem[i], "%.*s", (int)rep->element[i]->len,
               rep->element[i]->str);
}

/* Send argv (NULL-terminated) and wait for the reply (3 s). */
static result cmd(tclient *t, ...) {
  const char *argv[16];
  int argc = 0;
  va_list ap;
  va_start(ap, t);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < 16) argv[argc++] = a;
  va_end(ap);
  result res;
  memset(&res, 0, sizeof res);
  if (hub_redis_command(t->r, keep, &res, argc, argv, NULL) != 0) {
    res.null = true;
    return res;
  }
  run_until(&res.done, 3000);
  return res;
}

static bool wait_up(tclient *t, uint64_t ms) { return run_until(&t->up, ms); }

/* ---- basic ------------------------------------------------------------ */

typedef struct order {
  long long next, bad, nulls;
  unsigned count;
} order;

static void on_incr(hub_redis *r, redisReply *rep, void *priv) {
  (void)r;
  order *o = priv;
  o->count++;
  if (!rep) {
    o->nulls++;
    return;
  }
  if (rep->type != REDIS_REPLY_INTEGER || rep->integer != ++o->next) o->bad++;
}

static void mode_basic(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 0);
  check(hub_redis_command(t.r, keep, NULL, 1, (const char *[]){"PING"}, NULL) == -1,
        "a command before up is refused", "accepted");
  check(wait_up(&t, 5000), "connects", "not up: %s", t.why);
  result res = cmd(&t, "DEL", "ctr", NULL);
  check(res.done && !res.null, "DEL", "no reply");
  /* 10k pipelined INCRs, queued in one go: replies come back in order. */
  order o = {0};
  for (int i = 0; i < 10000; i++)
    if (hub_redis_command(t.r, on_incr, &o, 2, (const char *[]){"INCR", "ctr"}, NULL) != 0) o.bad++;
  check(hub_redis_pending(t.r) == 10000, "10k commands pending", "%zu", hub_redis_pending(t.r));
  uint64_t t0 = dx_loop_now(loop);
  for (uint64_t end = t0 + 10000; o.count < 10000 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  check(o.count == 10000 && o.bad == 0 && o.nulls == 0, "10k pipelined INCR replies in order",
        "count %u, out of order %lld, NULL %lld", o.count, o.bad, o.nulls);
  fprintf(stderr, "10k pipelined INCR: %llu ms\n", (unsigned long long)(dx_loop_now(loop) - t0));
  /* Binary-safe arguments and replies. */
  const char val[] = {'a', 0, '\r', '\n', 'b'};
  res.done = false;
  hub_redis_command(t.r, keep, &res, 3, (const char *[]){"SET", "bin", val},
                    (const size_t[]){3, 3, sizeof val});
  run_until(&res.done, 3000);
  res = cmd(&t, "GET", "bin", NULL);
  check(res.type == REDIS_REPLY_STRING && res.len == sizeof val &&
            !memcmp(res.str, val, sizeof val),
        "binary value round trip", "type %d len %zu", res.type, res.len);
  res = cmd(&t, "NOSUCHCOMMAND", NULL);
  check(res.type == REDIS_REPLY_ERROR && strstr(res.str, "unknown command"),
        "an error reply reaches its callback", "type %d '%s'", res.type, res.str);
  check(hub_redis_up(t.r), "an error reply keeps the connection", "down: %s", t.why);
  /* SELECT from the URL. */
  res = cmd(&t, "CLIENT", "INFO", NULL);
  char want[32];
  snprintf(want, sizeof want, " db=%d ", t.url.db);
  check(res.type == REDIS_REPLY_STRING && strstr(res.str, want), "SELECT from the URL",
        "want '%s' in '%s'", want, res.str);
  /* The output bound: 1 MiB values queued in one go are refused past 64 MiB. */
  size_t big = 1 << 20;
  char *v = malloc(big);
  memset(v, 'x', big);
  int accepted = 0, refused = 0;
  order ob = {0};
  for (int i = 0; i < 70; i++) {
    if (hub_redis_command(t.r, on_incr, &ob, 3, (const char *[]){"SET", "big", v},
                          (const size_t[]){3, 3, big}) == 0)
      accepted++;
    else
      refused++;
  }
  free(v);
  check(accepted == 63 && refused == 7, "output buffer bounded at 64 MiB",
        "accepted %d, refused %d", accepted, refused);
  for (uint64_t end = dx_loop_now(loop) + 20000;
       ob.count < (unsigned)accepted && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  check(ob.count == (unsigned)accepted && ob.nulls == 0, "the accepted big commands are answered",
        "%u of %d, NULL %lld", ob.count, accepted, ob.nulls);
  cmd(&t, "DEL", "big", "bin", "ctr", NULL);
  /* Free with commands pending: their callbacks get NULL. */
  order of = {0};
  for (int i = 0; i < 5; i++)
    hub_redis_command(t.r, on_incr, &of, 1, (const char *[]){"PING"}, NULL);
  hub_redis_free(t.r);
  check(of.nulls == 5, "free: pending callbacks get NULL", "%lld", of.nulls);
}

/* Callbacks that queue more commands, or free the client in the middle of a batch of replies. */
typedef struct chain {
  tclient *t;
  int left, nulls, done;
} chain;

static void on_chain(hub_redis *r, redisReply *rep, void *priv) {
  chain *c = priv;
  if (!rep) {
    c->nulls++;
    return;
  }
  if (--c->left > 0) {
    if (hub_redis_command(r, on_chain, c, 2, (const char *[]){"INCR", "chain"}, NULL) != 0)
      c->nulls++;
  } else {
    c->done = 1;
  }
}

typedef struct killer {
  int seen, nulls, after_free;
  bool freed;
} killer;

static void on_kill(hub_redis *r, redisReply *rep, void *priv) {
  killer *k = priv;
  if (!rep) {
    k->nulls++;
    return;
  }
  if (k->freed) k->after_free++;
  if (++k->seen == 10) {
    k->freed = true;
    hub_redis_free(r);
  }
}

static tclient *free_in_push_t;
static void free_in_push(hub_redis *r, redisReply *m, void *user) {
  (void)m, (void)user;
  hub_redis_free(r);
  free_in_push_t->down_seen = true; /* "done" */
}

static void mode_reentry(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 0);
  check(wait_up(&t, 5000), "connects", "%s", t.why);
  chain c = {.t = &t, .left = 2000};
  hub_redis_command(t.r, on_chain, &c, 2, (const char *[]){"INCR", "chain"}, NULL);
  for (uint64_t end = dx_loop_now(loop) + 10000; !c.done && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  check(c.done && !c.nulls, "2000 commands each queued by the previous one's callback",
        "left %d nulls %d", c.left, c.nulls);
  /* Free inside the 10th of 100 pipelined replies (read in one go): the other 90 get NULL. */
  killer k = {0};
  for (int i = 0; i < 100; i++)
    hub_redis_command(t.r, on_kill, &k, 1, (const char *[]){"PING"}, NULL);
  for (uint64_t end = dx_loop_now(loop) + 3000; !k.freed && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  dx_loop_run_once(loop, 50);
  check(k.freed && k.seen == 10 && k.nulls == 90 && !k.after_free,
        "free inside a reply callback: the rest get NULL, nothing after",
        "seen %d nulls %d after %d", k.seen, k.nulls, k.after_free);
  /* Free inside on_push, with more pushes read in the same go. */
  tclient s;
  memset(&s, 0, sizeof s);
  free_in_push_t = &s;
  tclient_start(&t, url, NULL, false, 0);
  hub_redis_url u;
  parse_url(url, &u);
  hub_redis_opts o = {
      .url = &u, .pubsub = true, .on_up = t_up, .on_push = free_in_push, .user = &s};
  s.r = hub_redis_new(loop, &o);
  check(wait_up(&s, 5000) && wait_up(&t, 5000), "connects again", "%s", t.why);
  result res;
  memset(&res, 0, sizeof res);
  hub_redis_command(s.r, keep, &res, 2, (const char *[]){"SUBSCRIBE", "reentry"}, NULL);
  run_until(&res.done, 3000);
  for (int i = 0; i < 5; i++)
    hub_redis_command(t.r, NULL, NULL, 3, (const char *[]){"PUBLISH", "reentry", "x"}, NULL);
  run_until(&s.down_seen, 3000);
  dx_loop_run_once(loop, 50);
  check(s.down_seen, "free inside on_push", "no push");
  hub_redis_free(t.r);
}

/* Host names go through the lookup thread. */
static void mode_names(const char *port) {
  char url[128];
  snprintf(url, sizeof url, "redis://localhost:%s", port);
  tclient t;
  tclient_start(&t, url, NULL, false, 0);
  check(wait_up(&t, 5000), "redis://localhost:PORT (a name, looked up off the loop)", "%s", t.why);
  result res = cmd(&t, "PING", NULL);
  check(res.type == REDIS_REPLY_STATUS, "commands", "type %d", res.type);
  hub_redis_free(t.r);
  tclient_start(&t, "redis://nonexistent.invalid:6379", NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen &&
            (strstr(t.why, "cannot resolve nonexistent.invalid") || strstr(t.why, "timed out")),
        "an unknown name: down with the reason", "why '%s'", t.why);
  fprintf(stderr, "unknown name: %s\n", t.why);
  hub_redis_free(t.r);
}

/* ---- pubsub ----------------------------------------------------------- */

static void mode_pubsub(const char *url) {
  tclient c, s;
  tclient_start(&c, url, NULL, false, 0);
  tclient_start(&s, url, NULL, true, 0);
  check(wait_up(&c, 5000) && wait_up(&s, 5000), "both connect", "%s / %s", c.why, s.why);
  result res = cmd(&s, "SUBSCRIBE", "ch1", "ch2", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "subscribe") &&
            !strcmp(res.elem[1], "ch2") && s.npush == 0,
        "SUBSCRIBE of 2 channels: one callback, with the last confirmation",
        "type %d %s %s, pushes %u", res.type, res.elem[0], res.elem[1], s.npush);
  res = cmd(&s, "PSUBSCRIBE", "p.*", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "psubscribe"), "PSUBSCRIBE",
        "type %d %s", res.type, res.elem[0]);
  res = cmd(&s, "SSUBSCRIBE", "s1", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "ssubscribe"), "SSUBSCRIBE",
        "type %d %s %s", res.type, res.elem[0], res.str);
  char msg[32];
  for (int i = 0; i < 100; i++) {
    snprintf(msg, sizeof msg, "m%d", i);
    hub_redis_command(c.r, NULL, NULL, 3, (const char *[]){"PUBLISH", i % 2 ? "ch2" : "ch1", msg},
                      NULL);
  }
  hub_redis_command(c.r, NULL, NULL, 3, (const char *[]){"PUBLISH", "p.x", "pm"}, NULL);
  hub_redis_command(c.r, NULL, NULL, 3, (const char *[]){"SPUBLISH", "s1", "sm"}, NULL);
  for (uint64_t end = dx_loop_now(loop) + 3000; s.npush < 102 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  int bad = 0;
  for (int i = 0; i < 100 && i < (int)s.npush; i++) {
    char want[64];
    snprintf(want, sizeof want, "message|%s|m%d", i % 2 ? "ch2" : "ch1", i);
    if (strcmp(s.push_text[i], want)) bad++;
  }
  check(s.npush == 102 && bad == 0, "100 messages pushed in order",
        "%u pushes, %d wrong (first: %s)", s.npush, bad, s.push_text[0]);
  check(s.npush > 100 && !strcmp(s.push_text[100], "pmessage|p.*|p.x|pm"), "pmessage pushed", "%s",
        s.npush > 100 ? s.push_text[100] : "none");
  check(s.npush > 101 && !strcmp(s.push_text[101], "smessage|s1|sm"), "smessage pushed", "%s",
        s.npush > 101 ? s.push_text[101] : "none");
  unsigned before = s.npush;
  res = cmd(&s, "UNSUBSCRIBE", "ch1", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "unsubscribe") &&
            !strcmp(res.elem[1], "ch1") && s.npush == before,
        "UNSUBSCRIBE", "%s %s", res.elem[0], res.elem[1]);
  res = cmd(&s, "PING", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "pong"), "PING while subscribed",
        "type %d %s", res.type, res.elem[0]);
  /* An (s)unsubscribe that no command asked for goes to on_push: CLIENT KILL is not it, but an
   * SUNSUBSCRIBE confirmation queued behind another channel's is matched by channel. */
  cmd(&s, "SSUBSCRIBE", "s2", NULL);
  res = cmd(&s, "SUNSUBSCRIBE", "s2", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[1], "s2"), "SUNSUBSCRIBE", "%s %s",
        res.elem[0], res.elem[1]);
  hub_redis_free(s.r);
  hub_redis_free(c.r);
}

/* ---- auth ------------------------------------------------------------- */

static void mode_auth(const char *good, const char *bad, const char *none) {
  tclient t;
  tclient_start(&t, good, NULL, false, 0);
  check(wait_up(&t, 5000), "the right password", "not up: %s", t.why);
  result res = cmd(&t, "PING", NULL);
  check(res.type == REDIS_REPLY_STATUS && !strcmp(res.str, "PONG"), "commands after AUTH",
        "type %d", res.type);
  hub_redis_free(t.r);
  tclient_start(&t, bad, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && !t.last_was_up && strstr(t.why, "auth failed: WRONGPASS"),
        "a wrong password: down with the reason", "down %d why '%s'", t.down_seen, t.why);
  t.down_seen = false;
  run_until(&t.down_seen, 5000);
  check(t.down_seen && !t.up && t.downs >= 2, "retried with backoff, still down", "downs %u",
        t.downs);
  hub_redis_free(t.r);
  tclient_start(&t, none, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && strstr(t.why, "auth failed: NOAUTH"), "no password: down with the reason",
        "why '%s'", t.why);
  hub_redis_free(t.r);
}

/* ---- restart (the test script kills and restarts redis) --------------- */

static void mode_restart(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 60000);
  check(wait_up(&t, 5000), "connects", "not up: %s", t.why);
  result blocked;
  memset(&blocked, 0, sizeof blocked);
  hub_redis_command(t.r, keep, &blocked, 3, (const char *[]){"BLPOP", "nothing", "0"}, NULL);
  dx_loop_run_once(loop, 50);
  printf("up 1\n");
  fflush(stdout);
  run_until(&t.down_seen, 20000);
  check(t.down_seen && t.last_was_up, "redis killed: on_down(was_up)", "why '%s'", t.why);
  check(blocked.done && blocked.null, "the pending command's callback got NULL", "done %d null %d",
        blocked.done, blocked.null);
  check(hub_redis_command(t.r, keep, NULL, 1, (const char *[]){"PING"}, NULL) == -1,
        "commands refused while down", "accepted");
  printf("down: %s\n", t.why);
  fflush(stdout);
  run_until(&t.up, 20000);
  check(t.up && t.ups == 2, "redis restarted: on_up again", "ups %u, why '%s'", t.ups, t.why);
  result res = cmd(&t, "PING", NULL);
  check(res.type == REDIS_REPLY_STATUS, "commands after the reconnect", "type %d", res.type);
  printf("up 2 (%u failed attempts while down)\n", t.downs - 1);
  hub_redis_free(t.r);
}

/* ---- reply timeout ---------------------------------------------------- */

static void mode_timeout(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 500);
  check(wait_up(&t, 5000), "connects", "not up: %s", t.why);
  result res = cmd(&t, "CLIENT", "PAUSE", "2000", "ALL", NULL);
  check(res.type == REDIS_REPLY_STATUS, "CLIENT PAUSE", "type %d %s", res.type, res.str);
  uint64_t t0 = dx_loop_now(loop);
  result ping;
  memset(&ping, 0, sizeof ping);
  hub_redis_command(t.r, keep, &ping, 1, (const char *[]){"PING"}, NULL);
  run_until(&t.down_seen, 3000);
  uint64_t dt = dx_loop_now(loop) - t0;
  check(t.down_seen && strstr(t.why, "reply timed out") && dt >= 450 && dt < 1500,
        "no reply in 500 ms: dropped", "why '%s' after %llu ms", t.why, (unsigned long long)dt);
  check(ping.done && ping.null, "the late command's callback got NULL", "done %d", ping.done);
  run_until(&t.up, 8000);
  check(t.up, "up again after the pause", "why '%s'", t.why);
  fprintf(stderr, "up again %llu ms after the pause began (%u downs)\n",
          (unsigned long long)(dx_loop_now(loop) - t0), t.downs);
  hub_redis_free(t.r);
}

/* ---- TLS -------------------------------------------------------------- */

static void mode_tls(const char *url, const char *bad) {
  tclient t;
  tclient_start(&t, url, NULL, false, 0);
  check(wait_up(&t, 5000), "rediss:// with ?ca= connects", "not up: %s", t.why);
  order o = {0};
  for (int i = 0; i < 2000; i++)
    hub_redis_command(t.r, on_incr, &o, 2, (const char *[]){"INCR", "tlsctr"}, NULL);
  for (uint64_t end = dx_loop_now(loop) + 10000; o.count < 2000 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  check(o.count == 2000 && !o.bad, "2000 pipelined INCR over TLS in order", "%u, bad %lld", o.count,
        o.bad);
  size_t big = 3 << 20;
  char *v = malloc(big);
  memset(v, 'y', big);
  result res;
  memset(&res, 0, sizeof res);
  hub_redis_command(t.r, keep, &res, 3, (const char *[]){"SET", "tlsbig", v},
                    (const size_t[]){3, 6, big});
  free(v);
  run_until(&res.done, 5000);
  res = cmd(&t, "STRLEN", "tlsbig", NULL);
  check(res.type == REDIS_REPLY_INTEGER && res.integer == (long long)big,
        "a 3 MiB value over TLS (partial writes)", "%lld", res.integer);
  cmd(&t, "DEL", "tlsbig", "tlsctr", NULL);
  hub_redis_free(t.r);
  tclient_start(&t, bad, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && strstr(t.why, "certificate"), "an untrusted certificate is refused",
        "why '%s'", t.why);
  hub_redis_free(t.r);
}

/* ---- sentinel --------------------------------------------------------- */

static void mode_sentinel(const char *url, const char *sentinel_port, int master, int replica) {
  tclient t;
  tclient_start(&t, url, NULL, false, 1000);
  check(wait_up(&t, 8000), "the master found through the sentinels", "not up: %s", t.why);
  check(hub_redis_addr_now(t.r)->port == master, "connected to the master's port", "%u",
        hub_redis_addr_now(t.r)->port);
  result res = cmd(&t, "SET", "before", "1", NULL);
  check(res.type == REDIS_REPLY_STATUS, "a write to the master", "type %d %s", res.type, res.str);
  /* A write to a replica: -READONLY reaches the callback, then the connection is dropped (the
   * master moved, as far as this client can tell) and made again. */
  char rurl[64];
  snprintf(rurl, sizeof rurl, "redis://127.0.0.1:%d", replica);
  tclient ro;
  tclient_start(&ro, rurl, NULL, false, 0);
  check(wait_up(&ro, 5000), "connects to the replica", "%s", ro.why);
  res = cmd(&ro, "SET", "x", "1", NULL);
  check(res.type == REDIS_REPLY_ERROR && !strncmp(res.str, "READONLY", 8),
        "a write to a replica: -READONLY to the callback", "type %d '%s'", res.type, res.str);
  run_until(&ro.down_seen, 1000);
  check(ro.down_seen && ro.last_was_up && strstr(ro.why, "READONLY"), "then dropped", "why '%s'",
        ro.why);
  ro.up = false;
  check(wait_up(&ro, 3000), "and made again", "%s", ro.why);
  hub_redis_free(ro.r);
  /* Fail over through one sentinel (plain redis:// to it). */
  char surl[64];
  snprintf(surl, sizeof surl, "redis://127.0.0.1:%s", sentinel_port);
  tclient s;
  tclient_start(&s, surl, NULL, false, 0);
  check(wait_up(&s, 5000), "connects to a sentinel", "%s", s.why);
  /* A sentinel that names the replica as master "fake": ROLE says it is not, and the client does
   * not take it. */
  char rport[16];
  snprintf(rport, sizeof rport, "%d", replica);
  res = cmd(&s, "SENTINEL", "MONITOR", "fake", "127.0.0.1", rport, "1", NULL);
  check(res.type == REDIS_REPLY_STATUS, "SENTINEL MONITOR fake (a replica)", "'%s'", res.str);
  char furl[64];
  snprintf(furl, sizeof furl, "redis+sentinel://127.0.0.1:%s/fake", sentinel_port);
  tclient f;
  tclient_start(&f, furl, NULL, false, 0);
  run_until(&f.down_seen, 5000);
  check(f.down_seen && !f.up && strstr(f.why, "not a master (ROLE says slave)"),
        "a replica named as master: not a master", "why '%s'", f.why);
  hub_redis_free(f.r);
  cmd(&s, "SENTINEL", "REMOVE", "fake", NULL);
  uint64_t t0 = dx_loop_now(loop);
  res = cmd(&s, "SENTINEL", "FAILOVER", t.url.master, NULL);
  check(res.type == REDIS_REPLY_STATUS, "SENTINEL FAILOVER", "type %d %s", res.type, res.str);
  /* Keep writing: the old master turns replica (connections killed, or -READONLY). */
  unsigned ups = t.ups;
  for (uint64_t end = t0 + 20000; dx_loop_now(loop) < end;) {
    if (t.ups > ups && hub_redis_addr_now(t.r)->port == replica) break;
    if (hub_redis_up(t.r))
      hub_redis_command(t.r, NULL, NULL, 3, (const char *[]){"SET", "k", "v"}, NULL);
    dx_loop_run_once(loop, 50);
  }
  check(t.ups > ups && t.up && hub_redis_addr_now(t.r)->port == replica,
        "after the failover: up on the new master", "ups %u, port %u, why '%s'", t.ups,
        hub_redis_addr_now(t.r)->port, t.why);
  fprintf(stderr,
          "failover: up on the new master %llu ms after SENTINEL FAILOVER (last down: %s)\n",
          (unsigned long long)(dx_loop_now(loop) - t0), t.why);
  res = cmd(&t, "SET", "after", "1", NULL);
  check(res.type == REDIS_REPLY_STATUS, "a write to the new master", "type %d %s", res.type,
        res.str);
  hub_redis_free(s.r);
  hub_redis_free(t.r);
  /* A master no sentinel knows: every sentinel is asked, then down with the reason. */
  char nourl[512];
  snprintf(nourl, sizeof nourl, "%.*s/nosuch", (int)(strrchr(url, '/') - url), url);
  tclient_start(&t, nourl, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && strstr(t.why, "no sentinel answered for master 'nosuch'") &&
            strstr(t.why, "sentinel knows no master 'nosuch'"),
        "an unknown master name: down with the reason", "why '%s'", t.why);
  hub_redis_free(t.r);
}

/* Sentinels with requirepass: ?sentinel_password= right, wrong, missing. */
static void mode_sentinel_auth(const char *good, const char *bad, const char *none) {
  tclient t;
  tclient_start(&t, good, NULL, false, 0);
  check(wait_up(&t, 8000), "sentinels with a password: ?sentinel_password=", "%s", t.why);
  result res = cmd(&t, "SET", "k", "v", NULL);
  check(res.type == REDIS_REPLY_STATUS, "a write to the master", "type %d", res.type);
  hub_redis_free(t.r);
  tclient_start(&t, bad, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && strstr(t.why, "auth failed: WRONGPASS"), "a wrong sentinel password",
        "why '%s'", t.why);
  hub_redis_free(t.r);
  tclient_start(&t, none, NULL, false, 0);
  run_until(&t.down_seen, 5000);
  check(t.down_seen && strstr(t.why, "NOAUTH"), "no sentinel password", "why '%s'", t.why);
  hub_redis_free(t.r);
}

/* The test script kills the master: up again on whichever the sentinels promote. */
static void mode_master_killed(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 1000);
  check(wait_up(&t, 8000), "the master found through the sentinels", "not up: %s", t.why);
  unsigned first = hub_redis_addr_now(t.r)->port;
  printf("up %u\n", first);
  fflush(stdout);
  run_until(&t.down_seen, 20000);
  check(t.down_seen && t.last_was_up, "master killed: on_down(was_up)", "why '%s'", t.why);
  uint64_t t0 = dx_loop_now(loop);
  for (uint64_t end = t0 + 30000; dx_loop_now(loop) < end;) {
    if (t.up && hub_redis_addr_now(t.r)->port != first) break;
    dx_loop_run_once(loop, 50);
  }
  check(t.up && hub_redis_addr_now(t.r)->port != first, "up on the promoted replica",
        "up %d port %u why '%s'", t.up, hub_redis_addr_now(t.r)->port, t.why);
  fprintf(stderr, "master killed: up on %u %llu ms after the drop (%u failed attempts)\n",
          hub_redis_addr_now(t.r)->port, (unsigned long long)(dx_loop_now(loop) - t0), t.downs - 1);
  result res = cmd(&t, "SET", "after-kill", "1", NULL);
  check(res.type == REDIS_REPLY_STATUS, "a write to the promoted master", "type %d %s", res.type,
        res.str);
  hub_redis_free(t.r);
}

/* ---- cluster ---------------------------------------------------------- */

static void mode_cluster(const char *url) {
  tclient t;
  tclient_start(&t, url, NULL, false, 0);
  check(wait_up(&t, 5000), "connects to a seed", "%s", t.why);
  static const char *const keys[] = {"foo",
                                     "bar",
                                     "{user1000}.following",
                                     "{user1000}.followers",
                                     "foo{}{bar}",
                                     "foo{{bar}}zap",
                                     "foo{bar}{zap}",
                                     "{}",
                                     "{",
                                     "}{",
                                     "{bar",
                                     "a{b}",
                                     "dx:{topic/a}:stream",
                                     "",
                                     "123456789",
                                     "\xff\xfe binary"};
  int bad = 0;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    result res = cmd(&t, "CLUSTER", "KEYSLOT", keys[i], NULL);
    unsigned mine = hub_redis_slot(keys[i], strlen(keys[i]));
    if (res.type != REDIS_REPLY_INTEGER || res.integer != mine) {
      bad++;
      fprintf(stderr, "slot of '%s': ours %u, redis %lld\n", keys[i], mine, res.integer);
    }
  }
  check(!bad, "hub_redis_slot == CLUSTER KEYSLOT for 16 keys with hash tags", "%d differ", bad);
  /* A client on each node (opts.addr), and their ids. */
  tclient node[3];
  char id[3][64];
  for (int i = 0; i < 3; i++) {
    tclient_start(&node[i], url, &t.url.addrs[i], false, 0);
    check(wait_up(&node[i], 5000), "connects to a node given by opts.addr", "%s", node[i].why);
    result res = cmd(&node[i], "CLUSTER", "MYID", NULL);
    snprintf(id[i], sizeof id[i], "%.*s", (int)res.len, res.str);
  }
  /* A shard channel that node 0 does not own: SSUBSCRIBE there gets -MOVED slot host:port. */
  tclient p0;
  tclient_start(&p0, url, &t.url.addrs[0], true, 0);
  check(wait_up(&p0, 5000), "pubsub client on node 0", "%s", p0.why);
  char chan[32] = "";
  int owner = -1;
  for (int i = 0; i < 50 && owner < 0; i++) {
    snprintf(chan, sizeof chan, "news%d", i);
    result res = cmd(&p0, "SSUBSCRIBE", chan, NULL);
    if (res.type != REDIS_REPLY_ERROR) {
      cmd(&p0, "SUNSUBSCRIBE", chan, NULL);
      continue;
    }
    const char *colon = strrchr(res.str, ':');
    int port = colon ? atoi(colon + 1) : 0;
    for (int k = 0; k < 3; k++)
      if (t.url.addrs[k].port == port) owner = k;
    check(!strncmp(res.str, "MOVED ", 6) && owner > 0, "SSUBSCRIBE on a non-owner: -MOVED", "'%s'",
          res.str);
  }
  if (owner < 0) {
    hub_redis_free(p0.r);
    for (int i = 0; i < 3; i++) hub_redis_free(node[i].r);
    hub_redis_free(t.r);
    return;
  }
  check(p0.up && p0.npush == 0, "an error reply to SSUBSCRIBE is no push", "%u", p0.npush);
  tclient p;
  tclient_start(&p, url, &t.url.addrs[owner], true, 0);
  check(wait_up(&p, 5000), "pubsub client on the owner", "%s", p.why);
  result res = cmd(&p, "SSUBSCRIBE", chan, NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[1], chan), "SSUBSCRIBE on the owner",
        "type %d %s", res.type, res.str);
  cmd(&node[owner], "SPUBLISH", chan, "hello", NULL);
  for (uint64_t end = dx_loop_now(loop) + 3000; p.npush < 1 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  char want[96];
  snprintf(want, sizeof want, "smessage|%s|hello", chan);
  check(p.npush == 1 && !strcmp(p.push_text[0], want), "SPUBLISH -> smessage push", "%u %s",
        p.npush, p.npush ? p.push_text[0] : "");
  /* Move the (empty) slot to node 0: the owner tells its subscribers with an sunsubscribe that no
   * command asked for. */
  char slotstr[16];
  snprintf(slotstr, sizeof slotstr, "%u", hub_redis_slot(chan, strlen(chan)));
  result r1 = cmd(&node[0], "CLUSTER", "SETSLOT", slotstr, "IMPORTING", id[owner], NULL);
  result r2 = cmd(&node[owner], "CLUSTER", "SETSLOT", slotstr, "MIGRATING", id[0], NULL);
  int moved_ok = r1.type == REDIS_REPLY_STATUS && r2.type == REDIS_REPLY_STATUS;
  for (int i = 0; i < 3; i++) {
    result r3 = cmd(&node[i], "CLUSTER", "SETSLOT", slotstr, "NODE", id[0], NULL);
    if (r3.type != REDIS_REPLY_STATUS) {
      moved_ok = 0;
      fprintf(stderr, "SETSLOT NODE on %d: %s\n", i, r3.str);
    }
  }
  check(moved_ok, "slot moved with CLUSTER SETSLOT", "%s / %s", r1.str, r2.str);
  for (uint64_t end = dx_loop_now(loop) + 3000; p.npush < 2 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  snprintf(want, sizeof want, "sunsubscribe|%s|0", chan);
  check(p.npush == 2 && !strcmp(p.push_text[1], want) && hub_redis_up(p.r),
        "slot moved: an unsolicited sunsubscribe goes to on_push", "%u '%s'", p.npush,
        p.npush > 1 ? p.push_text[1] : "");
  res = cmd(&p, "SSUBSCRIBE", chan, NULL);
  check(res.type == REDIS_REPLY_ERROR && !strncmp(res.str, "MOVED", 5),
        "SSUBSCRIBE again on the old owner: -MOVED", "type %d '%s'", res.type, res.str);
  res = cmd(&p0, "SSUBSCRIBE", chan, NULL);
  check(res.type == REDIS_REPLY_ARRAY, "SSUBSCRIBE on the new owner", "type %d '%s'", res.type,
        res.str);
  hub_redis_free(p.r);
  hub_redis_free(p0.r);
  for (int i = 0; i < 3; i++) hub_redis_free(node[i].r);
  hub_redis_free(t.r);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("DX_TEST_DEBUG")) dx_log_set_level(DX_LOG_DEBUG);
  loop = dx_loop_new(NULL);
  const char *mode = argc > 2 ? argv[1] : "";
  if (!strcmp(mode, "basic"))
    mode_basic(argv[2]);
  else if (!strcmp(mode, "reentry"))
    mode_reentry(argv[2]);
  else if (!strcmp(mode, "names"))
    mode_names(argv[2]);
  else if (!strcmp(mode, "pubsub"))
    mode_pubsub(argv[2]);
  else if (!strcmp(mode, "auth") && argc == 5)
    mode_auth(argv[2], argv[3], argv[4]);
  else if (!strcmp(mode, "restart"))
    mode_restart(argv[2]);
  else if (!strcmp(mode, "timeout"))
    mode_timeout(argv[2]);
  else if (!strcmp(mode, "tls") && argc == 4)
    mode_tls(argv[2], argv[3]);
  else if (!strcmp(mode, "sentinel") && argc == 6)
    mode_sentinel(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
  else if (!strcmp(mode, "sentinel-auth") && argc == 5)
    mode_sentinel_auth(argv[2], argv[3], argv[4]);
  else if (!strcmp(mode, "master-killed"))
    mode_master_killed(argv[2]);
  else if (!strcmp(mode, "cluster"))
    mode_cluster(argv[2]);
  else {
    fprintf(stderr, "usage: see the top of redis_client_check.c\n");
    return 2;
  }
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  return failures ? 1 : 0;
}
