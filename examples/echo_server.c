/* A minimal WebSocket echo server on the public duplex API.
 *
 *   ./echo_server [PORT]        (default 9001; 0 picks a free port)
 *
 * Every text or binary message is sent back as it came. Ctrl-C closes the
 * clients with 1001 and exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <duplex/loop.h>
#include <duplex/server.h>

static void on_open(dx_ws *ws, void *user) {
  char peer[64];
  printf("open   %s %s\n", dx_ws_peer_str(ws, peer, sizeof peer), dx_ws_path(ws));
}

static void on_message(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user) {
  /* The library copies the bytes; `data` is only valid during this call. */
  dx_ws_send(ws, opcode, data, len);
}

static void on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                     void *user) {
  printf("close  code=%d reason=\"%.*s\" clean=%s\n", code, (int)reason_len, reason,
         clean ? "yes" : "no");
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
  dx_server_route(
      srv, "*",
      &(dx_ws_handlers){.on_open = on_open, .on_message = on_message, .on_close = on_close}, NULL);
  if (dx_server_listen(srv) != 0) {
    fprintf(stderr, "echo_server: cannot listen on port %d\n", port);
    return 1;
  }
  dx_loop_signal(loop, SIGINT, on_signal, srv);
  dx_loop_signal(loop, SIGTERM, on_signal, srv);
  printf("listening on ws://127.0.0.1:%d/\n", dx_server_port(srv));

  dx_loop_run(loop);
  dx_server_free(srv);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  return 0;
}
