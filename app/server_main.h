/* Shared by the server subcommands (echo, serve): the common flags, the
 * configuration file, N loops on N threads with SO_REUSEPORT, signals and
 * graceful shutdown. */
#ifndef DX_APP_SERVER_MAIN_H
#define DX_APP_SERVER_MAIN_H

#include "cli.h"
#include "duplex/server.h"
#include "server_config.h"

#define SERVER_OPTIONS_HELP                                                                        \
  "Options:\n"                                                                                     \
  "  -H, --host ADDR            address to listen on (default 127.0.0.1; 0.0.0.0 or ::\n"          \
  "                             for every interface)\n"                                            \
  "  -p, --port N               port (default given below; 0 picks a free one)\n"                  \
  "  -t, --threads N            event loops on N threads sharing the port (default 1)\n"           \
  "      --max-message SIZE     largest message accepted, e.g. 1M (then close 1009)\n"             \
  "      --max-buffered SIZE    unsent bytes per connection before a slow client is\n"             \
  "                             closed with 1008 (default 4M)\n"                                   \
  "      --max-body SIZE        largest HTTP request body, e.g. for /api/publish\n"               \
  "                             (default 1M; then 413)\n"                                         \
  "      --max-connections N    then answer 503 (default 100000, all threads)\n"                   \
  "      --handshake-timeout T  drop clients that do not finish the handshake (10s)\n"             \
  "      --ping-interval T      ping quiet clients this often (30s; off to disable)\n"             \
  "      --pong-timeout T       close clients that do not answer a ping (30s)\n"                   \
  "      --idle-timeout T       close after no message either way (default off)\n"                 \
  "      --static DIR           also serve files from DIR over plain HTTP\n"                       \
  "      --origin ORIGIN        allow only this Origin (repeatable; *.example.com\n"             \
  "                             allows its subdomains), others get 403\n" DEFLATE_OPTIONS_HELP        \
  "      --tls-cert FILE        serve wss:// with this certificate chain (PEM)\n"                  \
  "      --tls-key FILE         its private key (PEM; default: in the cert file)\n"                \
  "      --tls-ca FILE          require client certificates signed by this CA\n"                   \
  "      --tls-port N           serve wss on N and plain ws on --port (default: TLS\n"             \
  "                             on --port only). SIGHUP reloads the certificate.\n"                \
  "      --log-level LEVEL      error, warn, info (default) or debug\n"                            \
  "      --log-format FORMAT    text (default) or json: one JSON object per line\n"                \
  "                             {\"time\",\"level\",\"msg\"} for log shippers\n"                   \
  "  -h, --help                 show this help\n"                                                  \
  "\n"                                                                                             \
  "SIZE takes K, M, G suffixes; T takes ms, s, m suffixes (plain numbers are ms).\n"               \
  "SIGINT/SIGTERM close every client with 1001 and exit 0 once they are gone.\n"

/* A command's own flags (beyond the common ones) and their handler. */
typedef struct server_cmd {
  const server_flag *flags; /* ending with a zeroed entry */
  /* Apply one flag (from the command line or a configuration file; arg is
   * NULL for a switch). Returns 0, or an exit status after cli_usage_error. */
  int (*apply)(int code, const char *arg, void *user);
  /* Forget the values of an SF_LIST flag: given on the command line, it
   * replaces the file's list. */
  void (*reset)(int code, void *user);
  void *user;
  bool config;    /* takes --config FILE and --check-config FILE */
  int rules_code; /* the flag the file's "rules" objects become (0: none) */
} server_cmd;

typedef struct server_main_cfg {
  const char *name; /* subcommand, for messages */
  dx_server_opts opts;
  int port;
  int threads;
  const char *origins[17];
  int norigins;
  /* Filled by server_main_parse. */
  const server_cmd *cmd;
  const char *config_file; /* --config or --check-config FILE */
  bool check_config;       /* --check-config */
  cfg_schema schema;
  cfg_list file_flags, cli_flags; /* values (kept until server_main_free) */
  /* Set by the command before server_main_run: on SIGHUP with --config,
   * called on the first loop's thread (besides the TLS reload). */
  void (*on_reload)(void *arg);
  void *reload_arg;
} server_main_cfg;

void server_main_defaults(server_main_cfg *cfg);

/* Parse the command line (and, with --config, the file first): the common
 * flags, and the command's own through cmd->apply (cmd may be NULL).
 * Returns -1 to go on, or an exit status (0 after --help, 2 for a usage or
 * configuration error). Call server_main_free afterwards in any case. */
int server_main_parse(server_main_cfg *cfg, int argc, char **argv, const char *usage,
                      const server_cmd *cmd);

/* Was this flag given on the command line? */
bool server_main_given(const server_main_cfg *cfg, int code);

/* The effective configuration (file, then flags), secrets masked; a new
 * JSON object or NULL. */
json_t *server_main_config_json(const server_main_cfg *cfg);

/* Read the configuration file again (for a reload): the file's entries in
 * *out (free with cfg_list_free), or -1 after logging each problem with
 * dx_log_error. */
int server_main_reload_file(const server_main_cfg *cfg, cfg_list *out);

/* Free what server_main_parse kept (the values). */
void server_main_free(server_main_cfg *cfg);

/* Run the servers until SIGINT/SIGTERM; `setup` registers routes on each
 * (one per thread, before any loop runs). `teardown` (may be NULL) runs for
 * each server after it was freed and before its loop is, on the main thread
 * once every loop stopped. Returns the exit status. */
int server_main_run(server_main_cfg *cfg, int (*setup)(dx_server *srv, void *arg),
                    void (*teardown)(dx_server *srv, void *arg), void *arg);

#endif
