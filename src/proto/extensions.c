/* Sec-WebSocket-Extensions parsing (RFC 6455 section 9.1).
 *
 *   extension-list = 1#( token *( OWS ";" OWS param ) )
 *   param          = token [ OWS "=" OWS ( token / quoted-string ) ]
 *
 * Choices:
 * - Empty list elements ("a, , b", leading/trailing commas) are skipped as
 *   RFC 7230 section 7 asks; a value that is empty or only commas adds no
 *   offer and is not an error (being lenient here costs nothing).
 * - A quoted value has its quotes stripped and must then be a non-empty
 *   token, as 9.1 requires. A backslash inside quotes is rejected rather than
 *   unescaped: a valid token never needs escaping, and unescaping would need
 *   a copy, which this parser never makes.
 * - Errors leave *n unchanged (all or nothing). A value with bad syntax
 *   anywhere is DX_EWS_EXTENSIONS even if it also overflows `cap`; DX_ELIMIT
 *   means "well-formed but does not fit".
 */
#include <string.h>

#include "duplex/error.h"
#include "duplex/handshake.h"
#include "proto/http_chars.h"

static size_t skip_ows(const char *s, size_t i, size_t len) {
  while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

/* Reads a token at s[*i..len); returns 0 if there is none. */
static int read_token(const char *s, size_t *i, size_t len, dx_str *out) {
  size_t start = *i, k = start;
  while (k < len && dx__http_is_tchar((unsigned char)s[k])) k++;
  if (k == start) return 0;
  *out = (dx_str){s + start, k - start};
  *i = k;
  return 1;
}

/* Reads `token / quoted-string` and stores the bare token. */
static int read_value(const char *s, size_t *i, size_t len, dx_str *out) {
  if (*i < len && s[*i] == '"') {
    size_t k = *i + 1;
    dx_str tok;
    if (!read_token(s, &k, len, &tok)) return 0; /* empty, or not a token */
    if (k == len || s[k] != '"') return 0;       /* unterminated, escape or non-token byte */
    *out = tok;
    *i = k + 1;
    return 1;
  }
  return read_token(s, i, len, out);
}

int dx_ext_parse(const char *value, size_t len, dx_ext_offer *offers, size_t *n, size_t cap) {
  if (!n || (!value && len) || (!offers && cap)) return DX_EINVAL;
  size_t count = *n, i = 0;
  int overflow = 0;
  dx_ext_offer scratch; /* keeps checking syntax after `cap` is reached */
  for (;;) {
    i = skip_ows(value, i, len);
    if (i == len) break;
    if (value[i] == ',') { /* empty element */
      i++;
      continue;
    }
    dx_ext_offer *cur = &scratch;
    if (count < cap)
      cur = &offers[count];
    else
      overflow = 1;
    if (!read_token(value, &i, len, &cur->name)) return DX_EWS_EXTENSIONS;
    cur->num_params = 0;
    i = skip_ows(value, i, len);
    while (i < len && value[i] == ';') {
      i = skip_ows(value, i + 1, len);
      dx_ext_param prm = {{NULL, 0}, {NULL, 0}};
      if (!read_token(value, &i, len, &prm.name)) return DX_EWS_EXTENSIONS;
      i = skip_ows(value, i, len);
      if (i < len && value[i] == '=') {
        i = skip_ows(value, i + 1, len);
        if (!read_value(value, &i, len, &prm.value)) return DX_EWS_EXTENSIONS;
        i = skip_ows(value, i, len);
      }
      if (cur->num_params == DX_EXT_MAX_PARAMS) return DX_EWS_EXTENSIONS;
      cur->params[cur->num_params++] = prm;
    }
    if (i < len) {
      if (value[i] != ',') return DX_EWS_EXTENSIONS;
      i++;
    }
    if (!overflow) count++;
  }
  if (overflow) return DX_ELIMIT;
  *n = count;
  return 0;
}
