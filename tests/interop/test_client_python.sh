#!/usr/bin/env bash
# Interop: `duplex connect` (the duplex client) against a Python `websockets`
# server (client_peer_python.py, Debian's python3-websockets): the same cases
# as test_client_node.sh, from client_cases.sh.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
source "$here/client_cases.sh"

"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
[[ -x "$DUPLEX" ]] || fail "no duplex binary at $DUPLEX"
start_peer "$PY" "$here/client_peer_python.py"
client_cases python
finish
