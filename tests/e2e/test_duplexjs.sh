#!/usr/bin/env bash
# web/duplex.js (the browser and Node client of duplex serve) under Node's
# test runner: requests, presence, history, resume across network drops and a
# server restart, queued publishes, heartbeat, close codes, backoff
# (tests/interop/duplexjs.test.mjs; the tests that restart a server start
# their own). Node's built-in WebSocket is enabled so both it and the ws
# package are exercised.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules ws
key=duplexjs-$RANDOM$RANDOM
start_serve --api-key "$key" --history-size 1000 --static "$DX_SOURCE_DIR/web"
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/duplex.js" && pass "GET /duplex.js" || check_fail "GET /duplex.js failed"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$PORT/duplex.js")
[[ $ctype == text/javascript* || $ctype == application/javascript* ]] &&
  pass "/duplex.js is served as JavaScript ($ctype)" || check_fail "/duplex.js Content-Type is '$ctype'"
# The TAP reporter prints one "ok N - name" / "not ok N - name" per test.
DUPLEX=$DUPLEX DX_HUB_PORT=$PORT DX_HUB_KEY=$key run_helper "duplex.js" timeout -k 5 150 \
  node --experimental-websocket --test --test-reporter=tap "$DX_SOURCE_DIR/tests/interop/duplexjs.test.mjs"
# The fallback transports (tests/interop/duplexjs_fallback.test.mjs): SSE
# through Node's EventSource where this Node has one, and long-polling.
es_flag=()
node --experimental-eventsource -e 0 2>/dev/null && es_flag=(--experimental-eventsource)
DUPLEX=$DUPLEX DX_HUB_PORT=$PORT DX_HUB_KEY=$key run_helper "duplex.js fallback" timeout -k 5 150 \
  node --experimental-websocket ${es_flag[@]+"${es_flag[@]}"} --test --test-reporter=tap "$DX_SOURCE_DIR/tests/interop/duplexjs_fallback.test.mjs"
finish
