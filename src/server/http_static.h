/* Static files over plain HTTP for the server (demo pages, duplex.js). */
#ifndef DX_SERVER_HTTP_STATIC_H
#define DX_SERVER_HTTP_STATIC_H

#include <stdbool.h>

#include "duplex/handshake.h"
#include "io/stream.h"

/* The rest of a file too large to queue at once: sent a chunk at a time as
 * the connection drains, so a slow reader holds at most about two chunks. */
typedef struct dx_static_body dx_static_body;

/* Answer GET/HEAD `req` from the directory `root`: queue the response on
 * `s` and return its status (200, 403, 404, 414, 500). For 404 nothing is
 * queued, so the caller can fall back to another answer. Paths are
 * percent-decoded and must stay inside root (no "..", no NUL, symlinks
 * resolved and checked); "/" and directories serve index.html. When the
 * file is larger than one chunk, *rest receives what is left to send (call
 * dx__static_body_pump on each drain), else NULL. */
int dx__http_serve_static(dx_stream *s, const char *root, const dx_http_request *req, bool head,
                          dx_static_body **rest);

/* Queue the next chunk. Returns 1 when the whole body is queued (b is then
 * freed), 0 when more remains, or a negative code (b freed). */
int dx__static_body_pump(dx_stream *s, dx_static_body *b);

/* Forget a body that will not be sent (connection gone). NULL is ok. */
void dx__static_body_free(dx_static_body *b);

/* Content-Type for a file name by extension. */
const char *dx__mime_type(const char *path);

#endif
