/* loadgen: a standalone WebSocket load generator for comparing servers.
 *
 * It deliberately uses nothing from libduplex (only libc and OpenSSL's SHA-1
 * and base64 to check Sec-WebSocket-Accept), so that it measures duplex and
 * its peers with the same neutral client. One thread, epoll, non-blocking
 * sockets, level-triggered.
 *
 * Modes:
 *   echo (default)  N connections each keep K messages of S bytes in flight
 *                   and send one more per echo; reports messages/s, MB/s and
 *                   latency percentiles from a log-linear histogram.
 *   --handshakes    connection storm: connect, upgrade, close (close frame +
 *                   FIN, then wait for the server's EOF), N at a time.
 *   --idle          open N connections, upgrade them, print READY and hold
 *                   them until SIGINT/SIGTERM or EOF on stdin.
 *
 * With --pid P it also reads the server's utime+stime from /proc/P/stat at the
 * start and end of the measured window, so it can report work per server
 * CPU-second: the metric that does not depend on how busy the load generator
 * itself is.
 *
 * Build: bench/build.sh (cc -O2 -std=c11 ... -lcrypto). Needs `ulimit -n`
 * above the connection count; it raises its soft limit to the hard limit. */
#define _GNU_SOURCE
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
#include <time.h>
#include <unistd.h>

#include "load_stats.h"

#define MAX_PENDING_CONNECTS 200 /* connects in flight at once: no SYN floods */
#define HS_BUF 1024              /* room for the server's 101 response */
#define HS_TIMEOUT_NS (10ull * 1000000000ull)
#define NKEYS 64 /* pre-computed Sec-WebSocket-Key/Accept pairs, reused */
#define RX_BUF (256 * 1024)
#define HDR_DONE 0xff /* conn.hdr_len once a frame's header is complete */

enum mode { MODE_ECHO, MODE_HANDSHAKES, MODE_IDLE };
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DONE };
enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING };

struct opts {
  const char *host, *path;
  int port, conns, inflight, fragment;
  int sources; /* > 1: bind to 127.0.0.1 .. 127.0.0.<sources>, round robin */
  size_t size;
  double duration, warmup;
  enum mode mode;
  bool json, text, verify;
  int pid; /* server process to charge CPU time to, 0 = none */
};

/* One connection. Kept small: --idle holds 10,000 of them. */
struct conn {
  int fd;
  uint8_t state;
  uint8_t hdr_len;   /* bytes of a frame header collected so far */
  uint8_t frame_op;  /* opcode of the frame being received */
  uint8_t frame_fin; /* its FIN bit */
  uint8_t msg_op;    /* opcode of the data message being received */
  uint8_t ctl_len;   /* control payload collected so far */
  uint8_t key;       /* which pre-computed key pair */
  uint8_t got_close;
  uint8_t hdr[14];
  uint16_t hs_len;
  uint64_t payload_left; /* payload bytes of the current frame still to come */
  uint64_t msg_off;      /* offset in the current message (for --verify) */
  uint64_t deadline;     /* handshake deadline, ns */
  uint64_t *sent_ns;     /* ring of K send times (echo mode) */
  uint32_t ring_head, ring_n;
  uint8_t *out; /* bytes a short write left behind; NULL when empty */
  size_t out_len, out_cap;
  uint8_t ctl[125];
  char *hs; /* handshake response, freed after the upgrade */
};

static struct opts o = {.host = "127.0.0.1",
                        .path = "/",
                        .port = 9001,
                        .conns = 100,
                        .inflight = 1,
                        .size = 16,
                        .duration = 5,
                        .warmup = 1};
static struct conn *conns;
static int epfd;
static uint8_t *frames; /* K copies of the pre-built, pre-masked message */
static size_t frame_len;
static uint8_t mask_key[4];
static char *requests[NKEYS];
static size_t request_len[NKEYS];
static char accepts[NKEYS][29];
static uint8_t *rxbuf;
static struct sockaddr_storage addr;
static socklen_t addr_len;
static volatile sig_atomic_t stop_flag;

/* Counters; reset when the measured window opens. */
static uint64_t n_msgs, n_bytes, n_hs, n_errors, n_open, n_pending;
static uint64_t sec_msgs, sec_hs; /* for the per-second progress line */
static struct hist hist;
static enum phase phase = PH_SETUP;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) die("out of memory");
  return p;
}

/* The payload pattern depends on the byte's offset so that --verify catches
 * lost, repeated or reordered fragments, not just wrong lengths. */
static uint8_t pattern(uint64_t i) {
  if (o.text) return (uint8_t)(0x20 + (i * 31 + (i >> 7)) % 95); /* ASCII */
  return (uint8_t)(i * 131 + (i >> 8) + 1);
}

static size_t put_header(uint8_t *p, bool fin, int op, uint64_t len) {
  size_t n = 0;
  p[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
  if (len < 126) {
    p[n++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xffff) {
    p[n++] = 0x80 | 126;
    p[n++] = (uint8_t)(len >> 8);
    p[n++] = (uint8_t)len;
  } else {
    p[n++] = 0x80 | 127;
    for (int s = 56; s >= 0; s -= 8) p[n++] = (uint8_t)(len >> s);
  }
  memcpy(p + n, mask_key, 4);
  return n + 4;
}

/* Build the message once (masked, split into --fragment frames if asked) and
 * lay K copies end to end so that up to K messages go out in one write. */
static void build_frames(void) {
  size_t frag = o.fragment > 0 ? (size_t)o.fragment : (o.size ? o.size : 1);
  size_t nfr = o.size ? (o.size + frag - 1) / frag : 1;
  uint8_t *one = xmalloc(o.size + nfr * 14);
  size_t n = 0, off = 0;
  for (size_t f = 0; f < nfr; f++) {
    size_t len = o.size - off < frag ? o.size - off : frag;
    n += put_header(one + n, f == nfr - 1, f == 0 ? (o.text ? 1 : 2) : 0, len);
    for (size_t i = 0; i < len; i++) one[n + i] = pattern(off + i) ^ mask_key[i & 3];
    n += len;
    off += len;
  }
  frame_len = n;
  frames = xmalloc(frame_len * (size_t)o.inflight);
  for (int k = 0; k < o.inflight; k++) memcpy(frames + (size_t)k * frame_len, one, frame_len);
  free(one);
}

static void b64(const uint8_t *in, int n, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void build_requests(void) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  for (int k = 0; k < NKEYS; k++) {
    uint8_t raw[16], sha[SHA_DIGEST_LENGTH];
    char key[25], cat[64];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) die("getrandom failed");
    b64(raw, 16, key);
    snprintf(cat, sizeof cat, "%s%s", key, guid);
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    b64(sha, SHA_DIGEST_LENGTH, accepts[k]);
    char buf[512];
    int len = snprintf(buf, sizeof buf,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       o.path, o.host, o.port, key);
    requests[k] = strdup(buf);
    request_len[k] = (size_t)len;
  }
}

static void resolve(void) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  char port[16];
  snprintf(port, sizeof port, "%d", o.port);
  int rc = getaddrinfo(o.host, port, &hints, &res);
  if (rc) {
    fprintf(stderr, "loadgen: %s: %s\n", o.host, gai_strerror(rc));
    exit(1);
  }
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  addr_len = res->ai_addrlen;
  freeaddrinfo(res);
}

static void ep_set(struct conn *c, uint32_t ev, int op) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &e) < 0) die("epoll_ctl failed");
}

static void conn_reset(struct conn *c) {
  free(c->out);
  free(c->hs);
  uint64_t *ring = c->sent_ns;
  memset(c, 0, sizeof *c);
  c->sent_ns = ring;
  c->fd = -1;
}

static void conn_close(struct conn *c) {
  if (c->fd >= 0) close(c->fd); /* close() also drops it from epoll */
  if (c->state == C_OPEN) n_open--;
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) n_pending--;
  conn_reset(c);
}

static void conn_fail(struct conn *c, const char *why) {
  n_errors++;
  if (o.mode != MODE_HANDSHAKES && n_errors <= 5)
    fprintf(stderr, "loadgen: connection %ld: %s\n", (long)(c - conns), why);
  conn_close(c);
}

static bool conn_start(struct conn *c, int idx) {
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    n_errors++;
    return false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (o.sources > 1 && addr.ss_family == AF_INET) {
    /* One source address has ~28k ephemeral ports (32768-60999) per server
     * address and port; 50,000 connections need more than one. The port is
     * chosen at connect (not bind), so each address gets its own range. */
    struct sockaddr_in src = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % o.sources))};
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
      close(fd);
      n_errors++;
      return false;
    }
  }
  c->fd = fd;
  c->key = (uint8_t)(idx % NKEYS);
  c->state = C_CONNECTING;
  c->deadline = now_ns() + HS_TIMEOUT_NS;
  n_pending++;
  if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0 && errno != EINPROGRESS) {
    conn_fail(c, strerror(errno));
    return false;
  }
  ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
  return true;
}

/* Write, or queue what the socket did not take; the queue keeps byte order
 * when a pong has to follow a half-written message. */
static bool conn_write(struct conn *c, const uint8_t *p, size_t n) {
  if (!c->out_len) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0) {
      if (errno != EAGAIN) return false;
      w = 0;
    }
    p += w;
    n -= (size_t)w;
    if (!n) return true;
    ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
  }
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n) cap *= 2;
    uint8_t *q = realloc(c->out, cap);
    if (!q) die("out of memory");
    c->out = q;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return true;
}

static bool conn_flush(struct conn *c) {
  ssize_t w = write(c->fd, c->out, c->out_len);
  if (w < 0) return errno == EAGAIN;
  memmove(c->out, c->out + w, c->out_len - (size_t)w);
  c->out_len -= (size_t)w;
  if (!c->out_len) ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
  return true;
}

static bool send_control(struct conn *c, int op, const uint8_t *payload, size_t len) {
  uint8_t f[14 + 125];
  size_t h = put_header(f, true, op, len);
  for (size_t i = 0; i < len; i++) f[h + i] = payload[i] ^ mask_key[i & 3];
  return conn_write(c, f, h + len);
}

static bool send_messages(struct conn *c, uint32_t k, uint64_t now) {
  for (uint32_t i = 0; i < k; i++) {
    c->sent_ns[(c->ring_head + c->ring_n) % (uint32_t)o.inflight] = now;
    c->ring_n++;
  }
  return conn_write(c, frames, frame_len * k);
}

static void send_close(struct conn *c) {
  static const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
  send_control(c, 8, code, 2);
  shutdown(c->fd, SHUT_WR);
}

/* Parse frames from the server. Returns complete data messages, or -1. */
static long parse_frames(struct conn *c, const uint8_t *p, size_t n, uint64_t now) {
  long msgs = 0;
  while (n) {
    if (c->hdr_len != HDR_DONE) {
      while (c->hdr_len < 2 && n) {
        c->hdr[c->hdr_len++] = *p++;
        n--;
      }
      if (c->hdr_len < 2) break;
      /* Collect the rest of the header. */
      uint8_t b1 = c->hdr[1];
      if (b1 & 0x80) return -1; /* servers must not mask */
      size_t need = 2 + ((b1 & 0x7f) == 126 ? 2 : (b1 & 0x7f) == 127 ? 8 : 0);
      while (c->hdr_len < need && n) {
        c->hdr[c->hdr_len++] = *p++;
        n--;
      }
      if (c->hdr_len < need) break;
      uint64_t len = b1 & 0x7f;
      if (len == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
      if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++) len = len << 8 | c->hdr[i];
      }
      c->frame_fin = c->hdr[0] >> 7;
      c->frame_op = c->hdr[0] & 0x0f;
      c->hdr_len = HDR_DONE; /* a zero-length frame completes below, take == 0 */
      c->payload_left = len;
      c->ctl_len = 0;
      if (c->frame_op >= 8) {
        if (len > 125 || !c->frame_fin) return -1;
      } else if (c->frame_op == 0) {
        if (!c->msg_op) return -1; /* continuation without a start */
      } else {
        if (c->msg_op) return -1; /* new message inside a fragmented one */
        c->msg_op = c->frame_op;
        c->msg_off = 0;
      }
    }
    /* Payload. */
    size_t take = c->payload_left < n ? (size_t)c->payload_left : n;
    if (c->frame_op >= 8) {
      memcpy(c->ctl + c->ctl_len, p, take);
      c->ctl_len = (uint8_t)(c->ctl_len + take);
    } else if (o.verify) {
      for (size_t i = 0; i < take; i++)
        if (p[i] != pattern(c->msg_off + i)) return -1;
    }
    if (c->frame_op < 8) c->msg_off += take;
    p += take;
    n -= take;
    c->payload_left -= take;
    if (c->payload_left) break;
    /* Frame complete. */
    c->hdr_len = 0;
    if (c->frame_op == 9) {
      if (!send_control(c, 10, c->ctl, c->ctl_len)) return -1;
    } else if (c->frame_op == 8) {
      c->got_close = 1;
      return msgs;
    } else if (c->frame_op < 8 && c->frame_fin) {
      if (o.verify && (c->msg_off != o.size || c->msg_op != (o.text ? 1 : 2))) return -1;
      c->msg_op = 0;
      msgs++;
      if (c->ring_n) {
        uint64_t sent = c->sent_ns[c->ring_head];
        c->ring_head = (c->ring_head + 1) % (uint32_t)o.inflight;
        c->ring_n--;
        if (phase == PH_MEASURE) hist_add(&hist, now - sent);
      }
    }
  }
  return msgs;
}

/* A 101 status and exactly the Sec-WebSocket-Accept that our key implies. */
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

static void on_open(struct conn *c, uint64_t now);

static void handle_handshake(struct conn *c, uint64_t now) {
  if (!c->hs) {
    c->hs = xmalloc(HS_BUF);
    c->hs_len = 0;
  }
  ssize_t r = read(c->fd, c->hs + c->hs_len, HS_BUF - 1 - c->hs_len);
  if (r < 0 && errno == EAGAIN) return;
  if (r <= 0) {
    conn_fail(c, r == 0 ? "server closed during handshake" : strerror(errno));
    return;
  }
  c->hs_len = (uint16_t)(c->hs_len + r);
  c->hs[c->hs_len] = 0;
  char *end = strstr(c->hs, "\r\n\r\n");
  if (!end) {
    if (c->hs_len >= HS_BUF - 1) conn_fail(c, "handshake response too large");
    return;
  }
  *end = 0;
  if (!check_accept(c->hs, c->key)) {
    if (n_errors < 3) fprintf(stderr, "loadgen: bad handshake response:\n%s\n", c->hs);
    conn_fail(c, "bad handshake response");
    return;
  }
  size_t rest = (size_t)(c->hs + c->hs_len - (end + 4));
  uint8_t early[HS_BUF];
  memcpy(early, end + 4, rest);
  free(c->hs);
  c->hs = NULL;
  n_pending--;
  c->state = C_OPEN;
  n_open++;
  n_hs++;
  sec_hs++;
  c->hdr_len = 0;
  if (rest && parse_frames(c, early, rest, now) < 0) {
    conn_fail(c, "bad frame");
    return;
  }
  on_open(c, now);
}

static void on_open(struct conn *c, uint64_t now) {
  (void)now;
  if (o.mode == MODE_HANDSHAKES) {
    send_close(c);
    c->state = C_CLOSING;
    n_open--;
  }
}

static void handle_open_read(struct conn *c, uint64_t now) {
  for (;;) {
    ssize_t r = read(c->fd, rxbuf, RX_BUF);
    if (r < 0) {
      if (errno == EAGAIN) return;
      conn_fail(c, strerror(errno));
      return;
    }
    if (r == 0) {
      if (c->state == C_CLOSING) {
        conn_close(c);
        return;
      }
      conn_fail(c, "server closed the connection");
      return;
    }
    if (c->state == C_CLOSING) continue; /* drain until the server's EOF */
    long m = parse_frames(c, rxbuf, (size_t)r, now);
    if (m < 0) {
      conn_fail(c, "protocol error (or --verify mismatch) in server frames");
      return;
    }
    if (m) {
      n_msgs += (uint64_t)m;
      sec_msgs += (uint64_t)m;
      n_bytes += (uint64_t)m * o.size;
      if (phase != PH_DONE && o.mode == MODE_ECHO && !send_messages(c, (uint32_t)m, now)) {
        conn_fail(c, strerror(errno));
        return;
      }
    }
    if (c->got_close) {
      conn_fail(c, "server sent a close frame");
      return;
    }
    if ((size_t)r < RX_BUF) return;
  }
}

static void handle_event(struct conn *c, uint32_t ev, uint64_t now) {
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      conn_fail(c, strerror(err));
      return;
    }
    c->state = C_HANDSHAKE;
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    if (!conn_write(c, (const uint8_t *)requests[c->key], request_len[c->key]))
      conn_fail(c, strerror(errno));
    return;
  }
  if ((ev & EPOLLOUT) && c->out_len && !conn_flush(c)) {
    conn_fail(c, strerror(errno));
    return;
  }
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  if (c->state == C_HANDSHAKE)
    handle_handshake(c, now);
  else
    handle_open_read(c, now);
}

/* Start connections while fewer than MAX_PENDING_CONNECTS are pending. */
static void fill_connects(int *next, int limit) {
  while (*next < limit && n_pending < MAX_PENDING_CONNECTS) {
    int i = *next;
    if (conns[i].state == C_FREE) conn_start(&conns[i], i);
    (*next)++;
  }
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)o.conns + 16 > rl.rlim_cur) {
    fprintf(stderr, "loadgen: need %d file descriptors but ulimit -n is %llu; raise it\n",
            o.conns + 16, (unsigned long long)rl.rlim_cur);
    exit(1);
  }
}

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

static size_t parse_size(const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s) die("bad size");
  if (*end == 'K' || *end == 'k')
    v <<= 10;
  else if (*end == 'M' || *end == 'm')
    v <<= 20;
  else if (*end)
    die("bad size suffix (use K or M)");
  return (size_t)v;
}

static void usage(FILE *f) {
  fputs("usage: loadgen [OPTIONS]\n"
        "\n"
        "A WebSocket load generator (no duplex code inside). Modes:\n"
        "  echo (default)  each connection keeps --inflight messages of --size bytes\n"
        "                  in flight, sending one more per echo received\n"
        "  --handshakes    connection storm: connect, upgrade, close frame + FIN, wait\n"
        "                  for the server's EOF, repeat; --connections at a time\n"
        "  --idle          upgrade --connections connections, print READY, hold them\n"
        "                  until SIGINT/SIGTERM or EOF on stdin\n"
        "\n"
        "Options:\n"
        "  --host ADDR        server address (default 127.0.0.1)\n"
        "  --port N           server port (default 9001)\n"
        "  --path PATH        request path (default /)\n"
        "  --connections N    connections, or concurrency for --handshakes (default 100)\n"
        "  --size S           message payload bytes, K/M suffix (default 16)\n"
        "  --inflight K       messages in flight per connection (default 1)\n"
        "  --duration T       measured seconds (default 5; ms suffix allowed)\n"
        "  --warmup W         seconds of load before measuring (default 1)\n"
        "  --fragment F       send each message as frames of F payload bytes\n"
        "  --text             text messages (ASCII) instead of binary\n"
        "  --verify           check every echoed byte, length and opcode\n"
        "  --sources N        spread connections over source addresses 127.0.0.1..N\n"
        "                     (more than ~28k connections to one server port)\n"
        "  --pid PID          server PID: report its CPU time in the measured window\n"
        "  --json             print the result as one JSON line on stdout\n"
        "  -h, --help         this help\n"
        "\n"
        "Latency is from queueing a message to reading its echo, per connection in\n"
        "order. MB/s counts echoed payload bytes (10^6). Needs ulimit -n above\n"
        "--connections (it raises the soft limit to the hard limit itself).\n",
        f);
}

static void parse_args(int argc, char **argv) {
  static const struct option lo[] = {
      {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},   {"path", 1, 0, 'P'},
      {"connections", 1, 0, 'c'}, {"size", 1, 0, 's'},   {"inflight", 1, 0, 'k'},
      {"duration", 1, 0, 'd'},    {"warmup", 1, 0, 'w'}, {"fragment", 1, 0, 'f'},
      {"text", 0, 0, 't'},        {"verify", 0, 0, 'v'}, {"pid", 1, 0, 'i'},
      {"sources", 1, 0, 'o'},     {"json", 0, 0, 'j'},   {"handshakes", 0, 0, 'S'},
      {"idle", 0, 0, 'I'},        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'H':
      o.host = optarg;
      break;
    case 'p':
      o.port = atoi(optarg);
      break;
    case 'P':
      o.path = optarg;
      break;
    case 'c':
      o.conns = atoi(optarg);
      break;
    case 's':
      o.size = parse_size(optarg);
      break;
    case 'k':
      o.inflight = atoi(optarg);
      break;
    case 'd':
      o.duration = parse_seconds(optarg);
      break;
    case 'w':
      o.warmup = parse_seconds(optarg);
      break;
    case 'f':
      o.fragment = (int)parse_size(optarg);
      break;
    case 't':
      o.text = true;
      break;
    case 'v':
      o.verify = true;
      break;
    case 'i':
      o.pid = atoi(optarg);
      break;
    case 'o':
      o.sources = atoi(optarg);
      break;
    case 'j':
      o.json = true;
      break;
    case 'S':
      o.mode = MODE_HANDSHAKES;
      break;
    case 'I':
      o.mode = MODE_IDLE;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      exit(2);
    }
  }
  if (optind < argc || o.port <= 0 || o.port > 65535 || o.conns <= 0 || o.inflight <= 0 ||
      o.sources < 0 || o.sources > 254 || o.inflight > 1 << 20) {
    usage(stderr);
    exit(2);
  }
}

static void report(double secs, double cpu_server, double cpu_self) {
  const char *mode = o.mode == MODE_ECHO         ? "echo"
                     : o.mode == MODE_HANDSHAKES ? "handshakes"
                                                 : "idle";
  double rate = o.mode == MODE_ECHO ? (double)n_msgs / secs : (double)n_hs / secs;
  double per_cpu =
      cpu_server > 0 ? (o.mode == MODE_ECHO ? (double)n_msgs : (double)n_hs) / cpu_server : 0;
  if (o.json) {
    printf("{\"mode\":\"%s\",\"connections\":%d,\"size\":%zu,\"inflight\":%d,\"seconds\":%.3f,"
           "\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"handshakes\":%llu,"
           "\"handshakes_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f,\"errors\":%llu,\"server_cpu_s\":%.3f,\"per_server_cpu_s\":%.1f,"
           "\"loadgen_cpu_s\":%.3f}\n",
           mode, o.conns, o.size, o.inflight, secs, (unsigned long long)n_msgs,
           o.mode == MODE_ECHO ? rate : 0, (double)n_bytes / secs / 1e6, (unsigned long long)n_hs,
           o.mode == MODE_HANDSHAKES ? rate : 0, hist_pct_us(&hist, 0.50), hist_pct_us(&hist, 0.99),
           hist_pct_us(&hist, 0.999), (double)hist.max / 1000.0, (unsigned long long)n_errors,
           cpu_server, per_cpu, cpu_self);
    return;
  }
  if (o.mode == MODE_ECHO)
    printf("mode        echo, %d connections, %zu B, %d in flight\n", o.conns, o.size, o.inflight);
  else
    printf("mode        %s, %d at a time\n", mode, o.conns);
  printf("window      %.3f s\n", secs);
  if (o.mode == MODE_ECHO) {
    printf("messages    %llu (%.0f msg/s, %.2f MB/s)\n", (unsigned long long)n_msgs, rate,
           (double)n_bytes / secs / 1e6);
    printf("latency     p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n",
           hist_pct_us(&hist, 0.50), hist_pct_us(&hist, 0.99), hist_pct_us(&hist, 0.999),
           (double)hist.max / 1000.0);
  } else {
    printf("handshakes  %llu (%.0f /s)\n", (unsigned long long)n_hs, rate);
  }
  if (cpu_server >= 0 && o.pid)
    printf("server cpu  %.3f s (%.0f%% of the window), %.0f per server CPU-second\n", cpu_server,
           100 * cpu_server / secs, per_cpu);
  printf("loadgen cpu %.3f s (%.0f%%)\n", cpu_self, 100 * cpu_self / secs);
  printf("errors      %llu\n", (unsigned long long)n_errors);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  setvbuf(stdout, NULL, _IOLBF, 0);
  resolve();
  if (getrandom(mask_key, 4, 0) != 4) die("getrandom failed");
  build_frames();
  build_requests();
  rxbuf = xmalloc(RX_BUF);
  conns = calloc((size_t)o.conns, sizeof *conns);
  if (!conns) die("out of memory");
  for (int i = 0; i < o.conns; i++) {
    conns[i].fd = -1;
    if (o.mode == MODE_ECHO) conns[i].sent_ns = xmalloc(sizeof(uint64_t) * (size_t)o.inflight);
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1 failed");
  bool watch_stdin = o.mode == MODE_IDLE;
  if (watch_stdin) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &e) < 0) watch_stdin = false; /* e.g. a file */
  }

  enum { MAXEV = 512 };
  struct epoll_event evs[MAXEV];
  uint64_t t_start = now_ns(), t_phase = 0, t_tick = t_start + 1000000000ull;
  uint64_t t_last_tick = t_start;
  uint64_t warm_ns = (uint64_t)(o.warmup * 1e9), dur_ns = (uint64_t)(o.duration * 1e9);
  double cpu0 = 0, self0 = 0, cpu_server = -1, cpu_self = 0, secs = 0;
  int next = 0;
  if (o.mode == MODE_HANDSHAKES) { /* the storm starts at once: no setup phase */
    phase = PH_WARMUP;
    t_phase = t_start;
  }

  while (phase != PH_DONE && !stop_flag) {
    if (o.mode == MODE_HANDSHAKES) {
      if (next >= o.conns) next = 0; /* recycle free slots */
      int from = next;
      fill_connects(&next, o.conns);
      if (next >= o.conns && from > 0) {
        next = 0;
        fill_connects(&next, from);
      }
    } else {
      fill_connects(&next, o.conns);
    }
    uint64_t now = now_ns();
    int timeout = (int)((t_tick > now ? t_tick - now : 0) / 1000000) + 1;
    int n = epoll_wait(epfd, evs, MAXEV, timeout);
    if (n < 0 && errno != EINTR) die("epoll_wait failed");
    now = now_ns();
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) { /* stdin: EOF (or anything) ends --idle */
        char b[256];
        if (read(STDIN_FILENO, b, sizeof b) <= 0) stop_flag = 1;
        continue;
      }
      handle_event(evs[i].data.ptr, evs[i].events, now);
    }

    /* Phase changes. */
    if (phase == PH_SETUP && (int)n_open == o.conns) {
      if (o.mode == MODE_IDLE) {
        printf("READY %d connections in %.2f s\n", o.conns, (double)(now - t_start) / 1e9);
        phase = PH_MEASURE; /* hold until told to stop */
        t_phase = now;
      } else {
        phase = PH_WARMUP;
        t_phase = now;
        for (int i = 0; i < o.conns; i++)
          if (!send_messages(&conns[i], (uint32_t)o.inflight, now)) conn_fail(&conns[i], "write");
      }
    } else if (phase == PH_SETUP && o.mode != MODE_HANDSHAKES && next >= o.conns &&
               n_pending == 0 && (int)n_open < o.conns) {
      fprintf(stderr, "loadgen: only %llu of %d connections came up\n", (unsigned long long)n_open,
              o.conns);
      return 1;
    }
    if (phase == PH_WARMUP && now - t_phase >= warm_ns) {
      phase = PH_MEASURE;
      t_phase = now;
      n_msgs = n_bytes = n_hs = n_errors = 0;
      memset(&hist, 0, sizeof hist);
      if (o.pid) cpu0 = proc_cpu_s(o.pid);
      self0 = self_cpu_s();
    } else if (phase == PH_MEASURE && o.mode != MODE_IDLE && now - t_phase >= dur_ns) {
      secs = (double)(now - t_phase) / 1e9;
      if (o.pid) {
        double c1 = proc_cpu_s(o.pid);
        cpu_server = (cpu0 >= 0 && c1 >= 0) ? c1 - cpu0 : -1;
      }
      cpu_self = self_cpu_s() - self0;
      phase = PH_DONE;
    }

    /* Handshake deadlines: a server that stops answering must not hang us. */
    if (now >= t_tick) {
      for (int i = 0; i < o.conns; i++) {
        struct conn *c = &conns[i];
        if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->state == C_CLOSING) &&
            now > c->deadline)
          conn_fail(c, "timed out");
      }
      double dt = (double)(now - t_last_tick) / 1e9;
      const char *ph = phase == PH_SETUP     ? "setup"
                       : o.mode == MODE_IDLE ? "holding"
                       : phase == PH_WARMUP  ? "warmup"
                       : phase == PH_DONE    ? "done"
                                             : "measure";
      if (o.mode == MODE_ECHO)
        fprintf(stderr, "[%5.1fs] %-7s %9.0f msg/s %8.2f MB/s  open %llu  errors %llu\n",
                (double)(now - t_start) / 1e9, ph, (double)sec_msgs / dt,
                (double)sec_msgs * (double)o.size / dt / 1e6, (unsigned long long)n_open,
                (unsigned long long)n_errors);
      else
        fprintf(stderr, "[%5.1fs] %-7s %9.0f handshakes/s  open %llu  pending %llu  errors %llu\n",
                (double)(now - t_start) / 1e9, ph, (double)sec_hs / dt, (unsigned long long)n_open,
                (unsigned long long)n_pending, (unsigned long long)n_errors);
      sec_msgs = sec_hs = 0;
      t_last_tick = now;
      t_tick = now + 1000000000ull;
    }
  }

  if (o.mode == MODE_IDLE) {
    secs = (double)(now_ns() - (t_phase ? t_phase : t_start)) / 1e9;
    if (phase == PH_SETUP) {
      fprintf(stderr, "loadgen: stopped with %llu of %d connections up\n",
              (unsigned long long)n_open, o.conns);
      return 1;
    }
    printf("held %d idle connections for %.1f s, %llu errors\n", o.conns, secs,
           (unsigned long long)n_errors);
    return n_errors ? 1 : 0;
  }
  if (phase != PH_DONE) { /* interrupted: report what was measured */
    secs = (double)(now_ns() - t_phase) / 1e9;
    cpu_self = self_cpu_s() - self0;
    if (secs <= 0) return 1;
  }
  report(secs, cpu_server, cpu_self);
  return n_errors ? 1 : 0;
}
