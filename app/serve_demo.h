/* duplex serve --demo: a simulated market feed published on the hub, for
 * the live ticker page. */
#ifndef DX_APP_SERVE_DEMO_H
#define DX_APP_SERVE_DEMO_H

#include "duplex/hub.h"
#include "duplex/loop.h"

/* Start publishing on `loop` (one of the hub's). Returns 0 or 1. */
int serve_demo_start(dx_hub *hub, dx_loop *loop);
/* Stop the feed (its loop's thread, or while the loop does not run). */
void serve_demo_stop(void);

#endif
