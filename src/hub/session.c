/* One client's requests (docs/PROTOCOL.md), whatever carries them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/topic_name.h"

static void send_text(hub_session *s, char *text) {
  if (!text) {
    dx_log_error("hub: out of memory building a reply for client %s", s->client);
    return;
  }
  size_t len = strlen(text);
  s->m.tr->send_env(&s->m, text, len);
  hub_stat_add(s->hl, ST_REPLIES, 1);
  hub_stat_add(s->hl, ST_REPLY_BYTES, len);
  free(text);
}

static const char *auth_name(const hub_session *s) {
  return s->auth == HUB_AUTH_PENDING ? "required"
         : s->auth == HUB_AUTH_TOKEN ? "token"
                                     : "anonymous";
}

static void welcome(hub_session *s) {
  const dx_hub *h = s->hl->hub;
  json_t *o =
      json_pack("{s:s,s:i,s:s,s:s,s:s,s:{s:I,s:I,s:I,s:I}}", "type", "welcome", "version", 1,
                "client", s->client, "user", s->user, "auth", auth_name(s), "limits",
                "max_publication", (json_int_t)h->o.max_publication, "max_subscriptions",
                (json_int_t)h->o.max_subscriptions, "history_size", (json_int_t)h->history_size,
                "history_ttl", (json_int_t)(h->history_ttl_ms / 1000));
  if (o && s->ps) json_object_set_new(o, "session", json_string(hub_psession_id(s->ps)));
  send_text(s, o ? json_dumps(o, JSON_COMPACT) : NULL);
  json_decref(o);
}

int64_t hub_wall_s(void) { return (int64_t)time(NULL); }

/* The timed list: sessions the per-second tick must look at. */
static void timed_set(hub_session *s, int64_t deadline) {
  hub_loop *hl = s->hl;
  if (!s->deadline && deadline) {
    s->prev = NULL;
    s->next = hl->timed;
    if (hl->timed) hl->timed->prev = s;
    hl->timed = s;
  } else if (s->deadline && !deadline) {
    if (s->prev)
      s->prev->next = s->next;
    else
      hl->timed = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
  }
  s->deadline = deadline;
}

static void close_session(hub_session *s, uint16_t code, const char *reason) {
  if (s->closing) return;
  s->closing = true;
  timed_set(s, 0);
  s->ops->close(s, code, reason);
}

/* Take a verified token as the session's identity. Returns 0, or -1 when
 * the user has too many connections (the session is then closing). */
static int adopt(hub_session *s, hub_token *t) {
  if (!s->user_peer && !s->ps) { /* a session counts once, when it starts */
    const char *why;
    s->user_peer = hub_peers_admit(&s->hl->hub->users, t->user, hub_now_ms(s->hl), &why);
    if (!s->user_peer) {
      hub_stat_add(s->hl, ST_REFUSED_USER, 1);
      char peer[64];
      dx_log_info("hub: %s client %s user %s refused: %s (--max-connections-per-user); "
                  "closing with %d",
                  s->ops->peer(s, peer, sizeof peer), s->client, t->user, why, HUB_CLOSE_TOO_MANY);
      hub_token_clear(t);
      close_session(s, HUB_CLOSE_TOO_MANY, "too many connections for this user");
      return -1;
    }
  }
  hub_token_clear(&s->tok);
  s->tok = *t;
  s->user = s->tok.user;
  s->auth = HUB_AUTH_TOKEN;
  timed_set(s, 0);
  if (s->tok.exp) timed_set(s, s->tok.exp + s->hl->hub->leeway_s);
  return 0;
}

static int verify(hub_session *s, const char *token, hub_token *t, const char **why) {
  int rc = hub_token_verify(s->hl->hub->verifier, token, hub_wall_s(), t, why);
  if (rc)
    hub_stat_auth_failed(s->hl, *why);
  else
    hub_stat_add(s->hl, ST_AUTH_OK, 1);
  if (rc) {
    char peer[64];
    dx_log_info("hub: %s client %s: token refused: %s", s->ops->peer(s, peer, sizeof peer),
                s->client, *why); /* never the token */
  }
  return rc;
}

static void init(hub_session *s, hub_loop *hl, const hub_transport *tr,
                 const hub_session_ops *ops) {
  memset(s, 0, sizeof *s);
  s->m.tr = tr;
  s->hl = hl;
  s->ops = ops;
  s->user = "";
}

/* Check the token the transport brought (NULL: none). 0, or -1 closing. */
static int authenticate(hub_session *s, const char *token) {
  dx_hub *h = s->hl->hub;
  if (h->verifier && token) {
    hub_token t;
    const char *why;
    if (verify(s, token, &t, &why) != 0) {
      close_session(s, HUB_CLOSE_UNAUTHORIZED, why);
      return -1;
    }
    if (s->ps && strcmp(t.user, hub_psession_user(s->ps)) != 0) {
      hub_token_clear(&t);
      return HUB_OPEN_FOREIGN;
    }
    if (adopt(s, &t) != 0) return -1;
  } else if (h->verifier && !h->o.allow_anonymous) {
    s->auth = HUB_AUTH_PENDING;
    timed_set(s, hub_wall_s() + (h->o.auth_timeout_ms + 999) / 1000);
  }
  return 0;
}

void hub_session_open(hub_session *s, hub_loop *hl, const hub_transport *tr,
                      const hub_session_ops *ops, const char *token) {
  init(s, hl, tr, ops);
  s->m.conn = atomic_fetch_add(&hl->hub->next_conn, 1);
  snprintf(s->client, sizeof s->client, "%s-%llx", hl->hub->id_prefix,
           (unsigned long long)s->m.conn);
  if (authenticate(s, token) == 0) welcome(s);
}

int hub_session_open_http(hub_session *s, hub_loop *hl, const hub_transport *tr,
                          const hub_session_ops *ops, const char *token, hub_psession *ps,
                          hub_peer *ip) {
  dx_hub *h = hl->hub;
  init(s, hl, tr, ops);
  if (ps) {
    s->ps = ps;
    s->m.conn = hub_psession_conn(ps);
    snprintf(s->client, sizeof s->client, "%s", hub_psession_client(ps));
    int rc = authenticate(s, token);
    if (rc == 0 && s->auth != HUB_AUTH_TOKEN && *hub_psession_user(ps)) rc = HUB_OPEN_FOREIGN;
    if (rc) {
      timed_set(s, 0);
      s->ps = NULL; /* the caller still holds it */
      s->closing = true;
      return rc;
    }
    welcome(s);
    return 0;
  }
  s->m.conn = atomic_fetch_add(&h->next_conn, 1);
  snprintf(s->client, sizeof s->client, "%s-%llx", h->id_prefix, (unsigned long long)s->m.conn);
  if (authenticate(s, token) != 0) {
    hub_peers_release(&h->ips, ip);
    return -1;
  }
  s->ps = hub_psession_new(h, s->client, s->m.conn, s->user, &s->user_peer, ip);
  if (!s->ps) {
    hub_peers_release(&h->ips, ip);
    dx_log_error("hub: no memory (or randomness) for the session of client %s", s->client);
    close_session(s, 1011, "could not start a session");
    return -1;
  }
  welcome(s);
  return 0;
}

void hub_sessions_tick(hub_loop *hl, int64_t now_s) {
  for (hub_session *s = hl->timed, *next; s; s = next) {
    next = s->next;
    if (now_s < s->deadline) continue;
    bool pending = s->auth == HUB_AUTH_PENDING;
    hub_stat_auth_failed(hl, pending ? "authentication timeout" : "token expired");
    char peer[64];
    dx_log_info("hub: %s client %s%s%s: %s; closing with %d", s->ops->peer(s, peer, sizeof peer),
                s->client, *s->user ? " user " : "", s->user,
                pending ? "no token in time" : "token expired", HUB_CLOSE_UNAUTHORIZED);
    close_session(s, HUB_CLOSE_UNAUTHORIZED, pending ? "authentication timeout" : "token expired");
  }
}

static int connect_op(hub_session *s, hub_request *r, hub_error *err) {
  if (!s->hl->hub->verifier) {
    hub_error_set(err, "bad_request", "this server takes no tokens: everyone is anonymous");
    return -1;
  }
  if (s->auth == HUB_AUTH_TOKEN) {
    hub_error_set(err, "bad_request", "already authenticated: use refresh for a new token");
    return -1;
  }
  hub_token t;
  const char *why;
  if (verify(s, r->token, &t, &why) != 0) {
    hub_error_set(err, "unauthorized", "%s", why);
    send_text(s, hub_reply_error(r->id, err));
    close_session(s, HUB_CLOSE_UNAUTHORIZED, why);
    return 1; /* answered and closing */
  }
  if (adopt(s, &t) != 0) return 1;
  dx_log_debug("hub: client %s authenticated as user %s", s->client, s->user);
  if (r->id)
    send_text(s, hub_reply_ok(r->id, json_pack("{s:s,s:I}", "user", s->user, "exp",
                                               (json_int_t)s->tok.exp)));
  return 0;
}

static int refresh_op(hub_session *s, hub_request *r, hub_error *err) {
  if (s->auth != HUB_AUTH_TOKEN) {
    hub_error_set(err, "bad_request", "refresh needs a connection authenticated with a token");
    return -1;
  }
  hub_token t;
  const char *why;
  if (verify(s, r->token, &t, &why) != 0) {
    hub_error_set(err, "unauthorized", "%s", why);
    return -1;
  }
  if (strcmp(t.user, s->user) != 0) {
    hub_token_clear(&t);
    hub_error_set(err, "unauthorized", "the new token is for another user");
    return -1;
  }
  adopt(s, &t); /* the same user: already counted */
  if (r->id) send_text(s, hub_reply_ok(r->id, json_pack("{s:I}", "exp", (json_int_t)s->tok.exp)));
  return 0;
}

/* A request of an HTTP session subscribes unlisted: the session holds the
 * presence entry, across its requests. */
static hub_who who(const hub_session *s, const char *info) {
  return (hub_who){s->m.conn, s->client, s->user, info, s->ps != NULL};
}

static int check_topic(const hub_request *r, hub_error *err) {
  if (hub_topic_valid(r->topic, r->topic_len)) return 0;
  hub_error_set(err, "bad_topic", "%s", HUB_TOPIC_RULE);
  return -1;
}

/* Rate limits: 0, or -1 with a rate_limited error. */
static int rate_ok(hub_session *s, bool publish, const hub_request *r, hub_error *err) {
  const dx_hub_opts *o = &s->hl->hub->o;
  double rate = publish ? o->publish_rate : o->subscribe_rate;
  /* An HTTP session's requests share its buckets, whichever loop serves them. */
  uint32_t wait =
      s->ps ? hub_psession_rate(s->hl->hub, s->ps, publish, rate, r->topic, r->topic_len)
            : hub_bucket_take(publish ? &s->pub_rate : &s->sub_rate, rate, hub_now_ms(s->hl));
  if (!wait) return 0;
  hub_stat_add(s->hl, publish ? ST_RATE_LIMITED_PUBLISH : ST_RATE_LIMITED_SUBSCRIBE, 1);
  /* One line a second at most per connection, not one per refused request. */
  uint32_t now = (uint32_t)hub_now_ms(s->hl);
  if (!s->rate_logged_ms || now - s->rate_logged_ms >= 1000) {
    s->rate_logged_ms = now ? now : 1;
    char peer[64];
    dx_log_info("hub: %s client %s%s%s rate limited (%s, %g/s)", s->ops->peer(s, peer, sizeof peer),
                s->client, *s->user ? " user " : "", s->user, publish ? "publish" : "subscribe",
                rate);
  }
  hub_error_set(err, "rate_limited", "at most %g %s per second; retry in %u ms", rate,
                publish ? "publishes" : "subscribes", wait);
  return -1;
}

static int authorize(hub_session *s, dx_hub_action a, const hub_request *r, hub_error *err) {
  const dx_hub_opts *o = &s->hl->hub->o;
  const dx_hub_topic_rule *rule = hub_rule(s->hl->hub, r->topic, r->topic_len);
  if (a == DX_HUB_PUBLISH && rule && rule->api_only) {
    hub_error_set(err, "forbidden", "only the server publishes on '%s'", r->topic);
    return -1;
  }
  /* Anonymous clients on a hub that takes tokens follow the rule's mode. */
  if (s->auth == HUB_AUTH_ANONYMOUS && s->hl->hub->verifier) {
    dx_hub_anonymous m = rule ? rule->anonymous : DX_HUB_ANON_DEFAULT;
    bool ok = a == DX_HUB_PUBLISH ? m == DX_HUB_ANON_WRITE : m != DX_HUB_ANON_NONE;
    if (!ok) {
      hub_error_set(err, "forbidden", "anonymous clients may not %s '%s': connect with a token",
                    a == DX_HUB_PUBLISH ? "publish on" : "subscribe to", r->topic);
      return -1;
    }
  }
  const hub_grants *g = a == DX_HUB_PUBLISH ? &s->tok.publish : &s->tok.subscribe;
  if (!hub_grants_allow(g, r->topic, r->topic_len)) {
    hub_error_set(err, "forbidden", "your token does not allow you to %s '%s'",
                  a == DX_HUB_PUBLISH ? "publish on" : "subscribe to", r->topic);
    return -1;
  }
  if (!o->authorize || o->authorize(s->client, s->user, a, r->topic, o->user) == 0) return 0;
  hub_error_set(err, "forbidden", "not allowed to %s '%s'",
                a == DX_HUB_PUBLISH ? "publish on" : "subscribe to", r->topic);
  return -1;
}

static const char *reason_name(hub_recovery r) {
  switch (r) {
  case HUB_TOO_OLD:
    return "too_old";
  case HUB_EPOCH_CHANGED:
    return "epoch_changed";
  case HUB_OFFSET_AHEAD:
    return "offset_ahead";
  default:
    return NULL;
  }
}

static json_t *position(const hub_position *p) {
  return json_pack("{s:I,s:s}", "offset", (json_int_t)p->offset, "epoch", p->epoch);
}

static bool presence_off(const dx_hub *h, const hub_request *r) {
  const dx_hub_topic_rule *rule = hub_rule(h, r->topic, r->topic_len);
  return rule && rule->no_presence;
}

/* ---- requests that wait for the broker ---- */

enum { PENDING_SUBSCRIBE, PENDING_PUBLISH, PENDING_HISTORY, PENDING_PRESENCE };

static void pending_add(hub_session *s, hub_pending *p, uint8_t kind, json_t *id) {
  p->s = s;
  p->kind = kind;
  p->id = id ? json_incref(id) : NULL;
  p->prev = NULL;
  p->next = s->pending;
  if (s->pending) s->pending->prev = p;
  s->pending = p;
}

/* Unlink (if the session is still there) and drop the id; tells the
 * transport when nothing is waiting any more. */
static void pending_done(hub_pending *p) {
  hub_session *s = p->s;
  if (s) {
    if (p->prev)
      p->prev->next = p->next;
    else
      s->pending = p->next;
    if (p->next) p->next->prev = p->prev;
  }
  json_decref(p->id);
  p->id = NULL;
  p->s = NULL;
  if (s && !s->pending && s->ops->settled) s->ops->settled(s);
}

void hub_broker_error(int status, hub_error *err) {
  if (status == HUB_BROKER_DOWN)
    hub_error_set(err, "unavailable", "the broker is unreachable; nothing was done: retry");
  else if (status == HUB_BROKER_UNKNOWN)
    hub_error_set(err, "unavailable",
                  "the broker's connection broke before it answered; it may have been done");
  else
    hub_error_set(err, "internal", "out of memory");
}

typedef struct sub_wait {
  hub_pending p;
  hub_loop *hl; /* the broker's interest is this loop's, whether the session stays or not */
  uint32_t history;
  bool has_since, presence, no_presence;
  bool cancelled;   /* unsubscribed before the broker answered: never joins */
  json_t *unsub_id; /* that unsubscribe's id, answered after the subscribe */
  uint64_t since_offset;
  char *since_epoch; /* as given (any length: a wrong one must stay wrong), or NULL */
  char *info;        /* presence info as JSON text, or NULL */
  size_t topic_len;
  char topic[];
} sub_wait;

/* The subscribe to this topic that is waiting for the broker (and was not
 * unsubscribed meanwhile), or NULL. */
static sub_wait *subscribing(const hub_session *s, const char *topic, size_t len) {
  for (hub_pending *p = s->pending; p; p = p->next) {
    sub_wait *w = (sub_wait *)p;
    if (p->kind == PENDING_SUBSCRIBE && !w->cancelled && w->topic_len == len &&
        !memcmp(w->topic, topic, len))
      return w;
  }
  return NULL;
}

static uint32_t subscribes_waiting(const hub_session *s) {
  uint32_t n = 0;
  for (const hub_pending *p = s->pending; p; p = p->next)
    n += p->kind == PENDING_SUBSCRIBE && !((const sub_wait *)p)->cancelled;
  return n;
}

/* The broker holds the topic: join the core and the node, answer, replay. */
static int join(hub_session *s, sub_wait *w, hub_error *err) {
  dx_hub *h = s->hl->hub;
  hub_sub_req q = {.topic = w->topic,
                   .topic_len = w->topic_len,
                   .node = s->hl->index,
                   .who = who(s, w->info),
                   .has_since = w->has_since,
                   .since_offset = w->since_offset,
                   .since_epoch = w->since_epoch,
                   .history = w->history,
                   .join_env = s->ps ? NULL /* the HTTP session joins (below) */
                                     : hub_env_presence("join", w->topic, w->topic_len, s->client,
                                                        s->user, w->info),
                   .no_presence = w->no_presence};
  bool listed = false;
  q.listed = &listed;
  hub_position pos;
  hub_recovery rec;
  hub_replay replay;
  int rc = q.join_env || s->ps
               ? hub_core_subscribe(h->core, &q, hub_now_ms(s->hl), &pos, &rec, &replay)
               : -1;
  if (rc == 0 && s->ps)
    hub_psession_join(h, s->ps, w->topic, w->topic_len, w->info, w->no_presence);
  if (rc == 0 &&
      hub_node_add(&s->hl->node, &s->m, w->topic, w->topic_len, pos.offset, w->presence) != 0) {
    hub_core_unsubscribe(h->core, w->topic, w->topic_len, s->hl->index, &q.who, NULL);
    hub_replay_free(&replay);
    rc = -1;
  }
  /* The other nodes hear of it (Redis); one past max_presence is not
   * listed, so not told: its entry would never be refreshed, and expire
   * with a leave while it is still here. */
  if (rc == 0 && q.join_env && listed)
    h->broker->ops->joined(h->broker, s->hl, w->topic, w->topic_len, &q.who, q.join_env);
  hub_blob_unref(q.join_env);
  if (rc) {
    hub_error_set(err, "internal", "out of memory");
    return -1;
  }
  if (rec != HUB_RECOVERY_NONE)
    hub_stat_add(s->hl,
                 rec == HUB_RECOVERED       ? ST_RESUME_RECOVERED
                 : rec == HUB_TOO_OLD       ? ST_RESUME_TOO_OLD
                 : rec == HUB_EPOCH_CHANGED ? ST_RESUME_EPOCH_CHANGED
                                            : ST_RESUME_OFFSET_AHEAD,
                 1);
  if (w->p.id) {
    json_t *f = position(&pos);
    json_object_set_new(f, "topic", json_stringn(w->topic, w->topic_len));
    if (rec != HUB_RECOVERY_NONE) {
      json_object_set_new(f, "recovered", json_boolean(rec == HUB_RECOVERED));
      if (rec != HUB_RECOVERED) json_object_set_new(f, "reason", json_string(reason_name(rec)));
    }
    send_text(s, hub_reply_ok(w->p.id, f));
  }
  if (s->m.tr->subscribed) s->m.tr->subscribed(&s->m, w->topic, w->topic_len, &pos);
  /* The replay is the latest retained run, so it ends at pos.offset. */
  for (uint32_t i = 0; i < replay.len; i++) {
    hub_fanout f = {w->topic, w->topic_len, pos.offset - replay.len + 1 + i, replay.envs[i],
                    0,        NULL};
    s->m.tr->send_one(&s->m, &f);
    hub_stat_add(s->hl, ST_REPLIES, 1);
    hub_stat_add(s->hl, ST_REPLY_BYTES, replay.envs[i]->len);
  }
  hub_replay_free(&replay);
  return 0;
}

static void fail(hub_session *s, json_t *id, const hub_error *err);

/* Answer a subscribe that an unsubscribe overtook, then that unsubscribe,
 * as the memory broker would have (subscribed, then unsubscribed). */
static void answer_cancelled(hub_session *s, sub_wait *w, int status) {
  hub_error err;
  if (status) {
    hub_broker_error(status, &err);
    fail(s, w->p.id, &err);
    hub_error_set(&err, "not_subscribed", "not subscribed to '%.*s'", (int)w->topic_len, w->topic);
    fail(s, w->unsub_id, &err);
    return;
  }
  hub_position pos = {0};
  if (w->p.id) {
    json_t *f = hub_core_position(s->hl->hub->core, w->topic, w->topic_len, &pos) ? position(&pos)
                                                                                  : json_object();
    json_object_set_new(f, "topic", json_stringn(w->topic, w->topic_len));
    send_text(s, hub_reply_ok(w->p.id, f));
  }
  if (w->unsub_id) send_text(s, hub_reply_ok(w->unsub_id, NULL));
}

static void on_topic_ready(void *ctx, int status, const hub_position *pos) {
  (void)pos;
  sub_wait *w = ctx;
  hub_session *s = w->p.s;
  hub_loop *hl = w->hl;
  hub_error err;
  if (w->cancelled) {
    if (s && !s->closing) answer_cancelled(s, w, status);
    if (!hl->detached) hl->hub->broker->ops->unwant(hl->hub->broker, hl, w->topic, w->topic_len);
  } else if (s && !s->closing && status == 0 && join(s, w, &err) == 0) {
    /* subscribed: the broker's interest now belongs to the subscription */
  } else {
    if (s && !s->closing) {
      if (status) hub_broker_error(status, &err);
      fail(s, w->p.id, &err);
    }
    if (!hl->detached) /* else the broker is going away (dx_hub_free) */
      hl->hub->broker->ops->unwant(hl->hub->broker, hl, w->topic, w->topic_len);
  }
  pending_done(&w->p);
  json_decref(w->unsub_id);
  free(w->info);
  free(w->since_epoch);
  free(w);
}

static int subscribe(hub_session *s, hub_request *r, hub_error *err) {
  dx_hub *h = s->hl->hub;
  if (check_topic(r, err) || rate_ok(s, false, r, err) || authorize(s, DX_HUB_SUBSCRIBE, r, err))
    return -1;
  if (hub_member_find(&s->m, r->topic, r->topic_len) >= 0 ||
      subscribing(s, r->topic, r->topic_len)) {
    hub_error_set(err, "already_subscribed", "already subscribed to '%s'", r->topic);
    return -1;
  }
  if (s->m.nsubs + subscribes_waiting(s) >= h->o.max_subscriptions) {
    hub_error_set(err, "too_many_subscriptions", "at most %u subscriptions per connection",
                  h->o.max_subscriptions);
    return -1;
  }
  char *info = r->info ? json_dumps(r->info, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  if (info && strlen(info) > HUB_INFO_MAX) {
    hub_error_set(err, "message_too_big", "presence info is %zu bytes; the limit is %d",
                  strlen(info), HUB_INFO_MAX);
    free(info);
    return -1;
  }
  sub_wait *w = calloc(1, sizeof *w + r->topic_len + 1);
  char *epoch = r->since_epoch ? strdup(r->since_epoch) : NULL;
  if (!w || (r->info && !info) || (r->since_epoch && !epoch)) {
    free(w);
    free(info);
    free(epoch);
    hub_error_set(err, "internal", "out of memory");
    return -1;
  }
  w->hl = s->hl;
  w->history = r->history;
  w->has_since = r->has_since;
  w->since_offset = r->since_offset;
  w->since_epoch = epoch;
  w->presence = r->presence;
  w->no_presence = presence_off(h, r);
  w->info = info;
  w->topic_len = r->topic_len;
  memcpy(w->topic, r->topic, r->topic_len);
  pending_add(s, &w->p, PENDING_SUBSCRIBE, r->id);
  h->broker->ops->want(h->broker, s->hl, w->topic, w->topic_len, on_topic_ready, w);
  return 0;
}

/* Leave subscription i (the member's index), telling the others. */
static void leave(hub_session *s, uint32_t i) {
  char topic[HUB_TOPIC_MAX + 1];
  size_t len;
  const char *name = hub_member_topic(&s->m, i, &len);
  memcpy(topic, name, len);
  hub_node_remove(&s->hl->node, &s->m, i);
  hub_blob *env = s->ps ? NULL : hub_env_presence("leave", topic, len, s->client, s->user, NULL);
  hub_who w = who(s, NULL);
  dx_hub *h = s->hl->hub;
  hub_core_unsubscribe(h->core, topic, len, s->hl->index, &w, env);
  hub_blob_unref(env);
  if (!s->ps && hub_presence_allowed(h, topic, len, NULL) == 0) /* an HTTP session leaves later */
    h->broker->ops->left(h->broker, s->hl, topic, len, &w);
  h->broker->ops->unwant(h->broker, s->hl, topic, len);
}

static int unsubscribe(hub_session *s, hub_request *r, hub_error *err) {
  if (check_topic(r, err)) return -1;
  int i = hub_member_find(&s->m, r->topic, r->topic_len);
  sub_wait *w = i < 0 ? subscribing(s, r->topic, r->topic_len) : NULL;
  if (w) { /* it never joins; both are answered once the broker has (in order) */
    w->cancelled = true;
    w->unsub_id = r->id ? json_incref(r->id) : NULL;
    return 0;
  }
  if (i < 0) {
    hub_error_set(err, "not_subscribed", "not subscribed to '%s'", r->topic);
    return -1;
  }
  leave(s, (uint32_t)i);
  if (r->id) send_text(s, hub_reply_ok(r->id, NULL));
  return 0;
}

static void on_published(void *ctx, int status, const hub_position *pos) {
  hub_pending *p = ctx;
  hub_session *s = p->s;
  if (s && !s->closing) {
    if (status == 0) {
      hub_stat_add(s->hl, ST_PUBLISH_CLIENT, 1);
      if (p->id) send_text(s, hub_reply_ok(p->id, position(pos)));
    } else {
      hub_error err;
      hub_broker_error(status, &err);
      fail(s, p->id, &err);
    }
  }
  pending_done(p);
  free(p);
}

static int publish(hub_session *s, hub_request *r, hub_error *err) {
  dx_hub *h = s->hl->hub;
  if (check_topic(r, err) || rate_ok(s, true, r, err) || authorize(s, DX_HUB_PUBLISH, r, err) ||
      hub_check_payload(h, r->topic, r->topic_len, r->data, r->b64, r->b64_len, err))
    return -1;
  hub_pending *p = calloc(1, sizeof *p);
  if (!p) {
    hub_error_set(err, "internal", "out of memory");
    return -1;
  }
  pending_add(s, p, PENDING_PUBLISH, r->id);
  hub_pub pub = {
      r->topic, r->topic_len, r->data, r->b64, r->b64_len, s->client, r->skip_self ? s->m.conn : 0};
  hub_publish(s->hl, &pub, on_published, p);
  return 0;
}

json_t *hub_presence_fields(int status, const hub_presence_list *l, hub_error *err) {
  if (status) {
    hub_broker_error(status, err);
    return NULL;
  }
  json_t *a = json_array(), *f = NULL;
  for (size_t i = 0; a && i < l->len; i++) {
    json_t *e = json_pack("{s:s,s:s}", "client", l->items[i].client, "user", l->items[i].user);
    if (e && l->items[i].info)
      json_object_set_new(e, "info", json_loads(l->items[i].info, JSON_DECODE_ANY, NULL));
    json_array_append_new(a, e);
  }
  f = a ? json_pack("{s:o,s:b}", "presence", a, "complete", l->complete) : NULL;
  if (!f) hub_error_set(err, "internal", "out of memory");
  return f;
}

int hub_presence_allowed(dx_hub *h, const char *topic, size_t len, hub_error *err) {
  const dx_hub_topic_rule *rule = hub_rule(h, topic, len);
  if (!rule || !rule->no_presence) return 0;
  if (err) hub_error_set(err, "forbidden", "presence is off for '%.*s'", (int)len, topic);
  return -1;
}

static void on_presence(void *ctx, int status, hub_presence_list *l) {
  hub_pending *p = ctx;
  hub_session *s = p->s;
  if (s && !s->closing) {
    hub_error err;
    json_t *f = hub_presence_fields(status, l, &err);
    if (!f)
      fail(s, p->id, &err);
    else if (p->id)
      send_text(s, hub_reply_ok(p->id, f));
    else
      json_decref(f);
  }
  pending_done(p);
  free(p);
}

static int presence(hub_session *s, hub_request *r, hub_error *err) {
  dx_hub *h = s->hl->hub;
  if (check_topic(r, err) || hub_presence_allowed(h, r->topic, r->topic_len, err)) return -1;
  hub_pending *p = calloc(1, sizeof *p);
  if (!p) {
    hub_error_set(err, "internal", "out of memory");
    return -1;
  }
  pending_add(s, p, PENDING_PRESENCE, r->id);
  h->broker->ops->presence(h->broker, s->hl, r->topic, r->topic_len, on_presence, p);
  return 0;
}

json_t *hub_history_fields(const hub_history_query *q, hub_history_result *r, hub_error *err) {
  if (r->status == 1) {
    hub_error_set(err, "epoch_changed", "the topic's epoch is no longer '%s'",
                  q->since_epoch ? q->since_epoch : "");
    return NULL;
  }
  if (r->status) {
    hub_broker_error(r->status, err);
    return NULL;
  }
  json_t *pubs = hub_envs_array(r->pubs.envs, r->pubs.len);
  json_t *f = pubs ? position(&r->pos) : NULL;
  if (!f) {
    json_decref(pubs);
    hub_error_set(err, "internal", "out of memory");
    return NULL;
  }
  json_object_set_new(f, "publications", pubs);
  json_object_set_new(f, "complete", json_boolean(r->complete));
  return f;
}

typedef struct history_wait {
  hub_pending p;
  hub_history_query q;
  char *since_epoch;
  char topic[];
} history_wait;

static void on_history(void *ctx, hub_history_result *res) {
  history_wait *w = ctx;
  hub_session *s = w->p.s;
  if (s && !s->closing) {
    hub_error err;
    json_t *f = hub_history_fields(&w->q, res, &err);
    if (!f)
      fail(s, w->p.id, &err);
    else if (w->p.id)
      send_text(s, hub_reply_ok(w->p.id, f));
    else
      json_decref(f);
  }
  pending_done(&w->p);
  free(w->since_epoch);
  free(w);
}

static int history(hub_session *s, hub_request *r, hub_error *err) {
  if (check_topic(r, err)) return -1;
  history_wait *w = calloc(1, sizeof *w + r->topic_len + 1);
  char *epoch = r->since_epoch ? strdup(r->since_epoch) : NULL;
  if (!w || (r->since_epoch && !epoch)) {
    free(w);
    free(epoch);
    hub_error_set(err, "internal", "out of memory");
    return -1;
  }
  memcpy(w->topic, r->topic, r->topic_len);
  w->since_epoch = epoch;
  w->q = (hub_history_query){
      w->topic, r->topic_len, r->has_since, r->since_offset, r->since_epoch ? w->since_epoch : NULL,
      r->limit};
  pending_add(s, &w->p, PENDING_HISTORY, r->id);
  s->hl->hub->broker->ops->history(s->hl->hub->broker, s->hl, &w->q, on_history, w);
  return 0;
}

static void fail(hub_session *s, json_t *id, const hub_error *err) {
  hub_stat_add(s->hl, ST_ERRORS, 1);
  send_text(s, hub_reply_error(id, err));
  bool invalid = !strcmp(err->code, "bad_request") || !strcmp(err->code, "unknown_op");
  if (invalid && ++s->bad_in_row >= HUB_BAD_IN_ROW_MAX) {
    char peer[64];
    dx_log_info("hub: %s client %s sent %d invalid requests in a row; closing with %d",
                s->ops->peer(s, peer, sizeof peer), s->client, HUB_BAD_IN_ROW_MAX,
                HUB_CLOSE_BAD_PROTOCOL);
    close_session(s, HUB_CLOSE_BAD_PROTOCOL, "too many invalid requests");
  }
}

void hub_session_reject(hub_session *s, const char *code, const char *message) {
  hub_error err;
  hub_error_set(&err, code, "%s", message);
  fail(s, NULL, &err);
}

void hub_session_request(hub_session *s, const char *text, size_t len) {
  if (s->closing) return;
  hub_stat_add(s->hl, ST_REQUESTS, 1);
  hub_stat_add(s->hl, ST_REQUEST_BYTES, len);
  hub_request r;
  hub_error err;
  int rc = hub_request_parse(text, len, &r, &err);
  if (rc == 0 && s->auth == HUB_AUTH_PENDING && r.op != HUB_OP_CONNECT && r.op != HUB_OP_PING) {
    hub_error_set(&err, "unauthorized",
                  "authenticate first: send {\"op\":\"connect\",\"token\":\"...\"}");
    rc = -1;
  }
  if (rc == 0) {
    switch (r.op) {
    case HUB_OP_CONNECT:
      rc = connect_op(s, &r, &err);
      break;
    case HUB_OP_REFRESH:
      rc = refresh_op(s, &r, &err);
      break;
    case HUB_OP_SUBSCRIBE:
      rc = subscribe(s, &r, &err);
      break;
    case HUB_OP_UNSUBSCRIBE:
      rc = unsubscribe(s, &r, &err);
      break;
    case HUB_OP_PUBLISH:
      rc = publish(s, &r, &err);
      break;
    case HUB_OP_PRESENCE:
      rc = presence(s, &r, &err);
      break;
    case HUB_OP_HISTORY:
      rc = history(s, &r, &err);
      break;
    case HUB_OP_PING:
      if (r.id) send_text(s, hub_reply_ok(r.id, NULL));
      break;
    }
  }
  if (rc == 0)
    s->bad_in_row = 0;
  else if (rc < 0)
    fail(s, r.id, &err);
  hub_request_free(&r);
}

void hub_session_close(hub_session *s) {
  /* Answers still to come go to nobody (their completions free them). */
  for (hub_pending *p = s->pending, *next; p; p = next) {
    next = p->next;
    p->s = NULL;
    p->prev = p->next = NULL;
  }
  s->pending = NULL;
  timed_set(s, 0);
  hub_peers_release(&s->hl->hub->users, s->user_peer);
  s->user_peer = NULL;
  while (s->m.nsubs) leave(s, s->m.nsubs - 1);
  hub_token_clear(&s->tok);
  if (s->ps) hub_psession_release(s->hl->hub, s->ps);
  s->ps = NULL;
}
