#!/usr/bin/env bash
# End to end: malformed handshakes, protocol violations and limits sent over
# raw sockets get exactly the answer RFC 6455 calls for, and a good
# connection keeps working throughout.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

start_echo
port_default=$PORT
start_echo --max-message 1K
port_1k=$PORT
start_echo --max-connections 2
port_2conn=$PORT
run_helper "bad input" "$PY" "$here/bad_input.py" "$port_default" "$port_1k" "$port_2conn"
finish
