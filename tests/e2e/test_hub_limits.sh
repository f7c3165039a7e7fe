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
# The Origin allowlist, with a subdomain wildcard: 403 before the upgrade.
start_serve --origin 'https://app.example.org' --origin '*.example.com'
for pair in "https://a.example.com 101" "http://b.c.example.com 101" "https://app.example.org 101" \
  "https://example.com 403" "https://evil.com 403" "https://a.example.com.evil.com 403"; do
  set -- $pair
  got=$(cd "$DX_SOURCE_DIR/tests/interop" && node -e '
const WebSocket = require("ws");
const ws = new WebSocket(`ws://127.0.0.1:${process.argv[1]}/ws`, "duplex.v1", { origin: process.argv[2] });
ws.on("open", () => { console.log(101); ws.close(); });
ws.on("unexpected-response", (q, r) => { console.log(r.statusCode); process.exit(0); });
ws.on("error", (e) => console.log("error " + e.message));
setTimeout(() => process.exit(1), 5000);
' "$PORT" "$1" 2>&1 | head -1)
  [[ $got == "$2" ]] && pass "Origin $1: $2" || check_fail "Origin $1: got $got, want $2"
done
finish
