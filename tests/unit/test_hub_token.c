/* hub: connection tokens (JWT via libjwt): every rule of token.h, including
 * the two classic forgeries (alg "none"; HS256 "signed" with the RS256
 * public key). */
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "hub/token.h"
#include "test.h"

#define SECRET "a-test-secret-of-32-bytes-length"
#define NOW 1800000000

static hub_verifier *hs(void) {
  const char *why = NULL;
  hub_verifier *v = hub_verifier_new(&(hub_verifier_opts){.secret = SECRET, .leeway_s = 5}, &why);
  CHECK(v != NULL);
  return v;
}

static void refused(const hub_verifier *v, const char *tok, const char *want) {
  hub_token t;
  const char *why = NULL;
  CHECK_EQ_INT(hub_token_verify(v, tok, NOW, &t, &why), -1);
  if (!why || strcmp(why, want) != 0) fprintf(stderr, "why '%s', want '%s'\n", why, want);
  CHECK(why && !strcmp(why, want));
}

TEST(valid_hs256_with_grants) {
  hub_verifier *v = hs();
  char *tok = hub_token_mint(SECRET, "alice", NOW - 10, NOW + 60,
                             "{\"subscribe\":[\"chat:*\",\"news\"],\"publish\":[\"chat:lobby\"]}");
  hub_token t;
  const char *why = NULL;
  CHECK_EQ_INT(hub_token_verify(v, tok, NOW, &t, &why), 0);
  CHECK_STR(t.user, "alice");
  CHECK_EQ_INT(t.exp, NOW + 60);
  CHECK(hub_grants_allow(&t.subscribe, "chat:x", 6));
  CHECK(hub_grants_allow(&t.subscribe, "chat:", 5));
  CHECK(hub_grants_allow(&t.subscribe, "news", 4));
  CHECK(!hub_grants_allow(&t.subscribe, "news2", 5));
  CHECK(!hub_grants_allow(&t.subscribe, "cha", 3));
  CHECK(hub_grants_allow(&t.publish, "chat:lobby", 10));
  CHECK(!hub_grants_allow(&t.publish, "chat:other", 10));
  hub_token_clear(&t);
  free(tok);
  /* No grant claims: unrestricted. */
  tok = hub_token_mint(SECRET, "bob", NOW, 0, NULL);
  CHECK_EQ_INT(hub_token_verify(v, tok, NOW, &t, &why), 0);
  CHECK(!t.subscribe.restricted && hub_grants_allow(&t.subscribe, "any", 3));
  CHECK_EQ_INT(t.exp, 0);
  hub_token_clear(&t);
  free(tok);
  hub_verifier_free(v);
}

TEST(time_rules_with_leeway) {
  hub_verifier *v = hs();
  char *tok = hub_token_mint(SECRET, "a", NOW - 100, NOW - 6, NULL);
  refused(v, tok, "token expired");
  free(tok);
  tok = hub_token_mint(SECRET, "a", NOW - 100, NOW - 4, NULL); /* within the leeway */
  hub_token t;
  const char *why;
  CHECK_EQ_INT(hub_token_verify(v, tok, NOW, &t, &why), 0);
  hub_token_clear(&t);
  free(tok);
  tok = hub_token_mint(SECRET, "a", NOW, NOW + 100, "{\"nbf\":1800000010}");
  refused(v, tok, "token not yet valid");
  free(tok);
  hub_verifier_free(v);
}

TEST(bad_signature_and_malformed) {
  hub_verifier *v = hs();
  char *tok = hub_token_mint("another-secret-of-enough-bytes!!", "a", NOW, NOW + 60, NULL);
  refused(v, tok, "bad signature");
  tok[strlen(tok) - 3] ^= 1; /* a flipped signature byte */
  refused(v, tok, "bad signature");
  free(tok);
  refused(v, "", "token missing");
  refused(v, "not.a.jwt", "malformed token");
  refused(v, "abc", "malformed token");
  tok = hub_token_mint(SECRET, "", NOW, NOW + 60, NULL);
  refused(v, tok, "token without a user: \"sub\" must be a string of 1-128 bytes");
  free(tok);
  hub_verifier_free(v);
}

/* base64url without padding */
static void b64url(const char *in, char *out) {
  static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(in), o = 0;
  const unsigned char *s = (const unsigned char *)in;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    if (i + 1 < n) out[o++] = a[v >> 6 & 63];
    if (i + 2 < n) out[o++] = a[v & 63];
  }
  out[o] = 0;
}

TEST(alg_none_is_refused) {
  hub_verifier *v = hs();
  char h[128], p[128], tok[300];
  b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", h);
  b64url("{\"sub\":\"mallory\",\"exp\":1900000000}", p);
  snprintf(tok, sizeof tok, "%s.%s.", h, p);
  refused(v, tok, "token algorithm not allowed");
  hub_verifier_free(v);
}

static char *pem_of(EVP_PKEY *k, bool priv) {
  BIO *b = BIO_new(BIO_s_mem());
  if (priv) PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  else PEM_write_bio_PUBKEY(b, k);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s = malloc((size_t)n + 1); /* the BIO's bytes are not NUL-terminated */
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  BIO_free(b);
  return s;
}

static char *sign(jwt_alg_t alg, const char *key, const char *claims) {
  jwt_t *j;
  jwt_new(&j);
  jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key));
  jwt_add_grants_json(j, claims);
  char *s = jwt_encode_str(j);
  jwt_free(j);
  return s;
}

static void public_key_algorithm(EVP_PKEY *k, jwt_alg_t alg) {
  char *priv = pem_of(k, true), *pub = pem_of(k, false);
  const char *why = NULL;
  hub_verifier *v = hub_verifier_new(&(hub_verifier_opts){.key_pem = pub, .audience = "app",
                                                          .issuer = "auth.example"}, &why);
  CHECK(v != NULL);
  char *tok = sign(alg, priv, "{\"sub\":\"carol\",\"exp\":1800000100,\"aud\":[\"x\",\"app\"],"
                              "\"iss\":\"auth.example\"}");
  hub_token t;
  CHECK_EQ_INT(hub_token_verify(v, tok, NOW, &t, &why), 0);
  CHECK_STR(t.user, "carol");
  hub_token_clear(&t);
  free(tok);
  tok = sign(alg, priv, "{\"sub\":\"carol\",\"aud\":\"other\",\"iss\":\"auth.example\"}");
  refused(v, tok, "token for another audience");
  free(tok);
  tok = sign(alg, priv, "{\"sub\":\"carol\",\"aud\":\"app\",\"iss\":\"evil\"}");
  refused(v, tok, "token from another issuer");
  free(tok);
  /* The classic confusion: HS256 with the public key's PEM as the secret. */
  tok = sign(JWT_ALG_HS256, pub, "{\"sub\":\"mallory\",\"aud\":\"app\",\"iss\":\"auth.example\"}");
  refused(v, tok, "token algorithm not allowed");
  free(tok);
  hub_verifier_free(v);
  free(priv);
  free(pub);
}

TEST(rs256_and_es256) {
  EVP_PKEY *rsa = EVP_RSA_gen(2048);
  public_key_algorithm(rsa, JWT_ALG_RS256);
  EVP_PKEY_free(rsa);
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  public_key_algorithm(ec, JWT_ALG_ES256);
  EVP_PKEY_free(ec);
}

TEST(configuration_errors) {
  const char *why = NULL;
  CHECK(hub_verifier_new(&(hub_verifier_opts){0}, &why) == NULL);
  CHECK(why != NULL);
  CHECK(hub_verifier_new(&(hub_verifier_opts){.secret = "short"}, &why) == NULL);
  CHECK(strstr(why, "16 bytes") != NULL);
  CHECK(hub_verifier_new(&(hub_verifier_opts){.key_pem = "garbage"}, &why) == NULL);
  CHECK(strstr(why, "PEM") != NULL);
}

int main(void) {
  RUN(valid_hs256_with_grants);
  RUN(time_rules_with_leeway);
  RUN(bad_signature_and_malformed);
  RUN(alg_none_is_refused);
  RUN(rs256_and_es256);
  RUN(configuration_errors);
  return test_report();
}
