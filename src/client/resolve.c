/* Non-blocking name resolution for the client (see resolve.h). */
#include "client/resolve.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct dx_resolve {
  atomic_int refs; /* the thread's and the loop's */
  int efd;
  dx_io io;
  dx_resolve_cb cb;
  void *user;
  struct addrinfo *res;
  int rc;
  int sys_err; /* errno on the lookup thread, for EAI_SYSTEM */
  char host[256];
  char port[8];
};

static void release(dx_resolve *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  if (r->res) freeaddrinfo(r->res);
  close(r->efd);
  free(r);
}

static const struct addrinfo hints_base = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};

static void *resolve_thread(void *arg) {
  dx_resolve *r = arg;
  errno = 0;
  r->rc = getaddrinfo(r->host, r->port, &hints_base, &r->res);
  r->sys_err = errno; /* errno is per thread: the loop thread cannot read this one */
  uint64_t one = 1;
  while (write(r->efd, &one, sizeof one) < 0 && errno == EINTR) {
  }
  release(r);
  return NULL;
}

static void on_done(dx_io *io, unsigned events) {
  (void)events;
  dx_resolve *r = dx_container_of(io, dx_resolve, io);
  dx_io_stop(io);
  struct addrinfo *res = r->res;
  r->res = NULL;
  dx_resolve_cb cb = r->cb;
  void *user = r->user;
  int rc = r->rc, sys_err = r->sys_err;
  release(r);
  cb(user, res, rc, sys_err);
}

dx_resolve *dx_resolve_start(dx_loop *loop, const char *host, unsigned port, dx_resolve_cb cb,
                             void *user) {
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", port);
  /* Numeric hosts need no lookup: answer now. */
  struct addrinfo hints = hints_base, *res = NULL;
  hints.ai_flags = AI_NUMERICHOST;
  if (getaddrinfo(host, portstr, &hints, &res) == 0) {
    cb(user, res, 0, 0);
    return NULL;
  }
  dx_resolve *r = calloc(1, sizeof *r);
  if (!r) {
    cb(user, NULL, EAI_MEMORY, ENOMEM);
    return NULL;
  }
  snprintf(r->host, sizeof r->host, "%s", host);
  memcpy(r->port, portstr, sizeof r->port);
  r->cb = cb;
  r->user = user;
  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  atomic_init(&r->refs, 2);
  pthread_attr_t attr;
  pthread_t t;
  if (r->efd < 0) goto fail;
  dx_io_init(loop, &r->io, r->efd, on_done);
  if (dx_io_start(&r->io, DX_READABLE) != 0) goto fail;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&t, &attr, resolve_thread, r);
  pthread_attr_destroy(&attr);
  if (rc == 0) return r;
  dx_io_stop(&r->io);
  errno = rc;
fail:;
  int err = errno;
  if (r->efd >= 0) close(r->efd);
  free(r);
  cb(user, NULL, EAI_SYSTEM, err);
  return NULL;
}

void dx_resolve_cancel(dx_resolve *r) {
  if (!r) return;
  dx_io_stop(&r->io);
  release(r);
}
