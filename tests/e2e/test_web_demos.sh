#!/usr/bin/env bash
# The demo pages in real Chromium (tests/interop/web_demos.mjs), each in a
# laptop and a phone context against `duplex serve --demo --static web`:
# index, live ticker, whiteboard, live comments with the rate limit, map.
# Screenshots go to $DX_WEB_SHOTS (default $DX_BUILD_DIR/web-screenshots),
# which the test prints. (The chat has its own test, test_web_chat.)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
start_serve --static "$DX_SOURCE_DIR/web" --demo
shots=${DX_WEB_SHOTS:-$DX_BUILD_DIR/web-screenshots}
mkdir -p "$shots"
log "screenshots in $shots"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$PORT/duplex.js")
[[ $ctype == text/javascript* ]] && pass "/duplex.js is served as $ctype" || check_fail "/duplex.js Content-Type '$ctype'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")
[[ $code == 200 ]] && pass "/ serves the index page" || check_fail "/ answered $code"
run_helper "demo pages in Chromium" timeout -k 5 120 node "$DX_SOURCE_DIR/tests/interop/web_demos.mjs" "$PORT" "$shots"
finish
