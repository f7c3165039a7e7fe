#!/usr/bin/env bash
# End to end: a client that sends but never reads is cut off at the
# per-connection buffer cap (--max-buffered), other clients are unaffected
# and the server's memory stays bounded.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

# ASan keeps up to 256 MB of freed memory in quarantine, which would swamp
# the RSS bound; a small quarantine keeps use-after-free detection and makes
# VmRSS reflect what the server really holds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
start_echo --max-buffered 1M
run_helper "slow reader" "$PY" "$here/slow_reader.py" "$PORT" "$ECHO_PID"
grep -E '1008|buffer|slow' "$ECHO_LOG" | head -n 5 | sed 's/^/# server log: /'
finish
