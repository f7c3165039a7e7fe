/* A live ticker: a worker thread (think: a market data feed) pushes prices
 * to every client, and greets each new client, without ever touching the
 * loop's objects. It names connections by id and hands messages to the
 * loop with the thread-safe dx_server_post_send / dx_server_post_broadcast.
 *
 *   ./ticker_server [PORT]      (default 9002; 0 picks a free port)
 *
 * Clients receive "welcome <id>" once, then "tick <n> price <p>" ten times
 * a second. Ctrl-C closes them with 1001 and exits. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <duplex/loop.h>
#include <duplex/server.h>

/* New connections, for the worker to greet: a tiny mutex-protected queue.
 * Only ids cross threads, never dx_ws pointers. */
#define MAX_PENDING 256
static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t pending[MAX_PENDING];
static int npending;
static atomic_bool stopping;

static void on_open(dx_ws *ws, void *user) {
  pthread_mutex_lock(&pending_mu);
  if (npending < MAX_PENDING) pending[npending++] = dx_ws_id(ws);
  pthread_mutex_unlock(&pending_mu);
}

static void *feed(void *arg) {
  dx_server *srv = arg;
  double price = 100.0;
  for (unsigned long n = 1; !atomic_load(&stopping); n++) {
    uint64_t greet[MAX_PENDING];
    pthread_mutex_lock(&pending_mu);
    int k = npending;
    for (int i = 0; i < k; i++) greet[i] = pending[i];
    npending = 0;
    pthread_mutex_unlock(&pending_mu);
    char msg[64];
    for (int i = 0; i < k; i++) {
      int len = snprintf(msg, sizeof msg, "welcome %llu", (unsigned long long)greet[i]);
      dx_server_post_send(srv, greet[i], DX_OP_TEXT, msg, (size_t)len); /* gone: dropped */
    }
    price += (double)(rand() % 21 - 10) / 100.0;
    int len = snprintf(msg, sizeof msg, "tick %lu price %.2f", n, price);
    dx_server_post_broadcast(srv, DX_OP_TEXT, msg, (size_t)len);
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
  }
  return NULL;
}

static void on_stopped(dx_server *srv, void *loop) { dx_loop_stop(loop); }

static void on_signal(dx_loop *loop, int signo, void *srv) {
  dx_server_shutdown(srv, 2000, on_stopped, loop);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 9002;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);

  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv =
      dx_server_new(loop, &(dx_server_opts){.host = "127.0.0.1", .port = port ? port : -1});
  dx_server_route(srv, "*", &(dx_ws_handlers){.on_open = on_open}, NULL);
  if (dx_server_listen(srv) != 0) {
    fprintf(stderr, "ticker_server: cannot listen on port %d\n", port);
    return 1;
  }
  /* Signals first: threads created afterwards inherit the blocked mask. */
  dx_loop_signal(loop, SIGINT, on_signal, srv);
  dx_loop_signal(loop, SIGTERM, on_signal, srv);
  pthread_t worker;
  pthread_create(&worker, NULL, feed, srv);
  printf("listening on ws://127.0.0.1:%d/\n", dx_server_port(srv));

  dx_loop_run(loop);
  /* Stop the posting thread before freeing the server; what it posted
   * meanwhile is dropped safely. */
  atomic_store(&stopping, true);
  pthread_join(worker, NULL);
  dx_server_free(srv);
  dx_loop_run_once(loop, 0);
  dx_loop_free(loop);
  return 0;
}
