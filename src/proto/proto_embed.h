/* duplex — a dx_proto embedded in a dx_ws, without its callback and user
 * pointers. Every connection carries a proto, and the connection's are
 * always the same callbacks with the connection itself as user: the
 * embedded proto ends before those two fields (16 bytes less per
 * connection) and finds them here instead. */
#ifndef DX_PROTO_EMBED_H
#define DX_PROTO_EMBED_H

#include <stddef.h>

#include "duplex/proto.h"

/* The embedder's (ws.c): its callbacks, and how far before the proto its
 * user pointer (the memory the proto is embedded in) starts. */
extern const dx_proto_callbacks dx__embedded_proto_cb;
extern const size_t dx__embedded_proto_back;

/* Bytes of an embedded proto (less than dx_proto_size()). */
size_t dx__proto_embedded_size(void);

/* dx_proto_init for an embedded proto in dx__proto_embedded_size() bytes:
 * callbacks dx__embedded_proto_cb, user (char *)p - dx__embedded_proto_back. */
void dx__proto_init_embedded(dx_proto *p, dx_role role, const dx_proto_opts *opts);

#endif /* DX_PROTO_EMBED_H */
