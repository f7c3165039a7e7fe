/* duplex — what the proto keeps in a connection's permessage-deflate state.
 *
 * A message's size limit is checked at every frame header against the
 * payload bytes it has on the wire. For an uncompressed message those are
 * the bytes the proto has already counted (msg_total); only a compressed
 * message needs a count of its own, and only a connection that negotiated
 * deflate receives one, so the count lives in the dx_pmd (per connection)
 * rather than in every connection's proto. Loop thread only, like the
 * proto. */
#ifndef DX_PROTO_PMD_RX_H
#define DX_PROTO_PMD_RX_H

#include <stdint.h>

#include "duplex/deflate.h"

/* Compressed payload bytes of the message being received. */
uint64_t *dx__pmd_rx_wire(dx_pmd *pmd);

#endif /* DX_PROTO_PMD_RX_H */
