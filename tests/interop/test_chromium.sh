#!/usr/bin/env bash
# Interop: headless Chromium (Debian's, driven by playwright-core) against
# `duplex echo`.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules playwright-core
chromium=${DX_CHROMIUM:-/usr/bin/chromium}
[[ -x "$chromium" ]] || fail "no Chromium at $chromium: run scripts/deps.sh --test"
start_echo
run_helper "chromium" node "$here/browser_echo.mjs" "$PORT"
finish
