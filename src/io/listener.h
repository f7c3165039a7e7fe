/* duplex — TCP listeners.
 *
 * A listener accepts connections on one address and hands each new socket
 * to on_accept. Accepted sockets are non-blocking, close-on-exec and have
 * TCP_NODELAY set (the write queue already coalesces, so Nagle would only
 * add latency). Give them to dx_stream_init_tcp.
 *
 * When the process runs out of file descriptors (EMFILE, ENFILE) or kernel
 * memory (ENOBUFS, ENOMEM), accepting pauses for 100 ms instead of
 * spinning on a listen socket that stays readable; a warning is logged (at
 * most once per 10 s) and dx__loop_stats()->accept_pauses counts pauses.
 *
 * Threads: loop thread only. For N loops on N threads, open one listener
 * per loop on the same port with .reuseport = true.
 */
#ifndef DX_IO_LISTENER_H
#define DX_IO_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "duplex/loop.h"

typedef struct dx_listener dx_listener;

/* A new connection. The callback owns `fd` (close it or hand it on).
 * `addr` is the peer address, valid only during the call. The callback may
 * close the listener. */
typedef void (*dx_accept_cb)(void *user, int fd, const struct sockaddr *addr, socklen_t addrlen);

typedef struct dx_listener_opts {
  int backlog;    /* listen() backlog; default 1024 (the kernel caps it at somaxconn) */
  bool reuseport; /* SO_REUSEPORT: several sockets (loops) share the port */
} dx_listener_opts;

/* Bind and listen on host:port and start accepting. `host`:
 *   NULL      all interfaces, IPv6 and IPv4 (dual-stack "::", falling back
 *             to 0.0.0.0 where IPv6 is unavailable)
 *   "0.0.0.0" all IPv4 interfaces;  "::" all interfaces, dual-stack
 *   a numeric address ("127.0.0.1", "::1") or a name ("localhost"),
 *             resolved with getaddrinfo (blocking); the first address that
 *             binds is used
 * `port` 0 picks a free port (see dx_listener_port). SO_REUSEADDR is always
 * set. `opts` may be NULL. On success stores the listener in *out and
 * returns 0; else DX_ESYS (logged: address in use, permission denied,
 * unknown host...), DX_ENOMEM, DX_EINVAL, DX_EWRONG_THREAD. */
int dx_listener_open(dx_loop *loop, const char *host, uint16_t port, const dx_listener_opts *opts,
                     dx_accept_cb on_accept, void *user, dx_listener **out);

/* The bound port (the real one when opened with port 0). */
uint16_t dx_listener_port(const dx_listener *l);

/* The listening socket. */
int dx_listener_fd(const dx_listener *l);

/* Stop accepting, close the socket and free the listener. Safe inside
 * on_accept (the memory is released when the accept loop returns). NULL is
 * a no-op. */
void dx_listener_close(dx_listener *l);

#endif /* DX_IO_LISTENER_H */
