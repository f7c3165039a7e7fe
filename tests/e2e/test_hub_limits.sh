#!/usr/bin/env bash
# duplex serve's limits and topic rules: rate limits with a flooding client
# beside a calm one, connections per user and per address, connection rate,
# rules (api-only, presence off, history size, max publication, anonymous
# modes), presence cap.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
secret="limits-secret-$RANDOM-0123456789"
start_serve --token-secret "$secret" --publish-rate 20 --subscribe-rate 10 \
  --max-connections-per-user 2 --max-connections-per-ip 6 --connect-rate-per-ip 20
limits=$PORT
start_serve --token-secret "$secret" --allow-anonymous --max-presence 2 \
  --rule 'ticker/*:publish=api,presence=off' --rule 'public:*:anonymous=write' \
  --rule 'private:*:anonymous=none' --rule 'small:*:max-publication=10' --rule 'log:*:history=2'
rules=$PORT
run_helper "limits client" node "$DX_SOURCE_DIR/tests/interop/hub_limits.mjs" "$limits" "$rules" "$secret"
"$DUPLEX" serve --rule 'nocolon' --port 0 >/dev/null 2>"$DX_TMP/err"; rc=$?
[[ $rc == 2 ]] && grep -q "bad --rule" "$DX_TMP/err" && pass "a malformed --rule is a usage error naming it" ||
  check_fail "bad --rule: exit $rc: $(cat "$DX_TMP/err")"
"$DUPLEX" serve --rule 'x:colour=red' --port 0 >/dev/null 2>"$DX_TMP/err"; rc=$?
grep -q "unknown rule key 'colour'" "$DX_TMP/err" && pass "an unknown rule key is named" ||
  check_fail "unknown rule key: $(cat "$DX_TMP/err")"
finish
