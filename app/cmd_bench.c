/* duplex bench: a WebSocket load generator on the library's own client.
 *
 * Modes:
 *   echo (default)   N connections each keep K messages in flight against an
 *                    echo server; throughput and round-trip latency.
 *   --rate R         open-loop: R messages/s in total, spread over the
 *                    connections; latency is measured from when each message
 *                    was due, so a stalled server is not hidden
 *                    (coordinated omission).
 *   --handshakes     connection storm: N at a time, each connects, upgrades,
 *                    closes, and is replaced; handshakes per second.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "duplex/client.h"
#include "duplex/log.h"
#include "duplex/loop.h"

static const char usage[] =
    "usage: duplex bench [OPTIONS] URL\n"
    "\n"
    "Load-test a WebSocket echo server (for example `duplex echo`) and print\n"
    "messages per second, MB/s and round-trip latency percentiles. A progress\n"
    "line goes to stderr every second; the summary goes to stdout.\n"
    "\n"
    "Options:\n"
    "  -c, --connections N   concurrent connections (default 100)\n"
    "  -s, --size SIZE       message size, at least 16 (default 16)\n"
    "  -k, --inflight K      messages in flight per connection (default 1)\n"
    "  -d, --duration T      measured time (default 10s)\n"
    "  -w, --warmup T        unmeasured time first (default 1s)\n"
    "  -r, --rate R          open loop: R messages/s in total instead of keeping\n"
    "                        K in flight; latency counts from each message's due time\n"
    "      --handshakes      connection storm: connect, upgrade, close, repeat\n"
    "      --text            send text messages (default binary)\n"
    "      --deflate         offer permessage-deflate\n"
    "      --ca FILE, --insecure   TLS options for wss:// URLs\n"
    "      --json            print the summary as one JSON object\n"
    "  -h, --help            show this help\n"
    "\n"
    "Example:\n"
    "  duplex echo --port 9001 &\n"
    "  duplex bench ws://127.0.0.1:9001/ -c 100 -k 8 -d 5s\n";

/* ---- a log-linear latency histogram: 64 sub-buckets per power of two
 * (about 1.6% resolution), nanoseconds up to ~2^40 ---- */

#define SUB 64
#define POW 40
typedef struct {
  uint64_t count[POW * SUB];
  uint64_t n, max;
} histogram;

static unsigned bucket_of(uint64_t v) {
  if (v < SUB) return (unsigned)v;
  unsigned msb = 63 - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - 6; /* keep 6 bits below the top one */
  unsigned b = (msb - 5) * SUB + (unsigned)((v >> shift) & (SUB - 1));
  return b < POW * SUB ? b : POW * SUB - 1;
}

static uint64_t value_of(unsigned b) {
  if (b < SUB) return b;
  unsigned msb = b / SUB + 5, sub = b % SUB;
  return ((uint64_t)(SUB | sub) << (msb - 6)) + ((uint64_t)1 << (msb - 6)) / 2;
}

static void hist_add(histogram *h, uint64_t v) {
  h->count[bucket_of(v)]++;
  h->n++;
  if (v > h->max) h->max = v;
}

static uint64_t hist_pct(const histogram *h, double p) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
  for (unsigned b = 0; b < POW * SUB; b++) {
    seen += h->count[b];
    if (seen >= want) return value_of(b) < h->max ? value_of(b) : h->max;
  }
  return h->max;
}

/* ---- state ---- */

typedef struct bench bench;

typedef struct conn {
  bench *b;
  dx_client *client;
  int inflight;
} conn;

struct bench {
  dx_loop *loop;
  const char *url;
  dx_client_opts copts;
  dx_ws_handlers handlers;
  int nconns, inflight, size;
  bool text, storm, json;
  double rate;
  int duration_ms, warmup_ms;
  conn *conns;
  uint8_t *payload;
  uint64_t t_start, t_measure, t_end; /* ns */
  bool measuring, stopping;
  histogram hist;
  uint64_t msgs, bytes, handshakes, errors, opened;
  uint64_t last_msgs, last_hs;
  double rate_credit;
  int rr; /* round robin for open-loop sends */
  dx_timer tick, rate_timer;
  int seconds;
  char last_error[200];
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The payload starts with the send (or due) time: 16 hex digits, so text
 * mode stays valid UTF-8. */
static void stamp(uint8_t *p, uint64_t t) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, t >>= 4) p[i] = (uint8_t)hex[t & 15];
}

static uint64_t read_stamp(const uint8_t *p, size_t n) {
  if (n < 16) return 0;
  uint64_t t = 0;
  for (int i = 0; i < 16; i++) {
    uint8_t c = p[i];
    t = t << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return t;
}

static void send_one(bench *b, conn *c, uint64_t due) {
  dx_ws *ws = dx_client_ws(c->client);
  if (!ws) return;
  stamp(b->payload, due);
  if (dx_ws_send(ws, b->text ? DX_OP_TEXT : DX_OP_BINARY, b->payload, (size_t)b->size) >= 0)
    c->inflight++;
}

static void start_client(bench *b, conn *c);

static void on_open(dx_ws *ws, void *user) {
  conn *c = user;
  bench *b = c->b;
  b->opened++;
  if (b->storm) {
    if (b->measuring) b->handshakes++;
    dx_ws_close(ws, 1000, NULL);
    return;
  }
  if (b->rate == 0)
    for (int i = 0; i < b->inflight; i++) send_one(b, c, now_ns());
}

static void on_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  (void)ws;
  (void)op;
  conn *c = user;
  bench *b = c->b;
  c->inflight--;
  uint64_t t = now_ns(), sent = read_stamp(data, len);
  if (b->measuring && sent) {
    hist_add(&b->hist, t - sent);
    b->msgs++;
    b->bytes += len;
  }
  if (b->rate == 0 && !b->stopping) send_one(b, c, t);
}

static void on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  (void)err;
  conn *c = user;
  if (c->b->stopping) return;
  c->b->errors++;
  snprintf(c->b->last_error, sizeof c->b->last_error, "%s", msg);
}

static void on_done(dx_client *client, void *user) {
  conn *c = user;
  bench *b = c->b;
  dx_client_free(client);
  c->client = NULL;
  c->inflight = 0;
  /* The storm replaces each finished connection; echo mode reconnects a
   * dropped one so the load stays at N. */
  if (!b->stopping) start_client(b, c);
}

static void start_client(bench *b, conn *c) {
  const char *why = NULL;
  c->client = dx_connect(b->loop, b->url, &b->copts, &b->handlers, c, &why);
  if (!c->client) {
    fprintf(stderr, "duplex bench: %s: %s\n", b->url, why ? why : "cannot connect");
    exit(2);
  }
}

static void finish_run(bench *b) {
  b->stopping = true;
  b->measuring = false;
  b->t_end = now_ns();
  for (int i = 0; i < b->nconns; i++)
    if (b->conns[i].client) {
      dx_client_free(b->conns[i].client);
      b->conns[i].client = NULL;
    }
  dx_timer_stop(&b->tick);
  dx_timer_stop(&b->rate_timer);
  dx_loop_stop(b->loop);
}

static void on_tick(dx_timer *t) {
  bench *b = dx_container_of(t, bench, tick);
  uint64_t now = now_ns();
  if (!b->measuring && !b->stopping && now >= b->t_measure) {
    b->measuring = true;
    b->t_measure = now;
    b->last_msgs = b->last_hs = 0;
    return;
  }
  if (!b->measuring) return;
  b->seconds++;
  uint64_t dm = b->msgs - b->last_msgs, dh = b->handshakes - b->last_hs;
  b->last_msgs = b->msgs;
  b->last_hs = b->handshakes;
  if (b->storm)
    fprintf(stderr, "duplex bench: %3ds  %8llu handshakes/s  errors %llu\n", b->seconds,
            (unsigned long long)dh, (unsigned long long)b->errors);
  else
    fprintf(stderr, "duplex bench: %3ds  %9llu msg/s  p50 %.0f us  p99 %.0f us  errors %llu\n",
            b->seconds, (unsigned long long)dm, hist_pct(&b->hist, 50) / 1e3,
            hist_pct(&b->hist, 99) / 1e3, (unsigned long long)b->errors);
  if (now - b->t_measure >= (uint64_t)b->duration_ms * 1000000u) finish_run(b);
}

/* Open loop: every millisecond, send what the rate says is due. */
static void on_rate(dx_timer *t) {
  bench *b = dx_container_of(t, bench, rate_timer);
  static uint64_t last;
  uint64_t now = now_ns();
  if (!last) last = now;
  b->rate_credit += b->rate * (double)(now - last) / 1e9;
  uint64_t step = b->rate > 0 ? (uint64_t)(1e9 / b->rate) : 0;
  uint64_t due = last;
  last = now;
  while (b->rate_credit >= 1.0) {
    b->rate_credit -= 1.0;
    conn *c = &b->conns[b->rr++ % b->nconns];
    due += step;
    /* The ticker's own 1 ms granularity is not the server's fault; any
     * lateness beyond it (a stalled loop) counts against the latency. */
    uint64_t from = due + 1000000u < now ? due : now;
    send_one(b, c, from);
  }
}

static void on_signal(dx_loop *loop, int signo, void *arg) {
  (void)loop;
  (void)signo;
  finish_run(arg);
}

static void report(bench *b) {
  double secs = (double)(b->t_end - b->t_measure) / 1e9;
  if (secs <= 0) secs = 1e-9;
  if (b->json) {
    printf(
        "{\"mode\":\"%s\",\"connections\":%d,\"size\":%d,\"inflight\":%d,\"seconds\":%.3f,"
        "\"messages\":%llu,\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f,\"handshakes_per_sec\":%.1f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"errors\":%llu}\n",
        b->storm  ? "handshakes"
        : b->rate ? "rate"
                  : "echo",
        b->nconns, b->size, b->inflight, secs, (unsigned long long)b->msgs, (double)b->msgs / secs,
        (double)b->bytes / secs / 1e6, (double)b->handshakes / secs, hist_pct(&b->hist, 50) / 1e3,
        hist_pct(&b->hist, 99) / 1e3, hist_pct(&b->hist, 99.9) / 1e3, (double)b->hist.max / 1e3,
        (unsigned long long)b->errors);
    return;
  }
  printf("url          %s\n", b->url);
  if (b->storm) {
    printf("mode         connection storm, %d at a time\n", b->nconns);
    printf("handshakes   %llu in %.2f s = %.0f/s\n", (unsigned long long)b->handshakes, secs,
           (double)b->handshakes / secs);
  } else {
    printf("mode         %s, %d connections x %d bytes", b->rate ? "open loop" : "echo", b->nconns,
           b->size);
    if (b->rate)
      printf(" at %.0f msg/s\n", b->rate);
    else
      printf(" x %d in flight\n", b->inflight);
    printf("messages     %llu in %.2f s = %.0f msg/s, %.2f MB/s\n", (unsigned long long)b->msgs,
           secs, (double)b->msgs / secs, (double)b->bytes / secs / 1e6);
    printf("latency      p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n",
           hist_pct(&b->hist, 50) / 1e3, hist_pct(&b->hist, 99) / 1e3,
           hist_pct(&b->hist, 99.9) / 1e3, (double)b->hist.max / 1e3);
  }
  printf("errors       %llu%s%s\n", (unsigned long long)b->errors, b->errors ? " (last: " : "",
         b->errors ? b->last_error : "");
  if (b->errors) printf(")\n");
}

int cmd_bench(int argc, char **argv) {
  cli_set_usage(usage);
  static bench b; /* large (histogram): not on the stack */
  memset(&b, 0, sizeof b);
  b.nconns = 100;
  b.inflight = 1;
  b.size = 16;
  b.duration_ms = 10000;
  b.warmup_ms = 1000;
  dx_log_set_level(DX_LOG_WARN);
  enum { OPT_HANDSHAKES = 1000, OPT_TEXT, OPT_DEFLATE, OPT_CA, OPT_INSECURE, OPT_JSON };
  static const struct option opts[] = {
      {"connections", required_argument, 0, 'c'},
      {"size", required_argument, 0, 's'},
      {"inflight", required_argument, 0, 'k'},
      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'w'},
      {"rate", required_argument, 0, 'r'},
      {"help", no_argument, 0, 'h'},
      {"handshakes", no_argument, 0, OPT_HANDSHAKES},
      {"text", no_argument, 0, OPT_TEXT},
      {"deflate", no_argument, 0, OPT_DEFLATE},
      {"ca", required_argument, 0, OPT_CA},
      {"insecure", no_argument, 0, OPT_INSECURE},
      {"json", no_argument, 0, OPT_JSON},
      {0, 0, 0, 0},
  };
  int opt, rc = -1, ms;
  long v;
  size_t sz;
  optind = 1;
  opterr = 0;
  while (rc < 0 && (opt = getopt_long(argc, argv, ":c:s:k:d:w:r:h", opts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      if (!cli_parse_int(optarg, 1, 1000000, &v))
        rc = cli_usage_error("bench", "bad -c '%s'", optarg);
      else
        b.nconns = (int)v;
      break;
    case 's':
      if (!cli_parse_size(optarg, &sz) || sz < 16 || sz > (64u << 20))
        rc = cli_usage_error("bench", "bad size '%s' (16 bytes to 64M)", optarg);
      else
        b.size = (int)sz;
      break;
    case 'k':
      if (!cli_parse_int(optarg, 1, 100000, &v))
        rc = cli_usage_error("bench", "bad -k '%s'", optarg);
      else
        b.inflight = (int)v;
      break;
    case 'd':
    case 'w':
      if (!cli_parse_ms(optarg, &ms) || (opt == 'd' && ms < 0))
        rc = cli_usage_error("bench", "bad duration '%s'", optarg);
      else if (opt == 'd')
        b.duration_ms = ms;
      else
        b.warmup_ms = ms < 0 ? 0 : ms;
      break;
    case 'r': {
      char *end;
      b.rate = strtod(optarg, &end);
      if (*end || b.rate <= 0) rc = cli_usage_error("bench", "bad rate '%s'", optarg);
      break;
    }
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      break;
    case OPT_HANDSHAKES:
      b.storm = true;
      break;
    case OPT_TEXT:
      b.text = true;
      break;
    case OPT_DEFLATE:
      b.copts.deflate.enable = true;
      break;
    case OPT_CA:
      b.copts.tls.ca_file = optarg;
      break;
    case OPT_INSECURE:
      b.copts.tls.insecure = true;
      break;
    case OPT_JSON:
      b.json = true;
      break;
    case ':':
      rc = cli_usage_error("bench", "option '%s' needs a value", argv[optind - 1]);
      break;
    default:
      rc = cli_usage_error("bench", "unknown option '%s'", argv[optind - 1]);
      break;
    }
  }
  if (rc < 0 && optind != argc - 1)
    rc = cli_usage_error("bench", optind >= argc ? "a URL is required" : "only one URL, please");
  if (rc >= 0) return rc;
  b.url = argv[optind];
  dx_url u;
  const char *why;
  if (dx_url_parse(b.url, &u, &why)) return cli_usage_error("bench", "%s: %s", b.url, why);

  signal(SIGPIPE, SIG_IGN);
  b.loop = dx_loop_new(NULL);
  b.conns = calloc((size_t)b.nconns, sizeof *b.conns);
  b.payload = malloc((size_t)b.size);
  if (!b.loop || !b.conns || !b.payload) return 1;
  memset(b.payload, 'x', (size_t)b.size);
  b.copts.max_message = (size_t)b.size + 1024;
  b.copts.connect_timeout = 10000;
  b.copts.on_done = on_done;
  b.handlers = (dx_ws_handlers){.on_open = on_open, .on_message = on_message, .on_error = on_error};
  dx_loop_signal(b.loop, SIGINT, on_signal, &b);
  b.t_start = now_ns();
  b.t_measure = b.t_start + (uint64_t)b.warmup_ms * 1000000u;
  for (int i = 0; i < b.nconns; i++) {
    b.conns[i].b = &b;
    start_client(&b, &b.conns[i]);
  }
  dx_timer_init(b.loop, &b.tick, on_tick);
  dx_timer_init(b.loop, &b.rate_timer, on_rate);
  dx_timer_start(&b.tick, b.warmup_ms ? (uint64_t)b.warmup_ms : 1000, 1000);
  if (!b.warmup_ms) b.measuring = true;
  if (b.rate > 0) dx_timer_start(&b.rate_timer, 1, 1);
  fprintf(stderr, "duplex bench: %s, %d connections, warmup %d ms, measuring %d ms\n", b.url,
          b.nconns, b.warmup_ms, b.duration_ms);
  dx_loop_run(b.loop);
  report(&b);
  dx_loop_run_once(b.loop, 0);
  dx_loop_free(b.loop);
  free(b.conns);
  free(b.payload);
  return b.msgs || b.handshakes ? 0 : 1;
}
