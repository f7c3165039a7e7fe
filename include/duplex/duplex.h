/* duplex — the whole library in one include.
 *
 *   #include <duplex/duplex.h>
 *
 * Each header also stands alone; include the few you use if you prefer.
 * (The pub/sub hub, duplex/hub.h, is a library of its own and not
 * included here.)
 */
#ifndef DUPLEX_DUPLEX_H
#define DUPLEX_DUPLEX_H

#include "duplex/common.h"
#include "duplex/version.h"

#include "duplex/error.h"
#include "duplex/log.h"

/* The event loop: timers, deferred calls, cross-thread posts. */
#include "duplex/loop.h"

/* Sans-I/O protocol pieces: frames, UTF-8, HTTP handshake, the connection
 * state machine, permessage-deflate. */
#include "duplex/deflate.h"
#include "duplex/frame.h"
#include "duplex/handshake.h"
#include "duplex/proto.h"
#include "duplex/utf8.h"

/* Connections, servers (with plain HTTP handlers) and clients over ws://
 * and wss://. */
#include "duplex/client.h"
#include "duplex/http.h"
#include "duplex/server.h"
#include "duplex/tls.h"
#include "duplex/ws.h"

#endif /* DUPLEX_DUPLEX_H */
