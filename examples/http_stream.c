/* A Server-Sent Events clock on the public duplex API: deferred and
 * streamed answers of plain HTTP handlers (duplex/http.h).
 *
 *   ./http_stream [PORT]        (default 9001; 0 picks a free port)
 *   curl --no-buffer http://127.0.0.1:PORT/events
 *
 * GET /events answers text/event-stream and sends "data: N\n\n" every
 * 100 ms, five events, then ends the stream (the connection stays open
 * for the next request). A client that goes away early is forgotten in
 * on_gone. Ctrl-C or SIGTERM shuts down (ending open streams) and exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/http.h>
#include <duplex/loop.h>
#include <duplex/server.h>

#define EVENTS 5

/* One subscriber: its request and the timer that feeds it. */
typedef struct clock_sub {
  dx_http_req *req;
  dx_timer timer;
  int sent;
} clock_sub;

static void sub_free(clock_sub *s) {
  dx_timer_stop(&s->timer);
  free(s);
}

static void on_gone(dx_http_req *req, void *user) {
  clock_sub *s = user;
  char peer[64];
  printf("gone   %s after %d event(s)\n", dx_http_peer_str(req, peer, sizeof peer), s->sent);
  sub_free(s); /* req is invalid from here on */
}

static void tick(dx_timer *t) {
  clock_sub *s = dx_container_of(t, clock_sub, timer);
  char line[32];
  int n = snprintf(line, sizeof line, "data: %d\n\n", s->sent + 1);
  if (dx_http_stream_write(s->req, line, (size_t)n) < 0) return; /* on_gone follows */
  if (++s->sent < EVENTS) {
    dx_timer_start(&s->timer, 100, 0);
    return;
  }
  char peer[64];
  printf("done   %s\n", dx_http_peer_str(s->req, peer, sizeof peer));
  dx_http_stream_end(s->req); /* req is invalid from here on */
  sub_free(s);
}

static void on_events(dx_http_req *req, void *loop) {
  if (strcmp(dx_http_method(req), "GET") != 0) {
    dx_http_respond(req, 405, "text/plain", "Allow: GET\r\n", "GET only\n", 9);
    return;
  }
  clock_sub *s = calloc(1, sizeof *s);
  if (!s || dx_http_defer(req, on_gone, s) != 0) {
    free(s);
    dx_http_respond(req, 503, "text/plain", NULL, "busy\n", 5);
    return;
  }
  s->req = req;
  dx_timer_init(loop, &s->timer, tick);
  dx_http_stream_start(req, 200, "text/event-stream",
                       "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
  char peer[64];
  printf("stream %s\n", dx_http_peer_str(req, peer, sizeof peer));
  dx_timer_start(&s->timer, 100, 0);
}

static void on_stopped(dx_server *srv, void *loop) { dx_loop_stop(loop); }

static void on_signal(dx_loop *loop, int signo, void *srv) {
  dx_server_shutdown(srv, 2000, on_stopped, loop);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 9001;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);

  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv =
      dx_server_new(loop, &(dx_server_opts){.host = "127.0.0.1", .port = port ? port : -1});
  dx_server_http(srv, "/events", on_events, loop);
  if (dx_server_listen(srv) != 0) {
    fprintf(stderr, "http_stream: cannot listen on port %d\n", port);
    return 1;
  }
  dx_loop_signal(loop, SIGINT, on_signal, srv);
  dx_loop_signal(loop, SIGTERM, on_signal, srv);
  printf("listening on http://127.0.0.1:%d/events\n", dx_server_port(srv));

  dx_loop_run(loop);
  dx_server_free(srv);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  return 0;
}
