/* The hub over Server-Sent Events (GET /sse): for clients that cannot open
 * a WebSocket. Receive-only: the topics are named in the URL
 * (?topics=a,b[&session=SID][&token=JWT]; the stream is one request of an
 * HTTP session, poll_session.h, which the welcome names), every publication is an event whose id
 * holds the position of every topic of the stream, so the browser's own EventSource reconnect
 * (Last-Event-ID) resumes without loss. A thin layer: subscribing goes through the same session
 * code as WebSocket requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/http.h"
#include "duplex/log.h"
#include "hub/hub_internal.h"
#include "hub/stream_topics.h"

#define SSE_HEARTBEAT_TICKS 15 /* a comment line every 15 s keeps proxies from timing out */

typedef struct sse_conn {
  hub_session s;    /* first: a hub_member* is an sse_conn* */
  dx_http_req *req; /* NULL once the stream is gone */
  hub_loop *hl;
  hub_peer *ip;
  dx_deferred finish; /* leaving the topics waits for the end of the turn */
  bool finishing;
  struct sse_conn *prev, *next; /* hl->sse, for heartbeats */
  hub_stream_topics topics;
} sse_conn;

static sse_conn *conn_of(hub_member *m) { return (sse_conn *)(void *)m; }

/* An event's name (the envelope's "type") and data: worked out once per
 * fan-out, not once per subscriber. */
typedef struct sse_event {
  const char *data;
  size_t len, name_len;
  char name[32];
} sse_event;

/* The envelope's "type" (our encoder writes it first), else "message". */
static void event_init(sse_event *e, const char *env, size_t len) {
  static const char key[] = "{\"type\":\"";
  e->data = env;
  e->len = len;
  e->name_len = 7;
  memcpy(e->name, "message", 8);
  if (len > sizeof key - 1 && memcmp(env, key, sizeof key - 1) == 0) {
    const char *p = env + sizeof key - 1;
    const char *q = memchr(p, '"', len - (sizeof key - 1));
    if (q && (size_t)(q - p) < sizeof e->name) {
      e->name_len = (size_t)(q - p);
      memcpy(e->name, p, e->name_len);
      e->name[e->name_len] = '\0';
    }
  }
}

static char *put(char *p, const char *s, size_t n) { return (char *)memcpy(p, s, n) + n; }

/* "id: ID\nevent: NAME\ndata: DATA\n\n" as one chunk; data is compact JSON
 * (no raw newline). Built with memcpy: this runs once per delivery. */
static int write_event(sse_conn *c, const sse_event *e, const char *id, size_t id_len) {
  if (!c->req) return HUB_SEND_CLOSED;
  size_t total = (id ? 5 + id_len : 0) + 8 + e->name_len + 7 + e->len + 2;
  char small[2048]; /* most events: no allocation per subscriber */
  char *buf = total <= sizeof small ? small : malloc(total);
  if (!buf) return HUB_SEND_CLOSED;
  char *p = buf;
  if (id) p = put(put(put(p, "id: ", 4), id, id_len), "\n", 1);
  p = put(put(put(p, "event: ", 7), e->name, e->name_len), "\ndata: ", 7);
  p = put(put(p, e->data, e->len), "\n\n", 2);
  int rc = dx_http_stream_write(c->req, buf, (size_t)(p - buf)); /* copies */
  if (buf != small) free(buf);
  return rc >= 0 ? 0 : rc == DX_EBACKPRESSURE ? HUB_SEND_SLOW : HUB_SEND_CLOSED;
}

static int send_event(hub_member *m, const sse_event *e, const hub_fanout *f) {
  sse_conn *c = conn_of(m);
  if (f->gap_epoch) { /* publications were lost: continue from here */
    hub_position pos = {.offset = f->offset};
    snprintf(pos.epoch, sizeof pos.epoch, "%s", f->gap_epoch);
    hub_stream_moved(&c->topics, f->topic, f->topic_len, &pos);
  } else if (f->offset) { /* a publication */
    hub_stream_advance(&c->topics, f->topic, f->topic_len, f->offset);
  } else {
    return write_event(c, e, NULL, 0);
  }
  /* Its id is every topic's position. */
  char id[HUB_POSITIONS_MAX];
  size_t n = hub_stream_positions_format(&c->topics, id, sizeof id);
  return write_event(c, e, id, n);
}

static int send_one(hub_member *m, const hub_fanout *f) {
  sse_event e;
  event_init(&e, f->env->data, f->env->len);
  return send_event(m, &e, f);
}
/* The ids differ per stream; the name is shared. NULL: send_one instead. */
static void *prepare(hub_blob *env) {
  sse_event *e = malloc(sizeof *e);
  if (e) event_init(e, env->data, env->len);
  return e;
}
static int send_prepared(hub_member *m, void *p, const hub_fanout *f) {
  return send_event(m, p, f);
}
static void release(void *p) { free(p); }
static int send_env(hub_member *m, const char *data, size_t len) {
  sse_event e;
  event_init(&e, data, len);
  return write_event(conn_of(m), &e, NULL, 0);
}
static void subscribed(hub_member *m, const char *topic, size_t len, const hub_position *pos) {
  hub_stream_subscribed(&conn_of(m)->topics, topic, len, pos);
}

static const hub_transport sse_transport = {prepare,  send_prepared, release,
                                            send_one, send_env,      subscribed};

static void sse_free(void *p) {
  sse_conn *c = p;
  hub_stream_topics_clear(&c->topics);
  free(c);
}

/* The stream ended (either side): leave every topic and free. Deferred to
 * the end of the turn: the end may be noticed inside a send, in the middle
 * of a fan-out over the very subscriber lists that leaving changes. */
static void run_finish(dx_loop *loop, void *arg) {
  (void)loop;
  sse_conn *c = arg;
  hub_loop *hl = c->hl;
  if (c->prev)
    c->prev->next = c->next;
  else if (hl->sse == c)
    hl->sse = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  hub_session_close(&c->s);
  hub_stat_add(hl, ST_CONNECTIONS_SSE, (uint64_t)-1);
  hub_peers_release(&hl->hub->ips, c->ip);
  c->ip = NULL;
  dx_loop_free_later(hl->loop, c, sse_free);
}

static void finish(sse_conn *c) {
  if (c->finishing) return;
  c->finishing = true;
  dx_loop_defer(c->hl->loop, &c->finish, run_finish, c);
}

static void close_session(hub_session *s, uint16_t code, const char *reason) {
  sse_conn *c = (sse_conn *)(void *)s;
  if (!c->req) return;
  char data[200];
  int n = snprintf(data, sizeof data, "{\"type\":\"close\",\"code\":%u,\"reason\":\"%s\"}", code,
                   reason); /* reasons are our own fixed ASCII sentences */
  sse_event e;
  event_init(&e, data, n < (int)sizeof data ? (size_t)n : sizeof data - 1);
  write_event(c, &e, NULL, 0);
  dx_http_stream_end(c->req);
  c->req = NULL;
  finish(c);
}

static const char *session_peer(hub_session *s, char *buf, size_t cap) {
  sse_conn *c = (sse_conn *)(void *)s;
  return c->req ? dx_http_peer_str(c->req, buf, cap) : "-";
}

static const hub_session_ops sse_ops = {.close = close_session, .peer = session_peer};

static void on_gone(dx_http_req *req, void *user) {
  (void)req;
  sse_conn *c = user;
  c->req = NULL;
  finish(c);
}

void hub_sse_heartbeat(hub_loop *hl) {
  if (++hl->sse_ticks < SSE_HEARTBEAT_TICKS) return;
  hl->sse_ticks = 0;
  for (sse_conn *c = hl->sse, *next; c; c = next) {
    next = c->next;
    if (c->req) dx_http_stream_write(c->req, ": ping\n\n", 8);
  }
}

static void refuse(dx_http_req *req, int status, const char *msg) {
  dx_http_respond(req, status, "text/plain; charset=utf-8", NULL, msg, strlen(msg));
}

/* ?topics=a,b into c->topics; Last-Event-ID (or ?since=) into positions;
 * the subscribe options (presence=, info=, history=). */
static const char *parse_request(dx_http_req *req, sse_conn *c) {
  char list[HUB_TOPIC_LIST_MAX], ids[HUB_POSITIONS_MAX], pres[HUB_TOPIC_LIST_MAX];
  char info[HUB_STREAM_INFO_MAX], hist[16];
  if (dx_http_query_param(req, "topics", list, sizeof list) <= 0)
    return "name the topics: /sse?topics=a,b (at most 16)\n";
  const char *bad = hub_stream_topics_parse(&c->topics, list);
  if (bad) return bad;
  const char *last = dx_http_get_header(req, "Last-Event-ID");
  if (!last && dx_http_query_param(req, "since", ids, sizeof ids) > 0) last = ids;
  hub_stream_positions_parse(&c->topics, last);
  bool has_pres = dx_http_query_param(req, "presence", pres, sizeof pres) > 0;
  int ni = dx_http_query_param(req, "info", info, sizeof info);
  if (ni == DX_EINVAL) return "info: at most 4 KiB of JSON\n";
  bool has_hist = dx_http_query_param(req, "history", hist, sizeof hist) > 0;
  return hub_stream_options_parse(&c->topics, has_pres ? pres : NULL, ni > 0 ? info : NULL,
                                  has_hist ? hist : NULL);
}

/* Refused before the stream started. */
static void drop(sse_conn *c) {
  hub_stream_topics_clear(&c->topics);
  free(c);
}

static void on_sse(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  if (strcmp(dx_http_method(req), "GET") != 0)
    return refuse(req, 405, "use GET (an EventSource) for /sse\n");
  sse_conn *c = calloc(1, sizeof *c);
  if (!c) return refuse(req, 500, "out of memory\n");
  c->hl = hl;
  dx_deferred_init(&c->finish);
  const char *bad = parse_request(req, c);
  if (bad) {
    drop(c);
    return refuse(req, 400, bad);
  }
  const dx_hub_opts *o = &hl->hub->o;
  char token[8192];
  bool have = dx_http_query_param(req, "token", token, sizeof token) > 0;
  if (hl->hub->verifier && !o->allow_anonymous && !have) {
    /* A stream cannot send `connect` later: ask for the token now. */
    drop(c);
    hub_stat_auth_failed(hl, "token missing");
    return refuse(req, 401, "a token is needed: /sse?topics=...&token=JWT\n");
  }
  hub_psession *ps;
  if (hub_psession_from_request(req, hl->hub, &ps, false) != 0) return drop(c);
  if (o->max_conns_per_ip || o->connect_rate_per_ip > 0) {
    char ip[64];
    const char *why;
    dx_http_peer_str(req, ip, sizeof ip);
    char *colon = strrchr(ip, ':');
    if (colon) *colon = '\0';
    if (!(c->ip = hub_peers_admit(&hl->hub->ips, ip, hub_now_ms(hl), &why))) {
      hub_stat_add(hl, ST_REFUSED_ADDRESS, 1);
      if (ps) hub_psession_release(hl->hub, ps);
      drop(c);
      return refuse(req, 429, "too many connections from this address\n");
    }
  }
  if (dx_http_defer(req, on_gone, c) != 0 ||
      dx_http_stream_start(req, 200, "text/event-stream; charset=utf-8",
                           "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n") != 0) {
    hub_peers_release(&hl->hub->ips, c->ip);
    if (ps) hub_psession_release(hl->hub, ps);
    drop(c);
    return refuse(req, 500, "could not start the stream\n");
  }
  /* Reconnect after 1 s (browsers default to about 3). */
  dx_http_stream_write(req, "retry: 1000\n\n", 13);
  c->req = req;
  c->next = hl->sse;
  if (hl->sse) hl->sse->prev = c;
  hl->sse = c;
  hub_stat_add(hl, ST_CONNECTIONS_SSE, 1);
  hub_stat_add(hl, ST_CONNECTIONS_TOTAL, 1);
  /* The stream counts as an address's connection itself: its session
   * takes none (ip NULL). */
  int rc =
      hub_session_open_http(&c->s, hl, &sse_transport, &sse_ops, have ? token : NULL, ps, NULL);
  if (rc && ps) hub_psession_release(hl->hub, ps);
  if (rc == HUB_OPEN_FOREIGN) { /* another user's session: as an unknown one */
    static const char msg[] = "{\"type\":\"close\",\"code\":4001,\"reason\":\"unknown_session\"}";
    sse_event e;
    event_init(&e, msg, sizeof msg - 1);
    write_event(c, &e, NULL, 0);
    dx_http_stream_end(c->req);
    c->req = NULL;
    return finish(c);
  }
  /* Subscribe through the same request path as WebSocket clients: the
   * same rules, limits and resume. */
  for (size_t i = 0; i < c->topics.n && c->req; i++) {
    char *text = hub_stream_subscribe_request(&c->topics, i);
    if (text) hub_session_request(&c->s, text, strlen(text));
    free(text);
  }
  /* The stream names every topic of the session: it left the others. */
  if (c->s.ps && c->req) hub_psession_keep(hl->hub, c->s.ps, &c->topics);
}

int hub_sse_attach(hub_loop *hl) { return dx_server_http(hl->srv, "/sse", on_sse, hl); }
