/* Socket helpers: peer addresses for log lines. */
#include "common/net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>

const char *dx__peer_str(int fd, char *buf, size_t cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *s = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
      port = ntohs(s->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
      snprintf(buf, cap, "[%s]:%d", host, ntohs(s->sin6_port));
      return buf;
    } else if (ss.ss_family == AF_UNIX) {
      snprintf(buf, cap, "unix");
      return buf;
    }
  }
  snprintf(buf, cap, "%s:%d", host, port);
  return buf;
}
