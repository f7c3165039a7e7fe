/* Small socket helpers shared by the layers. */
#ifndef DX_COMMON_NET_H
#define DX_COMMON_NET_H

#include <stddef.h>

/* The peer of socket `fd` as "ip:port" ("[v6]:port", "unix", "?:0" when
 * unknown) in buf, for log lines. Returns buf. */
const char *dx__peer_str(int fd, char *buf, size_t cap);

#endif
