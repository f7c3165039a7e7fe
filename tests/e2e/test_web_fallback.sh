#!/usr/bin/env bash
# The chat demo page in real Chromium without WebSocket (tests/interop/
# web_fallback.mjs): over SSE with window.WebSocket removed, over
# long-polling with EventSource removed too, a mixed room (WebSocket, SSE
# and long-poll pages) in one order, a network cut and a hub restart
# without loss. The helper starts and restarts its own `duplex serve`.
# Screenshots go to $DX_WEB_SHOTS (default $DX_BUILD_DIR/web-screenshots).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
shots=${DX_WEB_SHOTS:-$DX_BUILD_DIR/web-screenshots}
mkdir -p "$shots"
log "screenshots in $shots"
DUPLEX=$DUPLEX run_helper "chat fallback in Chromium" timeout -k 5 150 node "$DX_SOURCE_DIR/tests/interop/web_fallback.mjs" "$shots"
finish
