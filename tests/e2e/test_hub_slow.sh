#!/usr/bin/env bash
# End to end: a `duplex serve` subscriber that never reads (raw TCP, 4 KiB
# receive buffer) on a busy topic is closed by policy at --max-buffered
# (1008, or 1013 with --slow-close-code 1013) and leaves the topic, while a
# normal subscriber of the same topic gets every publication with no gap.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../lib.sh
source "$here/../lib.sh"

for code in 1008 1013; do
  args=(--max-buffered 128K)
  [[ $code == 1013 ]] && args+=(--slow-close-code 1013)
  start_serve "${args[@]}"
  run_helper "hub slow subscriber, close $code" "$PY" "$here/hub_slow.py" "$PORT" "$SERVE_LOG" "$code"
  grep -m1 -E 'slow client' "$SERVE_LOG" | sed 's/^/# server log: /'
done
finish
