/* Embedding the hub: a server whose clients speak duplex.v1 at /ws, a
 * worker thread that publishes the time on "clock" every second with
 * dx_hub_publish (thread-safe), and an authorisation hook: clients may
 * publish only on topics under "chat:"; "clock" is the server's.
 *
 *   hub_server [PORT]      (default 9002; 0 picks a free port), then e.g.:
 *   echo '{"op":"subscribe","topic":"clock"}' | duplex connect ws://127.0.0.1:9002/ws
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "duplex/hub.h"
#include "duplex/loop.h"
#include "duplex/server.h"

static atomic_bool stop;

static int authorize(const char *client, const char *user, dx_hub_action action,
                     const char *topic, void *arg) {
  (void)client, (void)user, (void)arg;
  if (action == DX_HUB_PUBLISH && strncmp(topic, "chat:", 5) != 0) return -1;
  return 0; /* anyone may subscribe to anything */
}

static void *clock_thread(void *arg) {
  dx_hub *hub = arg;
  for (unsigned n = 1; !atomic_load(&stop); n++) {
    char json[64];
    int len = snprintf(json, sizeof json, "{\"tick\":%u,\"time\":%lld}", n, (long long)time(NULL));
    if (dx_hub_publish(hub, "clock", json, (size_t)len, NULL) != 0)
      fprintf(stderr, "publish failed\n");
    for (int i = 0; i < 10 && !atomic_load(&stop); i++) usleep(100 * 1000);
  }
  return NULL;
}

static void on_signal(dx_loop *loop, int signo, void *arg) {
  (void)signo, (void)arg;
  atomic_store(&stop, true);
  dx_loop_stop(loop);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 9002;
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = dx_server_new(loop, &(dx_server_opts){.host = "127.0.0.1", .port = port ? port : -1});
  dx_hub *hub = dx_hub_new(&(dx_hub_opts){.history_size = 50, .authorize = authorize});
  if (!loop || !srv || !hub || dx_hub_attach(hub, srv) != 0 || dx_server_listen(srv) != 0) {
    fprintf(stderr, "hub_server: cannot start\n");
    return 1;
  }
  dx_loop_signal(loop, SIGINT, on_signal, NULL);
  dx_loop_signal(loop, SIGTERM, on_signal, NULL);
  printf("hub on ws://127.0.0.1:%d/ws\n", dx_server_port(srv));
  fflush(stdout);
  pthread_t t;
  pthread_create(&t, NULL, clock_thread, hub);
  dx_loop_run(loop);
  pthread_join(t, NULL);
  dx_server_free(srv);
  dx_hub_detach(hub, srv);
  dx_loop_run_once(loop, 0); /* run what the last publishes queued */
  dx_loop_free(loop);
  dx_hub_free(hub);
  return 0;
}
