#!/usr/bin/env bash
# Interop: the hub's HTTP API (POST /api/publish and its batch form,
# /api/broadcast, GET /api/history, /api/presence, /api/topics) with the key
# as Bearer and X-API-Key, refusals (401, 400, 404, 405, 413), no key
# configured (403), and the key from DUPLEX_API_KEY.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
helper="$here/hub_api.mjs"
key="api-key-$RANDOM$RANDOM-test"
start_serve --api-key "$key" --max-publication 1024
run_helper "hub API" node "$helper" "$PORT" api "$key"
if grep -qF "$key" "$SERVE_LOG"; then check_fail "the API key appears in the server log"; else
  pass "the API key never appears in the server log"; fi

# curl, as the README shows it.
body=$(curl -s --max-time 10 -H "Authorization: Bearer $key" -d '{"topic":"curl","data":{"title":"hello"}}' \
  "http://127.0.0.1:$PORT/api/publish")
if [[ $body =~ ^\{.*\"ok\":\ ?true.*\"offset\":\ ?1[,}] ]]; then pass "curl POST /api/publish: $body"; else
  check_fail "curl POST /api/publish: $body"; fi
status=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "X-API-Key: nope" "http://127.0.0.1:$PORT/api/topics")
if [[ $status == 401 ]]; then pass "curl with a wrong key: 401"; else check_fail "curl with a wrong key: HTTP $status"; fi

start_serve
run_helper "hub API without a key" node "$helper" "$PORT" nokey
envkey="env-key-$RANDOM$RANDOM"
DUPLEX_API_KEY=$envkey start_serve
run_helper "hub API, key from DUPLEX_API_KEY" node "$helper" "$PORT" envkey "$envkey"
if grep -qF "$envkey" "$SERVE_LOG"; then check_fail "the API key appears in the server log"; else
  pass "the API key from the environment never appears in the server log"; fi
finish
