/* duplex — the command-line tool: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "duplex/version.h"

static const char usage[] =
    "usage: duplex COMMAND [OPTIONS]\n"
    "\n"
    "A WebSocket toolkit: a real-time pub/sub hub, server, client and load\n"
    "generator (RFC 6455, RFC 7692).\n"
    "\n"
    "Commands:\n"
    "  serve     run the pub/sub hub (topics, history and resume, presence, HTTP\n"
    "            API) with its demo pages\n"
    "  token     mint a connection token for duplex serve (tests and demos)\n"
    "  echo      run a WebSocket echo server (an Autobahn test suite testee)\n"
    "  connect   connect to a WebSocket server: stdin lines out, messages to stdout\n"
    "  bench     load-test an echo server: messages/s, latency, handshakes/s\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help (and 'duplex COMMAND --help' for a command)\n"
    "  -V, --version   print the version\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(usage, stdout);
    return 0;
  }
  if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
    printf("duplex %s\n", dx_version());
    return 0;
  }
  if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
  if (!strcmp(cmd, "token")) return cmd_token(argc - 1, argv + 1);
  if (!strcmp(cmd, "echo")) return cmd_echo(argc - 1, argv + 1);
  if (!strcmp(cmd, "connect")) return cmd_connect(argc - 1, argv + 1);
  if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
  fprintf(stderr,
          "duplex: unknown command '%s'\nusage: duplex COMMAND [OPTIONS]\nTry 'duplex --help'.\n",
          cmd);
  return 2;
}
