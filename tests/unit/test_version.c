/* The version macros and dx_version(), through the umbrella header (which
 * must compile on its own: this file includes nothing else of duplex). */
#include <stdio.h>

#include "duplex/duplex.h"
#include "test.h"

TEST(version) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", DX_VERSION_MAJOR, DX_VERSION_MINOR, DX_VERSION_PATCH);
  CHECK_STR(DX_VERSION_STRING, want);
  CHECK_STR(dx_version(), DX_VERSION_STRING);
  CHECK(DX_VERSION_NUMBER ==
        DX_VERSION_MAJOR * 10000 + DX_VERSION_MINOR * 100 + DX_VERSION_PATCH);
  CHECK(DX_VERSION_NUMBER >= DX_MAKE_VERSION(0, 1, 0));
}

TEST(umbrella_declares_the_api) {
  /* One function from each part of the umbrella, to be sure it is all there. */
  CHECK(dx_strerror(DX_EINVAL) != NULL);
  CHECK(dx_log_enabled(DX_LOG_ERROR));
  CHECK(dx_utf8_valid((const uint8_t *)"ok", 2));
  dx_loop *loop = dx_loop_new(NULL);
  CHECK(loop != NULL);
  dx_server *srv = dx_server_new(loop, NULL);
  CHECK(srv != NULL);
  dx_server_free(srv);
  dx_loop_free(loop);
  dx_url url;
  CHECK_EQ_INT(dx_url_parse("ws://example.com/x", &url, NULL), 0);
}

int main(void) {
  RUN(version);
  RUN(umbrella_declares_the_api);
  return test_report();
}
