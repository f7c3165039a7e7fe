/* The client-side testee for the Autobahn testsuite (wstest -m fuzzingserver),
 * on the public duplex API.
 *
 *   ./autobahn_client BASE_URL [AGENT]     e.g. ws://127.0.0.1:9001 duplex
 *
 * 1. BASE_URL/getCaseCount answers with the number of cases, as text.
 * 2. For case 1..N: BASE_URL/runCase?case=N&agent=AGENT; every message is
 *    echoed back with its opcode until the server closes.
 * 3. BASE_URL/updateReports?agent=AGENT makes the server write its report.
 *
 * One loop, one connection at a time: each step starts from the previous
 * connection's on_done. Progress ("case N/M") goes to stderr. Exit status 0
 * when every step ran (the fuzzing server judges the cases), 1 when the case
 * count could not be read or the report could not be requested. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duplex/client.h>
#include <duplex/loop.h>

enum step { GET_COUNT, RUN_CASE, UPDATE_REPORTS, FINISHED };

typedef struct app {
  dx_loop *loop;
  dx_client *client;
  char base[1024]; /* without a trailing '/' */
  const char *agent;
  enum step step;
  int count; /* cases, from getCaseCount */
  int current;
  bool step_ok; /* the step did what it should (count read, report closed cleanly) */
  int exit_status;
} app;

static void next_step(app *a);

static void on_message(dx_ws *ws, unsigned opcode, const void *data, size_t len, void *user) {
  app *a = user;
  if (a->step == RUN_CASE) {
    /* Echo with the same opcode. The bytes are copied: `data` is only valid
     * during this call. A failure here (closing, over the buffer cap) just
     * means the case is ending; the server judges it. */
    dx_ws_send(ws, opcode, data, len);
    return;
  }
  if (a->step == GET_COUNT && opcode == DX_OP_TEXT) {
    char buf[32];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, data, len);
    buf[len] = 0;
    char *end;
    long n = strtol(buf, &end, 10);
    if (end != buf && *end == 0 && n >= 0 && n < 1000000) {
      a->count = (int)n;
      a->step_ok = true;
    } else {
      fprintf(stderr, "autobahn_client: bad case count '%s'\n", buf);
    }
  }
}

static void on_error(dx_ws *ws, int err, const char *msg, void *user) {
  (void)ws;
  (void)err;
  app *a = user;
  /* Cases fail connections on purpose; only the control steps matter. */
  if (a->step != RUN_CASE) fprintf(stderr, "autobahn_client: %s\n", msg);
}

static void on_close(dx_ws *ws, uint16_t code, const char *reason, size_t reason_len, bool clean,
                     void *user) {
  (void)ws;
  (void)reason;
  (void)reason_len;
  app *a = user;
  if (a->step == UPDATE_REPORTS && clean) a->step_ok = true;
  if (a->step == RUN_CASE && getenv("AUTOBAHN_VERBOSE"))
    fprintf(stderr, "  case %d closed: %d%s\n", a->current, code, clean ? "" : " (not clean)");
}

/* The connection of the current step is over for good. */
static void on_done(dx_client *c, void *user) {
  app *a = user;
  dx_client_free(c); /* allowed from on_done */
  a->client = NULL;
  switch (a->step) {
  case GET_COUNT:
    if (!a->step_ok) {
      fprintf(stderr, "autobahn_client: could not read the case count from %s/getCaseCount\n",
              a->base);
      a->exit_status = 1;
      a->step = FINISHED;
      break;
    }
    fprintf(stderr, "autobahn_client: %d cases\n", a->count);
    a->step = a->count > 0 ? RUN_CASE : UPDATE_REPORTS;
    a->current = 1;
    break;
  case RUN_CASE:
    if (++a->current > a->count) a->step = UPDATE_REPORTS;
    break;
  case UPDATE_REPORTS:
    if (!a->step_ok) {
      fprintf(stderr, "autobahn_client: updateReports did not close cleanly\n");
      a->exit_status = 1;
    }
    a->step = FINISHED;
    break;
  case FINISHED:
    break;
  }
  next_step(a);
}

static const dx_ws_handlers handlers = {
    .on_message = on_message,
    .on_error = on_error,
    .on_close = on_close,
};

static void next_step(app *a) {
  char url[1400];
  switch (a->step) {
  case GET_COUNT:
    snprintf(url, sizeof url, "%s/getCaseCount", a->base);
    break;
  case RUN_CASE:
    fprintf(stderr, "case %d/%d\n", a->current, a->count);
    snprintf(url, sizeof url, "%s/runCase?case=%d&agent=%s", a->base, a->current, a->agent);
    break;
  case UPDATE_REPORTS:
    snprintf(url, sizeof url, "%s/updateReports?agent=%s", a->base, a->agent);
    break;
  case FINISHED:
    dx_loop_stop(a->loop);
    return;
  }
  a->step_ok = false;
  const char *why = NULL;
  a->client = dx_connect(a->loop, url,
                         &(dx_client_opts){
                             .max_message = (size_t)64 << 20,
                             .max_buffered = (size_t)256 << 20,
                             .on_done = on_done,
                         },
                         &handlers, a, &why);
  if (!a->client) {
    fprintf(stderr, "autobahn_client: %s: %s\n", url, why ? why : "cannot connect");
    a->exit_status = 1;
    a->step = FINISHED;
    dx_loop_stop(a->loop);
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || !strncmp(argv[1], "-h", 2) || !strcmp(argv[1], "--help")) {
    fprintf(stderr, "usage: autobahn_client BASE_URL [AGENT]   e.g. ws://127.0.0.1:9001 duplex\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  app a = {.agent = argc > 2 ? argv[2] : "duplex"};
  snprintf(a.base, sizeof a.base, "%s", argv[1]);
  size_t n = strlen(a.base);
  while (n && a.base[n - 1] == '/') a.base[--n] = 0;
  for (const char *p = a.agent; *p; p++) {
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", *p)) {
      fprintf(stderr, "autobahn_client: the agent name may use letters, digits and -_.~ only\n");
      return 2;
    }
  }

  a.loop = dx_loop_new(NULL);
  if (!a.loop) return 1;
  a.step = GET_COUNT;
  next_step(&a);
  if (a.step != FINISHED || a.client) dx_loop_run(a.loop);
  dx_client_free(a.client); /* NULL unless stopped early */
  dx_loop_run_once(a.loop, 0);
  dx_loop_free(a.loop);
  if (a.exit_status == 0) fprintf(stderr, "autobahn_client: done, %d cases\n", a.count);
  return a.exit_status;
}
