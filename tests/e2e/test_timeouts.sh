#!/usr/bin/env bash
# End to end: the handshake timeout drops slowloris and silent clients while
# normal clients are served; ping/pong keeps live peers and drops dead ones;
# the idle timeout closes quiet connections.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

start_echo --handshake-timeout 1s
run_helper "handshake timeout" "$PY" "$here/timeouts.py" handshake "$PORT"

start_echo --ping-interval 1s --pong-timeout 1s
run_helper "ping/pong timeout" "$PY" "$here/timeouts.py" ping "$PORT"

start_echo --idle-timeout 1s
run_helper "idle timeout" "$PY" "$here/timeouts.py" idle "$PORT"
finish
