#!/usr/bin/env bash
# Interop: Python `websockets` (Debian's python3-websockets) against
# `duplex echo`.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
start_echo
run_helper "python websockets client" "$PY" "$here/py_echo_client.py" "$PORT"
finish
