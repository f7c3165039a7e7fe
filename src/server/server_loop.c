/* dx_server_loop: the loop a server runs on, for components (the hub) that
 * attach to a server and need its timers or posts. */
#include "duplex/server.h"
#include "server/server_internal.h"

dx_loop *dx_server_loop(const dx_server *srv) { return srv->loop; }
