/* uws_echo: a WebSocket echo server on uWebSockets, the peer to beat in
 * bench/compare.sh. Built by compare.sh from a checkout the user provides
 * (UWS_DIR, uSockets inside it or USOCKETS_DIR); never vendored.
 *
 * One thread, uSockets' default epoll loop, no SSL, no compression: like
 * `duplex echo`, every message is reassembled and sent back whole with its
 * opcode. Limits are raised so that no benchmark row trips them (64 MiB
 * messages, unbounded backpressure, no idle timeout).
 *
 *   uws_echo [--host ADDR] [--port N]
 *
 * Stop with SIGTERM or SIGINT (default action: the process ends). */
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "App.h"

int main(int argc, char **argv) {
  /* uSockets writes to a peer that may have closed (loadgen disconnecting
   * at the end of a run with 64 KiB frames in flight): without this,
   * SIGPIPE ended the process (status 141) in (i), and compare.sh counted
   * those runs as failed. duplex sends with MSG_NOSIGNAL. */
  signal(SIGPIPE, SIG_IGN);
  std::string host = "127.0.0.1";
  int port = 9001;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host"))
      host = argv[i + 1];
    else if (!strcmp(argv[i], "--port"))
      port = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "uws_echo: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  struct PerSocketData {};
  uWS::App::WebSocketBehavior<PerSocketData> behavior = {};
  behavior.compression = uWS::DISABLED;
  behavior.maxPayloadLength = 64u << 20;
  behavior.idleTimeout = 0;
  behavior.maxBackpressure = 0; /* unbounded, like the other servers here */
  behavior.closeOnBackpressureLimit = false;
  behavior.sendPingsAutomatically = false;
  behavior.message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
    ws->send(message, opCode, false);
  };
  bool ok = false;
  uWS::App()
      .ws<PerSocketData>("/*", std::move(behavior))
      .listen(host, port, [&](auto *listen_socket) { ok = listen_socket != nullptr; })
      .run();
  if (!ok) fprintf(stderr, "uws_echo: cannot listen on %s:%d\n", host.c_str(), port);
  return ok ? 0 : 1;
}
