/* duplex connect: an interactive / scriptable WebSocket client. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "duplex/client.h"
#include "duplex/log.h"
#include "duplex/loop.h"

static const char usage[] =
    "usage: duplex connect [OPTIONS] URL\n"
    "\n"
    "Connect to a WebSocket server (ws:// or wss://). Each line read from stdin is sent as\n"
    "a text message; each message received is printed on stdout, one per line.\n"
    "Status lines (connected, closed, reconnecting) go to stderr.\n"
    "\n"
    "Options:\n"
    "  -H, --header 'NAME: VALUE'  add a request header (repeatable), e.g.\n"
    "                              -H 'Authorization: Bearer TOKEN'\n"
    "  -s, --subprotocol NAME      offer a subprotocol (repeatable)\n"
    "      --origin ORIGIN         send an Origin header\n"
    "  -n, --count N               exit after receiving N messages\n"
    "      --wait-close            at end of input, wait for the server to close\n"
    "                              (default: close with 1000 once input ends and,\n"
    "                              with --count, N messages arrived)\n"
    "      --binary                send stdin as binary messages, bytes unaltered (no\n"
    "                              line splitting): each read of stdin, up to 64 KiB,\n"
    "                              is one message (a pipe delivers what its writer\n"
    "                              wrote, a file comes in 64 KiB pieces)\n"
    "      --binary-as FORMAT      print received binary as hex (default), base64\n"
    "                              or raw\n"
    "      --ping-interval T       ping the server this often; no answer within\n"
    "                              the same time counts as a dead connection\n"
    "      --reconnect             reconnect with exponential backoff when the\n"
    "                              connection drops\n"
    "      --timeout T             connect + handshake timeout (default 10s; 0 or off:\n"
    "                              wait as long as it takes)\n"
    "      --proxy URL             go through an HTTP CONNECT proxy,\n"
    "                              http://[user:pass@]host:port ('' for none). Without\n"
    "                              it, http_proxy (ws://) or https_proxy (wss://) is\n"
    "                              used, or HTTP_PROXY / HTTPS_PROXY, except for hosts\n"
    "                              in no_proxy / NO_PROXY (names, .domains, IPs, CIDR\n"
    "                              ranges, :port, or *) and loopback addresses\n"
    "      --max-message SIZE      largest message accepted (default 16M)\n"
    "      --deflate               offer permessage-deflate compression\n"
    "      --ca FILE               trust this CA (PEM) for wss:// instead of the system's\n"
    "      --insecure              do not verify the server's certificate (testing only)\n"
    "      --cert FILE, --key FILE client certificate and key for mutual TLS\n"
    "      --deflate-mode MODE     shared (default) or takeover (see duplex echo --help)\n"
    "      --deflate-window-bits N 8-15: offer client_max_window_bits=N and compress\n"
    "                              with that window (takeover mode; 8: send uncompressed)\n"
    "  -q, --quiet                 no status lines on stderr, only the reason of a\n"
    "                              failure (one line, at exit)\n"
    "      --log-level LEVEL       error, warn (default), info or debug\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Exit status: 0 after a clean close (1000, 1001 or no code) and after SIGINT or\n"
    "SIGTERM (which close with 1000, or stop connecting or waiting to reconnect), 1\n"
    "when the connection failed or closed with another code, 2 for usage errors.\n"
    "\n"
    "Example:\n"
    "  echo hi | duplex connect ws://127.0.0.1:9001/ -n 1      # prints hi\n";

typedef struct app app;
typedef struct line {
  struct line *next;
  size_t len;
  char data[];
} line;

typedef struct app {
  dx_loop *loop;
  dx_client *client;
  line *head, *tail; /* input waiting for an open connection */
  bool input_done;
  bool binary;
  int binary_as; /* 0 hex, 1 base64, 2 raw */
  long count;    /* exit after this many messages (0 = no limit) */
  long received;
  bool wait_close;
  bool quiet;
  bool closing;
  bool reconnect;
  bool open;        /* the current attempt reached on_open */
  bool blocked;     /* the connection is not keeping up: wait for on_drain */
  bool stdin_watch; /* stdin is being watched (a pipe or tty, before EOF) */
  bool interrupted; /* SIGINT/SIGTERM: exit 0 in every phase */
  int exit_status;
  const char *url;
  char failure[600]; /* the last failure, printed at exit with -q */
} app;

/* One client per process; the stdin watcher reaches it here. */
static app the_app;

static void status(app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status(app *a, const char *fmt, ...) {
  if (a->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("duplex: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void finish(app *a, int code, const char *reason) {
  if (a->closing) return;
  a->closing = true;
  if (dx_client_close(a->client, (unsigned)code, reason) != 0 || dx_client_done(a->client))
    dx_loop_stop(a->loop);
}

/* Send queued input if connected; close when input is over and nothing
 * else is awaited. */
static void set_stdin_watch(app *a, bool on);

/* Send queued input while the connection keeps up: once it reports
 * DX_BUFFERED, stop (and stop reading stdin) until on_drain, so a fast
 * producer neither grows memory nor trips the send cap. */
static void pump(app *a) {
  while (a->head && !a->blocked && dx_client_ws(a->client)) {
    line *l = a->head;
    int rc = dx_client_send(a->client, a->binary ? DX_OP_BINARY : DX_OP_TEXT, l->data, l->len);
    if (rc < 0) break;
    a->head = l->next;
    if (!a->head) a->tail = NULL;
    free(l);
    if (rc == DX_BUFFERED) a->blocked = true;
  }
  set_stdin_watch(a, !a->blocked);
  if (a->input_done && !a->head && !a->wait_close && dx_client_ws(a->client) &&
      (a->count == 0 || a->received >= a->count))
    finish(a, 1000, NULL);
}

static void on_drain(dx_ws *ws, void *user) {
  (void)ws;
  app *a = user;
  a->blocked = false;
  pump(a);
}

static void print_binary(app *a, const unsigned char *p, size_t n) {
  if (a->binary_as == 2) {
    fwrite(p, 1, n, stdout);
  } else if (a->binary_as == 1) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
      unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                   (i + 2 < n ? p[i + 2] : 0);
      putchar(b64[v >> 18 & 63]);
      putchar(b64[v >> 12 & 63]);
      putchar(i + 1 < n ? b64[v >> 6 & 63] : '=');
      putchar(i + 2 < n ? b64[v & 63] : '=');
    }
  } else {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  }
  putchar('\n');
}

static void on_open(dx_ws *ws, void *user) {
  app *a = user;
  const char *proto = dx_ws_protocol(ws);
  a->open = true;
  status(a, "connected to %s%s%s", a->url, proto ? " with subprotocol " : "", proto ? proto : "");
  pump(a);
}

static void on_message(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user) {
  (void)ws;
  app *a = user;
  if (opcode == DX_OP_TEXT) {
    fwrite(data, 1, len, stdout);
    putchar('\n');
  } else {
    print_binary(a, data, len);
  }
  fflush(stdout);
  a->received++;
  if (a->count && a->received >= a->count && (a->input_done || !a->head)) finish(a, 1000, NULL);
}

static void on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  (void)err;
  app *a = user;
  snprintf(a->failure, sizeof a->failure, "error: %s", msg);
  if (!a->quiet) fprintf(stderr, "duplex: %s\n", a->failure);
}

static void on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                     void *user) {
  (void)ws;
  app *a = user;
  /* An attempt that never opened was already reported by on_error: one
   * line per failure ("error: ... connection refused"), no "closed: 1006". */
  if (a->open)
    status(a, "closed: code %d%s%.*s%s", code, reason_len ? " reason \"" : "", (int)reason_len,
           reason, reason_len ? "\"" : "");
  bool ok = clean && (code == 1000 || code == 1001 || code == 1005);
  if (!ok && a->open)
    snprintf(a->failure, sizeof a->failure, "closed: code %d%s%.*s%s", code,
             reason_len ? " reason \"" : "", (int)reason_len, reason, reason_len ? "\"" : "");
  a->open = false;
  /* Interrupted: the user asked to stop, whatever the phase (connecting,
   * open or waiting to reconnect), so the status does not depend on it. */
  a->exit_status = ok || a->interrupted ? 0 : 1;
  if (a->exit_status == 0) a->failure[0] = 0;
}

static void on_reconnecting(dx_client *c, int attempt, int delay_ms, void *user) {
  (void)c;
  app *a = user;
  status(a, "reconnecting in %d ms (attempt %d)", delay_ms, attempt);
}

/* ---- stdin: watched by the loop when it is a pipe, tty or socket; a
 * regular file (or /dev/null), which epoll refuses, is read at once. ---- */

static char *partial; /* an incomplete last line */
static size_t partial_len;
static dx_io stdin_io;

static void add_message(app *a, const char *p, size_t n) {
  line *l = malloc(sizeof *l + n + 1);
  if (!l) return;
  l->next = NULL;
  l->len = n;
  memcpy(l->data, p, n);
  l->data[n] = 0;
  if (a->tail)
    a->tail->next = l;
  else
    a->head = l;
  a->tail = l;
}

static void add_line(app *a, const char *p, size_t n) {
  if (n && p[n - 1] == '\r') n--;
  add_message(a, p, n);
}

/* Split buf into lines, keeping an unfinished one for later; with
 * --binary, each read is one message, bytes as they came. */
static void take_input(app *a, const char *buf, size_t n) {
  if (a->binary) {
    add_message(a, buf, n);
    return;
  }
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] != '\n') continue;
    if (partial_len) {
      char *joined = realloc(partial, partial_len + i - start);
      if (!joined) return;
      memcpy(joined + partial_len, buf + start, i - start);
      add_line(a, joined, partial_len + i - start);
      free(joined);
      partial = NULL;
      partial_len = 0;
    } else {
      add_line(a, buf + start, i - start);
    }
    start = i + 1;
  }
  if (start < n) {
    char *np = realloc(partial, partial_len + n - start);
    if (!np) return;
    memcpy(np + partial_len, buf + start, n - start);
    partial = np;
    partial_len += n - start;
  }
}

static void input_eof(app *a) {
  if (partial_len) add_line(a, partial, partial_len);
  free(partial);
  partial = NULL;
  partial_len = 0;
  a->input_done = true;
}

static void set_stdin_watch(app *a, bool on) {
  if (!a->stdin_watch || a->input_done) return;
  dx_io_start(&stdin_io, on ? DX_READABLE : 0);
}

static void on_stdin(dx_io *io, unsigned events) {
  (void)events;
  app *a = &the_app;
  char buf[65536];
  /* Level-triggered readiness: one read() cannot block. */
  ssize_t n = read(0, buf, sizeof buf);
  if (n > 0) {
    take_input(a, buf, (size_t)n);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    dx_io_stop(io);
    input_eof(a);
  }
  pump(a);
}

static void start_input(app *a) {
  struct stat st;
  bool pollable = fstat(0, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
                  (!S_ISCHR(st.st_mode) || isatty(0));
  dx_io_init(a->loop, &stdin_io, 0, on_stdin);
  if (pollable && dx_io_start(&stdin_io, DX_READABLE) == 0) {
    a->stdin_watch = true;
    return;
  }
  char buf[65536];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) take_input(a, buf, (size_t)n);
  input_eof(a);
}

static void on_signal(dx_loop *loop, int signo, void *arg) {
  (void)signo;
  app *a = arg;
  if (a->closing) dx_loop_stop(loop);
  a->wait_close = false;
  a->interrupted = true;
  a->exit_status = 0;
  finish(a, 1000, NULL);
}

static void on_done(dx_client *c, void *user) {
  (void)c;
  app *a = user;
  dx_loop_stop(a->loop);
}

/* ---- proxy from the environment ---- */

static bool loopback_host(const dx_url *u) {
  unsigned char ip[16];
  size_t n = strlen(u->host);
  if (strcasecmp(u->host, "localhost") == 0 || strcasecmp(u->host, "localhost.") == 0 ||
      (n > 10 && strcasecmp(u->host + n - 10, ".localhost") == 0))
    return true;
  if (inet_pton(AF_INET, u->host, ip) == 1) return ip[0] == 127;
  return inet_pton(AF_INET6, u->host, ip) == 1 &&
         memcmp(ip, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
}

/* Whether `host` is in CIDR range `net` ("10.0.0.0/8", "fd00::/8"). */
static bool in_cidr(const char *host, const char *net, const char *slash) {
  char addr[64];
  unsigned char h[16], nb[16];
  if ((size_t)(slash - net) >= sizeof addr) return false;
  memcpy(addr, net, (size_t)(slash - net));
  addr[slash - net] = 0;
  char *end;
  long bits = strtol(slash + 1, &end, 10);
  int af = strchr(addr, ':') ? AF_INET6 : AF_INET;
  int max = af == AF_INET ? 32 : 128;
  if (*end || end == slash + 1 || bits < 0 || bits > max) return false;
  if (inet_pton(af, addr, nb) != 1 || inet_pton(af, host, h) != 1) return false;
  for (long i = 0; i < bits; i++)
    if ((h[i / 8] ^ nb[i / 8]) & (0x80 >> (i % 8))) return false;
  return true;
}

/* no_proxy: entries separated by commas or spaces, each "*", a name
 * (matching itself and its subdomains; a leading "." or "*." is
 * ignored), an IP address or CIDR range, optionally with ":port"
 * (IPv6 in brackets then). */
static bool no_proxy_match(const dx_url *u, const char *list) {
  char host[256];
  snprintf(host, sizeof host, "%s", u->host);
  size_t hl = strlen(host);
  if (hl && host[hl - 1] == '.') host[--hl] = 0;
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ", \t");
    char e[300];
    if (n && n < sizeof e) {
      memcpy(e, p, n);
      e[n] = 0;
      char *name = e;
      long port = 0;
      char *colon = strrchr(e, ':');
      if (e[0] == '[') { /* [v6] or [v6]:port */
        char *close = strchr(e, ']');
        if (close && close[1] == ':') port = strtol(close + 2, NULL, 10);
        if (close) *close = 0;
        name = e + 1;
      } else if (colon && colon == strchr(e, ':')) { /* one colon: name:port */
        port = strtol(colon + 1, NULL, 10);
        *colon = 0;
      }
      if (port && port != u->port) goto next;
      if (strcmp(name, "*") == 0) return true;
      char *slash = strchr(name, '/');
      if (slash) {
        if (in_cidr(host, name, slash)) return true;
        goto next;
      }
      unsigned char eip[16], hip[16];
      int af = strchr(name, ':') ? AF_INET6 : AF_INET;
      if (inet_pton(af, name, eip) == 1) {
        if (inet_pton(af, host, hip) == 1 && memcmp(eip, hip, af == AF_INET6 ? 16 : 4) == 0)
          return true;
        goto next;
      }
      if (name[0] == '*' && name[1] == '.') name++;
      if (name[0] == '.') name++;
      size_t nl = strlen(name);
      if (nl && name[nl - 1] == '.') name[--nl] = 0;
      if (nl && (strcasecmp(host, name) == 0 ||
                 (hl > nl && host[hl - nl - 1] == '.' && strcasecmp(host + hl - nl, name) == 0)))
        return true;
    }
  next:
    p += n;
    p += strspn(p, ", \t");
  }
  return false;
}

/* The proxy for `url` from the environment, or NULL; *var names the
 * variable it came from. */
static const char *env_proxy(const char *url, const char **var) {
  dx_url u;
  if (dx_url_parse(url, &u, NULL)) return NULL; /* dx_connect will say why */
  const char *names[2] = {u.tls ? "https_proxy" : "http_proxy",
                          u.tls ? "HTTPS_PROXY" : "HTTP_PROXY"};
  const char *proxy = NULL;
  for (int i = 0; i < 2 && !proxy; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) {
      proxy = v;
      *var = names[i];
    }
  }
  if (!proxy || loopback_host(&u)) return NULL;
  const char *np = getenv("no_proxy");
  if (!np || !*np) np = getenv("NO_PROXY");
  if (np && no_proxy_match(&u, np)) return NULL;
  return proxy;
}

int cmd_connect(int argc, char **argv) {
  cli_set_usage(usage);
  app *a = &the_app;
  memset(a, 0, sizeof *a);
  a->exit_status = 1;
  dx_log_set_level(DX_LOG_WARN);
  dx_client_opts o = {0};
  const char *protocols[17] = {0};
  bool proxy_given = false;
  const char *proxy_var = NULL;
  int nprot = 0;
  char *headers = NULL;
  size_t hlen = 0;
  enum {
    OPT_ORIGIN = 1000,
    OPT_WAIT_CLOSE,
    OPT_BINARY,
    OPT_BINARY_AS,
    OPT_PING,
    OPT_RECONNECT,
    OPT_TIMEOUT,
    OPT_PROXY,
    OPT_MAX_MESSAGE,
    OPT_LOG_LEVEL,
    OPT_DEFLATE,
    OPT_DEFLATE_MODE,
    OPT_DEFLATE_WINDOW, /* cli_parse_deflate: OPT_DEFLATE + 2 */
    OPT_CA,
    OPT_INSECURE,
    OPT_CERT,
    OPT_KEY,
  };
  static const struct option opts[] = {
      {"header", required_argument, 0, 'H'},
      {"subprotocol", required_argument, 0, 's'},
      {"count", required_argument, 0, 'n'},
      {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'h'},
      {"origin", required_argument, 0, OPT_ORIGIN},
      {"wait-close", no_argument, 0, OPT_WAIT_CLOSE},
      {"binary", no_argument, 0, OPT_BINARY},
      {"binary-as", required_argument, 0, OPT_BINARY_AS},
      {"ping-interval", required_argument, 0, OPT_PING},
      {"reconnect", no_argument, 0, OPT_RECONNECT},
      {"timeout", required_argument, 0, OPT_TIMEOUT},
      {"proxy", required_argument, 0, OPT_PROXY},
      {"max-message", required_argument, 0, OPT_MAX_MESSAGE},
      {"log-level", required_argument, 0, OPT_LOG_LEVEL},
      {"deflate", no_argument, 0, OPT_DEFLATE},
      {"deflate-mode", required_argument, 0, OPT_DEFLATE_MODE},
      {"deflate-window-bits", required_argument, 0, OPT_DEFLATE_WINDOW},
      {"ca", required_argument, 0, OPT_CA},
      {"insecure", no_argument, 0, OPT_INSECURE},
      {"cert", required_argument, 0, OPT_CERT},
      {"key", required_argument, 0, OPT_KEY},
      {0, 0, 0, 0},
  };
  int opt, rc = -1;
  long v;
  int ms;
  optind = 1;
  opterr = 0;
  while (rc < 0 && (opt = getopt_long(argc, argv, ":H:s:n:qh", opts, NULL)) != -1) {
    switch (opt) {
    case 'H': {
      const char *colon = strchr(optarg, ':');
      if (!colon || colon == optarg || strpbrk(optarg, "\r\n")) {
        rc = cli_usage_error("connect", "bad header '%s' (expected 'Name: value')", optarg);
        break;
      }
      size_t n = strlen(optarg);
      char *nh = realloc(headers, hlen + n + 3);
      if (!nh) return 1;
      headers = nh;
      memcpy(headers + hlen, optarg, n);
      memcpy(headers + hlen + n, "\r\n", 3);
      hlen += n + 2;
      break;
    }
    case 's':
      if (nprot >= 16)
        rc = cli_usage_error("connect", "at most 16 subprotocols");
      else
        protocols[nprot++] = optarg;
      break;
    case 'n':
      if (!cli_parse_int(optarg, 1, 1000000000, &v))
        rc = cli_usage_error("connect", "bad count '%s'", optarg);
      else
        a->count = v;
      break;
    case 'q':
      a->quiet = true;
      break;
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      break;
    case OPT_ORIGIN:
      o.origin = optarg;
      break;
    case OPT_WAIT_CLOSE:
      a->wait_close = true;
      break;
    case OPT_BINARY:
      a->binary = true;
      break;
    case OPT_BINARY_AS:
      if (!strcmp(optarg, "hex"))
        a->binary_as = 0;
      else if (!strcmp(optarg, "base64"))
        a->binary_as = 1;
      else if (!strcmp(optarg, "raw"))
        a->binary_as = 2;
      else
        rc = cli_usage_error("connect", "bad --binary-as '%s' (hex, base64, raw)", optarg);
      break;
    case OPT_PING:
      if (!cli_parse_ms(optarg, &ms))
        rc = cli_usage_error("connect", "bad duration '%s'", optarg);
      else
        o.ping_interval = o.pong_timeout = ms;
      break;
    case OPT_RECONNECT:
      o.reconnect = true;
      break;
    case OPT_TIMEOUT: /* 0 or off: -1, no timeout */
      if (!cli_parse_ms(optarg, &ms))
        rc = cli_usage_error("connect", "bad duration '%s'", optarg);
      else
        o.connect_timeout = ms;
      break;
    case OPT_PROXY:
      o.proxy = *optarg ? optarg : NULL;
      proxy_given = true;
      break;
    case OPT_MAX_MESSAGE:
      if (!cli_parse_size(optarg, &o.max_message) || !o.max_message)
        rc = cli_usage_error("connect", "bad size '%s'", optarg);
      break;
    case OPT_LOG_LEVEL: {
      dx_log_level lvl;
      if (dx_log_parse_level(optarg, &lvl) != 0)
        rc = cli_usage_error("connect", "bad log level '%s'", optarg);
      else
        dx_log_set_level(lvl);
      break;
    }
    case OPT_DEFLATE:
    case OPT_DEFLATE_MODE:
    case OPT_DEFLATE_WINDOW:
      rc = cli_parse_deflate("connect", opt - OPT_DEFLATE, optarg, &o.deflate);
      break;
    case OPT_CA:
      o.tls.ca_file = optarg;
      break;
    case OPT_INSECURE:
      o.tls.insecure = true;
      break;
    case OPT_CERT:
      o.tls.cert_file = optarg;
      break;
    case OPT_KEY:
      o.tls.key_file = optarg;
      break;
    case ':':
      rc = cli_usage_error("connect", "option '%s' needs a value", argv[optind - 1]);
      break;
    default:
      rc = cli_usage_error("connect", "unknown option '%s'", argv[optind - 1]);
      break;
    }
  }
  if (rc < 0 && optind != argc - 1)
    rc = cli_usage_error("connect", optind >= argc ? "a URL is required" : "only one URL, please");
  if (rc >= 0) {
    free(headers);
    return rc;
  }
  a->url = argv[optind];
  a->reconnect = o.reconnect;
  if (!proxy_given && (o.proxy = env_proxy(a->url, &proxy_var)))
    status(a, "using the proxy in $%s", proxy_var);
  if (nprot) o.protocols = protocols;
  o.headers = headers;
  o.on_reconnecting = on_reconnecting;
  o.on_done = on_done;

  signal(SIGPIPE, SIG_IGN);
  a->loop = dx_loop_new(NULL);
  if (!a->loop) return 1;
  dx_loop_signal(a->loop, SIGINT, on_signal, a);
  dx_loop_signal(a->loop, SIGTERM, on_signal, a);
  const char *why = NULL;
  a->client = dx_connect(a->loop, a->url, &o,
                         &(dx_ws_handlers){.on_open = on_open,
                                           .on_message = on_message,
                                           .on_error = on_error,
                                           .on_drain = on_drain,
                                           .on_close = on_close},
                         a, &why);
  free(headers);
  if (!a->client) {
    dx_loop_free(a->loop);
    if (proxy_var && why && strstr(why, "proxy"))
      return cli_usage_error("connect", "%s: %s (from $%s)", a->url, why, proxy_var);
    return cli_usage_error("connect", "%s: %s", a->url, why ? why : "cannot connect");
  }
  start_input(a);
  pump(a);
  dx_loop_run(a->loop);
  fflush(stdout);
  dx_io_stop(&stdin_io);
  dx_client_free(a->client);
  dx_loop_run_once(a->loop, 0);
  dx_loop_free(a->loop);
  for (line *l = a->head, *next; l; l = next) {
    next = l->next;
    free(l);
  }
  free(partial);
  /* -q hides status lines, not why it failed. */
  if (a->quiet && a->exit_status != 0 && a->failure[0]) fprintf(stderr, "duplex: %s\n", a->failure);
  return a->exit_status;
}
