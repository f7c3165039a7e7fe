#!/usr/bin/env bash
# Interop: Python `websockets` (Debian's python3-websockets) against
# `duplex echo`, with and without permessage-deflate.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
client="$here/py_echo_client.py"
start_echo
run_helper "python websockets client" "$PY" "$client" "$PORT"
start_echo --deflate
DX_EXPECT_DEFLATE=1 run_helper "python websockets client, --deflate" "$PY" "$client" "$PORT" "deflate"
start_echo --deflate --deflate-mode takeover
DX_EXPECT_DEFLATE=1 run_helper "python websockets client, --deflate-mode takeover" \
  "$PY" "$client" "$PORT" "deflate takeover"
finish
