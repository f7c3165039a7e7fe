/* Checks of the hub's Redis router (src/hub/redis_router.c) against real redis-server instances,
 * run by tests/e2e/test_hub_redis_router.sh, which starts them (tests/lib.sh) and passes URLs:
 *
 *   redis_router_check single URL            one Redis: commands, SUBSCRIBE pushes, SCRIPT LOAD
 *                                            on "every master", free with a command pending
 *   redis_router_check cluster URL KEYFILE   3 masters: SETs for keys on every master (written to
 *                                            KEYFILE as "key value" for the script to check with
 *                                            redis-cli), MOVED after CLUSTER SETSLOT NODE, ASK
 *                                            during a migration, SSUBSCRIBE/SPUBLISH on every
 *                                            shard (also from an EVALSHA script), a subscribed
 *                                            channel's slot moved: sunsubscribe, subscribe again
 *   redis_router_check kill URL              prints "up PORT" (the master of key "victim"); the
 *                                            script kills it: "down" (both routers); CLUSTERDOWN
 *                                            from the others retried, then "restart": the script
 *                                            restarts it: up again, commands and pushes work
 *   redis_router_check failover URL          prints "up PORT" (the master of key "failover", which
 *                                            has a replica); the script kills it: "down", then up
 *                                            again on the promoted replica ("owner PORT")
 *   redis_router_check auth GOOD BAD         masters with requirepass: the right password, a
 *                                            wrong one (on_down says why, never up)
 *
 * One line per check ("ok - NAME" / "not ok - NAME: WHY"); every wait is bounded. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/log.h"
#include "duplex/loop.h"
#include "hub/redis_router.h"
#include "redis_check.h"

/* ---- a router with flags its callbacks set ------------------------------- */

typedef struct trouter {
  hub_redis_router *r;
  hub_redis_url url;
  bool up, down_seen;
  unsigned ups, downs, downs_was_up;
  char why[256];
  char push[64][160]; /* each push: its strings and integers joined by "|" */
  unsigned npush;
} trouter;

static void t_up(hub_redis_router *r, void *user) {
  trouter *t = user;
  (void)r;
  t->up = true;
  t->ups++;
}

static void t_down(hub_redis_router *r, const char *why, bool was_up, void *user) {
  trouter *t = user;
  (void)r;
  t->up = false;
  t->down_seen = true;
  t->downs++;
  if (was_up) t->downs_was_up++;
  snprintf(t->why, sizeof t->why, "%s", why);
}

static void t_push(hub_redis_router *r, redisReply *m, void *user) {
  trouter *t = user;
  (void)r;
  if (t->npush >= 64) return;
  push_text(m, t->push[t->npush], sizeof t->push[t->npush]);
  t->npush++;
}

static void trouter_start(trouter *t, const char *url, bool pubsub) {
  memset(t, 0, sizeof *t);
  parse_url(url, &t->url);
  hub_router_opts o = {.url = &t->url,
                       .name = pubsub ? "router test pubsub" : "router test",
                       .pubsub = pubsub,
                       .reply_timeout_ms = 3000,
                       .connect_timeout_ms = 1000,
                       .backoff_min_ms = 50,
                       .backoff_max_ms = 400,
                       .on_up = t_up,
                       .on_down = t_down,
                       .on_push = t_push,
                       .user = t};
  t->r = hub_router_new(loop, &o);
  if (!t->r) {
    printf("not ok - hub_router_new %s\n", url);
    exit(1);
  }
}

/* Wait until pushes reach n (3 s). */
static bool wait_pushes(trouter *t, unsigned n) {
  for (uint64_t end = dx_loop_now(loop) + 3000; t->npush < n && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  return t->npush >= n;
}

static bool has_push(const trouter *t, unsigned from, const char *want) {
  for (unsigned i = from; i < t->npush; i++)
    if (!strcmp(t->push[i], want)) return true;
  return false;
}

static bool has_push_prefix(const trouter *t, unsigned from, const char *want) {
  for (unsigned i = from; i < t->npush; i++)
    if (!strncmp(t->push[i], want, strlen(want))) return true;
  return false;
}

/* ---- replies kept for synchronous-looking checks ------------------------------ */

typedef struct result {
  bool done, null;
  int type;
  long long integer;
  char str[1024];
  size_t len, elements;
  char elem[4][128];
} result;

static void fill(result *res, const redisReply *rep) {
  res->done = true;
  if (!rep) {
    res->null = true;
    return;
  }
  res->type = rep->type;
  res->integer = rep->integer;
  if (rep->str) {
    res->len = rep->len < sizeof res->str - 1 ? rep->len : sizeof res->str - 1;
    memcpy(res->str, rep->str, res->len);
  }
  res->elements = rep->elements;
  for (size_t i = 0; i < rep->elements && i < 4; i++)
    if (rep->element[i]->str)
      snprintf(res->elem[i], sizeof res->elem[i], "%.*s", (int)rep->element[i]->len,
               rep->element[i]->str);
}

static void keep_r(hub_redis_router *r, redisReply *rep, void *priv) {
  (void)r;
  fill(priv, rep);
}

static void keep_c(hub_redis *r, redisReply *rep, void *priv) {
  (void)r;
  fill(priv, rep);
}

#define MAXARGS 16

/* Through the router, for `key` (NULL: any node); argv NULL-terminated; 5 s. */
static result rcmd(trouter *t, const char *key, ...) {
  const char *argv[MAXARGS];
  int argc = 0;
  va_list ap;
  va_start(ap, key);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < MAXARGS) argv[argc++] = a;
  va_end(ap);
  result res;
  memset(&res, 0, sizeof res);
  if (hub_router_command(t->r, key, key ? strlen(key) : 0, keep_r, &res, argc, argv, NULL) != 0) {
    res.null = true;
    snprintf(res.str, sizeof res.str, "refused");
    return res;
  }
  run_until(&res.done, 5000);
  return res;
}

/* ---- direct connections to the nodes (to set slots up and to look) ------------- */

typedef struct tnode {
  hub_redis *c;
  bool up;
  uint16_t port;
  char id[64];
} tnode;

static void n_up(hub_redis *r, void *user) {
  (void)r;
  ((tnode *)user)->up = true;
}

static void n_down(hub_redis *r, const char *why, bool was_up, void *user) {
  (void)r;
  (void)why;
  (void)was_up;
  ((tnode *)user)->up = false;
}

static result ncmd(tnode *n, ...) {
  const char *argv[MAXARGS];
  int argc = 0;
  va_list ap;
  va_start(ap, n);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < MAXARGS) argv[argc++] = a;
  va_end(ap);
  result res;
  memset(&res, 0, sizeof res);
  if (hub_redis_command(n->c, keep_c, &res, argc, argv, NULL) != 0) {
    res.null = true;
    return res;
  }
  run_until(&res.done, 5000);
  return res;
}

static void nodes_start(tnode *n, const hub_redis_url *u) {
  for (unsigned i = 0; i < 3; i++) {
    memset(&n[i], 0, sizeof n[i]);
    n[i].port = u->addrs[i].port;
    hub_redis_opts o = {.url = u,
                        .addr = &u->addrs[i],
                        .name = "node test",
                        .on_up = n_up,
                        .on_down = n_down,
                        .user = &n[i]};
    n[i].c = hub_redis_new(loop, &o);
    run_until(&n[i].up, 5000);
    result res = ncmd(&n[i], "CLUSTER", "MYID", NULL);
    snprintf(n[i].id, sizeof n[i].id, "%.*s", (int)res.len, res.str);
  }
}

/* Which of the three nodes the router sends `key` to now (-1: none). */
static int owner_of(trouter *t, tnode *n, const char *key) {
  char buf[300];
  hub_router_describe_key(t->r, key, strlen(key), buf, sizeof buf);
  const char *colon = strrchr(buf, ':');
  int port = colon ? atoi(colon + 1) : 0;
  for (int i = 0; i < 3; i++)
    if (n[i].port == port) return i;
  return -1;
}

/* Move an empty slot from node `from` to node `to` the way redis-cli --cluster does; with
 * finish false it stays half-way (MIGRATING/IMPORTING: -ASK for keys the source lacks). */
static bool move_slot(tnode *n, unsigned slot, int from, int to, bool finish) {
  char s[16];
  snprintf(s, sizeof s, "%u", slot);
  result a = ncmd(&n[to], "CLUSTER", "SETSLOT", s, "IMPORTING", n[from].id, NULL);
  result b = ncmd(&n[from], "CLUSTER", "SETSLOT", s, "MIGRATING", n[to].id, NULL);
  bool ok = a.type == REDIS_REPLY_STATUS && b.type == REDIS_REPLY_STATUS;
  if (!ok) fprintf(stderr, "SETSLOT: '%s' / '%s'\n", a.str, b.str);
  if (!finish) return ok;
  int order[3] = {to, from, 3 - to - from};
  for (int k = 0; k < 3; k++) {
    result c = ncmd(&n[order[k]], "CLUSTER", "SETSLOT", s, "NODE", n[to].id, NULL);
    if (c.type != REDIS_REPLY_STATUS) {
      fprintf(stderr, "SETSLOT NODE on %u: '%s'\n", n[order[k]].port, c.str);
      ok = false;
    }
  }
  return ok;
}

/* errorstat_NAME:count=N from INFO errorstats (0 when absent). */
static long errorstat(tnode *n, const char *name) {
  result res = ncmd(n, "INFO", "errorstats", NULL);
  char want[64];
  snprintf(want, sizeof want, "errorstat_%s:count=", name);
  const char *p = strstr(res.str, want);
  return p ? atol(p + strlen(want)) : 0;
}

/* A key whose slot the router sends to node `want`, and that no key above has used. */
static void key_on(trouter *t, tnode *n, int want, const char *prefix, char *out, size_t cap) {
  for (int i = 0; i < 1000; i++) {
    snprintf(out, cap, "%s%d", prefix, i);
    if (owner_of(t, n, out) == want) return;
  }
}

/* 10k INCRs of one key pipelined through the router: answered in order; the time is printed. */
typedef struct order {
  long long next, bad;
  unsigned count;
} order;

static void on_incr(hub_redis_router *r, redisReply *rep, void *priv) {
  (void)r;
  order *o = priv;
  o->count++;
  if (!rep || rep->type != REDIS_REPLY_INTEGER || rep->integer != ++o->next) o->bad++;
}

static void check_pipeline(trouter *t, const char *label) {
  const char *key = "ctr{pipe}";
  rcmd(t, key, "DEL", key, NULL);
  order o = {0};
  uint64_t t0 = dx_loop_now(loop);
  for (int i = 0; i < 10000; i++)
    if (hub_router_command(t->r, key, strlen(key), on_incr, &o, 2, (const char *[]){"INCR", key},
                           NULL) != 0)
      o.bad++;
  for (uint64_t end = t0 + 10000; o.count < 10000 && dx_loop_now(loop) < end;)
    dx_loop_run_once(loop, 20);
  char name[96];
  snprintf(name, sizeof name, "%s: 10k pipelined INCR answered in order", label);
  check(o.count == 10000 && !o.bad, name, "%u answers, %lld wrong", o.count, o.bad);
  fprintf(stderr, "%s: 10k pipelined INCR through the router: %llu ms\n", label,
          (unsigned long long)(dx_loop_now(loop) - t0));
}

/* ---- single --------------------------------------------------------------- */

static void mode_single(const char *url) {
  trouter t, p;
  trouter_start(&t, url, false);
  trouter_start(&p, url, true);
  check(!hub_router_sharded(t.r) && hub_router_masters(t.r) == 1, "single: not sharded, 1 master",
        "sharded %d masters %u", hub_router_sharded(t.r), hub_router_masters(t.r));
  check(hub_router_command(t.r, "k", 1, keep_r, NULL, 1, (const char *[]){"PING"}, NULL) == -1,
        "single: a command before up is refused", "accepted");
  check(run_until(&t.up, 5000) && run_until(&p.up, 5000), "single: both routers up", "%s / %s",
        t.why, p.why);
  check(hub_router_up(t.r) && t.ups == 1, "single: hub_router_up, one on_up", "%u", t.ups);
  result res = rcmd(&t, "a", "SET", "a", "1", NULL);
  check(res.type == REDIS_REPLY_STATUS && !strcmp(res.str, "OK"), "single: SET", "%d '%s'",
        res.type, res.str);
  res = rcmd(&t, NULL, "GET", "a", NULL);
  check(res.type == REDIS_REPLY_STRING && !strcmp(res.str, "1"), "single: GET with no key",
        "%d '%s'", res.type, res.str);
  /* Binary arguments with lens. */
  const char val[] = {'x', 0, 'y'};
  memset(&res, 0, sizeof res);
  hub_router_command(t.r, "b", 1, keep_r, &res, 3, (const char *[]){"SET", "b", val},
                     (const size_t[]){3, 1, 3});
  run_until(&res.done, 3000);
  res = rcmd(&t, "b", "STRLEN", "b", NULL);
  check(res.type == REDIS_REPLY_INTEGER && res.integer == 3, "single: binary value with lens",
        "%lld", res.integer);
  /* SCRIPT LOAD everywhere (here: the one node), then EVALSHA. */
  const char *load[] = {"SCRIPT", "LOAD", "return 42"};
  check(hub_router_command_all(t.r, 3, load, NULL) == 0, "single: command_all", "refused");
  res = rcmd(&t, NULL, "SCRIPT", "LOAD", "return 42", NULL);
  char sha[64];
  snprintf(sha, sizeof sha, "%.40s", res.str);
  res = rcmd(&t, NULL, "EVALSHA", sha, "0", NULL);
  check(res.type == REDIS_REPLY_INTEGER && res.integer == 42, "single: EVALSHA after command_all",
        "%d %lld '%s'", res.type, res.integer, res.str);
  /* Pub/sub: SUBSCRIBE, PUBLISH, the push. */
  res = rcmd(&p, "news", "SUBSCRIBE", "news", NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "subscribe"), "single: SUBSCRIBE",
        "%d", res.type);
  rcmd(&t, "news", "PUBLISH", "news", "hello", NULL);
  check(wait_pushes(&p, 1) && !strcmp(p.push[0], "message|news|hello"), "single: message push",
        "%u '%s'", p.npush, p.push[0]);
  check_pipeline(&t, "single");
  char d[300];
  hub_router_describe(t.r, d, sizeof d);
  check(strstr(d, "127.0.0.1:") != NULL, "single: describe", "'%s'", d);
  /* Freed with a command pending: its callback gets NULL. */
  memset(&res, 0, sizeof res);
  hub_router_command(t.r, NULL, 0, keep_r, &res, 3, (const char *[]){"BLPOP", "nothing", "1"},
                     NULL);
  hub_router_free(t.r);
  check(res.done && res.null, "single: free: pending callback got NULL", "done %d", res.done);
  hub_router_free(p.r);
}

/* ---- cluster ---------------------------------------------------------------- */

static void check_routed_sets(trouter *t, tnode *n, const char *keyfile) {
  FILE *f = fopen(keyfile, "w");
  if (!f) {
    check(false, "cluster: key file", "cannot write %s", keyfile);
    return;
  }
  unsigned per[3] = {0, 0, 0}, bad = 0, wrong = 0;
  for (int i = 0; i < 60; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "key:%d", i);
    snprintf(val, sizeof val, "v%d", i);
    result res = rcmd(t, key, "SET", key, val, NULL);
    if (res.type != REDIS_REPLY_STATUS) {
      bad++;
      fprintf(stderr, "SET %s: %d '%s'\n", key, res.type, res.str);
      continue;
    }
    int o = owner_of(t, n, key);
    if (o < 0) {
      wrong++;
      continue;
    }
    per[o]++;
    res = ncmd(&n[o], "GET", key, NULL);
    if (res.type != REDIS_REPLY_STRING || strcmp(res.str, val)) wrong++;
    fprintf(f, "%s %s\n", key, val);
  }
  fclose(f);
  check(!bad, "cluster: 60 SETs through the router answered OK", "%u failed", bad);
  check(!wrong, "cluster: each key is on the master the router chose", "%u not", wrong);
  check(per[0] && per[1] && per[2], "cluster: keys on all three masters", "%u %u %u", per[0],
        per[1], per[2]);
}

static void check_moved(trouter *t, tnode *n) {
  char key[32];
  key_on(t, n, 0, "moved:", key, sizeof key);
  unsigned slot = hub_redis_slot(key, strlen(key));
  long before = errorstat(&n[0], "MOVED");
  check(move_slot(n, slot, 0, 1, true), "MOVED: slot moved with CLUSTER SETSLOT", "see stderr");
  result res = rcmd(t, key, "SET", key, "after-move", NULL);
  check(res.type == REDIS_REPLY_STATUS, "MOVED: SET to the old owner followed to the new",
        "%d '%s'", res.type, res.str);
  check(errorstat(&n[0], "MOVED") > before, "MOVED: the old owner did answer -MOVED",
        "errorstat_MOVED %ld", errorstat(&n[0], "MOVED"));
  res = ncmd(&n[1], "GET", key, NULL);
  check(res.type == REDIS_REPLY_STRING && !strcmp(res.str, "after-move"),
        "MOVED: the value is on the new owner", "%d '%s'", res.type, res.str);
  run_for(200); /* the refresh */
  check(owner_of(t, n, key) == 1, "MOVED: the map was refreshed", "owner %d", owner_of(t, n, key));
}

static void check_ask(trouter *t, tnode *n) {
  char key[32];
  key_on(t, n, 2, "ask:", key, sizeof key);
  unsigned slot = hub_redis_slot(key, strlen(key));
  long before = errorstat(&n[2], "ASK");
  check(move_slot(n, slot, 2, 0, false), "ASK: slot half-way (MIGRATING/IMPORTING)", "see stderr");
  result res = rcmd(t, key, "SET", key, "asked", NULL);
  check(res.type == REDIS_REPLY_STATUS, "ASK: SET of a key the source lacks: ASKING + SET",
        "%d '%s'", res.type, res.str);
  check(errorstat(&n[2], "ASK") > before, "ASK: the source did answer -ASK", "errorstat_ASK %ld",
        errorstat(&n[2], "ASK"));
  check(move_slot(n, slot, 2, 0, true), "ASK: migration finished", "see stderr");
  res = ncmd(&n[0], "GET", key, NULL);
  check(res.type == REDIS_REPLY_STRING && !strcmp(res.str, "asked"),
        "ASK: the value is on the importing node", "%d '%s'", res.type, res.str);
}

static void check_sharded_pubsub(trouter *t, trouter *p, tnode *n) {
  check(hub_router_sharded(p->r), "pubsub: sharded", "no");
  char chan[3][32];
  for (int i = 0; i < 3; i++) {
    key_on(t, n, i, "chan:", chan[i], sizeof chan[i]);
    result res = rcmd(p, chan[i], "SSUBSCRIBE", chan[i], NULL);
    check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "ssubscribe"),
          "pubsub: SSUBSCRIBE routed to the channel's master", "%d '%s'", res.type, res.str);
  }
  unsigned from = p->npush;
  for (int i = 0; i < 3; i++) {
    result res = rcmd(t, chan[i], "SPUBLISH", chan[i], "hello", NULL);
    check(res.type == REDIS_REPLY_INTEGER && res.integer == 1, "pubsub: SPUBLISH reaches 1",
          "%d %lld '%s'", res.type, res.integer, res.str);
  }
  wait_pushes(p, from + 3);
  bool all = true;
  for (int i = 0; i < 3; i++) {
    char want[80];
    snprintf(want, sizeof want, "smessage|%.31s|hello", chan[i]);
    all = all && has_push(p, from, want);
  }
  check(all && p->npush == from + 3, "pubsub: smessage pushes from all three shards", "%u pushes",
        p->npush - from);
  /* The broker's way: a script loaded on every master SPUBLISHes to a channel in KEYS. */
  const char *script = "redis.call('INCR', KEYS[1]); return redis.call('SPUBLISH', KEYS[2], "
                       "ARGV[1])";
  const char *load[] = {"SCRIPT", "LOAD", script};
  check(hub_router_command_all(t->r, 3, load, NULL) == 0, "pubsub: SCRIPT LOAD on every master",
        "refused");
  result res = rcmd(t, NULL, "SCRIPT", "LOAD", script, NULL);
  char sha[64];
  snprintf(sha, sizeof sha, "%.40s", res.str);
  from = p->npush;
  unsigned ok = 0;
  for (int i = 0; i < 3; i++) {
    char ctr[48];
    snprintf(ctr, sizeof ctr, "{%.31s}:n", chan[i]); /* the hash tag: the channel's slot */
    res = rcmd(t, chan[i], "EVALSHA", sha, "2", ctr, chan[i], "scripted", NULL);
    rcmd(t, ctr, "DEL", ctr, NULL); /* the slot must be empty to move it below */
    if (res.type == REDIS_REPLY_ERROR) fprintf(stderr, "EVALSHA: %s\n", res.str);
    ok += res.type == REDIS_REPLY_INTEGER && res.integer == 1;
  }
  check(ok == 3, "pubsub: EVALSHA with SPUBLISH on every master (after command_all)", "%u of 3",
        ok);
  wait_pushes(p, from + 3);
  check(p->npush == from + 3, "pubsub: the scripts' SPUBLISH reached the subscriber", "%u pushes",
        p->npush - from);
  /* The slot of a subscribed channel moves: Redis pushes sunsubscribe; subscribe again (the
   * router follows the MOVED or already knows), and publications arrive again. */
  unsigned slot = hub_redis_slot(chan[1], strlen(chan[1]));
  from = p->npush;
  check(move_slot(n, slot, 1, 2, true), "pubsub: a subscribed channel's slot moved", "stderr");
  wait_pushes(p, from + 1);
  char want[80];
  snprintf(want, sizeof want, "sunsubscribe|%s|", chan[1]);
  check(has_push_prefix(p, from, want), "pubsub: sunsubscribe push for the moved channel",
        "%u: '%s'", p->npush - from, p->npush > from ? p->push[from] : "");
  res = rcmd(p, chan[1], "SSUBSCRIBE", chan[1], NULL);
  check(res.type == REDIS_REPLY_ARRAY && !strcmp(res.elem[0], "ssubscribe"),
        "pubsub: SSUBSCRIBE again goes to the new owner", "%d '%s'", res.type, res.str);
  from = p->npush;
  res = rcmd(t, chan[1], "SPUBLISH", chan[1], "again", NULL);
  wait_pushes(p, from + 1);
  snprintf(want, sizeof want, "smessage|%s|again", chan[1]);
  check(has_push(p, from, want), "pubsub: publications arrive after the move", "%u pushes",
        p->npush - from);
  check(hub_router_up(p->r) && p->downs == 0, "pubsub: the router stayed up", "%u downs: %s",
        p->downs, p->why);
}

static void mode_cluster(const char *url, const char *keyfile) {
  trouter t, p;
  trouter_start(&t, url, false);
  trouter_start(&p, url, true);
  check(run_until(&t.up, 10000) && run_until(&p.up, 10000), "cluster: both routers up", "%s / %s",
        t.why, p.why);
  check(hub_router_masters(t.r) == 3 && hub_router_sharded(t.r), "cluster: 3 masters, sharded",
        "%u", hub_router_masters(t.r));
  char d[512];
  fprintf(stderr, "%s\n", hub_router_describe(t.r, d, sizeof d));
  tnode n[3];
  nodes_start(n, &t.url);
  /* hub_redis_slot == CLUSTER KEYSLOT is redis_client_check's; here: routing. */
  check_routed_sets(&t, n, keyfile);
  check_pipeline(&t, "cluster");
  check_moved(&t, n);
  check_ask(&t, n);
  check_sharded_pubsub(&t, &p, n);
  check(t.downs == 0, "cluster: the command router stayed up", "%u downs: %s", t.downs, t.why);
  /* Freed with a command pending: its callback gets NULL. */
  result res;
  memset(&res, 0, sizeof res);
  hub_router_command(t.r, "x", 1, keep_r, &res, 3, (const char *[]){"BLPOP", "x", "1"}, NULL);
  hub_router_free(t.r);
  check(res.done && res.null, "cluster: free: pending callback got NULL", "done %d", res.done);
  hub_router_free(p.r);
  for (int i = 0; i < 3; i++) hub_redis_free(n[i].c);
}

/* ---- a killed master ------------------------------------------------------------ */

static void mode_kill(const char *url) {
  trouter t, p;
  trouter_start(&t, url, false);
  trouter_start(&p, url, true);
  check(run_until(&t.up, 10000) && run_until(&p.up, 10000), "kill: both routers up", "%s / %s",
        t.why, p.why);
  const char *key = "victim";
  char who[300];
  hub_router_describe_key(t.r, key, strlen(key), who, sizeof who);
  result res = rcmd(&p, key, "SSUBSCRIBE", key, NULL);
  check(res.type == REDIS_REPLY_ARRAY, "kill: SSUBSCRIBE", "%d '%s'", res.type, res.str);
  /* A key on another master, and a connection to that master, for the CLUSTERDOWN check. */
  const char *vport = strrchr(who, ':') + 1;
  char skey[32] = "", sw[300] = "";
  for (int i = 0; i < 1000; i++) {
    snprintf(skey, sizeof skey, "survivor:%d", i);
    hub_router_describe_key(t.r, skey, strlen(skey), sw, sizeof sw);
    if (strcmp(strrchr(sw, ':') + 1, vport)) break;
  }
  tnode sn = {.port = (uint16_t)atoi(strrchr(sw, ':') + 1)};
  hub_redis_addr sa = {.port = sn.port};
  snprintf(sa.host, sizeof sa.host, "127.0.0.1");
  hub_redis_opts so = {.url = &t.url,
                       .addr = &sa,
                       .name = "node test",
                       .on_up = n_up,
                       .on_down = n_down,
                       .user = &sn};
  sn.c = hub_redis_new(loop, &so);
  check(run_until(&sn.up, 5000), "kill: a connection to another master", "not up");
  printf("up %s\n", vport);
  fflush(stdout);
  bool down = false;
  for (uint64_t end = dx_loop_now(loop) + 15000; dx_loop_now(loop) < end && !down;) {
    dx_loop_run_once(loop, 20);
    down = t.downs_was_up && p.downs_was_up;
  }
  check(down, "kill: on_down(was_up) on both routers", "%u / %u (%s)", t.downs_was_up,
        p.downs_was_up, t.why);
  check(!hub_router_up(t.r), "kill: hub_router_up false", "up");
  fprintf(stderr, "down: %s\n", t.why);
  printf("down\n");
  fflush(stdout);
  /* Once the others mark it failed (node timeout 2 s), they answer CLUSTERDOWN: the router sends
   * again after 100, 200, 400, 800 ms, then gives the error. */
  long before = errorstat(&sn, "CLUSTERDOWN");
  uint64_t took = 0;
  bool got = false;
  for (uint64_t end = dx_loop_now(loop) + 15000; dx_loop_now(loop) < end && !got;) {
    uint64_t t0 = dx_loop_now(loop);
    res = rcmd(&t, skey, "SET", skey, "x", NULL);
    took = dx_loop_now(loop) - t0;
    got = res.type == REDIS_REPLY_ERROR && !strncmp(res.str, "CLUSTERDOWN", 11);
    if (!got) run_for(200);
  }
  check(got, "kill: a surviving master answers CLUSTERDOWN", "%d '%s'", res.type, res.str);
  long retried = errorstat(&sn, "CLUSTERDOWN") - before;
  check(got && took >= 1400 && retried >= 5,
        "kill: CLUSTERDOWN sent again 4 times (100 to 800 ms) before the error",
        "%llu ms, %ld CLUSTERDOWN answers", (unsigned long long)took, retried);
  fprintf(stderr, "CLUSTERDOWN: %llu ms, %ld answers\n", (unsigned long long)took, retried);
  printf("restart\n");
  fflush(stdout);
  bool up = false;
  for (uint64_t end = dx_loop_now(loop) + 30000; dx_loop_now(loop) < end && !up;) {
    dx_loop_run_once(loop, 20);
    up = t.up && p.up;
  }
  check(up && t.ups == 2 && p.ups == 2, "kill: on_up again on both after the restart",
        "up %d/%d ups %u/%u", t.up, p.up, t.ups, p.ups);
  /* The cluster may answer CLUSTERDOWN for a moment after the node is back: try for 10 s. */
  res.type = 0;
  for (uint64_t end = dx_loop_now(loop) + 10000;
       dx_loop_now(loop) < end && res.type != REDIS_REPLY_STATUS;) {
    res = rcmd(&t, key, "SET", key, "back", NULL);
    if (res.type != REDIS_REPLY_STATUS) run_for(200);
  }
  check(res.type == REDIS_REPLY_STATUS, "kill: SET on the restarted master", "%d '%s'", res.type,
        res.str);
  res = rcmd(&p, key, "SSUBSCRIBE", key, NULL);
  check(res.type == REDIS_REPLY_ARRAY, "kill: SSUBSCRIBE again after up", "%d '%s'", res.type,
        res.str);
  unsigned from = p.npush;
  rcmd(&t, key, "SPUBLISH", key, "alive", NULL);
  wait_pushes(&p, from + 1);
  check(has_push(&p, from, "smessage|victim|alive"), "kill: pushes again after up", "%u",
        p.npush - from);
  hub_router_free(t.r);
  hub_router_free(p.r);
  hub_redis_free(sn.c);
}

/* ---- a master failed over to its replica ------------------------------------------ */

static void mode_failover(const char *url) {
  trouter t, p;
  trouter_start(&t, url, false);
  trouter_start(&p, url, true);
  check(run_until(&t.up, 10000) && run_until(&p.up, 10000), "failover: both routers up", "%s / %s",
        t.why, p.why);
  const char *key = "failover";
  char was[300], now[300];
  hub_router_describe_key(t.r, key, strlen(key), was, sizeof was);
  result res = rcmd(&p, key, "SSUBSCRIBE", key, NULL);
  check(res.type == REDIS_REPLY_ARRAY, "failover: SSUBSCRIBE", "%d '%s'", res.type, res.str);
  printf("up %s\n", strrchr(was, ':') + 1);
  fflush(stdout);
  bool down = false;
  for (uint64_t end = dx_loop_now(loop) + 15000; dx_loop_now(loop) < end && !down;) {
    dx_loop_run_once(loop, 20);
    down = t.downs_was_up && p.downs_was_up;
  }
  check(down, "failover: on_down(was_up) on both routers", "%u / %u", t.downs_was_up,
        p.downs_was_up);
  printf("down\n");
  fflush(stdout);
  /* Nobody restarts the master: the replica is promoted and the map says so. */
  uint64_t t0 = dx_loop_now(loop);
  bool up = false;
  for (uint64_t end = t0 + 30000; dx_loop_now(loop) < end && !up;) {
    dx_loop_run_once(loop, 20);
    up = t.up && p.up;
  }
  fprintf(stderr, "up again %llu ms after the down\n",
          (unsigned long long)(dx_loop_now(loop) - t0));
  hub_router_describe_key(t.r, key, strlen(key), now, sizeof now);
  check(up && strcmp(was, now) && hub_router_masters(t.r) == 3,
        "failover: up again on the promoted replica", "up %d/%d, owner %s (was %s), %u masters",
        t.up, p.up, now, was, hub_router_masters(t.r));
  printf("owner %s\n", strrchr(now, ':') + 1);
  fflush(stdout);
  res.type = 0;
  for (uint64_t end = dx_loop_now(loop) + 10000;
       dx_loop_now(loop) < end && res.type != REDIS_REPLY_STATUS;) {
    res = rcmd(&t, key, "SET", key, "promoted", NULL);
    if (res.type != REDIS_REPLY_STATUS) run_for(200);
  }
  check(res.type == REDIS_REPLY_STATUS, "failover: SET on the new master", "%d '%s'", res.type,
        res.str);
  res = rcmd(&p, key, "SSUBSCRIBE", key, NULL);
  unsigned from = p.npush;
  rcmd(&t, key, "SPUBLISH", key, "promoted", NULL);
  wait_pushes(&p, from + 1);
  check(res.type == REDIS_REPLY_ARRAY && has_push(&p, from, "smessage|failover|promoted"),
        "failover: SSUBSCRIBE and pushes on the new master", "%d, %u pushes", res.type,
        p.npush - from);
  hub_router_free(t.r);
  hub_router_free(p.r);
}

/* ---- a password ------------------------------------------------------------------- */

static void mode_auth(const char *good, const char *bad) {
  trouter t, b;
  trouter_start(&t, good, false);
  trouter_start(&b, bad, false);
  check(run_until(&t.up, 10000), "auth: up with the password (every master)", "%s", t.why);
  result res = rcmd(&t, "auth:k", "SET", "auth:k", "v", NULL);
  check(res.type == REDIS_REPLY_STATUS, "auth: SET", "%d '%s'", res.type, res.str);
  const char *load[] = {"SCRIPT", "LOAD", "return 1"};
  check(hub_router_command_all(t.r, 3, load, NULL) == 0, "auth: command_all", "refused");
  /* The seeds in turn: a dead one says "connection refused" before a live one says why. */
  for (uint64_t end = dx_loop_now(loop) + 5000; dx_loop_now(loop) < end && !strstr(b.why, "auth");)
    dx_loop_run_once(loop, 20);
  check(!b.up && b.down_seen && strstr(b.why, "auth") && !b.downs_was_up,
        "auth: a wrong password: never up, on_down says why", "up %d, '%s'", b.up, b.why);
  hub_router_free(t.r);
  hub_router_free(b.r);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("DX_TEST_DEBUG")) dx_log_set_level(DX_LOG_DEBUG);
  loop = dx_loop_new(NULL);
  const char *mode = argc > 2 ? argv[1] : "";
  if (!strcmp(mode, "single"))
    mode_single(argv[2]);
  else if (!strcmp(mode, "cluster") && argc == 4)
    mode_cluster(argv[2], argv[3]);
  else if (!strcmp(mode, "kill"))
    mode_kill(argv[2]);
  else if (!strcmp(mode, "failover"))
    mode_failover(argv[2]);
  else if (!strcmp(mode, "auth") && argc == 4)
    mode_auth(argv[2], argv[3]);
  else {
    fprintf(stderr, "usage: see the top of redis_router_check.c\n");
    return 2;
  }
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  return failures ? 1 : 0;
}
