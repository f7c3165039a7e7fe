/* GET /metrics (Prometheus text format 0.0.4) and GET /readyz. The
 * counters live per loop (written by that loop's thread only); a scrape
 * sums them with relaxed loads, so counting costs no lock and no shared
 * cache line on the hot path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/http.h"
#include "hub/hub_internal.h"

const char *const hub_auth_reasons[ST_AUTH_FAILED_LAST - ST_AUTH_FAILED + 1] = {
    "token missing",
    "malformed token",
    "bad signature",
    "token algorithm not allowed",
    "token expired",
    "token not yet valid",
    "token for another audience",
    "token from another issuer",
    "authentication timeout",
    "token without a user",
    "other",
};
#define NREASONS (sizeof hub_auth_reasons / sizeof *hub_auth_reasons)

void hub_stat_auth_failed(hub_loop *hl, const char *why) {
  size_t i = 0;
  while (i < NREASONS - 1 && strncmp(why, hub_auth_reasons[i], strlen(hub_auth_reasons[i])) != 0)
    i++;
  hub_stat_add(hl, (hub_stat)(ST_AUTH_FAILED + i), 1);
}

typedef struct out {
  char *buf;
  size_t len, cap;
  bool oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
  if (o->oom) return;
  if (!o->buf && !(o->buf = malloc(o->cap = 8192))) {
    o->oom = true;
    return;
  }
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (o->len + (size_t)n < o->cap) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = (o->cap + (size_t)n) * 2;
    char *b = realloc(o->buf, cap);
    if (!b) {
      o->oom = true;
      return;
    }
    o->buf = b;
    o->cap = cap;
  }
}

static uint64_t sum(const dx_hub *h, hub_stat st) {
  uint64_t v = 0;
  for (unsigned i = 0; i < h->nloops; i++)
    v += atomic_load_explicit(&h->loops[i]->stats[st], memory_order_relaxed);
  return v;
}

/* A node counter summed over the loops. */
#define NODE_SUM(h, field) node_sum(h, offsetof(hub_node, field))
static uint64_t node_sum(const dx_hub *h, size_t off) {
  uint64_t v = 0;
  for (unsigned i = 0; i < h->nloops; i++)
    v += atomic_load_explicit((_Atomic uint64_t *)((char *)&h->loops[i]->node + off),
                              memory_order_relaxed);
  return v;
}

static void family(out *o, const char *name, const char *type, const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type, const char *help, uint64_t v) {
  family(o, name, type, help);
  put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void render(const dx_hub *h, out *o) {
  family(o, "duplex_connections", "gauge", "Open client connections.");
  put(o, "duplex_connections{transport=\"websocket\"} %lld\n", (long long)sum(h, ST_CONNECTIONS));
  put(o, "duplex_connections{transport=\"sse\"} %lld\n", (long long)sum(h, ST_CONNECTIONS_SSE));
  put(o, "duplex_connections{transport=\"poll\"} %lld\n", (long long)sum(h, ST_CONNECTIONS_POLL));
  one(o, "duplex_connections_opened_total", "counter", "Client connections opened.",
      sum(h, ST_CONNECTIONS_TOTAL));
  family(o, "duplex_connections_refused_total", "counter",
         "Connections refused by a limit (address: 429 before the upgrade; user: close 4008).");
  put(o, "duplex_connections_refused_total{reason=\"address\"} %llu\n",
      (unsigned long long)sum(h, ST_REFUSED_ADDRESS));
  put(o, "duplex_connections_refused_total{reason=\"user\"} %llu\n",
      (unsigned long long)sum(h, ST_REFUSED_USER));
  one(o, "duplex_http_sessions", "gauge",
      "Sessions of the HTTP transports (long-poll, SSE + POST) alive now.",
      atomic_load_explicit(&((dx_hub *)h)->psessions.open, memory_order_relaxed));
  one(o, "duplex_http_sessions_opened_total", "counter", "HTTP transport sessions started.",
      atomic_load_explicit(&((dx_hub *)h)->psessions.opened, memory_order_relaxed));
  one(o, "duplex_http_sessions_expired_total", "counter",
      "HTTP transport sessions expired after their idle time.",
      atomic_load_explicit(&((dx_hub *)h)->psessions.expired, memory_order_relaxed));
  one(o, "duplex_subscriptions", "gauge", "Subscriptions held by connections.",
      NODE_SUM(h, subscriptions));
  family(o, "duplex_broker_up", "gauge",
         "1 when the broker (memory, or redis: its connections) is reachable, else 0.");
  put(o, "duplex_broker_up{broker=\"%s\"} %d\n", h->broker->ops->name,
      h->broker->ops->up(h->broker) ? 1 : 0);
  one(o, "duplex_broker_resyncs_total", "counter",
      "Topics loaded again from the broker because a publication did not follow on.",
      atomic_load_explicit(&h->broker->resyncs, memory_order_relaxed));
  one(o, "duplex_topics", "gauge", "Topics with subscribers, presence or history.",
      hub_core_topic_count(h->core));
  one(o, "duplex_history_retained_bytes", "gauge", "Bytes of publications kept for resume.",
      hub_core_retained_bytes(h->core));
  one(o, "duplex_messages_received_total", "counter", "Requests received from clients.",
      sum(h, ST_REQUESTS));
  one(o, "duplex_received_bytes_total", "counter", "Bytes of requests received.",
      sum(h, ST_REQUEST_BYTES));
  family(o, "duplex_messages_sent_total", "counter", "Messages sent to clients.");
  put(o, "duplex_messages_sent_total{kind=\"delivery\"} %llu\n",
      (unsigned long long)NODE_SUM(h, delivered));
  put(o, "duplex_messages_sent_total{kind=\"reply\"} %llu\n",
      (unsigned long long)sum(h, ST_REPLIES));
  family(o, "duplex_sent_bytes_total", "counter", "Bytes of messages sent to clients.");
  put(o, "duplex_sent_bytes_total{kind=\"delivery\"} %llu\n",
      (unsigned long long)NODE_SUM(h, delivered_bytes));
  put(o, "duplex_sent_bytes_total{kind=\"reply\"} %llu\n",
      (unsigned long long)sum(h, ST_REPLY_BYTES));
  family(o, "duplex_publishes_total", "counter", "Publications accepted, by source.");
  put(o, "duplex_publishes_total{source=\"client\"} %llu\n",
      (unsigned long long)sum(h, ST_PUBLISH_CLIENT));
  put(o, "duplex_publishes_total{source=\"api\"} %llu\n",
      (unsigned long long)sum(h, ST_PUBLISH_API));
  one(o, "duplex_deliveries_total", "counter", "Publications and presence events delivered.",
      NODE_SUM(h, delivered));
  family(o, "duplex_dropped_total", "counter",
         "Deliveries dropped: the subscriber was too slow (and is closed) or closing.");
  put(o, "duplex_dropped_total{reason=\"slow\"} %llu\n",
      (unsigned long long)NODE_SUM(h, dropped_slow));
  put(o, "duplex_dropped_total{reason=\"closing\"} %llu\n",
      (unsigned long long)NODE_SUM(h, dropped_closed));
  one(o, "duplex_errors_total", "counter", "Error replies to requests.", sum(h, ST_ERRORS));
  family(o, "duplex_resumes_total", "counter", "Subscribes with a position, by outcome.");
  static const struct {
    const char *label;
    hub_stat st;
  } resumes[] = {{"recovered", ST_RESUME_RECOVERED},
                 {"too_old", ST_RESUME_TOO_OLD},
                 {"epoch_changed", ST_RESUME_EPOCH_CHANGED},
                 {"offset_ahead", ST_RESUME_OFFSET_AHEAD}};
  for (size_t i = 0; i < sizeof resumes / sizeof *resumes; i++)
    put(o, "duplex_resumes_total{result=\"%s\"} %llu\n", resumes[i].label,
        (unsigned long long)sum(h, resumes[i].st));
  one(o, "duplex_auth_successes_total", "counter", "Tokens accepted.", sum(h, ST_AUTH_OK));
  family(o, "duplex_auth_failures_total", "counter", "Tokens refused, by reason.");
  for (size_t i = 0; i < NREASONS; i++)
    put(o, "duplex_auth_failures_total{reason=\"%s\"} %llu\n", hub_auth_reasons[i],
        (unsigned long long)sum(h, (hub_stat)(ST_AUTH_FAILED + i)));
  family(o, "duplex_rate_limited_total", "counter", "Requests refused by a rate limit.");
  put(o, "duplex_rate_limited_total{kind=\"publish\"} %llu\n",
      (unsigned long long)sum(h, ST_RATE_LIMITED_PUBLISH));
  put(o, "duplex_rate_limited_total{kind=\"subscribe\"} %llu\n",
      (unsigned long long)sum(h, ST_RATE_LIMITED_SUBSCRIBE));
  family(o, "duplex_loop_lag_seconds", "gauge",
         "How late the loop's once-a-second timer last fired.");
  for (unsigned i = 0; i < h->nloops; i++)
    put(o, "duplex_loop_lag_seconds{loop=\"%u\"} %.3f\n", i,
        (double)atomic_load_explicit(&h->loops[i]->stats[ST_LOOP_LAG_MS], memory_order_relaxed) /
            1000.0);
}

static void on_metrics(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  if (strcmp(dx_http_method(req), "GET") != 0 && strcmp(dx_http_method(req), "HEAD") != 0) {
    static const char msg[] = "use GET\n";
    dx_http_respond(req, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n", msg,
                    sizeof msg - 1);
    return;
  }
  out o = {0};
  render(hl->hub, &o);
  if (o.oom) {
    static const char msg[] = "out of memory\n";
    dx_http_respond(req, 500, "text/plain; charset=utf-8", NULL, msg, sizeof msg - 1);
  } else {
    dx_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                    "Cache-Control: no-store\r\n", o.buf, o.len);
  }
  free(o.buf);
}

/* Ready: attached and serving (a broker, when there is one, will add its
 * own condition). */
static void on_readyz(dx_http_req *req, void *user) {
  hub_loop *hl = user;
  dx_hub *h = hl->hub;
  bool broker = h->broker->ops->up(h->broker);
  bool ready = !hl->detached && h->core && broker;
  const char *body = ready    ? "ready\n"
                     : broker ? "not ready\n"
                              : "not ready: the broker is unreachable\n";
  dx_http_respond(req, ready ? 200 : 503, "text/plain; charset=utf-8",
                  "Cache-Control: no-store\r\n", body, strlen(body));
}

int hub_metrics_attach(hub_loop *hl) {
  int rc = dx_server_http(hl->srv, "/metrics", on_metrics, hl);
  return rc ? rc : dx_server_http(hl->srv, "/readyz", on_readyz, hl);
}
