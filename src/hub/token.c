/* JWT verification on libjwt (see token.h). */
#include "hub/token.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "hub/rules.h"

struct hub_verifier {
  jwt_alg_t alg;
  unsigned char *key;
  size_t key_len;
  char *audience, *issuer;
  int leeway_s;
};

void hub_verifier_free(hub_verifier *v) {
  if (!v) return;
  if (v->key) OPENSSL_cleanse(v->key, v->key_len);
  free(v->key);
  free(v->audience);
  free(v->issuer);
  free(v);
}

/* The algorithm a public key implies: RSA -> RS256, P-256 -> ES256. */
static jwt_alg_t alg_of_pem(const char *pem, const char **why) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!k) {
    *why = "the token key file holds no PEM public key";
    return JWT_ALG_INVAL;
  }
  jwt_alg_t alg = JWT_ALG_INVAL;
  if (EVP_PKEY_is_a(k, "RSA")) alg = JWT_ALG_RS256;
  else if (EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_bits(k) == 256) alg = JWT_ALG_ES256;
  else *why = "the token key must be an RSA key (RS256) or a P-256 EC key (ES256)";
  EVP_PKEY_free(k);
  return alg;
}

hub_verifier *hub_verifier_new(const hub_verifier_opts *o, const char **why) {
  if (!o->secret == !o->key_pem) {
    *why = "configure exactly one of a token secret and a token public key";
    return NULL;
  }
  hub_verifier *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  const char *key = o->secret ? o->secret : o->key_pem;
  v->alg = o->secret ? JWT_ALG_HS256 : alg_of_pem(o->key_pem, why);
  v->key_len = strlen(key);
  v->key = (unsigned char *)strdup(key);
  v->audience = o->audience ? strdup(o->audience) : NULL;
  v->issuer = o->issuer ? strdup(o->issuer) : NULL;
  v->leeway_s = o->leeway_s;
  if (v->alg == JWT_ALG_INVAL || !v->key || (o->audience && !v->audience) ||
      (o->issuer && !v->issuer)) {
    if (v->alg != JWT_ALG_INVAL) *why = "out of memory";
    hub_verifier_free(v);
    return NULL;
  }
  if (o->secret && v->key_len < 16) {
    *why = "the token secret must be at least 16 bytes";
    hub_verifier_free(v);
    return NULL;
  }
  return v;
}

void hub_token_clear(hub_token *t) {
  free(t->user);
  for (size_t i = 0; i < t->subscribe.n; i++) free(t->subscribe.patterns[i]);
  for (size_t i = 0; i < t->publish.n; i++) free(t->publish.patterns[i]);
  free(t->subscribe.patterns);
  free(t->publish.patterns);
  memset(t, 0, sizeof *t);
}

static int read_grants(json_t *claims, const char *name, hub_grants *g, const char **why) {
  json_t *a = json_object_get(claims, name);
  if (!a) return 0;
  if (!json_is_array(a) || json_array_size(a) > 1024) {
    *why = "malformed token: grants must be arrays of topic patterns";
    return -1;
  }
  g->restricted = true;
  g->patterns = calloc(json_array_size(a) + 1, sizeof *g->patterns);
  if (!g->patterns) return (*why = "out of memory"), -1;
  size_t i;
  json_t *p;
  json_array_foreach(a, i, p) {
    if (!json_is_string(p)) return (*why = "malformed token: a grant is not a string"), -1;
    if (!(g->patterns[g->n++] = strdup(json_string_value(p)))) return (*why = "out of memory"), -1;
  }
  return 0;
}

static bool audience_ok(json_t *aud, const char *want) {
  if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
  size_t i;
  json_t *a;
  if (json_is_array(aud))
    json_array_foreach(aud, i, a) if (json_is_string(a) && !strcmp(json_string_value(a), want)) return true;
  return false;
}

static int check_claims(const hub_verifier *v, json_t *c, int64_t now, hub_token *t,
                        const char **why) {
  json_t *sub = json_object_get(c, "sub"), *exp = json_object_get(c, "exp"),
         *nbf = json_object_get(c, "nbf");
  if (!json_is_string(sub) || !json_string_length(sub) || json_string_length(sub) > 128)
    return (*why = "token without a user: \"sub\" must be a string of 1-128 bytes"), -1;
  if ((exp && !json_is_integer(exp)) || (nbf && !json_is_integer(nbf)))
    return (*why = "malformed token: exp and nbf must be integers"), -1;
  if (exp && now > json_integer_value(exp) + v->leeway_s) return (*why = "token expired"), -1;
  if (nbf && now + v->leeway_s < json_integer_value(nbf)) return (*why = "token not yet valid"), -1;
  if (v->audience && !audience_ok(json_object_get(c, "aud"), v->audience))
    return (*why = "token for another audience"), -1;
  json_t *iss = json_object_get(c, "iss");
  if (v->issuer && (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0))
    return (*why = "token from another issuer"), -1;
  t->user = strdup(json_string_value(sub));
  t->exp = exp ? (int64_t)json_integer_value(exp) : 0;
  if (!t->user) return (*why = "out of memory"), -1;
  if (read_grants(c, "subscribe", &t->subscribe, why) || read_grants(c, "publish", &t->publish, why))
    return -1;
  return 0;
}

int hub_token_verify(const hub_verifier *v, const char *token, int64_t now_s, hub_token *t,
                     const char **why) {
  memset(t, 0, sizeof *t);
  if (!token || !*token) return (*why = "token missing"), -1;
  if (strlen(token) > 8192) return (*why = "token too long"), -1;
  /* The algorithm first, from the unverified header: a token must not
   * choose how it is checked. */
  jwt_t *j = NULL;
  if (jwt_decode(&j, token, NULL, 0) != 0 || !j) return (*why = "malformed token"), -1;
  /* (libjwt reports alg "none" for anything decoded without a key: read
   * the header's own word.) */
  const char *name = jwt_get_header(j, "alg");
  jwt_alg_t alg = name ? jwt_str_alg(name) : JWT_ALG_INVAL;
  jwt_free(j);
  if (alg != v->alg) return (*why = "token algorithm not allowed"), -1;
  j = NULL;
  if (jwt_decode(&j, token, v->key, (int)v->key_len) != 0 || !j) return (*why = "bad signature"), -1;
  char *claims = jwt_get_grants_json(j, NULL);
  jwt_free(j);
  json_t *c = claims ? json_loads(claims, 0, NULL) : NULL;
  free(claims);
  int rc = json_is_object(c) ? check_claims(v, c, now_s, t, why)
                             : ((*why = "malformed token claims"), -1);
  json_decref(c);
  if (rc) hub_token_clear(t);
  return rc;
}

bool hub_grants_allow(const hub_grants *g, const char *topic, size_t len) {
  if (!g->restricted) return true;
  for (size_t i = 0; i < g->n; i++)
    if (hub_pattern_match(g->patterns[i], topic, len)) return true;
  return false;
}

char *hub_token_mint(const char *secret, const char *sub, int64_t iat, int64_t exp,
                     const char *grants_json) {
  jwt_t *j = NULL;
  char *out = NULL;
  if (jwt_new(&j) != 0) return NULL;
  if (jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0 &&
      jwt_add_grant(j, "sub", sub) == 0 && jwt_add_grant_int(j, "iat", (long)iat) == 0 &&
      (!exp || jwt_add_grant_int(j, "exp", (long)exp) == 0) &&
      (!grants_json || jwt_add_grants_json(j, grants_json) == 0))
    out = jwt_encode_str(j);
  jwt_free(j);
  return out;
}
