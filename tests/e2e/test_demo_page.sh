#!/usr/bin/env bash
# The echo demo page (web/echo.html, served by duplex echo --static web)
# works in a real browser: connects, echoes, shows round trips.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
need_node_modules playwright-core
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium: run scripts/deps.sh --test"
start_echo --static "$DX_SOURCE_DIR/web" --deflate
curl -fsS "http://127.0.0.1:$PORT/echo.html" | grep -q '<title>duplex' && pass "GET /echo.html serves the page" ||
  check_fail "GET /echo.html did not serve web/echo.html"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/no-such-file.png")
[[ $code == 404 ]] && pass "a missing file is 404 (not 426) with --static" ||
  check_fail "missing file answered $code"
# The helper lives beside tests/interop/node_modules so `import` finds them.
run_helper "demo page" node "$DX_SOURCE_DIR/tests/interop/demo_page.mjs" "$PORT" "$DX_TMP/demo.png"
finish
