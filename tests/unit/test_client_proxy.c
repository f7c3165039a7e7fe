/* dx_client through an HTTP CONNECT proxy (rs in client_helpers.h): a
 * tunnel to a dx_server, a refusing proxy, a 200 in pieces followed by
 * junk, an unreachable proxy, any 2xx, an uppercase scheme and
 * credentials. */
#include "client_helpers.h"

/* ------------------------------------------------------------------ */
/* HTTP CONNECT proxy.                                                  */

TEST(proxy_tunnels_to_server) {
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  rs p;
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  char url[128], proxy[64];
  url_for(url, sizeof url, s.port, "/via-proxy");
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  c.send_on_open = "through the tunnel";
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.msgs, 1);
  if (c.last_msg) CHECK_STR((char *)c.last_msg, "through the tunnel");
  char want[64];
  snprintf(want, sizeof want, "CONNECT 127.0.0.1:%d HTTP/1.1", s.port);
  CHECK_STR(p.first_line, want);
  CHECK_EQ_INT(s.opens, 1);
  /* Close through the tunnel, both ways clean. */
  dx_client_close(c.c, 4001, NULL);
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.close_code, 4001);
  CHECK(c.clean);
  CHECK_EQ_INT(c.errors, 0);
  cl_free(&c);
  rs_stop(&p);
  sv_stop(&s);
  loop_done(loop);
}

TEST(proxy_refuses) {
  dx_loop *loop = dx_loop_new(NULL);
  rs p;
  rs_start(&p, loop, RS_PROXY_403);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d/", p.port);
  cl c;
  cl_start(&c, loop, "ws://backend.example:9001/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_EPROXY);
  CHECK_CONTAINS(c.errmsg, "403");
  CHECK_CONTAINS(c.errmsg, "proxy");
  CHECK_CONTAINS(c.errmsg, "backend.example:9001");
  CHECK_EQ_INT(c.close_code, 1006);
  CHECK(!c.clean);
  /* The target name went to the proxy unresolved. */
  CHECK_STR(p.first_line, "CONNECT backend.example:9001 HTTP/1.1");
  cl_free(&c);
  rs_stop(&p);
  loop_done(loop);
}

TEST(proxy_split_answer_with_junk) {
  /* Regression: bytes after a proxy's 200 that came in pieces were read
   * from the freed handshake buffer. */
  dx_loop *loop = dx_loop_new(NULL);
  rs p;
  rs_start(&p, loop, RS_PROXY_SPLIT_JUNK);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl c;
  cl_start(&c, loop, "ws://backend.example/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.dones, 1);
  CHECK_EQ_INT(c.opens, 0);
  CHECK_EQ_INT(c.errors, 1);
  CHECK_EQ_INT(c.last_err, DX_EHTTP_MALFORMED);
  CHECK_CONTAINS(c.errmsg, "bad handshake response from the server");
  CHECK_EQ_INT(c.close_code, 1006);
  cl_free(&c);
  rs_stop(&p);
  loop_done(loop);
}

TEST(proxy_unreachable) {
  dx_loop *loop = dx_loop_new(NULL);
  int hold = hold_port(0);
  char proxy[64];
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", fd_port(hold));
  cl c;
  cl_start(&c, loop, "ws://backend.example/", &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.last_err, DX_ECONNREFUSED);
  CHECK_CONTAINS(c.errmsg, "proxy");
  CHECK_CONTAINS(c.errmsg, "connection refused");
  cl_free(&c);
  close(hold);
  loop_done(loop);
}

TEST(proxy_2xx_uppercase_scheme_and_credentials) {
  /* Any 2xx answers CONNECT (RFC 9110 9.3.6); "HTTP://" is the same
   * scheme; user:pass@ becomes Proxy-Authorization: Basic. */
  dx_loop *loop = dx_loop_new(NULL);
  sv s;
  sv_start(&s, loop, 0);
  rs p;
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  p.proxy_ok = "HTTP/1.0 204 Tunnel ready\r\n\r\n";
  char url[128], proxy[128];
  url_for(url, sizeof url, s.port, "/via-proxy");
  snprintf(proxy, sizeof proxy, "HTTP://Aladdin:open%%20sesame@127.0.0.1:%d/", p.port);
  cl c;
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  c.send_on_open = "tunnelled";
  RUN_UNTIL(loop, c.msgs == 1, 5000);
  CHECK_EQ_INT(c.opens, 1);
  CHECK_EQ_INT(c.errors, 0);
  if (c.last_msg) CHECK_STR((char *)c.last_msg, "tunnelled");
  CHECK_CONTAINS(p.head, "\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n");
  cl_free(&c);
  rs_stop(&p);

  /* Without credentials, no header; a 3xx is still a refusal. */
  rs_start(&p, loop, RS_PROXY);
  p.target_port = s.port;
  p.proxy_ok = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n";
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", p.port);
  cl_start(&c, loop, url, &(dx_client_opts){.proxy = proxy});
  RUN_UNTIL(loop, c.dones == 1, 5000);
  CHECK_EQ_INT(c.last_err, DX_EPROXY);
  CHECK_CONTAINS(c.errmsg, "302");
  CHECK(!contains(p.head, "Proxy-Authorization"));
  cl_free(&c);
  rs_stop(&p);
  sv_stop(&s);
  loop_done(loop);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(proxy_tunnels_to_server);
  RUN(proxy_refuses);
  RUN(proxy_split_answer_with_junk);
  RUN(proxy_unreachable);
  RUN(proxy_2xx_uppercase_scheme_and_credentials);
  return test_report();
}
