/* TCP listener: non-blocking accept4 loop, address resolution, and a
 * back-off when the process is out of file descriptors. */
#include "io/listener.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "io/loop_internal.h"

#define DX__DEFAULT_BACKLOG 1024
/* Accepts per readable event: the backlog can be refilled by a flood as
 * fast as we drain it, so yield to the other fds now and then. */
#define DX__MAX_ACCEPTS 512
#define DX__ACCEPT_PAUSE_MS 100
#define DX__ACCEPT_WARN_EVERY_MS 10000

struct dx_listener {
  dx_io io;
  dx_timer pause;
  dx_accept_cb cb;
  void *user;
  uint64_t last_warn; /* loop ms of the last "pausing" warning, 0 = never */
  uint16_t port;
  bool in_accept; /* inside the accept loop: close must not free yet */
  bool closed;
};

static void dx__listener_resume(dx_timer *t) {
  dx_listener *l = dx_container_of(t, dx_listener, pause);
  if (dx_io_start(&l->io, DX_READABLE) != 0) dx_timer_start(&l->pause, DX__ACCEPT_PAUSE_MS, 0);
}

static void dx__listener_pause(dx_listener *l, int err) {
  dx_loop *loop = l->io.loop;
  loop->stats.accept_pauses++;
  uint64_t now = dx_loop_now(loop);
  if (l->last_warn == 0 || now - l->last_warn >= DX__ACCEPT_WARN_EVERY_MS) {
    l->last_warn = now ? now : 1;
    dx_log_warn("accept on port %u: %s; pausing accepts for %d ms", l->port, strerror(err),
                DX__ACCEPT_PAUSE_MS);
  }
  dx_io_stop(&l->io);
  dx_timer_start(&l->pause, DX__ACCEPT_PAUSE_MS, 0);
}

static void dx__listener_on_io(dx_io *io, unsigned events) {
  dx_listener *l = dx_container_of(io, dx_listener, io);
  l->in_accept = true;
  for (int i = 0; i < DX__MAX_ACCEPTS && !l->closed; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->io.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      /* EMFILE, ENFILE, ENOBUFS, ENOMEM, or something unexpected: the
       * socket stays readable, so retrying now would spin. */
      dx__listener_pause(l, err);
      break;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->cb(l->user, fd, (const struct sockaddr *)&ss, len);
  }
  l->in_accept = false;
  if (l->closed) free(l);
}

/* A listening socket on addr, or -errno. */
static int dx__listen_on(const struct sockaddr *addr, socklen_t len, bool dual_stack,
                         const dx_listener_opts *o) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) goto fail;
  if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) goto fail;
  if (addr->sa_family == AF_INET6 && dual_stack &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0)
    goto fail;
  if (bind(fd, addr, len) != 0) goto fail;
  if (listen(fd, o->backlog) != 0) goto fail;
  return fd;
fail:;
  int err = errno;
  close(fd);
  return -err;
}

static void dx__addr_text(const struct sockaddr *a, char *buf, size_t cap) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    snprintf(buf, cap, "%s:%u", host, port);
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)a;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    snprintf(buf, cap, "[%s]:%u", host, port);
  }
}

/* Bind the first address of host:port that works. Returns fd, or -errno
 * after logging why. */
static int dx__open_socket(const char *host, uint16_t port, const dx_listener_opts *o) {
  bool any6 = host == NULL || strcmp(host, "::") == 0;
  if (any6) {
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    a6.sin6_addr = in6addr_any;
    int fd = dx__listen_on((const struct sockaddr *)&a6, sizeof a6, true, o);
    if (fd < 0 && host == NULL && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
      /* No IPv6 on this host: plain IPv4. */
      struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
      a4.sin_addr.s_addr = htonl(INADDR_ANY);
      fd = dx__listen_on((const struct sockaddr *)&a4, sizeof a4, false, o);
    }
    if (fd < 0)
      dx_log_error("listen on %s:%u: %s", host ? host : "*", (unsigned)port, strerror(-fd));
    return fd;
  }

  char service[8];
  snprintf(service, sizeof service, "%u", (unsigned)port);
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, service, &hints, &res);
  if (gai != 0) {
    dx_log_error("listen on %s:%u: cannot resolve: %s", host, (unsigned)port, gai_strerror(gai));
    return -EADDRNOTAVAIL;
  }
  int fd = -EADDRNOTAVAIL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = dx__listen_on(ai->ai_addr, ai->ai_addrlen, false, o);
    if (fd >= 0) break;
  }
  freeaddrinfo(res);
  if (fd < 0) dx_log_error("listen on %s:%u: %s", host, (unsigned)port, strerror(-fd));
  return fd;
}

int dx_listener_open(dx_loop *loop, const char *host, uint16_t port, const dx_listener_opts *opts,
                     dx_accept_cb on_accept, void *user, dx_listener **out) {
  DX__CHECK_THREAD(loop);
  if (!on_accept || !out) return DX_EINVAL;
  *out = NULL;
  dx_listener_opts o = opts ? *opts : (dx_listener_opts){0};
  if (o.backlog <= 0) o.backlog = DX__DEFAULT_BACKLOG;

  dx_listener *l = calloc(1, sizeof *l);
  if (!l) return DX_ENOMEM;
  int fd = dx__open_socket(host, port, &o);
  if (fd < 0) { /* logged */
    free(l);
    return DX_ESYS;
  }

  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
    l->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  dx_io_init(loop, &l->io, fd, dx__listener_on_io);
  dx_timer_init(loop, &l->pause, dx__listener_resume);
  l->cb = on_accept;
  l->user = user;
  int rc = dx_io_start(&l->io, DX_READABLE);
  if (rc) {
    close(fd);
    free(l);
    return rc;
  }
  char text[INET6_ADDRSTRLEN + 16];
  dx__addr_text((const struct sockaddr *)&ss, text, sizeof text);
  dx_log_debug("listening on %s (fd %d)", text, fd);
  *out = l;
  return 0;
}

uint16_t dx_listener_port(const dx_listener *l) { return l->port; }

int dx_listener_fd(const dx_listener *l) { return l->io.fd; }

void dx_listener_close(dx_listener *l) {
  if (!l || l->closed) return;
  DX__CHECK_THREAD_VOID(l->io.loop);
  dx_io_stop(&l->io);
  dx_timer_stop(&l->pause);
  close(l->io.fd);
  l->io.fd = -1;
  l->closed = true;
  if (!l->in_accept) free(l);
}
