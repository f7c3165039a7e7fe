/* hubload: a load generator for pub/sub hubs (fan-out benchmark).
 *
 * Like loadgen.c it uses nothing from libduplex (libc, and OpenSSL's SHA-1
 * and base64 to check Sec-WebSocket-Accept), so duplex serve and its peers
 * are measured by the same neutral client. One thread, epoll (level
 * triggered), non-blocking sockets, a minimal WebSocket client.
 *
 * It opens S subscriber WebSocket (or SSE, below) connections (at most --ramp new ones per
 * second, 200 pending at once), subscribes subscriber i to topic
 * "t<i mod T>", then publishes at a fixed offered rate (open loop: a 1 ms
 * timer keeps the schedule whatever the server answers) 64-byte payloads to
 * topics round robin, over --publishers HTTP/1.1 keep-alive connections
 * with pipelining (topic t always on connection t mod P, so each topic's
 * publications stay in order), or for duplex optionally over one WebSocket.
 *
 * Each payload is ASCII: "~T" + 16 hex digits of the send time
 * (CLOCK_MONOTONIC ns) + "S" + 8 hex digits of the sequence number, padded
 * with 'x' to 64 bytes. Subscribers find it in whatever envelope the server
 * wraps it in.
 *
 * Dialects (--dialect):
 *   duplex    GET /ws, Sec-WebSocket-Protocol: duplex.v1; sends
 *             {"id":1,"op":"subscribe","topic":t} and waits for the ok reply;
 *             publishes POST /api/publish {"topic":t,"data":"<payload>"} with
 *             Authorization: Bearer K (--api-key), or with --publish ws
 *             {"op":"publish","topic":t,"data":"<payload>"} frames on /ws.
 *   nchan     GET /sub/<t> (subscribed once upgraded); POST /pub/<t> with
 *             the raw payload as the body.
 *   socketio  engine.io v4: GET /socket.io/?EIO=4&transport=websocket;
 *             server "0{...}", client "40", server "40{...}", client
 *             421["join",t], server 431[...] (the ack: subscribed); events
 *             42["msg",<payload>]; engine.io ping "2" is answered "3".
 *             Publishes POST /publish {"topic":t,"data":"<payload>"}.
 *
 * Subscriber transport (--transport):
 *   ws        WebSocket, as above (default).
 *   sse       Server-Sent Events over plain HTTP/1.1, for duplex and nchan:
 *             duplex GET /sse?topics=t (subscribed once the subscribe reply
 *             event says ok), nchan GET /sub/<t> with Accept:
 *             text/event-stream (subscribed once the 200 arrives). The body
 *             is de-chunked if chunked, split into lines, and every `data:`
 *             line is looked at like a WebSocket message (the payload inside
 *             it); `id:`, `event:`, `retry:` and comments are skipped.
 *
 * Timeline: baseline RSS of --server-pid (after one throwaway subscriber
 * has come and gone, so one-time costs are not charged to the S
 * connections), connect and subscribe all, settle 1 s, RSS again (the
 * difference / S is the RSS per idle subscribed connection), open the
 * publishers, publish for --warmup then --duration seconds, then drain:
 * wait until every publication reached every subscriber of its topic, or
 * no delivery came for --quiet seconds, or --drain seconds passed.
 *
 * Reported: deliveries/s during the measured window; deliveries per server
 * CPU-second (deliveries received and server utime+stime, both from the
 * start of the measured window to the end of the drain); publish-to-delivery
 * latency p50/p99/max of the publications sent in the measured window;
 * loss = offered x subscribers - delivered for those publications (also
 * split into publications the server never acknowledged and deliveries
 * missing of acknowledged ones); duplicates, reorderings, misrouted
 * deliveries, subscribers the server closed.
 *
 * Several nodes (bench/scale.sh): --sub-ports P1,P2,... spreads the
 * subscribers over those ports of --host (subscriber i on port i mod n),
 * while publishers and the warm-up connection use --port; --server-pid
 * may be given several times (or as a comma list): CPU time and RSS are
 * then summed over those processes (the nodes and redis-server).
 *
 * Build: bench/build.sh (or the hubload target of bench/CMakeLists.txt). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "load_stats.h"

#define MAX_PENDING_CONNECTS 200
#define HS_BUF 2048
#define NKEYS 64
#define RX_BUF (256 * 1024)
#define MAX_MSG (1 << 20) /* largest server message we accept */
#define PAYLOAD 64
#define MAX_PUBS 64
#define TICK_NS 1000000ull /* publish timer period */
#define MAX_NODES 16       /* --sub-ports */
#define MAX_PIDS 16        /* --server-pid */

enum dialect { D_DUPLEX, D_NCHAN, D_SOCKETIO };
static const char *const dialect_names[] = {"duplex", "nchan", "socketio"};

/* The de-chunker of an SSE subscriber (CH_NONE: the body is not chunked). */
enum chunk_state { CH_NONE, CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_LAST };

/* Subscriber (and WebSocket publisher) states. */
enum sstate {
  S_FREE,
  S_CONNECTING,
  S_HANDSHAKE,
  S_SIO_OPEN,    /* socketio: waiting for the engine.io open packet "0{" */
  S_SIO_CONNECT, /* socketio: sent "40", waiting for "40{" */
  S_SUBSCRIBING, /* sent the subscribe / join, waiting for its ok */
  S_SUBSCRIBED,
  S_DEAD, /* closed (by the server, or an error); counted */
};

/* One subscriber connection (WebSocket, or an SSE stream with --transport
 * sse; msg then holds a partial line), or the WebSocket publisher. Kept
 * small: 10,000 of them on one CPU. */
struct ws {
  int fd;
  uint8_t state;
  uint8_t hdr_len; /* bytes of the frame header collected, 0xff = in payload */
  uint8_t frame_op, frame_fin, msg_op, key, is_pub;
  uint8_t chunk_state; /* SSE: enum chunk_state */
  uint8_t node;        /* which --sub-ports port (0: --port without it) */
  uint32_t chunk_left; /* SSE: bytes left in the current chunk */
  uint8_t hdr[14];
  uint16_t hs_len;
  uint32_t topic;
  uint32_t last_seq;  /* highest sequence number seen + 1 (0: none) */
  uint32_t ctl_start; /* where a control frame's payload begins in msg */
  uint64_t payload_left;
  uint8_t *msg; /* message collected across reads or frames; NULL if none */
  uint32_t msg_len, msg_cap;
  uint8_t *out; /* bytes a short write left behind */
  uint32_t out_len, out_cap;
  char *hs;
  uint64_t deadline;
};

/* An HTTP/1.1 publisher connection with pipelined requests. */
enum hstate { H_STATUS, H_HEADERS, H_BODY, H_CHUNK_SIZE, H_CHUNK_DATA, H_CHUNK_CRLF, H_TRAILER };
struct pub {
  int fd;
  bool up, connecting;
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  uint64_t inflight; /* requests written or queued, not answered yet */
  /* response parser */
  enum hstate hs;
  char line[1024];
  size_t line_len;
  int status;
  long long content_length;
  bool chunked, close_after;
  uint64_t body_left;
  char errbody[160];
  size_t errbody_len;
};

static struct {
  const char *host, *api_key, *out_json;
  int port, subs, topics, pubs;
  int server_pids[MAX_PIDS], n_pids;
  int sub_ports[MAX_NODES], n_nodes; /* --sub-ports; n_nodes 0: --port */
  double rate, duration, warmup, drain, quiet, ramp, connect_timeout, settle;
  enum dialect dialect;
  bool publish_ws, sse, json;
} o = {.host = "127.0.0.1",
       .api_key = "",
       .port = 8080,
       .subs = 1000,
       .topics = 1,
       .pubs = 4,
       .rate = 100,
       .duration = 10,
       .warmup = 2,
       .drain = 10,
       .quiet = 2,
       .ramp = 3000,
       .connect_timeout = 120,
       .settle = 1};

static struct ws *subs;
static struct ws wspub; /* --publish ws */
static struct pub pubs[MAX_PUBS];
static int epfd, tfd;
static uint8_t mask_key[4];
static char keys[NKEYS][25], accepts[NKEYS][29];
static uint8_t *rxbuf;
static struct sockaddr_storage addr, node_addr[MAX_NODES];
static socklen_t addr_len;
static volatile sig_atomic_t stop_flag;
static char hostport[300], node_hostport[MAX_NODES][300];
static uint32_t *subs_of_topic; /* subscribed connections per topic */
static uint32_t *deliv_count;   /* deliveries per sequence number */
static uint64_t nseq_cap;

/* counters */
static uint64_t n_pending, n_open, n_subscribed, n_dead, n_started, n_errors;
static uint64_t seq_next, seq_measure0, seq_measure1 = UINT64_MAX;
static uint64_t n_acked, n_pub_err, n_pub_lost, n_deliv_all, n_deliv_since_measure;
static uint64_t n_deliv_window, exp_all, n_misrouted, n_reorder, n_unknown;
static uint64_t sec_deliv, sec_pub, sec_ack;
static uint64_t t_last_delivery;
static struct hist hist;

enum phase { P_CONNECT, P_SETTLE, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };
static enum phase phase = P_CONNECT;
static const char *const phase_names[] = {"connect", "settle", "warmup",
                                          "measure", "drain",  "done"};

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void die(const char *msg) {
  fprintf(stderr, "hubload: %s\n", msg);
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) die("out of memory");
  return p;
}

/* ---- sockets -------------------------------------------------------------- */
static void resolve(void) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  char port[16];
  snprintf(port, sizeof port, "%d", o.port);
  int rc = getaddrinfo(o.host, port, &hints, &res);
  if (rc) {
    fprintf(stderr, "hubload: %s: %s\n", o.host, gai_strerror(rc));
    exit(1);
  }
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  addr_len = res->ai_addrlen;
  freeaddrinfo(res);
  snprintf(hostport, sizeof hostport, "%s:%d", o.host, o.port);
  for (int i = 0; i < o.n_nodes; i++) { /* the same address, another port */
    node_addr[i] = addr;
    uint16_t np = htons((uint16_t)o.sub_ports[i]);
    if (addr.ss_family == AF_INET6)
      ((struct sockaddr_in6 *)&node_addr[i])->sin6_port = np;
    else
      ((struct sockaddr_in *)&node_addr[i])->sin_port = np;
    snprintf(node_hostport[i], sizeof node_hostport[i], "%s:%d", o.host, o.sub_ports[i]);
  }
}

/* Summed over the --server-pid processes (each one's into `each` if not
 * NULL); -1 if one cannot be read. */
static double servers_cpu_s(double *each) {
  double sum = 0;
  for (int i = 0; i < o.n_pids; i++) {
    double c = proc_cpu_s(o.server_pids[i]);
    if (c < 0) return -1;
    if (each) each[i] = c;
    sum += c;
  }
  return sum;
}

static long servers_rss_kb(void) {
  long sum = 0;
  for (int i = 0; i < o.n_pids; i++) {
    long r = proc_rss_kb(o.server_pids[i]);
    if (r < 0) return -1;
    sum += r;
  }
  return sum;
}

/* epoll data: subscriber index, or a tag for the others. */
#define TAG_TIMER (1ull << 40)
#define TAG_PUB (1ull << 41)
#define TAG_WSPUB (1ull << 42)

static void ep_ctl(int fd, uint64_t tag, uint32_t ev, int op) {
  struct epoll_event e = {.events = ev, .data.u64 = tag};
  if (epoll_ctl(epfd, op, fd, &e) < 0) die("epoll_ctl failed");
}

static int tcp_connect_to(const struct sockaddr_storage *to) {
  int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)to, addr_len) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static int tcp_connect(void) { return tcp_connect_to(&addr); }

/* Where a subscriber connects, and the Host it names. */
static const struct sockaddr_storage *ws_addr(const struct ws *c) {
  return o.n_nodes && !c->is_pub ? &node_addr[c->node] : &addr;
}
static const char *ws_hostport(const struct ws *c) {
  return o.n_nodes && !c->is_pub ? node_hostport[c->node] : hostport;
}

/* ---- WebSocket client ------------------------------------------------------ */
static uint64_t ws_tag(struct ws *c) { return c->is_pub ? TAG_WSPUB : (uint64_t)(c - subs); }

static void build_keys(void) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  for (int k = 0; k < NKEYS; k++) {
    uint8_t raw[16], sha[SHA_DIGEST_LENGTH];
    char cat[64];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) die("getrandom failed");
    EVP_EncodeBlock((unsigned char *)keys[k], raw, 16);
    snprintf(cat, sizeof cat, "%.24s%s", keys[k], guid);
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock((unsigned char *)accepts[k], sha, SHA_DIGEST_LENGTH);
  }
}

static void ws_dead(struct ws *c, const char *why) {
  if (c->state == S_DEAD || c->state == S_FREE) return;
  if (c->state == S_CONNECTING || c->state == S_HANDSHAKE)
    n_pending--;
  else
    n_open--;
  if (c->state == S_SUBSCRIBED && !c->is_pub) {
    n_subscribed--;
    subs_of_topic[c->topic]--;
  }
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = S_DEAD;
  n_dead++;
  free(c->msg);
  free(c->out);
  free(c->hs);
  c->msg = c->out = NULL;
  c->hs = NULL;
  c->msg_len = c->msg_cap = c->out_len = c->out_cap = 0;
  if (why && (n_dead <= 5 || c->is_pub))
    fprintf(stderr, "hubload: %s %ld closed: %s\n", c->is_pub ? "publisher" : "subscriber",
            c->is_pub ? 0L : (long)(c - subs), why);
}

static bool ws_write(struct ws *c, const void *data, size_t n) {
  const uint8_t *p = data;
  if (!c->out_len) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0) {
      if (errno != EAGAIN) return false;
      w = 0;
    }
    p += w;
    n -= (size_t)w;
    if (!n) return true;
    ep_ctl(c->fd, ws_tag(c), EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
  }
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + n) cap *= 2;
    c->out = xrealloc(c->out, cap);
    c->out_cap = (uint32_t)cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += (uint32_t)n;
  return true;
}

static bool ws_flush(struct ws *c) {
  ssize_t w = write(c->fd, c->out, c->out_len);
  if (w < 0) return errno == EAGAIN;
  memmove(c->out, c->out + w, c->out_len - (size_t)w);
  c->out_len -= (uint32_t)w;
  if (!c->out_len) ep_ctl(c->fd, ws_tag(c), EPOLLIN, EPOLL_CTL_MOD);
  return true;
}

/* Append one masked client frame to buf; returns its length. */
static size_t put_frame(uint8_t *buf, int op, const void *payload, size_t len) {
  size_t n = 0;
  buf[n++] = (uint8_t)(0x80 | op);
  if (len < 126) {
    buf[n++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xffff) {
    buf[n++] = 0x80 | 126;
    buf[n++] = (uint8_t)(len >> 8);
    buf[n++] = (uint8_t)len;
  } else {
    buf[n++] = 0x80 | 127;
    for (int s = 56; s >= 0; s -= 8) buf[n++] = (uint8_t)((uint64_t)len >> s);
  }
  memcpy(buf + n, mask_key, 4);
  n += 4;
  const uint8_t *p = payload;
  for (size_t i = 0; i < len; i++) buf[n + i] = p[i] ^ mask_key[i & 3];
  return n + len;
}

static bool ws_send(struct ws *c, int op, const void *payload, size_t len) {
  uint8_t stackbuf[512];
  uint8_t *buf = len + 14 <= sizeof stackbuf ? stackbuf : xrealloc(NULL, len + 14);
  size_t n = put_frame(buf, op, payload, len);
  bool ok = ws_write(c, buf, n);
  if (buf != stackbuf) free(buf);
  return ok;
}

static bool ws_send_text(struct ws *c, const char *s) { return ws_send(c, 1, s, strlen(s)); }

static void ws_start(struct ws *c, int idx) {
  c->fd = tcp_connect_to(ws_addr(c));
  c->key = (uint8_t)(idx % NKEYS);
  c->deadline = now_ns() + (uint64_t)(20e9);
  n_pending++;
  c->state = S_CONNECTING;
  if (c->fd < 0) {
    n_errors++;
    ws_dead(c, strerror(errno));
    return;
  }
  ep_ctl(c->fd, ws_tag(c), EPOLLOUT, EPOLL_CTL_ADD);
}

/* An SSE subscriber's request: plain HTTP/1.1, the stream is the answer. */
static void sse_send_request(struct ws *c) {
  char req[512];
  int len = snprintf(req, sizeof req,
                     "GET %s%u HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n\r\n",
                     o.dialect == D_DUPLEX ? "/sse?topics=t" : "/sub/t", c->topic, ws_hostport(c));
  if (!ws_write(c, req, (size_t)len)) ws_dead(c, strerror(errno));
}

static void ws_send_request(struct ws *c) {
  if (o.sse && !c->is_pub) {
    sse_send_request(c);
    return;
  }
  char req[512], path[200];
  const char *extra = "";
  switch (o.dialect) {
  case D_DUPLEX:
    snprintf(path, sizeof path, "/ws");
    extra = "Sec-WebSocket-Protocol: duplex.v1\r\n";
    break;
  case D_NCHAN:
    snprintf(path, sizeof path, "/sub/t%u", c->topic);
    break;
  case D_SOCKETIO:
    snprintf(path, sizeof path, "/socket.io/?EIO=4&transport=websocket");
    break;
  }
  int len = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, ws_hostport(c), keys[c->key], extra);
  if (!ws_write(c, req, (size_t)len)) ws_dead(c, strerror(errno));
}

static bool check_accept(const char *resp, int key) {
  if (strncmp(resp, "HTTP/1.1 101", 12)) return false;
  for (const char *p = resp; (p = strchr(p, '\n')); p++) {
    if (strncasecmp(p + 1, "sec-websocket-accept:", 21)) continue;
    const char *v = p + 22;
    while (*v == ' ' || *v == '\t') v++;
    return !strncmp(v, accepts[key], 28) && (v[28] == '\r' || v[28] == ' ' || !v[28]);
  }
  return false;
}

static void set_subscribed(struct ws *c) {
  c->state = S_SUBSCRIBED;
  if (c->is_pub) return;
  n_subscribed++;
  subs_of_topic[c->topic]++;
}

/* After the 101 (or an SSE stream's 200): the dialect's first step. */
static void ws_opened(struct ws *c) {
  n_pending--;
  n_open++;
  if (c->is_pub) {
    c->state = S_SUBSCRIBED; /* a publisher has nothing to subscribe */
    return;
  }
  if (o.sse) { /* duplex: the topic is in the URL, its reply event follows */
    if (o.dialect == D_DUPLEX)
      c->state = S_SUBSCRIBING;
    else
      set_subscribed(c);
    return;
  }
  char buf[200];
  switch (o.dialect) {
  case D_DUPLEX:
    snprintf(buf, sizeof buf, "{\"id\":1,\"op\":\"subscribe\",\"topic\":\"t%u\"}", c->topic);
    c->state = S_SUBSCRIBING;
    if (!ws_send_text(c, buf)) ws_dead(c, strerror(errno));
    break;
  case D_NCHAN:
    set_subscribed(c);
    break;
  case D_SOCKETIO:
    c->state = S_SIO_OPEN;
    break;
  }
}

static inline int hexval(uint8_t ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch |= 0x20; /* chunk sizes may be upper case */
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* A payload of ours in this message? Then count the delivery. */
static bool find_payload(struct ws *c, const uint8_t *m, size_t n, uint64_t now) {
  const uint8_t *p = memmem(m, n, "~T", 2);
  if (!p || (size_t)(m + n - p) < 27 || p[18] != 'S') return false;
  uint64_t ts = 0, seq = 0;
  for (int i = 2; i < 18; i++) {
    int v = hexval(p[i]);
    if (v < 0) return false;
    ts = ts << 4 | (uint64_t)v;
  }
  for (int i = 19; i < 27; i++) {
    int v = hexval(p[i]);
    if (v < 0) return false;
    seq = seq << 4 | (uint64_t)v;
  }
  n_deliv_all++;
  sec_deliv++;
  t_last_delivery = now;
  if (phase >= P_MEASURE) n_deliv_since_measure++;
  if (phase == P_MEASURE) n_deliv_window++;
  if (seq < nseq_cap) deliv_count[seq]++;
  if (seq % (uint64_t)o.topics != c->topic) n_misrouted++;
  if (seq + 1 <= c->last_seq)
    n_reorder++;
  else
    c->last_seq = (uint32_t)(seq + 1);
  if (phase >= P_MEASURE) hist_add(&hist, now > ts ? now - ts : 0);
  return true;
}

static void on_message(struct ws *c, const uint8_t *m, size_t n, uint64_t now) {
  switch (o.dialect) {
  case D_DUPLEX:
    if (find_payload(c, m, n, now)) return;
    if (n > 16 && memmem(m, n, "\"type\":\"reply\"", 14)) {
      bool ok = memmem(m, n, "\"ok\":true", 9) != NULL;
      if (c->state == S_SUBSCRIBING && ok) {
        set_subscribed(c);
      } else if (!ok) {
        if (c->is_pub)
          n_pub_err++;
        else
          n_errors++;
        if (n_errors + n_pub_err <= 5) fprintf(stderr, "hubload: error reply: %.*s\n", (int)n, m);
        if (c->state == S_SUBSCRIBING) ws_dead(c, "subscribe refused");
      }
    }
    return; /* welcome, others */
  case D_NCHAN:
    if (!find_payload(c, m, n, now)) n_unknown++;
    return;
  case D_SOCKETIO:
    if (n == 1 && m[0] == '2') { /* engine.io ping */
      if (!ws_send_text(c, "3")) ws_dead(c, strerror(errno));
      return;
    }
    if (n >= 2 && m[0] == '4' && m[1] == '2') {
      if (!find_payload(c, m, n, now)) n_unknown++;
      return;
    }
    if (c->state == S_SIO_OPEN && n >= 1 && m[0] == '0') {
      c->state = S_SIO_CONNECT;
      if (!ws_send_text(c, "40")) ws_dead(c, strerror(errno));
      return;
    }
    if (c->state == S_SIO_CONNECT && n >= 2 && m[0] == '4' && m[1] == '0') {
      char buf[200];
      snprintf(buf, sizeof buf, "421[\"join\",\"t%u\"]", c->topic);
      c->state = S_SUBSCRIBING;
      if (!ws_send_text(c, buf)) ws_dead(c, strerror(errno));
      return;
    }
    if (c->state == S_SUBSCRIBING && n >= 3 && !memcmp(m, "431", 3)) {
      set_subscribed(c);
      return;
    }
    if (n >= 2 && m[0] == '4' && (m[1] == '4' || m[1] == '1')) {
      n_errors++;
      ws_dead(c, "socket.io connect error or disconnect");
      return;
    }
    if (n >= 1 && m[0] == '1') {
      ws_dead(c, "engine.io close");
      return;
    }
    n_unknown++;
    return;
  }
}

static bool msg_append(struct ws *c, const uint8_t *p, size_t n) {
  if (c->msg_len + n > MAX_MSG) return false;
  if (c->msg_len + n > c->msg_cap) {
    size_t cap = c->msg_cap ? c->msg_cap : 256;
    while (cap < c->msg_len + n) cap *= 2;
    c->msg = xrealloc(c->msg, cap);
    c->msg_cap = (uint32_t)cap;
  }
  memcpy(c->msg + c->msg_len, p, n);
  c->msg_len += (uint32_t)n;
  return true;
}

static void on_control(struct ws *c, int op, const uint8_t *p, size_t n) {
  if (op == 9) {
    if (!ws_send(c, 10, p, n)) ws_dead(c, strerror(errno));
  } else if (op == 8) {
    char why[160];
    unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 0;
    snprintf(why, sizeof why, "close frame %u %.*s", code, n > 2 ? (int)(n - 2) : 0,
             (const char *)p + 2);
    ws_dead(c, why);
  }
}

/* Parse server frames; returns false on a protocol error. The common case
 * (a whole unfragmented frame inside the read buffer) is handled in place. */
static bool parse_frames(struct ws *c, const uint8_t *p, size_t n, uint64_t now) {
  while (n && c->state != S_DEAD) {
    if (c->hdr_len != 0xff) {
      while (c->hdr_len < 2 && n) {
        c->hdr[c->hdr_len++] = *p++;
        n--;
      }
      if (c->hdr_len < 2) return true;
      uint8_t b1 = c->hdr[1];
      if (b1 & 0x80) return false;
      size_t need = 2 + ((b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0);
      while (c->hdr_len < need && n) {
        c->hdr[c->hdr_len++] = *p++;
        n--;
      }
      if (c->hdr_len < need) return true;
      uint64_t len = b1 & 0x7f;
      if (len == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
      if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | c->hdr[i];
      }
      if (len > MAX_MSG) return false;
      c->frame_fin = c->hdr[0] >> 7;
      c->frame_op = c->hdr[0] & 0x0f;
      c->hdr_len = 0xff;
      c->payload_left = len;
      c->ctl_start = c->msg_len;
      if (c->frame_op >= 8) {
        if (len > 125 || !c->frame_fin) return false;
      } else if (c->frame_op == 0) {
        if (!c->msg_op) return false;
      } else {
        if (c->msg_op) return false;
        c->msg_op = c->frame_op;
      }
      /* Fast path: a whole unfragmented frame, nothing collected before. */
      if (c->frame_fin && !c->msg_len && c->payload_left <= n) {
        size_t len2 = (size_t)c->payload_left;
        c->hdr_len = 0;
        if (c->frame_op >= 8) {
          on_control(c, c->frame_op, p, len2);
        } else {
          c->msg_op = 0;
          on_message(c, p, len2, now);
        }
        p += len2;
        n -= len2;
        continue;
      }
    }
    size_t take = c->payload_left < n ? (size_t)c->payload_left : n;
    if (!msg_append(c, p, take)) return false;
    p += take;
    n -= take;
    c->payload_left -= take;
    if (c->payload_left) return true;
    c->hdr_len = 0;
    if (c->frame_op >= 8) {
      /* A control frame split across reads (or inside a fragmented
       * message): its payload follows any message bytes collected. */
      uint8_t ctl[125];
      size_t cl = c->msg_len - c->ctl_start;
      memcpy(ctl, c->msg + c->ctl_start, cl);
      c->msg_len = c->ctl_start;
      on_control(c, c->frame_op, ctl, cl);
    } else if (c->frame_fin) {
      c->msg_op = 0;
      on_message(c, c->msg, c->msg_len, now);
      c->msg_len = 0;
      if (c->msg_cap > 4096) {
        free(c->msg);
        c->msg = NULL;
        c->msg_cap = 0;
      }
    }
  }
  return true;
}

/* One complete SSE line (without its line end): a `data:` line is looked
 * at as a message; the other fields and comments need nothing. */
static void sse_line(struct ws *c, const uint8_t *l, size_t n, uint64_t now) {
  if (n < 5 || memcmp(l, "data:", 5)) return;
  l += 5;
  n -= 5;
  if (n && *l == ' ') {
    l++;
    n--;
  }
  on_message(c, l, n, now);
}

/* De-chunked body bytes: split into lines (LF or CRLF; our servers send
 * no lone CR), a partial line kept in msg until its end arrives. */
static bool sse_text(struct ws *c, const uint8_t *p, size_t n, uint64_t now) {
  while (n && c->state != S_DEAD) {
    const uint8_t *nl = memchr(p, '\n', n);
    if (!nl) return msg_append(c, p, n);
    size_t take = (size_t)(nl - p);
    const uint8_t *l = p;
    size_t ln = take;
    if (c->msg_len) { /* the line began in an earlier read */
      if (!msg_append(c, p, take)) return false;
      l = c->msg;
      ln = c->msg_len;
    }
    if (ln && l[ln - 1] == '\r') ln--;
    sse_line(c, l, ln, now);
    c->msg_len = 0;
    p += take + 1;
    n -= take + 1;
  }
  return true;
}

/* Body bytes of an SSE stream; false on a malformed chunked encoding or a
 * line longer than MAX_MSG. The end of the body ends the stream. */
static bool sse_feed(struct ws *c, const uint8_t *p, size_t n, uint64_t now) {
  if (c->chunk_state == CH_NONE) return sse_text(c, p, n, now);
  while (n && c->state != S_DEAD) {
    switch (c->chunk_state) {
    case CH_SIZE: {
      int v = hexval(*p);
      if (v >= 0) {
        if (c->chunk_left > MAX_MSG) return false;
        c->chunk_left = c->chunk_left << 4 | (uint32_t)v;
      } else if (*p == '\n') {
        c->chunk_state = c->chunk_left ? CH_DATA : CH_LAST;
      } else if (*p == ';') {
        c->chunk_state = CH_EXT;
      } else if (*p != '\r') {
        return false;
      }
      p++;
      n--;
      break;
    }
    case CH_EXT:
      if (*p == '\n') c->chunk_state = c->chunk_left ? CH_DATA : CH_LAST;
      p++;
      n--;
      break;
    case CH_DATA: {
      size_t take = c->chunk_left < n ? c->chunk_left : n;
      if (!sse_text(c, p, take, now)) return false;
      p += take;
      n -= take;
      c->chunk_left -= (uint32_t)take;
      if (!c->chunk_left) c->chunk_state = CH_DATA_END;
      break;
    }
    case CH_DATA_END: /* the CRLF after a chunk's data */
      if (*p == '\n')
        c->chunk_state = CH_SIZE;
      else if (*p != '\r')
        return false;
      p++;
      n--;
      break;
    case CH_LAST:
    case CH_NONE:
      ws_dead(c, "the server ended the event stream");
      return true;
    }
  }
  return true;
}

/* The response to an SSE subscriber's request: 200, text/event-stream.
 * Sets the de-chunker; false if the server said anything else. */
static bool sse_check_response(struct ws *c, const char *resp) {
  if (strncmp(resp, "HTTP/1.1 200", 12) || !strcasestr(resp, "text/event-stream")) return false;
  c->chunk_state = CH_NONE;
  c->chunk_left = 0;
  for (const char *p = resp; (p = strchr(p, '\n')); p++)
    if (!strncasecmp(p + 1, "transfer-encoding:", 18)) {
      const char *e = strchr(p + 1, '\r');
      size_t len = e ? (size_t)(e - p) : strlen(p);
      if (memmem(p, len, "chunked", 7)) c->chunk_state = CH_SIZE;
    }
  return true;
}

static void ws_handshake_read(struct ws *c, uint64_t now) {
  if (!c->hs) {
    c->hs = xrealloc(NULL, HS_BUF);
    c->hs_len = 0;
  }
  ssize_t r = read(c->fd, c->hs + c->hs_len, HS_BUF - 1 - c->hs_len);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0) {
    n_errors++;
    ws_dead(c, r == 0 ? "server closed during the handshake" : strerror(errno));
    return;
  }
  c->hs_len = (uint16_t)(c->hs_len + r);
  c->hs[c->hs_len] = 0;
  char *end = strstr(c->hs, "\r\n\r\n");
  if (!end) {
    if (c->hs_len >= HS_BUF - 1) {
      n_errors++;
      ws_dead(c, "handshake response too large");
    }
    return;
  }
  *end = 0;
  bool sse = o.sse && !c->is_pub;
  if (sse ? !sse_check_response(c, c->hs) : !check_accept(c->hs, c->key)) {
    if (n_errors < 3) fprintf(stderr, "hubload: bad handshake response:\n%s\n", c->hs);
    n_errors++;
    ws_dead(c, "bad handshake response");
    return;
  }
  size_t rest = (size_t)(c->hs + c->hs_len - (end + 4));
  uint8_t early[HS_BUF];
  memcpy(early, end + 4, rest);
  free(c->hs);
  c->hs = NULL;
  c->hdr_len = 0;
  ws_opened(c);
  if (c->state != S_DEAD && rest &&
      !(sse ? sse_feed(c, early, rest, now) : parse_frames(c, early, rest, now))) {
    n_errors++;
    ws_dead(c, "bad frame");
  }
}

static void ws_event(struct ws *c, uint32_t ev, uint64_t now) {
  if (c->state == S_DEAD || c->state == S_FREE) return;
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      n_errors++;
      ws_dead(c, strerror(err));
      return;
    }
    c->state = S_HANDSHAKE;
    ep_ctl(c->fd, ws_tag(c), EPOLLIN, EPOLL_CTL_MOD);
    ws_send_request(c);
    return;
  }
  if ((ev & EPOLLOUT) && c->out_len && !ws_flush(c)) {
    ws_dead(c, strerror(errno));
    return;
  }
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  if (c->state == S_HANDSHAKE) {
    ws_handshake_read(c, now);
    return;
  }
  for (;;) {
    ssize_t r = read(c->fd, rxbuf, RX_BUF);
    if (r < 0) {
      if (errno == EAGAIN) return;
      ws_dead(c, strerror(errno));
      return;
    }
    if (r == 0) {
      ws_dead(c, "server closed the connection");
      return;
    }
    bool sse = o.sse && !c->is_pub;
    if (!(sse ? sse_feed(c, rxbuf, (size_t)r, now) : parse_frames(c, rxbuf, (size_t)r, now))) {
      n_errors++;
      ws_dead(c, sse ? "malformed event stream" : "protocol error in server frames");
      return;
    }
    if ((size_t)r < RX_BUF || c->state == S_DEAD) return;
  }
}

/* ---- HTTP publishers ---------------------------------------------------- */
static void pub_connect(struct pub *p) {
  p->fd = tcp_connect();
  if (p->fd < 0) die("cannot open a publisher connection");
  p->connecting = true;
  p->up = false;
  p->hs = H_STATUS;
  p->line_len = 0;
  ep_ctl(p->fd, TAG_PUB | (uint64_t)(p - pubs), EPOLLOUT, EPOLL_CTL_ADD);
}

static void pub_arm(struct pub *p, bool want_out) {
  ep_ctl(p->fd, TAG_PUB | (uint64_t)(p - pubs), EPOLLIN | (want_out ? EPOLLOUT : 0), EPOLL_CTL_MOD);
}

static bool pub_flush(struct pub *p) {
  if (!p->up) return true;
  while (p->out_len > p->out_off) {
    ssize_t w = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
    if (w < 0) {
      if (errno == EAGAIN) {
        pub_arm(p, true);
        return true;
      }
      return false;
    }
    p->out_off += (size_t)w;
  }
  p->out_off = p->out_len = 0;
  pub_arm(p, false);
  return true;
}

static void pub_lost(struct pub *p, const char *why) {
  /* Requests written but never answered are lost; unwritten ones stay. */
  fprintf(stderr, "hubload: publisher %ld: %s; %llu requests unanswered, reconnecting\n",
          (long)(p - pubs), why, (unsigned long long)p->inflight);
  close(p->fd);
  n_pub_lost += p->inflight;
  p->inflight = 0;
  p->out_off = p->out_len = 0; /* a request cut in half cannot be resent */
  pub_connect(p);
}

static void pub_response_done(struct pub *p) {
  if (p->inflight) p->inflight--;
  if (p->status >= 200 && p->status < 300) {
    n_acked++;
    sec_ack++;
  } else {
    n_pub_err++;
    if (n_pub_err <= 5)
      fprintf(stderr, "hubload: publish answered %d: %.*s\n", p->status, (int)p->errbody_len,
              p->errbody);
  }
  p->hs = H_STATUS;
  p->errbody_len = 0;
}

/* Consume response bytes; false on a malformed response. */
static bool pub_parse(struct pub *p, const uint8_t *d, size_t n) {
  while (n) {
    switch (p->hs) {
    case H_STATUS:
    case H_HEADERS:
    case H_CHUNK_SIZE:
    case H_TRAILER: {
      const uint8_t *nl = memchr(d, '\n', n);
      size_t take = nl ? (size_t)(nl - d) + 1 : n;
      if (p->line_len + take >= sizeof p->line) return false;
      memcpy(p->line + p->line_len, d, take);
      p->line_len += take;
      d += take;
      n -= take;
      if (!nl) return true;
      p->line[p->line_len] = 0;
      size_t ll = p->line_len;
      while (ll && (p->line[ll - 1] == '\n' || p->line[ll - 1] == '\r')) p->line[--ll] = 0;
      p->line_len = 0;
      if (p->hs == H_STATUS) {
        if (strncmp(p->line, "HTTP/1.", 7) || ll < 12) return false;
        p->status = atoi(p->line + 9);
        p->content_length = -1;
        p->chunked = p->close_after = false;
        p->hs = H_HEADERS;
      } else if (p->hs == H_HEADERS) {
        if (!ll) {
          if (p->chunked) {
            p->hs = H_CHUNK_SIZE;
          } else if (p->content_length > 0) {
            p->body_left = (uint64_t)p->content_length;
            p->hs = H_BODY;
          } else {
            pub_response_done(p);
          }
        } else if (!strncasecmp(p->line, "content-length:", 15)) {
          p->content_length = strtoll(p->line + 15, NULL, 10);
        } else if (!strncasecmp(p->line, "transfer-encoding:", 18) &&
                   strcasestr(p->line, "chunked")) {
          p->chunked = true;
        } else if (!strncasecmp(p->line, "connection:", 11) && strcasestr(p->line, "close")) {
          p->close_after = true;
        }
      } else if (p->hs == H_CHUNK_SIZE) {
        unsigned long long sz = strtoull(p->line, NULL, 16);
        if (sz == 0) {
          p->hs = H_TRAILER;
        } else {
          p->body_left = sz;
          p->hs = H_CHUNK_DATA;
        }
      } else { /* trailer */
        if (!ll) pub_response_done(p);
      }
      break;
    }
    case H_BODY:
    case H_CHUNK_DATA: {
      size_t take = p->body_left < n ? (size_t)p->body_left : n;
      if (p->status >= 300 && p->errbody_len < sizeof p->errbody) {
        size_t k =
            sizeof p->errbody - p->errbody_len < take ? sizeof p->errbody - p->errbody_len : take;
        memcpy(p->errbody + p->errbody_len, d, k);
        p->errbody_len += k;
      }
      d += take;
      n -= take;
      p->body_left -= take;
      if (!p->body_left) {
        if (p->hs == H_BODY)
          pub_response_done(p);
        else
          p->hs = H_CHUNK_CRLF;
      }
      break;
    }
    case H_CHUNK_CRLF:
      if (*d == '\n') p->hs = H_CHUNK_SIZE;
      d++;
      n--;
      break;
    }
  }
  return true;
}

static void pub_event(struct pub *p, uint32_t ev) {
  if (p->connecting) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) die("publisher connection failed");
    p->connecting = false;
    p->up = true;
    pub_arm(p, p->out_len > p->out_off);
    if (!pub_flush(p)) pub_lost(p, strerror(errno));
    return;
  }
  if ((ev & EPOLLOUT) && !pub_flush(p)) {
    pub_lost(p, strerror(errno));
    return;
  }
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  for (;;) {
    ssize_t r = read(p->fd, rxbuf, RX_BUF);
    if (r < 0) {
      if (errno == EAGAIN) return;
      pub_lost(p, strerror(errno));
      return;
    }
    if (r == 0) {
      pub_lost(p, "server closed the connection");
      return;
    }
    if (!pub_parse(p, rxbuf, (size_t)r)) {
      pub_lost(p, "malformed HTTP response");
      return;
    }
    if ((size_t)r < RX_BUF) return;
  }
}

static void pub_append(struct pub *p, const char *s, size_t n) {
  if (p->out_off && p->out_off == p->out_len) p->out_off = p->out_len = 0;
  if (p->out_len + n > p->out_cap) {
    if (p->out_off) { /* compact first */
      memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
      p->out_len -= p->out_off;
      p->out_off = 0;
    }
    size_t cap = p->out_cap ? p->out_cap : 64 * 1024;
    while (cap < p->out_len + n) cap *= 2;
    p->out = xrealloc(p->out, cap);
    p->out_cap = cap;
  }
  memcpy(p->out + p->out_len, s, n);
  p->out_len += n;
}

/* ---- publishing ------------------------------------------------------------ */
static void make_payload(char *buf, uint64_t ts, uint64_t seq) {
  static const char hx[] = "0123456789abcdef";
  buf[0] = '~';
  buf[1] = 'T';
  for (int i = 0; i < 16; i++) buf[2 + i] = hx[(ts >> (60 - 4 * i)) & 15];
  buf[18] = 'S';
  for (int i = 0; i < 8; i++) buf[19 + i] = hx[(seq >> (28 - 4 * i)) & 15];
  memset(buf + 27, 'x', PAYLOAD - 27);
  buf[PAYLOAD] = 0;
}

static void publish_one(uint64_t now) {
  uint64_t seq = seq_next++;
  uint32_t topic = (uint32_t)(seq % (uint64_t)o.topics);
  char payload[PAYLOAD + 1], body[300], req[800];
  make_payload(payload, now, seq);
  exp_all += subs_of_topic[topic];
  sec_pub++;
  if (o.publish_ws) {
    int bl = snprintf(body, sizeof body, "{\"op\":\"publish\",\"topic\":\"t%u\",\"data\":\"%s\"}",
                      topic, payload);
    if (wspub.state == S_SUBSCRIBED) {
      if (!ws_send(&wspub, 1, body, (size_t)bl))
        ws_dead(&wspub, strerror(errno));
      else
        n_acked++; /* fire and forget: errors come back as replies */
    } else {
      n_pub_lost++;
    }
    return;
  }
  int bl, rl;
  struct pub *p = &pubs[topic % (uint32_t)o.pubs];
  switch (o.dialect) {
  case D_DUPLEX:
    bl = snprintf(body, sizeof body, "{\"topic\":\"t%u\",\"data\":\"%s\"}", topic, payload);
    rl = snprintf(req, sizeof req,
                  "POST /api/publish HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                  hostport, o.api_key, bl, body);
    break;
  case D_NCHAN:
    rl = snprintf(req, sizeof req,
                  "POST /pub/t%u HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                  "Content-Length: %d\r\n\r\n%s",
                  topic, hostport, PAYLOAD, payload);
    break;
  default:
    bl = snprintf(body, sizeof body, "{\"topic\":\"t%u\",\"data\":\"%s\"}", topic, payload);
    rl = snprintf(req, sizeof req,
                  "POST /publish HTTP/1.1\r\nHost: %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                  hostport, bl, body);
    break;
  }
  pub_append(p, req, (size_t)rl);
  p->inflight++;
}

/* ---- options ---------------------------------------------------------------- */
static double parse_seconds(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) die("bad duration");
  if (!strcmp(end, "ms"))
    v /= 1000;
  else if (*end && strcmp(end, "s"))
    die("bad duration suffix (use s or ms)");
  return v;
}

static void usage(FILE *f) {
  fputs("usage: hubload --dialect duplex|nchan|socketio [OPTIONS]\n"
        "\n"
        "Fan-out load generator for pub/sub hubs: S WebSocket (or SSE) subscribers on T topics\n"
        "(round robin), publications of 64 B at a fixed offered rate (open loop).\n"
        "\n"
        "  --host ADDR          server address (default 127.0.0.1)\n"
        "  --port N             server port (default 8080)\n"
        "  --dialect D          duplex (duplex.v1 on /ws, POST /api/publish), nchan\n"
        "                       (/sub/<t>, POST /pub/<t>), socketio (engine.io v4,\n"
        "                       \"join\" event, POST /publish)\n"
        "  --subscribers S      subscriber connections (default 1000)\n"
        "  --topics T           topics t0..t<T-1> (default 1)\n"
        "  --rate R             publications per second offered, all topics (default 100)\n"
        "  --publishers P       HTTP publisher connections, pipelined (default 4)\n"
        "  --publish ws         duplex only: publish over one WebSocket instead of HTTP\n"
        "  --transport T        subscribers over ws (WebSocket, default) or sse (Server-\n"
        "                       Sent Events: duplex GET /sse?topics=<t>, nchan GET\n"
        "                       /sub/<t> with Accept: text/event-stream)\n"
        "  --api-key K          duplex: the HTTP API key\n"
        "  --duration T         measured seconds of publishing (default 10)\n"
        "  --warmup W           seconds of publishing before that (default 2)\n"
        "  --drain D            at most this long for late deliveries (default 10)\n"
        "  --quiet Q            ... ending early after Q s with no delivery (default 2)\n"
        "  --ramp N             new connections per second at most (default 3000)\n"
        "  --connect-timeout T  all subscribed within T s or fail (default 120)\n"
        "  --settle T           wait after subscribing before the RSS reading (default 1)\n"
        "  --sub-ports LIST     subscribers spread over these ports of --host (comma-\n"
        "                       separated; publishers still use --port)\n"
        "  --server-pid PID     read the server's CPU time and RSS from /proc (repeat,\n"
        "                       or a comma list: summed over the processes)\n"
        "  --json               print only the JSON result line on stdout\n"
        "  -h, --help           this help\n"
        "\n"
        "Progress goes to stderr once a second. Exit status 0 when the run completed\n"
        "(loss is reported, not an error), 1 when subscribers could not be set up.\n",
        f);
}

static void parse_args(int argc, char **argv) {
  static const struct option lo[] = {{"host", 1, 0, 'H'},       {"port", 1, 0, 'p'},
                                     {"dialect", 1, 0, 'D'},    {"subscribers", 1, 0, 's'},
                                     {"topics", 1, 0, 't'},     {"rate", 1, 0, 'r'},
                                     {"publishers", 1, 0, 'P'}, {"publish", 1, 0, 'W'},
                                     {"transport", 1, 0, 'E'},  {"api-key", 1, 0, 'k'},
                                     {"duration", 1, 0, 'd'},   {"warmup", 1, 0, 'w'},
                                     {"drain", 1, 0, 'x'},      {"quiet", 1, 0, 'q'},
                                     {"ramp", 1, 0, 'R'},       {"connect-timeout", 1, 0, 'T'},
                                     {"settle", 1, 0, 'S'},     {"server-pid", 1, 0, 'i'},
                                     {"sub-ports", 1, 0, 'N'},  {"json", 0, 0, 'j'},
                                     {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
  int ch;
  bool have_dialect = false;
  while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'H':
      o.host = optarg;
      break;
    case 'p':
      o.port = atoi(optarg);
      break;
    case 'D':
      have_dialect = true;
      if (!strcmp(optarg, "duplex"))
        o.dialect = D_DUPLEX;
      else if (!strcmp(optarg, "nchan"))
        o.dialect = D_NCHAN;
      else if (!strcmp(optarg, "socketio"))
        o.dialect = D_SOCKETIO;
      else
        die("unknown --dialect (duplex, nchan, socketio)");
      break;
    case 's':
      o.subs = atoi(optarg);
      break;
    case 't':
      o.topics = atoi(optarg);
      break;
    case 'r':
      o.rate = atof(optarg);
      break;
    case 'P':
      o.pubs = atoi(optarg);
      break;
    case 'W':
      if (!strcmp(optarg, "ws"))
        o.publish_ws = true;
      else if (strcmp(optarg, "http"))
        die("--publish is http or ws");
      break;
    case 'E':
      if (!strcmp(optarg, "sse"))
        o.sse = true;
      else if (strcmp(optarg, "ws"))
        die("--transport is ws or sse");
      break;
    case 'k':
      o.api_key = optarg;
      break;
    case 'd':
      o.duration = parse_seconds(optarg);
      break;
    case 'w':
      o.warmup = parse_seconds(optarg);
      break;
    case 'x':
      o.drain = parse_seconds(optarg);
      break;
    case 'q':
      o.quiet = parse_seconds(optarg);
      break;
    case 'R':
      o.ramp = atof(optarg);
      break;
    case 'T':
      o.connect_timeout = parse_seconds(optarg);
      break;
    case 'S':
      o.settle = parse_seconds(optarg);
      break;
    case 'i':
      for (char *t = optarg; *t;) {
        if (o.n_pids == MAX_PIDS) die("too many --server-pid");
        o.server_pids[o.n_pids] = (int)strtol(t, &t, 10);
        if (o.server_pids[o.n_pids++] <= 0 || (*t && *t != ',')) die("bad --server-pid");
        if (*t) t++;
      }
      break;
    case 'N':
      for (char *t = optarg; *t;) {
        if (o.n_nodes == MAX_NODES) die("too many --sub-ports");
        long v = strtol(t, &t, 10);
        if (v <= 0 || v > 65535 || (*t && *t != ',')) die("bad --sub-ports");
        o.sub_ports[o.n_nodes++] = (int)v;
        if (*t) t++;
      }
      break;
    case 'j':
      o.json = true;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      exit(2);
    }
  }
  if (optind < argc || !have_dialect || o.port <= 0 || o.port > 65535 || o.subs <= 0 ||
      o.topics <= 0 || o.topics > o.subs || o.rate <= 0 || o.pubs <= 0 || o.pubs > MAX_PUBS ||
      o.ramp <= 0 || (o.publish_ws && o.dialect != D_DUPLEX) ||
      (o.sse && o.dialect == D_SOCKETIO)) {
    usage(stderr);
    exit(2);
  }
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)o.subs + MAX_PUBS + 32 > rl.rlim_cur) {
    fprintf(stderr, "hubload: need %d file descriptors but ulimit -n is %llu; raise it\n",
            o.subs + MAX_PUBS + 32, (unsigned long long)rl.rlim_cur);
    exit(1);
  }
}

/* ---- the event loop ------------------------------------------------------ */
static void dispatch(struct epoll_event *e, uint64_t now) {
  uint64_t tag = e->data.u64;
  if (tag == TAG_TIMER) {
    uint64_t exp;
    if (read(tfd, &exp, sizeof exp) < 0) { /* EAGAIN: fine */
    }
    return;
  }
  if (tag & TAG_PUB) {
    pub_event(&pubs[tag & 0xffff], e->events);
    return;
  }
  if (tag == TAG_WSPUB) {
    ws_event(&wspub, e->events, now);
    return;
  }
  ws_event(&subs[tag], e->events, now);
}

/* Run the loop once (up to ~1 ms, the timer period). */
static void loop_once(void) {
  enum { MAXEV = 1024 };
  static struct epoll_event evs[MAXEV];
  int n = epoll_wait(epfd, evs, MAXEV, 50);
  if (n < 0 && errno != EINTR) die("epoll_wait failed");
  uint64_t now = now_ns();
  for (int i = 0; i < n; i++) dispatch(&evs[i], now);
}

/* One throwaway subscriber before the RSS baseline: faults in the server's
 * one-time costs (code pages, TLS of the crypto library, first topic). */
static void warm_connection(void) {
  struct ws *c = &subs[0];
  c->topic = 0;
  ws_start(c, 0);
  uint64_t end = now_ns() + 10000000000ull;
  while (c->state != S_SUBSCRIBED && c->state != S_DEAD && now_ns() < end && !stop_flag)
    loop_once();
  if (c->state != S_SUBSCRIBED) die("the warm-up subscriber could not subscribe");
  ws_dead(c, NULL); /* fields reset below */
  n_dead--;
  memset(c, 0, sizeof *c);
  c->fd = -1;
  usleep(500000);
}

static void sleep_loop(double secs) {
  uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
  while (now_ns() < end && !stop_flag) loop_once();
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  setvbuf(stdout, NULL, _IOLBF, 0);
  setvbuf(stderr, NULL, _IOLBF, 0);
  resolve();
  if (getrandom(mask_key, 4, 0) != 4) die("getrandom failed");
  build_keys();
  rxbuf = xrealloc(NULL, RX_BUF);
  subs = calloc((size_t)o.subs, sizeof *subs);
  subs_of_topic = calloc((size_t)o.topics, sizeof *subs_of_topic);
  nseq_cap = (uint64_t)(o.rate * (o.warmup + o.duration) * 1.2) + 1000;
  if (nseq_cap > 0xffffffffull) die("too many publications for 8 hex digits of sequence");
  deliv_count = calloc(nseq_cap, sizeof *deliv_count);
  if (!subs || !subs_of_topic || !deliv_count) die("out of memory");
  for (int i = 0; i < o.subs; i++) subs[i].fd = -1;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd < 0 || tfd < 0) die("epoll/timerfd failed");
  struct itimerspec its = {.it_interval = {0, (long)TICK_NS}, .it_value = {0, (long)TICK_NS}};
  timerfd_settime(tfd, 0, &its, NULL);
  ep_ctl(tfd, TAG_TIMER, EPOLLIN, EPOLL_CTL_ADD);

  uint64_t t0 = now_ns();
  warm_connection();
  long rss0 = o.n_pids ? servers_rss_kb() : -1;

  /* Connect and subscribe everyone, at most --ramp per second. */
  uint64_t t_conn = now_ns(), t_tick = t_conn + 1000000000ull, t_last_tick;
  int next = 0;
  while (!stop_flag) {
    uint64_t now = now_ns();
    double allowed = o.ramp * (double)(now - t_conn) / 1e9 + 1;
    while (next < o.subs && n_pending < MAX_PENDING_CONNECTS && (double)n_started < allowed) {
      subs[next].topic = (uint32_t)(next % o.topics);
      if (o.n_nodes) subs[next].node = (uint8_t)(next % o.n_nodes);
      ws_start(&subs[next], next);
      next++;
      n_started++;
    }
    loop_once();
    now = now_ns();
    if ((int)n_subscribed == o.subs) break;
    if (next == o.subs && n_pending == 0 && n_dead > 0 &&
        (int)(n_subscribed + n_dead) >= o.subs) /* nobody left to wait for */
      break;
    if (now - t_conn > (uint64_t)(o.connect_timeout * 1e9)) break;
    if (now >= t_tick) {
      for (int i = 0; i < next; i++) { /* handshake / subscribe deadlines */
        struct ws *c = &subs[i];
        if (c->state != S_SUBSCRIBED && c->state != S_DEAD && now > c->deadline) {
          n_errors++;
          ws_dead(c, "timed out before subscribing");
        }
      }
      fprintf(stderr,
              "[%5.1fs] connect  started %d/%d  open %llu  subscribed %llu  pending %llu"
              "  closed %llu  (%.0f subscribed/s)\n",
              (double)(now - t0) / 1e9, next, o.subs, (unsigned long long)n_open,
              (unsigned long long)n_subscribed, (unsigned long long)n_pending,
              (unsigned long long)n_dead, (double)n_subscribed / ((double)(now - t_conn) / 1e9));
      t_tick = now + 1000000000ull;
    }
  }
  double connect_s = (double)(now_ns() - t_conn) / 1e9;
  fprintf(stderr, "[%5.1fs] connect  %llu of %d subscribed in %.2f s, %llu closed\n",
          (double)(now_ns() - t0) / 1e9, (unsigned long long)n_subscribed, o.subs, connect_s,
          (unsigned long long)n_dead);
  if ((int)n_subscribed != o.subs) {
    if (o.json)
      printf(
          "{\"dialect\":\"%s\",\"failed\":\"subscribe\",\"subscribed\":%llu,\"subscribers\":%d}\n",
          dialect_names[o.dialect], (unsigned long long)n_subscribed, o.subs);
    fprintf(stderr, "hubload: only %llu of %d subscribers subscribed\n",
            (unsigned long long)n_subscribed, o.subs);
    return 1;
  }
  phase = P_SETTLE;
  sleep_loop(o.settle);
  long rss1 = o.n_pids ? servers_rss_kb() : -1;
  uint64_t dead_before_publish = n_dead;

  /* Publishers. */
  if (o.publish_ws) {
    wspub.is_pub = 1;
    ws_start(&wspub, 0);
    uint64_t end = now_ns() + 10000000000ull;
    while (wspub.state != S_SUBSCRIBED && wspub.state != S_DEAD && now_ns() < end && !stop_flag)
      loop_once();
    if (wspub.state != S_SUBSCRIBED) die("the WebSocket publisher could not connect");
  } else {
    for (int i = 0; i < o.pubs; i++) pub_connect(&pubs[i]);
    uint64_t end = now_ns() + 10000000000ull;
    for (;;) {
      int up = 0;
      for (int i = 0; i < o.pubs; i++) up += pubs[i].up;
      if (up == o.pubs) break;
      if (now_ns() > end || stop_flag) die("publisher connections did not come up");
      loop_once();
    }
  }

  /* Publish: warmup, measure, then drain. */
  phase = o.warmup > 0 ? P_WARMUP : P_MEASURE;
  uint64_t t_pub0 = now_ns(), t_measure = 0, t_measure_end = 0, t_end = 0;
  uint64_t warm_ns = (uint64_t)(o.warmup * 1e9), dur_ns = (uint64_t)(o.duration * 1e9);
  double cpu0 = -1, self0 = 0, cpu_server = -1, cpu_self = 0;
  double cpu0_each[MAX_PIDS] = {0}, cpu1_each[MAX_PIDS] = {0};
  uint64_t offered_measured = 0;
  if (phase == P_MEASURE) {
    t_measure = t_pub0;
    seq_measure0 = 0;
    if (o.n_pids) cpu0 = servers_cpu_s(cpu0_each);
    self0 = self_cpu_s();
  }
  t_last_delivery = t_pub0;
  t_tick = t_pub0 + 1000000000ull;
  t_last_tick = t_pub0;
  while (phase != P_DONE) {
    uint64_t now = now_ns();
    if (stop_flag) {
      if (phase == P_WARMUP || phase == P_MEASURE) {
        phase = P_DRAIN; /* report what we have */
        seq_measure1 = seq_next;
        t_measure_end = now;
        if (!t_measure) t_measure = now;
      }
      break;
    }
    if (phase == P_WARMUP && now - t_pub0 >= warm_ns) {
      phase = P_MEASURE;
      t_measure = now;
      seq_measure0 = seq_next;
      memset(&hist, 0, sizeof hist);
      if (o.n_pids) cpu0 = servers_cpu_s(cpu0_each);
      self0 = self_cpu_s();
    }
    if (phase == P_MEASURE && now - t_measure >= dur_ns) {
      phase = P_DRAIN;
      seq_measure1 = seq_next;
      t_measure_end = now;
    }
    if (phase == P_WARMUP || phase == P_MEASURE) {
      uint64_t due = (uint64_t)(o.rate * (double)(now - t_pub0) / 1e9) + 1;
      while (seq_next < due && seq_next < nseq_cap) publish_one(now);
      for (int i = 0; i < o.pubs && !o.publish_ws; i++)
        if (pubs[i].out_len > pubs[i].out_off && pubs[i].up && !pub_flush(&pubs[i]))
          pub_lost(&pubs[i], strerror(errno));
    }
    if (phase == P_DRAIN) {
      uint64_t unanswered = 0;
      for (int i = 0; i < o.pubs && !o.publish_ws; i++) unanswered += pubs[i].inflight;
      bool all = n_deliv_all >= exp_all && !unanswered;
      bool quiet = now - t_last_delivery >= (uint64_t)(o.quiet * 1e9) &&
                   now - t_measure_end >= (uint64_t)(o.quiet * 1e9);
      bool timeout = now - t_measure_end >= (uint64_t)(o.drain * 1e9);
      if (all || quiet || timeout) {
        t_end = now;
        phase = P_DONE;
        break;
      }
    }
    loop_once();
    now = now_ns();
    if (now >= t_tick) {
      double dt = (double)(now - t_last_tick) / 1e9;
      uint64_t backlog = 0;
      for (int i = 0; i < o.pubs; i++) backlog += pubs[i].inflight;
      fprintf(stderr,
              "[%5.1fs] %-7s  published %6.0f/s  acked %6.0f/s  delivered %9.0f/s"
              "  unanswered %llu  subscribed %llu  closed %llu\n",
              (double)(now - t0) / 1e9, phase_names[phase], (double)sec_pub / dt,
              (double)sec_ack / dt, (double)sec_deliv / dt, (unsigned long long)backlog,
              (unsigned long long)n_subscribed, (unsigned long long)n_dead);
      sec_pub = sec_ack = sec_deliv = 0;
      t_last_tick = now;
      t_tick = now + 1000000000ull;
    }
  }
  if (!t_end) t_end = now_ns();
  if (o.n_pids && cpu0 >= 0) {
    double c1 = servers_cpu_s(cpu1_each);
    cpu_server = c1 >= 0 ? c1 - cpu0 : -1;
  }
  cpu_self = self_cpu_s() - self0;
  char each_json[MAX_PIDS * 16 + 4] = "[", *ej = each_json + 1; /* CPU-s per --server-pid */
  for (int i = 0; i < o.n_pids; i++)
    ej += sprintf(ej, "%s%.3f", i ? "," : "", cpu_server >= 0 ? cpu1_each[i] - cpu0_each[i] : -1);
  strcpy(ej, "]");
  long rss2 = o.n_pids ? servers_rss_kb() : -1;

  /* Loss over the measured publications. */
  uint64_t expected = 0, delivered = 0, dups = 0, missing = 0;
  if (seq_measure1 > seq_next) seq_measure1 = seq_next;
  offered_measured = seq_measure1 - seq_measure0;
  for (uint64_t s = seq_measure0; s < seq_measure1 && s < nseq_cap; s++) {
    uint64_t want = (uint64_t)o.subs / (uint64_t)o.topics +
                    ((s % (uint64_t)o.topics) < (uint64_t)o.subs % (uint64_t)o.topics ? 1 : 0);
    uint64_t got = deliv_count[s];
    expected += want;
    delivered += got < want ? got : want;
    if (got > want) dups += got - want;
    if (got < want) missing += want - got;
  }
  uint64_t unanswered = n_pub_lost;
  for (int i = 0; i < o.pubs; i++) unanswered += pubs[i].inflight;
  double secs = t_measure_end > t_measure ? (double)(t_measure_end - t_measure) / 1e9 : 0;
  double span = (double)(t_end - t_measure) / 1e9;
  double drain_s = (double)(t_end - t_measure_end) / 1e9;
  double dps = secs > 0 ? (double)n_deliv_window / secs : 0;
  double per_cpu = cpu_server > 0 ? (double)n_deliv_since_measure / cpu_server : 0;
  long rss_per_sub = rss0 >= 0 && rss1 >= 0 ? (rss1 - rss0) * 1024 / o.subs : -1;
  double loss_pct = expected ? 100.0 * (double)missing / (double)expected : 0;

  printf("{\"dialect\":\"%s\",\"transport\":\"%s\",\"publish\":\"%s\",\"subscribers\":%d,"
         "\"topics\":%d,\"rate\":%.0f,"
         "\"publishers\":%d,\"size\":%d,\"seconds\":%.3f,\"drain_s\":%.3f,\"connect_s\":%.2f,"
         "\"offered\":%llu,\"published_all\":%llu,\"acked\":%llu,\"pub_errors\":%llu,"
         "\"unanswered\":%llu,"
         "\"expected\":%llu,\"delivered\":%llu,\"loss\":%llu,\"loss_pct\":%.3f,\"dups\":%llu,"
         "\"reorders\":%llu,\"misrouted\":%llu,\"unknown_msgs\":%llu,\"closed_subs\":%llu,"
         "\"deliveries_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
         "\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,\"deliveries_per_server_cpu_s\":%.1f,"
         "\"loadgen_cpu_s\":%.3f,\"rss_before_kb\":%ld,\"rss_subscribed_kb\":%ld,"
         "\"rss_end_kb\":%ld,\"rss_per_sub_bytes\":%ld,\"errors\":%llu,\"nodes\":%d,"
         "\"server_cpu_each_s\":%s}\n",
         dialect_names[o.dialect], o.sse ? "sse" : "ws", o.publish_ws ? "ws" : "http", o.subs,
         o.topics, o.rate, o.publish_ws ? 1 : o.pubs, PAYLOAD, secs, drain_s, connect_s,
         (unsigned long long)offered_measured, (unsigned long long)seq_next,
         (unsigned long long)n_acked, (unsigned long long)n_pub_err, (unsigned long long)unanswered,
         (unsigned long long)expected, (unsigned long long)delivered, (unsigned long long)missing,
         loss_pct, (unsigned long long)dups, (unsigned long long)n_reorder,
         (unsigned long long)n_misrouted, (unsigned long long)n_unknown, (unsigned long long)n_dead,
         dps, hist_pct_us(&hist, 0.50), hist_pct_us(&hist, 0.99), (double)hist.max / 1000.0,
         cpu_server, span > 0 && cpu_server >= 0 ? 100 * cpu_server / span : -1, per_cpu, cpu_self,
         rss0, rss1, rss2, rss_per_sub, (unsigned long long)n_errors, o.n_nodes ? o.n_nodes : 1,
         each_json);
  if (!o.json) {
    printf("\n%s: %d %s subscribers on %d topic(s), %.0f publications/s offered (%s, %d "
           "connection(s))\n",
           dialect_names[o.dialect], o.subs, o.sse ? "SSE" : "WebSocket", o.topics, o.rate,
           o.publish_ws ? "WebSocket" : "HTTP", o.publish_ws ? 1 : o.pubs);
    printf("subscribe   %d in %.2f s\n", o.subs, connect_s);
    printf("window      %.2f s measured + %.2f s drain\n", secs, drain_s);
    printf("published   %llu offered in the window (%llu with the warmup); %llu acknowledged, "
           "%llu errors, %llu unanswered\n",
           (unsigned long long)offered_measured, (unsigned long long)seq_next,
           (unsigned long long)n_acked, (unsigned long long)n_pub_err,
           (unsigned long long)unanswered);
    printf("deliveries  %.0f/s in the window; %llu of %llu expected (loss %llu = %.2f%%), "
           "%llu dups, %llu reordered, %llu misrouted\n",
           dps, (unsigned long long)delivered, (unsigned long long)expected,
           (unsigned long long)missing, loss_pct, (unsigned long long)dups,
           (unsigned long long)n_reorder, (unsigned long long)n_misrouted);
    printf("latency     p50 %.1f us  p99 %.1f us  max %.1f us (publish to delivery)\n",
           hist_pct_us(&hist, 0.50), hist_pct_us(&hist, 0.99), (double)hist.max / 1000.0);
    if (cpu_server >= 0)
      printf("server cpu  %.2f s (%.0f%%), %.0f deliveries per server CPU-second\n", cpu_server,
             span > 0 ? 100 * cpu_server / span : 0, per_cpu);
    printf("loadgen cpu %.2f s\n", cpu_self);
    if (rss0 >= 0)
      printf("server rss  %ld kB before, %ld kB subscribed (%ld B per subscriber), %ld kB at "
             "the end\n",
             rss0, rss1, rss_per_sub, rss2);
    printf("closed      %llu subscribers (%llu before publishing)\n", (unsigned long long)n_dead,
           (unsigned long long)dead_before_publish);
  }
  return 0;
}
