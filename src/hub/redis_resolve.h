/* hub — a host name lookup for the Redis client off the loop thread: getaddrinfo runs on a
 * short-lived detached thread that signals an eventfd the loop watches; a reference count lets
 * either side finish last (a cancelled lookup frees itself when the thread is done). Numeric
 * addresses never come here (the client converts them itself). */
#ifndef HUB_REDIS_RESOLVE_H
#define HUB_REDIS_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#include "duplex/loop.h"

typedef struct hub_redis_resolve hub_redis_resolve;

/* On the loop thread: the first address (TCP), or NULL and a reason ("Name or service not
 * known"). */
typedef void (*hub_redis_resolve_cb)(void *user, const struct sockaddr *sa, socklen_t salen,
                                     const char *why);

/* Start; NULL if no thread could be started (errno set; the callback will not run). */
hub_redis_resolve *hub_redis_resolve_start(dx_loop *loop, const char *host, uint16_t port,
                                           hub_redis_resolve_cb cb, void *user);

/* The callback will not run. */
void hub_redis_resolve_cancel(hub_redis_resolve *q);

#endif
