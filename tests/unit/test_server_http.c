/* dx_server, plain HTTP side and routing: exact routes and the "*"
 * fallback, 404/426 answers, /healthz (GET, HEAD, no_healthz), static files
 * (content types, HEAD, 404, path traversal, symlinks out of the root), and
 * the connection limit (503, then room again after a close).
 *
 * In-process: one loop, one server on an ephemeral port, raw sockets as
 * clients read between loop turns (server_helpers.h). */
#include <sys/stat.h>

#include "server_helpers.h"

/* ------------------------------------------------------------------ */
/* Routes                                                              */

TEST(exact_route_and_star_fallback) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec chat = {.name = "chat"}, any = {.name = "any"};
  dx_ws_handlers h = rec_handlers();
  CHECK_EQ_INT(dx_server_route(srv, "/chat", &h, &chat), 0);
  CHECK_EQ_INT(dx_server_route(srv, "*", &h, &any), 0);
  CHECK_EQ_INT(dx_server_route(srv, "nope", &h, &any), DX_EINVAL); /* not "/..." nor "*" */
  int port = start_listening(srv);

  int st = 0;
  raw *a = raw_ws_open(loop, port, "/chat?room=1", NULL, &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, chat.opens == 1, 2000);
  CHECK_EQ_INT(chat.opens, 1);
  CHECK_EQ_INT(any.opens, 0);
  CHECK_STR(chat.path, "/chat");
  CHECK_STR(chat.query, "room=1");

  /* A prefix or a longer path is not an exact match: the fallback takes it. */
  raw *b = raw_ws_open(loop, port, "/chat/x", NULL, &st);
  CHECK_EQ_INT(st, 101);
  raw *c = raw_ws_open(loop, port, "/elsewhere", NULL, &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, any.opens == 2, 2000);
  CHECK_EQ_INT(any.opens, 2);
  CHECK_EQ_INT(chat.opens, 1);
  CHECK_STR(any.path, "/elsewhere");
  CHECK_STR(any.query, "");

  /* Messages reach the right route's handlers. */
  raw_ws_send(loop, a, 0x1, "to-chat", 7);
  raw_ws_send(loop, c, 0x1, "to-any", 6);
  RUN_UNTIL(loop, chat.messages == 1 && any.messages == 1, 2000);
  CHECK_STR(chat.msg, "to-chat");
  CHECK_STR(any.msg, "to-any");
  (void)b;
  teardown(loop, srv);
}

TEST(unknown_path_without_star_is_404) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec chat = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/chat", &h, &chat);
  int port = start_listening(srv);

  raw *r = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, r, "/other", NULL), 404);
  RUN_UNTIL(loop, r->eof || r->reset, 2000);
  CHECK(r->eof || r->reset); /* the server closed after answering */
  /* A plain GET elsewhere: 404 as well. */
  raw *g = http_request(loop, port, "GET", "/other");
  CHECK_EQ_INT(http_status(g->buf), 404);
  run_for(loop, 50);
  CHECK_EQ_INT(chat.opens, 0);
  CHECK_EQ_INT(chat.closes, 0);
  teardown(loop, srv);
}

TEST(plain_get_to_ws_route_is_426) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  rec chat = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/chat", &h, &chat);
  int port = start_listening(srv);

  raw *r = http_request(loop, port, "GET", "/chat");
  CHECK_EQ_INT(http_status(r->buf), 426);
  char v[64] = "";
  CHECK(http_header(r->buf, "Sec-WebSocket-Version", v, sizeof v));
  CHECK_STR(v, "13");
  CHECK(http_header(r->buf, "Upgrade", v, sizeof v));
  CHECK(strcasecmp(v, "websocket") == 0);
  CHECK(r->eof || r->reset);
  CHECK_EQ_INT(chat.opens + chat.closes + chat.errors, 0);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* /healthz                                                            */

TEST(healthz_get_and_head) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  int port = start_listening(srv);

  raw *g = http_request(loop, port, "GET", "/healthz");
  CHECK_EQ_INT(http_status(g->buf), 200);
  char v[64] = "";
  CHECK(http_header(g->buf, "Content-Length", v, sizeof v));
  CHECK_STR(v, "3");
  CHECK(http_header(g->buf, "Content-Type", v, sizeof v));
  CHECK(strncmp(v, "text/plain", 10) == 0);
  CHECK(http_body(g->buf) && strcmp(http_body(g->buf), "ok\n") == 0);

  raw *h = http_request(loop, port, "HEAD", "/healthz");
  CHECK_EQ_INT(http_status(h->buf), 200);
  CHECK(http_header(h->buf, "Content-Length", v, sizeof v));
  CHECK_STR(v, "3");
  CHECK(http_body(h->buf) && http_body(h->buf)[0] == 0); /* no body after the head */
  CHECK(h->eof || h->reset);

  /* Another method is not served as health. */
  raw *p = http_request(loop, port, "POST", "/healthz");
  CHECK(http_status(p->buf) != 200);
  teardown(loop, srv);
}

TEST(no_healthz_option) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.no_healthz = true});
  int port = start_listening(srv);
  raw *g = http_request(loop, port, "GET", "/healthz");
  CHECK_EQ_INT(http_status(g->buf), 404);
  CHECK(!contains(http_body(g->buf), "ok\n") || contains(http_body(g->buf), "not found"));
  raw *h = http_request(loop, port, "HEAD", "/healthz");
  CHECK_EQ_INT(http_status(h->buf), 404);
  teardown(loop, srv);
}

/* ------------------------------------------------------------------ */
/* Static files                                                        */

static char tmp_root[128]; /* mkdtemp: holds www/ and secret.txt */
static char www[192];
static const char INDEX[] = "<!doctype html><title>duplex</title><p>index</p>\n";
static const char APPJS[] = "console.log('app');\n";
static const char SECRET[] = "TOP-SECRET-0xC0FFEE\n";

static void write_file(const char *dir, const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f) {
    perror(p);
    exit(2);
  }
  fputs(text, f);
  fclose(f);
}

static void make_tree(void) {
  snprintf(tmp_root, sizeof tmp_root, "/tmp/dx_static_XXXXXX");
  if (!mkdtemp(tmp_root)) {
    perror("mkdtemp");
    exit(2);
  }
  snprintf(www, sizeof www, "%s/www", tmp_root);
  mkdir(www, 0755);
  char p[512];
  snprintf(p, sizeof p, "%s/sub", www);
  mkdir(p, 0755);
  write_file(www, "index.html", INDEX);
  write_file(www, "app.js", APPJS);
  write_file(www, "sub/index.html", "sub index\n");
  write_file(tmp_root, "secret.txt", SECRET);
  /* www/link.txt -> ../secret.txt and www/up -> .. (both leave the root) */
  snprintf(p, sizeof p, "%s/link.txt", www);
  if (symlink("../secret.txt", p) != 0) perror("symlink");
  snprintf(p, sizeof p, "%s/up", www);
  if (symlink("..", p) != 0) perror("symlink");
  /* www/inside.js -> app.js stays inside: allowed */
  snprintf(p, sizeof p, "%s/inside.js", www);
  if (symlink("app.js", p) != 0) perror("symlink");
}

static void remove_tree(void) {
  const char *names[] = {"www/index.html", "www/app.js",    "www/sub/index.html", "www/link.txt",
                         "www/up",         "www/inside.js", "secret.txt"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", tmp_root, names[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/www/sub", tmp_root);
  rmdir(p);
  rmdir(www);
  rmdir(tmp_root);
}

TEST(static_files) {
  make_tree();
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.static_dir = www});
  int port = start_listening(srv);
  char v[128] = "";

  raw *r = http_request(loop, port, "GET", "/");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_header(r->buf, "Content-Type", v, sizeof v));
  CHECK(strncmp(v, "text/html", 9) == 0);
  CHECK(http_header(r->buf, "Content-Length", v, sizeof v));
  CHECK_EQ_INT(atoi(v), (int)strlen(INDEX));
  CHECK(http_body(r->buf) && strcmp(http_body(r->buf), INDEX) == 0);

  r = http_request(loop, port, "GET", "/index.html");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_body(r->buf) && strcmp(http_body(r->buf), INDEX) == 0);

  r = http_request(loop, port, "GET", "/app.js");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_header(r->buf, "Content-Type", v, sizeof v));
  CHECK(strncmp(v, "text/javascript", 15) == 0);
  CHECK(http_body(r->buf) && strcmp(http_body(r->buf), APPJS) == 0);

  /* A directory serves its index.html, with or without the slash. */
  r = http_request(loop, port, "GET", "/sub/");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_body(r->buf) && strcmp(http_body(r->buf), "sub index\n") == 0);
  r = http_request(loop, port, "GET", "/sub");
  CHECK_EQ_INT(http_status(r->buf), 200);

  /* Percent-encoding of ordinary characters is decoded. */
  r = http_request(loop, port, "GET", "/%61pp.js");
  CHECK_EQ_INT(http_status(r->buf), 200);

  /* HEAD: the same headers with the real length, and no body. */
  r = http_request(loop, port, "HEAD", "/app.js");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_header(r->buf, "Content-Type", v, sizeof v));
  CHECK(strncmp(v, "text/javascript", 15) == 0);
  CHECK(http_header(r->buf, "Content-Length", v, sizeof v));
  CHECK_EQ_INT(atoi(v), (int)strlen(APPJS));
  CHECK(http_body(r->buf) && http_body(r->buf)[0] == 0);
  CHECK(r->eof || r->reset);

  /* Missing file: 404. */
  r = http_request(loop, port, "GET", "/missing.html");
  CHECK_EQ_INT(http_status(r->buf), 404);

  /* A symlink that stays inside the root is fine. */
  r = http_request(loop, port, "GET", "/inside.js");
  CHECK_EQ_INT(http_status(r->buf), 200);
  CHECK(http_body(r->buf) && strcmp(http_body(r->buf), APPJS) == 0);

  /* Healthz still answers next to static files. */
  r = http_request(loop, port, "GET", "/healthz");
  CHECK_EQ_INT(http_status(r->buf), 200);
  teardown(loop, srv);
  remove_tree();
}

TEST(static_traversal_never_leaks) {
  make_tree();
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.static_dir = www});
  int port = start_listening(srv);

  /* Sanity: the secret really is one level up. */
  char p[512];
  snprintf(p, sizeof p, "%s/../secret.txt", www);
  CHECK(access(p, R_OK) == 0);

  static const char *const attacks[] = {
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2E%2E/secret.txt",
      "/.%2e/secret.txt",
      "/a/../../secret.txt",
      "/sub/../../secret.txt",
      "/..%2fsecret.txt",
      "/%2e%2e%2fsecret.txt",
      "/%2e%2e%2f%2e%2e%2fsecret.txt",
      "/secret.txt%00.html",
      "/../secret.txt%00",
      "/%00../secret.txt",
      "/..\\secret.txt",
      "/..%5csecret.txt",
      "/%5c..%5csecret.txt",
      "/sub%2f..%2f..%2fsecret.txt",
      "//../secret.txt",
      "/./../secret.txt",
      "/..",
      "/%2e%2e",
      "/up/secret.txt", /* directory symlink leaving the root */
      "/up/www/../secret.txt",
      "/link.txt", /* file symlink leaving the root */
      "/%6cink.txt",
      "/sub/%2e%2e/link.txt",
  };
  for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
    for (int head = 0; head < 2; head++) {
      raw *r = http_request(loop, port, head ? "HEAD" : "GET", attacks[i]);
      int st = http_status(r->buf);
      if (st == 200 || contains(r->buf, "TOP-SECRET") || st < 400) {
        fprintf(stderr, "traversal %s %s answered %d:\n%s\n", head ? "HEAD" : "GET", attacks[i], st,
                r->buf ? r->buf : "");
        CHECK(!"a path outside static_dir was served");
      }
      CHECK(!contains(r->buf, "TOP-SECRET"));
      CHECK(st == 400 || st == 403 || st == 404);
      raw_close(r);
    }
  }
  /* The symlinks leaving the root are refused explicitly (403). */
  raw *r = http_request(loop, port, "GET", "/link.txt");
  CHECK_EQ_INT(http_status(r->buf), 403);
  r = http_request(loop, port, "GET", "/up/secret.txt");
  CHECK_EQ_INT(http_status(r->buf), 403);

  /* Raw bytes the parser should never let through (a NUL and a backslash
   * written directly in the request line). */
  static const char nul_req[] = "GET /secret.txt\0.html HTTP/1.1\r\nHost: x\r\n\r\n";
  raw *n = raw_connect(port, 0);
  raw_write(loop, n, nul_req, sizeof nul_req - 1);
  RUN_UNTIL(loop, n->eof || n->reset, 3000);
  CHECK(!contains(n->buf, "TOP-SECRET"));
  CHECK(http_status(n->buf) != 200);
  raw *b = http_exchange(loop, port, "GET /..\\secret.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(!contains(b->buf, "TOP-SECRET"));
  CHECK(http_status(b->buf) != 200);
  teardown(loop, srv);
  remove_tree();
}

/* ------------------------------------------------------------------ */
/* Connection limit                                                    */

TEST(max_connections_503_then_room_again) {
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){.max_connections = 2});
  rec rc = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(srv, "/ws", &h, &rc);
  int port = start_listening(srv);

  /* Two TCP connections (one opened as WebSocket, one idle in the
   * handshake) take both slots. */
  int st = 0;
  raw *a = raw_ws_open(loop, port, "/ws", NULL, &st);
  CHECK_EQ_INT(st, 101);
  raw *b = raw_connect(port, 0);
  RUN_UNTIL(loop, dx_server_connections(srv) == 2, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 2);

  /* The third gets 503 and is closed. */
  raw *c = raw_connect(port, 0);
  CHECK(c != NULL);
  RUN_UNTIL(loop, c->eof || c->reset, 3000);
  CHECK_EQ_INT(http_status(c->buf), 503);
  CHECK(c->eof || c->reset);
  CHECK_EQ_INT(dx_server_connections(srv), 2);
  raw_close(c);

  /* And a full WebSocket attempt is refused the same way. */
  raw *d = raw_connect(port, 0);
  CHECK_EQ_INT(raw_ws_handshake(loop, d, "/ws", NULL), 503);
  raw_close(d);
  CHECK_EQ_INT(rc.opens, 1);

  /* One leaves: room for a new one. */
  raw_close(b);
  RUN_UNTIL(loop, dx_server_connections(srv) == 1, 2000);
  CHECK_EQ_INT(dx_server_connections(srv), 1);
  raw *e = raw_ws_open(loop, port, "/ws", NULL, &st);
  CHECK_EQ_INT(st, 101);
  RUN_UNTIL(loop, rc.opens == 2, 2000);
  CHECK_EQ_INT(rc.opens, 2);

  /* The WebSocket leaving frees its slot too. */
  raw_close(a);
  RUN_UNTIL(loop, rc.closes == 1 && dx_server_connections(srv) == 1, 2000);
  CHECK_EQ_INT(rc.closes, 1);
  CHECK_EQ_INT(rc.close_code, 1006);
  raw *g = http_request(loop, port, "GET", "/healthz");
  CHECK_EQ_INT(http_status(g->buf), 200);
  (void)e;
  teardown(loop, srv);
}

/* Two servers (on two loops, as with --threads 2) sharing a group of two
 * connections: the limit is for both together. */
static void pump2(dx_loop *a, dx_loop *b) {
  dx_loop_run_once(a, 1);
  pump(b);
}

TEST(group_limit_spans_servers) {
  dx_server_group *g = dx_server_group_new(2);
  CHECK(g != NULL);
  dx_loop *la = dx_loop_new(NULL), *lb = dx_loop_new(NULL);
  dx_server *sa = make_server(la, (dx_server_opts){.group = g});
  dx_server *sb = make_server(lb, (dx_server_opts){.group = g});
  rec ra = {0}, rb = {0};
  dx_ws_handlers h = rec_handlers();
  dx_server_route(sa, "/", &h, &ra);
  dx_server_route(sb, "/", &h, &rb);
  int pa = start_listening(sa), pb = start_listening(sb);

  /* One WebSocket on each server fills the group. */
  raw *a = raw_connect(pa, 0), *b = raw_connect(pb, 0);
  CHECK(a && b);
  const char *up = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  raw_write_str(la, a, up);
  raw_write_str(lb, b, up);
  uint64_t deadline = now_ms() + 3000;
  while ((ra.opens < 1 || rb.opens < 1) && now_ms() < deadline) pump2(la, lb);
  CHECK_EQ_INT(ra.opens + rb.opens, 2);
  CHECK_EQ_INT(dx_server_group_connections(g), 2);

  /* A third, on either server, gets 503. */
  raw *c = raw_connect(pa, 0);
  deadline = now_ms() + 3000;
  while (!(c->eof || c->reset) && now_ms() < deadline) pump2(lb, la);
  CHECK_EQ_INT(http_status(c->buf), 503);
  raw_close(c);
  CHECK_EQ_INT(dx_server_connections(sa), 1);

  /* One leaves the other server: room again on this one. */
  raw_close(b);
  deadline = now_ms() + 3000;
  while (rb.closes < 1 && now_ms() < deadline) pump2(la, lb);
  CHECK_EQ_INT(dx_server_group_connections(g), 1);
  raw *d = raw_connect(pa, 0);
  raw_write_str(la, d, up);
  deadline = now_ms() + 3000;
  while (ra.opens < 2 && now_ms() < deadline) pump2(lb, la);
  CHECK_EQ_INT(ra.opens, 2);
  CHECK_EQ_INT(dx_server_group_connections(g), 2);

  /* Freeing a server gives its slots back. */
  teardown(lb, sb);
  teardown(la, sa);
  CHECK_EQ_INT(dx_server_group_connections(g), 0);
  dx_server_group_free(g);
}

int main(void) {
  RUN(exact_route_and_star_fallback);
  RUN(unknown_path_without_star_is_404);
  RUN(plain_get_to_ws_route_is_426);
  RUN(healthz_get_and_head);
  RUN(no_healthz_option);
  RUN(static_files);
  RUN(static_traversal_never_leaks);
  RUN(max_connections_503_then_room_again);
  RUN(group_limit_spans_servers);
  return test_report();
}
