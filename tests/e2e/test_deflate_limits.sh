#!/usr/bin/env bash
# End to end: permessage-deflate limits and protocol violations over raw
# sockets (deflate_limits.py): zip bombs close with 1009 while the server's
# memory stays low, --max-message counts inflated bytes, malformed offers
# are declined (101 without the extension), RSV1 without negotiation or on
# continuation/control frames closes with 1002, corrupted data with 1007;
# and the details of compressed messages (no context takeover in shared
# mode, takeover in takeover mode, threshold, BFINAL, empty messages,
# one-byte fragments, interleaved connections).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

start_echo --deflate --max-message 1M
shared_port=$PORT
shared_pid=$ECHO_PID
start_echo --deflate --deflate-mode takeover --max-message 1M
takeover_port=$PORT
takeover_pid=$ECHO_PID
start_echo --max-message 1M
plain_port=$PORT
run_helper "deflate limits" "$PY" "$here/deflate_limits.py" "$shared_port" "$shared_pid" \
  "$takeover_port" "$takeover_pid" "$plain_port"
finish
