/* hub — connection tokens: JWTs verified with libjwt (HS256 with a shared
 * secret; RS256/ES256 with a public key), never by hand. The algorithm is
 * fixed by the configuration, checked before the signature: "none" and an
 * HS256 token "signed" with an RS256 public key are refused.
 *
 * Claims: sub (user id, required), exp and nbf (checked with a leeway),
 * optional aud/iss checks, and grants: "subscribe" and "publish", arrays of
 * topic names or prefixes ending in '*' ("chat:*"). A token without one of
 * these claims does not restrict that action (the topic rules still do).
 *
 * Threads: a verifier is read-only after creation; any thread. */
#ifndef DX_HUB_TOKEN_H
#define DX_HUB_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_verifier hub_verifier;

typedef struct hub_verifier_opts {
  const char *secret;   /* HS256 */
  const char *key_pem;  /* RS256 (RSA key) or ES256 (P-256 key): the PEM text */
  const char *audience; /* required "aud" (string or one of an array), or NULL */
  const char *issuer;   /* required "iss", or NULL */
  int leeway_s;         /* allowed clock skew for exp/nbf */
} hub_verifier_opts;

/* NULL with *why set when the key is unusable. */
hub_verifier *hub_verifier_new(const hub_verifier_opts *o, const char **why);
void hub_verifier_free(hub_verifier *v);

typedef struct hub_grants {
  bool restricted; /* the claim was present */
  char **patterns;
  size_t n;
} hub_grants;

typedef struct hub_token {
  char *user;    /* "sub" */
  int64_t exp;   /* seconds since the epoch, 0 = none */
  hub_grants subscribe, publish;
} hub_token;

/* Verify `jwt` at `now_s`. Returns 0 and fills *t, or -1 with *why a short
 * reason for the close frame and the log ("token expired", "bad
 * signature", ...). Never logs the token. */
int hub_token_verify(const hub_verifier *v, const char *jwt, int64_t now_s, hub_token *t,
                     const char **why);
void hub_token_clear(hub_token *t);

/* Does a grant list allow `topic`? (An unrestricted list allows all.) */
bool hub_grants_allow(const hub_grants *g, const char *topic, size_t len);

/* Mint an HS256 token (for `duplex token` and tests). Returns a malloc'd
 * string or NULL. `grants_json` is an object of extra claims or NULL. */
char *hub_token_mint(const char *secret, const char *sub, int64_t iat, int64_t exp,
                     const char *grants_json);

#endif
