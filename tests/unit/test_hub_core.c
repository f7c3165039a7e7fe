/* hub: the shared topic table (positions, history, resume, presence) and a
 * node's local fan-out, driven as plain data with a recording transport. */
#include <stdlib.h>
#include <string.h>

#include "hub/core.h"
#include "hub/node.h"
#include "test.h"

/* ---- a recording transport ---- */
#define LOG_MAX 20000
static struct rec {
  uint64_t conn;
  char data[96];
} log_[LOG_MAX];
static size_t nlog, nprepared;

static void *prepare(hub_blob *env) {
  nprepared++;
  return hub_blob_ref(env);
}
static int record(hub_member *m, const char *data, size_t len) {
  if (nlog == LOG_MAX) return 0;
  log_[nlog].conn = m->conn;
  snprintf(log_[nlog].data, sizeof log_[nlog].data, "%.*s", (int)len, data);
  nlog++;
  return 0;
}
static int send_prepared(hub_member *m, void *p, const hub_fanout *f) {
  CHECK(p == f->env);
  return record(m, f->env->data, f->env->len);
}
static int send_one(hub_member *m, const hub_fanout *f) {
  return record(m, f->env->data, f->env->len);
}
static void release(void *p) { hub_blob_unref(p); }
static const hub_transport tr = {prepare, send_prepared, release, send_one, record, NULL};

/* Count what member `conn` received, and check it is exactly `want`
 * (a comma-separated list of payloads), in order. */
static void expect(uint64_t conn, const char *want) {
  char got[4096] = "";
  for (size_t i = 0; i < nlog; i++) {
    if (log_[i].conn != conn) continue;
    if (*got) strcat(got, ",");
    strcat(got, log_[i].data);
  }
  if (strcmp(got, want) != 0)
    fprintf(stderr, "conn %llu got '%s', want '%s'\n", (unsigned long long)conn, got, want);
  CHECK_STR(got, want);
}

/* ---- a one-node hub: the core delivers straight into the node ---- */
static hub_node node;
static void fanout_direct(unsigned n, const hub_fanout *f, void *user) {
  (void)user;
  CHECK_EQ_INT(n, 0);
  hub_node_deliver(&node, f);
}

static hub_core *new_core(uint32_t history, uint64_t ttl) {
  nlog = nprepared = 0;
  hub_node_init(&node);
  hub_core_opts o = {
      .history_size = history, .history_ttl_ms = ttl, .nodes = 1, .fanout = fanout_direct};
  return hub_core_new(&o);
}

static void done(hub_core *c) {
  hub_core_free(c);
  hub_node_free(&node);
}

static hub_blob *make_env(uint64_t offset, void *ctx) {
  char s[64];
  int n = snprintf(s, sizeof s, "%s%llu", (const char *)ctx, (unsigned long long)offset);
  return hub_blob_new(s, (size_t)n);
}

static hub_position pub(hub_core *c, const char *topic, uint64_t skip, uint64_t now) {
  hub_position pos;
  CHECK_EQ_INT(hub_core_publish(c, topic, strlen(topic), make_env, "m", skip, now, &pos), 0);
  return pos;
}

typedef struct client {
  hub_member m;
  char id[16];
} client;

static void client_init(client *cl, uint64_t conn) {
  memset(cl, 0, sizeof *cl);
  cl->m.conn = conn;
  cl->m.tr = &tr;
  snprintf(cl->id, sizeof cl->id, "c%llu", (unsigned long long)conn);
}

/* Subscribe as a session does: core first, then the node, then replay. */
static hub_recovery sub(hub_core *c, client *cl, const char *topic, const hub_position *since,
                        uint32_t history, bool presence, hub_position *pos_out) {
  char join[64];
  snprintf(join, sizeof join, "join:%s", cl->id);
  hub_blob *je = hub_blob_new(join, strlen(join));
  hub_sub_req q = {.topic = topic,
                   .topic_len = strlen(topic),
                   .node = 0,
                   .who = {cl->m.conn, cl->id, "", NULL, false},
                   .history = history,
                   .join_env = je};
  if (since) {
    q.has_since = true;
    q.since_offset = since->offset;
    q.since_epoch = since->epoch;
  }
  hub_position pos;
  hub_recovery rec;
  hub_replay rp;
  CHECK_EQ_INT(hub_core_subscribe(c, &q, 0, &pos, &rec, &rp), 0);
  hub_blob_unref(je);
  CHECK_EQ_INT(hub_node_add(&node, &cl->m, topic, strlen(topic), pos.offset, presence), 0);
  for (uint32_t i = 0; i < rp.len; i++) record(&cl->m, rp.envs[i]->data, rp.envs[i]->len);
  hub_replay_free(&rp);
  if (pos_out) *pos_out = pos;
  return rec;
}

static void unsub(hub_core *c, client *cl, const char *topic) {
  int i = hub_member_find(&cl->m, topic, strlen(topic));
  CHECK(i >= 0);
  if (i < 0) return;
  hub_node_remove(&node, &cl->m, (uint32_t)i);
  char leave[64];
  snprintf(leave, sizeof leave, "leave:%s", cl->id);
  hub_blob *le = hub_blob_new(leave, strlen(leave));
  hub_who w = {cl->m.conn, cl->id, "", NULL, false};
  hub_core_unsubscribe(c, topic, strlen(topic), 0, &w, le);
  hub_blob_unref(le);
}

TEST(offsets_grow_by_one_and_subscribers_get_them_in_order) {
  hub_core *c = new_core(100, 0);
  client a, b;
  client_init(&a, 1);
  client_init(&b, 2);
  hub_position p0;
  CHECK_EQ_INT(sub(c, &a, "t", NULL, 0, false, &p0), HUB_RECOVERY_NONE);
  CHECK_EQ_INT(p0.offset, 0);
  CHECK_EQ_INT(strlen(p0.epoch), HUB_EPOCH_LEN);
  sub(c, &b, "t", NULL, 0, false, NULL);
  for (int i = 1; i <= 3; i++) {
    hub_position p = pub(c, "t", 0, 0);
    CHECK_EQ_INT(p.offset, i);
    CHECK_STR(p.epoch, p0.epoch);
  }
  expect(1, "m1,m2,m3");
  expect(2, "m1,m2,m3");
  CHECK_EQ_INT(nprepared, 3); /* one prepared message per publication, shared */
  pub(c, "other", 0, 0);
  expect(1, "m1,m2,m3");
  unsub(c, &a, "t");
  unsub(c, &b, "t");
  done(c);
}

TEST(skip_self) {
  hub_core *c = new_core(100, 0);
  client a, b;
  client_init(&a, 1);
  client_init(&b, 2);
  sub(c, &a, "t", NULL, 0, false, NULL);
  sub(c, &b, "t", NULL, 0, false, NULL);
  pub(c, "t", 1, 0);
  pub(c, "t", 0, 0);
  expect(1, "m2");
  expect(2, "m1,m2");
  unsub(c, &a, "t");
  unsub(c, &b, "t");
  done(c);
}

TEST(resume_replays_exactly_what_was_missed) {
  hub_core *c = new_core(100, 0);
  client a, b;
  client_init(&a, 1);
  pub(c, "t", 0, 0); /* 1 */
  hub_position seen;
  sub(c, &a, "t", NULL, 0, false, &seen);
  pub(c, "t", 0, 0); /* 2: a sees it */
  seen.offset = 2;
  unsub(c, &a, "t");
  pub(c, "t", 0, 0); /* 3, 4: missed */
  pub(c, "t", 0, 0);
  client_init(&b, 2); /* the reconnected client */
  hub_position pos;
  CHECK_EQ_INT(sub(c, &b, "t", &seen, 0, false, &pos), HUB_RECOVERED);
  CHECK_EQ_INT(pos.offset, 4);
  pub(c, "t", 0, 0); /* 5: live */
  expect(1, "m2");
  expect(2, "m3,m4,m5");
  unsub(c, &b, "t");

  /* Already up to date: nothing replayed. */
  client d;
  client_init(&d, 3);
  hub_position now = pub(c, "t", 0, 0); /* 6 */
  CHECK_EQ_INT(sub(c, &d, "t", &now, 0, false, NULL), HUB_RECOVERED);
  expect(3, "");
  unsub(c, &d, "t");
  done(c);
}

TEST(resume_refusals) {
  hub_core *c = new_core(3, 0);
  client a;
  client_init(&a, 1);
  hub_position p = pub(c, "t", 0, 0);            /* 1 */
  for (int i = 0; i < 4; i++) pub(c, "t", 0, 0); /* 2..5; history keeps 3..5 */
  hub_position old = p;                          /* saw 1, needs 2: gone */
  CHECK_EQ_INT(sub(c, &a, "t", &old, 0, false, NULL), HUB_TOO_OLD);
  expect(1, "");
  unsub(c, &a, "t");
  old.offset = 2; /* needs 3: retained */
  CHECK_EQ_INT(sub(c, &a, "t", &old, 0, false, NULL), HUB_RECOVERED);
  expect(1, "m3,m4,m5");
  unsub(c, &a, "t");
  nlog = 0;
  hub_position bad = p;
  strcpy(bad.epoch, "not-the-epoch");
  CHECK_EQ_INT(sub(c, &a, "t", &bad, 0, false, NULL), HUB_EPOCH_CHANGED);
  unsub(c, &a, "t");
  hub_position ahead = p;
  ahead.offset = 99;
  CHECK_EQ_INT(sub(c, &a, "t", &ahead, 0, false, NULL), HUB_OFFSET_AHEAD);
  unsub(c, &a, "t");
  expect(1, "");
  done(c);
}

TEST(history_on_subscribe_and_age_limit) {
  hub_core *c = new_core(10, 1000);
  client a;
  client_init(&a, 1);
  for (uint64_t t = 0; t < 5; t++) pub(c, "t", 0, t * 400); /* times 0..1600 */
  CHECK_EQ_INT(sub(c, &a, "t", NULL, 10, false, NULL), HUB_RECOVERY_NONE);
  /* publishing at 1600 expired what was older than 600: m1 and m2 */
  expect(1, "m3,m4,m5");
  unsub(c, &a, "t");
  nlog = 0;
  pub(c, "t", 0, 2000); /* expires those published before 1000: m3 */
  CHECK_EQ_INT(sub(c, &a, "t", NULL, 2, false, NULL), HUB_RECOVERY_NONE);
  expect(1, "m5,m6");
  unsub(c, &a, "t");
  done(c);
}

TEST(history_query) {
  hub_core *c = new_core(5, 0);
  hub_position pos;
  hub_replay r;
  bool complete;
  CHECK_EQ_INT(hub_core_history(c, "t", 1, false, 0, NULL, 100, 0, &pos, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 0);
  CHECK(complete);
  hub_position p1 = pub(c, "t", 0, 0);
  pub(c, "t", 0, 0);
  pub(c, "t", 0, 0);
  CHECK_EQ_INT(hub_core_history(c, "t", 1, false, 0, NULL, 2, 0, &pos, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 2);
  CHECK(complete); /* offset 1 is left out by the limit, not lost */
  hub_replay_free(&r);
  for (int i = 0; i < 4; i++) pub(c, "t", 0, 0); /* 1..7, keeps 3..7 */
  CHECK_EQ_INT(hub_core_history(c, "t", 1, false, 0, NULL, 2, 0, &pos, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 2);
  CHECK_STR(r.envs[0]->data, "m6");
  CHECK_STR(r.envs[1]->data, "m7");
  CHECK(!complete);
  CHECK_EQ_INT(pos.offset, 7);
  hub_replay_free(&r);
  /* Paging forward from offset 3. */
  CHECK_EQ_INT(hub_core_history(c, "t", 1, true, 3, p1.epoch, 2, 0, &pos, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 2);
  CHECK_STR(r.envs[0]->data, "m4");
  CHECK(complete);
  hub_replay_free(&r);
  /* From before the retained range: what is there, marked incomplete. */
  CHECK_EQ_INT(hub_core_history(c, "t", 1, true, 0, p1.epoch, 100, 0, &pos, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 5);
  CHECK_STR(r.envs[0]->data, "m3");
  CHECK(!complete);
  hub_replay_free(&r);
  CHECK_EQ_INT(hub_core_history(c, "t", 1, true, 0, "nope", 100, 0, &pos, &r, &complete), 1);
  done(c);
}

TEST(presence_join_leave_and_query) {
  hub_core *c = new_core(10, 0);
  client a, b, d;
  client_init(&a, 1);
  client_init(&b, 2);
  client_init(&d, 3);
  sub(c, &a, "room", NULL, 0, true, NULL);  /* wants presence */
  sub(c, &b, "room", NULL, 0, false, NULL); /* does not */
  sub(c, &d, "room", NULL, 0, true, NULL);
  expect(1, "join:c2,join:c3");
  expect(2, "");
  expect(3, ""); /* never its own join */
  hub_presence_list l;
  CHECK_EQ_INT(hub_core_presence(c, "room", 4, &l), 0);
  CHECK_EQ_INT(l.len, 3);
  hub_presence_list_free(&l);
  unsub(c, &b, "room");
  expect(1, "join:c2,join:c3,leave:c2");
  expect(3, "leave:c2");
  CHECK_EQ_INT(hub_core_presence(c, "room", 4, &l), 0);
  CHECK_EQ_INT(l.len, 2);
  hub_presence_list_free(&l);
  unsub(c, &a, "room");
  unsub(c, &d, "room");
  CHECK_EQ_INT(hub_core_presence(c, "room", 4, &l), 0);
  CHECK_EQ_INT(l.len, 0);
  done(c);
}

TEST(sweep_forgets_idle_topics_and_a_new_epoch_follows) {
  hub_core *c = new_core(10, 1000);
  hub_position p1 = pub(c, "t", 0, 0);
  CHECK_EQ_INT(hub_core_sweep(c, 500), 1);  /* history still young */
  CHECK_EQ_INT(hub_core_sweep(c, 5000), 0); /* expired, no subscriber: gone */
  hub_position p2 = pub(c, "t", 0, 6000);
  CHECK_EQ_INT(p2.offset, 1);
  CHECK(strcmp(p1.epoch, p2.epoch) != 0);
  /* A subscribed topic stays even without history. */
  client a;
  client_init(&a, 1);
  sub(c, &a, "u", NULL, 0, false, NULL);
  CHECK_EQ_INT(hub_core_sweep(c, 100000), 1);
  unsub(c, &a, "u");
  CHECK_EQ_INT(hub_core_sweep(c, 100000), 0);
  done(c);
}

TEST(late_deliveries_after_a_replay_are_not_duplicated) {
  /* A shared hub may queue a publication to a node before a subscriber
   * there replays it: the node must drop the late copy. */
  hub_core *c = new_core(10, 0);
  client a;
  client_init(&a, 1);
  pub(c, "t", 0, 0);
  pub(c, "t", 0, 0);
  hub_position zero = {0};
  hub_topic_list tl;
  CHECK_EQ_INT(hub_core_topics(c, &tl), 0);
  CHECK_EQ_INT(tl.len, 1);
  strcpy(zero.epoch, tl.items[0].pos.epoch);
  hub_topic_list_free(&tl);
  CHECK_EQ_INT(sub(c, &a, "t", &zero, 0, false, NULL), HUB_RECOVERED);
  hub_blob *late = hub_blob_new("m2", 2);
  hub_fanout f = {"t", 1, 2, late, 0, NULL};
  hub_node_deliver(&node, &f);
  hub_blob_unref(late);
  expect(1, "m1,m2");
  unsub(c, &a, "t");
  done(c);
}

TEST(many_members_join_and_leave_in_any_order) {
  /* Swap-removal keeps both back links right: deliveries reach exactly
   * the current subscribers, whatever the order of leaving. */
  hub_core *c = new_core(0, 0);
  enum { N = 64 };
  static client cl[N];
  bool in[N][3] = {{0}};
  const char *topics[3] = {"a", "b", "c"};
  unsigned seed = 7;
  for (int i = 0; i < N; i++) client_init(&cl[i], (uint64_t)i + 1);
  for (int round = 0; round < 2000; round++) {
    int i = rand_r(&seed) % N, t = rand_r(&seed) % 3;
    if (in[i][t])
      unsub(c, &cl[i], topics[t]);
    else
      sub(c, &cl[i], topics[t], NULL, 0, false, NULL);
    in[i][t] = !in[i][t];
  }
  for (int t = 0; t < 3; t++) {
    nlog = 0;
    pub(c, topics[t], 0, 0);
    int want = 0;
    for (int i = 0; i < N; i++) want += in[i][t];
    CHECK_EQ_INT(nlog, want);
    for (size_t k = 0; k < nlog; k++) CHECK(in[log_[k].conn - 1][t]);
  }
  for (int i = 0; i < N; i++)
    for (int t = 0; t < 3; t++)
      if (in[i][t]) unsub(c, &cl[i], topics[t]);
  done(c);
}

TEST(history_memory_is_bounded) {
  hub_core_opts o = {
      .history_size = 100, .nodes = 1, .fanout = fanout_direct, .history_memory = 100};
  nlog = 0;
  hub_node_init(&node);
  hub_core *c = hub_core_new(&o);
  for (int i = 0; i < 50; i++) pub(c, "a", 0, 0); /* envelopes "m1".."m50": 2-3 bytes */
  CHECK(hub_core_retained_bytes(c) <= 100);
  hub_position pos;
  hub_replay r;
  bool complete;
  CHECK_EQ_INT(hub_core_history(c, "a", 1, false, 0, NULL, 100, 0, &pos, &r, &complete), 0);
  CHECK(r.len >= 30 && r.len < 50);
  CHECK_STR(r.envs[r.len - 1]->data, "m50"); /* the newest stay */
  CHECK(!complete);
  hub_replay_free(&r);
  /* Another topic publishing pushes "a" down only through the sweep. */
  for (int i = 0; i < 40; i++) pub(c, "b", 0, 0);
  hub_core_sweep(c, 0);
  CHECK(hub_core_retained_bytes(c) <= 100);
  done(c);
}

/* ---- a shared hub with two nodes: fan-out is queued in offset order ---- */
static struct queued {
  unsigned node;
  uint64_t offset;
} queue_[64];
static size_t nqueue;
static void fanout_queue(unsigned n, const hub_fanout *f, void *user) {
  (void)user;
  queue_[nqueue++] = (struct queued){n, f->offset};
}

TEST(shared_core_fans_out_to_nodes_with_subscribers) {
  hub_core_opts o = {.history_size = 10, .nodes = 2, .shared = true, .fanout = fanout_queue};
  hub_core *c = hub_core_new(&o);
  hub_sub_req q = {.topic = "t", .topic_len = 1, .node = 1, .who = {5, "c5", "", NULL, false}};
  hub_position pos;
  hub_recovery rec;
  hub_replay rp;
  CHECK_EQ_INT(hub_core_subscribe(c, &q, 0, &pos, &rec, &rp), 0);
  nqueue = 0;
  for (int i = 0; i < 3; i++) pub(c, "t", 0, 0);
  CHECK_EQ_INT(nqueue, 3);
  for (size_t i = 0; i < nqueue; i++) {
    CHECK_EQ_INT(queue_[i].node, 1); /* node 0 has nobody: nothing queued there */
    CHECK_EQ_INT(queue_[i].offset, i + 1);
  }
  hub_core_detach_node(c, 1);
  nqueue = 0;
  pub(c, "t", 0, 0);
  CHECK_EQ_INT(nqueue, 0); /* a detached node gets nothing */
  hub_core_free(c);
}

/* ---- mirroring a broker (Redis numbers the publications) ---- */

static hub_blob *envn(const char *fmt, uint64_t n) {
  char s[64];
  int k = snprintf(s, sizeof s, fmt, (unsigned long long)n);
  return hub_blob_new(s, (size_t)k);
}

static int apply(hub_core *c, const char *epoch, uint64_t off, uint64_t skip) {
  hub_blob *e = envn("m%llu", off);
  int rc = hub_core_apply(c, "t", 1, epoch, off, e, skip, 0, 0);
  hub_blob_unref(e);
  return rc;
}

static hub_blob *gap_env(const char *topic, size_t len, const hub_position *pos, const char *why) {
  char s[96];
  int k = snprintf(s, sizeof s, "gap:%.*s:%s:%llu:%s", (int)len, topic, pos->epoch,
                   (unsigned long long)pos->offset, why);
  return hub_blob_new(s, (size_t)k);
}

/* Sync "t" to the broker's (epoch, offset) with entries [from, offset]. */
static void sync_to(hub_core *c, const char *epoch, uint64_t from, uint64_t offset) {
  hub_sync_entry e[16] = {{0}};
  size_t n = 0;
  for (uint64_t o = from; from && o <= offset && n < 16; o++)
    e[n++] = (hub_sync_entry){o, 0, envn("m%llu", o)};
  CHECK_EQ_INT(hub_core_sync(c, "t", 1, epoch, offset, e, n, gap_env, 0), 0);
  for (size_t i = 0; i < n; i++) hub_blob_unref(e[i].env);
}

TEST(mirror_takes_the_brokers_state_then_follows_its_publications) {
  hub_core *c = new_core(3, 0);
  client a;
  client_init(&a, 1);
  CHECK_EQ_INT(apply(c, "E1", 1, 0), 2); /* unknown topic: resync first */
  sync_to(c, "E1", 5, 7);                /* the broker keeps 5..7 */
  hub_position pos;
  CHECK_EQ_INT(sub(c, &a, "t", NULL, 2, false, &pos), HUB_RECOVERY_NONE);
  CHECK_STR(pos.epoch, "E1");
  CHECK_EQ_INT(pos.offset, 7);
  expect(1, "m6,m7");
  CHECK_EQ_INT(apply(c, "E1", 7, 0), 1); /* a duplicate */
  CHECK_EQ_INT(apply(c, "E1", 8, 0), 0);
  CHECK_EQ_INT(apply(c, "E1", 9, 1), 0);  /* skip_conn: not to its publisher */
  CHECK_EQ_INT(apply(c, "E1", 11, 0), 2); /* a hole: nothing done */
  CHECK_EQ_INT(apply(c, "E2", 10, 0), 2); /* another epoch: nothing done */
  expect(1, "m6,m7,m8");
  /* resume from the mirror like from the memory broker */
  client b;
  client_init(&b, 2);
  hub_position since = {.offset = 6};
  strcpy(since.epoch, "E1");
  CHECK_EQ_INT(sub(c, &b, "t", &since, 0, false, NULL), HUB_RECOVERED);
  expect(2, "m7,m8,m9");
  unsub(c, &a, "t");
  unsub(c, &b, "t");
  done(c);
}

TEST(mirror_resync_fills_a_hole_without_loss_or_duplicate) {
  hub_core *c = new_core(10, 0);
  client a;
  client_init(&a, 1);
  sync_to(c, "E1", 1, 3);
  sub(c, &a, "t", NULL, 0, false, NULL);
  CHECK_EQ_INT(apply(c, "E1", 6, 0), 2); /* missed 4 and 5 (the broker went away) */
  sync_to(c, "E1", 2, 6);                /* the broker still has them */
  expect(1, "m4,m5,m6");
  CHECK_EQ_INT(apply(c, "E1", 7, 0), 0);
  expect(1, "m4,m5,m6,m7");
  unsub(c, &a, "t");
  done(c);
}

TEST(mirror_resync_says_gap_when_the_broker_lost_them) {
  hub_core *c = new_core(10, 0);
  client a;
  client_init(&a, 1);
  sync_to(c, "E1", 1, 3);
  sub(c, &a, "t", NULL, 0, false, NULL);
  sync_to(c, "E1", 8, 9); /* 4..7 are gone from the broker */
  expect(1, "gap:t:E1:7:too_old,m8,m9");
  CHECK_EQ_INT(apply(c, "E1", 10, 0), 0);
  /* Redis restarted empty: a new epoch from 1; the node starts over. */
  sync_to(c, "E2", 1, 2);
  expect(1, "gap:t:E1:7:too_old,m8,m9,m10,gap:t:E2:0:epoch_changed,m1,m2");
  /* with no history at all (entries none), still no silent loss */
  sync_to(c, "E2", 0, 5);
  expect(1, "gap:t:E1:7:too_old,m8,m9,m10,gap:t:E2:0:epoch_changed,m1,m2,gap:t:E2:5:too_old");
  CHECK_EQ_INT(apply(c, "E2", 6, 0), 0);
  expect(1, "gap:t:E1:7:too_old,m8,m9,m10,gap:t:E2:0:epoch_changed,m1,m2,gap:t:E2:5:too_old,m6");
  unsub(c, &a, "t");
  hub_core_forget(c, "t", 1);
  CHECK_EQ_INT(hub_core_topic_count(c), 0);
  CHECK_EQ_INT(hub_core_retained_bytes(c), 0);
  done(c);
}

/* An HTTP session's presence keeps a topic the broker's interest let go:
 * the core no longer mirrors it, so the next load is a fresh one and the
 * history it brings is kept whole (not only what is newer than the stale
 * position). */
TEST(mirror_forgotten_topic_with_presence_loads_whole_again) {
  hub_core *c = new_core(10, 0);
  client a;
  client_init(&a, 1);
  sync_to(c, "E1", 1, 4);
  sub(c, &a, "t", NULL, 0, false, NULL);
  hub_who w = {2, "p2", "", NULL, false};
  hub_blob *je = hub_blob_new("join:p2", 7);
  CHECK_EQ_INT(hub_core_presence_join(c, "t", 1, &w, je), 1);
  hub_blob_unref(je);
  unsub(c, &a, "t");
  hub_core_forget(c, "t", 1); /* the last subscriber left: Redis interest ends */
  CHECK_EQ_INT(hub_core_topic_count(c), 1);
  CHECK_EQ_INT(hub_core_retained_bytes(c), 0);
  hub_position pos;
  CHECK(!hub_core_position(c, "t", 1, &pos)); /* no mirror: load it as new */
  sync_to(c, "E1", 1, 6);                     /* meanwhile 5 and 6 were published */
  hub_position hp;
  hub_replay r;
  bool complete;
  CHECK_EQ_INT(hub_core_history(c, "t", 1, false, 0, NULL, 100, 0, &hp, &r, &complete), 0);
  CHECK_EQ_INT(r.len, 6);
  CHECK(complete);
  CHECK_EQ_INT(hp.offset, 6);
  CHECK_STR(hp.epoch, "E1");
  hub_replay_free(&r);
  hub_core_presence_leave(c, "t", 1, &w, NULL);
  done(c);
}

/* A mirrored topic belongs to the broker until it forgets it: the sweep
 * must not drop one that has no subscriber yet (a subscribe is on its way
 * from another loop) just because it has no history, or the subscriber
 * would get a made-up epoch instead of the broker's. */
TEST(mirror_sweep_keeps_what_the_broker_mirrors) {
  nlog = nprepared = 0;
  hub_node_init(&node);
  hub_core_opts o = {
      .history_size = 10, .nodes = 1, .fanout = fanout_direct, .remote_events = true};
  hub_core *c = hub_core_new(&o);
  sync_to(c, "E1", 0, 0); /* a topic nobody published on yet */
  CHECK_EQ_INT(hub_core_sweep(c, 1000), 1);
  client a;
  client_init(&a, 1);
  hub_position pos;
  sub(c, &a, "t", NULL, 0, false, &pos);
  CHECK_STR(pos.epoch, "E1");
  unsub(c, &a, "t");
  hub_core_forget(c, "t", 1); /* the broker lets it go: now the sweep may */
  CHECK_EQ_INT(hub_core_sweep(c, 2000), 0);
  done(c);
}

int main(void) {
  RUN(offsets_grow_by_one_and_subscribers_get_them_in_order);
  RUN(skip_self);
  RUN(resume_replays_exactly_what_was_missed);
  RUN(resume_refusals);
  RUN(history_on_subscribe_and_age_limit);
  RUN(history_query);
  RUN(presence_join_leave_and_query);
  RUN(sweep_forgets_idle_topics_and_a_new_epoch_follows);
  RUN(late_deliveries_after_a_replay_are_not_duplicated);
  RUN(many_members_join_and_leave_in_any_order);
  RUN(history_memory_is_bounded);
  RUN(shared_core_fans_out_to_nodes_with_subscribers);
  RUN(mirror_takes_the_brokers_state_then_follows_its_publications);
  RUN(mirror_resync_fills_a_hole_without_loss_or_duplicate);
  RUN(mirror_resync_says_gap_when_the_broker_lost_them);
  RUN(mirror_forgotten_topic_with_presence_loads_whole_again);
  RUN(mirror_sweep_keeps_what_the_broker_mirrors);
  return test_report();
}
