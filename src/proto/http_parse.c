/* HTTP/1.x message-head parser for the opening handshake (RFC 7230 section 3).
 *
 * A pure function over (buf, len): it allocates nothing, keeps no state
 * between calls and never reads buf[len] or beyond. The caller re-runs it on
 * everything received so far; a head is at most max_size bytes, so the
 * re-scan is cheap and the parser needs no resumable state.
 *
 * Choices (each has a unit test):
 * - Lines end in CRLF; a bare LF is also accepted (RFC 7230 3.5 allows it and
 *   nginx, Node and picohttpparser all do). A CR anywhere else is malformed.
 * - obs-fold (a line starting with SP/HTAB) is rejected, as is whitespace
 *   between a field name and its colon (RFC 7230 3.2.4).
 * - Empty lines before a request line are skipped (RFC 7230 3.5 SHOULD);
 *   they count toward max_size and the returned length.
 * - The request line is "method SP target SP HTTP/1.d" with single spaces.
 *   The target may hold any visible ASCII or bytes >= 0x80; path/query are
 *   split at the first '?'. For absolute-form ("http://host/p?q") the path
 *   is the URI's path ("/p"), empty if it has none; asterisk- and
 *   authority-form are parsed with path == target. dx_upgrade_check() then
 *   rejects any path not starting with '/' (DX_EHTTP_TARGET).
 * - A status line may omit " reason" ("HTTP/1.1 101"), as some servers do.
 * - Errors are reported in input order, and a limit counts as broken at the
 *   byte that breaks it, so feeding a message in pieces gives DX_EAGAIN until
 *   the result of parsing it whole. Once more than max_size bytes are buffered
 *   without a complete head the answer is DX_EHTTP_TOO_LARGE, not DX_EAGAIN:
 *   a client trickling headers forever is stopped by size.
 * - Output fields (including num_headers) are written only on success, so a
 *   caller can retry after DX_EAGAIN with the same struct. The headers array
 *   itself may be scribbled on by any call.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "duplex/error.h"
#include "duplex/handshake.h"
#include "proto/http_chars.h"

enum {
  DEF_MAX_LINE = 4096,
  DEF_MAX_SIZE = 8192,
  DEF_MAX_HEADERS = 64,
};

/* Character classes. T: tchar (token). V: field-value byte (VCHAR, SP,
 * HTAB, obs-text). P: request-target byte (VCHAR, obs-text). */
enum { C_T = 1, C_V = 2, C_P = 4 };
static const uint8_t k_class[256] = {
    /* 00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    /* 10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 20 */ 2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
    /* 30 */ 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
    /* 40 */ 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* 50 */ 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
    /* 60 */ 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* 70 */ 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
    /* 80 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* 90 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* a0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* b0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* c0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* d0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* e0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    /* f0 */ 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
};

static inline int cls(char c) { return k_class[(unsigned char)c]; }

bool dx__http_is_tchar(unsigned char c) { return k_class[c] & C_T; }

bool dx__http_is_token(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!(k_class[(unsigned char)s[i]] & C_T)) return false;
  return true;
}
static inline int is_ows(char c) { return c == ' ' || c == '\t'; }
static inline char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static int ci_eq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (lower(a[i]) != lower(b[i])) return 0;
  return 1;
}

typedef struct limits {
  size_t max_line, max_size, max_headers;
} limits;

static limits resolve_limits(const dx_http_limits *l, size_t capacity) {
  limits r = {DEF_MAX_LINE, DEF_MAX_SIZE, DEF_MAX_HEADERS};
  if (l && l->max_line) r.max_line = l->max_line;
  if (l && l->max_size) r.max_size = l->max_size;
  if (l && l->max_headers) r.max_headers = l->max_headers;
  if (r.max_headers > capacity) r.max_headers = capacity;
  /* The head length is returned as an int. */
  if (r.max_size > INT_MAX) r.max_size = INT_MAX;
  return r;
}

/* Validators look at a line's content (terminator excluded). They return
 * V_OK for a valid complete line, V_MORE for a valid proper prefix of one,
 * V_BAD otherwise. They work strictly left to right, so a prefix found bad
 * stays bad however the line continues. */
enum { V_OK = 0, V_MORE = 1, V_BAD = 2 };

/* Where the next line ends. */
enum { L_COMPLETE, L_PARTIAL, L_TOO_LONG };

/* Looks for the end of the line at p[0..n) whose content may be at most
 * `limit` bytes. Sets *content to the content length to validate (for a
 * partial line: what is there, minus a trailing CR that may start the CRLF;
 * for a too-long line: the first `limit` bytes) and *total to the line
 * length including its terminator. */
static int find_line(const char *p, size_t n, size_t limit, size_t *content, size_t *total) {
  size_t scan = n;
  if (limit <= SIZE_MAX - 2 && limit + 2 < scan) scan = limit + 2;
  const char *lf = memchr(p, '\n', scan);
  if (lf) {
    size_t k = (size_t)(lf - p);
    size_t c = (k > 0 && p[k - 1] == '\r') ? k - 1 : k;
    if (c > limit) {
      *content = limit;
      return L_TOO_LONG;
    }
    *content = c;
    *total = k + 1;
    return L_COMPLETE;
  }
  size_t c = (scan > 0 && p[scan - 1] == '\r') ? scan - 1 : scan;
  if (scan < n || c > limit) {
    /* limit+2 bytes with no LF, or limit+1 bytes not ending in CR. */
    *content = limit;
    return L_TOO_LONG;
  }
  *content = c;
  return L_PARTIAL;
}

/* "HTTP/1.d" at s[0..n). On success stores the minor version digit. */
static int validate_version(const char *s, size_t n, int *minor) {
  static const char prefix[] = "HTTP/1.";
  for (size_t k = 0; k < 7; k++) {
    if (k == n) return V_MORE;
    if (s[k] != prefix[k]) return V_BAD;
  }
  if (n == 7) return V_MORE;
  if (s[7] < '0' || s[7] > '9') return V_BAD;
  *minor = s[7] - '0';
  return n == 8 ? V_OK : V_BAD;
}

static int validate_request_line(const char *s, size_t n, dx_str *method, dx_str *target,
                                 int *minor) {
  size_t i = 0;
  while (i < n && (cls(s[i]) & C_T)) i++;
  if (i == n) return V_MORE;
  if (i == 0 || s[i] != ' ') return V_BAD;
  *method = (dx_str){s, i};
  size_t t = ++i;
  while (i < n && (cls(s[i]) & C_P)) i++;
  if (i == n) return V_MORE;
  if (i == t || s[i] != ' ') return V_BAD;
  *target = (dx_str){s + t, i - t};
  i++;
  return validate_version(s + i, n - i, minor);
}

static int validate_status_line(const char *s, size_t n, int *minor, int *status, dx_str *reason) {
  int v = validate_version(s, n < 8 ? n : 8, minor);
  if (v != V_OK) return v;
  if (n == 8) return V_MORE;
  if (s[8] != ' ') return V_BAD;
  int code = 0;
  for (size_t k = 9; k < 12; k++) {
    if (k == n) return V_MORE;
    if (s[k] < '0' || s[k] > '9' || (k == 9 && s[k] == '0')) return V_BAD;
    code = code * 10 + (s[k] - '0');
  }
  *status = code;
  *reason = (dx_str){s + n, 0};
  if (n == 12) return V_OK; /* no " reason": tolerated */
  if (s[12] != ' ') return V_BAD;
  for (size_t k = 13; k < n; k++)
    if (!(cls(s[k]) & C_V)) return V_BAD;
  *reason = (dx_str){s + 13, n - 13};
  return V_OK;
}

static int validate_header(const char *s, size_t n, dx_http_header *h) {
  size_t i = 0;
  while (i < n && (cls(s[i]) & C_T)) i++;
  if (i == n) return V_MORE;
  if (i == 0 || s[i] != ':') return V_BAD;
  size_t v = i + 1;
  for (size_t k = v; k < n; k++)
    if (!(cls(s[k]) & C_V)) return V_BAD;
  size_t e = n;
  while (v < e && is_ows(s[v])) v++;
  while (e > v && is_ows(s[e - 1])) e--;
  h->name = (dx_str){s, i};
  h->value = (dx_str){s + v, e - v};
  return V_OK;
}

/* Result when the window ran out: more bytes may help only while the
 * caller has not yet buffered max_size bytes. */
static int need_more(size_t len, const limits *lim) {
  return len >= lim->max_size ? DX_EHTTP_TOO_LARGE : DX_EAGAIN;
}

/* Parses header lines and the blank line from buf[*pos..n). Returns 0 with
 * *pos past the blank line and *count set, or an error. */
static int parse_headers(const char *buf, size_t n, size_t len, const limits *lim, size_t *pos,
                         dx_http_header *headers, size_t *count) {
  size_t p = *pos, nh = 0;
  for (;;) {
    if (p == n) return need_more(len, lim);
    char c = buf[p];
    if (c == '\n' || c == '\r') {
      if (c == '\r') {
        if (p + 1 == n) return need_more(len, lim);
        if (buf[p + 1] != '\n') return DX_EHTTP_MALFORMED;
        p++;
      }
      *pos = p + 1;
      *count = nh;
      return 0;
    }
    if (is_ows(c)) return DX_EHTTP_MALFORMED; /* obs-fold, or space after start line */
    if (nh == lim->max_headers) return DX_EHTTP_TOO_MANY_HEADERS;
    size_t content = 0, total = 0;
    int st = find_line(buf + p, n - p, SIZE_MAX, &content, &total);
    dx_http_header h;
    int v = validate_header(buf + p, content, &h);
    if (v == V_BAD || (v == V_MORE && st == L_COMPLETE)) return DX_EHTTP_MALFORMED;
    if (st != L_COMPLETE) return need_more(len, lim); /* no limit per header line */
    headers[nh++] = h;
    p += total;
  }
}

/* Common tail for a start line: validation errors first, then length. */
static int start_line_result(int st, int v) {
  if (v == V_BAD || (v == V_MORE && st == L_COMPLETE)) return DX_EHTTP_MALFORMED;
  if (st == L_TOO_LONG) return DX_EHTTP_LINE_TOO_LONG;
  return 0;
}

/* Splits a request-target into path and query (see the top comment). */
static void split_target(dx_str target, dx_str *path, dx_str *query) {
  const char *s = target.ptr, *end = s + target.len;
  const char *p = s;
  /* absolute-form: scheme "://" authority [path]; scheme = ALPHA *(ALPHA / DIGIT / + - .) */
  if (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
    const char *q = p + 1;
    while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                       (*q >= '0' && *q <= '9') || *q == '+' || *q == '-' || *q == '.'))
      q++;
    if (end - q >= 3 && q[0] == ':' && q[1] == '/' && q[2] == '/') {
      p = q + 3;
      while (p < end && *p != '/' && *p != '?') p++;
    }
  }
  const char *qm = memchr(p, '?', (size_t)(end - p));
  if (qm) {
    *path = (dx_str){p, (size_t)(qm - p)};
    *query = (dx_str){qm + 1, (size_t)(end - qm - 1)};
  } else {
    *path = (dx_str){p, (size_t)(end - p)};
    *query = (dx_str){end, 0};
  }
}

int dx_http_parse_request(const char *buf, size_t len, dx_http_request *req,
                          const dx_http_limits *limits_in) {
  if (!req || (!buf && len)) return DX_EINVAL;
  limits lim = resolve_limits(limits_in, req->headers ? req->num_headers : 0);
  size_t n = len < lim.max_size ? len : lim.max_size; /* never look past max_size */
  size_t p = 0;

  /* Skip empty lines left over before the request line. */
  for (;;) {
    if (p == n) return need_more(len, &lim);
    if (buf[p] == '\n') {
      p++;
    } else if (buf[p] == '\r') {
      if (p + 1 == n) return need_more(len, &lim);
      if (buf[p + 1] != '\n') return DX_EHTTP_MALFORMED;
      p += 2;
    } else {
      break;
    }
  }

  dx_str method = {0}, target = {0};
  int minor = 0;
  size_t content = 0, total = 0;
  int st = find_line(buf + p, n - p, lim.max_line, &content, &total);
  int v = validate_request_line(buf + p, content, &method, &target, &minor);
  int r = start_line_result(st, v);
  if (r) return r;
  if (st == L_PARTIAL) return need_more(len, &lim);
  p += total;

  size_t nh = 0;
  r = parse_headers(buf, n, len, &lim, &p, req->headers, &nh);
  if (r) return r;

  req->method = method;
  req->target = target;
  split_target(target, &req->path, &req->query);
  req->minor_version = minor;
  req->num_headers = nh;
  return (int)p;
}

int dx_http_parse_response(const char *buf, size_t len, dx_http_response *resp,
                           const dx_http_limits *limits_in) {
  if (!resp || (!buf && len)) return DX_EINVAL;
  limits lim = resolve_limits(limits_in, resp->headers ? resp->num_headers : 0);
  size_t n = len < lim.max_size ? len : lim.max_size;
  if (n == 0) return need_more(len, &lim);

  int minor = 0, status = 0;
  dx_str reason = {0};
  size_t content = 0, total = 0;
  int st = find_line(buf, n, lim.max_line, &content, &total);
  int v = validate_status_line(buf, content, &minor, &status, &reason);
  int r = start_line_result(st, v);
  if (r) return r;
  if (st == L_PARTIAL) return need_more(len, &lim);

  size_t p = total, nh = 0;
  r = parse_headers(buf, n, len, &lim, &p, resp->headers, &nh);
  if (r) return r;

  resp->minor_version = minor;
  resp->status = status;
  resp->reason = reason;
  resp->num_headers = nh;
  return (int)p;
}

const dx_http_header *dx_http_find(const dx_http_header *h, size_t n, const char *name) {
  if (!h || !name) return NULL;
  size_t len = strlen(name);
  for (size_t i = 0; i < n; i++)
    if (h[i].name.len == len && ci_eq(h[i].name.ptr, name, len)) return &h[i];
  return NULL;
}

bool dx_http_has_token(const dx_http_header *h, size_t n, const char *name, const char *token) {
  if (!h || !name || !token) return false;
  size_t name_len = strlen(name), tok_len = strlen(token);
  if (tok_len == 0) return false; /* empty list elements match nothing */
  for (size_t i = 0; i < n; i++) {
    if (h[i].name.len != name_len || !ci_eq(h[i].name.ptr, name, name_len)) continue;
    const char *s = h[i].value.ptr, *end = s + h[i].value.len;
    while (s < end) {
      const char *comma = memchr(s, ',', (size_t)(end - s));
      const char *e = comma ? comma : end;
      const char *a = s, *b = e;
      while (a < b && is_ows(*a)) a++;
      while (b > a && is_ows(b[-1])) b--;
      if ((size_t)(b - a) == tok_len && ci_eq(a, token, tok_len)) return true;
      s = comma ? comma + 1 : end;
    }
  }
  return false;
}
