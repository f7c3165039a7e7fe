/* duplex serve: the pub/sub hub with its demo pages. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "duplex/hub.h"
#include "duplex/log.h"
#include "duplex/server.h"
#include "serve_demo.h"
#include "serve_rule.h"
#include "server_main.h"

static const char usage[] =
    "usage: duplex serve [OPTIONS]\n"
    "\n"
    "Run the real-time hub: browsers and apps subscribe to topics over WebSocket\n"
    "at /ws (subprotocol duplex.v1), publish to them, and resume without loss after\n"
    "a dropped connection; backends publish with POST /api/publish. The protocol\n"
    "and the HTTP API are described in docs/PROTOCOL.md. Clients without WebSocket\n"
    "use Server-Sent Events (GET /sse) or long-polling (GET /poll, POST\n"
    "/http/request); /metrics, /healthz and /readyz serve operators. Pages in\n"
    "--static DIR (default: the demo pages in web/) are served at /.\n"
    "\n"
    "Configuration:\n"
    "      --config FILE          read the settings from FILE, a JSON object whose keys\n"
    "                             are these flags' names ({\"port\": 8080, \"origin\":\n"
    "                             [...], \"rules\": [{\"pattern\": \"ticker/*\", \"publish\":\n"
    "                             \"api\"}]}; see README); flags given here override it.\n"
    "                             SIGHUP reloads its topic rules.\n"
    "      --check-config FILE    check FILE (with the other flags given), print the\n"
    "                             effective configuration as JSON (secrets masked)\n"
    "                             and exit 0; or print the errors and exit 2\n"
    "\n"
    "Hub options:\n"
    "      --history-size N       publications kept per topic for resume and\n"
    "                             history (default 100; 0 keeps none)\n"
    "      --history-ttl T        and for at most this long (default 5m; off: forever)\n"
    "      --max-publication SIZE largest payload of one publication (default 64K)\n"
    "      --max-subscriptions N  topics one connection may subscribe to (default 128)\n"
    "      --api-key KEY          key for the HTTP API (also DUPLEX_API_KEY); without\n"
    "                             a key /api/ answers 403\n"
    "      --slow-close-code C    close code for clients that do not keep up: 1008\n"
    "                             (default) or 1013\n"
    "      --demo                 publish a simulated market feed on ticker/SYMBOL\n"
    "\n"
    "Scale-out across machines (docs/SCALING.md):\n"
    "      --redis URL            share topics, positions and history with every node\n"
    "                             on this Redis (also DUPLEX_REDIS_URL):\n"
    "                             redis://[[user]:password@]host[:port][/db], rediss://\n"
    "                             for TLS, redis+sentinel://h:p,h:p/mastername,\n"
    "                             redis+cluster://h:p,h:p (a Redis Cluster)\n"
    "      --redis-prefix P       prefix of Redis keys and channels (default duplex:)\n"
    "      --presence-ttl T       a node that dies leaves its clients' presence for\n"
    "                             at most this long (default 30s)\n"
    "\n"
    "Authentication (docs/PROTOCOL.md):\n"
    "      --token-secret S       require HS256 connection tokens signed with S (also\n"
    "                             DUPLEX_TOKEN_SECRET; `duplex token` mints some)\n"
    "      --token-key FILE       require RS256/ES256 tokens: the PEM public key\n"
    "      --token-audience A     tokens must carry \"aud\": A\n"
    "      --token-issuer I       tokens must carry \"iss\": I\n"
    "      --token-leeway T       clock skew allowed on exp/nbf (default 5s)\n"
    "      --auth-timeout T       time to send a token after connecting (10s)\n"
    "      --allow-anonymous      with tokens configured, still admit clients\n"
    "                             without one (anonymous)\n"
    "\n"
    "Topic rules and limits:\n" SERVE_RULE_HELP
    "      --publish-rate N       publishes per second per connection (1000; 0: off)\n"
    "      --subscribe-rate N     subscribes per second per connection (100; 0: off)\n"
    "      --max-connections-per-user N   (default 100; 0: off)\n"
    "      --max-connections-per-ip N     (default off; behind a proxy every client\n"
    "                             shares its address)\n"
    "      --connect-rate-per-ip N  new connections per second per address (off)\n"
    "      --history-memory SIZE  retained publications in all topics (256M)\n"
    "      --max-presence N       presence entries per topic (10000)\n"
    "      --session-idle T       a long-poll / SSE session lives this long after its\n"
    "                             last request (default 30s; presence leaves then)\n"
    "\n" SERVER_OPTIONS_HELP "\n"
    "The default port is 8080 and the largest message 1M.\n"
    "\n"
    "Examples:\n"
    "  duplex serve                       # then open http://127.0.0.1:8080/\n"
    "  duplex serve --port 9000 --api-key s3cret --history-size 1000\n"
    "  curl -H 'Authorization: Bearer s3cret' -d '{\"topic\":\"news\",\"data\":\"hi\"}' \\\n"
    "       http://127.0.0.1:9000/api/publish\n";

enum {
  OPT_HISTORY_SIZE = 2000,
  OPT_HISTORY_TTL,
  OPT_MAX_PUBLICATION,
  OPT_MAX_SUBSCRIPTIONS,
  OPT_API_KEY,
  OPT_SLOW_CLOSE_CODE,
  OPT_DEMO,
  OPT_TOKEN_SECRET,
  OPT_TOKEN_KEY,
  OPT_TOKEN_AUDIENCE,
  OPT_TOKEN_ISSUER,
  OPT_TOKEN_LEEWAY,
  OPT_AUTH_TIMEOUT,
  OPT_ALLOW_ANONYMOUS,
  OPT_RULE,
  OPT_PUBLISH_RATE,
  OPT_SUBSCRIBE_RATE,
  OPT_CONNS_PER_USER,
  OPT_CONNS_PER_IP,
  OPT_CONNECT_RATE_IP,
  OPT_HISTORY_MEMORY,
  OPT_MAX_PRESENCE,
  OPT_REDIS,
  OPT_REDIS_PREFIX,
  OPT_SESSION_IDLE,
  OPT_PRESENCE_TTL,
};

/* The names are also the keys of a configuration file (--config); the
 * kind says what value a key takes there (server_config.h). */
static const server_flag serve_flags[] = {
    {"history-size", OPT_HISTORY_SIZE, SF_NUMBER},
    {"history-ttl", OPT_HISTORY_TTL, SF_NUMBER},
    {"max-publication", OPT_MAX_PUBLICATION, SF_NUMBER},
    {"max-subscriptions", OPT_MAX_SUBSCRIPTIONS, SF_NUMBER},
    {"api-key", OPT_API_KEY, SF_SECRET},
    {"slow-close-code", OPT_SLOW_CLOSE_CODE, SF_NUMBER},
    {"demo", OPT_DEMO, SF_SWITCH},
    {"token-secret", OPT_TOKEN_SECRET, SF_SECRET},
    {"token-key", OPT_TOKEN_KEY, SF_TEXT},
    {"token-audience", OPT_TOKEN_AUDIENCE, SF_TEXT},
    {"token-issuer", OPT_TOKEN_ISSUER, SF_TEXT},
    {"token-leeway", OPT_TOKEN_LEEWAY, SF_NUMBER},
    {"auth-timeout", OPT_AUTH_TIMEOUT, SF_NUMBER},
    {"allow-anonymous", OPT_ALLOW_ANONYMOUS, SF_SWITCH},
    {"rule", OPT_RULE, SF_LIST}, /* and "rules": [{"pattern": ..., key: value}] */
    {"publish-rate", OPT_PUBLISH_RATE, SF_NUMBER},
    {"subscribe-rate", OPT_SUBSCRIBE_RATE, SF_NUMBER},
    {"max-connections-per-user", OPT_CONNS_PER_USER, SF_NUMBER},
    {"max-connections-per-ip", OPT_CONNS_PER_IP, SF_NUMBER},
    {"connect-rate-per-ip", OPT_CONNECT_RATE_IP, SF_NUMBER},
    {"history-memory", OPT_HISTORY_MEMORY, SF_NUMBER},
    {"max-presence", OPT_MAX_PRESENCE, SF_NUMBER},
    {"redis", OPT_REDIS, SF_SECRET},
    {"redis-prefix", OPT_REDIS_PREFIX, SF_TEXT},
    {"session-idle", OPT_SESSION_IDLE, SF_NUMBER},
    {"presence-ttl", OPT_PRESENCE_TTL, SF_NUMBER},
    {0, 0, 0},
};

#define MAX_RULES 64

typedef struct serve_cfg {
  server_main_cfg *main;
  dx_hub_opts hub;
  dx_hub_topic_rule rules[MAX_RULES];
  bool demo;
  dx_hub *h;
  /* The rules in force (the texts --rule takes), to tell what a reload
   * changed; owned. */
  char *rule_texts[MAX_RULES];
  size_t nrule_texts;
} serve_cfg;

static serve_cfg serve;

static int parse_extra(int opt, const char *arg, void *user) {
  (void)user;
  dx_hub_opts *o = &serve.hub;
  long v;
  size_t sz;
  int ms;
  switch (opt) {
  case OPT_HISTORY_SIZE:
    if (!cli_parse_int(arg, 0, 10000000, &v))
      return cli_usage_error("serve", "bad count '%s' for --history-size (0-10000000)", arg);
    o->history_size = v ? (int)v : -1;
    return 0;
  case OPT_HISTORY_TTL:
    if (!cli_parse_ms(arg, &ms))
      return cli_usage_error("serve", "bad duration '%s' for --history-ttl (try 30s, 5m or off)",
                             arg);
    o->history_ttl_ms = ms <= 0 ? -1 : ms;
    return 0;
  case OPT_MAX_PUBLICATION:
    if (!cli_parse_size(arg, &sz) || !sz)
      return cli_usage_error("serve", "bad size '%s' for --max-publication", arg);
    o->max_publication = sz;
    return 0;
  case OPT_MAX_SUBSCRIPTIONS:
    if (!cli_parse_int(arg, 1, 1000000, &v))
      return cli_usage_error("serve", "bad count '%s' for --max-subscriptions", arg);
    o->max_subscriptions = (unsigned)v;
    return 0;
  case OPT_API_KEY:
    if (!*arg) return cli_usage_error("serve", "--api-key needs a non-empty key");
    o->api_key = arg;
    return 0;
  case OPT_SLOW_CLOSE_CODE:
    if (!strcmp(arg, "1008"))
      serve.main->opts.backpressure = DX_BP_CLOSE;
    else if (!strcmp(arg, "1013"))
      serve.main->opts.backpressure = DX_BP_CLOSE_1013;
    else
      return cli_usage_error("serve", "bad --slow-close-code '%s' (1008 or 1013)", arg);
    return 0;
  case OPT_DEMO:
    serve.demo = true;
    return 0;
  case OPT_REDIS:
    if (!*arg)
      return cli_usage_error("serve", "--redis needs a URL such as redis://127.0.0.1:6379");
    o->redis_url = arg;
    return 0;
  case OPT_PRESENCE_TTL:
    if (!cli_parse_ms(arg, &ms) || ms < 1000)
      return cli_usage_error("serve", "bad duration '%s' for --presence-ttl (at least 1s; try 30s)",
                             arg);
    o->presence_ttl_ms = ms;
    return 0;
  case OPT_REDIS_PREFIX:
    if (!*arg || strlen(arg) > 60)
      return cli_usage_error("serve", "--redis-prefix must be 1 to 60 characters");
    o->redis_prefix = arg;
    return 0;
  case OPT_TOKEN_SECRET:
    if (strlen(arg) < 16)
      return cli_usage_error("serve", "--token-secret must be at least 16 bytes");
    o->token_secret = arg;
    return 0;
  case OPT_TOKEN_KEY:
    o->token_key_file = arg;
    return 0;
  case OPT_TOKEN_AUDIENCE:
    o->token_audience = arg;
    return 0;
  case OPT_TOKEN_ISSUER:
    o->token_issuer = arg;
    return 0;
  case OPT_TOKEN_LEEWAY:
  case OPT_AUTH_TIMEOUT:
    /* cli_parse_ms reads "0" and "off" as -1: no leeway, or no time at all */
    if (!cli_parse_ms(arg, &ms) || (ms < 0 && opt == OPT_AUTH_TIMEOUT))
      return cli_usage_error("serve", "bad duration '%s' (try 5s or 500ms)", arg);
    if (opt == OPT_TOKEN_LEEWAY)
      o->token_leeway_s = ms >= 1000 ? ms / 1000 : -1;
    else
      o->auth_timeout_ms = ms;
    return 0;
  case OPT_ALLOW_ANONYMOUS:
    o->allow_anonymous = true;
    return 0;
  case OPT_RULE: {
    char err[160];
    if (o->nrules == MAX_RULES)
      return cli_usage_error("serve", "at most %d --rule flags", MAX_RULES);
    if (serve_rule_parse((char *)arg, &serve.rules[o->nrules], err, sizeof err) != 0)
      return cli_usage_error("serve", "bad --rule: %s", err);
    o->nrules++;
    o->rules = serve.rules;
    return 0;
  }
  case OPT_PUBLISH_RATE:
  case OPT_SUBSCRIBE_RATE:
  case OPT_CONNECT_RATE_IP: {
    char *end;
    double r = strtod(arg, &end);
    if (end == arg || *end || r < 0 || r > 1e7)
      return cli_usage_error("serve", "bad rate '%s' (per second; 0 turns it off)", arg);
    double rate = r > 0 ? r : -1;
    if (opt == OPT_PUBLISH_RATE)
      o->publish_rate = rate;
    else if (opt == OPT_SUBSCRIBE_RATE)
      o->subscribe_rate = rate;
    else
      o->connect_rate_per_ip = rate;
    return 0;
  }
  case OPT_CONNS_PER_USER:
  case OPT_CONNS_PER_IP:
  case OPT_MAX_PRESENCE:
    if (!cli_parse_int(arg, 0, 100000000, &v))
      return cli_usage_error("serve", "bad count '%s' (0 turns the limit off)", arg);
    {
      unsigned n = v ? (unsigned)v : ~0u;
      if (opt == OPT_CONNS_PER_USER)
        o->max_conns_per_user = n;
      else if (opt == OPT_CONNS_PER_IP)
        o->max_conns_per_ip = n;
      else
        o->max_presence = n;
    }
    return 0;
  case OPT_SESSION_IDLE:
    if (!cli_parse_ms(arg, &ms) || ms > 3600000)
      return cli_usage_error("serve", "bad duration '%s' for --session-idle (try 30s or 500ms)",
                             arg);
    o->session_idle_ms = ms;
    return 0;
  case OPT_HISTORY_MEMORY:
    if (!cli_parse_size(arg, &sz))
      return cli_usage_error("serve", "bad size '%s' for --history-memory (0: no bound)", arg);
    o->history_memory = sz ? sz : ~(size_t)0;
    return 0;
  default:
    return cli_usage_error("serve", "unknown option");
  }
}

/* --rule given on the command line replaces the file's rules. */
static void reset_extra(int opt, void *user) {
  (void)user;
  if (opt == OPT_RULE) {
    serve.hub.nrules = 0;
    serve.hub.rules = NULL;
  }
}

static void set_rule_texts(serve_cfg *s, const cfg_list *l) {
  for (size_t i = 0; i < s->nrule_texts; i++) free(s->rule_texts[i]);
  s->nrule_texts = 0;
  for (size_t i = 0; l && i < l->n && s->nrule_texts < MAX_RULES; i++)
    if (l->v[i].flag->code == OPT_RULE) s->rule_texts[s->nrule_texts++] = strdup(l->v[i].text);
}

/* SIGHUP with --config (on the first loop's thread, so never twice at
 * once): the file's topic rules replace the hub's; on any problem in the
 * file the rules in force stay. */
static void reload_rules(void *arg) {
  serve_cfg *s = arg;
  cfg_list l;
  if (server_main_reload_file(s->main, &l) != 0) {
    dx_log_error("configuration reload failed: keeping the %zu rule%s in force", s->nrule_texts,
                 s->nrule_texts == 1 ? "" : "s");
    return;
  }
  if (server_main_given(s->main, OPT_RULE)) {
    dx_log_warn("rules not reloaded: --rule on the command line overrides the file's rules");
    cfg_list_free(&l);
    return;
  }
  dx_hub_topic_rule rules[MAX_RULES];
  size_t n = 0, added = 0, removed = 0;
  char err[160];
  for (size_t i = 0; i < l.n; i++) {
    if (l.v[i].flag->code != OPT_RULE) continue;
    if (n == MAX_RULES) {
      dx_log_error("configuration reload failed: more than %d rules; keeping the rules in force",
                   MAX_RULES);
      cfg_list_free(&l);
      return;
    }
    if (serve_rule_parse(l.v[i].arg, &rules[n++], err, sizeof err) != 0) { /* checked by cfg_load */
      dx_log_error("configuration reload failed: %s: %s; keeping the rules in force", l.v[i].where,
                   err);
      cfg_list_free(&l);
      return;
    }
  }
  int rc = dx_hub_set_rules(s->h, rules, n);
  if (rc != 0) {
    dx_log_error("rules reload failed: %s; keeping the rules in force", dx_strerror(rc));
    cfg_list_free(&l);
    return;
  }
  /* What changed: rules (texts) added and removed, or only their order. */
  bool same_order = n == s->nrule_texts;
  size_t k = 0;
  for (size_t i = 0; i < l.n; i++) {
    if (l.v[i].flag->code != OPT_RULE) continue;
    bool found = false;
    for (size_t j = 0; j < s->nrule_texts && !found; j++)
      found = !strcmp(l.v[i].text, s->rule_texts[j]);
    added += !found;
    same_order &= k < s->nrule_texts && !strcmp(l.v[i].text, s->rule_texts[k]);
    k++;
  }
  for (size_t j = 0; j < s->nrule_texts; j++) {
    bool found = false;
    for (size_t i = 0; i < l.n && !found; i++)
      found = l.v[i].flag->code == OPT_RULE && !strcmp(l.v[i].text, s->rule_texts[j]);
    removed += !found;
  }
  if (added || removed)
    dx_log_info("rules reloaded: %zu rule%s (%zu added, %zu removed)", n, n == 1 ? "" : "s", added,
                removed);
  else
    dx_log_info("rules reloaded: %zu rule%s (%s)", n, n == 1 ? "" : "s",
                same_order ? "unchanged" : "reordered");
  set_rule_texts(s, &l);
  char names[400];
  size_t nchanged = cfg_changed(&s->main->file_flags, &l, OPT_RULE, names, sizeof names);
  if (nchanged)
    dx_log_warn("configuration reload: the change%s to %s take%s effect at the next start",
                nchanged == 1 ? "" : "s", names, nchanged == 1 ? "s" : "");
  cfg_list_free(&l);
}

static int setup(dx_server *srv, void *arg) {
  serve_cfg *s = arg;
  int rc = dx_hub_attach(s->h, srv);
  if (rc != 0) {
    fprintf(stderr, "duplex serve: cannot start the hub: %s\n", dx_strerror(rc));
    return 1;
  }
  /* The demo feed runs on the first loop only. */
  if (s->demo && serve_demo_start(s->h, dx_server_loop(srv)) != 0) return 1;
  s->demo = false;
  return 0;
}

static void teardown(dx_server *srv, void *arg) {
  serve_cfg *s = arg;
  serve_demo_stop(); /* before the first loop goes; later calls do nothing */
  dx_hub_detach(s->h, srv);
}

/* The demo pages: ./web, else the installed ones, else those of the source
 * tree the binary was built from (a build directory's binary, in tests). */
static const char *default_web_dir(void) {
  static const char *const candidates[] = {"web", DX_WEB_DIR, DX_SOURCE_WEB_DIR, NULL};
  for (int i = 0; candidates[i]; i++)
    if (access(candidates[i], R_OK | X_OK) == 0) return candidates[i];
  return NULL;
}

static const server_cmd serve_cmd = {
    .flags = serve_flags,
    .apply = parse_extra,
    .reset = reset_extra,
    .config = true,
    .rules_code = OPT_RULE,
};

/* --check-config: the effective configuration, secrets masked (the keys
 * from the environment too). */
static void print_config(server_main_cfg *cfg) {
  json_t *j = server_main_config_json(cfg);
  if (!j) return;
  if (serve.hub.api_key && !json_object_get(j, "api-key"))
    json_object_set_new(j, "api-key", json_string("********"));
  if (serve.hub.token_secret && !json_object_get(j, "token-secret"))
    json_object_set_new(j, "token-secret", json_string("********"));
  /* DUPLEX_REDIS_URL may hold a password. */
  if (serve.hub.redis_url && !json_object_get(j, "redis"))
    json_object_set_new(j, "redis", json_string("********"));
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

static int serve_main(server_main_cfg *cfg, int argc, char **argv) {
  int rc = server_main_parse(cfg, argc, argv, usage, &serve_cmd);
  if (rc >= 0) return rc;
  if (!serve.hub.api_key) {
    const char *env = getenv("DUPLEX_API_KEY");
    if (env && *env) serve.hub.api_key = env;
  }
  if (!serve.hub.redis_url) {
    const char *env = getenv("DUPLEX_REDIS_URL");
    if (env && *env) serve.hub.redis_url = env;
  }
  if (!serve.hub.token_secret && !serve.hub.token_key_file) {
    const char *env = getenv("DUPLEX_TOKEN_SECRET");
    if (env && *env) serve.hub.token_secret = env;
  }
  if (serve.hub.token_secret && serve.hub.token_key_file)
    return cli_usage_error("serve", "--token-secret and --token-key exclude each other");
  if (serve.hub.allow_anonymous && !serve.hub.token_secret && !serve.hub.token_key_file)
    return cli_usage_error("serve", "--allow-anonymous needs --token-secret or --token-key "
                                    "(without them every client is anonymous)");
  if (!cfg->opts.static_dir && !cfg->check_config) cfg->opts.static_dir = default_web_dir();
  serve.h = dx_hub_new(&serve.hub);
  if (!serve.h) {
    fprintf(stderr, "duplex serve: cannot start the hub (see the log line above)\n");
    return cfg->check_config ? 2 : 1;
  }
  if (cfg->check_config) {
    print_config(cfg);
    return 0;
  }
  set_rule_texts(&serve, server_main_given(cfg, OPT_RULE) ? &cfg->cli_flags : &cfg->file_flags);
  if (cfg->config_file) {
    cfg->on_reload = reload_rules;
    cfg->reload_arg = &serve;
  }
  if (serve.hub.token_secret || serve.hub.token_key_file)
    dx_log_info("connections need a token%s",
                serve.hub.allow_anonymous ? " (or come anonymous)" : "");
  if (!serve.hub.api_key)
    dx_log_info("HTTP API disabled (no --api-key or DUPLEX_API_KEY): /api/ answers 403");
  return server_main_run(cfg, setup, teardown, &serve);
}

int cmd_serve(int argc, char **argv) {
  server_main_cfg cfg;
  server_main_defaults(&cfg);
  cfg.name = "serve";
  cfg.port = 8080;
  cfg.opts.max_message = (size_t)1 << 20;
  serve = (serve_cfg){.main = &cfg};
  int rc = serve_main(&cfg, argc, argv);
  dx_hub_free(serve.h);
  set_rule_texts(&serve, NULL);
  server_main_free(&cfg);
  return rc;
}
