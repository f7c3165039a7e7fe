/* WebSocket routes: handlers per exact path, the "*" fallback, and the
 * subprotocols each route offers. */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

dx_ws_route *dx__server_find_route(const dx_server *srv, const char *path, size_t len) {
  dx_ws_route *any = NULL;
  for (dx_ws_route *r = srv->routes; r; r = r->next) {
    if (strlen(r->path) == len && memcmp(r->path, path, len) == 0) return r;
    if (strcmp(r->path, "*") == 0) any = r;
  }
  return any;
}

int dx_server_route(dx_server *srv, const char *path, const dx_ws_handlers *handlers, void *user) {
  DX__CHECK_THREAD(srv->loop);
  if (srv->freed) return DX_ESTATE;
  if (!path || !handlers || (path[0] != '/' && strcmp(path, "*") != 0)) return DX_EINVAL;
  /* Connections are allocated at accept, before the route is known. */
  if ((srv->listener || srv->tls_listener) && handlers->data_size > srv->max_data_size)
    return DX_ESTATE;
  dx_ws_route *r = dx__server_find_route(srv, path, strlen(path));
  if (!r || strcmp(r->path, path) != 0) {
    r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
      free(r);
      return DX_ENOMEM;
    }
    r->next = srv->routes;
    srv->routes = r;
  }
  r->h = *handlers;
  r->user = user;
  if (handlers->data_size > srv->max_data_size) srv->max_data_size = handlers->data_size;
  return 0;
}

static void free_protocols(char **p) {
  for (size_t i = 0; p && p[i]; i++) free(p[i]);
  free(p);
}

int dx_server_route_protocols(dx_server *srv, const char *path, const char *const *protocols) {
  DX__CHECK_THREAD(srv->loop);
  dx_ws_route *r = dx__server_find_route(srv, path, strlen(path));
  if (!r || strcmp(r->path, path) != 0) return DX_EINVAL;
  size_t n = 0;
  while (protocols && protocols[n]) n++;
  char **copy = calloc(n + 1, sizeof *copy);
  if (!copy) return DX_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!(copy[i] = strdup(protocols[i]))) {
      free_protocols(copy);
      return DX_ENOMEM;
    }
  }
  free_protocols(r->protocols);
  r->protocols = copy;
  return 0;
}

void dx__server_free_routes(dx_server *srv) {
  for (dx_ws_route *r = srv->routes, *next; r; r = next) {
    next = r->next;
    free(r->path);
    free_protocols(r->protocols);
    free(r);
  }
  srv->routes = NULL;
}
