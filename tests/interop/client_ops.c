/* The duplex client's half of the interop cases `duplex connect` cannot
 * express: against a peer's echo endpoint (client_peer_node.mjs or
 * client_peer_python.py, path /echo),
 *   - a ping from the client (the peer answers with a pong, same payload);
 *   - a fragmented text message with a ping between its fragments, and a
 *     fragmented binary message (the peer echoes each one whole);
 *   - a close with a non-1000 code and a reason from the client (the peer
 *     echoes both; the peer's log shows what it received).
 *
 *   client_ops ws://127.0.0.1:PORT/echo
 *
 * Prints "ok - NAME" or "not ok - NAME: WHY" per check (see run_helper in
 * tests/lib.sh); exits 0 unless it could not run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duplex/client.h"
#include "duplex/loop.h"

#define TEXT "Hello w\xc3\xb6rld"
#define REASON "client bye \xe2\x9c\x93"

typedef struct state {
  dx_loop *loop;
  dx_client *c;
  int pongs, texts, binaries, closes;
  char pong1[32], pong2[32];
  char text[64];
  unsigned char bin[8];
  size_t bin_len;
  int close_code;
  char reason[64];
  bool clean, done;
  char error[256];
} state;

static void check(bool ok, const char *name, const char *why) {
  if (ok)
    printf("ok - %s\n", name);
  else
    printf("not ok - %s: %s\n", name, why);
}

static void on_open(dx_ws *ws, void *user) {
  state *s = user;
  int rc = dx_ws_send(ws, DX_OP_PING, "cp", 2);
  rc |= dx_ws_send_fragment(ws, DX_OP_TEXT, "Hel", 3, true);
  rc |= dx_ws_send(ws, DX_OP_PING, "mid", 3); /* a control frame between fragments */
  rc |= dx_ws_send_fragment(ws, DX_OP_CONT, "lo w\xc3", 5, true); /* ö split in two */
  rc |= dx_ws_send_fragment(ws, DX_OP_CONT, "\xb6rld", 4, false);
  rc |= dx_ws_send_fragment(ws, DX_OP_BINARY, "\xde\xad", 2, true);
  rc |= dx_ws_send_fragment(ws, DX_OP_CONT, "\xbe\xef", 2, false);
  check(rc >= 0, "ping and fragmented messages queued", dx_strerror(rc));
  (void)s;
}

static void maybe_close(state *s) {
  if (s->pongs == 2 && s->texts == 1 && s->binaries == 1)
    check(dx_client_close(s->c, 4001, REASON) == 0, "close 4001 with a reason sent", "refused");
}

static void on_message(dx_ws *ws, unsigned op, const void *data, size_t len, void *user) {
  (void)ws;
  state *s = user;
  if (op == DX_OP_TEXT) {
    s->texts++;
    snprintf(s->text, sizeof s->text, "%.*s", (int)len, (const char *)data);
  } else {
    s->binaries++;
    s->bin_len = len < sizeof s->bin ? len : sizeof s->bin;
    memcpy(s->bin, data, s->bin_len);
  }
  maybe_close(s);
}

static void on_pong(dx_ws *ws, const void *data, size_t len, void *user) {
  (void)ws;
  state *s = user;
  char *dst = s->pongs == 0 ? s->pong1 : s->pong2;
  if (s->pongs < 2) snprintf(dst, sizeof s->pong1, "%.*s", (int)len, (const char *)data);
  s->pongs++;
  maybe_close(s);
}

static void on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  (void)err;
  state *s = user;
  snprintf(s->error, sizeof s->error, "%s", msg);
}

static void on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                     void *user) {
  (void)ws;
  state *s = user;
  s->closes++;
  s->close_code = code;
  s->clean = clean;
  snprintf(s->reason, sizeof s->reason, "%.*s", (int)reason_len, reason);
}

static void on_done(dx_client *c, void *user) {
  (void)c;
  state *s = user;
  s->done = true;
  dx_loop_stop(s->loop);
}

static void give_up(dx_timer *t) { dx_loop_stop(t->loop); }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: client_ops ws://HOST:PORT/echo\n");
    return 2;
  }
  state s = {0};
  s.loop = dx_loop_new(NULL);
  const char *why = NULL;
  s.c = dx_connect(s.loop, argv[1], &(dx_client_opts){.on_done = on_done},
                   &(dx_ws_handlers){.on_open = on_open,
                                     .on_message = on_message,
                                     .on_pong = on_pong,
                                     .on_error = on_error,
                                     .on_close = on_close},
                   &s, &why);
  if (!s.c) {
    fprintf(stderr, "client_ops: %s\n", why ? why : "cannot connect");
    return 2;
  }
  dx_timer deadline;
  dx_timer_init(s.loop, &deadline, give_up);
  dx_timer_start(&deadline, 10000, 0);
  dx_loop_run(s.loop);
  dx_timer_stop(&deadline);

  char why_buf[300];
  check(s.error[0] == 0, "no error", s.error);
  snprintf(why_buf, sizeof why_buf, "pongs '%s', '%s' (%d)", s.pong1, s.pong2, s.pongs);
  check(s.pongs == 2 && !strcmp(s.pong1, "cp") && !strcmp(s.pong2, "mid"),
        "client pings answered with pongs, same payloads, in order", why_buf);
  snprintf(why_buf, sizeof why_buf, "%d text message(s), last '%s'", s.texts, s.text);
  check(s.texts == 1 && !strcmp(s.text, TEXT),
        "fragmented text (a ping between fragments, a character split) echoed whole", why_buf);
  snprintf(why_buf, sizeof why_buf, "%d binary message(s) of %zu bytes", s.binaries, s.bin_len);
  check(s.binaries == 1 && s.bin_len == 4 && !memcmp(s.bin, "\xde\xad\xbe\xef", 4),
        "fragmented binary echoed whole", why_buf);
  snprintf(why_buf, sizeof why_buf, "%d close(s): code %d reason '%s' clean %d", s.closes,
           s.close_code, s.reason, s.clean);
  check(s.closes == 1 && s.close_code == 4001 && !strcmp(s.reason, REASON) && s.clean,
        "the peer echoed close 4001 and the reason; clean close", why_buf);
  check(s.done, "the client finished (no reconnect)", "still running after 10 s");
  dx_client_free(s.c);
  dx_loop_run_once(s.loop, 0);
  dx_loop_free(s.loop);
  return 0;
}
