/* hub — the sessions of the HTTP transports (long-polling, SSE + POST).
 * A browser on these transports makes many requests; its session makes
 * them ONE client: one client id, presence entries that stay while it
 * keeps polling (and leave once, when it stops), publish and subscribe
 * rate buckets and one count against --max-connections-per-user.
 *
 * The id is 128 random bits (32 hex digits), issued on a poll or SSE
 * stream without one and sent back as ?session= (or X-Duplex-Session).
 * A session of a token's user is used only with a token of that user.
 * It lives while requests of it are in flight and for idle_ms after the
 * last one ended; then the loop-0 sweep expires it.
 *
 * Threads: one table for the whole hub under its mutex, because requests
 * of one session land on any loop with --threads N (SO_REUSEPORT picks
 * the loop per TCP connection). A session's fields change only under the
 * mutex; presence changes go to the core (its own lock) after the mutex is
 * released. */
#ifndef DX_HUB_POLL_SESSION_H
#define DX_HUB_POLL_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/limits.h"
#include "hub/map.h"

#define HUB_SID_LEN 32 /* hex digits */

struct dx_hub;
struct hub_stream_topics;
typedef struct hub_psession hub_psession;

typedef struct hub_psessions {
  pthread_mutex_t mu;
  hub_map map; /* sid -> hub_psession */
  uint64_t idle_ms;
  _Atomic uint64_t open, opened, expired; /* for /metrics */
} hub_psessions;

void hub_psessions_init(hub_psessions *t, uint64_t idle_ms);
/* At dx_hub_free: forget every session (no events: nobody listens). */
void hub_psessions_free(struct dx_hub *h);

/* The session `sid` names, held for one request (release it when the
 * request ends), or NULL when unknown or expired. */
hub_psession *hub_psession_find(struct dx_hub *h, const char *sid);
/* A new session for a client that was just admitted: its ids, its user
 * and the user's connection count (*user_peer, taken over; the session
 * releases it) and an address count (ip, taken over, may be NULL). Held
 * for the calling request. NULL when out of randomness or memory. */
hub_psession *hub_psession_new(struct dx_hub *h, const char *client, uint64_t conn,
                               const char *user, hub_peer **user_peer, hub_peer *ip);
/* The request that held it ended: from the last one, the idle time runs. */
void hub_psession_release(struct dx_hub *h, hub_psession *ps);

const char *hub_psession_id(const hub_psession *ps);
const char *hub_psession_client(const hub_psession *ps);
uint64_t hub_psession_conn(const hub_psession *ps);
const char *hub_psession_user(const hub_psession *ps);

/* Take a rate token (the session's buckets): 0, or ms until one is there.
 * A subscribe of a topic the session already has is a continuation (the
 * next poll) and costs nothing: pass the topic for subscribes. */
uint32_t hub_psession_rate(struct dx_hub *h, hub_psession *ps, bool publish, double rate,
                           const char *topic, size_t topic_len);
/* The session subscribed to `topic`: remember it and, unless presence is
 * off there, list it in the topic's presence (a join to the others) the
 * first time. `info` is JSON text or NULL (fixed by the first join). */
void hub_psession_join(struct dx_hub *h, hub_psession *ps, const char *topic, size_t len,
                       const char *info, bool presence_off);
/* A poll or stream names all the session's topics: leave the others. */
void hub_psession_keep(struct dx_hub *h, hub_psession *ps, const struct hub_stream_topics *st);

/* Expire idle sessions (loop 0, once a second): their presence entries
 * leave (a leave event each), their counts are released. */
void hub_psessions_sweep(struct dx_hub *h);

/* The id from ?session= or X-Duplex-Session into out (HUB_SID_LEN + 1):
 * 1 found and well-formed, 0 absent, -1 malformed. */
struct dx_http_req;
int hub_psession_param(struct dx_http_req *req, char *out);
/* The session a request names, held (*ps; NULL when it names none): 0, or
 * -1 after answering the request (400 malformed, 410 unknown). With or_new
 * (a handshake) an unknown id is no error: *ps is NULL, a new one starts. */
int hub_psession_from_request(struct dx_http_req *req, struct dx_hub *h, hub_psession **ps,
                              bool or_new);
/* Answer 410 {"ok":false,"error":{"code":"unknown_session",...}}: the
 * session expired or is another user's; start a new one. */
void hub_psession_gone(struct dx_http_req *req);

#endif
