/* hub — host name lookup off the loop thread (see redis_resolve.h). */
#include "hub/redis_resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct hub_redis_resolve {
  atomic_int refs; /* the lookup thread's and the loop's */
  int efd;
  dx_io io;
  hub_redis_resolve_cb cb;
  void *user;
  /* Written by the thread before it signals efd; read on the loop after. */
  hub_redis_sockaddrs a;
  char why[128];
  char host[256];
  char port[8];
};

static void unref(hub_redis_resolve *q) {
  if (atomic_fetch_sub(&q->refs, 1) != 1) return;
  close(q->efd);
  free(q);
}

static void *lookup(void *arg) {
  hub_redis_resolve *q = arg;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
  int rc = getaddrinfo(q->host, q->port, &hints, &res);
  for (struct addrinfo *ai = rc == 0 ? res : NULL; ai && q->a.n < HUB_REDIS_RESOLVE_MAX;
       ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof q->a.ss[0]) continue;
    memcpy(&q->a.ss[q->a.n], ai->ai_addr, ai->ai_addrlen);
    q->a.len[q->a.n++] = ai->ai_addrlen;
  }
  if (!q->a.n) {
    snprintf(q->why, sizeof q->why, "cannot resolve %.50s: %.50s", q->host,
             rc == EAI_SYSTEM ? strerror(errno)
             : rc             ? gai_strerror(rc)
                              : "no address");
  }
  if (res) freeaddrinfo(res);
  uint64_t one = 1;
  while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  unref(q);
  return NULL;
}

static void on_done(dx_io *io, unsigned events) {
  (void)events;
  hub_redis_resolve *q = dx_container_of(io, hub_redis_resolve, io);
  dx_io_stop(io);
  q->cb(q->user, &q->a, q->a.n ? NULL : q->why);
  unref(q);
}

hub_redis_resolve *hub_redis_resolve_start(dx_loop *loop, const char *host, uint16_t port,
                                           hub_redis_resolve_cb cb, void *user) {
  hub_redis_resolve *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  snprintf(q->host, sizeof q->host, "%s", host);
  snprintf(q->port, sizeof q->port, "%u", (unsigned)port);
  q->cb = cb;
  q->user = user;
  atomic_init(&q->refs, 2);
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0) {
    free(q);
    return NULL;
  }
  dx_io_init(loop, &q->io, q->efd, on_done);
  pthread_attr_t attr;
  pthread_t t;
  int rc = dx_io_start(&q->io, DX_READABLE) == 0 ? 0 : EIO;
  if (rc == 0) {
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, lookup, q);
    pthread_attr_destroy(&attr);
  }
  if (rc == 0) return q;
  dx_io_stop(&q->io);
  close(q->efd);
  free(q);
  errno = rc;
  return NULL;
}

void hub_redis_resolve_cancel(hub_redis_resolve *q) {
  if (!q) return;
  dx_io_stop(&q->io);
  unref(q);
}
