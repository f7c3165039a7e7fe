/* The memory budget of an idle connection (issue 15: at most 300 bytes of
 * server RSS per idle WebSocket connection).
 *
 * Static: the structs every connection carries may not grow. dx_ws (128)
 * and the embedded dx_proto (72) are one 200-byte allocation, a 208-byte
 * glibc chunk;
 * what a connection needs only before it opens (dx_ws_pre) fits where the
 * proto goes.
 *
 * Runtime: 2,000 upgraded idle connections in-process, heap growth per
 * connection from the allocator's own counters (mallinfo2, or ASan's
 * allocated bytes): the object, a slot and a deadline in the server's
 * table, nothing else (no handshake buffer, read buffer, write queue,
 * timer or per-connection strings: connections with the same path share
 * them). */
#include <sys/resource.h>

#include "server_helpers.h"
#include "proto/proto_embed.h"
#include "ws/ws_internal.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DX_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DX_TEST_ASAN 1
#endif
#ifdef DX_TEST_ASAN
#include <sanitizer/allocator_interface.h>
#elif defined(__GLIBC__)
#include <malloc.h>
#endif

/* The budget: object bytes, and heap bytes per idle connection. */
#define OBJECT_BUDGET 200
#define HEAP_BUDGET 230

_Static_assert(sizeof(dx_ws) <= 128, "dx_ws grew: every connection pays for it");
_Static_assert(sizeof(dx_stream) <= 80, "dx_stream grew: every connection pays for it");
_Static_assert(sizeof(dx_ws_pre) <= 72, "dx_ws_pre must fit where the dx_proto goes");

TEST(connection_object_fits_the_budget) {
  size_t one = dx__ws_alloc_size(0);
  printf("per-connection allocation: %zu bytes (dx_ws %zu: stream %zu; dx_proto %zu embedded, "
         "%zu stand-alone)\n",
         one, sizeof(dx_ws), sizeof(dx_stream), dx__proto_embedded_size(), dx_proto_size());
  CHECK(dx_proto_size() <= 104);
  CHECK(dx__proto_embedded_size() <= 72);
  CHECK(dx__proto_embedded_size() >= sizeof(dx_ws_pre));
  CHECK(one <= OBJECT_BUDGET);
  CHECK_EQ_INT(one, sizeof(dx_ws) + dx__proto_embedded_size());
  /* User data goes after the proto, aligned for anything. */
  size_t a = _Alignof(max_align_t);
  size_t with = dx__ws_alloc_size(40);
  CHECK(with >= one + 40 && with < one + 40 + a);
  CHECK_EQ_INT((with - 40) % a, 0);
}

static size_t heap_in_use(void) {
#ifdef DX_TEST_ASAN
  return __sanitizer_get_current_allocated_bytes();
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return mallinfo2().uordblks;
#else
  return 0;
#endif
}

static int opened;
static const char *paths[2];
static void on_open(dx_ws *ws, void *user) {
  (void)user;
  if (opened < 2) paths[opened] = dx_ws_path(ws);
  opened++;
}

TEST(idle_connections_stay_within_the_budget) {
  if (heap_in_use() == 0) {
    printf("no allocator statistics here; skipped\n");
    return;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 8192 && rl.rlim_max > rl.rlim_cur) {
    rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  int n = 2000;
  if ((rlim_t)(2 * n + 64) > rl.rlim_cur) n = (int)(rl.rlim_cur - 64) / 2;
  if (n < 100) {
    printf("only %d file descriptors; skipped\n", (int)rl.rlim_cur);
    return;
  }
  const int warm = 32;
  int *fds = calloc((size_t)(n + warm), sizeof *fds);
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_open = on_open};
  dx_server_route(srv, "/", &h, NULL);
  int port = start_listening(srv);
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  char sink[4096];
  size_t base = 0;
  uint64_t t0 = now_ms();
  for (int i = 0; i < n + warm; i++) {
    if (i == warm) {
      /* Warm-up done (the loop's read buffer, the timer heap, the
       * free-later queue, the shared strings exist): the baseline. */
      RUN_UNTIL(loop, opened == warm, 5000);
      for (int k = 0; k < 5; k++) dx_loop_run_once(loop, 0);
      base = heap_in_use();
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      perror("connect");
      CHECK(!"connect failed");
      n = i > warm ? i - warm : 0;
      if (fd >= 0) close(fd);
      break;
    }
    fds[i] = fd;
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) CHECK(!"short write");
    if (i % 16 == 15) dx_loop_run_once(loop, 0); /* keep the backlog short */
  }
  RUN_UNTIL(loop, opened == n + warm, 20000);
  CHECK_EQ_INT(opened, n + warm);
  for (int k = 0; k < 5; k++) dx_loop_run_once(loop, 0); /* flush the 101s, free later */
  size_t after = heap_in_use();
  double per = after > base ? (double)(after - base) / n : 0;
  printf("%d idle connections: %zu bytes of heap, %.1f bytes each (object %zu) in %llu ms\n", n,
         after - base, per, dx__ws_alloc_size(0), (unsigned long long)(now_ms() - t0));
  CHECK(per >= (double)dx__ws_alloc_size(0));
  CHECK(per <= HEAP_BUDGET);
  /* Same path, query and protocol: one strings block for all. */
  CHECK(paths[0] && paths[0] == paths[1]);
  CHECK_EQ_INT(dx_server_connections(srv), n + warm);

  /* Every client got its 101. */
  int ok = 0;
  for (int i = 0; i < n + warm; i++) {
    ssize_t r = recv(fds[i], sink, sizeof sink, MSG_DONTWAIT);
    if (r > 12 && memcmp(sink, "HTTP/1.1 101", 12) == 0) ok++;
    close(fds[i]);
  }
  CHECK_EQ_INT(ok, n + warm);
  free(fds);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 10000);
  CHECK_EQ_INT(dx_server_connections(srv), 0);
  teardown(loop, srv);
}

/* Different queries: each connection keeps its own strings, and a
 * connection's strings outlive the shared block's other users. */
static const char *qs[2];
static void on_open_q(dx_ws *ws, void *user) {
  (void)user;
  if (opened < 2) qs[opened] = dx_ws_query(ws);
  opened++;
}

TEST(strings_are_shared_only_when_equal) {
  opened = 0;
  dx_loop *loop = dx_loop_new(NULL);
  dx_server *srv = make_server(loop, (dx_server_opts){0});
  dx_ws_handlers h = {.on_open = on_open_q};
  dx_server_route(srv, "/", &h, NULL);
  int port = start_listening(srv);
  raw *a = raw_ws_open(loop, port, "/?a=1", NULL, NULL);
  raw *b = raw_ws_open(loop, port, "/?b=22", NULL, NULL);
  RUN_UNTIL(loop, opened == 2, 5000);
  CHECK(a && b && opened == 2);
  CHECK(qs[0] && qs[1] && qs[0] != qs[1]);
  CHECK(qs[0] && strcmp(qs[0], "a=1") == 0);
  CHECK(qs[1] && strcmp(qs[1], "b=22") == 0);
  raw_close(a);
  raw_close(b);
  RUN_UNTIL(loop, dx_server_connections(srv) == 0, 5000);
  teardown(loop, srv);
}

int main(void) {
  RUN(connection_object_fits_the_budget);
  RUN(idle_connections_stay_within_the_budget);
  RUN(strings_are_shared_only_when_equal);
  return test_report();
}
