#!/usr/bin/env bash
# End to end: SIGTERM makes `duplex echo` send close 1001 to every client,
# wait for their close frames and exit 0 promptly.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

# scenario MODE EXIT_WITHIN_SECONDS [SERVER ARGS...]
scenario() {
  local mode=$1 within=$2 py rc=0
  shift 2
  local ready="$DX_TMP/ready.$mode.$#" out="$DX_TMP/sigterm.$mode.$#.out" label="$mode${*:+ ($*)}"
  start_echo "$@"
  "$PY" "$here/sigterm.py" "$mode" "$PORT" "$ready" >"$out" 2>&1 &
  py=$!
  wait_file "$ready" 20 || fail "$label: the clients did not get ready within 20 s"
  kill -TERM "$ECHO_PID"
  if wait_gone "$ECHO_PID" "$within"; then
    pass "$label: server exited ${WAITED_MS} ms after SIGTERM (limit ${within} s)"
    reap_server "$ECHO_PID" || rc=$?
    if ((rc == 0)); then pass "$label: exit status 0"; else check_fail "$label: exit status $rc, want 0"; fi
  else
    check_fail "$label: server still running ${within} s after SIGTERM"
  fi
  rc=0
  wait "$py" || rc=$?
  tally_helper "sigterm $label clients" "$rc" "$out"
}

scenario clients 5
# A client that never answers the close frame (and connections that never
# finished their handshake) must not keep the server from exiting.
scenario stubborn 15
# Every event loop of a multi-threaded server takes part in the shutdown.
scenario clients 5 --threads 3
finish
