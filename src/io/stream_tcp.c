/* The plain socket transport: recv/sendmsg straight on the fd. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "io/stream.h"

static ssize_t dx__tcp_read(dx_stream *s, uint8_t *buf, size_t cap) {
  for (;;) {
    ssize_t n = recv(s->io.fd, buf, cap, 0);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return DX_EAGAIN;
    dx_log_debug("stream fd %d: recv: %s", s->io.fd, strerror(errno));
    return dx__io_error(errno);
  }
}

static ssize_t dx__tcp_writev(dx_stream *s, const struct iovec *iov, int iovcnt) {
  /* sendmsg, not writev: MSG_NOSIGNAL turns a write to a closed peer into
   * EPIPE instead of a process-killing SIGPIPE. */
  struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
  for (;;) {
    /* One piece (the usual answer to one read) goes by send: the kernel
     * takes a single buffer by a cheaper path than an iovec array. */
    ssize_t n = iovcnt == 1 ? send(s->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                            : sendmsg(s->io.fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return DX_EAGAIN;
    dx_log_debug("stream fd %d: send: %s", s->io.fd, strerror(errno));
    return dx__io_error(errno);
  }
}

static int dx__tcp_shutdown(dx_stream *s) {
  if (shutdown(s->io.fd, SHUT_WR) == 0) return 0;
  dx_log_debug("stream fd %d: shutdown: %s", s->io.fd, strerror(errno));
  return DX_ESYS;
}

static void dx__tcp_close(dx_stream *s) {
  if (s->io.fd >= 0) close(s->io.fd);
}

const dx_transport dx_transport_tcp = {
    .name = "tcp",
    .read = dx__tcp_read,
    .writev = dx__tcp_writev,
    .shutdown = dx__tcp_shutdown,
    .close = dx__tcp_close,
    .pending = NULL,
};

const dx_transport *const dx_transport_tcp_ref = &dx_transport_tcp;
