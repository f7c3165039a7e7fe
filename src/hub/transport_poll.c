/* The hub over plain HTTP, for clients that can hold no stream at all:
 *   GET  /poll?topics=a,b[&since=IDS][&timeout=S][&session=SID][&token=JWT]
 *        long-polling (without topics: open or keep a session)
 *   POST /http/request[?session=SID][&token=JWT]  one duplex.v1 request
 *        (publish, history, presence, ping, refresh) and its reply
 * Deliveries are stateless: a poll carries the positions it has seen (the
 * same OFFSET.EPOCH list as SSE event ids) and answers with what came after
 * them, at once when something is waiting, else when something arrives or
 * at the timeout; so any loop can serve the next poll. What makes the
 * polls one client (id, presence, rate limits) is their session
 * (poll_session.h). Thin again: a short-lived hub_session does the
 * subscribing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duplex/http.h"
#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/stream_topics.h"

#define POLL_TIMEOUT_S 25
#define POLL_TIMEOUT_MAX_S 120
#define POLL_MAX_EVENTS 1000 /* then answer: the next poll continues */

typedef struct poll_conn {
  hub_session s;    /* first: a hub_member* is a poll_conn* */
  dx_http_req *req; /* NULL once answered or gone */
  hub_loop *hl;
  json_t *events;
  dx_timer timeout;
  dx_deferred answer; /* answer at the end of the turn: batch what arrives in it */
  bool subscribing, finished;
  bool fresh;  /* a handshake (no topics= at all): the welcome goes in */
  bool listed; /* topics= was given (maybe empty): it is the session's whole set */
  char sid[HUB_SID_LEN + 1];
  hub_stream_topics topics;
} poll_conn;

static poll_conn *conn_of(hub_member *m) { return (poll_conn *)(void *)m; }

static void poll_free(void *p) {
  poll_conn *c = p;
  json_decref(c->events);
  hub_stream_topics_clear(&c->topics);
  free(c);
}

/* Leave the topics and free (end of turn). */
static void finish(poll_conn *c) {
  if (c->finished) return;
  c->finished = true;
  dx_timer_stop(&c->timeout);
  dx_deferred_cancel(&c->answer);
  hub_session_close(&c->s);
  hub_stat_add(c->hl, ST_CONNECTIONS_POLL, (uint64_t)-1);
  dx_loop_free_later(c->hl->loop, c, poll_free);
}

static void respond(poll_conn *c) {
  if (!c->req) return;
  char since[HUB_POSITIONS_MAX];
  hub_stream_positions_format(&c->topics, since, sizeof since);
  json_t *o = json_pack("{s:O,s:s}", "events", c->events, "since", since);
  if (o && c->sid[0]) json_object_set_new(o, "session", json_string(c->sid));
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  dx_http_req *req = c->req;
  c->req = NULL;
  char headers[128];
  snprintf(headers, sizeof headers, "Cache-Control: no-store\r\n%s%s%s",
           c->sid[0] ? "X-Duplex-Session: " : "", c->sid, c->sid[0] ? "\r\n" : "");
  if (body)
    dx_http_respond(req, 200, "application/json", headers, body, strlen(body));
  else
    dx_http_respond(req, 500, "text/plain", NULL, "out of memory\n", 14);
  free(body);
  finish(c);
}

static void run_answer(dx_loop *loop, void *arg) {
  (void)loop;
  respond(arg);
}

static void on_timeout(dx_timer *t) { respond(dx_container_of(t, poll_conn, timeout)); }

/* Worth answering for: anything but a subscribe's ok reply (alone, that
 * would make every poll answer at once). */
static bool worth_answer(json_t *e) {
  const char *type = json_string_value(json_object_get(e, "type"));
  return (type && strcmp(type, "reply") != 0) || json_is_false(json_object_get(e, "ok"));
}

static int collect(poll_conn *c, const char *data, size_t len) {
  if (!c->req) return HUB_SEND_CLOSED;
  json_t *e = json_loadb(data, len, 0, NULL);
  if (!e || json_array_append_new(c->events, e) != 0) return HUB_SEND_CLOSED;
  /* Something to hand over: answer at the end of this turn (not while
   * subscribing: the replay and the replies come first). A subscribe's
   * reply comes here after on_poll when the broker answers later (Redis). */
  if (!c->subscribing && worth_answer(e) && !dx_deferred_pending(&c->answer))
    dx_loop_defer(c->hl->loop, &c->answer, run_answer, c);
  return 0;
}

static int send_one(hub_member *m, const hub_fanout *f) {
  poll_conn *c = conn_of(m);
  if (json_array_size(c->events) >= POLL_MAX_EVENTS) return HUB_SEND_CLOSED; /* next poll */
  if (f->gap_epoch) { /* publications were lost: continue from here */
    hub_position pos = {.offset = f->offset};
    snprintf(pos.epoch, sizeof pos.epoch, "%s", f->gap_epoch);
    hub_stream_moved(&c->topics, f->topic, f->topic_len, &pos);
  } else if (f->offset) {
    hub_stream_advance(&c->topics, f->topic, f->topic_len, f->offset);
  }
  return collect(c, f->env->data, f->env->len);
}
static void *prepare(hub_blob *env) { return env; }
static int send_prepared(hub_member *m, void *p, const hub_fanout *f) {
  (void)p;
  return send_one(m, f);
}
static void release(void *p) { (void)p; }
static int send_env(hub_member *m, const char *data, size_t len) {
  /* Replies (subscribe outcomes, errors) go in; the welcome only in the
   * answer to the handshake (a poll without topics that starts a session). */
  poll_conn *c = conn_of(m);
  if (!c->fresh && !strncmp(data, "{\"type\":\"welcome\"", 17)) return 0;
  return collect(c, data, len);
}
static void subscribed(hub_member *m, const char *topic, size_t len, const hub_position *pos) {
  hub_stream_subscribed(&conn_of(m)->topics, topic, len, pos);
}

static const hub_transport poll_transport = {prepare,  send_prepared, release,
                                             send_one, send_env,      subscribed};

static void close_session(hub_session *s, uint16_t code, const char *reason) {
  poll_conn *c = (poll_conn *)(void *)s;
  char data[200];
  int n = snprintf(data, sizeof data, "{\"type\":\"close\",\"code\":%u,\"reason\":\"%s\"}", code,
                   reason);
  collect(c, data, (size_t)n);
}
static const char *session_peer(hub_session *s, char *buf, size_t cap) {
  poll_conn *c = (poll_conn *)(void *)s;
  return c->req ? dx_http_peer_str(c->req, buf, cap) : "-";
}
static const hub_session_ops poll_ops = {.close = close_session, .peer = session_peer};

static void on_gone(dx_http_req *req, void *user) {
  (void)req;
  poll_conn *c = user;
  c->req = NULL;
  finish(c);
}

static void plain(dx_http_req *req, int status, const char *msg) {
  dx_http_respond(req, status, "text/plain; charset=utf-8", NULL, msg, strlen(msg));
}

static const char *parse_poll(dx_http_req *req, poll_conn *c, int *timeout_s) {
  char list[HUB_TOPIC_LIST_MAX], ids[HUB_POSITIONS_MAX], num[16], pres[HUB_TOPIC_LIST_MAX];
  char info[HUB_STREAM_INFO_MAX], hist[16];
  int n = dx_http_query_param(req, "topics", list, sizeof list);
  if (n == DX_EINVAL) return "topics: at most 16 topic names, comma-separated\n";
  c->listed = n >= 0;
  if (n > 0) { /* without topics=: a handshake that opens or keeps a session */
    const char *bad = hub_stream_topics_parse(&c->topics, list);
    if (bad) return bad;
  }
  if (dx_http_query_param(req, "since", ids, sizeof ids) > 0)
    hub_stream_positions_parse(&c->topics, ids);
  bool has_pres = dx_http_query_param(req, "presence", pres, sizeof pres) > 0;
  int ni = dx_http_query_param(req, "info", info, sizeof info);
  if (ni == DX_EINVAL) return "info: at most 4 KiB of JSON\n";
  bool has_hist = dx_http_query_param(req, "history", hist, sizeof hist) > 0;
  const char *bad = hub_stream_options_parse(&c->topics, has_pres ? pres : NULL,
                                             ni > 0 ? info : NULL, has_hist ? hist : NULL);
  if (bad) return bad;
  *timeout_s = POLL_TIMEOUT_S;
  if (dx_http_query_param(req, "timeout", num, sizeof num) > 0) {
    char *end;
    long v = strtol(num, &end, 10);
    if (*end || v < 0 || v > POLL_TIMEOUT_MAX_S) return "timeout: seconds from 0 to 120\n";
    *timeout_s = (int)v;
  }
  return NULL;
}

/* The token of a plain HTTP client: ?token= or Authorization: Bearer. */
static bool http_token(dx_http_req *req, char *out, size_t cap) {
  if (dx_http_query_param(req, "token", out, cap) > 0) return true;
  const char *a = dx_http_get_header(req, "Authorization");
  if (!a || strncasecmp(a, "Bearer ", 7) != 0 || strlen(a + 7) >= cap) return false;
  strcpy(out, a + 7);
  return true;
}

/* A new session counts as a connection of its address (when limited). */
static int admit_address(dx_http_req *req, hub_loop *hl, hub_peer **ip) {
  const dx_hub_opts *o = &hl->hub->o;
  *ip = NULL;
  if (!o->max_conns_per_ip && !(o->connect_rate_per_ip > 0)) return 0;
  char addr[64];
  const char *why;
  dx_http_peer_str(req, addr, sizeof addr);
  char *colon = strrchr(addr, ':');
  if (colon) *colon = '\0';
  if ((*ip = hub_peers_admit(&hl->hub->ips, addr, hub_now_ms(hl), &why))) return 0;
  hub_stat_add(hl, ST_REFUSED_ADDRESS, 1);
  plain(req, 429, "too many sessions from this address\n");
  return -1;
}

/* A poll refused before it started. */
static void drop(poll_conn *c) {
  hub_stream_topics_clear(&c->topics);
  json_decref(c->events);
  free(c);
}

static void on_poll(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  if (strcmp(dx_http_method(req), "GET") != 0) return plain(req, 405, "use GET for /poll\n");
  poll_conn *c = calloc(1, sizeof *c);
  if (!c || !(c->events = json_array())) {
    free(c);
    return plain(req, 500, "out of memory\n");
  }
  c->hl = hl;
  int timeout_s;
  const char *bad = parse_poll(req, c, &timeout_s);
  char token[8192];
  bool have = http_token(req, token, sizeof token);
  if (!bad && hl->hub->verifier && !hl->hub->o.allow_anonymous && !have) {
    hub_stat_auth_failed(hl, "token missing");
    drop(c);
    return plain(req, 401, "a token is needed: ?token=JWT or Authorization: Bearer JWT\n");
  }
  hub_psession *ps = NULL;
  hub_peer *ip = NULL;
  if (bad) {
    drop(c);
    return plain(req, 400, bad);
  }
  /* A handshake (no topics=) continues its session, or starts a new one. */
  if (hub_psession_from_request(req, hl->hub, &ps, !c->listed) != 0 ||
      (!ps && admit_address(req, hl, &ip) != 0))
    return drop(c);
  if (dx_http_defer(req, on_gone, c) != 0) {
    if (ps) hub_psession_release(hl->hub, ps);
    hub_peers_release(&hl->hub->ips, ip);
    drop(c);
    return plain(req, 500, "could not keep the request\n");
  }
  c->req = req;
  c->fresh = !c->listed;
  dx_timer_init(hl->loop, &c->timeout, on_timeout);
  dx_deferred_init(&c->answer);
  hub_stat_add(hl, ST_CONNECTIONS_POLL, 1);
  c->subscribing = true;
  int rc =
      hub_session_open_http(&c->s, hl, &poll_transport, &poll_ops, have ? token : NULL, ps, ip);
  if (rc == HUB_OPEN_FOREIGN && !c->listed) { /* a handshake: a session of its own */
    hub_psession_release(hl->hub, ps);
    ps = NULL;
    if (admit_address(req, hl, &ip) != 0) {
      c->req = NULL;
      return finish(c);
    }
    rc =
        hub_session_open_http(&c->s, hl, &poll_transport, &poll_ops, have ? token : NULL, NULL, ip);
  }
  if (rc == HUB_OPEN_FOREIGN) {
    hub_psession_release(hl->hub, ps);
    c->req = NULL;
    hub_psession_gone(req);
    return finish(c);
  }
  if (rc != 0 && ps) hub_psession_release(hl->hub, ps); /* a bad token: the close event says */
  if (c->s.ps) snprintf(c->sid, sizeof c->sid, "%s", hub_psession_id(c->s.ps));
  for (size_t i = 0; i < c->topics.n && !c->s.closing; i++) {
    char *text = hub_stream_subscribe_request(&c->topics, i);
    if (text) hub_session_request(&c->s, text, strlen(text));
    free(text);
  }
  /* The poll names every topic of the session: it left the others. */
  if (c->s.ps && !c->s.closing && c->listed) hub_psession_keep(hl->hub, c->s.ps, &c->topics);
  c->subscribing = false;
  /* Something already waiting (a replay, a refusal, a close), or no topics
   * to wait for? Answer now. Otherwise wait for the first
   * publication or the timeout. */
  bool ready = c->s.closing || timeout_s == 0 || !c->topics.n;
  for (size_t i = 0; !ready && i < json_array_size(c->events); i++)
    ready = worth_answer(json_array_get(c->events, i));
  if (ready)
    dx_loop_defer(hl->loop, &c->answer, run_answer, c);
  else
    dx_timer_start(&c->timeout, (uint64_t)timeout_s * 1000, 0);
}

/* One request outside any stream; its reply is the answer. */
typedef struct req_conn {
  hub_session s;
  char *reply;
  dx_http_req *req;          /* while the answer waits for the broker */
  char sid[HUB_SID_LEN + 1]; /* of its session, or "" */
} req_conn;

static int req_send_env(hub_member *m, const char *data, size_t len) {
  req_conn *c = (req_conn *)(void *)m;
  if (!strncmp(data, "{\"type\":\"welcome\"", 17) || c->reply) return 0;
  c->reply = strndup(data, len);
  return 0;
}
static int req_send_one(hub_member *m, const hub_fanout *f) {
  (void)m, (void)f; /* it subscribes to nothing */
  return 0;
}
static int req_send_prepared(hub_member *m, void *p, const hub_fanout *f) {
  (void)p;
  return req_send_one(m, f);
}
static const hub_transport req_transport = {prepare,      req_send_prepared, release,
                                            req_send_one, req_send_env,      NULL};
static void req_close(hub_session *s, uint16_t code, const char *reason) {
  req_conn *c = (req_conn *)(void *)s;
  if (c->reply) return;
  char data[200];
  snprintf(data, sizeof data, "{\"type\":\"close\",\"code\":%u,\"reason\":\"%s\"}", code, reason);
  c->reply = strdup(data);
}
static const char *req_peer(hub_session *s, char *buf, size_t cap) {
  (void)s;
  snprintf(buf, cap, "http");
  return buf;
}

/* Answer with the reply and end the one-shot session. */
static void req_finish(req_conn *c, dx_http_req *req) {
  if (hub_session_busy(&c->s) && !c->reply) /* could not wait for the broker */
    c->reply = strdup("{\"type\":\"reply\",\"ok\":false,\"error\":{\"code\":\"internal\","
                      "\"message\":\"out of memory\"}}");
  hub_session_close(&c->s);
  const char *out = c->reply ? c->reply : "{\"type\":\"reply\",\"ok\":true}";
  char headers[128];
  snprintf(headers, sizeof headers, "Cache-Control: no-store\r\n%s%s%s",
           c->sid[0] ? "X-Duplex-Session: " : "", c->sid, c->sid[0] ? "\r\n" : "");
  dx_http_respond(req, 200, "application/json", headers, out, strlen(out));
  free(c->reply);
  free(c);
}

/* The broker answered the request that was waiting (e.g. a publish on Redis). */
static void req_settled(hub_session *s) {
  req_conn *c = (req_conn *)(void *)s;
  dx_http_req *req = c->req;
  if (!req) return; /* still in the handler: it answers */
  c->req = NULL;
  req_finish(c, req);
}

static void req_gone(dx_http_req *req, void *user) {
  (void)req;
  req_conn *c = user;
  hub_session_close(&c->s); /* the broker's answer goes to nobody */
  free(c->reply);
  free(c);
}

static const hub_session_ops req_ops = {
    .close = req_close, .peer = req_peer, .settled = req_settled};

static void on_request(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  if (strcmp(dx_http_method(req), "POST") != 0)
    return plain(req, 405, "POST one duplex.v1 request to /http/request\n");
  size_t len;
  const char *body = dx_http_body(req, &len);
  json_t *r = json_loadb(body, len, 0, NULL);
  const char *op = json_string_value(json_object_get(r, "op"));
  bool streaming = op && (!strcmp(op, "subscribe") || !strcmp(op, "unsubscribe"));
  json_decref(r);
  if (streaming)
    return plain(req, 400, "subscribe with /sse or /poll: a plain request holds no subscription\n");
  char token[8192];
  bool have = http_token(req, token, sizeof token);
  if (hl->hub->verifier && !hl->hub->o.allow_anonymous && !have) {
    hub_stat_auth_failed(hl, "token missing");
    return plain(req, 401, "a token is needed: ?token=JWT or Authorization: Bearer JWT\n");
  }
  hub_psession *ps;
  if (hub_psession_from_request(req, hl->hub, &ps, false) != 0) return;
  req_conn *c = calloc(1, sizeof *c);
  if (!c) {
    if (ps) hub_psession_release(hl->hub, ps);
    return plain(req, 500, "out of memory\n");
  }
  if (ps) { /* one of the session's requests: its client, its buckets */
    int rc =
        hub_session_open_http(&c->s, hl, &req_transport, &req_ops, have ? token : NULL, ps, NULL);
    if (rc) hub_psession_release(hl->hub, ps);
    if (rc == HUB_OPEN_FOREIGN) {
      free(c);
      return hub_psession_gone(req);
    }
    snprintf(c->sid, sizeof c->sid, "%s", hub_psession_id(ps));
  } else { /* a one-shot client of its own */
    hub_session_open(&c->s, hl, &req_transport, &req_ops, have ? token : NULL);
  }
  if (!c->s.closing) hub_session_request(&c->s, body, len);
  if (!hub_session_busy(&c->s) || dx_http_defer(req, req_gone, c) != 0) return req_finish(c, req);
  c->req = req; /* req_settled answers */
}

int hub_poll_attach(hub_loop *hl) {
  int rc = dx_server_http(hl->srv, "/poll", on_poll, hl);
  return rc ? rc : dx_server_http(hl->srv, "/http/request", on_request, hl);
}
