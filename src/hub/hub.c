/* The dx_hub object: one core shared by the loops of the attached servers,
 * fan-out from the core to each loop, the C API. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/topic_name.h"

#define SWEEP_MS 1000

/* A whole small file (a PEM key) as a string; NULL with errno set. */
static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = calloc(1, 65537);
  size_t n = buf ? fread(buf, 1, 65536, f) : 0;
  fclose(f);
  if (buf && !n) {
    free(buf);
    errno = EINVAL;
    return NULL;
  }
  return buf;
}

dx_hub *dx_hub_new(const dx_hub_opts *opts) {
  dx_hub *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  if (opts) h->o = *opts;
  h->history_size = h->o.history_size < 0 ? 0
                    : h->o.history_size   ? (uint32_t)h->o.history_size
                                          : 100;
  h->history_ttl_ms = h->o.history_ttl_ms < 0 ? 0
                      : h->o.history_ttl_ms   ? (uint64_t)h->o.history_ttl_ms
                                              : 300000;
  if (!h->o.max_publication) h->o.max_publication = 64 * 1024;
  if (!h->o.max_subscriptions) h->o.max_subscriptions = 128;
  /* Limits: 0 means default, negative (or ~0 for counts) means off. */
  h->o.publish_rate = h->o.publish_rate < 0 ? 0 : h->o.publish_rate ? h->o.publish_rate : 1000;
  h->o.subscribe_rate = h->o.subscribe_rate < 0 ? 0
                        : h->o.subscribe_rate   ? h->o.subscribe_rate
                                                : 100;
  h->o.connect_rate_per_ip = h->o.connect_rate_per_ip < 0 ? 0 : h->o.connect_rate_per_ip;
  if (!h->o.max_conns_per_user) h->o.max_conns_per_user = 100;
  if (h->o.max_conns_per_user == ~0u) h->o.max_conns_per_user = 0;
  if (h->o.max_conns_per_ip == ~0u) h->o.max_conns_per_ip = 0;
  if (!h->o.history_memory) h->o.history_memory = (size_t)256 << 20;
  if (h->o.history_memory == ~(size_t)0) h->o.history_memory = 0;
  if (!h->o.max_presence) h->o.max_presence = 10000;
  if (h->o.max_presence == ~0u) h->o.max_presence = 0;
  if (!h->o.session_idle_ms) h->o.session_idle_ms = 30000;
  hub_psessions_init(&h->psessions, h->o.session_idle_ms < 0 ? 0 : (uint64_t)h->o.session_idle_ms);
  hub_peers_init(&h->ips, h->o.max_conns_per_ip, h->o.connect_rate_per_ip);
  hub_peers_init(&h->users, h->o.max_conns_per_user, 0);
  bool rules_ok = dx_hub_set_rules(h, h->o.rules, h->o.nrules) == 0;
  h->o.rules = NULL; /* the caller's; ours are in h->rules */
  h->o.path = strdup(h->o.path ? h->o.path : "/ws");
  h->o.api_key = h->o.api_key ? strdup(h->o.api_key) : NULL;
  if (h->o.redis_url) {
    char err[256];
    h->broker = hub_broker_redis_new(h, h->o.redis_url, h->o.redis_prefix, err, sizeof err);
    if (!h->broker) {
      dx_log_error("hub: %s", err);
      dx_hub_free(h);
      return NULL;
    }
  } else {
    h->broker = hub_broker_memory_new();
  }
  h->o.redis_url = h->o.redis_prefix = NULL; /* the caller's: used above only */
  if (!h->broker || !h->o.path || !rules_ok || (opts && opts->api_key && !h->o.api_key)) {
    dx_hub_free(h);
    return NULL;
  }
  h->leeway_s = h->o.token_leeway_s < 0 ? 0 : h->o.token_leeway_s ? h->o.token_leeway_s : 5;
  if (!h->o.auth_timeout_ms) h->o.auth_timeout_ms = 10000;
  if (h->o.token_secret || h->o.token_key_file) {
    char *pem = NULL;
    const char *why = "out of memory";
    if (h->o.token_key_file && !(pem = read_file(h->o.token_key_file))) {
      dx_log_error("hub: cannot read the token key file %s: %s", h->o.token_key_file,
                   strerror(errno));
      dx_hub_free(h);
      return NULL;
    }
    h->verifier = hub_verifier_new(&(hub_verifier_opts){.secret = h->o.token_secret,
                                                        .key_pem = pem,
                                                        .audience = h->o.token_audience,
                                                        .issuer = h->o.token_issuer,
                                                        .leeway_s = h->leeway_s},
                                   &why);
    free(pem);
    if (!h->verifier) {
      dx_log_error("hub: unusable token configuration: %s", why);
      dx_hub_free(h);
      return NULL;
    }
  }
  /* Client ids: a random prefix (so ids differ across restarts) + a counter. */
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  uint8_t r[6] = {0};
  if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    for (size_t i = 0; i < sizeof r; i++) r[i] = (uint8_t)rand();
  for (size_t i = 0; i < sizeof r; i++) h->id_prefix[i] = digits[r[i] % 36];
  atomic_init(&h->next_conn, 1);
  return h;
}

uint64_t hub_now_ms(const hub_loop *hl) { return dx_loop_now(hl->loop); }

/* ---- fan-out from the core to the loops ---- */

typedef struct fanout_post {
  hub_loop *hl;
  uint64_t offset, skip;
  hub_blob *env;
  bool gap;
  char gap_epoch[HUB_EPOCH_LEN + 1];
  size_t topic_len;
  char topic[];
} fanout_post;

static void run_fanout(dx_loop *loop, void *arg) {
  (void)loop;
  fanout_post *p = arg;
  if (!p->hl->detached) {
    hub_fanout f = {p->topic, p->topic_len, p->offset,
                    p->env,   p->skip,      p->gap ? p->gap_epoch : NULL};
    hub_node_deliver(&p->hl->node, &f);
  }
  hub_blob_unref(p->env);
  free(p);
}

static void on_fanout(unsigned node, const hub_fanout *f, void *user) {
  dx_hub *h = user;
  hub_loop *hl = h->loops[node];
  if (!h->shared) {
    hub_node_deliver(&hl->node, f);
    return;
  }
  /* Called under the core's lock: queue it, in offset order. */
  fanout_post *p = malloc(sizeof *p + f->topic_len);
  if (!p) {
    dx_log_error("hub: out of memory fanning out offset %llu of '%.*s' to loop %u",
                 (unsigned long long)f->offset, (int)f->topic_len, f->topic, node);
    return;
  }
  *p = (fanout_post){hl, f->offset,   f->skip_conn, hub_blob_ref(f->env), f->gap_epoch != NULL,
                     "", f->topic_len};
  if (f->gap_epoch) snprintf(p->gap_epoch, sizeof p->gap_epoch, "%s", f->gap_epoch);
  memcpy(p->topic, f->topic, f->topic_len);
  if (dx_loop_post(hl->loop, run_fanout, p) != 0) {
    dx_log_error("hub: cannot queue a delivery to loop %u (out of memory)", node);
    hub_blob_unref(p->env);
    free(p);
  }
}

static void on_sweep(dx_timer *t) {
  hub_loop *hl = dx_container_of(t, hub_loop, sweep);
  /* Loop lag: how late the timer fires (a busy or blocked loop). */
  uint64_t now = hub_now_ms(hl);
  atomic_store_explicit(&hl->stats[ST_LOOP_LAG_MS], now > hl->sweep_due ? now - hl->sweep_due : 0,
                        memory_order_relaxed);
  hl->sweep_due = now + SWEEP_MS;
  hub_sessions_tick(hl, hub_wall_s());
  hub_sse_heartbeat(hl);
  hl->hub->broker->ops->tick(hl->hub->broker, hl);
  if (hl->index == 0) {
    hub_psessions_sweep(hl->hub); /* before the core sweep: leaving may free topics */
    hub_core_sweep(hl->hub->core, hub_now_ms(hl));
    hub_peers_sweep(&hl->hub->ips, hub_now_ms(hl));
    hub_peers_sweep(&hl->hub->users, hub_now_ms(hl));
  }
}

const dx_hub_topic_rule *hub_rule(const dx_hub *h, const char *topic, size_t len) {
  const struct hub_ruleset *r = atomic_load_explicit(&((dx_hub *)h)->rules, memory_order_acquire);
  return r ? hub_rule_for(r->v, r->n, topic, len) : NULL;
}

static uint32_t rule_history_cap(const char *topic, size_t len, void *user) {
  const dx_hub *h = user;
  const dx_hub_topic_rule *r = hub_rule(h, topic, len);
  if (!r || !r->history_size) return h->history_size;
  return r->history_size < 0 ? 0 : (uint32_t)r->history_size;
}

/* ---- attach / detach ---- */

/* The broker's share of a loop starts on the loop's thread. */
static void run_loop_start(dx_loop *loop, void *arg) {
  (void)loop;
  hub_loop *hl = arg;
  if (!hl->detached) hl->hub->broker->ops->loop_start(hl->hub->broker, hl);
}

int dx_hub_attach(dx_hub *h, dx_server *srv) {
  if (!h || !srv) return DX_EINVAL;
  /* The core is sized for the loops: rebuild it (it holds nothing yet). */
  if (h->core && hub_core_topic_count(h->core)) return DX_ESTATE;
  hub_loop **v = realloc(h->loops, (h->nloops + 1) * sizeof *v);
  if (!v) return DX_ENOMEM;
  h->loops = v;
  hub_loop *hl = calloc(1, sizeof *hl);
  if (!hl) return DX_ENOMEM;
  *hl = (hub_loop){.hub = h, .index = h->nloops, .srv = srv, .loop = dx_server_loop(srv)};
  hub_node_init(&hl->node);
  hub_core_opts co = {.history_size = h->history_size,
                      .history_ttl_ms = h->history_ttl_ms,
                      .nodes = h->nloops + 1,
                      .shared = h->nloops + 1 > 1,
                      .fanout = on_fanout,
                      .user = h,
                      .history_cap = rule_history_cap,
                      .history_memory = h->o.history_memory,
                      .max_presence = h->o.max_presence,
                      .remote_events = h->broker->ops->remote_events};
  hub_core *core = hub_core_new(&co);
  int rc = core ? 0 : DX_ENOMEM;
  if (!rc) rc = hub_ws_attach(hl);
  if (!rc) rc = hub_api_attach(hl);
  if (!rc) rc = hub_metrics_attach(hl);
  if (!rc) rc = hub_sse_attach(hl);
  if (!rc) rc = hub_poll_attach(hl);
  if (rc) {
    hub_core_free(core);
    free(hl);
    return rc;
  }
  hub_core_free(h->core);
  h->core = core;
  h->shared = co.shared;
  h->loops[h->nloops++] = hl;
  if (dx_loop_post(hl->loop, run_loop_start, hl) != 0) return DX_ENOMEM;
  dx_timer_init(hl->loop, &hl->sweep, on_sweep);
  dx_timer_start(&hl->sweep, SWEEP_MS, SWEEP_MS);
  hl->sweep_due = dx_loop_now(hl->loop) + SWEEP_MS;
  return 0;
}

void dx_hub_detach(dx_hub *h, dx_server *srv) {
  for (unsigned i = 0; h && i < h->nloops; i++) {
    hub_loop *hl = h->loops[i];
    if (hl->srv != srv || hl->detached) continue;
    dx_timer_stop(&hl->sweep);
    h->broker->ops->loop_stop(h->broker, hl);
    hub_core_detach_node(h->core, i);
    hl->detached = true;
  }
}

void dx_hub_free(dx_hub *h) {
  if (!h) return;
  /* The broker first, while the loops' memory is there: it completes what
   * still waits (a subscribe's completion sees its loop detached and
   * leaves the broker alone). */
  for (unsigned i = 0; i < h->nloops; i++) h->loops[i]->detached = true;
  if (h->broker) h->broker->ops->free(h->broker);
  for (unsigned i = 0; i < h->nloops; i++) {
    hub_node_free(&h->loops[i]->node);
    free(h->loops[i]);
  }
  free(h->loops);
  hub_psessions_free(h);
  hub_core_free(h->core);
  hub_verifier_free(h->verifier);
  for (struct hub_ruleset *r = h->rules, *older; r; r = older) {
    older = r->older;
    hub_rules_free(r->v, r->n);
    free(r);
  }
  hub_peers_free(&h->ips);
  hub_peers_free(&h->users);
  free((char *)h->o.path);
  free((char *)h->o.api_key);
  free(h);
}

/* ---- publishing ---- */

hub_blob *hub_pub_envelope(const hub_pub *p, uint64_t offset) {
  return hub_env_message(p->topic, p->topic_len, offset, p->data, p->b64, p->b64_len, p->from);
}

void hub_publish(hub_loop *hl, const hub_pub *p, hub_broker_done done, void *ctx) {
  hl->hub->broker->ops->publish(hl->hub->broker, hl, p, done, ctx);
}

int hub_check_payload(const dx_hub *h, const char *topic, size_t topic_len, json_t *data,
                      const char *b64, size_t b64_len, hub_error *err) {
  const dx_hub_topic_rule *r = topic ? hub_rule(h, topic, topic_len) : NULL;
  size_t max = r && r->max_publication ? r->max_publication : h->o.max_publication;
  long decoded = data ? 0 : hub_b64_decoded_len(b64, b64_len);
  size_t n = data ? hub_json_size(data) : decoded < 0 ? 0 : (size_t)decoded;
  if (n > max) {
    hub_error_set(err, "message_too_big", "the payload is %zu bytes; the limit is %zu", n, max);
    return -1;
  }
  return 0;
}

/* A publish from the C API: its outcome is logged (the caller has gone on;
 * a synchronous caller on a loop thread of the memory broker gets the
 * offset from `published`). */
typedef struct publish_job {
  hub_loop *hl;
  json_t *data;
  char *b64;
  size_t b64_len;
  uint64_t *offset; /* the caller's, while it waits (a synchronous answer) */
  bool *answered;   /* likewise */
  size_t topic_len;
  char topic[];
} publish_job;

static void publish_job_free(publish_job *j) {
  json_decref(j->data);
  free(j->b64);
  free(j);
}

static void on_api_published(void *ctx, int status, const hub_position *pos) {
  publish_job *j = ctx;
  if (status) {
    hub_error err;
    hub_broker_error(status, &err);
    dx_log_error("hub: publishing on '%.*s' failed: %s", (int)j->topic_len, j->topic, err.message);
  } else if (j->offset) {
    *j->offset = pos->offset;
  }
  if (j->answered) *j->answered = true;
  publish_job_free(j);
}

static void run_publish(dx_loop *loop, void *arg) {
  (void)loop;
  publish_job *j = arg;
  if (j->hl->detached) return publish_job_free(j);
  hub_pub p = {j->topic, j->topic_len, j->data, j->b64, j->b64_len, NULL, 0};
  hub_publish(j->hl, &p, on_api_published, j);
}

static hub_loop *current_loop(dx_hub *h) {
  for (unsigned i = 0; i < h->nloops; i++)
    if (!h->loops[i]->detached && dx_loop_on_thread(h->loops[i]->loop)) return h->loops[i];
  return NULL;
}

static int publish_any_thread(dx_hub *h, const char *topic, json_t *data, const char *b64,
                              size_t b64_len, uint64_t *offset) {
  if (offset) *offset = 0;
  size_t tlen = topic ? strlen(topic) : 0;
  hub_error err;
  if (!hub_topic_valid(topic, tlen) ||
      hub_check_payload(h, topic, tlen, data, b64, b64_len, &err) != 0) {
    json_decref(data);
    return DX_EINVAL;
  }
  if (!h->nloops) {
    json_decref(data);
    return DX_ESTATE;
  }
  publish_job *j = calloc(1, sizeof *j + tlen);
  char *b = b64 ? strndup(b64, b64_len) : NULL;
  if (!j || (b64 && !b)) {
    free(j);
    free(b);
    json_decref(data);
    return DX_ENOMEM;
  }
  hub_loop *hl = current_loop(h);
  bool answered = false;
  *j = (publish_job){hl ? hl : h->loops[0], data, b, b64_len, offset, &answered, tlen};
  memcpy(j->topic, topic, tlen);
  if (hl) { /* on a loop thread: publish now (the memory broker answers at once) */
    hub_pub p = {j->topic, tlen, data, b, b64_len, NULL, 0};
    hub_publish(hl, &p, on_api_published, j);
    if (!answered) j->offset = NULL, j->answered = NULL; /* later: only logged */
    return 0;
  }
  j->offset = NULL;
  j->answered = NULL;
  if (dx_loop_post(h->loops[0]->loop, run_publish, j) != 0) {
    publish_job_free(j);
    return DX_ENOMEM;
  }
  return 0;
}

int dx_hub_publish(dx_hub *h, const char *topic, const char *json, size_t len, uint64_t *offset) {
  if (!h || !json) return DX_EINVAL;
  json_t *data = json_loadb(json, len, JSON_DECODE_ANY, NULL);
  if (!data) return DX_EINVAL;
  return publish_any_thread(h, topic, data, NULL, 0, offset);
}

int dx_hub_publish_b64(dx_hub *h, const char *topic, const char *b64, size_t len,
                       uint64_t *offset) {
  if (!h || !b64 || hub_b64_decoded_len(b64, len) < 0) return DX_EINVAL;
  return publish_any_thread(h, topic, NULL, b64, len, offset);
}

/* ---- broadcast ---- */

typedef struct bcast {
  const char *path;
  dx_msg *msg;
  int n;
} bcast;

static void send_bcast(dx_ws *ws, void *arg) {
  bcast *b = arg;
  if (strcmp(dx_ws_path(ws), b->path) == 0 && dx_ws_send_msg(ws, b->msg) >= 0) b->n++;
}

static int broadcast_local(hub_loop *hl, hub_blob *env) {
  bcast b = {hl->hub->o.path, dx_msg_new(DX_OP_TEXT, env->data, env->len), 0};
  if (!b.msg) return DX_ENOMEM;
  dx_server_each(hl->srv, send_bcast, &b);
  dx_msg_free(b.msg);
  return b.n;
}

typedef struct bcast_post {
  hub_loop *hl;
  hub_blob *env;
} bcast_post;

static void run_bcast(dx_loop *loop, void *arg) {
  (void)loop;
  bcast_post *p = arg;
  if (!p->hl->detached) broadcast_local(p->hl, p->env);
  hub_blob_unref(p->env);
  free(p);
}

int hub_broadcast(hub_loop *hl, hub_blob *env) {
  dx_hub *h = hl->hub;
  for (unsigned i = 0; i < h->nloops; i++) {
    hub_loop *o = h->loops[i];
    if (o == hl || o->detached) continue;
    bcast_post *p = malloc(sizeof *p);
    if (!p) return DX_ENOMEM;
    *p = (bcast_post){o, hub_blob_ref(env)};
    if (dx_loop_post(o->loop, run_bcast, p) != 0) {
      hub_blob_unref(env);
      free(p);
      return DX_ENOMEM;
    }
  }
  return broadcast_local(hl, env);
}

char *dx_hub_token_mint(const char *secret, const char *sub, long ttl_s, const char *claims_json) {
  if (!secret || strlen(secret) < 16 || !sub || !*sub || ttl_s < 0) return NULL;
  if (claims_json) {
    json_t *c = json_loads(claims_json, 0, NULL);
    bool obj = json_is_object(c);
    json_decref(c);
    if (!obj) return NULL;
  }
  int64_t now = hub_wall_s();
  return hub_token_mint(secret, sub, now, ttl_s ? now + ttl_s : 0, claims_json);
}

int dx_hub_set_rules(dx_hub *h, const dx_hub_topic_rule *rules, size_t n) {
  if (!h || (n && !rules)) return DX_EINVAL;
  struct hub_ruleset *r = calloc(1, sizeof *r);
  if (!r || !(r->v = hub_rules_copy(rules, n))) {
    free(r);
    return DX_ENOMEM;
  }
  r->n = n;
  /* Readers may still hold the old set: it stays (a reload is rare and
   * small) until dx_hub_free. */
  r->older = atomic_load(&h->rules);
  atomic_store_explicit(&h->rules, r, memory_order_release);
  return 0;
}
