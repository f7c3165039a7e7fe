/* duplex — error codes.
 *
 * Every fallible duplex function returns a negative `int` from this list on
 * failure (or, where documented, a non-negative count/length on success).
 * Codes are stable and specific: each protocol rule a peer can break has its
 * own code, so a log line can say exactly what was wrong.
 *
 * Thread-safety: all functions here are pure and may be called from any
 * thread.
 */
#ifndef DUPLEX_ERROR_H
#define DUPLEX_ERROR_H

#include <stdint.h>

#include "duplex/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: name, value, description. The descriptions are what
 * dx_strerror() returns; they name the rule that was broken. */
#define DX_ERRORS(X)                                                                         \
  X(DX_OK, 0, "success")                                                                     \
  X(DX_EAGAIN, -1, "incomplete input: more bytes are needed")                                \
  X(DX_ENOMEM, -2, "out of memory")                                                          \
  X(DX_EINVAL, -3, "invalid argument")                                                       \
  X(DX_ENOSPC, -4, "output buffer too small")                                                \
  X(DX_ECLOSED, -5, "connection is closed or closing")                                       \
  X(DX_ESTATE, -6, "operation not allowed in the current state")                             \
  X(DX_ESYS, -7, "system call failed (see the log line for errno)")                          \
  X(DX_ELIMIT, -8, "a configured limit was exceeded")                                        \
  X(DX_EWRONG_THREAD, -9, "called from a thread that does not own the loop")                 \
  X(DX_ETIMEDOUT, -10, "timed out")                                                          \
  X(DX_EBACKPRESSURE, -11, "send buffer limit reached; message dropped")                     \
  X(DX_ERESOLVE, -12, "DNS lookup failed")                                                   \
  X(DX_ECONNREFUSED, -13, "connection refused")                                              \
  X(DX_ECONNECT, -14, "could not connect")                                                   \
  X(DX_EPROXY, -15, "the proxy refused the CONNECT request")                                 \
  X(DX_ETLS, -16, "TLS failure")                                                             \
  X(DX_ERESET, -17, "connection reset by peer")                                              \
  X(DX_ENOENT, -18, "no such item (e.g. an absent query parameter)")                         \
  /* HTTP / opening handshake (RFC 6455 section 4, RFC 7230) */                              \
  X(DX_EHTTP_MALFORMED, -100, "malformed HTTP message")                                      \
  X(DX_EHTTP_LINE_TOO_LONG, -101, "HTTP request or status line too long")                    \
  X(DX_EHTTP_TOO_MANY_HEADERS, -102, "too many HTTP header fields")                          \
  X(DX_EHTTP_TOO_LARGE, -103, "HTTP header section too large")                               \
  X(DX_EHTTP_METHOD, -104, "WebSocket upgrade requires the GET method")                      \
  X(DX_EHTTP_VERSION, -105, "WebSocket upgrade requires HTTP/1.1 or later")                  \
  X(DX_EHTTP_NO_HOST, -106, "missing or duplicate Host header")                              \
  X(DX_EHTTP_NO_UPGRADE, -107, "missing 'Upgrade: websocket' header")                        \
  X(DX_EHTTP_NO_CONNECTION, -108, "missing 'Connection: Upgrade' header")                    \
  X(DX_EWS_KEY, -109, "Sec-WebSocket-Key missing, duplicate, or not 16 bytes of base64")     \
  X(DX_EWS_VERSION, -110, "Sec-WebSocket-Version missing or not 13")                         \
  X(DX_EWS_EXTENSIONS, -111, "malformed Sec-WebSocket-Extensions header")                    \
  X(DX_EWS_PROTOCOL, -112, "malformed Sec-WebSocket-Protocol header")                        \
  X(DX_EHTTP_STATUS, -113, "server did not answer with 101 Switching Protocols")             \
  X(DX_EWS_ACCEPT, -114, "Sec-WebSocket-Accept missing or wrong")                            \
  X(DX_EWS_UNOFFERED_PROTOCOL, -115, "server chose a subprotocol the client did not offer")  \
  X(DX_EWS_UNOFFERED_EXTENSION, -116, "server chose an extension the client did not offer") \
  X(DX_EHTTP_TARGET, -117, "request target is not an absolute path")                         \
  /* Frames (RFC 6455 section 5) */                                                          \
  X(DX_EFRAME_RSV, -200, "reserved bits set without a negotiated extension")                 \
  X(DX_EFRAME_OPCODE, -201, "reserved opcode")                                               \
  X(DX_EFRAME_LENGTH, -202, "payload length not minimally encoded")                          \
  X(DX_EFRAME_LENGTH_MSB, -203, "64-bit payload length has the most significant bit set")    \
  X(DX_EFRAME_CONTROL_FRAGMENTED, -204, "control frame is fragmented")                       \
  X(DX_EFRAME_CONTROL_TOO_LONG, -205, "control frame payload longer than 125 bytes")         \
  X(DX_EFRAME_UNMASKED, -206, "client frame is not masked")                                  \
  X(DX_EFRAME_MASKED, -207, "server frame is masked")                                        \
  X(DX_EFRAME_CONTINUATION, -208, "continuation frame without a message in progress")        \
  X(DX_EFRAME_INTERLEAVED, -209, "new data frame while a fragmented message is in progress") \
  X(DX_EFRAME_TOO_BIG, -210, "frame larger than the maximum frame size")                     \
  X(DX_EMESSAGE_TOO_BIG, -211, "message larger than the maximum message size")               \
  X(DX_EUTF8, -212, "text message is not valid UTF-8")                                       \
  X(DX_ECLOSE_PAYLOAD, -213, "close frame with a 1-byte payload")                            \
  X(DX_ECLOSE_CODE, -214, "close frame with an invalid status code")                         \
  X(DX_ECLOSE_REASON_UTF8, -215, "close reason is not valid UTF-8")                          \
  X(DX_EFRAME_AFTER_CLOSE, -216, "data received after the close frame")                      \
  X(DX_EDEFLATE, -217, "compressed message could not be inflated")

enum dx_error {
#define DX__ERR_ENUM(name, value, text) name = value,
  DX_ERRORS(DX__ERR_ENUM)
#undef DX__ERR_ENUM
};

/* A static, human-readable description of `err` (never NULL; unknown codes
 * get "unknown error"). */
DX_API const char *dx_strerror(int err);

/* The symbolic name of `err`, e.g. "DX_EUTF8" (never NULL). */
DX_API const char *dx_errname(int err);

/* The WebSocket close status code an endpoint sends when it fails the
 * connection because of `err`: 1007 for UTF-8 errors, 1009 for size limits,
 * 1002 for other protocol errors, 1011 for internal errors. */
DX_API uint16_t dx_close_code_for_error(int err);

/* The HTTP status a server answers a failed upgrade with: 400, 405, 426
 * (wrong version), 431 (headers too large), 500 otherwise. */
DX_API int dx_http_status_for_error(int err);

#ifdef __cplusplus
}
#endif
#endif /* DUPLEX_ERROR_H */
