#!/usr/bin/env bash
# duplex serve with connection tokens: HS256 (secret), RS256 (public key
# file) and --allow-anonymous, driven by a Node `ws` client that mints its
# own tokens (and forgeries) with node:crypto; `duplex token` mints one too.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
secret="test-secret-$RANDOM-0123456789abcdef"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DX_TMP/rsa.pem" 2>/dev/null ||
  fail "openssl could not make an RSA key"
openssl pkey -in "$DX_TMP/rsa.pem" -pubout -out "$DX_TMP/rsa.pub" 2>/dev/null

start_serve --token-secret "$secret" --token-leeway 0 --auth-timeout 1s
hs=$PORT
start_serve --token-key "$DX_TMP/rsa.pub"
rs=$PORT
start_serve --token-secret "$secret" --allow-anonymous
anon=$PORT

run_helper "auth client" node "$DX_SOURCE_DIR/tests/interop/hub_auth.mjs" "$hs" "$rs" "$anon" "$secret" "$DX_TMP/rsa.pem"

# duplex token mints what the server accepts.
tok=$("$DUPLEX" token --secret "$secret" --sub cli-user --topics 'chat:*' --ttl 1m) ||
  check_fail "duplex token failed"
out=$(cd "$DX_SOURCE_DIR/tests/interop" && node -e '
const WebSocket = require("ws");
const ws = new WebSocket(`ws://127.0.0.1:${process.argv[1]}/ws?token=${process.argv[2]}`, "duplex.v1");
ws.on("message", (d) => { const m = JSON.parse(d); if (m.type === "welcome") { console.log(m.user); ws.close(); } });
ws.on("close", (c) => { if (c !== 1005 && c !== 1000) console.log("closed " + c); });
setTimeout(() => process.exit(1), 5000);
' "$hs" "$tok" 2>&1)
[[ $out == cli-user* ]] && pass "a token from duplex token is accepted (user cli-user)" ||
  check_fail "duplex token's token: $out"
"$DUPLEX" token --secret short --sub x >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] && pass "duplex token refuses a short secret (exit 2)" || check_fail "short secret: exit $rc"
grep -q "$secret" "$SERVE_LOG" && check_fail "the secret appears in the server log" ||
  pass "the secret never appears in the log"
grep -qF "${tok:0:40}" "${DX_SERVER_LOGS[@]}" && check_fail "a token appears in a server log" ||
  pass "tokens never appear in the logs"
grep -q "token refused: bad signature" "${DX_SERVER_LOGS[0]}" && pass "refusals are logged with their reason" ||
  check_fail "no 'token refused' log line"
finish
