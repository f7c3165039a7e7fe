/* duplex — plain HTTP handlers on a dx_server (an HTTP API beside the
 * WebSocket routes, on the same port).
 *
 *   static void publish(dx_http_req *req, void *app) {
 *     size_t len;
 *     const void *body = dx_http_body(req, &len);
 *     char topic[128];
 *     if (strcmp(dx_http_method(req), "POST") != 0) {
 *       dx_http_respond(req, 405, "text/plain", "Allow: POST\r\n", "POST only\n", 10);
 *       return;
 *     }
 *     if (dx_http_query_param(req, "topic", topic, sizeof topic) < 0) {
 *       dx_http_respond(req, 400, "text/plain", NULL, "topic?\n", 7);
 *       return;
 *     }
 *     ...
 *     dx_http_respond(req, 200, "application/json", NULL, "{\"ok\":true}", 11);
 *   }
 *   dx_server_http(srv, "/api/publish", publish, app);
 *
 * Routing. `path` is matched against the request path as sent (not
 * percent-decoded, without the query): an exact path ("/api/publish"), or,
 * ending in '/', a prefix matching every path under it ("/api/" matches
 * "/api/x/y", not "/api"). An exact route wins over a prefix, a longer
 * prefix over a shorter one. An exact route also wins over the built-in
 * GET /healthz; a prefix route does not ("/" does not hide /healthz).
 * Handler routes win over static files (dx_server_opts.static_dir).
 * Upgrade requests go to the WebSocket route of the path (dx_server_route)
 * as before; a request without an upgrade on a path that has both goes to
 * the handler. Any method reaches the handler, which checks it.
 *
 * Bodies. A request body is read by its Content-Length and handed to the
 * handler whole (gathered across reads). Past dx_server_opts.max_body
 * (default 1 MiB) the server answers 413 without calling the handler;
 * a request with Transfer-Encoding (chunked bodies) gets 411 Length
 * Required; a bad Content-Length gets 400. "Expect: 100-continue" is
 * answered with 100 Continue when the body is still to come. The
 * handshake timeout (dx_server_opts.handshake_timeout) bounds the whole
 * request, head and body. Each of these answers closes the connection.
 *
 * Keep-alive. After a handler's response the connection stays open for
 * the next request when the client asked for it (HTTP/1.1 without
 * "Connection: close", or HTTP/1.0 with "Connection: keep-alive");
 * pipelined requests are answered in order. An idle kept connection is
 * closed after the handshake timeout. The server answers "Connection:
 * close" and closes when shutting down, and when more than max_buffered
 * response bytes are still unsent (a client pipelining without reading).
 * Answers that are not a handler's (static files, /healthz, errors, 404)
 * close the connection as they always did.
 *
 * Lifetime: a dx_http_req and every pointer obtained from it (method,
 * path, query, header values, body) are valid only during the handler
 * call; copy what you keep. The handler must answer before it returns
 * (dx_http_respond, or a whole stream), or defer the request with
 * dx_http_defer; if it does neither, the server answers 500 and logs it.
 *
 * Deferred and streamed answers (long-polling, Server-Sent Events). After
 * dx_http_defer the request outlives the handler: answer it later with
 * dx_http_respond, or stream it (dx_http_stream_start, _write, _end). The
 * request's accessors (method, path, query, headers, body) work only
 * during the handler call; after it only the answering functions,
 * dx_http_buffered and dx_http_peer_str do. Pipelined requests behind a
 * deferred one wait for its answer (HTTP/1.1 ordering), and no timeout
 * applies to it (the caller bounds the wait). If the connection goes away
 * first (the client closed it, an error, backpressure, dx_server_free,
 * or dx_server_shutdown, which ends every deferred request so that it
 * completes), on_gone runs once; req is invalid after on_gone and after
 * the answer is complete (dx_http_respond, dx_http_stream_end).
 * Threads: handlers run on the server's loop thread; call these functions
 * only on it (inside the handler, or later on a deferred request).
 * Errors: negative DX_E* codes (duplex/error.h).
 */
#ifndef DUPLEX_HTTP_H
#define DUPLEX_HTTP_H

#include <stddef.h>

#include "duplex/common.h"
#include "duplex/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dx_server dx_server;

/* One request, valid during the handler call. */
typedef struct dx_http_req dx_http_req;

/* A handler: answer with dx_http_respond (or a stream) before returning,
 * or keep the request with dx_http_defer. `user` is the pointer given to
 * dx_server_http. */
typedef void (*dx_http_handler)(dx_http_req *req, void *user);

/* Route plain HTTP requests for `path` (see Routing above) to `fn`.
 * Registering a path again replaces its handler. `path` is copied. Loop
 * thread. Returns 0, DX_EINVAL (path NULL or not starting with '/', fn
 * NULL), DX_ENOMEM, or DX_ESTATE after dx_server_free. */
DX_API int dx_server_http(dx_server *srv, const char *path, dx_http_handler fn, void *user);

/* Let pipelined requests to the route of `path` (registered before) be
 * served while an earlier request to such a route on the same connection
 * still waits for its deferred answer, up to 32 at a time; the answers
 * still go out in request order (each is kept until those before it are
 * complete). Without it a deferred request holds up the requests behind
 * it, so a client pipelining requests whose answers wait on a remote
 * service gets one answered per round trip. Suits handlers whose requests
 * do not depend on the answers before them (an API's publish calls).
 * Loop thread. Returns 0, DX_EINVAL, DX_ENOENT (no such route). */
DX_API int dx_server_http_pipelined(dx_server *srv, const char *path);

/* The request method as sent ("GET", "POST", ...). */
DX_API const char *dx_http_method(const dx_http_req *req);

/* The request path as sent (not percent-decoded), without the query. */
DX_API const char *dx_http_path(const dx_http_req *req);

/* The raw query string after '?', "" when absent. */
DX_API const char *dx_http_query(const dx_http_req *req);

/* The value of the first header named `name` (case-insensitive), or NULL
 * when absent. (Not dx_http_header: that is the parsed-header type of
 * duplex/handshake.h.) */
DX_API const char *dx_http_get_header(const dx_http_req *req, const char *name);

/* The request body and its length in *len (may be NULL): never NULL;
 * *len is 0 when there is none. */
DX_API const void *dx_http_body(const dx_http_req *req, size_t *len);

/* Copy the percent-decoded value of the first query parameter `name`
 * ("a=1&b=x%20y": "b" gives "x y"; '+' decodes to a space; a parameter
 * without '=' has the empty value) into out[0..cap), NUL-terminated.
 * Names are compared after decoding. Returns the value's length,
 * DX_ENOENT when absent, DX_EINVAL when it does not fit in cap - 1 bytes
 * or is badly encoded ('%' not followed by two hex digits, or a decoded
 * NUL byte). */
DX_API int dx_http_query_param(const dx_http_req *req, const char *name, char *out, size_t cap);

/* Send the response, once: the status line, "Content-Type:" when
 * content_type is not NULL, "Content-Length: len", the Connection header
 * the keep-alive decision needs, `extra_headers` (NULL, or whole
 * "Name: value\r\n" lines), then the body (copied; not sent for HEAD
 * requests, whose Content-Length still says len). 204 and 304 carry no
 * body and no Content-Length (len must be 0). Returns 0; DX_EINVAL for a
 * status outside 200-599, a content_type or extra_headers that would break
 * the head (CR or LF in content_type; extra_headers not ending in "\r\n"),
 * or a body with 204/304; DX_ESTATE when already responded; DX_ECLOSED when
 * the connection is closing; DX_ENOMEM. After an error other than
 * DX_ESTATE, the request still counts as unanswered. Works inside the
 * handler, or later on a deferred request (dx_http_defer) that has not
 * started a stream; req is invalid after it returns 0 on a deferred one. */
DX_API int dx_http_respond(dx_http_req *req, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t len);

/* Keep the request after the handler returns, to answer it later
 * (long-poll) or to stream it (SSE). `on_gone(req, user)` (may be NULL)
 * runs once if the connection goes away before the answer is complete
 * (client closed, error, server freed or shutting down); req is invalid
 * after it, and after dx_http_respond / dx_http_stream_end complete it.
 * While deferred, the handshake/idle timeout does not apply to this
 * request (the caller bounds it). Call during the handler. Loop thread.
 * Returns 0; DX_ESTATE when called outside the handler, twice, or after
 * an answer was started; DX_ECLOSED when the connection is closing. */
DX_API int dx_http_defer(dx_http_req *req, void (*on_gone)(dx_http_req *req, void *user),
                         void *user);

/* Start a streamed answer: the status line, "Content-Type:" when
 * content_type is not NULL, the Connection header, extra_headers (as
 * dx_http_respond), and no Content-Length: for HTTP/1.1 requests
 * "Transfer-Encoding: chunked", for HTTP/1.0 a close-delimited body (the
 * connection closes after dx_http_stream_end). Inside the handler, or
 * later on a deferred request. Returns 0; DX_EINVAL as dx_http_respond
 * (also for 204 and 304, which have no body); DX_ESTATE when already
 * answered; DX_ECLOSED when the connection is closing; DX_ENOMEM. */
DX_API int dx_http_stream_start(dx_http_req *req, int status, const char *content_type,
                                const char *extra_headers);

/* Send one piece of a started stream (one chunk; data copied; len 0 sends
 * nothing; nothing is sent for HEAD requests). Returns DX_SENT, or
 * DX_BUFFERED when more than the low water mark is unsent (as
 * dx_ws_send: slow down; see dx_http_buffered); DX_EBACKPRESSURE when the
 * piece would take the unsent bytes past max_buffered (a piece into an
 * empty queue always goes): it is dropped, the
 * connection is being closed and on_gone follows (it may run before this
 * returns, so do not touch req after this error); DX_ECLOSED when the
 * connection is closing; DX_ESTATE when the stream was not started or has
 * ended; DX_ENOMEM. */
DX_API int dx_http_stream_write(dx_http_req *req, const void *data, size_t len);

/* Finish a started stream (the last chunk, or the close of an HTTP/1.0
 * body); the connection then serves the next request if keep-alive
 * allows. req is invalid after it returns 0. Returns 0, DX_ESTATE (not
 * started or already ended), DX_ECLOSED, DX_ENOMEM. */
DX_API int dx_http_stream_end(dx_http_req *req);

/* Response bytes queued on the request's connection and not yet sent. */
DX_API size_t dx_http_buffered(const dx_http_req *req);

/* The peer's address "ip:port" (IPv6 "[ip]:port") into buf[0..cap), for
 * logs and per-address limits; returns buf. */
DX_API const char *dx_http_peer_str(const dx_http_req *req, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_HTTP_H */
