/* The common flags and the configuration file (server_config.c) through one
 * handler; N event loops on N threads with SO_REUSEPORT; SIGINT/SIGTERM run
 * a graceful shutdown on every loop, SIGHUP reloads TLS and the file. */
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
#include "log_format.h"

#define SHUTDOWN_TIMEOUT_MS 3000

void server_main_defaults(server_main_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->threads = 1;
  cfg->opts.host = "127.0.0.1";
}

enum {
  OPT_MAX_MESSAGE = 1000,
  OPT_MAX_BUFFERED,
  OPT_MAX_BODY,
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
  OPT_LOG_FORMAT,
  OPT_CONFIG,
  OPT_CHECK_CONFIG,
};

/* The flags of every server command; their names are also the keys of a
 * configuration file. */
static const server_flag common_flags[] = {
    {"host", 'H', SF_TEXT},
    {"port", 'p', SF_NUMBER},
    {"threads", 't', SF_NUMBER},
    {"help", 'h', SF_CLI},
    {"max-message", OPT_MAX_MESSAGE, SF_NUMBER},
    {"max-buffered", OPT_MAX_BUFFERED, SF_NUMBER},
    {"max-body", OPT_MAX_BODY, SF_NUMBER},
    {"max-connections", OPT_MAX_CONNECTIONS, SF_NUMBER},
    {"handshake-timeout", OPT_HANDSHAKE_TIMEOUT, SF_NUMBER},
    {"ping-interval", OPT_PING_INTERVAL, SF_NUMBER},
    {"pong-timeout", OPT_PONG_TIMEOUT, SF_NUMBER},
    {"idle-timeout", OPT_IDLE_TIMEOUT, SF_NUMBER},
    {"static", OPT_STATIC, SF_TEXT},
    {"origin", OPT_ORIGIN, SF_LIST},
    {"log-level", OPT_LOG_LEVEL, SF_TEXT},
    {"log-format", OPT_LOG_FORMAT, SF_TEXT},
    {"deflate", OPT_DEFLATE, SF_SWITCH},
    {"deflate-mode", OPT_DEFLATE_MODE, SF_TEXT},
    {"deflate-window-bits", OPT_DEFLATE_WINDOW, SF_NUMBER},
    {"deflate-mem-level", OPT_DEFLATE_MEMLEVEL, SF_NUMBER},
    {"deflate-level", OPT_DEFLATE_LEVEL, SF_NUMBER},
    {"deflate-threshold", OPT_DEFLATE_THRESHOLD, SF_NUMBER},
    {"tls-cert", OPT_TLS_CERT, SF_TEXT},
    {"tls-key", OPT_TLS_KEY, SF_TEXT},
    {"tls-ca", OPT_TLS_CA, SF_TEXT},
    {"tls-port", OPT_TLS_PORT, SF_NUMBER},
    {"config", OPT_CONFIG, SF_CLI},
    {"check-config", OPT_CHECK_CONFIG, SF_CLI},
    {0, 0, 0},
};

static bool is_common(int code) {
  for (const server_flag *f = common_flags; f->name; f++)
    if (f->code == code) return true;
  return false;
}

/* One common flag. Returns -1 to go on, or an exit status. */
static int apply_common(server_main_cfg *cfg, int opt, const char *arg) {
  const char *cmd = cfg->name;
  dx_server_opts *o = &cfg->opts;
  long v;
  switch (opt) {
  case 'H':
    o->host = arg;
    return -1;
  case 'p':
    if (!cli_parse_int(arg, 0, 65535, &v)) return cli_usage_error(cmd, "bad port '%s'", arg);
    cfg->port = v ? (int)v : -1;
    return -1;
  case 't':
    if (!cli_parse_int(arg, 1, 256, &v))
      return cli_usage_error(cmd, "bad thread count '%s' (1-256)", arg);
    cfg->threads = (int)v;
    return -1;
  case OPT_MAX_MESSAGE:
    if (!cli_parse_size(arg, &o->max_message) || !o->max_message)
      return cli_usage_error(cmd, "bad size '%s' for --max-message", arg);
    return -1;
  case OPT_MAX_BUFFERED:
    if (!cli_parse_size(arg, &o->max_buffered) || !o->max_buffered)
      return cli_usage_error(cmd, "bad size '%s' for --max-buffered", arg);
    return -1;
  case OPT_MAX_BODY:
    if (!cli_parse_size(arg, &o->max_body) || !o->max_body || o->max_body > ((size_t)1 << 30))
      return cli_usage_error(cmd, "bad size '%s' for --max-body (1 byte to 1G)", arg);
    return -1;
  case OPT_MAX_CONNECTIONS:
    if (!cli_parse_int(arg, 1, 10000000, &v))
      return cli_usage_error(cmd, "bad count '%s' for --max-connections", arg);
    o->max_connections = (size_t)v;
    return -1;
  case OPT_HANDSHAKE_TIMEOUT:
  case OPT_PING_INTERVAL:
  case OPT_PONG_TIMEOUT:
  case OPT_IDLE_TIMEOUT: {
    int ms;
    if (!cli_parse_ms(arg, &ms))
      return cli_usage_error(cmd, "bad duration '%s' (try 500ms, 30s, 5m or off)", arg);
    int *dst = opt == OPT_HANDSHAKE_TIMEOUT ? &o->handshake_timeout
               : opt == OPT_PING_INTERVAL   ? &o->ping_interval
               : opt == OPT_PONG_TIMEOUT    ? &o->pong_timeout
                                            : &o->idle_timeout;
    *dst = ms;
    return -1;
  }
  case OPT_STATIC:
    o->static_dir = arg;
    return -1;
  case OPT_ORIGIN:
    if (cfg->norigins >= 16) return cli_usage_error(cmd, "at most 16 --origin values");
    cfg->origins[cfg->norigins++] = arg;
    return -1;
  case OPT_LOG_LEVEL: {
    dx_log_level lvl;
    if (dx_log_parse_level(arg, &lvl) != 0)
      return cli_usage_error(cmd, "bad log level '%s' (error, warn, info, debug)", arg);
    dx_log_set_level(lvl);
    return -1;
  }
  case OPT_LOG_FORMAT:
    if (log_format_set(arg) != 0)
      return cli_usage_error(cmd, "bad log format '%s' (text or json)", arg);
    return -1;
  case OPT_DEFLATE:
  case OPT_DEFLATE_MODE:
  case OPT_DEFLATE_WINDOW:
  case OPT_DEFLATE_MEMLEVEL:
  case OPT_DEFLATE_LEVEL:
  case OPT_DEFLATE_THRESHOLD:
    return cli_parse_deflate(cmd, opt - OPT_DEFLATE, arg, &o->deflate);
  case OPT_TLS_CERT:
    o->tls.cert_file = arg;
    return -1;
  case OPT_TLS_KEY:
    o->tls.key_file = arg;
    return -1;
  case OPT_TLS_CA:
    o->tls.ca_file = arg;
    return -1;
  case OPT_TLS_PORT:
    if (!cli_parse_int(arg, 0, 65535, &v))
      return cli_usage_error(cmd, "bad port '%s' for --tls-port", arg);
    o->tls_port = v ? (int)v : -1;
    return -1;
  default:
    return cli_usage_error(cmd, "unknown option");
  }
}

/* One flag, common or the command's: -1 to go on, or an exit status. */
static int apply_flag(server_main_cfg *cfg, const cfg_entry *e) {
  int code = e->flag->code;
  if (is_common(code)) return apply_common(cfg, code, e->arg);
  int rc = cfg->cmd && cfg->cmd->apply ? cfg->cmd->apply(code, e->arg, cfg->cmd->user)
                                       : cli_usage_error(cfg->name, "unknown option");
  return rc == 0 ? -1 : rc;
}

static void reset_list(server_main_cfg *cfg, int code) {
  if (code == OPT_ORIGIN) {
    memset(cfg->origins, 0, sizeof cfg->origins);
    cfg->norigins = 0;
  } else if (cfg->cmd && cfg->cmd->reset) {
    cfg->cmd->reset(code, cfg->cmd->user);
  }
}

static void report_stderr(void *user, const char *msg) {
  fprintf(stderr, "duplex %s: %s\n", (const char *)user, msg);
}

static const server_flag *flag_for_code(const server_main_cfg *cfg, int code) {
  for (int t = 0; t < 2; t++)
    for (const server_flag *f = cfg->schema.tables[t]; f && f->name; f++)
      if (f->code == code) return f;
  return NULL;
}

int server_main_parse(server_main_cfg *cfg, int argc, char **argv, const char *usage,
                      const server_cmd *cmd) {
  cfg->cmd = cmd;
  cfg->schema = (cfg_schema){.tables = {common_flags, cmd ? cmd->flags : NULL},
                             .rules_code = cmd ? cmd->rules_code : 0};
  const char *name = cfg->name;
  cli_set_usage(usage);
  /* The getopt table: the common flags (--config only for commands that
   * take it), then the command's. */
  size_t n = 0;
  for (int t = 0; t < 2; t++)
    for (const server_flag *f = cfg->schema.tables[t]; f && f->name; f++) n++;
  struct option *all = calloc(n + 1, sizeof *all);
  if (!all) return 1;
  n = 0;
  for (int t = 0; t < 2; t++)
    for (const server_flag *f = cfg->schema.tables[t]; f && f->name; f++) {
      if ((f->code == OPT_CONFIG || f->code == OPT_CHECK_CONFIG) && !(cmd && cmd->config)) continue;
      bool noarg = f->kind == SF_SWITCH || f->code == 'h';
      all[n++] = (struct option){f->name, noarg ? no_argument : required_argument, 0, f->code};
    }
  /* First collect the flags, then apply the file's values and the flags'
   * in that order, through the same handlers. */
  int rc = -1, opt;
  optind = 1;
  opterr = 0;
  while (rc < 0 && (opt = getopt_long(argc, argv, ":H:p:t:h", all, NULL)) != -1) {
    switch (opt) {
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      break;
    case ':':
      rc = cli_usage_error(name, "option '%s' needs a value", argv[optind - 1]);
      break;
    case '?':
      rc = cli_usage_error(name, "unknown option '%s'", argv[optind - 1]);
      break;
    case OPT_CONFIG:
    case OPT_CHECK_CONFIG:
      if (cfg->config_file && strcmp(cfg->config_file, optarg))
        rc = cli_usage_error(name, "one configuration file at a time (--config or --check-config)");
      cfg->config_file = optarg;
      cfg->check_config |= opt == OPT_CHECK_CONFIG;
      break;
    default: {
      const server_flag *f = flag_for_code(cfg, opt);
      if (!f)
        rc = cli_usage_error(name, "unknown option");
      else if (cfg_push(&cfg->cli_flags, f, f->kind == SF_SWITCH ? NULL : optarg, NULL) != 0)
        rc = 1;
      break;
    }
    }
  }
  if (rc < 0 && optind < argc) rc = cli_usage_error(name, "unexpected argument '%s'", argv[optind]);
  free(all);
  if (rc >= 0) return rc;
  /* The file: every problem is reported, then the exit status is 2. */
  int errors = 0;
  if (cfg->config_file)
    errors =
        cfg_load(cfg->config_file, &cfg->schema, &cfg->file_flags, report_stderr, (void *)name);
  for (size_t i = 0; i < cfg->file_flags.n; i++) {
    const cfg_entry *e = &cfg->file_flags.v[i];
    char context[700];
    snprintf(context, sizeof context, "%s: %s", e->where, e->flag->name);
    cli_set_context(context);
    if (apply_flag(cfg, e) >= 0) errors++;
    cli_set_context(NULL);
  }
  /* A list flag on the command line replaces the file's list. */
  for (size_t i = 0; i < cfg->cli_flags.n; i++) {
    const server_flag *f = cfg->cli_flags.v[i].flag;
    bool first = true;
    for (size_t j = 0; j < i; j++) first &= cfg->cli_flags.v[j].flag != f;
    if (f->kind == SF_LIST && first) reset_list(cfg, f->code);
  }
  for (size_t i = 0; rc < 0 && i < cfg->cli_flags.n; i++)
    rc = apply_flag(cfg, &cfg->cli_flags.v[i]);
  if (rc < 0 && errors) rc = 2;
  dx_server_opts *o = &cfg->opts;
  if (cfg->norigins) o->origins = cfg->origins;
  if (cfg->port) o->port = cfg->port;
  if (cfg->threads > 1) o->reuseport = true;
  if (rc < 0 && (o->tls.key_file || o->tls.ca_file || o->tls_port) && !o->tls.cert_file)
    rc = cli_usage_error(name, "--tls-key, --tls-ca and --tls-port need --tls-cert");
  return rc;
}

bool server_main_given(const server_main_cfg *cfg, int code) {
  for (size_t i = 0; i < cfg->cli_flags.n; i++)
    if (cfg->cli_flags.v[i].flag->code == code) return true;
  return false;
}

json_t *server_main_config_json(const server_main_cfg *cfg) {
  return cfg_to_json(&cfg->file_flags, &cfg->cli_flags, &cfg->schema);
}

static void report_log(void *user, const char *msg) {
  (void)user;
  dx_log_error("configuration reload: %s", msg);
}

int server_main_reload_file(const server_main_cfg *cfg, cfg_list *out) {
  *out = (cfg_list){0};
  if (!cfg->config_file) return -1;
  if (cfg_load(cfg->config_file, &cfg->schema, out, report_log, NULL) == 0) return 0;
  cfg_list_free(out);
  return -1;
}

void server_main_free(server_main_cfg *cfg) {
  cfg_list_free(&cfg->file_flags);
  cfg_list_free(&cfg->cli_flags);
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
  server_main_cfg *cfg = arg;
  bool tls = cfg->opts.tls.cert_file != NULL, conf = cfg->on_reload != NULL;
  dx_log_info("SIGHUP received: reloading %s%s%s", tls ? "the TLS certificate" : "",
              tls && conf ? " and " : "", conf ? cfg->config_file : "");
  if (tls)
    for (int i = 0; i < nworkers; i++) dx_loop_post(workers[i].loop, reload_tls, &workers[i]);
  if (conf) cfg->on_reload(cfg->reload_arg);
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
    if (tls || cfg->on_reload) dx_loop_signal(workers[0].loop, SIGHUP, on_sighup, cfg);
    if (tls) {
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
