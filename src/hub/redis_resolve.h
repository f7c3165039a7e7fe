/* hub — a host name lookup for the Redis client off the loop thread: getaddrinfo runs on a
 * short-lived detached thread that signals an eventfd the loop watches; a reference count lets
 * either side finish last (a cancelled lookup frees itself when the thread is done). Numeric
 * addresses never come here (the client converts them itself). The client tries the addresses in
 * turn (a name with an IPv6 and an IPv4 address where the server listens on one of them). */
#ifndef HUB_REDIS_RESOLVE_H
#define HUB_REDIS_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#include "duplex/loop.h"

typedef struct hub_redis_resolve hub_redis_resolve;

/* The addresses to try in order (getaddrinfo's order, at most 4). */
#define HUB_REDIS_RESOLVE_MAX 4
typedef struct hub_redis_sockaddrs {
  unsigned n;
  struct sockaddr_storage ss[HUB_REDIS_RESOLVE_MAX];
  socklen_t len[HUB_REDIS_RESOLVE_MAX];
} hub_redis_sockaddrs;

/* On the loop thread: the addresses (TCP), or none (a->n == 0) and a reason ("cannot resolve
 * HOST: Name or service not known"). */
typedef void (*hub_redis_resolve_cb)(void *user, const hub_redis_sockaddrs *a, const char *why);

/* Start; NULL if no thread could be started (errno set; the callback will not run). */
hub_redis_resolve *hub_redis_resolve_start(dx_loop *loop, const char *host, uint16_t port,
                                           hub_redis_resolve_cb cb, void *user);

/* The callback will not run. */
void hub_redis_resolve_cancel(hub_redis_resolve *q);

#endif
