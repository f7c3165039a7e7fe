/* The configuration file of the server commands: JSON (jansson) into the
 * (flag, value) list the command line gives. Jansson gives no positions for
 * keys and values of a document it parsed, so a small scanner walks the
 * file's text (valid JSON by then) to the key or value a message is about. */
#include "server_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_rule.h"

#define MAX_FILE_SIZE (1u << 20)

/* ---- lists ---- */

int cfg_push(cfg_list *l, const server_flag *flag, const char *arg, const char *where) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    cfg_entry *v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  cfg_entry *e = &l->v[l->n];
  *e = (cfg_entry){.flag = flag};
  if ((arg && (!(e->arg = strdup(arg)) || !(e->text = strdup(arg)))) ||
      (where && !(e->where = strdup(where)))) {
    free(e->arg);
    free(e->text);
    return -1;
  }
  l->n++;
  return 0;
}

void cfg_list_free(cfg_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].arg);
    free(l->v[i].text);
    free(l->v[i].where);
  }
  free(l->v);
  *l = (cfg_list){0};
}

const server_flag *cfg_find_flag(const cfg_schema *s, const char *name) {
  for (int t = 0; t < 2; t++)
    for (const server_flag *f = s->tables[t]; f && f->name; f++)
      if (!strcmp(f->name, name)) return f;
  return NULL;
}

/* ---- positions in the text ---- */

/* One step of a path into the document: a member (key) or an element. */
typedef struct jstep {
  const char *key; /* NULL: index */
  size_t index;
} jstep;

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *skip_string(const char *p, const char *e) {
  for (p++; p < e && *p != '"'; p++)
    if (*p == '\\') p++;
  return p < e ? p + 1 : e;
}

static const char *skip_value(const char *p, const char *e) {
  if (p >= e) return e;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      if (*p == '"') {
        p = skip_string(p, e);
        continue;
      }
      if (*p == '{' || *p == '[')
        depth++;
      else if ((*p == '}' || *p == ']') && --depth == 0)
        return p + 1;
      p++;
    }
    return e;
  }
  while (p < e && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' && *p != '\n' &&
         *p != '\r')
    p++;
  return p;
}

/* Does the string token [q0, q1) decode to `key`? (Keys may be escaped.) */
static bool key_is(const char *q0, const char *q1, const char *key) {
  size_t n = strlen(key);
  if ((size_t)(q1 - q0) == n + 2 && !memchr(q0, '\\', n + 2) && !memcmp(q0 + 1, key, n))
    return true;
  if (!memchr(q0, '\\', (size_t)(q1 - q0))) return false;
  json_t *s = json_loadb(q0, (size_t)(q1 - q0), JSON_DECODE_ANY, NULL);
  bool eq = s && json_is_string(s) && !strcmp(json_string_value(s), key);
  json_decref(s);
  return eq;
}

/* Where the value at `path` starts (or its key, with want_key, when the
 * last step is a member); NULL if the text does not have it. */
static const char *locate(const char *text, size_t len, const jstep *path, int n, bool want_key) {
  const char *e = text + len, *p = skip_ws(text, e);
  for (int i = 0; i < n; i++) {
    if (path[i].key) {
      if (p >= e || *p != '{') return NULL;
      for (p = skip_ws(p + 1, e);;) {
        if (p >= e || *p != '"') return NULL;
        const char *k0 = p, *k1 = skip_string(p, e);
        p = skip_ws(k1, e);
        if (p >= e || *p != ':') return NULL;
        p = skip_ws(p + 1, e);
        if (key_is(k0, k1, path[i].key)) {
          if (i == n - 1 && want_key) return k0;
          break;
        }
        p = skip_ws(skip_value(p, e), e);
        if (p >= e || *p != ',') return NULL;
        p = skip_ws(p + 1, e);
      }
    } else {
      if (p >= e || *p != '[') return NULL;
      p = skip_ws(p + 1, e);
      for (size_t j = 0; j < path[i].index; j++) {
        p = skip_ws(skip_value(p, e), e);
        if (p >= e || *p != ',') return NULL;
        p = skip_ws(p + 1, e);
      }
    }
  }
  return p;
}

/* ---- loading ---- */

typedef struct loader {
  const char *path;
  const char *text;
  size_t len;
  const cfg_schema *s;
  cfg_list *out;
  cfg_report_fn report;
  void *user;
  int errors;
} loader;

/* "FILE:LINE:COL" of the key or value at `path` (columns count characters,
 * as jansson's do). */
static void where_of(const loader *L, const jstep *path, int n, bool want_key, char *buf,
                     size_t cap) {
  const char *at = locate(L->text, L->len, path, n, want_key);
  if (!at) {
    snprintf(buf, cap, "%s", L->path);
    return;
  }
  int line = 1, col = 1;
  for (const char *p = L->text; p < at; p++) {
    if (*p == '\n')
      line++, col = 1;
    else if (((unsigned char)*p & 0xC0) != 0x80)
      col++;
  }
  snprintf(buf, cap, "%s:%d:%d", L->path, line, col);
}

static int problem(loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(loader *L, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  L->errors++;
  L->report(L->user, msg);
  return 0;
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

static int push(loader *L, const server_flag *f, const char *arg, const char *where) {
  if (cfg_push(L->out, f, arg, where) != 0) problem(L, "%s: out of memory", where);
  return 0;
}

/* A number's text, as a flag would give it. */
static void number_text(const json_t *v, char *buf, size_t cap) {
  if (json_is_integer(v))
    snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else
    snprintf(buf, cap, "%.15g", json_real_value(v));
}

/* A topic pattern: a topic name (docs/PROTOCOL.md "Topics"), or a prefix
 * of one followed by '*'. */
static bool pattern_ok(const char *p) {
  size_t n = strlen(p);
  if (n && p[n - 1] == '*') n--;
  if (n > 128 || (n == 0 && !p[0])) return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:./@=", p[i]))
      return false;
  return true;
}

/* Check a rule string (--rule's form) without keeping it. */
static int check_rule_text(loader *L, const char *spec, const char *where, const char *what) {
  char *copy = strdup(spec), err[200];
  dx_hub_topic_rule r;
  if (!copy) return problem(L, "%s: out of memory", where);
  if (serve_rule_parse(copy, &r, err, sizeof err) != 0) problem(L, "%s: %s: %s", where, what, err);
  free(copy);
  return 0;
}

/* One object of "rules": checked key by key (with positions), then turned
 * into the text --rule takes. */
static int load_rule(loader *L, const server_flag *rule_flag, json_t *obj, size_t i) {
  char where[600], what[32], spec[2048];
  snprintf(what, sizeof what, "rules[%zu]", i);
  jstep path[3] = {{"rules", 0}, {NULL, i}, {NULL, 0}};
  where_of(L, path, 2, false, where, sizeof where);
  if (!json_is_object(obj))
    return problem(L,
                   "%s: %s should be an object such as {\"pattern\": \"chat:*\", \"publish\": "
                   "\"api\"}, not %s",
                   where, what, type_name(obj));
  json_t *pat = json_object_get(obj, "pattern");
  if (!json_is_string(pat)) {
    if (pat) {
      path[2].key = "pattern";
      where_of(L, path, 3, false, where, sizeof where);
    }
    return problem(L, "%s: %s needs a \"pattern\" string (a topic name or a prefix ending in '*')",
                   where, what);
  }
  const char *pattern = json_string_value(pat);
  if (!pattern_ok(pattern)) {
    path[2].key = "pattern";
    where_of(L, path, 3, false, where, sizeof where);
    return problem(L,
                   "%s: %s: bad pattern '%s' (a topic name of A-Z a-z 0-9 _ - : . / @ =, or a "
                   "prefix ending in '*')",
                   where, what, pattern);
  }
  int n = snprintf(spec, sizeof spec, "%s:", pattern), before = L->errors, keys = 0;
  dx_hub_topic_rule scratch = {0};
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (!strcmp(key, "pattern") || !strncmp(key, "//", 2)) continue;
    char val[64], err[200];
    path[2].key = key;
    if (json_is_string(v) && strlen(json_string_value(v)) < sizeof val) {
      snprintf(val, sizeof val, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
      number_text(v, val, sizeof val);
    } else {
      where_of(L, path, 3, false, where, sizeof where);
      problem(L, "%s: %s: \"%s\" should be a string or a whole number, not %s", where, what, key,
              json_is_string(v) ? "so long a string" : type_name(v));
      continue;
    }
    if (serve_rule_set(&scratch, key, val, err, sizeof err) != 0) {
      bool unknown = !strncmp(err, "unknown", 7);
      where_of(L, path, 3, unknown, where, sizeof where);
      problem(L, "%s: %s: %s", where, what, err);
      continue;
    }
    n += snprintf(spec + n, sizeof spec - (size_t)n, "%s%s=%s", keys++ ? "," : "", key, val);
  }
  if (L->errors != before) return 0;
  where_of(L, path, 2, false, where, sizeof where);
  if (!keys)
    return problem(L,
                   "%s: %s: a rule needs a key besides \"pattern\" (publish, presence, history, "
                   "max-publication, anonymous)",
                   where, what);
  check_rule_text(L, spec, where, what);
  if (L->errors == before) push(L, rule_flag, spec, where);
  return 0;
}

static int load_member(loader *L, const char *key, json_t *v) {
  char where[600], buf[64];
  jstep path[2] = {{key, 0}, {NULL, 0}};
  if (!strncmp(key, "//", 2)) return 0; /* a comment */
  const cfg_schema *s = L->s;
  const server_flag *rule_flag = NULL;
  for (int t = 0; t < 2 && !rule_flag; t++)
    for (const server_flag *f = s->tables[t]; s->rules_code && f && f->name; f++)
      if (f->code == s->rules_code) rule_flag = f;
  if (rule_flag && !strcmp(key, "rules")) {
    if (!json_is_array(v)) {
      where_of(L, path, 1, false, where, sizeof where);
      return problem(L, "%s: \"rules\" should be an array of objects, not %s", where, type_name(v));
    }
    for (size_t i = 0; i < json_array_size(v); i++)
      load_rule(L, rule_flag, json_array_get(v, i), i);
    return 0;
  }
  const server_flag *f = cfg_find_flag(s, key);
  if (!f) {
    where_of(L, path, 1, true, where, sizeof where);
    char alt[128];
    snprintf(alt, sizeof alt, "%s", key);
    for (char *c = alt; *c; c++)
      if (*c == '_') *c = '-';
    const server_flag *g = cfg_find_flag(s, alt);
    if (g && g->kind != SF_CLI)
      return problem(L, "%s: unknown key '%s' (did you mean '%s'?)", where, key, g->name);
    return problem(L, "%s: unknown key '%s' (the keys are the flags of --help)", where, key);
  }
  if (f->kind == SF_CLI) {
    where_of(L, path, 1, true, where, sizeof where);
    return problem(L, "%s: '%s' is for the command line only", where, key);
  }
  where_of(L, path, 1, false, where, sizeof where);
  switch (f->kind) {
  case SF_TEXT:
  case SF_SECRET:
    if (!json_is_string(v))
      return problem(L, "%s: \"%s\" should be a string, not %s", where, key, type_name(v));
    return push(L, f, json_string_value(v), where);
  case SF_NUMBER:
    if (json_is_number(v)) {
      number_text(v, buf, sizeof buf);
      return push(L, f, buf, where);
    }
    if (!json_is_string(v))
      return problem(L,
                     "%s: \"%s\" should be a number or a string such as \"4K\" or \"30s\", not %s",
                     where, key, type_name(v));
    return push(L, f, json_string_value(v), where);
  case SF_SWITCH:
    if (!json_is_boolean(v))
      return problem(L, "%s: \"%s\" should be true or false, not %s", where, key, type_name(v));
    if (json_is_true(v)) push(L, f, NULL, where);
    return 0;
  case SF_LIST:
    if (json_is_string(v)) {
      if (f->code == s->rules_code) check_rule_text(L, json_string_value(v), where, key);
      return push(L, f, json_string_value(v), where);
    }
    if (!json_is_array(v))
      return problem(L, "%s: \"%s\" should be an array of strings, not %s", where, key,
                     type_name(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *s1 = json_array_get(v, i);
      path[1].index = i;
      where_of(L, path, 2, false, where, sizeof where);
      if (!json_is_string(s1)) {
        problem(L, "%s: \"%s\"[%zu] should be a string, not %s", where, key, i, type_name(s1));
        continue;
      }
      if (f->code == s->rules_code) check_rule_text(L, json_string_value(s1), where, key);
      push(L, f, json_string_value(s1), where);
    }
    return 0;
  default:
    return 0;
  }
}

/* jansson's message without its " near '...'" part, which quotes the
 * file's text (perhaps a secret). */
static void json_error_text(const json_error_t *je, char *buf, size_t cap) {
  snprintf(buf, cap, "%s", je->text);
  char *near = strstr(buf, " near ");
  if (near) *near = '\0';
}

int cfg_load(const char *path, const cfg_schema *s, cfg_list *out, cfg_report_fn report,
             void *user) {
  loader L = {.path = path, .s = s, .out = out, .report = report, .user = user};
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    problem(&L, "%s: cannot read the configuration file: %s", path, strerror(errno));
    return L.errors;
  }
  char *text = malloc(MAX_FILE_SIZE + 1);
  size_t len = text ? fread(text, 1, MAX_FILE_SIZE + 1, fp) : 0;
  bool bad = ferror(fp);
  fclose(fp);
  if (!text || bad || len > MAX_FILE_SIZE) {
    problem(&L, "%s: %s", path,
            !text ? "out of memory"
            : bad ? "read error"
                  : "the configuration file is over 1 MiB");
    free(text);
    return L.errors;
  }
  text[len] = '\0';
  L.text = text;
  L.len = len;
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    char msg[200];
    json_error_text(&je, msg, sizeof msg);
    if (je.line > 0)
      problem(&L, "%s:%d:%d: bad JSON: %s", path, je.line, je.column, msg);
    else
      problem(&L, "%s: bad JSON: %s", path, msg);
  } else if (!json_is_object(root)) {
    char where[600];
    where_of(&L, NULL, 0, false, where, sizeof where);
    problem(&L, "%s: the configuration should be a JSON object ({\"port\": 8080, ...}), not %s",
            where, type_name(root));
  } else {
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) load_member(&L, key, v);
  }
  json_decref(root);
  free(text);
  return L.errors;
}

static bool same_values(const cfg_list *a, const cfg_list *b, const server_flag *f) {
  size_t i = 0, j = 0;
  for (;;) {
    while (i < a->n && a->v[i].flag != f) i++;
    while (j < b->n && b->v[j].flag != f) j++;
    if (i == a->n || j == b->n) return i == a->n && j == b->n;
    const char *x = a->v[i].text, *y = b->v[j].text;
    if ((x || y) && (!x || !y || strcmp(x, y))) return false;
    i++, j++;
  }
}

size_t cfg_changed(const cfg_list *a, const cfg_list *b, int skip, char *buf, size_t cap) {
  size_t count = 0, len = 0;
  if (cap) buf[0] = '\0';
  const cfg_list *both[2] = {a, b};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < both[k]->n; i++) {
      const server_flag *f = both[k]->v[i].flag;
      bool seen = false; /* report each flag once */
      for (size_t j = 0; j < i && !seen; j++) seen = both[k]->v[j].flag == f;
      for (size_t j = 0; k == 1 && j < a->n && !seen; j++) seen = a->v[j].flag == f;
      if (seen || f->code == skip || same_values(a, b, f)) continue;
      count++;
      if (len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", f->name);
    }
  return count;
}

/* ---- printing ---- */

/* "123" or "0.5" print as numbers, "4K" or "off" as strings. */
static json_t *number_or_text(const char *t) {
  if (!*t || strspn(t, "0123456789.eE+-") != strlen(t)) return json_string(t);
  char *end;
  errno = 0;
  long long i = strtoll(t, &end, 10);
  if (!*end && !errno) return json_integer(i);
  double d = strtod(t, &end);
  return *end ? json_string(t) : json_real(d);
}

/* A rule's text (PATTERN:k=v,...) as an object. */
static json_t *rule_object(const char *spec) {
  char *copy = strdup(spec), err[200];
  dx_hub_topic_rule r;
  json_t *o = json_object();
  if (!copy || !o || serve_rule_parse(copy, &r, err, sizeof err) != 0) {
    free(copy);
    json_decref(o);
    return json_string(spec);
  }
  json_object_set_new(o, "pattern", json_string(r.pattern));
  char *opts = strdup(spec + strlen(r.pattern) + 1), *save = NULL;
  for (char *kv = opts ? strtok_r(opts, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) continue;
    *eq = '\0';
    const char *key = strcmp(kv, "max_publication") ? kv : "max-publication";
    json_object_set_new(o, key, number_or_text(eq + 1));
  }
  free(opts);
  free(copy);
  return o;
}

static bool given_in(const cfg_list *l, const server_flag *f) {
  for (size_t i = 0; l && i < l->n; i++)
    if (l->v[i].flag == f) return true;
  return false;
}

json_t *cfg_to_json(const cfg_list *file, const cfg_list *cli, const cfg_schema *s) {
  json_t *o = json_object();
  if (!o) return NULL;
  const cfg_list *lists[2] = {file, cli};
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; lists[k] && i < lists[k]->n; i++) {
      const cfg_entry *e = &lists[k]->v[i];
      const server_flag *f = e->flag;
      if (f->kind == SF_LIST) {
        /* the command line's list replaces the file's */
        if (k == 0 && given_in(cli, f)) continue;
        const char *key = f->code == s->rules_code ? "rules" : f->name;
        json_t *a = json_object_get(o, key);
        if (!a) json_object_set_new(o, key, a = json_array());
        json_array_append_new(a, f->code == s->rules_code ? rule_object(e->text)
                                                          : json_string(e->text));
        continue;
      }
      json_t *v = f->kind == SF_SWITCH   ? json_true()
                  : f->kind == SF_SECRET ? json_string("********")
                  : f->kind == SF_NUMBER ? number_or_text(e->text)
                                         : json_string(e->text);
      json_object_set_new(o, f->name, v);
    }
  }
  return o;
}
