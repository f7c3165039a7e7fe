#!/usr/bin/env bash
# End to end: SIGTERM makes `duplex serve` close every hub client with 1001
# and exit 0 promptly (one loop and two).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

need_node_modules ws
helper="$DX_SOURCE_DIR/tests/interop/hub_node.mjs"
for threads in 1 2; do
  label="--threads $threads"
  start_serve --threads "$threads"
  ready="$DX_TMP/ready.$threads" out="$DX_TMP/sigterm.$threads.out" rc=0
  DX_READY=$ready node "$helper" "$PORT" sigterm >"$out" 2>&1 &
  client=$!
  wait_file "$ready" 20 || fail "$label: the clients did not get ready within 20 s"
  kill -TERM "$SERVE_PID"
  if wait_gone "$SERVE_PID" 5; then
    pass "$label: server exited ${WAITED_MS} ms after SIGTERM"
    reap_server "$SERVE_PID" || rc=$?
    if ((rc == 0)); then pass "$label: exit status 0"; else check_fail "$label: exit status $rc, want 0"; fi
  else
    check_fail "$label: server still running 5 s after SIGTERM"
  fi
  rc=0
  wait "$client" || rc=$?
  tally_helper "sigterm $label clients" "$rc" "$out"
done
finish
