/* lws_echo: a WebSocket echo server on libwebsockets (Debian 12 ships 4.1.6),
 * the C peer in bench/compare.sh.
 *
 * One service thread, lws's default event loop, no extensions (so no
 * permessage-deflate), default buffer sizes: what a user of the packaged
 * library gets. Every message is reassembled, whatever its fragmentation,
 * and sent back whole with its opcode, as `duplex echo` and the Node peer do.
 * lws allows one lws_write per WRITEABLE callback, so each connection keeps a
 * FIFO of complete messages and asks for another callback while it is not
 * empty.
 *
 *   lws_echo [--host ADDR] [--port N] [--max-message BYTES]
 *
 * Build: bench/build.sh. Stop with SIGINT or SIGTERM. */
#define _GNU_SOURCE
#include <libwebsockets.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* One message: LWS_PRE bytes of headroom for lws's frame header, then the
 * payload. Slots keep their buffers, so a steady echo allocates nothing. */
struct msg {
  unsigned char *buf;
  size_t len, cap;
  bool binary;
};

/* Per connection; lws allocates it (per_session_data_size) and zeroes it. */
struct session {
  struct msg *q; /* ring of complete messages waiting to be written */
  unsigned head, count, nslots;
  struct msg in; /* the message being received */
};

static volatile sig_atomic_t stop_flag;
static struct lws_context *ctx;
static size_t max_message = 64u << 20;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
  lws_cancel_service(ctx); /* safe from a signal handler: writes to a pipe */
}

static bool msg_reserve(struct msg *m, size_t len) {
  if (LWS_PRE + len <= m->cap) return true;
  size_t cap = m->cap ? m->cap : 256;
  while (cap < LWS_PRE + len) cap *= 2;
  unsigned char *b = realloc(m->buf, cap);
  if (!b) return false;
  m->buf = b;
  m->cap = cap;
  return true;
}

/* Move the finished message into the write FIFO by swapping buffers with a
 * free slot, so no payload is copied twice. */
static bool enqueue(struct session *s) {
  if (s->count == s->nslots) {
    unsigned n = s->nslots ? s->nslots * 2 : 4;
    struct msg *q = calloc(n, sizeof *q);
    if (!q) return false;
    for (unsigned i = 0; i < s->count; i++) q[i] = s->q[(s->head + i) % s->nslots];
    for (unsigned i = s->count; i < s->nslots; i++) q[i] = s->q[(s->head + i) % s->nslots];
    free(s->q);
    s->q = q;
    s->head = 0;
    s->nslots = n;
  }
  struct msg *slot = &s->q[(s->head + s->count) % s->nslots];
  struct msg spare = *slot;
  *slot = s->in;
  s->in = spare;
  s->in.len = 0;
  s->count++;
  return true;
}

static void session_free(struct session *s) {
  for (unsigned i = 0; i < s->nslots; i++) free(s->q[i].buf);
  free(s->q);
  free(s->in.buf);
  memset(s, 0, sizeof *s);
}

static int on_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len) {
  struct session *s = user;
  switch (reason) {
  case LWS_CALLBACK_RECEIVE:
    if (lws_is_first_fragment(wsi)) {
      s->in.len = 0;
      s->in.binary = lws_frame_is_binary(wsi);
    }
    if (s->in.len + len > max_message) return -1; /* lws closes the connection */
    if (!msg_reserve(&s->in, s->in.len + len)) return -1;
    memcpy(s->in.buf + LWS_PRE + s->in.len, in, len);
    s->in.len += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
      if (!enqueue(s)) return -1;
      lws_callback_on_writable(wsi);
    }
    return 0;

  case LWS_CALLBACK_SERVER_WRITEABLE: {
    if (!s->count) return 0;
    struct msg *m = &s->q[s->head];
    int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (n < (int)m->len) return -1; /* lws buffers partial sends itself */
    s->head = (s->head + 1) % s->nslots;
    s->count--;
    if (s->count) lws_callback_on_writable(wsi);
    return 0;
  }

  case LWS_CALLBACK_CLOSED:
    session_free(s);
    return 0;

  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocols protocols[] = {
    /* First in the list, so clients that name no subprotocol get it. */
    {.name = "echo", .callback = on_ws, .per_session_data_size = sizeof(struct session)},
    {0}};

static void usage(FILE *f) {
  fputs("usage: lws_echo [--host ADDR] [--port N] [--max-message BYTES]\n"
        "WebSocket echo server on libwebsockets, one service thread, no extensions.\n"
        "Defaults: 127.0.0.1, port 9003, 64 MiB messages. SIGINT/SIGTERM stop it.\n",
        f);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 9003;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--max-message") && i + 1 < argc) {
      max_message = strtoull(argv[++i], NULL, 10);
    } else {
      usage(stderr);
      return 2;
    }
  }

  /* lws sizes its fd table from the soft limit, so raise it first. */
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host;
  info.protocols = protocols;
  info.gid = -1;
  info.uid = -1;
  /* info.extensions stays NULL: no permessage-deflate. */

  ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "lws_echo: lws_create_context failed\n");
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  fprintf(stderr, "lws_echo: listening on %s:%d (libwebsockets %s)\n", host, port,
          lws_get_library_version());
  while (!stop_flag && lws_service(ctx, 0) >= 0) {
  }
  lws_context_destroy(ctx);
  return 0;
}
