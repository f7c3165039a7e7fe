/* Lifetimes and hostile peers: objects freed inside their own handlers,
 * handler order, split input, ping floods, slow downloads. Each case is a
 * bug a review found; ASan makes the memory ones fail loudly. */
#include <sys/stat.h>

#include "server_helpers.h"

/* ---- a scripted raw server for the client side ---- */

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0) exit(2);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

typedef struct {
  dx_client *c;
  int errors, closes, dones;
  bool free_in_close, free_in_error;
} cstate;

static void cs_error(dx_ws *ws, int err, const char *msg, void *u) {
  (void)ws, (void)err, (void)msg;
  cstate *s = u;
  s->errors++;
  if (s->free_in_error && s->c) {
    dx_client_free(s->c);
    s->c = NULL;
  }
}
static void cs_close(dx_ws *ws, uint16_t code, const char *r, size_t n, bool clean, void *u) {
  (void)ws, (void)code, (void)r, (void)n, (void)clean;
  cstate *s = u;
  s->closes++;
  if (s->free_in_close && s->c) {
    dx_client_free(s->c);
    s->c = NULL;
  }
}
static void cs_done(dx_client *c, void *u) {
  (void)c;
  ((cstate *)u)->dones++;
}

/* The server accepts, reads the request, then (answer101) sends a 101 or
 * not, and closes: the client's stream ends by itself, and the handler
 * frees the client right there. */
static void client_freed_in_handler_after_drop(bool answer101, bool in_error) {
  dx_loop *loop = dx_loop_new(NULL);
  int port, lfd = listen_any(&port);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  cstate s = {.free_in_close = !in_error, .free_in_error = in_error};
  dx_client_opts o = {.on_done = cs_done};
  s.c = dx_connect(loop, url, &o, &(dx_ws_handlers){.on_error = cs_error, .on_close = cs_close}, &s,
                   NULL);
  CHECK(s.c != NULL);
  int fd = -1;
  uint64_t deadline = now_ms() + 3000;
  char buf[4096];
  while (fd < 0 && now_ms() < deadline) {
    dx_loop_run_once(loop, 5);
    fd = accept(lfd, NULL, NULL);
  }
  CHECK(fd >= 0);
  /* Wait for the request, answer (or not), hang up. */
  ssize_t got = 0;
  while (got <= 0 && now_ms() < deadline) {
    dx_loop_run_once(loop, 5);
    got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  }
  if (answer101) {
    /* A valid 101 needs the client's key: compute nothing, just check that
     * a bad answer followed by a hang-up is also handled; the real 101
     * case is the drop after open below. */
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    if (send(fd, resp, strlen(resp), MSG_NOSIGNAL) < 0) { /* the test checks the result */
    }
  }
  close(fd);
  while (s.c && now_ms() < deadline) dx_loop_run_once(loop, 5);
  /* Freed in on_error: no on_close after it (no handler runs once freed). */
  CHECK_EQ_INT(s.closes, in_error ? 0 : 1);
  CHECK_EQ_INT(s.errors, 1);
  CHECK(s.c == NULL);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  close(lfd);
  dx_loop_free(loop);
}

TEST(client_freed_in_on_close_after_the_server_hangs_up) {
  client_freed_in_handler_after_drop(false, false);
  client_freed_in_handler_after_drop(true, false);
}

TEST(client_freed_in_on_error_after_the_server_hangs_up) {
  client_freed_in_handler_after_drop(false, true);
}

/* An open connection dropped by the server; the client is freed in on_close. */
static void srv_abort_on_message(dx_ws *ws, unsigned op, const void *d, size_t n, void *u) {
  (void)op, (void)d, (void)n, (void)u;
  dx_ws_abort(ws);
}

static int c_opened;
static void c_open_send(dx_ws *ws, void *u) {
  (void)u;
  c_opened++;
  dx_ws_send_text(ws, "bye");
}

TEST(client_freed_in_on_close_after_an_open_connection_drops) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_route(srv, "/", &(dx_ws_handlers){.on_message = srv_abort_on_message}, NULL);
  int port = start_listening(srv);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  cstate s = {.free_in_close = true};
  s.c = dx_connect(loop, url, NULL, &(dx_ws_handlers){.on_open = c_open_send, .on_close = cs_close},
                   &s, NULL);
  RUN_UNTIL(loop, s.closes == 1, 5000);
  CHECK_EQ_INT(c_opened, 1);
  CHECK_EQ_INT(s.closes, 1);
  CHECK(s.c == NULL);
  teardown(loop, srv);
}

/* ---- dx_connect never calls handlers before it returns ---- */

TEST(dx_connect_reports_failures_after_it_returns) {
  dx_loop *loop = dx_loop_new(NULL);
  int port, lfd = listen_any(&port);
  close(lfd); /* now refused */
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
  cstate s = {0};
  dx_client_opts o = {.on_done = cs_done};
  s.c = dx_connect(loop, url, &o, &(dx_ws_handlers){.on_error = cs_error, .on_close = cs_close}, &s,
                   NULL);
  CHECK(s.c != NULL);
  CHECK_EQ_INT(s.errors + s.closes + s.dones, 0);
  uint64_t deadline = now_ms() + 3000;
  while (!s.dones && now_ms() < deadline) dx_loop_run_once(loop, 5);
  CHECK_EQ_INT(s.errors, 1);
  CHECK_EQ_INT(s.dones, 1);
  dx_client_free(s.c);
  for (int i = 0; i < 3; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

/* ---- on_close is the last handler ---- */

static int pings_after_close, closed_flag;
static void lc_message(dx_ws *ws, unsigned op, const void *d, size_t n, void *u) {
  (void)op, (void)d, (void)n, (void)u;
  dx_ws_abort(ws);
}
static void lc_ping(dx_ws *ws, const void *d, size_t n, void *u) {
  (void)ws, (void)d, (void)n, (void)u;
  if (closed_flag) pings_after_close++;
}
static void lc_close(dx_ws *ws, uint16_t code, const char *r, size_t n, bool clean, void *u) {
  (void)ws, (void)code, (void)r, (void)n, (void)clean, (void)u;
  closed_flag++;
}

TEST(no_handler_runs_after_on_close) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_route(
      srv, "/",
      &(dx_ws_handlers){.on_message = lc_message, .on_ping = lc_ping, .on_close = lc_close}, NULL);
  int port = start_listening(srv);
  raw *r = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(r != NULL);
  /* A text frame and a ping in one write: both are in the same read. */
  const uint8_t frames[] = {0x81, 0x82, 0, 0, 0, 0, 'h', 'i', 0x89, 0x80, 0, 0, 0, 0};
  CHECK(raw_write(loop, r, frames, sizeof frames));
  RUN_UNTIL(loop, closed_flag, 3000);
  run_for(loop, 50);
  CHECK_EQ_INT(closed_flag, 1);
  CHECK_EQ_INT(pings_after_close, 0);
  raw_close(r);
  teardown(loop, srv);
}

/* ---- dx_server_free inside a handler ---- */

static dx_server *free_me;
static int freed_messages;
static void free_server_message(dx_ws *ws, unsigned op, const void *d, size_t n, void *u) {
  (void)ws, (void)op, (void)d, (void)n, (void)u;
  freed_messages++;
  if (free_me) {
    dx_server_free(free_me);
    free_me = NULL;
  }
}

TEST(server_freed_inside_a_handler) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_route(srv, "/", &(dx_ws_handlers){.on_message = free_server_message}, NULL);
  int port = start_listening(srv);
  raw *a = raw_ws_open(loop, port, "/", NULL, NULL);
  raw *b = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(a && b);
  free_me = srv;
  /* Two messages in one packet: the second arrives after the free. */
  const uint8_t two[] = {0x81, 0x81, 0, 0, 0, 0, 'x', 0x81, 0x81, 0, 0, 0, 0, 'y'};
  CHECK(raw_write(loop, a, two, sizeof two));
  RUN_UNTIL(loop, free_me == NULL, 3000);
  run_for(loop, 100);
  CHECK_EQ_INT(freed_messages, 1);
  RUN_UNTIL(loop, a->eof || a->reset, 3000);
  RUN_UNTIL(loop, b->eof || b->reset, 3000);
  CHECK(a->eof || a->reset);
  CHECK(b->eof || b->reset);
  raw_close(a);
  raw_close(b);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

/* ---- a head split across reads, with a frame right after it ---- */

TEST(frame_after_a_split_head_is_not_lost) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  static rec rr = {.echo = true};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &rr);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  char pad[3000];
  memset(pad, 'a', sizeof pad - 1);
  pad[sizeof pad - 1] = 0;
  char head[8192];
  int n = snprintf(head, sizeof head,
                   "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY
                   "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   pad);
  CHECK(raw_write(loop, r, head, 100));
  run_for(loop, 50); /* the server now gathers the head in its own buffer */
  /* The rest of the head, then a 3000-byte masked text frame (zero key). */
  uint8_t *rest = malloc((size_t)n + 3100);
  memcpy(rest, head + 100, (size_t)n - 100);
  size_t k = (size_t)n - 100;
  rest[k++] = 0x81;
  rest[k++] = 0x80 | 126;
  rest[k++] = 3000 >> 8;
  rest[k++] = 3000 & 0xff;
  memset(rest + k, 0, 4);
  k += 4;
  memset(rest + k, 'z', 3000);
  k += 3000;
  CHECK(raw_write(loop, r, rest, k));
  free(rest);
  RUN_UNTIL(loop, rr.messages == 1, 3000);
  CHECK_EQ_INT(rr.messages, 1);
  CHECK_EQ_INT(rr.msg_len, 3000);
  raw_close(r);
  teardown(loop, srv);
}

/* ---- a ping flood from a peer that never reads ---- */

TEST(ping_flood_does_not_grow_the_send_queue) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.max_buffered = 64 * 1024});
  static rec rr;
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/", &h, &rr);
  int port = start_listening(srv);
  raw *r = raw_connect(port, 4096);
  CHECK(raw_ws_handshake(loop, r, "/", NULL) == 101);
  r->paused = true; /* never read again */
  RUN_UNTIL(loop, rr.ws != NULL, 2000);
  uint8_t ping[6 + 125] = {0x89, 0x80 | 125, 0, 0, 0, 0};
  memset(ping + 6, 'p', 125);
  size_t max_seen = 0;
  for (int i = 0; i < 40000 && rr.ws; i++) {
    if (send(r->fd, ping, sizeof ping, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) pump(loop);
    if ((i & 63) == 0) {
      pump(loop);
      if (rr.ws && dx_ws_buffered(rr.ws) > max_seen) max_seen = dx_ws_buffered(rr.ws);
    }
  }
  /* Pongs stop once the cap is passed: at most one read's worth beyond. */
  CHECK(max_seen <= 64 * 1024 + 128 * 1024);
  raw_close(r);
  teardown(loop, srv);
}

/* ---- a static download slower than close_timeout ---- */

TEST(slow_static_download_is_not_cut_at_close_timeout) {
  char dir[] = "/tmp/dx-static-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/big.bin", dir);
  FILE *f = fopen(path, "wb");
  size_t size = 2u << 20;
  for (size_t i = 0; i < size; i++) fputc('a' + (int)(i % 26), f);
  fclose(f);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.static_dir = dir, .close_timeout = 200});
  int port = start_listening(srv);
  raw *r = raw_connect(port, 8192);
  CHECK(raw_write_str(loop, r, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
  r->paused = true;
  /* Read about 300 KiB every 100 ms: the transfer takes ~700 ms, far more
   * than the 200 ms close timeout, but it never stalls that long. */
  uint64_t deadline = now_ms() + 10000;
  size_t total = 0;
  char buf[65536];
  while (!r->eof && now_ms() < deadline) {
    for (int i = 0; i < 5; i++) {
      ssize_t n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) total += (size_t)n;
      if (n == 0) r->eof = true;
    }
    run_for(loop, 100);
  }
  CHECK(r->eof);
  CHECK(total > size);
  raw_close(r);
  teardown(loop, srv);
  unlink(path);
  rmdir(dir);
}

/* ---- static files whatever the server's drain threshold ---- */

/* Download a 1 MiB file from a server with `low_water`; true when the
 * whole body arrived and the server closed. */
static bool download_with_low_water(size_t low_water) {
  char dir[] = "/tmp/dx-static-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/big.bin", dir);
  FILE *f = fopen(path, "wb");
  size_t size = 1u << 20;
  for (size_t i = 0; i < size; i++) fputc('a' + (int)(i % 26), f);
  fclose(f);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(
      loop, (dx_server_opts){.static_dir = dir, .close_timeout = 300, .low_water = low_water});
  int port = start_listening(srv);
  raw *r = raw_connect(port, 0);
  CHECK(raw_write_str(loop, r, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
  r->discard = true;
  RUN_UNTIL(loop, r->eof || r->reset, 5000);
  bool whole = r->eof && r->discarded > size;
  printf("low_water %zu: received %zu bytes of a %zu-byte file (+head)%s\n", low_water,
         r->discarded, size, r->eof ? ", then EOF" : "");
  raw_close(r);
  teardown(loop, srv);
  unlink(path);
  rmdir(dir);
  return whole;
}

/* The file is sent a chunk (256 KiB) at a time as the connection drains.
 * With a drain threshold at or above a chunk, the queue never went above
 * it, so no drain came, and the stall timer cut the download short. */
TEST(static_download_completes_with_any_low_water) {
  CHECK(download_with_low_water(1024));
  CHECK(download_with_low_water(256u << 10));
  CHECK(download_with_low_water(512u << 10));
  CHECK(download_with_low_water(64u << 20));
}

/* ---- dx_server_free with work in flight ---- */

static dx_server *shutdown_me;
static void shutdown_on_close(dx_ws *ws, uint16_t code, const char *r, size_t rl, bool clean,
                              void *u) {
  (void)ws, (void)code, (void)r, (void)rl, (void)clean, (void)u;
  /* "Last client gone: shut down" — here, during dx_server_free. */
  if (shutdown_me) dx_server_shutdown(shutdown_me, 200, NULL, NULL);
}

/* dx_server_free delivers on_close (1006); a handler that then asks for a
 * shutdown must not re-arm the server's timer in memory about to go. */
TEST(shutdown_from_on_close_during_free) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_server_route(srv, "/", &(dx_ws_handlers){.on_close = shutdown_on_close}, NULL);
  int port = start_listening(srv);
  raw *a = raw_ws_open(loop, port, "/", NULL, NULL);
  CHECK(a != NULL);
  shutdown_me = srv;
  dx_server_free(srv);
  shutdown_me = NULL;
  run_for(loop, 300); /* past the shutdown timeout it must not have armed */
  raw_close(a);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
}

/* A static download cut short by dx_server_free releases its file (LSan
 * and the fd count catch a leak). */
TEST(server_freed_during_a_static_download) {
  char dir[] = "/tmp/dx-static-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/big.bin", dir);
  FILE *f = fopen(path, "wb");
  for (size_t i = 0; i < (3u << 20); i++) fputc('a', f);
  fclose(f);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.static_dir = dir});
  int port = start_listening(srv);
  raw *r = raw_connect(port, 8192);
  r->paused = true; /* never reads: the download stays in progress */
  CHECK(raw_write_str(loop, r, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
  run_for(loop, 100);
  dx_server_free(srv);
  for (int i = 0; i < 10; i++) dx_loop_run_once(loop, 10);
  raw_close(r);
  for (int i = 0; i < 5; i++) dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  /* The file's descriptor was closed with the download. */
  char link[64], target[256];
  int open_files = 0;
  for (int fd = 3; fd < 256; fd++) {
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (strstr(target, "big.bin")) open_files++;
  }
  CHECK_EQ_INT(open_files, 0);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  RUN(client_freed_in_on_close_after_the_server_hangs_up);
  RUN(client_freed_in_on_error_after_the_server_hangs_up);
  RUN(client_freed_in_on_close_after_an_open_connection_drops);
  RUN(dx_connect_reports_failures_after_it_returns);
  RUN(no_handler_runs_after_on_close);
  RUN(server_freed_inside_a_handler);
  RUN(frame_after_a_split_head_is_not_lost);
  RUN(ping_flood_does_not_grow_the_send_queue);
  RUN(slow_static_download_is_not_cut_at_close_timeout);
  RUN(static_download_completes_with_any_low_water);
  RUN(shutdown_from_on_close_during_free);
  RUN(server_freed_during_a_static_download);
  return test_report();
}
