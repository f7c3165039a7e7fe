/* Signals as loop events: one signalfd per loop, created on first use, its
 * mask grown as signals are registered. Running handlers on the loop thread
 * means they may call any loop function, unlike async signal handlers. */
#include "io/loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"

static void dx__on_signal(dx_io *io, unsigned events) {
  dx_loop *loop = dx_container_of(io, dx_loop, sig_io);
  struct signalfd_siginfo si[8];
  for (;;) {
    ssize_t n = read(loop->sig_fd, si, sizeof si);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN: drained */
    }
    size_t count = (size_t)n / sizeof si[0];
    for (size_t i = 0; i < count; i++) {
      int signo = (int)si[i].ssi_signo;
      /* Look up on every delivery: a handler may unregister others. */
      for (size_t j = 0; j < loop->sigs_len; j++) {
        if (loop->sigs[j].signo == signo) {
          dx__sig_entry e = loop->sigs[j];
          e.cb(loop, signo, e.arg);
          dx__loop_drain_deferred(loop);
          break;
        }
      }
    }
    if (count < sizeof si / sizeof si[0]) return;
  }
}

int dx_loop_signal(dx_loop *loop, int signo, dx_signal_cb cb, void *arg) {
  DX__CHECK_THREAD(loop);
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) return DX_EINVAL;

  size_t i = 0;
  while (i < loop->sigs_len && loop->sigs[i].signo != signo) i++;
  if (!cb) {
    /* Unregister: the signal stays blocked and in the signalfd mask, so a
     * late one is read and dropped rather than killing the process. */
    if (i < loop->sigs_len) loop->sigs[i] = loop->sigs[--loop->sigs_len];
    return 0;
  }
  if (i < loop->sigs_len) {
    loop->sigs[i].cb = cb;
    loop->sigs[i].arg = arg;
    return 0;
  }

  dx__sig_entry *n = realloc(loop->sigs, (loop->sigs_len + 1) * sizeof *n);
  if (!n) return DX_ENOMEM;
  loop->sigs = n;

  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
  if (rc != 0) {
    dx_log_error("pthread_sigmask: %s", strerror(rc));
    return DX_ESYS;
  }
  sigset_t mask = loop->sig_mask;
  sigaddset(&mask, signo);
  int fd = signalfd(loop->sig_fd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    dx_log_error("signalfd(%d): %s", signo, strerror(errno));
    return DX_ESYS;
  }
  if (loop->sig_fd < 0) {
    loop->sig_fd = fd;
    dx_io_init(loop, &loop->sig_io, fd, dx__on_signal);
    rc = dx_io_start(&loop->sig_io, DX_READABLE);
    if (rc) {
      close(fd);
      loop->sig_fd = -1;
      return rc;
    }
  }
  loop->sig_mask = mask;
  loop->sigs[loop->sigs_len++] = (dx__sig_entry){signo, cb, arg};
  return 0;
}

void dx__signals_free(dx_loop *loop) {
  if (loop->sig_fd >= 0) {
    if (loop->sig_io.registered) dx_io_stop(&loop->sig_io);
    close(loop->sig_fd);
    loop->sig_fd = -1;
  }
  free(loop->sigs);
  loop->sigs = NULL;
  loop->sigs_len = 0;
}
