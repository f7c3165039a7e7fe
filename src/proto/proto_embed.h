/* duplex — a dx_proto embedded in a dx_ws, without its callback and user
 * pointers and its limits. Every connection carries a proto, and the
 * connection's are always the same callbacks with the connection itself as
 * user, and the limits of its server or client: the embedded proto ends
 * before those fields (32 bytes less per connection) and finds them here
 * instead. */
#ifndef DX_PROTO_EMBED_H
#define DX_PROTO_EMBED_H

#include <stddef.h>

#include "duplex/proto.h"

/* The embedder's (ws.c): its callbacks, and how far before the proto its
 * user pointer (the memory the proto is embedded in) starts. */
extern const dx_proto_callbacks dx__embedded_proto_cb;
extern const size_t dx__embedded_proto_back;

/* The embedder's (ws.c): the options of the proto embedded at `user`, with
 * max_message and max_frame resolved (not zero). Read at init and, for the
 * limits, whenever they are checked (at frame headers, not per byte), so
 * they must stay readable as long as the proto is used; they may be
 * lowered meanwhile (a message already past them then fails). */
const dx_proto_opts *dx__embedded_proto_opts(const void *user);

/* Bytes of an embedded proto (less than dx_proto_size()). */
size_t dx__proto_embedded_size(void);

/* dx_proto_init for an embedded proto in dx__proto_embedded_size() bytes:
 * callbacks dx__embedded_proto_cb, user (char *)p - dx__embedded_proto_back,
 * options dx__embedded_proto_opts(user). */
void dx__proto_init_embedded(dx_proto *p, dx_role role);

#endif /* DX_PROTO_EMBED_H */
