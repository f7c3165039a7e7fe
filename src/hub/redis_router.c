/* hub — commands routed to one Redis or to the masters of a Redis Cluster (see redis_router.h). */
#include "hub/redis_router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duplex/log.h"
#include "hub/redis_slots.h"

#define NSLOTS HUB_CLUSTER_SLOTS
#define NO_NODE 0xffffu
#define MAX_NODES 0xfff0u
#define MAX_REDIRECTS 5
#define MAX_RETRIES 4        /* TRYAGAIN / CLUSTERDOWN: again after 100, 200, 400, 800 ms */
#define ROUTE_POLL_MS 50     /* a command waiting for its node or the map looks again this often */
#define REFRESH_RETRY_MS 500 /* a CLUSTER SLOTS that failed is asked again after this */
#define REFRESH_DOWN_MS 1000 /* a master cannot be reached: look for a failover this often */

typedef struct node {
  hub_redis_router *router;
  hub_redis *conn;
  hub_redis_addr addr;
  bool seen; /* named by the CLUSTER SLOTS being applied */
} node;

/* A command in flight (cluster: with its arguments, to send again on a redirect). */
typedef struct rcmd {
  hub_redis_router *r;
  hub_router_reply_fn cb;
  void *priv;
  struct rcmd *next, *prev; /* parked */
  uint64_t due, deadline;   /* parked: when to send again; answered with NULL after deadline */
  unsigned slot;            /* NSLOTS: no key (any node) */
  uint8_t redirects, retries;
  bool asked; /* -ASK followed already */
  node *at;   /* where it was sent last (its connection holds the callback) */
  int argc;
  const char **argv;
  size_t *lens;
} rcmd;

struct hub_redis_router {
  dx_loop *loop;
  hub_redis_url url;
  char name[64];
  bool pubsub, cluster;
  uint32_t reply_timeout_ms, connect_timeout_ms, backoff_min_ms, backoff_max_ms;
  void (*on_up)(hub_redis_router *r, void *user);
  void (*on_down)(hub_redis_router *r, const char *why, bool was_up, void *user);
  void (*on_push)(hub_redis_router *r, redisReply *msg, void *user);
  void *user;

  hub_redis *single; /* single mode */
  hub_redis *ctl;    /* cluster: CLUSTER SLOTS, from the seeds in turn */
  node **nodes;      /* the masters; indices are stable (NULL: a free index) */
  unsigned nodes_cap;
  uint16_t *slots; /* NSLOTS node indices (NO_NODE: no owner known) */
  bool map_known, refreshing, refresh_again;
  char map_err[256]; /* the last refresh failure logged */
  dx_timer t_refresh;
  rcmd *parked; /* commands waiting for a node, the map, or a TRYAGAIN delay */
  dx_timer t_park;
  bool up;
  unsigned depth; /* nested entry points: the memory goes when 0 after free */
  bool dead;
};

static void refresh(hub_redis_router *r);
static int send_to(node *n, rcmd *c, bool ask);

/* ---- life ------------------------------------------------------------- */

static void enter(hub_redis_router *r) { r->depth++; }

static void destroy(hub_redis_router *r) {
  for (unsigned i = 0; i < r->nodes_cap; i++) free(r->nodes[i]);
  free(r->nodes);
  free(r->slots);
  free(r);
}

static void leave(hub_redis_router *r) {
  if (--r->depth == 0 && r->dead) destroy(r);
}

static void finish(rcmd *c, redisReply *rep) {
  if (c->cb) c->cb(c->r, rep, c->priv);
  free(c);
}

static void unpark(hub_redis_router *r, rcmd *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    r->parked = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void arm_park(hub_redis_router *r) {
  if (r->dead || !r->parked) {
    dx_timer_stop(&r->t_park);
    return;
  }
  uint64_t now = dx_loop_now(r->loop), first = UINT64_MAX;
  for (rcmd *c = r->parked; c; c = c->next)
    if (c->due < first) first = c->due;
  dx_timer_start(&r->t_park, first > now ? first - now : 0, 0);
}

/* Hold c and send it again after delay_ms (to the slot's owner then). */
static void park(hub_redis_router *r, rcmd *c, uint32_t delay_ms) {
  uint64_t now = dx_loop_now(r->loop);
  c->due = now + delay_ms;
  c->deadline = now + delay_ms + r->reply_timeout_ms;
  c->prev = NULL;
  c->next = r->parked;
  if (r->parked) r->parked->prev = c;
  r->parked = c;
  arm_park(r);
}

static void fail_parked(hub_redis_router *r) {
  while (r->parked) {
    rcmd *c = r->parked;
    unpark(r, c);
    finish(c, NULL);
  }
  dx_timer_stop(&r->t_park);
}

/* ---- the map ---------------------------------------------------------- */

static node *owner(const hub_redis_router *r, unsigned slot) {
  if (!r->map_known) return NULL;
  if (slot < NSLOTS) return r->slots[slot] == NO_NODE ? NULL : r->nodes[r->slots[slot]];
  for (unsigned i = 0; i < r->nodes_cap; i++) /* no key: the first master that is up */
    if (r->nodes[i] && hub_redis_up(r->nodes[i]->conn)) return r->nodes[i];
  return NULL;
}

static bool same_addr(const hub_redis_addr *a, const hub_redis_addr *b) {
  return a->port == b->port && !strcmp(a->host, b->host);
}

static int node_index(const hub_redis_router *r, const hub_redis_addr *a) {
  for (unsigned i = 0; i < r->nodes_cap; i++)
    if (r->nodes[i] && same_addr(&r->nodes[i]->addr, a)) return (int)i;
  return -1;
}

static unsigned count_nodes(const hub_redis_router *r) {
  unsigned n = 0;
  for (unsigned i = 0; i < r->nodes_cap; i++) n += r->nodes[i] != NULL;
  return n;
}

static bool all_up(const hub_redis_router *r) {
  unsigned n = 0;
  for (unsigned i = 0; i < r->nodes_cap; i++) {
    if (!r->nodes[i]) continue;
    if (!hub_redis_up(r->nodes[i]->conn)) return false;
    n++;
  }
  return n > 0;
}

/* ---- up and down ------------------------------------------------------ */

static void node_up(hub_redis *c, void *user);
static void node_down(hub_redis *c, const char *why, bool was_up, void *user);
static void node_push(hub_redis *c, redisReply *msg, void *user);

static hub_redis *connect_node(hub_redis_router *r, node *n) {
  char name[64];
  snprintf(name, sizeof name, "%.30s %.20s:%u", r->name, n->addr.host, n->addr.port);
  hub_redis_opts o = {.url = &r->url,
                      .addr = &n->addr,
                      .name = name,
                      .pubsub = r->pubsub,
                      .connect_timeout_ms = r->connect_timeout_ms,
                      .reply_timeout_ms = r->reply_timeout_ms,
                      .backoff_min_ms = r->backoff_min_ms,
                      .backoff_max_ms = r->backoff_max_ms,
                      .on_up = node_up,
                      .on_down = node_down,
                      .on_push = node_push,
                      .user = n};
  hub_redis *c = hub_redis_new(r->loop, &o);
  if (!c)
    dx_log_error("%s: cannot make a connection to %s:%u", r->name, n->addr.host, n->addr.port);
  return c;
}

/* Down: held commands get NULL; a pubsub router drops the subscriptions still alive on other
 * masters (their connections are made again) so that "all gone" holds; then on_down. */
static void router_down(hub_redis_router *r, const char *why) {
  dx_log_warn("%s: down (%s)", r->name, why);
  fail_parked(r);
  if (r->pubsub && r->cluster)
    for (unsigned i = 0; i < r->nodes_cap && !r->dead; i++) {
      node *n = r->nodes[i];
      if (!n || !hub_redis_up(n->conn)) continue;
      hub_redis *old = n->conn;
      n->conn = connect_node(r, n);
      hub_redis_free(old);
    }
  if (!r->dead && r->on_down) r->on_down(r, why, true, r->user);
}

static void update_state(hub_redis_router *r, const char *why) {
  if (r->dead) return;
  bool up = r->map_known && all_up(r);
  if (up == r->up) return;
  r->up = up;
  if (!up) {
    router_down(r, why ? why : "a master is not connected");
    return;
  }
  char d[512];
  dx_log_info("%s: up (%s)", r->name, hub_router_describe(r, d, sizeof d));
  if (r->on_up) r->on_up(r, r->user);
}

static void node_up(hub_redis *c, void *user) {
  (void)c;
  hub_redis_router *r = ((node *)user)->router;
  enter(r);
  update_state(r, NULL);
  leave(r);
}

static void node_down(hub_redis *c, const char *why, bool was_up, void *user) {
  (void)c;
  node *n = user;
  hub_redis_router *r = n->router;
  enter(r);
  char w[400];
  snprintf(w, sizeof w, "%s:%u: %s", n->addr.host, n->addr.port, why);
  /* A failover may move its slots to a replica: look now, and again while it is unreachable. */
  if (was_up) refresh(r);
  if (!r->dead && !dx_timer_active(&r->t_refresh))
    dx_timer_start(&r->t_refresh, REFRESH_DOWN_MS, 0);
  if (r->up)
    update_state(r, w);
  else if (!r->dead && r->on_down)
    r->on_down(r, w, false, r->user);
  leave(r);
}

static void node_push(hub_redis *c, redisReply *msg, void *user) {
  (void)c;
  hub_redis_router *r = ((node *)user)->router;
  enter(r);
  const redisReply *k = msg->elements ? msg->element[0] : NULL;
  if (k && k->type == REDIS_REPLY_STRING && k->len == 12 &&
      !strncasecmp(k->str, "sunsubscribe", 12))
    refresh(r); /* a slot moved: learn where before the caller subscribes again */
  if (!r->dead && r->on_push) r->on_push(r, msg, r->user);
  leave(r);
}

/* ---- CLUSTER SLOTS ------------------------------------------------------ */

static int add_node(hub_redis_router *r, const hub_redis_addr *a) {
  unsigned i = 0;
  while (i < r->nodes_cap && r->nodes[i]) i++;
  if (i == r->nodes_cap) {
    unsigned cap = r->nodes_cap ? r->nodes_cap * 2 : 8;
    if (cap > MAX_NODES) return -1;
    node **nn = realloc(r->nodes, cap * sizeof *nn);
    if (!nn) return -1;
    memset(nn + r->nodes_cap, 0, (cap - r->nodes_cap) * sizeof *nn);
    r->nodes = nn;
    r->nodes_cap = cap;
  }
  node *n = calloc(1, sizeof *n);
  if (!n) return -1;
  n->router = r;
  n->addr = *a;
  n->conn = connect_node(r, n);
  if (!n->conn) {
    free(n);
    return -1;
  }
  r->nodes[i] = n;
  return (int)i;
}

/* Make the map and the masters what the reply says. 0, or -1 with why. */
static int apply_slots(hub_redis_router *r, const redisReply *rep, char *why, size_t cap) {
  size_t nr = 0, want = rep->type == REDIS_REPLY_ARRAY && rep->elements ? rep->elements : 1;
  hub_slot_range *ranges = malloc(want * sizeof *ranges);
  if (!ranges) {
    snprintf(why, cap, "out of memory reading CLUSTER SLOTS");
    return -1;
  }
  if (hub_slots_parse(rep, ranges, want, &nr, why, cap) != 0) {
    free(ranges);
    return -1;
  }
  for (unsigned i = 0; i < r->nodes_cap; i++)
    if (r->nodes[i]) r->nodes[i]->seen = false;
  unsigned added = 0, removed = 0;
  for (unsigned s = 0; s < NSLOTS; s++) r->slots[s] = NO_NODE;
  for (size_t i = 0; i < nr; i++) {
    hub_slot_range *g = &ranges[i];
    if (!g->known) continue; /* unknown endpoint: no owner for now */
    if (!g->master.host[0])  /* not announced: the node that answered */
      snprintf(g->master.host, sizeof g->master.host, "%s", hub_redis_addr_now(r->ctl)->host);
    int k = node_index(r, &g->master);
    if (k < 0) {
      k = add_node(r, &g->master);
      if (k < 0) {
        snprintf(why, cap, "out of memory adding master %.100s:%u", g->master.host, g->master.port);
        r->map_known = false;
        free(ranges);
        return -1;
      }
      added++;
    }
    r->nodes[k]->seen = true;
    for (unsigned s = g->start; s <= g->end; s++) r->slots[s] = (uint16_t)k;
  }
  free(ranges);
  r->map_known = true;
  /* Masters no longer named go; their pending callbacks get NULL (and may call us). */
  for (unsigned i = 0; i < r->nodes_cap && !r->dead; i++) {
    node *n = r->nodes[i];
    if (!n || n->seen) continue;
    r->nodes[i] = NULL;
    removed++;
    dx_log_info("%s: %s:%u is no longer a master", r->name, n->addr.host, n->addr.port);
    hub_redis_free(n->conn);
    free(n);
  }
  if (added || removed) {
    char d[512];
    dx_log_info("%s: slot map: %s", r->name, hub_router_describe(r, d, sizeof d));
  }
  return 0;
}

static void remake_ctl(hub_redis_router *r);

static void on_slots(hub_redis *c, redisReply *rep, void *priv) {
  (void)c;
  hub_redis_router *r = priv;
  enter(r);
  r->refreshing = false;
  if (r->dead) goto out;
  if (!rep) { /* the control connection went: ask again when it is back */
    r->refresh_again = true;
    goto out;
  }
  char why[256];
  if (apply_slots(r, rep, why, sizeof why) != 0) {
    if (strcmp(why, r->map_err)) dx_log_error("%s: no slot map (%s); asking again", r->name, why);
    snprintf(r->map_err, sizeof r->map_err, "%s", why);
    update_state(r, why); /* down if the map was lost half-way (out of memory) */
    if (!r->dead) {
      if (rep->type == REDIS_REPLY_ERROR) remake_ctl(r); /* try another seed */
      dx_timer_start(&r->t_refresh, REFRESH_RETRY_MS, 0);
    }
    goto out;
  }
  r->map_err[0] = '\0';
  if (r->dead) goto out;
  update_state(r, "a new master is connecting");
  if (r->refresh_again) refresh(r);
out:
  leave(r);
}

static void refresh(hub_redis_router *r) {
  if (r->dead || !r->cluster) return;
  if (r->refreshing || !hub_redis_up(r->ctl)) { /* after this one / when it is up */
    r->refresh_again = true;
    return;
  }
  r->refresh_again = false;
  const char *argv[] = {"CLUSTER", "SLOTS"};
  if (hub_redis_command(r->ctl, on_slots, r, 2, argv, NULL) != 0) {
    dx_timer_start(&r->t_refresh, REFRESH_RETRY_MS, 0);
    return;
  }
  r->refreshing = true;
}

static void on_refresh_timer(dx_timer *t) {
  hub_redis_router *r = dx_container_of(t, hub_redis_router, t_refresh);
  enter(r);
  refresh(r);
  if (!r->dead && !r->up && r->map_known && !dx_timer_active(&r->t_refresh))
    dx_timer_start(&r->t_refresh, REFRESH_DOWN_MS, 0); /* a master is still missing */
  leave(r);
}

static void ctl_up(hub_redis *c, void *user) {
  (void)c;
  hub_redis_router *r = user;
  enter(r);
  r->refresh_again = false;
  refresh(r);
  leave(r);
}

static void ctl_down(hub_redis *c, const char *why, bool was_up, void *user) {
  (void)c;
  (void)was_up;
  hub_redis_router *r = user;
  enter(r);
  r->refresh_again = true;
  if (!r->map_known && !r->dead && r->on_down) {
    char w[300];
    snprintf(w, sizeof w, "slot map: %s", why);
    r->on_down(r, w, false, r->user);
  }
  leave(r);
}

static hub_redis *connect_ctl(hub_redis_router *r) {
  char name[64];
  snprintf(name, sizeof name, "%.40s (slot map)", r->name);
  hub_redis_opts o = {.url = &r->url, /* no addr: the seeds in turn */
                      .name = name,
                      .connect_timeout_ms = r->connect_timeout_ms,
                      .reply_timeout_ms = r->reply_timeout_ms,
                      .backoff_min_ms = r->backoff_min_ms,
                      .backoff_max_ms = r->backoff_max_ms,
                      .on_up = ctl_up,
                      .on_down = ctl_down,
                      .user = r};
  return hub_redis_new(r->loop, &o);
}

/* The seed answered but not with a map: start again on another (a random first seed). */
static void remake_ctl(hub_redis_router *r) {
  if (r->url.naddrs < 2) return;
  hub_redis *n = connect_ctl(r);
  if (!n) return;
  hub_redis *old = r->ctl;
  r->ctl = n;
  r->refreshing = false;
  hub_redis_free(old);
}

/* ---- commands ----------------------------------------------------------- */

static void on_node_reply(hub_redis *conn, redisReply *rep, void *priv);

static int send_to(node *n, rcmd *c, bool ask) {
  if (!n || !hub_redis_up(n->conn)) return -1;
  const char *asking[] = {"ASKING"};
  if (ask && hub_redis_command(n->conn, NULL, NULL, 1, asking, NULL) != 0) return -1;
  if (hub_redis_command(n->conn, on_node_reply, c, c->argc, c->argv, c->lens) != 0) return -1;
  c->at = n;
  return 0;
}

/* An error that says "elsewhere" or "later": true when c was sent again or held. */
static bool redirect(hub_redis_router *r, node *from, rcmd *c, const redisReply *rep) {
  const char *s = rep->str;
  unsigned slot;
  hub_redis_addr a;
  int kind = hub_redirect_parse(s, rep->len, &slot, &a);
  if (kind == HUB_REDIRECT_BAD) return false;
  if (kind != HUB_REDIRECT_NONE) {
    if (!a.host[0]) snprintf(a.host, sizeof a.host, "%s", from->addr.host); /* same host */
    int k = node_index(r, &a);
    if (kind == HUB_REDIRECT_ASK) {
      if (c->asked || k < 0) return false;
      c->asked = true;
      return send_to(r->nodes[k], c, true) == 0;
    }
    if (c->redirects >= MAX_REDIRECTS) return false;
    c->redirects++;
    refresh(r);
    if (k >= 0) r->slots[slot] = (uint16_t)k;
    if (k >= 0 && send_to(r->nodes[k], c, false) == 0) return true;
    park(r, c, ROUTE_POLL_MS); /* a master the map does not know yet, or not up */
    return true;
  }
  if (!strncmp(s, "TRYAGAIN", 8) || !strncmp(s, "CLUSTERDOWN", 11)) {
    if (c->retries >= MAX_RETRIES) return false;
    park(r, c, 100u << c->retries);
    c->retries++;
    return true;
  }
  return false;
}

static void on_node_reply(hub_redis *conn, redisReply *rep, void *priv) {
  (void)conn;
  rcmd *c = priv;
  hub_redis_router *r = c->r;
  enter(r);
  if (rep && rep->type == REDIS_REPLY_ERROR && rep->str && !r->dead && redirect(r, c->at, c, rep)) {
    leave(r);
    return;
  }
  finish(c, rep);
  leave(r);
}

static void on_park_timer(dx_timer *t) {
  hub_redis_router *r = dx_container_of(t, hub_redis_router, t_park);
  enter(r);
  uint64_t now = dx_loop_now(r->loop);
  rcmd *ready = NULL;
  for (rcmd *c = r->parked, *next; c; c = next) {
    next = c->next;
    if (c->due > now) continue;
    unpark(r, c);
    c->next = ready;
    ready = c;
  }
  while (ready) {
    rcmd *c = ready;
    ready = c->next;
    c->next = NULL;
    c->asked = false; /* sent to the owner again: a new -ASK may be followed */
    if (r->dead) {
      finish(c, NULL);
    } else if (send_to(owner(r, c->slot), c, false) != 0) {
      if (now >= c->deadline) {
        finish(c, NULL);
      } else {
        uint64_t deadline = c->deadline;
        park(r, c, ROUTE_POLL_MS);
        c->deadline = deadline;
      }
    }
  }
  arm_park(r);
  leave(r);
}

static rcmd *rcmd_new(hub_redis_router *r, hub_router_reply_fn cb, void *priv, unsigned slot,
                      int argc, const char **argv, const size_t *lens) {
  size_t bytes = 0;
  for (int i = 0; i < argc; i++) bytes += lens ? lens[i] : strlen(argv[i]);
  size_t n = (size_t)argc;
  rcmd *c = malloc(sizeof *c + n * sizeof(char *) + n * sizeof(size_t) + bytes);
  if (!c) return NULL;
  *c = (rcmd){.r = r, .cb = cb, .priv = priv, .slot = slot, .argc = argc};
  c->argv = (const char **)(void *)(c + 1);
  c->lens = (size_t *)(void *)(c->argv + n);
  char *p = (char *)(c->lens + n);
  for (int i = 0; i < argc; i++) {
    c->lens[i] = lens ? lens[i] : strlen(argv[i]);
    memcpy(p, argv[i], c->lens[i]);
    c->argv[i] = p;
    p += c->lens[i];
  }
  return c;
}

static void single_reply(hub_redis *conn, redisReply *rep, void *priv) {
  (void)conn;
  rcmd *c = priv;
  hub_redis_router *r = c->r;
  enter(r);
  finish(c, rep);
  leave(r);
}

int hub_router_command(hub_redis_router *r, const char *key, size_t len, hub_router_reply_fn cb,
                       void *priv, int argc, const char **argv, const size_t *lens) {
  if (!r || r->dead || argc < 1 || !argv) return -1;
  if (!r->cluster) {
    if (!cb) return hub_redis_command(r->single, NULL, NULL, argc, argv, lens);
    rcmd *c = malloc(sizeof *c);
    if (!c) return -1;
    *c = (rcmd){.r = r, .cb = cb, .priv = priv};
    if (hub_redis_command(r->single, single_reply, c, argc, argv, lens) != 0) {
      free(c);
      return -1;
    }
    return 0;
  }
  unsigned slot = key ? hub_redis_slot(key, len) : NSLOTS;
  node *n = owner(r, slot);
  if (!n || !hub_redis_up(n->conn)) return -1;
  rcmd *c = rcmd_new(r, cb, priv, slot, argc, argv, lens);
  if (!c) return -1;
  if (send_to(n, c, false) != 0) {
    free(c);
    return -1;
  }
  return 0;
}

int hub_router_command_all(hub_redis_router *r, int argc, const char **argv, const size_t *lens) {
  if (!r || r->dead) return -1;
  if (!r->cluster) return hub_redis_command(r->single, NULL, NULL, argc, argv, lens);
  int rc = r->map_known ? 0 : -1;
  for (unsigned i = 0; i < r->nodes_cap; i++)
    if (r->nodes[i] && hub_redis_command(r->nodes[i]->conn, NULL, NULL, argc, argv, lens) != 0)
      rc = -1;
  return rc;
}

/* ---- single mode ---------------------------------------------------------- */

static void single_up(hub_redis *c, void *user) {
  (void)c;
  hub_redis_router *r = user;
  enter(r);
  r->up = true;
  if (r->on_up) r->on_up(r, r->user);
  leave(r);
}

static void single_down(hub_redis *c, const char *why, bool was_up, void *user) {
  (void)c;
  hub_redis_router *r = user;
  enter(r);
  r->up = false;
  if (r->on_down) r->on_down(r, why, was_up, r->user);
  leave(r);
}

static void single_push(hub_redis *c, redisReply *msg, void *user) {
  (void)c;
  hub_redis_router *r = user;
  enter(r);
  if (r->on_push) r->on_push(r, msg, r->user);
  leave(r);
}

/* ---- the API -------------------------------------------------------------- */

hub_redis_router *hub_router_new(dx_loop *loop, const hub_router_opts *o) {
  if (!loop || !o || !o->url) return NULL;
  hub_redis_router *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->loop = loop;
  r->url = *o->url;
  snprintf(r->name, sizeof r->name, "%s", o->name ? o->name : "redis");
  r->pubsub = o->pubsub;
  r->cluster = o->url->cluster;
  r->reply_timeout_ms = o->reply_timeout_ms ? o->reply_timeout_ms : 5000;
  r->connect_timeout_ms = o->connect_timeout_ms;
  r->backoff_min_ms = o->backoff_min_ms;
  r->backoff_max_ms = o->backoff_max_ms;
  r->on_up = o->on_up;
  r->on_down = o->on_down;
  r->on_push = o->on_push;
  r->user = o->user;
  dx_timer_init(loop, &r->t_refresh, on_refresh_timer);
  dx_timer_init(loop, &r->t_park, on_park_timer);
  if (!r->cluster) {
    hub_redis_opts ho = {.url = &r->url,
                         .name = r->name,
                         .pubsub = r->pubsub,
                         .connect_timeout_ms = r->connect_timeout_ms,
                         .reply_timeout_ms = r->reply_timeout_ms,
                         .backoff_min_ms = r->backoff_min_ms,
                         .backoff_max_ms = r->backoff_max_ms,
                         .on_up = single_up,
                         .on_down = single_down,
                         .on_push = single_push,
                         .user = r};
    r->single = hub_redis_new(loop, &ho);
    if (!r->single) goto fail;
    return r;
  }
  r->slots = malloc(NSLOTS * sizeof *r->slots);
  if (!r->slots) goto fail;
  for (unsigned s = 0; s < NSLOTS; s++) r->slots[s] = NO_NODE;
  r->ctl = connect_ctl(r);
  if (!r->ctl) goto fail;
  return r;
fail:
  free(r->slots);
  free(r);
  return NULL;
}

void hub_router_free(hub_redis_router *r) {
  if (!r || r->dead) return;
  r->dead = true;
  r->up = false;
  enter(r);
  dx_timer_stop(&r->t_refresh);
  dx_timer_stop(&r->t_park);
  hub_redis_free(r->single);
  r->single = NULL;
  hub_redis_free(r->ctl);
  r->ctl = NULL;
  for (unsigned i = 0; i < r->nodes_cap; i++) {
    if (!r->nodes[i]) continue;
    hub_redis *c = r->nodes[i]->conn;
    r->nodes[i]->conn = NULL;
    hub_redis_free(c);
  }
  fail_parked(r);
  leave(r);
}

bool hub_router_up(const hub_redis_router *r) {
  if (!r || r->dead) return false;
  return r->cluster ? r->up : hub_redis_up(r->single);
}

bool hub_router_sharded(const hub_redis_router *r) { return r && r->cluster; }

unsigned hub_router_masters(const hub_redis_router *r) {
  if (!r) return 0;
  return r->cluster ? count_nodes(r) : 1;
}

const char *hub_router_describe(const hub_redis_router *r, char *buf, size_t cap) {
  if (!cap) return buf;
  buf[0] = '\0';
  if (!r->cluster) {
    const hub_redis_addr *a = hub_redis_addr_now(r->single);
    snprintf(buf, cap, "%s:%u", a->host, a->port);
    return buf;
  }
  size_t n = (size_t)snprintf(buf, cap, "cluster of %u masters (", count_nodes(r));
  bool first = true;
  for (unsigned i = 0; i < r->nodes_cap && n < cap; i++) {
    if (!r->nodes[i]) continue;
    n += (size_t)snprintf(buf + n, cap - n, "%s%s:%u", first ? "" : ", ", r->nodes[i]->addr.host,
                          r->nodes[i]->addr.port);
    first = false;
  }
  if (n < cap) snprintf(buf + n, cap - n, ")");
  return buf;
}

const char *hub_router_describe_key(const hub_redis_router *r, const char *key, size_t len,
                                    char *buf, size_t cap) {
  if (!cap) return buf;
  if (!r->cluster) return hub_router_describe(r, buf, cap);
  const node *n = owner(r, hub_redis_slot(key, len));
  if (n)
    snprintf(buf, cap, "%s:%u", n->addr.host, n->addr.port);
  else
    snprintf(buf, cap, "?");
  return buf;
}
