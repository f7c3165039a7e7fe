/* Name resolution off the loop thread: getaddrinfo runs on a short-lived
 * thread that never touches the loop; it signals an eventfd the loop
 * watches. Either side may finish last; a reference count frees the
 * request. */
#ifndef DX_CLIENT_RESOLVE_H
#define DX_CLIENT_RESOLVE_H

#include <netdb.h>

#include "duplex/loop.h"

typedef struct dx_resolve dx_resolve;

/* Called on the loop thread with the addresses (owned by the callee: free
 * with freeaddrinfo) or NULL and a getaddrinfo error code; for EAI_SYSTEM,
 * sys_err is the errno of the thread that ran the lookup. */
typedef void (*dx_resolve_cb)(void *user, struct addrinfo *res, int gai_err, int sys_err);

/* Start resolving host:port (TCP). Numeric addresses are answered at once,
 * before this returns. Returns the request (for dx_resolve_cancel; it is
 * gone after the callback), or NULL if nothing could be started — then the
 * callback has already run with the error. */
dx_resolve *dx_resolve_start(dx_loop *loop, const char *host, unsigned port, dx_resolve_cb cb,
                             void *user);

/* Forget a request in flight: the callback will not run. */
void dx_resolve_cancel(dx_resolve *r);

#endif
