/* N event loops on N threads with SO_REUSEPORT; SIGINT/SIGTERM run a
 * graceful shutdown on every loop. */
#include "server_main.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "duplex/log.h"
#include "duplex/loop.h"

#define SHUTDOWN_TIMEOUT_MS 3000

void server_main_defaults(server_main_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->threads = 1;
  cfg->opts.host = "127.0.0.1";
}

enum {
  OPT_MAX_MESSAGE = 1000,
  OPT_MAX_BUFFERED,
  OPT_MAX_CONNECTIONS,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_PING_INTERVAL,
  OPT_PONG_TIMEOUT,
  OPT_IDLE_TIMEOUT,
  OPT_STATIC,
  OPT_ORIGIN,
  OPT_LOG_LEVEL,
  OPT_DEFLATE,
  OPT_DEFLATE_MODE,
  OPT_DEFLATE_WINDOW,
  OPT_DEFLATE_MEMLEVEL,
  OPT_DEFLATE_LEVEL,
  OPT_DEFLATE_THRESHOLD,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_CA,
  OPT_TLS_PORT,
};

static const struct option common_opts[] = {
    {"host", required_argument, 0, 'H'},
    {"port", required_argument, 0, 'p'},
    {"threads", required_argument, 0, 't'},
    {"help", no_argument, 0, 'h'},
    {"max-message", required_argument, 0, OPT_MAX_MESSAGE},
    {"max-buffered", required_argument, 0, OPT_MAX_BUFFERED},
    {"max-connections", required_argument, 0, OPT_MAX_CONNECTIONS},
    {"handshake-timeout", required_argument, 0, OPT_HANDSHAKE_TIMEOUT},
    {"ping-interval", required_argument, 0, OPT_PING_INTERVAL},
    {"pong-timeout", required_argument, 0, OPT_PONG_TIMEOUT},
    {"idle-timeout", required_argument, 0, OPT_IDLE_TIMEOUT},
    {"static", required_argument, 0, OPT_STATIC},
    {"origin", required_argument, 0, OPT_ORIGIN},
    {"log-level", required_argument, 0, OPT_LOG_LEVEL},
    {"deflate", no_argument, 0, OPT_DEFLATE},
    {"deflate-mode", required_argument, 0, OPT_DEFLATE_MODE},
    {"deflate-window-bits", required_argument, 0, OPT_DEFLATE_WINDOW},
    {"deflate-mem-level", required_argument, 0, OPT_DEFLATE_MEMLEVEL},
    {"deflate-level", required_argument, 0, OPT_DEFLATE_LEVEL},
    {"deflate-threshold", required_argument, 0, OPT_DEFLATE_THRESHOLD},
    {"tls-cert", required_argument, 0, OPT_TLS_CERT},
    {"tls-key", required_argument, 0, OPT_TLS_KEY},
    {"tls-ca", required_argument, 0, OPT_TLS_CA},
    {"tls-port", required_argument, 0, OPT_TLS_PORT},
};

int server_main_parse(server_main_cfg *cfg, int argc, char **argv, const char *usage,
                      const struct option *extra_opts,
                      int (*extra)(int opt, const char *arg, void *user)) {
  size_t ncommon = sizeof common_opts / sizeof *common_opts, nextra = 0;
  while (extra_opts && extra_opts[nextra].name) nextra++;
  struct option *all = calloc(ncommon + nextra + 1, sizeof *all);
  if (!all) return 1;
  memcpy(all, common_opts, sizeof common_opts);
  if (nextra) memcpy(all + ncommon, extra_opts, nextra * sizeof *all);
  const char *cmd = cfg->name;
  cli_set_usage(usage);
  dx_server_opts *o = &cfg->opts;
  int rc = -1, opt;
  long v;
  optind = 1;
  opterr = 0;
  while (rc < 0 && (opt = getopt_long(argc, argv, ":H:p:t:h", all, NULL)) != -1) {
    switch (opt) {
    case 'H':
      o->host = optarg;
      break;
    case 'p':
      if (!cli_parse_int(optarg, 0, 65535, &v))
        rc = cli_usage_error(cmd, "bad port '%s'", optarg);
      else
        cfg->port = v ? (int)v : -1;
      break;
    case 't':
      if (!cli_parse_int(optarg, 1, 256, &v))
        rc = cli_usage_error(cmd, "bad thread count '%s' (1-256)", optarg);
      else
        cfg->threads = (int)v;
      break;
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      break;
    case OPT_MAX_MESSAGE:
      if (!cli_parse_size(optarg, &o->max_message) || !o->max_message)
        rc = cli_usage_error(cmd, "bad size '%s' for --max-message", optarg);
      break;
    case OPT_MAX_BUFFERED:
      if (!cli_parse_size(optarg, &o->max_buffered) || !o->max_buffered)
        rc = cli_usage_error(cmd, "bad size '%s' for --max-buffered", optarg);
      break;
    case OPT_MAX_CONNECTIONS:
      if (!cli_parse_int(optarg, 1, 10000000, &v))
        rc = cli_usage_error(cmd, "bad count '%s' for --max-connections", optarg);
      else
        o->max_connections = (size_t)v;
      break;
    case OPT_HANDSHAKE_TIMEOUT:
    case OPT_PING_INTERVAL:
    case OPT_PONG_TIMEOUT:
    case OPT_IDLE_TIMEOUT: {
      int ms;
      if (!cli_parse_ms(optarg, &ms)) {
        rc = cli_usage_error(cmd, "bad duration '%s' (try 500ms, 30s, 5m or off)", optarg);
        break;
      }
      int *dst = opt == OPT_HANDSHAKE_TIMEOUT ? &o->handshake_timeout
                 : opt == OPT_PING_INTERVAL   ? &o->ping_interval
                 : opt == OPT_PONG_TIMEOUT    ? &o->pong_timeout
                                              : &o->idle_timeout;
      *dst = ms;
      break;
    }
    case OPT_STATIC:
      o->static_dir = optarg;
      break;
    case OPT_ORIGIN:
      if (cfg->norigins >= 16)
        rc = cli_usage_error(cmd, "at most 16 --origin values");
      else
        cfg->origins[cfg->norigins++] = optarg;
      break;
    case OPT_LOG_LEVEL: {
      dx_log_level lvl;
      if (dx_log_parse_level(optarg, &lvl) != 0)
        rc = cli_usage_error(cmd, "bad log level '%s' (error, warn, info, debug)", optarg);
      else
        dx_log_set_level(lvl);
      break;
    }
    case OPT_DEFLATE:
    case OPT_DEFLATE_MODE:
    case OPT_DEFLATE_WINDOW:
    case OPT_DEFLATE_MEMLEVEL:
    case OPT_DEFLATE_LEVEL:
    case OPT_DEFLATE_THRESHOLD:
      rc = cli_parse_deflate(cmd, opt - OPT_DEFLATE, optarg, &o->deflate);
      break;
    case OPT_TLS_CERT:
      o->tls.cert_file = optarg;
      break;
    case OPT_TLS_KEY:
      o->tls.key_file = optarg;
      break;
    case OPT_TLS_CA:
      o->tls.ca_file = optarg;
      break;
    case OPT_TLS_PORT:
      if (!cli_parse_int(optarg, 0, 65535, &v))
        rc = cli_usage_error(cmd, "bad port '%s' for --tls-port", optarg);
      else
        o->tls_port = v ? (int)v : -1;
      break;
    case ':':
      rc = cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
      break;
    case '?':
      rc = cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
      break;
    default:
      rc = extra ? extra(opt, optarg, cfg) : cli_usage_error(cmd, "unknown option");
      if (rc == 0) rc = -1;
      break;
    }
  }
  if (rc < 0 && optind < argc) rc = cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  free(all);
  if (cfg->norigins) o->origins = cfg->origins;
  if (cfg->port) o->port = cfg->port;
  if (cfg->threads > 1) o->reuseport = true;
  if (rc < 0 && (o->tls.key_file || o->tls.ca_file || o->tls_port) && !o->tls.cert_file)
    rc = cli_usage_error(cmd, "--tls-key, --tls-ca and --tls-port need --tls-cert");
  return rc;
}

typedef struct worker {
  server_main_cfg *cfg;
  dx_loop *loop;
  dx_server *srv;
  pthread_t thread;
  int (*setup)(dx_server *, void *);
  void *arg;
  int status;
} worker;

static worker *workers;
static int nworkers;
static atomic_int shutting_down;

static void on_shutdown_done(dx_server *srv, void *arg) {
  (void)srv;
  worker *w = arg;
  dx_loop_stop(w->loop);
}

static void start_shutdown(dx_loop *loop, void *arg) {
  (void)loop;
  worker *w = arg;
  dx_server_shutdown(w->srv, SHUTDOWN_TIMEOUT_MS, on_shutdown_done, w);
}

static void on_signal(dx_loop *loop, int signo, void *arg) {
  (void)loop;
  (void)arg;
  if (atomic_exchange(&shutting_down, 1)) {
    dx_log_warn("second %s: exiting now", signo == SIGINT ? "SIGINT" : "SIGTERM");
    exit(1);
  }
  dx_log_info("%s received: shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
  for (int i = 0; i < nworkers; i++) dx_loop_post(workers[i].loop, start_shutdown, &workers[i]);
}

static void reload_tls(dx_loop *loop, void *arg) {
  (void)loop;
  worker *w = arg;
  dx_server_reload_tls(w->srv);
}

static void on_sighup(dx_loop *loop, int signo, void *arg) {
  (void)loop;
  (void)signo;
  (void)arg;
  dx_log_info("SIGHUP received: reloading the TLS certificate");
  for (int i = 0; i < nworkers; i++) dx_loop_post(workers[i].loop, reload_tls, &workers[i]);
}

static int worker_open(worker *w, int port, int tls_port) {
  w->loop = dx_loop_new(NULL);
  if (!w->loop) return 1;
  dx_server_opts o = w->cfg->opts;
  o.port = port;
  o.tls_port = tls_port;
  w->srv = dx_server_new(w->loop, &o);
  if (!w->srv) return 1;
  if (w->setup(w->srv, w->arg) != 0) return 1;
  if (dx_server_listen(w->srv) != 0) {
    fprintf(stderr, "duplex %s: cannot listen on %s:%d (see the log line above)\n", w->cfg->name,
            o.host ? o.host : "0.0.0.0", port > 0 ? port : 0);
    return 1;
  }
  return 0;
}

static void *worker_run(void *arg) {
  worker *w = arg;
  w->status = dx_loop_run(w->loop) == 0 ? 0 : 1;
  return NULL;
}

int server_main_run(server_main_cfg *cfg, int (*setup)(dx_server *srv, void *arg),
                    void (*teardown)(dx_server *srv, void *arg), void *arg) {
  signal(SIGPIPE, SIG_IGN);
  nworkers = cfg->threads;
  workers = calloc((size_t)nworkers, sizeof *workers);
  if (!workers) return 1;
  /* --max-connections counts for the process, not per loop: the loops'
   * servers share one group. */
  dx_server_group *group = dx_server_group_new(cfg->opts.max_connections);
  if (!group) {
    free(workers);
    return 1;
  }
  cfg->opts.group = group;
  int status = 0;
  int port = cfg->opts.port ? cfg->opts.port : cfg->port;
  int tls_port = cfg->opts.tls_port;
  for (int i = 0; i < nworkers && !status; i++) {
    workers[i] = (worker){.cfg = cfg, .setup = setup, .arg = arg};
    status = worker_open(&workers[i], port, tls_port);
    /* With port 0, the first loop picks the port and the others join it. */
    if (!status && i == 0) {
      port = dx_server_port(workers[0].srv);
      if (tls_port) tls_port = dx_server_tls_port(workers[0].srv);
    }
  }
  if (!status) {
    /* Signals go to loop 0; registered before other threads exist so they
     * inherit the blocked mask. */
    dx_loop_signal(workers[0].loop, SIGINT, on_signal, NULL);
    dx_loop_signal(workers[0].loop, SIGTERM, on_signal, NULL);
    const char *host = cfg->opts.host ? cfg->opts.host : "0.0.0.0";
    bool v6 = strchr(host, ':') != NULL;
    bool tls = cfg->opts.tls.cert_file != NULL;
    if (!tls || tls_port)
      dx_log_info("duplex %s listening on ws://%s%s%s:%d/ (%d thread%s)", cfg->name, v6 ? "[" : "",
                  host, v6 ? "]" : "", port, nworkers, nworkers == 1 ? "" : "s");
    if (tls) {
      dx_loop_signal(workers[0].loop, SIGHUP, on_sighup, NULL);
      dx_log_info("duplex %s listening on wss://%s%s%s:%d/ (%d thread%s)", cfg->name, v6 ? "[" : "",
                  host, v6 ? "]" : "", tls_port ? tls_port : port, nworkers,
                  nworkers == 1 ? "" : "s");
    }
    for (int i = 1; i < nworkers; i++)
      pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
    worker_run(&workers[0]);
    for (int i = 1; i < nworkers; i++) pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < nworkers; i++) status |= workers[i].status;
    dx_log_info("duplex %s stopped", cfg->name);
  }
  for (int i = 0; i < nworkers; i++) {
    if (workers[i].srv) {
      dx_server_free(workers[i].srv);
      if (teardown) teardown(workers[i].srv, arg);
    }
    if (workers[i].loop) {
      dx_loop_run_once(workers[i].loop, 0); /* deliver the last close callbacks */
      dx_loop_free(workers[i].loop);
    }
  }
  free(workers);
  cfg->opts.group = NULL;
  dx_server_group_free(group); /* after every server was freed */
  return status;
}
