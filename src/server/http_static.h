/* Static files over plain HTTP for the server (demo pages, duplex.js). */
#ifndef DX_SERVER_HTTP_STATIC_H
#define DX_SERVER_HTTP_STATIC_H

#include <stdbool.h>

#include "duplex/handshake.h"
#include "io/stream.h"

/* Answer GET/HEAD `req` from the directory `root`: queue the response on
 * `s` and return its status (200, 403, 404, 414, 500). For 404 nothing is
 * queued, so the caller can fall back to another answer. Paths are
 * percent-decoded and must stay inside root (no "..", no NUL, symlinks
 * resolved and checked); "/" and directories serve index.html. */
int dx__http_serve_static(dx_stream *s, const char *root, const dx_http_request *req, bool head);

/* Content-Type for a file name by extension. */
const char *dx__mime_type(const char *path);

#endif
