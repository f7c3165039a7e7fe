#!/usr/bin/env bash
# Interop: headless Chromium (Debian's, driven by playwright-core) against
# `duplex echo`, without and with permessage-deflate.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules playwright-core
chromium=${DX_CHROMIUM:-/usr/bin/chromium}
[[ -x "$chromium" ]] || fail "no Chromium at $chromium: run scripts/deps.sh --test"
start_echo
run_helper "chromium" node "$here/browser_echo.mjs" "$PORT"
start_echo --deflate --deflate-mode takeover
DX_EXPECT_DEFLATE=1 run_helper "chromium, --deflate-mode takeover" node "$here/browser_echo.mjs" "$PORT" "deflate takeover"
finish
