#!/usr/bin/env bash
# Interop: Python `websockets` clients speak the hub protocol to `duplex
# serve`: subscribe/publish with acks, resume after a dropped connection,
# presence; then a restart of the server (SIGTERM: close 1001, exit 0; a new
# server on the same port) after which a resume is told epoch_changed.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

"$PY" -c 'import websockets' 2>/dev/null ||
  fail "$PY cannot import websockets: run scripts/deps.sh --test (python3-websockets)"
helper="$here/hub_py.py"
start_serve
for section in basic resume presence; do
  run_helper "hub python client ($section)" "$PY" "$helper" "$PORT" "$section"
done

# The restart: the helper stays connected and reconnects to the new server.
ready="$DX_TMP/restart.ready" out="$DX_TMP/restart.out" rc=0
"$PY" "$helper" "$PORT" restart "$ready" >"$out" 2>&1 &
client=$!
wait_file "$ready" 20 || fail "the restart client did not get ready within 20 s"
kill -TERM "$SERVE_PID"
if wait_gone "$SERVE_PID" 5; then
  reap_server "$SERVE_PID" || rc=$?
  if ((rc == 0)); then pass "SIGTERM: the server exited with status 0"; else
    check_fail "SIGTERM: exit status $rc, want 0"; fi
else
  check_fail "SIGTERM: the server still runs 5 s later"
fi
start_serve --port "$PORT"
rc=0
wait "$client" || rc=$?
tally_helper "hub python client (restart)" "$rc" "$out"
finish
