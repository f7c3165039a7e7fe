/* Fuzz the hub's token checks: the input is used twice — as a token string
 * (anything goes: libjwt parses, we must refuse cleanly) and as the claims
 * of a correctly signed token (our claim rules: sub, exp/nbf, aud, iss,
 * grants). Every refusal names a reason; an accepted token has a user. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/token.h"

#define SECRET "fuzz-secret-of-at-least-16-bytes"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static hub_verifier *v;
  if (!v) {
    const char *why;
    v = hub_verifier_new(&(hub_verifier_opts){.secret = SECRET, .audience = "app", .leeway_s = 5},
                         &why);
    check(v != NULL);
  }
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  hub_token t;
  const char *why = NULL;
  for (int pass = 0; pass < 2; pass++) {
    char *tok = pass ? hub_token_mint(SECRET, "u", 1700000000, 0, s) : s;
    if (pass && !tok) break; /* not a JSON object: nothing to sign */
    int rc = hub_token_verify(v, tok, 1800000000, &t, &why);
    if (rc == 0) {
      check(t.user && *t.user);
      check(hub_grants_allow(&t.subscribe, "x", 1) || t.subscribe.restricted);
      hub_token_clear(&t);
    } else {
      check(rc == -1 && why && *why);
    }
    if (pass) free(tok);
  }
  free(s);
  return 0;
}
