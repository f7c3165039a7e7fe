#!/usr/bin/env bash
# The chat demo page in real Chromium (tests/interop/web_chat.mjs): two
# browser contexts chat, see each other in presence and typing, survive a
# network drop and a hub restart (messages published through the HTTP API
# meanwhile show once, in order). The helper starts and restarts its own
# `duplex serve`. Screenshots go to $DX_WEB_SHOTS (default
# $DX_BUILD_DIR/web-screenshots), which the test prints.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
shots=${DX_WEB_SHOTS:-$DX_BUILD_DIR/web-screenshots}
mkdir -p "$shots"
log "screenshots in $shots"
DUPLEX=$DUPLEX run_helper "chat in Chromium" timeout -k 5 120 node "$DX_SOURCE_DIR/tests/interop/web_chat.mjs" "$shots"
finish
