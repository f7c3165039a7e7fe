/* duplex echo: a WebSocket echo server (also the Autobahn testee). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "duplex/log.h"
#include "duplex/loop.h"
#include "duplex/server.h"
#include "server_main.h"

static const char usage[] =
    "usage: duplex echo [OPTIONS]\n"
    "\n"
    "Run a WebSocket server that sends every message back with its opcode, on\n"
    "any path. Suitable as the Autobahn test suite's server under test.\n"
    "\n" SERVER_OPTIONS_HELP "\n"
    "The default port is 9001 and the largest message 64M.\n"
    "\n"
    "Example:\n"
    "  duplex echo --port 9001\n"
    "  echo hello | websocat ws://127.0.0.1:9001/\n";

static void on_message(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user) {
  (void)user;
  dx_ws_send(ws, opcode, data, len);
}

static int setup(dx_server *srv, void *arg) {
  (void)arg;
  return dx_server_route(srv, "*", &(dx_ws_handlers){.on_message = on_message}, NULL);
}

int cmd_echo(int argc, char **argv) {
  server_main_cfg cfg;
  server_main_defaults(&cfg);
  cfg.name = "echo";
  cfg.port = 9001;
  /* Echo is a conformance target: accept the largest Autobahn messages. */
  cfg.opts.max_message = (size_t)64 << 20;
  int rc = server_main_parse(&cfg, argc, argv, usage, NULL);
  if (rc < 0) rc = server_main_run(&cfg, setup, NULL, NULL);
  server_main_free(&cfg);
  return rc;
}
